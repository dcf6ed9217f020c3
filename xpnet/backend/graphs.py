"""Capture a training step once as a CUDA graph and replay it (through PyTorch).

A replayed graph launches the captured kernels again with the same arguments:
the step must read its inputs from arrays that stay where they are (the data
set, the random counter, the device scalars of the update rule) and write its
state in place (see :mod:`xpnet._ops.capture`). :class:`GraphedStep` runs the
step a few times on a side stream (PyTorch's advice before a capture), captures
it once, and replays it from then on; the step's result (the loss) is a static
array that the graph rewrites at each replay, which the caller copies out.

Only torch on CUDA can do this: CuPy refuses cuBLAS calls during stream capture
(cupy issue 6290), so a CuPy step with matrix products cannot be captured. The
library side is a small :class:`GraphAPI` that the torch adapter provides;
tests drive :class:`GraphedStep` with a stand-in API on the CPU.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["GraphAPI", "GraphedStep"]


class GraphAPI:
    """What a library must offer to capture and replay a step."""

    def warm_up(self, step: Callable[[], Any]) -> Any:
        """Run ``step`` once, as a capture needs it first (on a side stream)."""
        raise NotImplementedError

    def capture(self, step: Callable[[], Any]) -> tuple[Any, Any]:
        """``(graph, static result)``: ``step`` captured, not run."""
        raise NotImplementedError

    def replay(self, graph: Any) -> None:
        """Launch the captured kernels again."""
        raise NotImplementedError


class GraphedStep:
    """``step()`` run eagerly ``warmup`` times, then captured once and replayed.

    Parameters
    ----------
    step : callable
        The whole training step (gather, forward, backward, update); returns the
        loss as a device array.
    api : GraphAPI
        The library's capture and replay.
    warmup : int
        Eager steps before the capture (3, as PyTorch's examples use).

    Notes
    -----
    Where the capture fails (an operation that waits for the device or is not
    allowed in a capture), one warning gives the reason and every later call
    runs the step eagerly: the trajectory is the same either way.
    """

    def __init__(self, step: Callable[[], Any], api: GraphAPI, warmup: int = 3) -> None:
        self.step, self.api, self.warmup = step, api, int(warmup)
        self.calls = 0
        self.graph: Any = None
        self.result: Any = None
        #: why the step runs eagerly (None while capturing works)
        self.problem: str | None = None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self) -> Any:
        self.calls += 1
        if self.problem is not None:
            return self.step()
        if self.calls <= self.warmup:
            return self.api.warm_up(self.step)
        if self.graph is None:
            try:
                self.graph, self.result = self.api.capture(self.step)
            except Exception as err:  # the library says why it cannot capture
                self.problem = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
                warnings.warn(f"Solver: the step could not be captured as a CUDA graph "
                              f"and runs eagerly ({self.problem})", stacklevel=3)
                return self.step()
        self.api.replay(self.graph)
        return self.result
