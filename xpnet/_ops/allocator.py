"""Keep the training step's large temporaries in reused heap memory (glibc).

glibc's ``malloc`` serves blocks above its mmap threshold (128 KiB at start)
with fresh ``mmap`` pages and unmaps them on ``free``. It is meant to raise the
threshold as such blocks are freed, but on a CPU training step (minibatch 100 x
3072 floats, a 3072 x 100 weight gradient: about 1.2 MB each) it did not: every
step took about 600 page faults, for the life of the process, and ran 1.4-1.7x
slower than the same step after the threshold was set (measured: 490 steps of
FullyConnectedNet [100]*5 on NumPy, 2.1-2.5 s and 296k minor faults against
1.35-1.45 s and 10 faults). PyTorch CPU tensors come from the same ``malloc``.

:func:`reuse_freed_memory` sets the threshold to 32 MiB (glibc's own upper
limit for its adaptive threshold) and the trim threshold to twice that, which
is what glibc's adaptation would reach: a process then keeps up to 64 MiB of
freed memory for reuse instead of returning it at once. The Solver calls it
when it trains on a host backend. It does nothing on other C libraries, when
``MALLOC_MMAP_THRESHOLD_`` is already set (the user has chosen), or when
``XPNET_MALLOC_TUNING=0``.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["reuse_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20

_state: dict[str, bool] = {}


def reuse_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds once per process.

    Returns
    -------
    bool
        Whether the thresholds are set (now or by an earlier call).
    """
    if "done" in _state:
        return _state["done"]
    _state["done"] = _set_thresholds()
    return _state["done"]


def _set_thresholds() -> bool:
    if os.environ.get("XPNET_MALLOC_TUNING", "1") == "0":
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD))
