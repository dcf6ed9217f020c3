"""One normalization for every layout: batch, layer, spatial batch and group norm.

The input is viewed in a *work shape* in which the statistics are taken over
``stat_axes`` and the scale and shift (``gamma``, ``beta``) are constant along
the axes where their work shape is 1:

==================  ==================  ===============  ===================
layer               work shape of x     stat_axes        gamma's work shape
==================  ==================  ===============  ===================
batchnorm           (N, D)              (0,)             (1, D)
layernorm           (N, D)              (1,)             (1, D)
spatial batchnorm   (N, C, H, W)        (0, 2, 3)        (1, C, 1, 1)
group norm          (N, G, C/G, H, W)   (2, 3, 4)        (1, G, C/G, 1, 1)
==================  ==================  ===============  ===================

:func:`forward` and the two backward passes do the reshaping, so the layers
only say which row of this table they are.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .._fast import ops, reference
from ..backend import namespace_of
from ..errors import InputError
from .checks import shape_str

Array = Any

#: data-parallel training's reducer of batch statistics (None: this process's batch)
_BATCH_SYNC: contextvars.ContextVar[Callable | None] = contextvars.ContextVar(
    "xpnet_batch_sync", default=None)


@contextmanager
def synchronized(reduce: Callable[[list[Array]], list[Array]]) -> Iterator[None]:
    """Batch statistics over every rank's slice while in this context (sync batchnorm).

    ``reduce(arrays)`` returns the sum over the ranks of each array scaled by the
    rank's share of the global batch. The forward pass then normalizes with the
    global batch's mean and (biased) variance, and the backward pass uses the
    global sums of ``dout`` and ``dout * x_hat``; the parameter gradients stay the
    rank's own (the gradient all-reduce sums them). Only the statistics taken over
    the batch axis (batchnorm, spatial batchnorm) are affected.
    """
    token = _BATCH_SYNC.set(reduce)
    try:
        yield
    finally:
        _BATCH_SYNC.reset(token)


def _float_param(xp, p, x):
    """Integer (or boolean) gamma / beta promoted to x's dtype."""
    if not xp.isdtype(p.dtype, "real floating"):
        return xp.astype(p, x.dtype)
    return p


def forward(xp, x: Array, gamma: Array, beta: Array, eps: float,
            stat_axes: tuple[int, ...], work_shape: tuple[int, ...],
            param_work_shape: tuple[int, ...]) -> tuple[Array, dict, Array, Array]:
    """Normalize ``x`` over ``stat_axes`` of its work shape, then scale and shift.

    Returns
    -------
    out : array of x's shape
    cache : dict
        For :func:`backward` and :func:`backward_graph`.
    mean, var : arrays in the work shape, size 1 along ``stat_axes``
        The statistics (biased variance).
    """
    gamma, beta = _float_param(xp, gamma, x), _float_param(xp, beta, x)
    xw = xp.reshape(x, work_shape) if tuple(x.shape) != tuple(work_shape) else x
    g = xp.reshape(gamma, param_work_shape)
    b = xp.reshape(beta, param_work_shape)
    mean = xp.mean(xw, axis=stat_axes, keepdims=True)
    sync = _BATCH_SYNC.get() if 0 in stat_axes else None
    if sync is not None:
        (mean,) = sync([mean])
    centered = xw - mean
    var = xp.mean(centered * centered, axis=stat_axes, keepdims=True)
    if sync is not None:
        (var,) = sync([var])
    std = xp.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = centered * inv_std
    out = x_hat * g
    if out.dtype == b.dtype:
        out += b  # in place on the fresh product
    else:
        out = out + b
    if tuple(out.shape) != tuple(x.shape):
        out = xp.reshape(out, x.shape)
    cache = {"x_hat": x_hat, "centered": centered, "std": std, "inv_std": inv_std,
             "var": var, "gamma": g, "eps": eps, "stat_axes": tuple(stat_axes),
             "x_shape": tuple(x.shape), "param_shape": tuple(gamma.shape)}
    if sync is not None:
        cache["sync"] = sync
    return out, cache, mean, var


def _restore(xp, dx, dgamma, dbeta, cache):
    if tuple(dx.shape) != cache["x_shape"]:
        dx = xp.reshape(dx, cache["x_shape"])
    return (dx, xp.reshape(dgamma, cache["param_shape"]),
            xp.reshape(dbeta, cache["param_shape"]))


