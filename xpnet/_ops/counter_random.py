"""A counter-based random stream computed on the device with Array API operations.

Draw ``k`` of the stream hashes the integers ``counter, counter + 1, ...`` with
a keyed 32-bit integer hash; the counter is a 0-D int64 array on the device
and advances there. Nothing passes through the host, so a training step that
draws from this stream can be captured once (a CUDA graph) and replayed: each
replay reads the advanced counter. The numbers are the same on every backend
(they are integer arithmetic), so a run gives the same minibatches and dropout
masks on NumPy, PyTorch, CuPy and ``array_api_strict``.

The hash is Chris Wellons' "lowbias32" (public domain), applied twice with the
key mixed in between; its 32-bit products are taken modulo 2**32 in int64,
in 16-bit halves so that no product overflows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..backend import _ACTIVE_STREAM, Backend, _derive_seed, fresh_seed
from ..errors import InputError

__all__ = ["CounterStream"]

Array = Any
_MASK = 0xFFFFFFFF


def _mul32(x: Array, c: int) -> Array:
    """``x * c mod 2**32`` for int64 ``x`` in [0, 2**32), without int64 overflow:
    the high 16 bits of ``c`` contribute only their product's low 16 bits."""
    return ((((x * (c >> 16)) & 0xFFFF) << 16) + x * (c & 0xFFFF)) & _MASK


def _hash32(xp, x: Array) -> Array:
    """lowbias32 of int64 ``x`` in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


class CounterStream:
    """Random numbers from a keyed hash of a device-side counter.

    Same interface as :class:`xpnet.backend.RandomStream` (``integers``,
    ``permutation``, ``uniform``, ``normal``, ``state``, ``set_state``,
    ``reseed``, ``active``), so the Solver and the layers use either.

    Parameters
    ----------
    backend : Backend
    seed : int, optional
        Default: fresh entropy.
    """

    #: what :meth:`state` records as ``kind``; checkpoints of another kind are refused
    kind = "counter"

    def __init__(self, backend: Backend, seed: int | None = None) -> None:
        self.backend = backend
        self.seed = fresh_seed() if seed is None else int(seed)
        xp = backend.xp
        key = _derive_seed(self.seed, 7)
        self._keys = (key & _MASK, (key >> 32) & _MASK)
        self.counter = xp.zeros((), dtype=xp.int64, device=backend.device)

    # -- state ---------------------------------------------------------------
    def state(self) -> dict[str, int]:
        """``{'seed', 'counter'}`` (reading the counter waits for the device)."""
        return {"seed": self.seed, "counter": int(self.counter), "kind": self.kind}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state` (of a counter stream)."""
        kind = state.get("kind", "generator")
        if kind != self.kind:
            raise InputError(f"a random-stream state of kind {kind!r} cannot restore a "
                             f"{self.kind!r} stream")
        self.__init__(self.backend, int(state["seed"]))  # type: ignore[misc]
        self.counter += int(state["counter"])

    def reseed(self, seed: int) -> None:
        self.__init__(self.backend, seed)  # type: ignore[misc]

    # -- draws ---------------------------------------------------------------
    def _bits(self, n: int) -> Array:
        """``n`` 32-bit random integers (int64 in [0, 2**32)); advances the counter."""
        xp = self.backend.xp
        index = self.counter + xp.arange(n, dtype=xp.int64, device=self.backend.device)
        self.counter += n
        x = _hash32(xp, (index & _MASK) ^ self._keys[0])
        return _hash32(xp, x ^ ((index >> 32) & _MASK) ^ self._keys[1])

    def integers(self, high: int, size: int) -> Array:
        """``size`` integers uniform in [0, high) (high < 2**31), int64."""
        return (self._bits(int(size)) * int(high)) >> 32

    def permutation(self, n: int) -> Array:
        """A random permutation of ``range(n)`` (int64): the order of ``n`` random keys."""
        xp = self.backend.xp
        return xp.astype(xp.argsort(self._bits(int(n)), stable=True), xp.int64)

    def uniform(self, shape: tuple[int, ...], dtype: Any = None) -> Array:
        """Samples of U[0, 1) of ``shape`` (24 random bits for float32, 53 for float64)."""
        xp = self.backend.xp
        dtype = self.backend.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        n = math.prod(shape)
        if dtype == xp.float32:
            u = xp.astype(self._bits(n) >> 8, xp.float32) * (2.0 ** -24)
        else:
            bits = self._bits(2 * n)
            hi, lo = bits[:n] >> 5, bits[n:] >> 6
            u = xp.astype(hi * 67108864 + lo, xp.float64) * (2.0 ** -53)
        return xp.reshape(u, shape)

    def normal(self, shape: tuple[int, ...], std: float = 1.0, dtype: Any = None) -> Array:
        """Samples of N(0, std**2) by the Box-Muller transform."""
        xp = self.backend.xp
        shape = tuple(int(s) for s in shape)
        n = math.prod(shape)
        u1 = 1.0 - self.uniform((n,), dtype)  # (0, 1]: the log is finite
        u2 = self.uniform((n,), dtype)
        z = xp.sqrt(-2.0 * xp.log(u1)) * xp.cos((2 * math.pi) * u2)
        return xp.reshape(z * std if std != 1.0 else z, shape)

    @contextmanager
    def active(self) -> Iterator[CounterStream]:
        """Make this the stream that unseeded draws on its backend use (dropout)."""
        token = _ACTIVE_STREAM.set(self)  # type: ignore[arg-type]
        try:
            yield self
        finally:
            _ACTIVE_STREAM.reset(token)

    def __repr__(self) -> str:
        return f"CounterStream({self.backend.name!r}, seed={self.seed})"
