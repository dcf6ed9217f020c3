"""The data set placed once and the minibatches drawn from it.

The training set goes to the model's device once and each minibatch's rows
are gathered there; where it does not fit (``data_on_device=False``, or
'auto' with too little free device memory) it stays on the host as NumPy and
each minibatch is gathered there and moved in one transfer.
"""

from __future__ import annotations

from typing import Any

from .._ops import checks
from ..backend import Backend
from ..errors import InputError, MissingKeyError
from ..host import as_host, gather_rows, host_rows

__all__ = ["Batches", "DATA_KEYS"]

DATA_KEYS = ("X_train", "y_train", "X_val", "y_val")


class Batches:
    """The training and validation sets of a Solver, and its minibatches.

    Parameters
    ----------
    backend : Backend
    model : object
        Its ``dtype`` and ``num_classes`` (when it has them) check and convert the data.
    data : dict
        ``X_train, y_train, X_val, y_val`` (host or device arrays).
    batch_size : int
    on_device : bool or 'auto'
    """

    def __init__(self, backend: Backend, model: Any, data: dict, batch_size: int,
                 on_device: bool | str) -> None:
        self.backend = backend
        self.batch_size = batch_size
        #: whether the training set lives on the device
        self.on_device = _resident(backend, data, on_device)
        self.X_train, self.y_train, self.X_val, self.y_val = _place(backend, model, data,
                                                                    self.on_device)
        rows = (self.X_train.shape[0], -1)
        self._rows = (backend.xp.reshape(self.X_train, rows) if self.on_device
                      else host_rows(self.X_train))

    @property
    def arrays(self) -> tuple[Any, Any, Any, Any]:
        """``X_train, y_train, X_val, y_val`` as placed."""
        return self.X_train, self.y_train, self.X_val, self.y_val

    @property
    def num_train(self) -> int:
        return int(self.X_train.shape[0])

    def draw(self, stream: Any) -> tuple[Any, Any]:
        """A random minibatch ``(X, y)`` on the device, indices from ``stream``."""
        X, y, _ = self.draw_indexed(stream)
        return X, y

    def draw_indexed(self, stream: Any) -> tuple[Any, Any, Any]:
        """A random minibatch and its rows of the training set: ``(X, y, idx)``."""
        idx = stream.integers(self.num_train, self.batch_size)
        return self.gather(idx), self.backend.xp.take(self.y_train, idx, axis=0), idx

    def gather(self, idx: Any) -> Any:
        """The training rows ``idx`` in the sample shape, on the device."""
        xp = self.backend.xp
        shape = (int(idx.shape[0]), *self.X_train.shape[1:])
        if self.on_device:
            return xp.reshape(xp.take(self._rows, idx, axis=0), shape)
        return self.backend.asarray(gather_rows(self._rows, idx, shape))

    def on_host(self, X: Any) -> bool:
        """Whether ``X`` is the training set kept on the host (moved batch by batch)."""
        return X is self.X_train and not self.on_device


def _resident(backend: Backend, data: dict, choice: bool | str) -> bool:
    """Whether the training set goes to the device (see the Solver's ``data_on_device``)."""
    if choice != "auto":
        return bool(choice)
    free = backend.free_memory()
    if free is None:
        return True
    need = getattr(data.get("X_train"), "nbytes", 0)
    return need < 0.5 * free


def _place(backend: Backend, model: Any, data: dict, on_device: bool) -> tuple:
    """``X_train, y_train, X_val, y_val`` checked and placed."""
    missing = [k for k in DATA_KEYS if k not in data]
    if missing:
        raise MissingKeyError(f"Solver: data is missing {', '.join(missing)}")
    xp = backend.xp
    num_classes = getattr(model, "num_classes", None)
    dtype = getattr(model, "dtype", None)
    arrays = []
    for split in ("train", "val"):
        if split == "train" and not on_device:
            X = as_host(data["X_train"], dtype)
        else:
            X = backend.asarray(data[f"X_{split}"])
        y = backend.asarray(data[f"y_{split}"])
        if y.ndim != 1 or X.shape[0] != y.shape[0]:
            raise InputError(
                f"Solver: X_{split} has {X.shape[0]} samples but y_{split} has shape "
                f"{checks.shape_str(y.shape)}; they must match"
            )
        if X.shape[0] == 0:
            raise InputError(f"Solver: X_{split} is empty")
        checks.check_label_dtype(xp, y, f"Solver (y_{split})")
        if num_classes is not None:
            checks.check_label_range(xp, y, num_classes, f"Solver (y_{split})")
        if dtype is not None and backend.owns(X) and X.dtype != dtype:
            X = xp.astype(X, dtype)
        arrays += [X, y]
    return tuple(arrays)
