"""Learning-rate schedules: a factor of the base learning rate for each iteration.

A schedule is a callable ``schedule(iteration, total) -> factor`` with
``iteration`` counted from 0 and ``total`` the iterations of the whole run;
the Solver multiplies its base ``learning_rate`` by the factor before every
step (and by ``lr_decay ** epoch``, which is 1 by default).

:func:`get_schedule` builds one from a name: ``constant``, ``cosine`` (linear
warm-up then a cosine down to ``min_factor``), ``onecycle`` (linear up to the
peak, then linearly down to ``min_factor``) or ``piecewise`` (linear between
given points).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._ops import checks
from .errors import InputError

__all__ = ["SCHEDULES", "Constant", "Cosine", "OneCycle", "PiecewiseLinear", "get_schedule"]


@dataclass(frozen=True)
class Constant:
    """Factor 1 throughout, after an optional linear warm-up of ``warmup`` (fraction)."""

    warmup: float = 0.0

    def __call__(self, iteration: int, total: int) -> float:
        ramp = self.warmup * total
        if iteration < ramp:
            return (iteration + 1) / ramp
        return 1.0


@dataclass(frozen=True)
class Cosine:
    """Linear warm-up over the first ``warmup`` (fraction of the run), then half a
    cosine from 1 down to ``min_factor`` at the last iteration."""

    warmup: float = 0.0
    min_factor: float = 0.0

    def __call__(self, iteration: int, total: int) -> float:
        ramp = self.warmup * total
        if iteration < ramp:
            return (iteration + 1) / ramp
        progress = (iteration - ramp) / max(total - ramp, 1)
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi *
                                                                           progress))


@dataclass(frozen=True)
class PiecewiseLinear:
    """Linear between ``points``: (fraction of the run, factor) pairs, fractions
    increasing from 0 to 1."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        xs = [p[0] for p in self.points]
        if len(xs) < 2 or xs[0] != 0 or xs[-1] != 1 or xs != sorted(xs):
            raise InputError("piecewise schedule: points must start at fraction 0, end at 1 "
                             f"and increase, got {list(self.points)}")

    def __call__(self, iteration: int, total: int) -> float:
        t = iteration / max(total - 1, 1)
        for (x0, y0), (x1, y1) in zip(self.points, self.points[1:], strict=False):
            if t <= x1:
                return y0 if x1 == x0 else y0 + (y1 - y0) * (t - x0) / (x1 - x0)
        return self.points[-1][1]


def OneCycle(peak: float = 0.3, start_factor: float = 0.1,  # noqa: N802 (a schedule type)
             min_factor: float = 0.0) -> PiecewiseLinear:
    """Linear from ``start_factor`` up to 1 at ``peak`` (fraction of the run), then
    linear down to ``min_factor``."""
    return PiecewiseLinear(((0.0, start_factor), (peak, 1.0), (1.0, min_factor)))


SCHEDULES: dict[str, Callable[..., Callable[[int, int], float]]] = {
    "constant": Constant,
    "cosine": Cosine,
    "onecycle": OneCycle,
    "piecewise": PiecewiseLinear,
}


def get_schedule(name: str | Callable | None, warmup: float = 0.0,
                 points: Sequence[tuple[float, float]] | None = None
                 ) -> Callable[[int, int], float] | None:
    """The schedule called ``name`` (a callable is returned as is; None stays None).

    Raises
    ------
    InputError
        For an unknown name (listing the known ones) or bad settings.
    """
    if name is None or callable(name):
        return name
    checks.choice(name, tuple(SCHEDULES), "schedule")
    if not 0.0 <= warmup < 1.0:
        raise InputError(f"warm-up must be a fraction of the run in [0, 1), got {warmup!r}")
    if name == "piecewise":
        if not points:
            raise InputError("the piecewise schedule needs points (fraction, factor)")
        return PiecewiseLinear(tuple((float(a), float(b)) for a, b in points))
    if name == "onecycle":
        return OneCycle(peak=warmup or 0.3)
    return SCHEDULES[name](warmup=warmup)
