"""The Solver: minibatch training of a model with an update rule.

Follows the CS231n ``Solver`` and adds what training on a GPU needs: the data
set is put on the model's backend once, minibatches are gathered there, and
losses stay on the device until they are fetched in bulk at print points and
epoch ends. Checkpoints are written atomically and hold everything needed to
resume, including the random stream, so a resumed run ends with the same
weights as an uninterrupted one. The collaborators are in :mod:`xpnet.training`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from . import optim, schedules
from ._ops import checks
from ._ops.allocator import reuse_freed_memory
from ._ops.counter_random import CounterStream
from .backend import RandomStream, backend_of, get_backend
from .backend.graphs import GraphedStep
from .errors import InputError, TrainingDivergedError
from .training import checkpoints, evaluation, updates
from .training.batches import Batches
from .training.groups import GroupedUpdate, ParamGroups
from .training.interrupt import DeferredInterrupt
from .training.losses import LossLog, diverged
from .training.parallel import DataParallel
from .training.rate import LearningRate
from .tta import TTA_LEVELS

__all__ = ["Solver", "TrainingDivergedError"]


class Solver:
    """Train a classification model with minibatch gradient descent.

    Parameters
    ----------
    model : object
        ``params``, ``loss(X, y=None) -> scores or (loss, grads)``; optionally
        ``backend`` and ``buffers`` / ``load_buffers`` (running statistics).
    data : dict
        ``X_train, y_train, X_val, y_val`` (host or device arrays).
    update_rule : str or callable
        ``'sgd'``, ``'sgd_momentum'``, ``'rmsprop'``, ``'adam'``, ``'adagrad'`` or
        ``rule(w, dw, config) -> (next_w, config)``; may be reassigned later.
    optim_config : dict
        Hyperparameters given to the rule (a copy per parameter).
    lr_decay : float
        ``learning_rate`` is multiplied by this after every epoch.
    batch_size, num_epochs, print_every, verbose
        Print (and fetch the losses) every ``print_every`` iterations when verbose.
    num_train_samples, num_val_samples : int or None
        Samples used to measure training / validation accuracy (None: all).
    checkpoint_name : str, optional
        Save ``{checkpoint_name}_epoch_{n}.npz`` after every epoch.
    seed : int, optional
        Seeds the Solver's own random stream (minibatches, dropout masks, subsamples).
    callback : callable, optional
        ``callback(solver, event)``: ``'iteration'`` after every step, ``'epoch'`` after
        every accuracy check.
    lr_schedule : str or callable, optional
        Per-iteration factor (:mod:`xpnet.schedules`, ``(iteration, total) -> factor``):
        each step's rate is ``learning_rate * factor * lr_decay ** epoch``.
    augment : callable, optional
        ``augment(X_batch, stream) -> X_batch`` for every training minibatch.
    test_time_flip : bool
        :meth:`check_accuracy` averages the scores of each image and its mirror.
    device_random : bool
        Draw from a counter-based device stream (:mod:`xpnet._ops.counter_random`).
    capturable : bool
        Keep the step capture-ready for a CUDA graph (:mod:`xpnet.training.updates`);
        where the rule or settings do not allow it, one warning says why. On torch
        with CUDA the step is then captured after three eager steps and replayed
        (:mod:`xpnet.backend.graphs`); where the capture fails, one warning says why
        and the step runs eagerly, on the same trajectory.
    data_on_device : bool or 'auto'
        Put the training set on the device once, or keep it on the host (moving one
        minibatch per step); 'auto': on the host when the device is short of memory.
    communicator : Communicator, optional
        Data-parallel training over the ranks of :func:`xpnet.distributed.init`:
        ``batch_size`` is the global batch, each rank computes the gradient of its
        slice and one all-reduce per step averages them (:mod:`xpnet.training.parallel`);
        rank 0 alone prints and writes checkpoints; evaluation is sharded.
    sync_batchnorm : bool
        With a communicator: batchnorm statistics over the global batch (else each
        rank's slice, as PyTorch's DDP).
    param_groups : list of dict, optional
        Per-group update rules and ``optim_config`` entries (:mod:`xpnet.training.groups`):
        ``[{"params": "*.beta", "learning_rate": 64 * lr}, {"params": is_filter,
        "update_rule": "muon", ...}]``; the first group that matches a parameter is its
        group, the others follow ``update_rule`` and ``optim_config``.
    test_time_augment : int
        :meth:`check_accuracy` averages the scores over test-time views
        (:mod:`xpnet.tta`): 0 none, 1 mirror (as ``test_time_flip``), 2 mirror and
        one-pixel translations.
    keep_best : bool
        :meth:`train` ends with the parameters of the best validation accuracy (default);
        False: with those of its last step (a fixed-length recipe, lookahead's average).
    after_step : callable, optional
        ``after_step(solver)`` right after every step of :meth:`train` (``iteration``
        counts it), before that step's accuracy check and ``callback``: a change to the
        weights there (:class:`xpnet.ema.Lookahead`) is what the check sees.
    """

    def __init__(self, model: Any, data: dict, update_rule: str | Callable = "sgd",
                 optim_config: dict | None = None, lr_decay: float = 1.0,
                 batch_size: int = 100, num_epochs: int = 10,
                 num_train_samples: int | None = 1000, num_val_samples: int | None = None,
                 checkpoint_name: str | None = None, print_every: int = 10,
                 verbose: bool = True, *, seed: int | None = None,
                 callback: Callable[[Solver, str], None] | None = None,
                 lr_schedule: str | Callable[[int, int], float] | None = None,
                 augment: Callable[[Any, Any], Any] | None = None,
                 test_time_flip: bool = False, device_random: bool = False,
                 capturable: bool = False, data_on_device: bool | str = "auto",
                 communicator: Any = None, sync_batchnorm: bool = False,
                 param_groups: list[dict] | None = None, test_time_augment: int = 0,
                 keep_best: bool = True,
                 after_step: Callable[[Solver], None] | None = None) -> None:
        self.model = model
        self.after_step = after_step
        #: the per-group rules and configs as given (None: one rule and config for all)
        self.param_groups = param_groups
        self.test_time_augment = checks.choice(test_time_augment, TTA_LEVELS,
                                               "test_time_augment", "Solver")
        self.keep_best = bool(keep_best)
        owner = getattr(model, "backend", None)
        self.backend = (get_backend(owner) if owner is not None
                        else backend_of(next(iter(model.params.values()))))
        self.optim_config = dict(optim_config or {})
        self.lr_decay = lr_decay
        self.lr_schedule = schedules.get_schedule(lr_schedule)
        self.rate = LearningRate(self.optim_config, self.lr_schedule)
        self.augment, self.test_time_flip = augment, bool(test_time_flip)
        self.batch_size = checks.positive_int(batch_size, "batch_size", "Solver")
        self.num_epochs = checks.positive_int(num_epochs, "num_epochs", "Solver")
        self.num_train_samples, self.num_val_samples = num_train_samples, num_val_samples
        self.checkpoint_name = checkpoint_name
        self.print_every = checks.positive_int(print_every, "print_every", "Solver")
        self.verbose, self.callback = verbose, callback
        if self.backend.on_host:  # the step's temporaries reuse heap memory (glibc)
            reuse_freed_memory()
        #: the data set, placed once, and its minibatches
        self.batches = Batches(self.backend, model, data, self.batch_size, data_on_device)
        self.data_on_device = self.batches.on_device
        #: the data-parallel part of the step (None: one process)
        self.parallel: DataParallel | None = None
        if communicator is not None:
            if capturable:
                raise InputError("Solver: capturable=True captures one process's step; "
                                 "data-parallel training (communicator=) runs it eagerly")
            self.parallel = DataParallel(communicator, self.backend, self.batch_size,
                                         sync_batchnorm)
            seed = self.parallel.agree_seed(seed)
            self.verbose = verbose and self.parallel.is_root
        self.X_train, self.y_train, self.X_val, self.y_val = self.batches.arrays
        self._rule = optim.get_update_rule(update_rule)
        if param_groups is not None:
            ParamGroups(param_groups, self._rule, self.optim_config)  # checked early
            if capturable:
                warnings.warn("Solver: the step runs uncaptured: param_groups give the "
                              "parameters several update configs", stacklevel=2)
                capturable = False
        self.capturable, self.capture_problem = updates.try_capture(
            self._rule, self.lr_schedule, model.params, self.data_on_device) \
            if capturable else (False, None)
        #: the Solver's own random stream (active while it trains or evaluates)
        self.random: RandomStream | CounterStream = (
            CounterStream(self.backend, seed) if device_random or self.capturable
            else self.backend.new_stream(seed))
        self._reset()
        if self.parallel is not None:
            self.parallel.start(self)

    def _reset(self) -> None:
        """Counters, histories, fresh per-parameter configs and the update strategy."""
        self.epoch = self.iteration = 0
        self.best_val_acc = 0.0
        self.best_params: dict[str, Any] = {}
        self.best_buffers: dict[str, Any] = {}
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.optim_configs = (
            updates.fresh_configs(self.backend, self.optim_config, self.model.params)
            if self.param_groups is None else
            ParamGroups(self.param_groups, self._rule, self.optim_config).fresh_configs(
                self.backend, self.model.params))
        self.update_rule = self._rule
        #: the losses, kept on the device until fetched (in one buffer when capturable)
        self.losses = LossLog.on(self.backend, next(iter(self.model.params.values())).dtype,
                                 min(self.print_every, self.iterations_per_epoch) + 1
                                 if self.capturable else None)

    @property
    def update_rule(self) -> Callable:
        return self._rule

    @update_rule.setter
    def update_rule(self, rule: str | Callable) -> None:
        """Setting the rule chooses how it is applied (:mod:`xpnet.training.updates`)."""
        self._rule = optim.get_update_rule(rule)
        if self.capturable and updates.rule_name(self._rule) is None:
            warnings.warn(f"Solver: the step runs uncaptured from now on: {self._rule!r} "
                          "is not a built-in update rule", stacklevel=2)
            self.capturable = False
        self.updater = (
            updates.choose(self.backend, self._rule, self.optim_config, self.model.params,
                           self.capturable) if self.param_groups is None else
            GroupedUpdate(self.backend, ParamGroups(self.param_groups, self._rule,
                                                    self.optim_config), self.model.params))
        self._new_graph()

    @property
    def update_rule_name(self) -> str | None:
        return updates.rule_name(self._rule)

    @property
    def _inplace_update(self) -> Callable | None:
        return self.updater.in_place

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

    # -- training ---------------------------------------------------------------------
    def _step(self) -> None:
        """One update from one minibatch (the course's name; notebooks call it)."""
        self.updater.set_learning_rate(self.optim_configs, self.rate.before_step(
            self.iteration, self.num_iterations, self.epoch, self.lr_decay))
        loss = self._graph() if self._graph is not None else self._update_from_batch()
        if self.losses.full:  # steps run without train()'s flushes
            self._flush_losses()
        self.losses.record(loss)

    def _update_from_batch(self) -> Any:
        """Gather, forward, backward, update: what a CUDA graph captures; the loss."""
        if self.parallel is not None:
            return self.parallel.step(self)
        if getattr(self.augment, "uses_indices", False):  # e.g. alternating flips
            X_batch, y_batch, idx = self.batches.draw_indexed(self.random)
            X_batch = self.augment(X_batch, self.random, indices=idx, epoch=self.epoch,
                                   num_samples=self.batches.num_train)
        else:
            X_batch, y_batch = self.batches.draw(self.random)
            if self.augment is not None:
                X_batch = self.augment(X_batch, self.random)
        loss, grads = self.model.loss(X_batch, y_batch)
        self.updater.apply(self.model.params, grads, self.optim_configs)
        return loss

    def _new_graph(self) -> None:
        """A capturable step on a library with CUDA graphs (torch on CUDA) is captured
        after a few eager steps and replayed (:mod:`xpnet.backend.graphs`)."""
        api = self.backend.graph_api() if self.capturable else None
        self._graph = GraphedStep(self._update_from_batch, api) if api is not None else None

    def _flush_losses(self) -> None:
        """Fetch pending losses in one transfer; stop if one is not finite."""
        bad = self.losses.flush()
        if bad is not None:
            checkpoints.restore_best(self)
            last = self.checkpoint_name and self.epoch > 0
            raise diverged(*bad, self.optim_config.get("learning_rate"),
                           self._epoch_checkpoint(self.epoch) if last else None)

    def train(self) -> None:
        """Run (or continue) the optimization for ``num_epochs`` epochs; the model ends
        with the parameters and buffers of the best validation accuracy.

        A Ctrl-C finishes the current step, saves ``{checkpoint_name}_interrupted.npz``
        when checkpointing, and then raises ``KeyboardInterrupt``.
        """
        with DeferredInterrupt() as interrupt, self.random.active():
            if self.parallel is not None:
                self.parallel.interrupt = interrupt
            while self.iteration < self.num_iterations:
                t = self.iteration
                self._step()
                self.iteration += 1
                if self.after_step is not None:
                    self.after_step(self)
                if t % self.print_every == 0:
                    self._flush_losses()
                    self._print(f"(Iteration {t + 1} / {self.num_iterations}) "
                                f"loss: {self.losses.history[-1]:f}")
                epoch_end = self.iteration % self.iterations_per_epoch == 0
                if epoch_end:
                    self.epoch += 1
                    self.updater.set_learning_rate(self.optim_configs,
                                                   self.rate.after_epoch(self.lr_decay))
                if t == 0 or epoch_end or self.iteration == self.num_iterations:
                    self._end_of_epoch_check(epoch_end)
                if self.callback is not None:
                    self.callback(self, "iteration")
                if (interrupt.requested if self.parallel is None
                        else self.parallel.stop_agreed(t % self.print_every == 0)):
                    self._flush_losses()
                    if self.checkpoint_name:
                        self.save_checkpoint(f"{self.checkpoint_name}_interrupted.npz")
                    raise KeyboardInterrupt
        self._flush_losses()
        if self.keep_best:
            checkpoints.restore_best(self)

    def _end_of_epoch_check(self, epoch_end: bool = True) -> None:
        """Accuracies into the histories, the best state kept, the epoch's checkpoint."""
        self._flush_losses()
        if self.parallel is not None:
            self.parallel.broadcast_buffers(self.model)
        evaluation.epoch_check(self)
        if self.callback is not None:
            self.callback(self, "epoch")
        if self.checkpoint_name and epoch_end:
            self.save_checkpoint(self._epoch_checkpoint(self.epoch))

    def _epoch_checkpoint(self, epoch: int) -> str:
        return f"{self.checkpoint_name}_epoch_{epoch}.npz"

    def _print(self, message: str) -> None:
        if self.verbose:
            print(message, flush=True)

    # -- evaluation and checkpoints -------------------------------------------------------
    def check_accuracy(self, X: Any, y: Any, num_samples: int | None = None,
                       batch_size: int = 100) -> float:
        """Fraction of ``X`` classified as ``y``, on a random subsample of ``num_samples``
        (with replacement) when X has more; predicts ``batch_size`` at a time."""
        return evaluation.accuracy(self.model, self.backend, X, y, num_samples, batch_size,
                                   stream=self.random, flip=self.test_time_flip,
                                   tta_level=self.test_time_augment,
                                   host=self.batches.on_host(X), parallel=self.parallel)

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Everything needed to resume: ``(host arrays, header)`` of a checkpoint file."""
        return checkpoints.state(self)

    def save_checkpoint(self, path: str) -> str:
        """Write the solver's state to ``path`` (``.npz``) atomically (data-parallel: rank 0
        alone writes)."""
        if self.parallel is not None and not self.parallel.is_root:
            self._flush_losses()
            return path
        return checkpoints.save(self, path)

    def load_checkpoint(self, path: str) -> None:
        """Restore a state of :meth:`save_checkpoint` (any format version) to resume;
        refuses (CheckpointError) a checkpoint of another update rule or stream kind."""
        checkpoints.load(self, path)
        self._new_graph()  # the arrays a graph captured before were replaced

