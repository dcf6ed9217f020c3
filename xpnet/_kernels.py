"""Optional fast paths for the hot elementwise chains of training.

A :class:`Kernels` object belongs to one array namespace; :func:`xpnet.backend.kernels_for`
picks and caches it. The generic class uses Array API operators only (in-place
operators where the standard has them) and gives the same results, bit for bit,
as the out-of-place update rules and layers. Subclasses for NumPy, PyTorch and
CuPy replace single methods with faster code for that library, equal to the
generic results up to rounding:

- NumPy: Adam as 12 ufunc passes with ``out=`` over cache-sized chunks, split
  between threads for large parameters; a bitwise ReLU backward (``np.where``
  with a data-dependent mask is branchy and slow; the values are identical);
- PyTorch: its fused Adam kernel and autograd's ReLU backward
  (``threshold_backward``; ``torch.where`` with a random mask is slow on the CPU);
- CuPy: one fused ``ElementwiseKernel`` launch per parameter for the update
  rules, the ReLU backward and the elementwise part of the normalization
  backward, where kernel-launch overhead dominates small layers.

This module imports no array library: :mod:`xpnet.backend`, the only module
that knows concrete libraries, passes the library module in. The CuPy kernel
bodies are written in the common subset of C and Python (assignments,
arithmetic, comparisons, ``sqrt``), so :func:`run_source_on_host` can execute
the very same source on NumPy arrays, which is how the tests check the fused
logic on machines without a GPU.
"""

from __future__ import annotations

import os
from typing import Any

Array = Any

# Elements per chunk for NumPy's Adam: the five arrays of one chunk (w, dw, m, v and
# a scratch buffer, 1.25 MB in float32) stay in a 2 MB L2 cache across the dozen
# passes of a step; smaller chunks pay more per-call overhead (measured best).
NUMPY_CHUNK = 1 << 16


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


class Kernels:
    """Array API versions of the fast paths; the reference for the others.

    The ``*_`` update methods update ``w`` and the state arrays in place and
    return nothing; arithmetic is ordered exactly as in :mod:`xpnet.optim`, so
    the results equal the out-of-place rules'.
    """

    name = "generic"

    def __init__(self, xp: Any) -> None:
        self.xp = xp

    # -- update rules ------------------------------------------------------
    def sgd_(self, w, dw, lr) -> None:
        w -= lr * dw

    def sgd_momentum_(self, w, dw, velocity, lr, momentum) -> None:
        velocity *= momentum
        velocity -= lr * dw
        w += velocity

    def rmsprop_(self, w, dw, cache, lr, decay_rate, eps) -> None:
        cache *= decay_rate
        cache += (1 - decay_rate) * (dw * dw)
        self._scaled_step(w, dw, cache, lr, eps)

    def adagrad_(self, w, dw, cache, lr, eps) -> None:
        cache += dw * dw
        self._scaled_step(w, dw, cache, lr, eps)

    def _scaled_step(self, w, dw, cache, lr, eps) -> None:
        # w - lr * dw / (sqrt(cache) + eps)
        denom = self.xp.sqrt(cache)
        denom += eps
        step = lr * dw
        step /= denom
        w -= step

    def adam_(self, w, dw, m, v, lr, beta1, beta2, eps, t) -> None:
        # m = b1*m + (1-b1)*dw; v = b2*v + (1-b2)*dw**2;
        # w - lr * (m / (1-b1**t)) / (sqrt(v / (1-b2**t)) + eps)
        m *= beta1
        m += (1 - beta1) * dw
        v *= beta2
        v += (1 - beta2) * (dw * dw)
        step = m / (1 - beta1**t)
        step *= lr
        denom = self.xp.sqrt(v / (1 - beta2**t))
        denom += eps
        step /= denom
        w -= step

    # -- layers --------------------------------------------------------------
    def relu_backward(self, dout, x):
        """``dout`` where ``x > 0``, else 0 (a new array; ``dout`` is not modified)."""
        return self.xp.where(x > 0, dout, 0)

    def normalize_backward(self, dout, x_hat, gamma, inv_std, axis: int):
        """Closed-form normalization backward: ``(dx, dgamma, dbeta)``, or None to
        let the caller run the generic code."""
        return None


# ---------------------------------------------------------------------------
# NumPy
# ---------------------------------------------------------------------------

