"""Random streams: one generator per stream, its state saved by checkpoints.

A :class:`RandomStream` holds a seed and one generator of its backend's library
(NumPy's PCG64, ``torch.Generator``, CuPy's Philox4x32-10), made at the first
draw and used by every draw after it. The Array API standard has no random
numbers, so the backend adapters make and read the generators.

Its :meth:`~RandomStream.state` is ``{'kind', 'seed', 'counter', 'generator'}``:
``generator`` is the library's own generator state where the library exposes
one (NumPy, torch), so saving a checkpoint changes nothing and a resumed run
continues the same sequence. Where it does not (CuPy), saving ends the
current *segment*: the next draw uses a new generator seeded from ``(seed,
counter + 1)``, and a run resumed from that checkpoint does the same, so a
resumed run still follows the run that saved the checkpoint.

A Solver makes its stream the *active* one (:meth:`RandomStream.active`) while
it trains; unseeded draws inside the model (dropout masks) take it from there
(:func:`active_stream`). The active stream is a context variable: two Solvers
in two threads never share one.
"""

from __future__ import annotations

import contextvars
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    from .base import Backend

__all__ = ["RandomStream", "active_stream", "fresh_seed", "derive_seed"]


def derive_seed(*entropy: int) -> int:
    """A 63-bit seed that mixes the integers ``entropy`` well."""
    state = np.random.SeedSequence([int(e) for e in entropy]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


_derive_seed = derive_seed  # the name the counter-based stream imports


def fresh_seed() -> int:
    """A seed drawn from the operating system's entropy."""
    return int(np.random.SeedSequence().entropy) >> 65


_ACTIVE_STREAM: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "xpnet_active_stream", default=None)


def active_stream() -> Any:
    """The stream made active by :meth:`RandomStream.active` in this context, or None."""
    return _ACTIVE_STREAM.get()


class RandomStream:
    """A seeded stream of random numbers on one backend, with one generator.

    Parameters
    ----------
    backend : Backend
        Where the numbers are made.
    seed : int, optional
        Default: fresh entropy.
    """

    #: what :meth:`state` records as ``kind``; checkpoints of another kind are refused
    kind = "generator"
    __slots__ = ("backend", "seed", "counter", "_generator")

    def __init__(self, backend: Backend, seed: int | None = None) -> None:
        self.backend = backend
        self.seed = fresh_seed() if seed is None else int(seed)
        #: the number of generators this stream has made (segments)
        self.counter = 0
        self._generator: Any = None

    # -- state ---------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """``{'kind', 'seed', 'counter', 'generator'}``: plain JSON data for a checkpoint."""
        saved = None
        if self._generator is not None:
            saved = self.backend.generator_state(self._generator)
            if saved is None:  # the library keeps its state to itself: end the segment
                self._generator = None
        return {"kind": self.kind, "library": self.backend.name, "seed": self.seed,
                "counter": self.counter, "generator": saved}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state` (of a stream of the same kind and library)."""
        kind = state.get("kind", self.kind)
        if kind != self.kind:
            raise InputError(f"a random-stream state of kind {kind!r} cannot restore a "
                             f"{self.kind!r} stream")
        self.seed = int(state["seed"])
        self.counter = int(state["counter"])
        saved = state.get("generator")
        library = state.get("library", self.backend.name)
        if saved is not None and library != self.backend.name:
            warnings.warn(f"the random stream was saved on {library}, whose generator "
                          f"state {self.backend.name} cannot read: it goes on from a new "
                          f"generator seeded from (seed, {self.counter + 1})", stacklevel=3)
            saved = None
        try:
            self._generator = None if saved is None else self.backend.restore_generator(saved)
        except (TypeError, ValueError, KeyError, RuntimeError) as err:
            raise InputError(f"the saved {library} generator state cannot be restored "
                             f"({err})") from None

    def reseed(self, seed: int) -> None:
        """Restart the stream from ``seed``."""
        self.seed, self.counter, self._generator = int(seed), 0, None

    def _gen(self) -> Any:
        if self._generator is None:
            self.counter += 1
            self._generator = self.backend.make_generator(derive_seed(self.seed, self.counter))
        return self._generator

    # -- draws ---------------------------------------------------------------
    def normal(self, shape: tuple[int, ...], std: float = 1.0, dtype: Any = None) -> Any:
        """Samples of N(0, std**2)."""
        return self.backend.draw(self._gen(), "normal", shape, dtype, std)

    def uniform(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        """Samples of U[0, 1)."""
        return self.backend.draw(self._gen(), "uniform", shape, dtype)

    def integers(self, high: int, size: int) -> Any:
        """``size`` integers drawn uniformly from [0, high), with replacement (int64)."""
        return self.backend.draw(self._gen(), "integers", (int(size),), None, int(high))

    def permutation(self, n: int) -> Any:
        """A random permutation of ``range(n)`` (int64)."""
        return self.backend.draw(self._gen(), "permutation", (int(n),), None, int(n))

    @contextmanager
    def active(self) -> Iterator[RandomStream]:
        """Make this the stream that unseeded draws use, in this context."""
        token = _ACTIVE_STREAM.set(self)
        try:
            yield self
        finally:
            _ACTIVE_STREAM.reset(token)

    def __repr__(self) -> str:
        return (f"RandomStream({self.backend!r}, seed={self.seed}, "
                f"counter={self.counter})")
