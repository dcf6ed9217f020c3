"""The Solver: minibatch training of a model with an update rule.

Follows the CS231n ``Solver`` and adds what training on a GPU needs: the data
set is put on the model's backend once, minibatches are gathered there, and
losses stay on the device until they are fetched in bulk at print points and
epoch ends. Checkpoints are written atomically and hold everything needed to
resume, including the random stream, so a resumed run ends with the same
weights as an uninterrupted one. The work is done by :mod:`xpnet.training`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from . import optim, schedules
from ._ops import checks
from ._ops.allocator import reuse_freed_memory
from ._ops.capture import LossBuffer
from ._ops.counter_random import CounterStream
from .backend import RandomStream, backend_of, get_backend
from .errors import TrainingDivergedError
from .training import checkpoints, evaluation, updates
from .training.batches import Batches
from .training.interrupt import DeferredInterrupt
from .training.losses import LossLog
from .training.rate import LearningRate

__all__ = ["Solver", "TrainingDivergedError"]


class Solver:
    """Train a classification model with minibatch gradient descent.

    Parameters
    ----------
    model : object
        Has ``params`` (dict of arrays) and ``loss(X, y=None)`` returning scores, or
        ``(loss, grads)`` with grads keyed like params; optionally ``backend`` (else the
        backend of its first parameter) and ``buffers`` / ``load_buffers``.
    data : dict
        ``X_train, y_train, X_val, y_val`` (host or device arrays).
    update_rule : str or callable
        ``'sgd'``, ``'sgd_momentum'``, ``'rmsprop'``, ``'adam'``, ``'adagrad'`` or a
        function ``rule(w, dw, config) -> (next_w, config)``; may be reassigned later.
    optim_config : dict
        Hyperparameters given to the rule (a copy per parameter).
    lr_decay : float
        ``learning_rate`` is multiplied by this after every epoch.
    batch_size, num_epochs : int
    num_train_samples, num_val_samples : int or None
        Samples used to measure training / validation accuracy (None for all).
    checkpoint_name : str, optional
        Save ``{checkpoint_name}_epoch_{n}.npz`` after every epoch.
    print_every : int
        Print (and fetch the losses from the device) every this many iterations.
    verbose : bool
    seed : int, optional
        Seeds the Solver's own random stream (minibatches, dropout masks, accuracy
        subsamples); default fresh entropy. Two Solvers never share a stream.
    callback : callable, optional
        ``callback(solver, event)`` with event ``'iteration'`` after every step and
        ``'epoch'`` after every accuracy check; for progress bars.
    lr_schedule : str or callable, optional
        A per-iteration schedule (:mod:`xpnet.schedules`, a name or ``(iteration,
        total) -> factor``): the learning rate of every step is ``learning_rate *
        factor * lr_decay ** epoch``. None keeps the course's per-epoch decay.
    augment : callable, optional
        ``augment(X_batch, stream) -> X_batch`` (e.g. :class:`xpnet.augment.RandomCropFlip`)
        applied to every training minibatch on the device with the Solver's stream.
    test_time_flip : bool
        :meth:`check_accuracy` averages the scores of each image and its mirror.
    device_random : bool
        Draw minibatches and dropout masks from a counter-based stream computed on the
        device (:mod:`xpnet._ops.counter_random`): the same run on every backend.
    capturable : bool
        Keep the step capture-ready (what replaying it as a CUDA graph needs): device
        random stream, learning rate and Adam's step count as device scalars, losses in
        a device buffer, nothing the step writes rebound, no host input or
        synchronization in the step. Where the rule or settings cannot run so
        (``data_on_device=False`` among them), one warning says why and the ordinary
        step runs.
    data_on_device : bool or 'auto'
        Put the training set on the device once (True), or keep it on the host and move
        one minibatch per step (False); 'auto' keeps it on the host only when the device
        reports too little free memory for it.
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
        self.backend = _backend_of_model(model)
        self.optim_config = dict(optim_config or {})
        self.lr_decay = lr_decay
        self.lr_schedule = schedules.get_schedule(lr_schedule)
        self.rate = LearningRate(self.optim_config, self.lr_schedule)
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
        if self.backend.on_host:  # the step's temporaries reuse heap memory (glibc)
            reuse_freed_memory()
        self.batches = Batches(self.backend, model, data, self.batch_size, data_on_device)
        self.data_on_device = self.batches.on_device
        self.X_train, self.y_train = self.batches.X_train, self.batches.y_train
        self.X_val, self.y_val = self.batches.X_val, self.batches.y_val
        rule = optim.get_update_rule(update_rule)
        self.capture_problem = updates.capture_problem(
            rule, self.lr_schedule, model.params, self.data_on_device) if capturable else None
        if capturable and self.capture_problem:
            warnings.warn(f"Solver: the step runs uncaptured: {self.capture_problem}",
                          stacklevel=2)
        self.capturable = bool(capturable) and self.capture_problem is None
        #: the Solver's own random stream (active while it trains or evaluates)
        self.random: RandomStream | CounterStream = (
            CounterStream(self.backend, seed) if device_random or self.capturable
            else self.backend.new_stream(seed))
        self._rule = rule
        self._reset()

    def _reset(self) -> None:
        """Counters, histories, the update strategy and fresh per-parameter configs."""
        self.epoch = 0
        self.iteration = 0
        self.best_val_acc = 0.0
        self.best_params: dict[str, Any] = {}
        self.best_buffers: dict[str, Any] = {}
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.optim_configs = updates.fresh_configs(self.backend, self.optim_config,
                                                   self.model.params)
        self.update_rule = self._rule
        buffer = None
        if self.capturable:
            dtype = next(iter(self.model.params.values())).dtype
            capacity = min(self.print_every, self.iterations_per_epoch) + 1
            buffer = LossBuffer(self.backend.xp, capacity, dtype, self.backend.device)
        self.losses = LossLog(self.backend.xp, buffer)

    # -- the update rule: its strategy is chosen when it is set -----------------
    @property
    def update_rule(self) -> Callable:
        return self._rule

    @update_rule.setter
    def update_rule(self, rule: str | Callable) -> None:
        self._rule = optim.get_update_rule(rule)
        if self.capturable and updates.rule_name(self._rule) is None:
            warnings.warn(f"Solver: the step runs uncaptured from now on: update rule "
                          f"{self._rule!r} is not a built-in rule", stacklevel=2)
            self.capturable = False
        #: how the rule is applied (:mod:`xpnet.training.updates`)
        self.updater = updates.choose(self.backend, self._rule, self.optim_config,
                                      self.model.params, self.capturable)

    @property
    def update_rule_name(self) -> str | None:
        return updates.rule_name(self._rule)

    @property
    def _inplace_update(self) -> Callable | None:
        return self.updater.in_place

    # -- properties ---------------------------------------------------------------
    @property
    def loss_history(self) -> list[float]:
        """The loss of every iteration so far (fetched from the device on access)."""
        self._flush_losses()
        return self.losses.history

    @property
    def iterations_per_epoch(self) -> int:
        return max(self.X_train.shape[0] // self.batch_size, 1)

    @property
    def num_iterations(self) -> int:
        return self.num_epochs * self.iterations_per_epoch

    # -- training -------------------------------------------------------------------
    def _step(self) -> None:
        """One update from one minibatch (the course's name; notebooks call it)."""
        X_batch, y_batch = self.batches.draw(self.random)
        if self.augment is not None:
            X_batch = self.augment(X_batch, self.random)
        new_rate = self.rate.before_step(self.iteration, self.num_iterations, self.epoch,
                                         self.lr_decay)
        if new_rate is not None:
            self.updater.set_learning_rate(self.optim_configs, new_rate)
        loss, grads = self.model.loss(X_batch, y_batch)
        if self.losses.full:  # steps run without train()'s flushes
            self._flush_losses()
        self.losses.record(loss)
        self.updater.apply(self.model.params, grads, self.optim_configs)

    def _flush_losses(self) -> None:
        """Fetch pending losses in one transfer; stop if one is not finite."""
        bad = self.losses.flush()
        if bad is not None:
            iteration, value = bad
            lr = self.optim_config.get("learning_rate")
            self._restore_best()
            saved = (f"; the last good checkpoint is {self._epoch_checkpoint(self.epoch)}"
                     if self.checkpoint_name and self.epoch > 0 else "")
            raise TrainingDivergedError(
                f"the training loss became {value} at iteration {iteration}; lower the "
                f"learning rate (it was {lr if lr is not None else 'the rule default'}) or "
                f"the weight scale and train again; the model keeps the best parameters so "
                f"far{saved}")

    def _restore_best(self) -> None:
        """The best parameters and buffers so far back into the model."""
        if self.best_params:
            self.updater.restore(self.model.params, self.best_params)
            checkpoints.restore_buffers(self.model, self.best_buffers, self.backend)

    def _print(self, message: str) -> None:
        if self.verbose:
            print(message, flush=True)

    def train(self) -> None:
        """Run (or continue) the optimization for ``num_epochs`` epochs; the model ends
        with the parameters and buffers of the best validation accuracy.

        A Ctrl-C finishes the current step, saves ``{checkpoint_name}_interrupted.npz``
        when checkpointing, and then raises ``KeyboardInterrupt``.
        """
        with DeferredInterrupt() as interrupt, self.random.active():
            while self.iteration < self.num_iterations:
                t = self.iteration
                self._step()
                self.iteration += 1
                if t % self.print_every == 0:
                    self._flush_losses()
                    self._print(f"(Iteration {t + 1} / {self.num_iterations}) "
                                f"loss: {self.losses.history[-1]:f}")
                epoch_end = self.iteration % self.iterations_per_epoch == 0
                if epoch_end:
                    self.epoch += 1
                    new_rate = self.rate.after_epoch(self.lr_decay)
                    if new_rate is not None:
                        self.updater.set_learning_rate(self.optim_configs, new_rate)
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
        self._restore_best()

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
                                 for k, v in checkpoints.buffers_of(self.model).items()}
        if self.callback is not None:
            self.callback(self, "epoch")
        if self.checkpoint_name and epoch_done(self):
            self.save_checkpoint(self._epoch_checkpoint(self.epoch))

    def _epoch_checkpoint(self, epoch: int) -> str:
        return f"{self.checkpoint_name}_epoch_{epoch}.npz"

    # -- evaluation and checkpoints ----------------------------------------------------
    def check_accuracy(self, X: Any, y: Any, num_samples: int | None = None,
                       batch_size: int = 100) -> float:
        """Fraction of ``X`` classified as ``y``, on a random subsample of ``num_samples``
        (with replacement) when X has more; predicts ``batch_size`` at a time."""
        return evaluation.accuracy(self.model, self.backend, X, y, num_samples, batch_size,
                                   stream=self.random, flip=self.test_time_flip,
                                   host=self.batches.on_host(X))

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Everything needed to resume: ``(host arrays, header)`` of a checkpoint file."""
        return checkpoints.state(self)

    def save_checkpoint(self, path: str) -> str:
        """Write the solver's state to ``path`` (``.npz``) atomically."""
        return checkpoints.save(self, path)

    def load_checkpoint(self, path: str) -> None:
        """Restore a state saved by :meth:`save_checkpoint` (any format version);
        ``train()`` then resumes.

        Raises
        ------
        CheckpointError
            When the file cannot be read, is not a Solver checkpoint, or was saved with
            another update rule or kind of random stream (it would follow another
            trajectory).
        InputError
            When it was made for a model of another architecture.
        """
        checkpoints.load(self, path)


def epoch_done(solver: Solver) -> bool:
    return solver.iteration > 0 and solver.iteration % solver.iterations_per_epoch == 0


def _backend_of_model(model: Any):
    backend = getattr(model, "backend", None)
    if backend is not None:
        return get_backend(backend)
    return backend_of(next(iter(model.params.values())))