def _work_dout(xp, dout, cache, caller):
    x_hat = cache["x_hat"]
    if tuple(dout.shape) != cache["x_shape"]:
        raise InputError(f"{caller}: dout must have the shape of the forward pass's x, "
                         f"{shape_str(cache['x_shape'])}, got {shape_str(dout.shape)}")
    return xp.reshape(dout, x_hat.shape) if dout.shape != x_hat.shape else dout


def backward(dout: Array, cache: dict, caller: str) -> tuple[Array, Array, Array]:
    """Closed-form gradient ``(dx, dgamma, dbeta)`` of :func:`forward`, in the
    caller's shapes (a registered operation: CuPy fuses its elementwise chain)."""
    if cache.get("sync") is not None:
        return _synchronized_backward(dout, cache, caller)
    xp = namespace_of(dout, cache["x_hat"], caller=caller)
    d = _work_dout(xp, dout, cache, caller)
    dx, dgamma, dbeta = ops.normalize_backward(d, cache["x_hat"], cache["gamma"],
                                               cache["inv_std"], cache["stat_axes"])
    return _restore(xp, dx, dgamma, dbeta, cache)


def backward_graph(dout: Array, cache: dict, caller: str) -> tuple[Array, Array, Array]:
    """The same gradient as :func:`backward`, walking the computational graph of
    :func:`forward` node by node (the course's first version)."""
    if cache.get("sync") is not None:
        return _synchronized_backward(dout, cache, caller)
    xp = namespace_of(dout, cache["x_hat"], caller=caller)
    d = _work_dout(xp, dout, cache, caller)
    axes = cache["stat_axes"]
    x_hat, centered, std = cache["x_hat"], cache["centered"], cache["std"]
    inv_std, var, gamma = cache["inv_std"], cache["var"], cache["gamma"]
    _, n, dgamma, dbeta = reference.normalization_sums(xp, d, x_hat, gamma, axes)
    dx_hat = d * gamma
    # x_hat = centered * inv_std
    dinv_std = xp.sum(dx_hat * centered, axis=axes, keepdims=True)
    dcentered = dx_hat * inv_std
    # inv_std = 1 / std ; std = sqrt(var + eps)
    dstd = -dinv_std / (std * std)
    dvar = dstd * 0.5 / xp.sqrt(var + cache["eps"])
    # var = mean(centered ** 2)
    dcentered = dcentered + (2.0 / n) * centered * dvar
    # centered = x - mean ; mean = mean(x)
    dmean = -xp.sum(dcentered, axis=axes, keepdims=True)
    dx = dcentered + dmean / n
    return _restore(xp, dx, dgamma, dbeta, cache)


def _synchronized_backward(dout: Array, cache: dict, caller: str
                           ) -> tuple[Array, Array, Array]:
    """The closed-form batchnorm gradient with the sums of ``dout`` and ``dout * x_hat``
    taken over every rank (see :func:`synchronized`); ``dx`` of this rank's slice."""
    xp = namespace_of(dout, cache["x_hat"], caller=caller)
    d = _work_dout(xp, dout, cache, caller)
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    _, n, dgamma, dbeta = reference.normalization_sums(xp, d, x_hat, gamma, cache["stat_axes"])
    total_dgamma, total_dbeta = cache["sync"]([dgamma, dbeta])
    s = gamma * inv_std
    dx = d * s - x_hat * (s * total_dgamma / n) - s * total_dbeta / n
    return _restore(xp, dx, dgamma, dbeta, cache)


def apply_running(xp, x: Array, gamma: Array, beta: Array, running_mean: Array,
                  running_var: Array, eps: float, work_shape: tuple[int, ...],
                  param_work_shape: tuple[int, ...]) -> Array:
    """Test-time normalization with running statistics (per parameter entry)."""
    gamma, beta = _float_param(xp, gamma, x), _float_param(xp, beta, x)
    xw = xp.reshape(x, work_shape)
    g = xp.reshape(gamma, param_work_shape)
    b = xp.reshape(beta, param_work_shape)
    mean = xp.reshape(running_mean, param_work_shape)
    var = xp.reshape(running_var, param_work_shape)
    out = g * (xw - mean) / xp.sqrt(var + eps) + b
    return xp.reshape(out, x.shape)
