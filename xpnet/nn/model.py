"""The model protocol: what the Solver, checkpoints, the command and sweeps rely on.

A model has

``params``
    dict of trainable arrays on the model's backend (the course's names, e.g.
    ``W1, b1, gamma1`` for the classic classes); ``loss`` returns gradients
    keyed alike.
``buffers``
    dict of other state (batchnorm running statistics); :meth:`Model.load_buffers`
    puts saved values back.
``config``
    JSON-ready keyword arguments that rebuild the model: ``type(model)(**config,
    backend=...)``.
``set_mode('train' | 'test')``
    the one place that switches dropout and normalization layers.
``loss(X, y=None)``
    scores at test time, ``(loss, grads)`` at training time.

Subclasses of :class:`Model` are registered by their qualified name, so
:func:`xpnet.load_model` can rebuild any of them without pickle.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from .._ops import checks
from ..backend import Backend
from ..errors import CheckpointError, InputError

__all__ = ["MODES", "Model", "model_class", "registered_models"]

#: The modes of :meth:`Model.set_mode`: the layers' own (``bn_param['mode']``, ...).
MODES = checks.MODES

_REGISTRY: dict[str, type[Model]] = {}


class Model:
    """Base class of xpnet models (see the module docstring for the protocol).

    Subclasses set ``params``, ``backend``, ``dtype`` and ``num_classes`` in
    ``__init__`` and implement :attr:`config` and :meth:`loss`; models with
    state besides their parameters override :attr:`buffers`,
    :meth:`load_buffers` and :meth:`set_mode`.
    """

    params: dict[str, Any]
    backend: Backend
    dtype: Any
    num_classes: int
    #: a short name for messages and the command (default: the class name)
    model_name: ClassVar[str | None] = None
    #: softmax targets (1 - eps) * onehot + eps / classes (0: the course's loss)
    label_smoothing: float = 0.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[qualified_name(cls)] = cls

    # -- the protocol ----------------------------------------------------------
    @classmethod
    def from_config(cls, config: Mapping[str, Any], backend: Any = None) -> Model:
        """A new model (fresh initial weights) from its :attr:`config`."""
        return cls(**config, backend=backend)

    @property
    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this model (JSON-ready)."""
        raise NotImplementedError(f"{type(self).__name__} does not describe its config")

    @property
    def buffers(self) -> dict[str, Any]:
        """State that is not trained by gradients (a new dict of the arrays)."""
        return {}

    def load_buffers(self, buffers: Mapping[str, Any]) -> None:
        """Set buffers from ``buffers`` (host or device arrays), checking names and shapes."""
        unknown = sorted(set(buffers) - set(self.buffers))
        if unknown:
            raise InputError(f"{type(self).__name__} has no buffers {', '.join(unknown)}")

    @property
    def mode(self) -> str:
        """'train' or 'test', as :meth:`set_mode` left it ('train' at first)."""
        return getattr(self, "_mode", "train")

    def set_mode(self, mode: str) -> None:
        """Switch to 'train' or 'test' behaviour (dropout, batch statistics)."""
        self._mode = checks.choice(mode, MODES, "mode", f"{type(self).__name__}.set_mode")

    def loss(self, X: Any, y: Any = None) -> Any:
        """The course's protocol: the scores ``(N, C)`` when ``y`` is None, else
        ``(loss, grads)``, the loss a 0-D device array and ``grads`` keyed like ``params``."""
        raise NotImplementedError

    # -- conveniences ----------------------------------------------------------
    def num_params(self) -> int:
        """The number of trainable scalars."""
        return sum(math.prod(p.shape) for p in self.params.values())

    def inputs(self, X: Any, dtype: Any) -> Any:
        """``X`` (host or device) on the model's device in ``dtype``."""
        X = self.backend.asarray(X)
        if X.dtype != dtype:
            X = self.backend.xp.astype(X, dtype)
        return X

    def labels(self, y: Any, n: int) -> Any:
        """``y`` on the device, checked: integers of shape (n,) in [0, num_classes)
        (the range only where reading it costs no device synchronization)."""
        be = self.backend
        y = be.asarray(y)
        if y.ndim != 1 or y.shape[0] != n:
            raise InputError(
                f"loss: y must have shape ({n},) to match the {n} samples of X, "
                f"got {checks.shape_str(y.shape)}"
            )
        checks.check_label_dtype(be.xp, y, "loss")
        if be.synchronous:
            checks.check_label_range(be.xp, y, self.num_classes, "loss")
        return y

    def l2_penalty(self, loss: Any, grads: dict[str, Any], weights: list[str]) -> Any:
        """Add ``0.5 * reg * sum(W**2)`` over ``weights`` to the loss and ``reg * W`` to
        their gradients (``reg`` read from ``self.reg`` now)."""
        reg = getattr(self, "reg", 0.0)
        if not reg:
            return loss
        xp = self.backend.xp
        for name in weights:
            W = self.params[name]
            loss = loss + 0.5 * reg * xp.sum(W * W)
            grads[name] = grads[name] + reg * W
        return loss

    def device_params(self) -> dict[str, Any]:
        """``self.params``, after moving any host arrays a user assigned to the device."""
        be = self.backend
        for name, value in self.params.items():
            if not be.owns(value):
                self.params[name] = be.asarray(value)
        return self.params


def qualified_name(cls: type) -> str:
    """'xpnet.classifiers.fc_net.FullyConnectedNet': how model files name a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def registered_models() -> dict[str, type[Model]]:
    """Every model class defined so far, by qualified name."""
    return dict(_REGISTRY)


def model_class(name: str, source: str = "the file") -> type[Model]:
    """The model class called ``name`` (qualified, or the bare name of a built-in).

    Classes of xpnet's own modules are imported on demand; any other class must
    have been defined (its module imported) before, as with pickle, but nothing
    is imported from a name read in a file outside ``xpnet``.
    """
    cls = _REGISTRY.get(name)
    if cls is None and name.startswith("xpnet.") and "." in name:
        module = name.rsplit(".", 1)[0]
        try:
            importlib.import_module(module)
        except ImportError:
            pass
        cls = _REGISTRY.get(name)
    if cls is None and "." not in name:  # old files: the bare class name
        importlib.import_module("xpnet.classifiers")
        matches = [c for q, c in _REGISTRY.items() if q.rsplit(".", 1)[-1] == name]
        cls = matches[0] if len(matches) == 1 else None
    if cls is None:
        raise CheckpointError(
            f"{source} holds a model of class {name}, which is not defined in this "
            "process; import the module that defines it first")
    return cls
