"""The Solver: minibatch training of a model with an update rule.

Follows the CS231n ``Solver`` and adds what training on a GPU needs: the data
set is put on the model's backend once, minibatches are gathered there, and
losses stay on the device until they are fetched in bulk at print points and
epoch ends. Checkpoints are written atomically and hold everything needed to
resume, including the random stream, so a resumed run ends with the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import signal
import threading
import warnings
from collections.abc import Callable
from typing import Any

from . import checkpoint, optim, schedules
from ._ops import checks
from ._ops.allocator import reuse_freed_memory
from ._ops.capture import CAPTURABLE_RULES, CapturableUpdate, LossBuffer
from ._ops.counter_random import CounterStream
from ._ops.flat import FlatParams
from .augment import flip_horizontal
from .backend import Backend, RandomStream, backend_of, get_backend, to_numpy
from .errors import CheckpointError, InputError, MissingKeyError, TrainingDivergedError
from .host import as_host, gather_rows, host_rows

__all__ = ["Solver", "TrainingDivergedError"]

_DATA_KEYS = ("X_train", "y_train", "X_val", "y_val")


class Solver:
    """Train a classification model with minibatch gradient descent.

    Parameters
    ----------
    model : object
        Has ``params`` (dict of arrays) and ``loss(X, y=None)`` returning
        scores, or ``(loss, grads)`` with grads keyed like params; optionally
        ``backend`` (else the backend of its first parameter).
    data : dict
        ``X_train, y_train, X_val, y_val`` (host or device arrays).
    update_rule : str or callable
        ``'sgd'``, ``'sgd_momentum'``, ``'rmsprop'``, ``'adam'``, ``'adagrad'``
        or a function ``rule(w, dw, config) -> (next_w, config)``.
    optim_config : dict
        Hyperparameters given to the rule (a copy per parameter).
    lr_decay : float
        ``learning_rate`` is multiplied by this after every epoch.
    batch_size, num_epochs : int
    num_train_samples : int
        Training samples used to measure training accuracy (None for all).
    num_val_samples : int or None
        Validation samples used to measure accuracy (None for all).
    checkpoint_name : str, optional
        Save ``{checkpoint_name}_epoch_{n}.npz`` after every epoch.
    print_every : int
        Print (and fetch the losses from the device) every this many iterations.
    verbose : bool
    seed : int, optional
        Seeds the Solver's own random stream (minibatches, dropout masks,
        accuracy subsamples); default fresh entropy. Two Solvers never share a
        stream, in one thread or several.
    callback : callable, optional
        ``callback(solver, event)`` with event ``'iteration'`` after every
        step and ``'epoch'`` after every accuracy check; for progress bars.
    lr_schedule : str or callable, optional
        A per-iteration learning-rate schedule (:mod:`xpnet.schedules`: a name
        such as ``'cosine'`` or a callable ``(iteration, total) -> factor``):
        before every step the learning rate is ``learning_rate * factor *
        lr_decay ** epoch``. None (the default) keeps the course's per-epoch decay.
    augment : callable, optional
        ``augment(X_batch, stream) -> X_batch``, e.g.
        :class:`xpnet.augment.RandomCropFlip`, applied to every training minibatch
        on the device with the Solver's random stream (the data set is not changed).
    test_time_flip : bool
        :meth:`check_accuracy` averages the scores of each image and its mirror.
    device_random : bool
        Draw minibatches and dropout masks from a counter-based stream computed
        on the device (:mod:`xpnet._ops.counter_random`): the same run on every
        backend. Default: the library's own generator.
    capturable : bool
        Keep the step capture-ready: device random stream, learning rate and
        Adam's step count as device scalars, losses in a device buffer, no host
        input or synchronization inside the step (what replaying it as a CUDA
        graph needs). Where the rule or settings cannot run so, the Solver says
        why in one warning and runs the ordinary step.
    data_on_device : bool or 'auto'
        Put the training set on the device once (True), or keep it on the host
        and move one minibatch per step (False); 'auto' keeps it on the host only
        when the device reports too little free memory for it.
    """

    def __init__(
        self,
        model: Any,
        data: dict,
        update_rule: str | Callable = "sgd",
        optim_config: dict | None = None,
        lr_decay: float = 1.0,
        batch_size: int = 100,
        num_epochs: int = 10,
        num_train_samples: int | None = 1000,
        num_val_samples: int | None = None,
        checkpoint_name: str | None = None,
        print_every: int = 10,
        verbose: bool = True,
        *,
        seed: int | None = None,
        callback: Callable[[Solver, str], None] | None = None,
        lr_schedule: str | Callable[[int, int], float] | None = None,
        augment: Callable[[Any, Any], Any] | None = None,
        test_time_flip: bool = False,
        device_random: bool = False,
        capturable: bool = False,
        data_on_device: bool | str = "auto",
    ) -> None:
        self.model = model
        self.backend: Backend = _backend_of_model(model)
        self.update_rule_name = update_rule if isinstance(update_rule, str) else None
        self.update_rule = optim.get_update_rule(update_rule)
        # built-in rules update the Solver's own copies of the parameters in place
        self._inplace_update = optim.inplace_update(self.update_rule)
        self._inplace_for = self.update_rule
        self._owned: dict[str, Any] = {}
        self._flat: FlatParams | None = None
        self.optim_config = dict(optim_config or {})
        self.lr_decay = lr_decay
        self.lr_schedule = schedules.get_schedule(lr_schedule)
        if self.lr_schedule is not None and "learning_rate" not in self.optim_config:
            raise InputError("Solver: lr_schedule scales optim_config['learning_rate']; "
                             "give one")
        self.augment = augment
        self.test_time_flip = bool(test_time_flip)
        self.batch_size = checks.positive_int(batch_size, "batch_size", "Solver")
        self.num_epochs = checks.positive_int(num_epochs, "num_epochs", "Solver")
        self.num_train_samples = num_train_samples
        self.num_val_samples = num_val_samples
        self.checkpoint_name = checkpoint_name
        self.print_every = checks.positive_int(print_every, "print_every", "Solver")
        self.verbose = verbose
        self.callback = callback
        self.capture_problem = self._capture_problem() if capturable else None
        if capturable and self.capture_problem:
            warnings.warn(f"Solver: the step runs uncaptured: {self.capture_problem}",
                          stacklevel=2)
        self.capturable = bool(capturable) and self.capture_problem is None
        #: the Solver's own random stream (active while it trains or evaluates)
        self.random: RandomStream | CounterStream = (
            CounterStream(self.backend, seed) if device_random or self.capturable
            else self.backend.new_stream(seed))

        if self.backend.on_host:  # the step's temporaries reuse heap memory (glibc)
            reuse_freed_memory()
        self.data_on_device = self._resident(data, data_on_device)
        self.X_train, self.y_train, self.X_val, self.y_val = self._put_data(data)
        rows = (self.X_train.shape[0], -1)
        self._X_rows = (self.backend.xp.reshape(self.X_train, rows) if self.data_on_device
                        else host_rows(self.X_train))
        self._reset()

    # -- set-up --------------------------------------------------------------
    def _capture_problem(self) -> str | None:
        """Why the step cannot be kept capture-ready, or None."""
        if self.update_rule_name not in CAPTURABLE_RULES:
            return (f"update rule {self.update_rule_name or self.update_rule!r} is not one of "
                    f"the built-in rules {', '.join(CAPTURABLE_RULES)}")
        if self.lr_schedule is not None:
            return "a per-iteration lr_schedule sets the learning rate from the host"
        dtypes = {str(v.dtype) for v in self.model.params.values()}
        if len(dtypes) != 1:
            return f"the parameters have several dtypes ({', '.join(sorted(dtypes))})"
        return None

    def _resident(self, data: dict, choice: bool | str) -> bool:
        """Whether the training set goes to the device (see ``data_on_device``)."""
        if choice != "auto":
            return bool(choice)
        free = self.backend.free_memory()
        if free is None:
            return True
        need = getattr(data["X_train"], "nbytes", 0)
        return need < 0.5 * free

    def _put_data(self, data: dict) -> tuple:
        missing = [k for k in _DATA_KEYS if k not in data]
        if missing:
            raise MissingKeyError(f"Solver: data is missing {', '.join(missing)}")
        be = self.backend
        num_classes = getattr(self.model, "num_classes", None)
        dtype = getattr(self.model, "dtype", None)
        arrays = []
        for split in ("train", "val"):
            if split == "train" and not self.data_on_device:
                X = as_host(data["X_train"], dtype)
            else:
                X = be.asarray(data[f"X_{split}"])
            y = be.asarray(data[f"y_{split}"])
            if y.ndim != 1 or X.shape[0] != y.shape[0]:
                raise InputError(
                    f"Solver: X_{split} has {X.shape[0]} samples but y_{split} has shape "
                    f"{checks.shape_str(y.shape)}; they must match"
                )
            if X.shape[0] == 0:
                raise InputError(f"Solver: X_{split} is empty")
            checks.check_label_dtype(be.xp, y, f"Solver (y_{split})")
            if num_classes is not None:
                checks.check_label_range(be.xp, y, num_classes, f"Solver (y_{split})")
            if dtype is not None and be.owns(X) and X.dtype != dtype:
                X = be.xp.astype(X, dtype)
            arrays += [X, y]
        return tuple(arrays)

    def _reset(self) -> None:
        self.epoch = 0
        self.iteration = 0
        self.best_val_acc = 0.0
        self.best_params: dict[str, Any] = {}
        self.best_buffers: dict[str, Any] = {}
        self._loss_history: list[float] = []
        self._pending_losses: list[Any] = []
        self._capture: CapturableUpdate | None = None
        self._loss_buffer: LossBuffer | None = None
        if self.capturable:
            xp, be = self.backend.xp, self.backend
            first = next(iter(self.model.params.values()))
            self._capture = CapturableUpdate(xp, self.update_rule_name, first.dtype, be.device,
                                             self.optim_config)
            capacity = min(self.print_every, self.iterations_per_epoch) + 1
            self._loss_buffer = LossBuffer(xp, capacity, first.dtype, be.device)
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.optim_configs = {p: self._config_copy() for p in self.model.params}

    def _config_copy(self) -> dict:
        """A parameter's own copy of ``optim_config`` (arrays copied, as they may be
        updated in place)."""
        xp = self.backend.xp
        return {k: xp.asarray(v, copy=True) if self.backend.owns(v) else v
                for k, v in self.optim_config.items()}

    # -- properties ------------------------------------------------------------
    @property
    def loss_history(self) -> list[float]:
        """The loss of every iteration so far (fetched from the device on access)."""
        self._flush_losses()
        return self._loss_history

    @property
    def iterations_per_epoch(self) -> int:
        return max(self.X_train.shape[0] // self.batch_size, 1)

    @property
    def num_iterations(self) -> int:
        return self.num_epochs * self.iterations_per_epoch

    # -- training ----------------------------------------------------------------
    def _step(self) -> None:
        xp = self.backend.xp
        idx = self.random.integers(self.X_train.shape[0], self.batch_size)
        X_batch = self._gather(idx)
        y_batch = xp.take(self.y_train, idx, axis=0)
        if self.augment is not None:
            X_batch = self.augment(X_batch, self.random)
        if self.lr_schedule is not None:
            self._schedule_learning_rate()
        loss, grads = self.model.loss(X_batch, y_batch)
        if self._capture is not None:
            buffer = self._loss_buffer
            if buffer.count == buffer.capacity:  # steps run without train()'s flushes
                self._flush_losses()
            buffer.record(loss)
            self._capture.begin_step()
            self._update_one_by_one(self._capture.update, self.model.params, grads)
            return
        self._pending_losses.append(loss)
        self._update(grads)

    def _gather(self, idx: Any) -> Any:
        """The minibatch ``idx``: rows of the (N, D) view of the training set, on the
        device, or gathered on the host and moved (data not on the device)."""
        shape = (int(idx.shape[0]), *self.X_train.shape[1:])
        if self.data_on_device:
            return self.backend.xp.reshape(self.backend.xp.take(self._X_rows, idx, axis=0),
                                           shape)
        return self.backend.asarray(gather_rows(self._X_rows, idx, shape))

    def _update(self, grads: dict[str, Any]) -> None:
        """Apply the update rule to every parameter.

        Built-in rules update in place the parameters the Solver owns. On NumPy,
        PyTorch and CuPy the parameters and the rule's state are views of one flat
        buffer per dtype (:mod:`xpnet._ops.flat`): PyTorch and CuPy update all of
        them in one call (one fused kernel instead of one per parameter); NumPy
        updates view by view, which spares the gradients' copy into a flat buffer
        (measured faster there: its update is memory bound either way). Elsewhere
        the Solver updates its own copies one by one. Other rules run as the
        course's, returning new arrays.
        """
        params = self.model.params
        if self.update_rule is not self._inplace_for:  # a rule assigned after __init__
            self._inplace_update = optim.inplace_update(self.update_rule)
            self._inplace_for = self.update_rule
            self._flat = None
        update = self._inplace_update
        if update is None:
            for name, w in params.items():
                params[name], self.optim_configs[name] = self.update_rule(
                    w, grads[name], self.optim_configs[name])
            return
        keys = optim.STATE_KEYS[self.update_rule]
        flat = self._flat
        if flat is None or not flat.current(params, self.optim_configs):
            # pack copies: arrays the Solver did not make (the model's initial ones,
            # best_params restored, one a user assigned) are never changed
            flat = self._flat = FlatParams.build(self.backend.xp, self.backend.name, params,
                                                 self.optim_configs, keys)
        if flat is None:
            self._update_one_by_one(update, params, grads)
            return
        if not flat.fused:
            for name, w in params.items():
                self.optim_configs[name] = update(w, grads[name], self.optim_configs[name])
            return
        flat.load_grads(grads)
        first = self.optim_configs[flat.groups[0].names[0]]
        scalars = {k: v for k, v in first.items() if k not in keys}
        for group in flat.groups:
            config = update(group.w, group.dw, {**scalars, **group.state})
        scalars = {k: v for k, v in config.items() if k not in keys}
        for config in self.optim_configs.values():
            config.update(scalars)  # Adam's t

    def _update_one_by_one(self, update: Callable, params: dict, grads: dict) -> None:
        xp = self.backend.xp
        owned, configs = self._owned, self.optim_configs
        for name, w in params.items():
            if owned.get(name) is not w:
                # a parameter the Solver did not make: take a copy to own
                w = params[name] = owned[name] = xp.asarray(w, copy=True)
            result = update(w, grads[name], configs[name])
            if result is not None:
                configs[name] = result

    def _schedule_learning_rate(self) -> None:
        """Set every parameter's learning rate for the coming step from the schedule."""
        factor = self.lr_schedule(self.iteration, self.num_iterations)
        lr = self.optim_config["learning_rate"] * factor * self.lr_decay ** self.epoch
        for config in self.optim_configs.values():
            config["learning_rate"] = lr

    def _flush_losses(self) -> None:
        """Fetch pending losses in one transfer; stop if one is not finite."""
        if self._loss_buffer is not None and self._loss_buffer.count:
            values = [float(v) for v in to_numpy(self._loss_buffer.take())]
        elif self._pending_losses:
            values = [float(v) for v in to_numpy(self.backend.xp.stack(self._pending_losses))]
        else:
            return
        first = len(self._loss_history)
        self._pending_losses = []
        self._loss_history.extend(values)
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                self._diverged(first + offset + 1, value)

    def _diverged(self, iteration: int, value: float) -> None:
        lr = self.optim_config.get("learning_rate")
        if self.best_params:
            self.model.params = dict(self.best_params)
        saved = (f"; the last good checkpoint is {self._epoch_checkpoint(self.epoch)}"
                 if self.checkpoint_name and self.epoch > 0 else "")
        raise TrainingDivergedError(
            f"the training loss became {value} at iteration {iteration}; lower the learning "
            f"rate (it was {lr if lr is not None else 'the rule default'}) or the weight "
            f"scale and train again; the model keeps the best parameters so far{saved}"
        )

    def _print(self, message: str) -> None:
        if self.verbose:
            print(message, flush=True)

    def train(self) -> None:
        """Run (or continue) the optimization for ``num_epochs`` epochs.

        A Ctrl-C finishes the current step, saves ``{checkpoint_name}_interrupted.npz``
        when checkpointing, and then raises ``KeyboardInterrupt``.
        """
        with _DeferredInterrupt() as interrupt, self.random.active():
            while self.iteration < self.num_iterations:
                t = self.iteration
                self._step()
                self.iteration += 1
                if t % self.print_every == 0:
                    self._flush_losses()
                    self._print(f"(Iteration {t + 1} / {self.num_iterations}) "
                                f"loss: {self._loss_history[-1]:f}")
                epoch_end = self.iteration % self.iterations_per_epoch == 0
                if epoch_end:
                    self.epoch += 1
                    if self.lr_schedule is None:
                        for config in self.optim_configs.values():
                            if "learning_rate" in config:
                                config["learning_rate"] *= self.lr_decay
                        if self._capture is not None:  # between steps: a device write
                            self._capture.set_learning_rate(
                                self._capture.config["learning_rate"] * self.lr_decay)
                if t == 0 or epoch_end or self.iteration == self.num_iterations:
                    self._end_of_epoch_check()
                if self.callback is not None:
                    self.callback(self, "iteration")
                if interrupt.requested:
                    self._flush_losses()
                    if self.checkpoint_name:
                        self.save_checkpoint(f"{self.checkpoint_name}_interrupted.npz")
                    raise KeyboardInterrupt
        self._flush_losses()
        if self.best_params:
            self.model.params = dict(self.best_params)
            self._owned = {}  # the next step copies the restored parameters

    def _end_of_epoch_check(self) -> None:
        self._flush_losses()
        train_acc = self.check_accuracy(self.X_train, self.y_train,
                                        num_samples=self.num_train_samples)
        val_acc = self.check_accuracy(self.X_val, self.y_val, num_samples=self.num_val_samples)
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        self._print(f"(Epoch {self.epoch} / {self.num_epochs}) train acc: {train_acc:f}; "
                    f"val_acc: {val_acc:f}")
        if val_acc > self.best_val_acc or not self.best_params:
            self.best_val_acc = max(val_acc, self.best_val_acc)
            xp = self.backend.xp
            self.best_params = {k: xp.asarray(v, copy=True) for k, v in self.model.params.items()}
            self.best_buffers = {k: xp.asarray(v, copy=True)
                                 for k, v in _buffers(self.model).items()}
        if self.callback is not None:
            self.callback(self, "epoch")
        if self.checkpoint_name and self.iteration % self.iterations_per_epoch == 0 \
                and self.iteration > 0:
            self.save_checkpoint(self._epoch_checkpoint(self.epoch))

    def _epoch_checkpoint(self, epoch: int) -> str:
        return f"{self.checkpoint_name}_epoch_{epoch}.npz"

    # -- evaluation ----------------------------------------------------------------
    def check_accuracy(self, X: Any, y: Any, num_samples: int | None = None,
                       batch_size: int = 100) -> float:
        """Fraction of ``X`` classified as ``y`` (on a random subsample if asked).

        Parameters
        ----------
        X, y : arrays (host or device)
        num_samples : int, optional
            Subsample this many points (with replacement) when X has more.
        batch_size : int
            Predict in batches of this size.
        """
        be = self.backend
        xp = be.xp
        on_host = X is self.X_train and not self.data_on_device  # moved batch by batch
        X = X if on_host else be.asarray(X)
        y = be.asarray(y)
        n = X.shape[0]
        if num_samples is not None and n > num_samples:
            idx = self.random.integers(n, num_samples)
            y = xp.take(y, idx, axis=0)
            if on_host:
                X = gather_rows(host_rows(X), idx, (num_samples, *X.shape[1:]))
            else:
                X = xp.take(X, idx, axis=0)
            n = num_samples
        flip = self.test_time_flip and X.ndim == 4
        correct = None
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            batch = be.asarray(X[start:stop, ...]) if on_host else X[start:stop, ...]
            scores = self.model.loss(batch)
            if flip:
                scores = scores + self.model.loss(flip_horizontal(batch))
            hits = xp.sum(xp.astype(xp.argmax(scores, axis=1) == y[start:stop], xp.int64))
            correct = hits if correct is None else correct + hits
        return float(correct) / n

    # -- checkpoints -----------------------------------------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Everything needed to resume: ``(host arrays, header)`` of a checkpoint file
        (see :mod:`xpnet.checkpoint`)."""
        self._flush_losses()
        model = self.model
        arrays: dict[str, Any] = {f"params/{k}": to_numpy(v) for k, v in model.params.items()}
        arrays.update({f"buffers/{k}": to_numpy(v) for k, v in _buffers(model).items()})
        arrays.update({f"best/params/{k}": to_numpy(v) for k, v in self.best_params.items()})
        arrays.update({f"best/buffers/{k}": to_numpy(v) for k, v in self.best_buffers.items()})
        if self._capture is not None:  # the device scalars, as the ordinary step keeps them
            for config in self.optim_configs.values():
                config["learning_rate"] = self._capture.config["learning_rate"]
                if self._capture.rule == "adam":
                    config["t"] = self._capture.host_t()
        scalars: dict[str, dict[str, Any]] = {}
        for name, config in self.optim_configs.items():
            scalars[name] = {}
            for key, value in config.items():
                if isinstance(value, (int, float, str, bool)) or value is None:
                    scalars[name][key] = value
                else:
                    arrays[f"optim/{name}/{key}"] = to_numpy(value)
        meta = {
            "model": _model_meta(model),
            "solver": {
                "update_rule": self.update_rule_name,
                "optim_scalars": scalars,
                "lr_decay": self.lr_decay,
                "batch_size": self.batch_size,
                "num_epochs": self.num_epochs,
                "epoch": self.epoch,
                "iteration": self.iteration,
                "best_val_acc": self.best_val_acc,
                "loss_history": self._loss_history,
                "train_acc_history": self.train_acc_history,
                "val_acc_history": self.val_acc_history,
            },
            "rng": self.random.state(),
        }
        return arrays, meta

    def save_checkpoint(self, path: str) -> str:
        """Write the solver's state to ``path`` (``.npz``) atomically."""
        arrays, meta = self.state()
        return str(checkpoint.write(path, arrays, meta, "solver"))

    def load_checkpoint(self, path: str) -> None:
        """Restore a state saved by :meth:`save_checkpoint`; ``train()`` then resumes.

        Reads every format version (see :mod:`xpnet.checkpoint`).

        Raises
        ------
        CheckpointError
            When the file cannot be read, is not a Solver checkpoint, or was
            made for a model of another architecture.
        """
        arrays, meta = checkpoint.read(path)
        if meta["kind"] != "solver" or not isinstance(meta.get("solver"), dict):
            raise CheckpointError(f"{path} holds a saved model, not a Solver checkpoint; "
                                  "load it with xpnet.load_model instead")
        source = f"checkpoint {path}"
        checkpoint.load_state(self.model, arrays, source=source)
        be = self.backend
        self._owned = {}
        self.best_params = {k: be.asarray(v)
                            for k, v in checkpoint.split(arrays, "best/params/").items()}
        self.best_buffers = {k: be.asarray(v)
                             for k, v in checkpoint.split(arrays, "best/buffers/").items()}
        state = meta["solver"]
        self.optim_configs = {}
        for name, scalars in state["optim_scalars"].items():
            config = dict(scalars)
            config.update({k: be.asarray(v)
                           for k, v in checkpoint.split(arrays, f"optim/{name}/").items()})
            self.optim_configs[name] = config
        self.epoch = state["epoch"]
        self.iteration = state["iteration"]
        self.best_val_acc = state["best_val_acc"]
        self._loss_history = list(state["loss_history"])
        self._pending_losses = []
        self.train_acc_history = list(state["train_acc_history"])
        self.val_acc_history = list(state["val_acc_history"])
        if meta.get("rng"):
            self.random.set_state(meta["rng"])
        if self._capture is not None and self.optim_configs:
            first = next(iter(self.optim_configs.values()))
            if "learning_rate" in first:
                self._capture.set_learning_rate(first["learning_rate"])
            self._capture.set_host_t(int(first.get("t", 0)))
            self._loss_buffer.take()


def _buffers(model: Any) -> dict[str, Any]:
    """A model's buffers (none for a model without the protocol's ``buffers``)."""
    return dict(getattr(model, "buffers", None) or {})


def _model_meta(model: Any) -> dict[str, Any]:
    try:
        return checkpoint.model_meta(model)
    except (AttributeError, NotImplementedError):  # a duck-typed model: no config
        return {"class": f"{type(model).__module__}.{type(model).__qualname__}", "config": None}


def _backend_of_model(model: Any) -> Backend:
    backend = getattr(model, "backend", None)
    if backend is not None:
        return get_backend(backend)
    return backend_of(next(iter(model.params.values())))


class _DeferredInterrupt:
    """Turn Ctrl-C into a flag checked between steps (main thread only)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum, frame) -> None:
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
