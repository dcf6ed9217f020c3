"""Solver callbacks of the speed-record recipe that change the model while it trains.

:class:`FreezeAfter`
    Freezes parameters at the end of an epoch (the record trains its whitening
    layer's bias for 3 epochs, then holds it).
:class:`Callbacks`
    Several callbacks as the Solver's one ``callback``, called in order.

A callback is ``callback(solver, event)`` with ``event`` ``'iteration'`` (after
every step) or ``'epoch'`` (after every accuracy check, with ``solver.epoch``
the epochs completed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._ops import checks
from .errors import InputError

__all__ = ["Callbacks", "FreezeAfter"]


class Callbacks:
    """Call each of ``callbacks`` in order: ``Callbacks(Lookahead(...), FreezeAfter(...))``."""

    def __init__(self, *callbacks: Callable[[Any, str], None] | None) -> None:
        self.callbacks = [c for c in callbacks if c is not None]
        for c in self.callbacks:
            if not callable(c):
                raise InputError(f"Callbacks: {c!r} is not callable")

    def __call__(self, solver: Any, event: str) -> None:
        for c in self.callbacks:
            c(solver, event)


class FreezeAfter:
    """Freeze the model's parameters ``names`` once ``epochs`` epochs are complete.

    The model must have ``freeze`` (:meth:`xpnet.nn.Sequential.freeze`): the
    parameters leave ``params``, so the update rule no longer sees them and no
    gradient is computed or returned for them. The Solver's best-state snapshot
    keeps their values as buffers from then on, so restoring an earlier best
    epoch restores them too.

    Parameters
    ----------
    names : str or sequence of str
        Global parameter names, e.g. ``"0.b"``.
    epochs : int
        Epochs of training before the freeze (0: frozen from the first check).
    """

    def __init__(self, names: str | Sequence[str], epochs: int) -> None:
        self.names = [names] if isinstance(names, str) else list(names)
        if not self.names:
            raise InputError("FreezeAfter: give at least one parameter name")
        self.epochs = checks.nonnegative_int(epochs, "epochs", "FreezeAfter")
        self.done = False

    def __call__(self, solver: Any, event: str) -> None:
        if self.done or event != "epoch" or solver.epoch < self.epochs:
            return
        model = solver.model
        if not hasattr(model, "freeze"):
            raise InputError(f"FreezeAfter: a {type(model).__name__} cannot freeze "
                             "parameters (xpnet.nn.Sequential can)")
        model.freeze(*self.names)
        best_params = getattr(solver, "best_params", None) or {}
        best_buffers = getattr(solver, "best_buffers", None)
        for name in self.names:
            if name in best_params and best_buffers is not None:
                best_buffers[name] = best_params.pop(name)
        self.done = True
