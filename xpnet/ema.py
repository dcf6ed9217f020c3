"""Lookahead: an exponential moving average of the weights, copied back into the model.

Every ``every`` steps the average moves towards the current weights,
``avg = avg + (1 - decay) * (w - avg)``, and the weights are replaced by it
(``w = avg``): the model keeps training from the averaged point. This is the
speed record's "lookahead" (airbench94: every 5 steps, ``decay = 0.95**5 *
(step / total)**3``, rising from 0 to 0.77, so it averages little early on and
much at the end); after the last step the weights are the average.

Parameters and floating buffers (batchnorm's running statistics, frozen
parameters) are averaged alike, as the record averages the whole state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._ops import checks
from .errors import InputError
from .training.checkpoints import restore_buffers

__all__ = ["Lookahead", "record_decay"]

Array = Any


def record_decay(iteration: int, total: int) -> float:
    """The speed record's decay: ``0.95**5 * (iteration / total)**3``."""
    return 0.95 ** 5 * (iteration / max(total, 1)) ** 3


class Lookahead:
    """The moving average of the weights, for the Solver's ``after_step`` hook
    (``Solver(..., after_step=Lookahead().after_step)``) or as a ``callback``.

    Parameters
    ----------
    every : int
        Steps between updates (5 in the record).
    decay : float or callable
        ``decay(iteration, total) -> float`` in [0, 1], or a constant; default
        :func:`record_decay`. 0 keeps no memory (the average is the weights).
    buffers : bool
        Average the floating buffers too (running statistics).

    Attributes
    ----------
    average : dict
        Name -> the averaged array, on the model's device (empty before the first step).
    updates : int
        How many averaging updates have run.
    """

    def __init__(self, every: int = 5, decay: float | Callable[[int, int], float] | None = None,
                 buffers: bool = True) -> None:
        self.every = checks.positive_int(every, "every", "Lookahead")
        if decay is None:
            decay = record_decay
        elif not callable(decay):
            value = float(decay)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"Lookahead: decay must lie in [0, 1], got {decay!r}")
            decay = _constant(value)
        self.decay = decay
        self.buffers = bool(buffers)
        self.average: dict[str, Array] = {}
        self.updates = 0

    def _state(self, solver: Any) -> tuple[dict[str, Array], dict[str, Array]]:
        model = solver.model
        xp = solver.backend.xp
        bufs = {}
        if self.buffers:
            bufs = {k: v for k, v in (getattr(model, "buffers", None) or {}).items()
                    if xp.isdtype(v.dtype, "real floating")}
        return model.params, bufs

    def update(self, solver: Any, decay: float) -> None:
        """Move the average ``1 - decay`` of the way to the weights and copy it back."""
        if not 0.0 <= decay <= 1.0:
            raise InputError(f"Lookahead: decay must lie in [0, 1], got {decay!r}")
        xp = solver.backend.xp
        params, bufs = self._state(solver)
        for name, w in {**params, **bufs}.items():
            avg = self.average.get(name)
            if avg is None or tuple(avg.shape) != tuple(w.shape):
                avg = xp.asarray(w, copy=True)
            else:
                avg = avg + (1.0 - decay) * (w - avg)
            self.average[name] = avg
        solver.updater.restore(params, {k: self.average[k] for k in params})
        if bufs:
            restore_buffers(solver.model, {k: self.average[k] for k in bufs}, solver.backend)
        self.updates += 1

    def after_step(self, solver: Any) -> None:
        """After step ``solver.iteration`` (counted from 1): the Solver's ``after_step``
        hook, which runs before that step's accuracy check, so the check and the best
        state of the last epoch see the averaged weights."""
        t, total = solver.iteration, solver.num_iterations
        if not self.average:  # the average starts from the weights after the first step
            params, bufs = self._state(solver)
            xp = solver.backend.xp
            self.average = {k: xp.asarray(v, copy=True) for k, v in {**params, **bufs}.items()}
        if t % self.every == 0:
            self.update(solver, float(self.decay(t, total)))
        if t == total:  # the end: the weights are the average
            self.update(solver, 1.0)

    def __call__(self, solver: Any, event: str) -> None:
        """As a Solver ``callback``: :meth:`after_step` at every ``'iteration'`` event
        (which comes after the epoch's accuracy check; prefer ``after_step``)."""
        if event == "iteration":
            self.after_step(solver)


def _constant(value: float) -> Callable[[int, int], float]:
    def decay(iteration: int, total: int) -> float:
        return value
    return decay
