"""Data-parallel steps: one trajectory over several ranks.

A Solver given a communicator (:func:`xpnet.distributed.init`) trains with
``batch_size`` as the *global* batch. Every rank draws the same minibatch
indices from the Solver's stream (same seed, same draws), takes its slice
(rank r of R: a contiguous share of ``batch_size``, the first ``batch_size % R``
ranks one more) and computes the gradient of its slice's mean loss. The
gradients are packed into one flat buffer per dtype, scaled by the rank's share
``n_r / batch_size`` and summed in one all-reduce (bucketed by the engine where
large): every rank then holds the gradient of the global batch's mean loss and
applies the same update, so the parameters stay identical on every rank and
follow the single-process trajectory of the same global batch to float32
rounding. Two more slots ride in the same all-reduce: the loss (so every rank
records the global batch's loss) and a stop flag (a Ctrl-C seen by any rank
stops all of them after the same step).

Batch statistics: with ``sync_batchnorm`` the batchnorm layers' means, variances
and backward sums are all-reduced (:func:`xpnet._ops.normalization.synchronized`),
so the trajectory is the global batch's. Without it each rank normalizes with
its slice's statistics, as PyTorch's DDP does; before every evaluation the
running averages are broadcast from rank 0, so every rank evaluates (and rank 0
saves) the same model.

Randomness of the model (dropout masks) comes from a per-rank stream seeded
from the Solver's seed and the rank, so the shared stream stays in step.
Augmentation draws from the shared stream over the whole minibatch.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from typing import Any

from .._ops import normalization
from ..backend import Backend
from ..backend.random import derive_seed
from ..errors import InputError

__all__ = ["DataParallel", "shard"]


def shard(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous share ``[lo, hi)`` of ``n`` items."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


class DataParallel:
    """The distributed parts of a Solver's step, evaluation and state.

    Parameters
    ----------
    comm : Communicator
    backend : Backend
    batch_size : int
        The global batch.
    sync_batchnorm : bool
    """

    def __init__(self, comm: Any, backend: Backend, batch_size: int,
                 sync_batchnorm: bool = False) -> None:
        self.comm, self.backend = comm, backend
        self.rank, self.world = comm.rank, comm.world_size
        if batch_size < self.world:
            raise InputError(f"Solver: batch_size {batch_size} is the global batch; it must be "
                             f"at least the number of ranks, {self.world}")
        self.batch_size = batch_size
        self.lo, self.hi = shard(batch_size, self.rank, self.world)
        #: this rank's share of the global batch
        self.weight = (self.hi - self.lo) / batch_size
        self.sync_batchnorm = bool(sync_batchnorm)
        self.interrupt: Any = None  # the Solver's DeferredInterrupt while it trains
        self.local_random: Any = None
        self._layout: tuple | None = None
        self._buffers: list[Any] = []
        self._groups: list[tuple[list[str], list[tuple[int, int]], list[tuple[int, ...]]]] = []
        self._stop: Any = None
        #: host seconds spent in the gradients' all-reduce (waiting for the other ranks
        #: included; on a GPU the time to enqueue it)
        self.reduce_seconds = 0.0

    @property
    def is_root(self) -> bool:
        return self.comm.is_root

    # -- setup -----------------------------------------------------------------------
    def agree_seed(self, seed: int | None) -> int | None:
        """Rank 0's seed on every rank when none was given."""
        if seed is not None:
            return seed
        from ..backend.random import fresh_seed

        mine = fresh_seed() % 2**52 if self.is_root else 0
        return int(self.comm.sum_host([mine], "agreement on a seed")[0])

    def start(self, solver: Any) -> None:
        """Same initial parameters everywhere (rank 0's) and this rank's model stream."""
        params = solver.model.params
        names = list(params)
        xp = self.backend.xp
        copies = [xp.asarray(params[n], copy=True) for n in names]
        for name, value in zip(names, self._back(copies, self.comm.broadcast(
                copies, 0, "broadcast of the initial parameters")), strict=True):
            params[name] = value
        self.local_random = self.backend.new_stream(
            derive_seed(solver.random.seed, 1_000_003 + self.rank))

    def _back(self, arrays: list[Any], results: list[Any]) -> list[Any]:
        """The collective's results as arrays of the backend (host copies converted)."""
        return [a if r is a else self.backend.asarray(r) for a, r in zip(arrays, results,
                                                                          strict=True)]

    # -- the step ----------------------------------------------------------------------
    def step(self, solver: Any) -> Any:
        """Gather this rank's slice, forward, backward, all-reduce, update; the global loss."""
        batches, xp = solver.batches, self.backend.xp
        idx = solver.random.integers(batches.num_train, self.batch_size)
        mine = idx[self.lo:self.hi]
        if getattr(solver.augment, "uses_indices", False):  # e.g. alternating flips
            X_batch = solver.augment(batches.gather(idx), solver.random, indices=idx,
                                     epoch=solver.epoch, num_samples=batches.num_train
                                     )[self.lo:self.hi, ...]
        elif solver.augment is not None:  # the whole minibatch, as one process draws it
            X_batch = solver.augment(batches.gather(idx), solver.random)[self.lo:self.hi, ...]
        else:
            X_batch = batches.gather(mine)
        y_batch = xp.take(batches.y_train, mine, axis=0)
        sync = (normalization.synchronized(self.reduce_statistics) if self.sync_batchnorm
                else nullcontext())
        with self.local_random.active(), sync:
            loss, grads = solver.model.loss(X_batch, y_batch)
        loss, grads = self.reduce_gradients(loss, grads)
        solver.updater.apply(solver.model.params, grads, solver.optim_configs)
        return loss

    def reduce_gradients(self, loss: Any, grads: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The global batch's ``(loss, grads)``: one all-reduce of the packed gradients,
        the loss and the stop flag."""
        xp = self.backend.xp
        layout = tuple((n, tuple(g.shape), g.dtype) for n, g in grads.items())
        if layout != self._layout:
            self._pack_layout(layout, loss.dtype)
        views: dict[str, Any] = {}
        for buf, (names, bounds, _) in zip(self._buffers, self._groups, strict=True):
            for name, (start, stop) in zip(names, bounds, strict=True):
                buf[start:stop] = xp.reshape(grads[name], (-1,))
        first = self._buffers[0]
        n = first.shape[0]
        first[n - 2] = xp.astype(loss, first.dtype) if loss.dtype != first.dtype else loss
        for buf in self._buffers:
            buf *= self.weight
        stop = self.interrupt is not None and self.interrupt.requested
        first[n - 1] = 1.0 if stop else 0.0
        began = time.perf_counter()
        reduced = self._back(self._buffers, self.comm.all_reduce(
            self._buffers, "all-reduce of the gradients"))
        self.reduce_seconds += time.perf_counter() - began
        for buf, (names, bounds, shapes) in zip(reduced, self._groups, strict=True):
            for name, (start, stop_), shape in zip(names, bounds, shapes, strict=True):
                views[name] = xp.reshape(buf[start:stop_], shape)
        self._stop = reduced[0][n - 1]
        total = xp.asarray(reduced[0][n - 2], copy=True)
        return total, views

    def _pack_layout(self, layout: tuple, loss_dtype: Any) -> None:
        """One flat buffer per gradient dtype; the first has two more slots (loss, stop)."""
        xp, dev = self.backend.xp, self.backend.device
        by_dtype: dict[Any, list[str]] = {}
        for name, _, dtype in layout:
            by_dtype.setdefault(dtype, []).append(name)
        self._layout, self._groups, self._buffers = layout, [], []
        sizes = {n: math.prod(s) for n, s, _ in layout}
        shapes = {n: s for n, s, _ in layout}
        for i, (dtype, names) in enumerate(by_dtype.items()):
            bounds, at = [], 0
            for name in names:
                bounds.append((at, at + sizes[name]))
                at += sizes[name]
            self._groups.append((names, bounds, [shapes[n] for n in names]))
            self._buffers.append(xp.zeros((at + (2 if i == 0 else 0),), dtype=dtype,
                                          device=dev))

    def stop_agreed(self, now: bool) -> bool:
        """Whether any rank asked to stop (read from the last all-reduce; ``now`` False on
        a device backend between print points spares a synchronization)."""
        if self._stop is None or not (now or self.backend.on_host):
            return False
        return float(self._stop) > 0

    def reduce_statistics(self, arrays: list[Any]) -> list[Any]:
        """The weighted sum over the ranks of small arrays (batch statistics, in one call)."""
        xp = self.backend.xp
        shapes = [tuple(a.shape) for a in arrays]
        flat = xp.concat([xp.reshape(a, (-1,)) for a in arrays]) * self.weight
        flat = self._back([flat], self.comm.all_reduce([flat], "all-reduce of batch "
                                                        "statistics"))[0]
        out, at = [], 0
        for shape in shapes:
            size = math.prod(shape)
            out.append(xp.reshape(flat[at:at + size], shape))
            at += size
        return out

    # -- evaluation and state -------------------------------------------------------
    def count(self, value: Any) -> int:
        """The sum over the ranks of a count of this rank's shard."""
        return int(round(self.comm.sum_host([0.0 if value is None else float(value)],
                                            "all-reduce of an accuracy count")[0]))

    def broadcast_buffers(self, model: Any) -> None:
        """Rank 0's running statistics on every rank (before an evaluation)."""
        from .checkpoints import buffers_of, restore_buffers

        live = buffers_of(model)
        if not live:
            return
        names = list(live)
        xp = self.backend.xp
        copies = [xp.asarray(live[n], copy=True) for n in names]
        values = self._back(copies, self.comm.broadcast(copies, 0, "broadcast of the "
                                                        "running statistics"))
        restore_buffers(model, dict(zip(names, values, strict=True)), self.backend)

