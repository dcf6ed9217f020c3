"""CuPy fast paths: one fused ``ElementwiseKernel`` launch instead of a chain.

On a GPU, small layers are bound by kernel launches; each kernel below does
in one launch what the reference does in several: the update rules, the ReLU
backward and the elementwise part of the normalization backward.

The kernel bodies are written in the common subset of C and Python
(assignments, arithmetic, comparisons, ``sqrt`` and ``where_``, which the
CUDA preamble defines as ``c ? a : b``). :class:`HostElementwiseKernel`
executes the very same source on NumPy arrays, so the registry test runs
these fast paths on machines without a GPU: :func:`build_fast_paths` takes
the array module (CuPy, or NumPy standing in for it) and the kernel factory.

This module does not import CuPy itself; :func:`fast_paths` does, when the
registry first meets a CuPy array.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .registry import EXACT, FastPath, rtol

__all__ = ["CUPY_PREAMBLE", "CUPY_SOURCES", "HostElementwiseKernel", "build_fast_paths",
           "fast_paths"]

#: Defined for every kernel: ``where_(c, a, b)`` is ``c ? a : b`` in ``a``'s type.
CUPY_PREAMBLE = """
template <typename T, typename U>
__device__ __forceinline__ T where_(bool c, T a, U b) { return c ? a : (T)b; }
"""

# Scalars come precomputed (1 - beta1, 1 - beta1**t, ...) so that nothing is
# rounded differently from the reference except by FMA contraction.
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
    "relu_backward": ("T dout, T x", "T dx", "dx = where_(x > 0, dout, 0);"),
    # dx = (dout*gamma - mean(dout*gamma) - x_hat*mean(dout*gamma*x_hat)) * inv_std, the
    # two means over the statistics' axes given (broadcast) as arrays
    "normalize_backward": (
        "T dout, T x_hat, T gamma, T mean_dx_hat, T mean_proj, T inv_std", "T dx",
        "dx = (dout * gamma - mean_dx_hat - x_hat * mean_proj) * inv_std;"),
}


def _names(params: str) -> list[str]:
    return [p.split()[-1] for p in params.split(",")]


class HostElementwiseKernel:
    """``cupy.ElementwiseKernel`` for NumPy arrays: runs a :data:`CUPY_SOURCES`
    body with NumPy, for tests on machines without a GPU.

    Called like the CuPy kernel: the inputs, then optionally the outputs,
    which are read and updated in place. Scalars of type ``T`` are cast to the
    arrays' dtype first, as CuPy does.
    """

    def __init__(self, name: str, np: Any) -> None:
        self.name = name
        self.np = np
        in_params, out_params, self.operation = CUPY_SOURCES[name]
        self.ins, self.outs = _names(in_params), _names(out_params)
        self.code = compile(self.operation, f"<cupy kernel {name}>", "exec")

    def __call__(self, *args: Any) -> Any:
        np = self.np
        given = dict(zip(self.ins + self.outs, args, strict=False))
        dtype = next(v.dtype for v in given.values() if isinstance(v, np.ndarray))
        scope = {name: (value if isinstance(value, np.ndarray) else np.asarray(value, dtype))
                 for name, value in given.items()}
        scope["sqrt"] = np.sqrt
        scope["where_"] = lambda c, a, b: np.where(c, a, np.asarray(b, dtype))
        with np.errstate(all="ignore"):
            exec(self.code, {}, scope)  # noqa: S102
        results = []
        for name in self.outs:
            if name in given:
                given[name][...] = scope[name]
                results.append(given[name])
            else:
                results.append(np.asarray(scope[name], dtype=dtype))
        return results[0] if len(results) == 1 else tuple(results)


def build_fast_paths(lib: Any, make_kernel: Callable[[str], Any]) -> list[FastPath]:
    """The CuPy fast paths over the array module ``lib`` with kernels from
    ``make_kernel(name)`` (compiled once per name)."""
    compiled: dict[str, Any] = {}

    def kernel(name: str) -> Any:
        k = compiled.get(name)
        if k is None:
            k = compiled[name] = make_kernel(name)
        return k

    def alike(*arrays) -> bool:
        first = arrays[0]
        return all(isinstance(a, lib.ndarray) and a.dtype == first.dtype
                   and a.shape == first.shape for a in arrays) and first.dtype.kind == "f"

    def sgd_(w, dw, lr):
        kernel("sgd")(dw, lr, w)

    def sgd_momentum_(w, dw, velocity, lr, momentum):
        kernel("sgd_momentum")(dw, lr, momentum, w, velocity)

    def rmsprop_(w, dw, cache, lr, decay_rate, eps):
        kernel("rmsprop")(dw, lr, decay_rate, 1 - decay_rate, eps, w, cache)

    def adagrad_(w, dw, cache, lr, eps):
        kernel("adagrad")(dw, lr, eps, w, cache)

    def adam_(w, dw, m, v, lr, beta1, beta2, eps, t):
        kernel("adam")(dw, lr, beta1, 1 - beta1, beta2, 1 - beta2, 1 - beta1**t,
                       1 - beta2**t, eps, w, m, v)

    def relu_backward(dout, x):
        return kernel("relu_backward")(dout, x)

    def supports_normalize(dout, x_hat, gamma, inv_std, stat_axes):
        return (alike(dout, x_hat) and isinstance(gamma, lib.ndarray)
                and isinstance(inv_std, lib.ndarray)
                and gamma.dtype == inv_std.dtype == dout.dtype)

    def normalize_backward(dout, x_hat, gamma, inv_std, stat_axes):
        param_axes = tuple(i for i, s in enumerate(gamma.shape) if s == 1)
        n = 1
        for axis in stat_axes:
            n *= x_hat.shape[axis]
        dbeta = lib.sum(dout, axis=param_axes, keepdims=True)
        dgamma = lib.sum(dout * x_hat, axis=param_axes, keepdims=True)
        if param_axes == tuple(stat_axes):  # gamma constant over the statistics' axes
            mean_dx_hat = gamma * dbeta / n
            mean_proj = gamma * dgamma / n
        else:
            dx_hat = dout * gamma
            mean_dx_hat = lib.sum(dx_hat, axis=stat_axes, keepdims=True) / n
            mean_proj = lib.sum(dx_hat * x_hat, axis=stat_axes, keepdims=True) / n
        dx = kernel("normalize_backward")(dout, x_hat, gamma, mean_dx_hat, mean_proj, inv_std)
        return dx, dgamma, dbeta

    fused = "one fused ElementwiseKernel launch"
    update_tol = rtol(1e-6, 1e-14)  # FMA contraction
    return [
        FastPath("sgd_", "cupy", sgd_, lambda w, dw, lr: alike(w, dw), update_tol, fused),
        FastPath("sgd_momentum_", "cupy", sgd_momentum_,
                 lambda w, dw, v, *_: alike(w, dw, v), update_tol, fused),
        FastPath("rmsprop_", "cupy", rmsprop_, lambda w, dw, c, *_: alike(w, dw, c),
                 update_tol, fused),
        FastPath("adagrad_", "cupy", adagrad_, lambda w, dw, c, *_: alike(w, dw, c),
                 update_tol, fused),
        FastPath("adam_", "cupy", adam_, lambda w, dw, m, v, *_: alike(w, dw, m, v),
                 update_tol, fused),
        FastPath("relu_backward", "cupy", relu_backward, lambda dout, x: alike(dout, x),
                 EXACT, fused),
        FastPath("normalize_backward", "cupy", normalize_backward, supports_normalize,
                 rtol(1e-5, 1e-12), "the elementwise chain of dx in one kernel launch"),
    ]


def fast_paths() -> list[FastPath]:
    """CuPy's registered fast paths, compiled on first use."""
    import cupy

    def make_kernel(name: str) -> Any:
        in_params, out_params, operation = CUPY_SOURCES[name]
        return cupy.ElementwiseKernel(in_params, out_params, operation, f"xpnet_{name}",
                                      preamble=CUPY_PREAMBLE)

    return build_fast_paths(cupy, make_kernel)
