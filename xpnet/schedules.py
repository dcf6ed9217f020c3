"""Learning-rate schedules: a factor of the base learning rate for each iteration.

A schedule is a callable ``schedule(iteration, total) -> factor`` with
``iteration`` counted from 0 and ``total`` the iterations of the whole run;
the Solver multiplies its base ``learning_rate`` by the factor before every
step (and by ``lr_decay ** epoch``, which is 1 by default).

:func:`get_schedule` builds one from a name: ``constant``, ``cosine`` (linear
warm-up then a cosine down to ``min_factor``), ``onecycle`` (linear up to the
peak, then linearly down to ``min_factor``), ``piecewise`` (linear between
given points) or ``triangle`` (the speed record's: from 0.2 up to 1 at 23% of the run,
then down towards 0.07).

A warm-up of ``warmup`` (a fraction of the run) lasts ``ceil(warmup * total)``
iterations and climbs linearly to factor 1 at its last one: with ``warmup=0.25``
over 10 iterations the factors start 1/3, 2/3, 1. No factor ever exceeds 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._ops import checks
from .errors import InputError

__all__ = ["SCHEDULES", "Constant", "Cosine", "OneCycle", "PiecewiseLinear", "Triangle",
           "get_schedule", "warmup_iterations"]


def warmup_iterations(warmup: float, total: int) -> int:
    """The iterations of a warm-up of ``warmup`` (fraction) of ``total``: the
    product rounded up, so the last warm-up iteration reaches factor 1 exactly
    (a fractional ramp such as 2.5 would give 0.4, 0.8, 1.2). The product is
    rounded to 9 digits first: 0.1 * 30 is 3.0000000000000004, which is 3."""
    return math.ceil(round(warmup * total, 9))


def _warmup_factor(iteration: int, steps: int) -> float:
    return (iteration + 1) / steps


@dataclass(frozen=True)
class Constant:
    """Factor 1 throughout, after an optional linear warm-up of ``warmup`` (fraction,
    :func:`warmup_iterations` long)."""

    warmup: float = 0.0

    def __call__(self, iteration: int, total: int) -> float:
        steps = warmup_iterations(self.warmup, total)
        if iteration < steps:
            return _warmup_factor(iteration, steps)
        return 1.0


@dataclass(frozen=True)
class Cosine:
    """Linear warm-up over the first ``warmup`` (fraction of the run, ``w =``
    :func:`warmup_iterations` iterations), then half a cosine from 1 (at iteration
    ``w``) towards ``min_factor``, which it would reach at iteration ``total``:
    ``min_factor + (1 - min_factor) * (1 + cos(pi * (i - w) / (total - w))) / 2``."""

    warmup: float = 0.0
    min_factor: float = 0.0

    def __call__(self, iteration: int, total: int) -> float:
        steps = warmup_iterations(self.warmup, total)
        if iteration < steps:
            return _warmup_factor(iteration, steps)
        progress = (iteration - steps) / max(total - steps, 1)
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
                if x1 == x0:
                    return y0
                # clamped to the segment: rounding must not lift a factor past its ends
                # (a one-cycle peak of 1.0000000000000002)
                value = y0 + (y1 - y0) * (t - x0) / (x1 - x0)
                return min(max(value, min(y0, y1)), max(y0, y1))
        return self.points[-1][1]


def OneCycle(peak: float = 0.3, start_factor: float = 0.1,  # noqa: N802 (a schedule type)
             min_factor: float = 0.0) -> PiecewiseLinear:
    """Linear from ``start_factor`` up to 1 at ``peak`` (fraction of the run, counted
    as ``iteration / (total - 1)``), then linear down to ``min_factor`` at the last
    iteration. The one-cycle schedule has no separate warm-up: its climb to the
    peak is one."""
    if not 0.0 < peak < 1.0:
        raise InputError(f"onecycle schedule: peak must be a fraction of the run in (0, 1), "
                         f"got {peak!r}")
    return PiecewiseLinear(((0.0, start_factor), (peak, 1.0), (1.0, min_factor)))


@dataclass(frozen=True)
class Triangle:
    """The speed record's triangle: linear from ``start`` at iteration 0 up to 1 at
    iteration ``p = int(peak * total)``, then linear down to ``end``, which it would
    reach at iteration ``total`` (airbench94: start 0.2, peak 0.23, end 0.07):
    ``start + (1 - start) * i / p`` before ``p``, ``1 + (end - 1) * (i - p) / (total - p)``
    from ``p`` on."""

    start: float = 0.2
    peak: float = 0.23
    end: float = 0.07

    def __post_init__(self) -> None:
        if not 0.0 <= self.peak < 1.0:
            raise InputError(f"triangle schedule: peak must be a fraction of the run in "
                             f"[0, 1), got {self.peak!r}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise InputError(f"triangle schedule: {name} must be a factor in [0, 1], "
                                 f"got {value!r}")

    def __call__(self, iteration: int, total: int) -> float:
        p = int(self.peak * total)
        if iteration < p:
            return self.start + (1.0 - self.start) * iteration / p
        return 1.0 + (self.end - 1.0) * (iteration - p) / max(total - p, 1)


SCHEDULES: dict[str, Callable[..., Callable[[int, int], float]]] = {
    "constant": Constant,
    "cosine": Cosine,
    "onecycle": OneCycle,
    "piecewise": PiecewiseLinear,
    "triangle": Triangle,
}


def get_schedule(name: str | Callable | None, warmup: float = 0.0,
                 points: Sequence[tuple[float, float]] | None = None,
                 peak: float | None = None) -> Callable[[int, int], float] | None:
    """The schedule called ``name`` (a callable is returned as is; None stays None).

    Parameters
    ----------
    warmup : float
        The warm-up of ``constant`` and ``cosine``, a fraction of the run. For
        ``onecycle``, which has no warm-up, a nonzero ``warmup`` is taken as its
        ``peak`` when ``peak`` is not given: that is what the command line's
        ``--warmup`` means with ``--schedule onecycle``, kept for compatibility.
    points : sequence of (fraction, factor)
        The points of ``piecewise``.
    peak : float, optional
        Where ``onecycle`` peaks, a fraction of the run (default 0.3, or
        ``warmup`` when that is nonzero), or ``triangle`` (default 0.23); other
        schedules refuse it.

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
    if peak is not None and name not in ("onecycle", "triangle"):
        raise InputError(f"the {name} schedule has no peak (only onecycle and triangle "
                         f"have), got peak={peak!r}")
    if name == "triangle":
        if warmup:
            raise InputError("the triangle schedule has no warm-up (its climb to the peak "
                             "is one): give peak instead")
        return Triangle() if peak is None else Triangle(peak=peak)
    if name == "piecewise":
        if not points:
            raise InputError("the piecewise schedule needs points (fraction, factor)")
        return PiecewiseLinear(tuple((float(a), float(b)) for a, b in points))
    if name == "onecycle":
        if peak is not None and warmup and peak != warmup:
            raise InputError(f"onecycle schedule: warmup ({warmup!r}) is taken as the peak; "
                             f"it disagrees with peak={peak!r}, give only one")
        return OneCycle(peak=peak if peak is not None else (warmup or 0.3))
    return SCHEDULES[name](warmup=warmup)
