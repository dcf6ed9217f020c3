"""The training losses: kept on the device, fetched in bulk, checked for divergence."""

from __future__ import annotations

import math
from typing import Any

from .._ops.capture import LossBuffer
from ..backend import to_numpy
from ..errors import TrainingDivergedError

__all__ = ["LossLog", "diverged"]


class LossLog:
    """Every step's loss; no transfer until :meth:`flush`.

    With a :class:`~xpnet._ops.capture.LossBuffer` (the capturable step) the
    losses are written at a device-side position of one preallocated array;
    otherwise the 0-D loss arrays are kept in a list and stacked at the flush.
    """

    def __init__(self, xp, buffer: LossBuffer | None = None) -> None:
        self.xp = xp
        #: the device buffer (capturable steps) or None
        self.buffer = buffer
        self.history: list[float] = []
        self._pending: list[Any] = []

    @classmethod
    def on(cls, backend: Any, dtype: Any, capacity: int | None = None) -> LossLog:
        """A log on ``backend``; with ``capacity``, in a device buffer of that many losses."""
        xp = backend.xp
        return cls(xp, None if capacity is None else LossBuffer(xp, capacity, dtype,
                                                                backend.device))

    @property
    def full(self) -> bool:
        """Whether the device buffer must be flushed before the next record."""
        return self.buffer is not None and self.buffer.count == self.buffer.capacity

    def record(self, loss: Any) -> None:
        if self.buffer is not None:
            self.buffer.record(loss)
        else:
            self._pending.append(loss)

    def flush(self) -> tuple[int, float] | None:
        """Fetch the pending losses in one transfer; the first non-finite one as
        ``(iteration, value)`` (iterations counted from 1), or None."""
        if self.buffer is not None and self.buffer.count:
            values = [float(v) for v in to_numpy(self.buffer.take())]
        elif self._pending:
            values = [float(v) for v in to_numpy(self.xp.stack(self._pending))]
        else:
            return None
        first = len(self.history)
        self._pending = []
        self.history.extend(values)
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                return first + offset + 1, value
        return None

    def load(self, history: list[float]) -> None:
        """Replace the history (a checkpoint's), dropping anything pending."""
        self.history = list(history)
        self._pending = []
        if self.buffer is not None:
            self.buffer.take()


def diverged(iteration: int, value: float, learning_rate: float | None,
             checkpoint: str | None) -> TrainingDivergedError:
    """The error of a loss that became ``value`` at ``iteration``."""
    lr = learning_rate if learning_rate is not None else "the rule default"
    saved = f"; the last good checkpoint is {checkpoint}" if checkpoint else ""
    return TrainingDivergedError(
        f"the training loss became {value} at iteration {iteration}; lower the learning rate "
        f"(it was {lr}) or the weight scale and train again; the model keeps the best "
        f"parameters so far{saved}")

