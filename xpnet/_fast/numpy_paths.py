"""NumPy fast paths: ufuncs with ``out=`` on chunks that stay in cache.

- ``adam_``: 12 ufunc passes with ``out=`` over cache-sized chunks (the bias
  corrections folded into two scalars, PyTorch's form), split between threads
  for large parameters (NumPy releases the GIL inside its loops);
- ``relu_backward``: a bit mask instead of ``np.where`` (whose data-dependent
  branches are slow); the same values, +0.0 where nothing passes.

Scratch buffers belong to the thread that uses them, so trainings in several
threads of one process never share one.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .registry import EXACT, FastPath, rtol

__all__ = ["adam_", "default_threads", "fast_paths", "relu_backward", "supports_adam",
           "supports_relu_backward"]

# Elements per chunk for Adam: the five arrays of one chunk (w, dw, m, v and a
# scratch buffer, 1.25 MB in float32) stay in a 2 MB L2 cache across the dozen
# passes of a step; smaller chunks pay more per-call overhead (measured best).
CHUNK = 1 << 16
#: parameters smaller than this are updated by the calling thread alone
PARALLEL_MIN = 1 << 18


def default_threads() -> int:
    """Threads for the CPU kernels: ``$XPNET_NUM_THREADS``, ``$OMP_NUM_THREADS``,
    ``$OPENBLAS_NUM_THREADS``, else the CPUs this process may run on."""
    for var in ("XPNET_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _Workers:
    """A lazily made thread pool shared by the kernels, forgotten in forked children."""

    def __init__(self) -> None:
        self.threads = default_threads()
        self.parallel_min = PARALLEL_MIN
        self._pool: ThreadPoolExecutor | None = None
        self._size = 0
        self._lock = threading.Lock()
        self.scratch = threading.local()
        if hasattr(os, "register_at_fork"):  # a forked child has none of the threads
            os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._pool, self._size = None, 0

    def buffer(self, dtype: Any, n: int) -> np.ndarray:
        """This thread's scratch buffer of at least ``n`` elements of ``dtype``."""
        buffers = getattr(self.scratch, "buffers", None)
        if buffers is None:
            buffers = self.scratch.buffers = {}
        buf = buffers.get(dtype)
        if buf is None or buf.shape[0] < n:
            buf = buffers[dtype] = np.empty(n, dtype=dtype)
        return buf

    def _executor(self, helpers: int) -> ThreadPoolExecutor:
        """A pool of at least ``helpers`` threads (``threads - 1`` at first: a
        ThreadPoolExecutor starts its threads only when work needs them).

        A pool that proves too small is replaced, never shut down: another thread
        may hold it and be about to submit to it (shutting it down made that
        submit raise). The old pool's idle threads end once its last holder drops
        it."""
        with self._lock:
            if self._pool is None or self._size < helpers:
                size = max(int(self.threads) - 1, helpers)
                self._pool = ThreadPoolExecutor(size, thread_name_prefix="xpnet")
                self._size = size
            return self._pool

    def run_split(self, n: int, body) -> None:
        """``body(start, stop)`` over [0, n), split between threads when large."""
        workers = max(1, min(int(self.threads), n // max(self.parallel_min // 2, 1)))
        if workers == 1:
            body(0, n)
            return
        pool = self._executor(workers - 1)
        bounds = [n * i // workers for i in range(workers + 1)]
        futures = [pool.submit(body, bounds[i], bounds[i + 1]) for i in range(1, workers)]
        body(bounds[0], bounds[1])
        for f in futures:
            f.result()


WORKERS = _Workers()


def _plain(a: Any) -> bool:
    return type(a) is np.ndarray and a.flags.c_contiguous


def supports_adam(w, dw, m, v, lr, beta1, beta2, eps, t) -> bool:
    """C-contiguous float arrays of one dtype and shape; w, m, v writeable."""
    return (_plain(w) and _plain(dw) and _plain(m) and _plain(v)
            and w.dtype.kind == "f" and w.dtype == dw.dtype == m.dtype == v.dtype
            and w.shape == dw.shape == m.shape == v.shape
            and w.flags.writeable and m.flags.writeable and v.flags.writeable)


def adam_(w, dw, m, v, lr, beta1, beta2, eps, t) -> None:
    """Adam in 12 chunked passes; see :func:`xpnet._fast.reference.adam_`."""
    wf, gf, mf, vf = (a.reshape(-1) for a in (w, dw, m, v))
    c1, c2 = 1 - beta1**t, 1 - beta2**t
    omb1, omb2 = 1 - beta1, 1 - beta2
    mul, add, div, sqrt, sub = np.multiply, np.add, np.divide, np.sqrt, np.subtract
    # lr * (m / c1) / (sqrt(v / c2) + eps) == alpha * m / (sqrt(v) + eps_hat)
    alpha = lr * c2**0.5 / c1
    eps_hat = eps * c2**0.5
    dtype = wf.dtype

    def body(first: int, last: int) -> None:
        buf = WORKERS.buffer(dtype, min(last - first, CHUNK))
        for start in range(first, last, CHUNK):
            stop = min(start + CHUNK, last)
            wc, gc, mc, vc = wf[start:stop], gf[start:stop], mf[start:stop], vf[start:stop]
            tmp = buf[:stop - start]
            mul(mc, beta1, out=mc)  # m = b1 * m + (1 - b1) * dw
            mul(gc, omb1, out=tmp)
            add(mc, tmp, out=mc)
            mul(gc, gc, out=tmp)  # v = b2 * v + (1 - b2) * dw**2
            mul(tmp, omb2, out=tmp)
            mul(vc, beta2, out=vc)
            add(vc, tmp, out=vc)
            sqrt(vc, out=tmp)  # w -= alpha * m / (sqrt(v) + eps_hat)
            add(tmp, eps_hat, out=tmp)
            div(mc, tmp, out=tmp)
            mul(tmp, alpha, out=tmp)
            sub(wc, tmp, out=wc)

    WORKERS.run_split(wf.shape[0], body)


def supports_relu_backward(dout, x) -> bool:
    """NumPy float arrays of one shape."""
    return (type(dout) is np.ndarray and type(x) is np.ndarray and dout.shape == x.shape
            and dout.dtype.kind == "f")


def relu_backward(dout, x):
    """Keep ``dout``'s bits where ``x > 0`` and clear them elsewhere."""
    ints = np.dtype(f"i{dout.dtype.itemsize}")
    mask = np.greater(x, 0).astype(ints)
    np.negative(mask, out=mask)  # 0 -> 0, 1 -> all bits set
    np.bitwise_and(dout.view(ints), mask, out=mask)
    return mask.view(dout.dtype)


def supports_add_window(dst, src, kh, kw, stride) -> bool:
    """A writeable NumPy destination and a source of its dtype."""
    return (type(dst) is np.ndarray and type(src) is np.ndarray and dst.flags.writeable
            and dst.dtype == src.dtype)


def add_window(dst, src, kh, kw, stride) -> None:
    """Add into the strided view itself (the reference writes the sum back)."""
    oh, ow = src.shape[2], src.shape[3]
    view = dst[:, :, kh:kh + stride * (oh - 1) + 1:stride, kw:kw + stride * (ow - 1) + 1:stride]
    np.add(view, src, out=view)


def supports_max_pool_windows(x, pool_height, pool_width, stride, out_h, out_w) -> bool:
    """4-D NumPy float arrays."""
    return type(x) is np.ndarray and x.ndim == 4 and x.dtype.kind == "f"


def max_pool_windows(x, pool_height, pool_width, stride, out_h, out_w):
    """One copy of the windows, then ``argmax`` (the first maximum; NumPy's argmax
    takes the first NaN) and the values at it."""
    windows = np.lib.stride_tricks.sliding_window_view(x, (pool_height, pool_width),
                                                       axis=(2, 3))
    windows = windows[:, :, :stride * (out_h - 1) + 1:stride, :stride * (out_w - 1) + 1:stride]
    flat = windows.reshape(*windows.shape[:4], pool_height * pool_width)
    arg = np.argmax(flat, axis=-1)
    out = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    return out, arg.astype(np.int32)


def supports_max_pool_tiles_backward(dout, x, out, p) -> bool:
    """NumPy float arrays, ``dout`` of ``out``'s shape, ``x`` 4-D."""
    return (type(dout) is np.ndarray and type(x) is np.ndarray and type(out) is np.ndarray
            and dout.dtype.kind == "f" and x.ndim == 4 and dout.shape == out.shape)


def max_pool_tiles_backward(dout, x, out, p):
    """Boolean passes into preallocated masks, and ``dout``'s bits kept by an
    integer mask (``np.where`` on a random mask is branchy: 4x slower)."""
    ints = np.dtype(f"i{dout.dtype.itemsize}")
    dx = np.empty_like(x, dtype=dout.dtype)  # every entry lies in exactly one tile
    hit, nan, rest = (np.empty_like(out, dtype=bool) for _ in range(3))
    mask = np.empty_like(out, dtype=ints)
    bits = dout.view(ints)
    last = p * p - 1
    for k in range(p * p):
        i, j = divmod(k, p)
        v = x[:, :, i::p, j::p]
        np.equal(v, out, out=hit)
        np.not_equal(v, v, out=nan)
        np.logical_or(hit, nan, out=hit)
        if k:
            np.logical_and(hit, rest, out=hit)
        if k == 0:
            np.logical_not(hit, out=rest)
        elif k < last:
            np.logical_xor(rest, hit, out=rest)
        np.copyto(mask, hit, casting="unsafe")
        np.negative(mask, out=mask)  # 0 -> 0, 1 -> all bits set
        np.bitwise_and(bits, mask, out=dx[:, :, i::p, j::p].view(ints))
    return dx


def fast_paths() -> list[FastPath]:
    """NumPy's registered fast paths."""
    return [
        FastPath("add_window_", "numpy", add_window, supports_add_window, EXACT,
                 "adds into the strided view in place, without writing it back"),
        FastPath("max_pool_windows", "numpy", max_pool_windows, supports_max_pool_windows,
                 EXACT, "a sliding-window view, one copy and one argmax"),
        FastPath("max_pool_tiles_backward", "numpy", max_pool_tiles_backward,
                 supports_max_pool_tiles_backward, EXACT,
                 "boolean passes into reused masks and an integer bit mask, no np.where"),
        FastPath("adam_", "numpy", adam_, supports_adam, rtol(2e-6, 1e-14),
                 "12 chunked, cache-resident passes, split between threads; bias "
                 "corrections folded into two scalars"),
        FastPath("relu_backward", "numpy", relu_backward, supports_relu_backward, EXACT,
                 "a bit mask instead of a branchy np.where"),
    ]