class NumpyKernels(Kernels):
    """NumPy: ufuncs with ``out=`` on chunks that stay in cache.

    Large parameters are split between ``threads`` threads (NumPy releases the
    GIL inside its loops), as PyTorch's CPU kernels split theirs: the count
    comes from ``$XPNET_NUM_THREADS``, else ``$OMP_NUM_THREADS``, else
    ``$OPENBLAS_NUM_THREADS``, else the CPUs this process may run on; set the
    attribute to change it.
    """

    name = "numpy"
    #: parameters smaller than this are updated by the calling thread alone
    parallel_min = 1 << 18

    def __init__(self, xp: Any, np: Any) -> None:
        super().__init__(xp)
        self.np = np
        self.threads = default_threads()
        self._scratch: dict[Any, tuple[Any, ...]] = {}
        self._pool: Any = None
        self._pool_size = 0
        if hasattr(os, "register_at_fork"):  # a forked child has none of the threads
            os.register_at_fork(after_in_child=self._forget_pool)

    def _forget_pool(self) -> None:
        self._pool, self._pool_size = None, 0

    def _buffers(self, dtype, n: int, worker: int = 0):
        key = (dtype, worker)
        bufs = self._scratch.get(key)
        if bufs is None or bufs[0].shape[0] < n:
            bufs = (self.np.empty(n, dtype=dtype),)
            self._scratch[key] = bufs
        return bufs

    def _flat(self, *arrays):
        """1-D views of writeable C-contiguous float arrays of one dtype and shape,
        or None."""
        first = arrays[0]
        for a in arrays:
            if (type(a) is not self.np.ndarray or not a.flags.c_contiguous
                    or a.dtype != first.dtype or a.shape != first.shape):
                return None
        if first.dtype.kind != "f":
            return None
        return [a.reshape(-1) for a in arrays]

    def _run_split(self, n: int, body) -> None:
        """``body(start, stop, worker)`` over [0, n), split between threads when large."""
        workers = max(1, min(int(self.threads), n // (self.parallel_min // 2)))
        if workers == 1:
            body(0, n, 0)
            return
        if self._pool is None or self._pool_size < workers - 1:
            from concurrent.futures import ThreadPoolExecutor

            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool = ThreadPoolExecutor(workers - 1, thread_name_prefix="xpnet")
            self._pool_size = workers - 1
        bounds = [n * i // workers for i in range(workers + 1)]
        futures = [self._pool.submit(body, bounds[i], bounds[i + 1], i)
                   for i in range(1, workers)]
        body(bounds[0], bounds[1], 0)
        for f in futures:
            f.result()

    def adam_(self, w, dw, m, v, lr, beta1, beta2, eps, t) -> None:
        flat = self._flat(w, dw, m, v)
        if flat is None or not (w.flags.writeable and m.flags.writeable
                                and v.flags.writeable):
            return super().adam_(w, dw, m, v, lr, beta1, beta2, eps, t)
        np = self.np
        wf, gf, mf, vf = flat
        c1, c2 = 1 - beta1**t, 1 - beta2**t
        omb1, omb2 = 1 - beta1, 1 - beta2
        mul, add, div, sqrt, sub = np.multiply, np.add, np.divide, np.sqrt, np.subtract
        # lr * (m / c1) / (sqrt(v / c2) + eps) == alpha * m / (sqrt(v) + eps_hat): the
        # bias corrections folded into two scalars (PyTorch's form), 12 passes, not 14
        alpha = lr * c2**0.5 / c1
        eps_hat = eps * c2**0.5

        def body(first: int, last: int, worker: int) -> None:
            buf = self._buffers(wf.dtype, min(last - first, NUMPY_CHUNK), worker)[0]
            for start in range(first, last, NUMPY_CHUNK):
                stop = min(start + NUMPY_CHUNK, last)
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

        self._run_split(wf.shape[0], body)

    def relu_backward(self, dout, x):
        np = self.np
        if (type(dout) is not np.ndarray or type(x) is not np.ndarray
                or dout.shape != x.shape or dout.dtype.kind != "f"):
            return super().relu_backward(dout, x)
        # keep dout's bits where x > 0 and clear them elsewhere: the same values
        # (+0.0 where x <= 0) as where(x > 0, dout, 0), without its branches
        ints = np.dtype(f"i{dout.dtype.itemsize}")
        mask = np.greater(x, 0).astype(ints)
        np.negative(mask, out=mask)
        np.bitwise_and(dout.view(ints), mask, out=mask)
        return mask.view(dout.dtype)


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------

class TorchKernels(Kernels):
    """PyTorch: its own fused Adam kernel and ReLU backward.

    The generic in-place code allocates a temporary per operation, and PyTorch's
    CPU allocator returns large blocks to the system, so every temporary costs
    fresh pages; ``torch.where`` with a data-dependent mask is branchy. The
    kernels below are the ones ``torch.optim.Adam(fused=True)`` and autograd's
    ReLU use. Adam's fused kernel orders its arithmetic differently (``lerp``
    for m, ``sqrt(v) / sqrt(1 - beta2**t)``), so it agrees with the generic
    rule to rounding, not bit for bit.
    """

    name = "torch"

    def __init__(self, xp: Any, torch: Any) -> None:
        super().__init__(xp)
        self.torch = torch
        self._fused_adam = getattr(torch, "_fused_adam_", None)
        self._threshold_backward = getattr(getattr(torch.ops, "aten", None),
                                           "threshold_backward", None)

    def _tensors(self, *arrays) -> bool:
        first = arrays[0]
        return all(isinstance(a, self.torch.Tensor) and a.dtype == first.dtype
                   and a.shape == first.shape and a.device == first.device for a in arrays)

    def adam_(self, w, dw, m, v, lr, beta1, beta2, eps, t) -> None:
        if self._fused_adam is not None and self._tensors(w, dw, m, v) \
                and w.dtype.is_floating_point:
            step = self.torch.full((), float(t), dtype=self.torch.float32, device=w.device)
            try:
                self._fused_adam([w], [dw], [m], [v], [], [step], lr=float(lr),
                                 beta1=float(beta1), beta2=float(beta2), weight_decay=0.0,
                                 eps=float(eps), amsgrad=False, maximize=False)
                return
            except (RuntimeError, TypeError, NotImplementedError):
                self._fused_adam = None  # not for this build or device: generic from now on
        super().adam_(w, dw, m, v, lr, beta1, beta2, eps, t)

    def relu_backward(self, dout, x):
        if self._threshold_backward is not None and self._tensors(dout, x):
            return self._threshold_backward(dout, x, 0)
        return super().relu_backward(dout, x)


# ---------------------------------------------------------------------------
# CuPy: fused elementwise kernels, built on first use
# ---------------------------------------------------------------------------

# Kernel bodies in the common subset of C and Python (see run_source_on_host).
# Scalars come precomputed (1 - beta1, 1 - beta1**t, ...) so that nothing is
# rounded differently from the generic code except by FMA contraction.
CUPY_SOURCES: dict[str, tuple[str, str, str]] = {
    # name: (in_params, out_params, operation)
    "sgd": ("T dw, T lr", "T w", "w = w - lr * dw;"),
    "sgd_momentum": (
        "T dw, T lr, T momentum", "T w, T velocity",
        "velocity = momentum * velocity - lr * dw; w = w + velocity;"),
    "rmsprop": (
        "T dw, T lr, T decay, T one_minus_decay, T eps", "T w, T cache",
        "cache = decay * cache + one_minus_decay * (dw * dw); "
        "w = w - lr * dw / (sqrt(cache) + eps);"),
    "adagrad": (
        "T dw, T lr, T eps", "T w, T cache",
        "cache = cache + dw * dw; w = w - lr * dw / (sqrt(cache) + eps);"),
    "adam": (
        "T dw, T lr, T beta1, T one_minus_beta1, T beta2, T one_minus_beta2, "
        "T bias1, T bias2, T eps", "T w, T m, T v",
        "m = beta1 * m + one_minus_beta1 * dw; "
        "v = beta2 * v + one_minus_beta2 * (dw * dw); "
        "w = w - lr * (m / bias1) / (sqrt(v / bias2) + eps);"),
    "relu_backward": ("T dout, T x", "T dx", "dx = dout * (x > 0);"),
    # dx = (dout*gamma - mean(dout*gamma) - x_hat*mean(dout*gamma*x_hat)) * inv_std, with
    # the two means given per feature as gamma * dbeta / n and gamma * dgamma / n
    "normalize_backward": (
        "T dout, T x_hat, T gamma, T mean_dx_hat, T mean_proj, T inv_std", "T dx",
        "dx = (dout * gamma - mean_dx_hat - x_hat * mean_proj) * inv_std;"),
}


def run_source_on_host(name: str, np: Any, **arrays: Any) -> dict[str, Any]:
    """Execute the CuPy kernel body ``name`` with NumPy arrays (for tests).

    ``arrays`` maps every parameter name to an array or scalar; returns the
    output parameters' values after the body ran.
    """
    _, out_params, operation = CUPY_SOURCES[name]
    scope = {"sqrt": np.sqrt, **arrays}
    exec(compile(operation, f"<cupy kernel {name}>", "exec"), {}, scope)  # noqa: S102
    return {p.split()[-1]: scope[p.split()[-1]] for p in out_params.split(",")}


class CupyKernels(Kernels):
    name = "cupy"

    def __init__(self, xp: Any, cupy: Any) -> None:
        super().__init__(xp)
        self.cupy = cupy
        self._compiled: dict[str, Any] = {}

    def _kernel(self, name: str):
        kernel = self._compiled.get(name)
        if kernel is None:
            in_params, out_params, operation = CUPY_SOURCES[name]
            kernel = self.cupy.ElementwiseKernel(in_params, out_params, operation,
                                                 f"xpnet_{name}")
            self._compiled[name] = kernel
        return kernel

    def _ok(self, *arrays) -> bool:
        first = arrays[0]
        return all(isinstance(a, self.cupy.ndarray) and a.dtype == first.dtype
                   and a.shape == first.shape for a in arrays)

    def sgd_(self, w, dw, lr) -> None:
        if not self._ok(w, dw):
            return super().sgd_(w, dw, lr)
        self._kernel("sgd")(dw, lr, w)

    def sgd_momentum_(self, w, dw, velocity, lr, momentum) -> None:
        if not self._ok(w, dw, velocity):
            return super().sgd_momentum_(w, dw, velocity, lr, momentum)
        self._kernel("sgd_momentum")(dw, lr, momentum, w, velocity)

    def rmsprop_(self, w, dw, cache, lr, decay_rate, eps) -> None:
        if not self._ok(w, dw, cache):
            return super().rmsprop_(w, dw, cache, lr, decay_rate, eps)
        self._kernel("rmsprop")(dw, lr, decay_rate, 1 - decay_rate, eps, w, cache)

    def adagrad_(self, w, dw, cache, lr, eps) -> None:
        if not self._ok(w, dw, cache):
            return super().adagrad_(w, dw, cache, lr, eps)
        self._kernel("adagrad")(dw, lr, eps, w, cache)

    def adam_(self, w, dw, m, v, lr, beta1, beta2, eps, t) -> None:
        if not self._ok(w, dw, m, v):
            return super().adam_(w, dw, m, v, lr, beta1, beta2, eps, t)
        self._kernel("adam")(dw, lr, beta1, 1 - beta1, beta2, 1 - beta2,
                             1 - beta1**t, 1 - beta2**t, eps, w, m, v)

    def relu_backward(self, dout, x):
        if not self._ok(dout, x):
            return super().relu_backward(dout, x)
        return self._kernel("relu_backward")(dout, x)

    def normalize_backward(self, dout, x_hat, gamma, inv_std, axis: int):
        if not (self._ok(dout, x_hat) and gamma.dtype == inv_std.dtype == dout.dtype):
            return None
        cp = self.cupy
        n = x_hat.shape[axis]
        dbeta = cp.sum(dout, axis=0)
        dgamma = cp.sum(dout * x_hat, axis=0)
        if axis == 0:  # batchnorm: per-feature means over the batch
            mean_dx_hat = gamma * dbeta / n
            mean_proj = gamma * dgamma / n
        else:  # layernorm: per-sample means over the features
            dx_hat = dout * gamma
            mean_dx_hat = cp.sum(dx_hat, axis=1, keepdims=True) / n
            mean_proj = cp.sum(dx_hat * x_hat, axis=1, keepdims=True) / n
        dx = self._kernel("normalize_backward")(dout, x_hat, gamma, mean_dx_hat, mean_proj,
                                                inv_std)
        return dx, dgamma, dbeta
