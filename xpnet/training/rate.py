"""The one place the Solver's learning rate is computed.

Without a schedule the course's rule holds: after every epoch each parameter's
``learning_rate`` is multiplied by ``lr_decay``. With a per-iteration schedule
(:mod:`xpnet.schedules`) the rate before every step is ``learning_rate *
factor(iteration, total) * lr_decay ** epoch``, from ``optim_config``'s rate.
The update strategy writes the new value where it keeps it (the configs, and
for the capturable step a device scalar).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InputError

__all__ = ["LearningRate"]

Rate = Callable[[float], float]


class LearningRate:
    """The learning rate of every step and epoch end.

    Parameters
    ----------
    optim_config : dict
        The Solver's ``optim_config`` (its ``learning_rate`` is a schedule's base).
    schedule : callable or None
        ``(iteration, total) -> factor``.
    """

    def __init__(self, optim_config: dict, schedule: Callable[[int, int], float] | None) -> None:
        if schedule is not None and "learning_rate" not in optim_config:
            raise InputError("Solver: lr_schedule scales optim_config['learning_rate']; "
                             "give one")
        self.schedule = schedule
        self.base = optim_config.get("learning_rate")

    def before_step(self, iteration: int, total: int, epoch: int, lr_decay: float
                    ) -> Rate | None:
        """The change of rate before step ``iteration`` (None: none)."""
        if self.schedule is None:
            return None
        lr = self.base * self.schedule(iteration, total) * lr_decay ** epoch
        return lambda _current: lr

    def after_epoch(self, lr_decay: float) -> Rate | None:
        """The change of rate at an epoch's end (None: none)."""
        if self.schedule is not None:
            return None
        return lambda current: current * lr_decay
