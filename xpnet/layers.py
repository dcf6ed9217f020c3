"""Layers and losses: ``forward(...) -> (out, cache)``, ``backward(dout, cache)``.

Every function finds its Array API namespace from its inputs once and runs on
NumPy, CuPy, PyTorch or ``array_api_strict`` arrays alike. Names, signatures
and conventions follow the CS231n assignments. The ``*_naive`` convolution and
pooling layers are the course's teaching versions (a Python loop over output
positions); :mod:`xpnet.fast_layers` has the same layers without the loop.
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import device

from ._fast import ops
from ._ops import checks, conv, normalization
from ._ops import erf as erf_ops
from .backend import active_stream, backend_of, namespace_of
from .errors import InputError

__all__ = [
    "affine_forward", "affine_backward",
    "relu_forward", "relu_backward",
    "gelu_forward", "gelu_backward",
    "svm_loss", "softmax_loss",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "layernorm_forward", "layernorm_backward",
    "dropout_forward", "dropout_backward",
    "conv_forward_naive", "conv_backward_naive",
    "max_pool_forward_naive", "max_pool_backward_naive",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "spatial_groupnorm_forward", "spatial_groupnorm_backward",
    "global_avg_pool_forward", "global_avg_pool_backward",
]

Array = Any


# ---------------------------------------------------------------------------
# Affine and ReLU
# ---------------------------------------------------------------------------

def affine_forward(x: Array, w: Array, b: Array) -> tuple[Array, tuple]:
    """Affine (fully connected) layer: ``out = x.reshape(N, D) @ w + b``.

    Parameters
    ----------
    x : array of shape (N, d_1, ..., d_k)
        Inputs, flattened to (N, D) with D = d_1 * ... * d_k.
    w : array of shape (D, M)
    b : array of shape (M,)

    Returns
    -------
    out : array of shape (N, M)
    cache : tuple
        ``(x, w, b)``.
    """
    xp = namespace_of(x, w, b, caller="affine_forward")
    x2 = checks.flatten_for_affine(xp, x, w, b)
    out = x2 @ w
    if out.dtype == b.dtype:
        out += b  # in place on the fresh product: one pass and no second array
    else:
        out = out + b
    return out, (x, w, b)


def affine_backward(dout: Array, cache: tuple) -> tuple[Array, Array, Array]:
    """Backward pass of :func:`affine_forward`.

    Returns
    -------
    dx : array with the shape of ``x``
    dw : array of shape (D, M)
    db : array of shape (M,)
    """
    x, w, _ = cache
    xp = namespace_of(dout, x, w, caller="affine_backward")
    dx = dout @ w.T
    if x.ndim != 2:
        dx = xp.reshape(dx, x.shape)
    dw, db = _affine_param_grads(xp, dout, x, w)
    return dx, dw, db


def _affine_param_grads(xp, dout: Array, x: Array, w: Array) -> tuple[Array, Array]:
    """``(dw, db)`` of :func:`affine_backward`, for callers that need no ``dx``."""
    x2 = x if x.ndim == 2 else xp.reshape(x, (x.shape[0], w.shape[0]))
    return x2.T @ dout, xp.sum(dout, axis=0)


def _affine_backward_params(dout: Array, cache: tuple) -> tuple[Array, Array]:
    """``(dw, db)`` of :func:`affine_backward` without ``dx`` (for a network's first
    layer, whose input needs no gradient: it saves a third of the matmuls)."""
    x, w, _ = cache
    xp = namespace_of(dout, x, w, caller="affine_backward")
    return _affine_param_grads(xp, dout, x, w)


def relu_forward(x: Array) -> tuple[Array, Array]:
    """Rectified linear unit: ``out = max(x, 0)``; the cache is ``x``."""
    xp = namespace_of(x, caller="relu_forward")
    return xp.maximum(x, 0), x


def relu_backward(dout: Array, cache: Array) -> Array:
    """Backward pass of :func:`relu_forward`: ``dout`` where ``x > 0``, else 0."""
    x = cache
    namespace_of(dout, x, caller="relu_backward")
    return ops.relu_backward(dout, x)


#: the ``approximate`` settings of :func:`gelu_forward` (PyTorch's names)
GELU_FORMS = ("none", "tanh")
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


def gelu_forward(x: Array, approximate: str = "none") -> tuple[Array, tuple]:
    """Gaussian error linear unit: ``out = x * Phi(x)``.

    Parameters
    ----------
    x : array of any shape
    approximate : {'none', 'tanh'}
        ``'none'``: the exact form with the standard normal CDF
        ``Phi(x) = (1 + erf(x / sqrt(2))) / 2`` (erf in Array API arithmetic,
        :mod:`xpnet._ops.erf`, accurate to the dtype's rounding); ``'tanh'``:
        ``x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))``, cheaper.

    Returns
    -------
    out : array like ``x``
    cache : tuple
        ``(x, approximate, Phi(x) or the tanh)`` for :func:`gelu_backward`.
    """
    xp = namespace_of(x, caller="gelu_forward")
    checks.choice(approximate, GELU_FORMS, "approximate", "gelu_forward")
    if approximate == "tanh":
        t = xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * (x * x * x)))
        return 0.5 * x * (1.0 + t), (x, approximate, t)
    cdf = erf_ops.normal_cdf(x)
    return x * cdf, (x, approximate, cdf)


def gelu_backward(dout: Array, cache: tuple) -> Array:
    """Backward pass of :func:`gelu_forward`: ``dout * (Phi(x) + x * phi(x))`` for the
    exact form, the derivative of the tanh expression for ``'tanh'``."""
    if not isinstance(cache, tuple) or len(cache) != 3:
        raise InputError("gelu_backward: cache must be the cache returned by gelu_forward")
    x, approximate, value = cache
    namespace_of(dout, x, caller="gelu_backward")
    if tuple(dout.shape) != tuple(x.shape):
        raise InputError(f"gelu_backward: dout has shape {checks.shape_str(dout.shape)}, "
                         f"the forward input {checks.shape_str(x.shape)}")
    if approximate == "tanh":
        t = value
        du = _SQRT_2_OVER_PI * (1.0 + (3.0 * _GELU_CUBIC) * (x * x))
        return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)
    return dout * (value + x * erf_ops.normal_pdf(x))


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------

def svm_loss(x: Array, y: Array, *, check_labels: bool = True) -> tuple[Array, Array]:
    """Multiclass SVM (hinge) loss with margin 1, averaged over the N samples.

    Parameters
    ----------
    x : array of shape (N, C)
        Class scores.
    y : integer array of shape (N,)
        Labels, ``0 <= y[i] < C``.
    check_labels : bool
        Validate the label range (one device synchronization); the models turn
        it off for labels they already validated.

    Returns
    -------
    loss : 0-D array
    dx : array of shape (N, C)
    """
    xp = namespace_of(x, y, caller="svm_loss")
    onehot = checks.onehot_labels(xp, x, y, "svm_loss", check_labels)
    n = x.shape[0]
    correct = xp.sum(xp.where(onehot, x, 0), axis=1, keepdims=True)
    margins = xp.where(onehot, 0, xp.maximum(x - correct + 1.0, 0))
    loss = xp.sum(margins) / n
    positive = xp.astype(margins > 0, x.dtype)
    num_positive = xp.sum(positive, axis=1, keepdims=True)
    dx = (positive - xp.where(onehot, num_positive, 0)) / n
    return loss, dx


def softmax_loss(x: Array, y: Array, *, check_labels: bool = True,
                 label_smoothing: float = 0.0) -> tuple[Array, Array]:
    """Softmax (cross-entropy) loss, numerically stable, averaged over N.

    Parameters and returns as :func:`svm_loss`, plus ``label_smoothing`` (eps):
    the target of each sample is ``(1 - eps) * onehot + eps / C`` instead of the
    one-hot vector (0, the default, is the course's loss).
    """
    xp = namespace_of(x, y, caller="softmax_loss")
    onehot = checks.onehot_labels(xp, x, y, "softmax_loss", check_labels)
    n, classes = x.shape
    shifted = x - xp.max(x, axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    dx = xp.exp(log_probs)
    if not label_smoothing:
        loss = -xp.sum(xp.where(onehot, log_probs, 0)) / n
        dx = (dx - xp.astype(onehot, x.dtype)) / n
        return loss, dx
    eps = float(label_smoothing)
    if not 0.0 < eps < 1.0:
        raise InputError(f"softmax_loss: label_smoothing must lie in [0, 1), got {eps!r}")
    target = xp.astype(onehot, x.dtype) * (1.0 - eps) + eps / classes
    loss = -xp.sum(target * log_probs) / n
    return loss, (dx - target) / n


# ---------------------------------------------------------------------------
# Normalization: one implementation (xpnet._ops.normalization) for every layout
# ---------------------------------------------------------------------------

def _running_stat(xp, bn_param: dict, key: str, shape: tuple[int, ...], x: Array) -> Array:
    value = bn_param.get(key)
    if value is None:
        return xp.zeros(shape, dtype=x.dtype, device=device(x))
    return value


def _moving_average(running: Array, stat: Array, momentum: float) -> Array:
    """``momentum * running + (1 - momentum) * stat``, written into ``running`` where it
    can hold the result: the statistics keep their arrays (nothing a captured training
    step writes may be rebound) with the same rounding as the new array."""
    new = momentum * running + (1 - momentum) * stat
    writeable = getattr(getattr(running, "flags", None), "writeable", True)  # NumPy's flag
    if new.dtype != running.dtype or tuple(new.shape) != tuple(running.shape) or not writeable:
        return new
    running[...] = new
    return running


def _batch_statistics_norm(caller: str, x: Array, gamma: Array, beta: Array, bn_param: dict,
                           stat_axes: tuple[int, ...], param_work_shape: tuple[int, ...]
                           ) -> tuple[Array, dict | None]:
    """Batchnorm over ``stat_axes`` of ``x`` with running averages in ``bn_param``."""
    xp = namespace_of(x, gamma, beta, caller=caller)
    mode = checks.mode_of(bn_param, "bn_param", caller)
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    stat_shape = tuple(gamma.shape)
    running_mean = _running_stat(xp, bn_param, "running_mean", stat_shape, x)
    running_var = _running_stat(xp, bn_param, "running_var", stat_shape, x)
    if mode == "train":
        out, cache, mean, var = normalization.forward(xp, x, gamma, beta, eps, stat_axes,
                                                      tuple(x.shape), param_work_shape)
        running_mean = _moving_average(running_mean, xp.reshape(mean, stat_shape), momentum)
        running_var = _moving_average(running_var, xp.reshape(var, stat_shape), momentum)
    else:
        out = normalization.apply_running(xp, x, gamma, beta, running_mean, running_var, eps,
                                          tuple(x.shape), param_work_shape)
        cache = None
    bn_param["running_mean"] = running_mean
    bn_param["running_var"] = running_var
    return out, cache


def batchnorm_forward(
    x: Array, gamma: Array, beta: Array, bn_param: dict
) -> tuple[Array, dict | None]:
    """Batch normalization of an (N, D) input over the batch.

    Parameters
    ----------
    x : array of shape (N, D)
    gamma, beta : arrays of shape (D,)
        Scale and shift.
    bn_param : dict
        ``mode`` ('train' or 'test', required), ``eps`` (1e-5), ``momentum``
        (0.9), ``running_mean`` / ``running_var`` (created as zeros of shape
        (D,) and updated in train mode, in place, as ``m = momentum*m + (1-momentum)*stat``;
        the batch variance has no Bessel correction).

    Returns
    -------
    out : array of shape (N, D)
    cache : dict or None
        What the backward pass needs (None in test mode).
    """
    caller = "batchnorm_forward"
    namespace_of(x, gamma, beta, caller=caller)
    checks.ndim(x, 2, "x", "(N, D)", caller)
    for name, arr in (("gamma", gamma), ("beta", beta)):
        checks.param_shape(x, name, arr, (x.shape[1],), caller)
    return _batch_statistics_norm(caller, x, gamma, beta, bn_param, (0,), (1, x.shape[1]))


def batchnorm_backward(dout: Array, cache: dict) -> tuple[Array, Array, Array]:
    """Backward pass of batchnorm, node by node through the graph.

    Returns ``(dx, dgamma, dbeta)``.
    """
    checks.train_cache(cache, "batchnorm_backward", "batchnorm_forward")
    return normalization.backward_graph(dout, cache, "batchnorm_backward")


def batchnorm_backward_alt(dout: Array, cache: dict) -> tuple[Array, Array, Array]:
    """Backward pass of batchnorm in the simplified closed form.

    Gives the same ``(dx, dgamma, dbeta)`` as :func:`batchnorm_backward` with
    fewer operations.
    """
    checks.train_cache(cache, "batchnorm_backward_alt", "batchnorm_forward")
    return normalization.backward(dout, cache, "batchnorm_backward_alt")


def layernorm_forward(
    x: Array, gamma: Array, beta: Array, ln_param: dict
) -> tuple[Array, dict]:
    """Layer normalization: per-sample statistics over the D features.

    Behaves the same at train and test time. ``ln_param`` may hold ``eps``
    (1e-5). Returns ``(out, cache)``.
    """
    caller = "layernorm_forward"
    xp = namespace_of(x, gamma, beta, caller=caller)
    checks.ndim(x, 2, "x", "(N, D)", caller)
    for name, arr in (("gamma", gamma), ("beta", beta)):
        checks.param_shape(x, name, arr, (x.shape[1],), caller)
    eps = (ln_param or {}).get("eps", 1e-5)
    out, cache, _, _ = normalization.forward(xp, x, gamma, beta, eps, (1,), tuple(x.shape),
                                             (1, x.shape[1]))
    return out, cache


def layernorm_backward(dout: Array, cache: dict) -> tuple[Array, Array, Array]:
    """Backward pass of :func:`layernorm_forward`: ``(dx, dgamma, dbeta)``."""
    checks.train_cache(cache, "layernorm_backward", "layernorm_forward")
    return normalization.backward(dout, cache, "layernorm_backward")


# ---------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------

def dropout_forward(x: Array, dropout_param: dict) -> tuple[Array, tuple]:
    """Inverted dropout.

    Parameters
    ----------
    x : array of any shape
    dropout_param : dict
        ``p``: probability of KEEPING each unit, in (0, 1]; ``mode``: 'train'
        or 'test' (required); ``seed`` (optional): makes the mask the same on
        every call, for gradient checks.

    Returns
    -------
    out : array like ``x``
        ``x * mask / p`` at train time, ``x`` at test time.
    cache : tuple
        ``(dropout_param, mask)``; mask is None where nothing was dropped.
    """
    xp = namespace_of(x, caller="dropout_forward")
    mode = checks.mode_of(dropout_param, "dropout_param", "dropout_forward")
    p = checks.keep_probability(dropout_param)
    mask = None
    out = x
    if mode == "train" and p < 1:
        seed = dropout_param.get("seed")
        stream = active_stream() if seed is None else None
        if stream is not None and stream.backend.owns(x):  # the Solver's stream
            u = stream.uniform(x.shape, dtype=x.dtype)
        else:  # a seeded mask, or the default stream of the array's backend
            u = backend_of(x).random_uniform(x.shape, dtype=x.dtype, seed=seed)
        mask = xp.astype(u < p, x.dtype) / p
        out = x * mask
    return out, (dropout_param, mask)


def dropout_backward(dout: Array, cache: tuple) -> Array:
    """Backward pass of :func:`dropout_forward`."""
    _, mask = cache
    return dout if mask is None else dout * mask


# ---------------------------------------------------------------------------
# Convolution and pooling: the teaching versions, one output position at a time
# ---------------------------------------------------------------------------

def _zero_padded(xp, x: Array, pad: int) -> Array:
    n, c, h, w = x.shape
    if pad == 0:
        return xp.asarray(x, copy=True)
    out = xp.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype, device=device(x))
    out[:, :, pad:pad + h, pad:pad + w] = x
    return out


def conv_forward_naive(x: Array, w: Array, b: Array, conv_param: dict) -> tuple[Array, tuple]:
    """Convolutional layer (cross-correlation, as the course computes it), naively.

    Parameters
    ----------
    x : array of shape (N, C, H, W)
    w : array of shape (F, C, HH, WW)
        Filters.
    b : array of shape (F,)
    conv_param : dict
        ``stride`` (pixels between neighbouring receptive fields) and ``pad``
        (zeros added on every side of H and W).

    Returns
    -------
    out : array of shape (N, F, H', W')
        ``H' = 1 + (H + 2 * pad - HH) / stride`` (which must be an integer),
        likewise ``W'``.
    cache : tuple
        ``(x, w, b, conv_param)``.
    """
    caller = "conv_forward_naive"
    xp = namespace_of(x, w, b, caller=caller)
    stride, pad = conv.conv_params(conv_param, caller)
    out_h, out_w = conv.conv_geometry(x, w, b, stride, pad, caller)
    hh, ww = w.shape[2], w.shape[3]
    xpad = _zero_padded(xp, x, pad)
    out = xp.zeros((x.shape[0], w.shape[0], out_h, out_w), dtype=xp.result_type(x, w),
                   device=device(x))
    for i in range(out_h):
        for j in range(out_w):
            window = xpad[:, :, i * stride:i * stride + hh, j * stride:j * stride + ww]
            out[:, :, i, j] = xp.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout: Array, cache: tuple) -> tuple[Array, Array, Array]:
    """Backward pass of :func:`conv_forward_naive`: ``(dx, dw, db)``."""
    caller = "conv_backward_naive"
    x, w, b, conv_param = cache
    xp = namespace_of(dout, x, w, caller=caller)
    stride, pad = conv.conv_params(conv_param, caller)
    out_h, out_w = conv.conv_geometry(x, w, b, stride, pad, caller)
    conv.check_dout(dout, (x.shape[0], w.shape[0], out_h, out_w), caller)
    hh, ww = w.shape[2], w.shape[3]
    xpad = _zero_padded(xp, x, pad)
    dxpad = xp.zeros(xpad.shape, dtype=dout.dtype, device=device(dout))
    dw = xp.zeros(w.shape, dtype=dout.dtype, device=device(dout))
    for i in range(out_h):
        for j in range(out_w):
            rows = slice(i * stride, i * stride + hh)
            cols = slice(j * stride, j * stride + ww)
            g = dout[:, :, i, j]  # (N, F)
            dxpad[:, :, rows, cols] += xp.tensordot(g, w, axes=([1], [0]))
            dw += xp.tensordot(g, xpad[:, :, rows, cols], axes=([0], [0]))
    h, wd = x.shape[2], x.shape[3]
    dx = dxpad[:, :, pad:pad + h, pad:pad + wd]
    return dx, dw, xp.sum(dout, axis=(0, 2, 3))


def max_pool_forward_naive(x: Array, pool_param: dict) -> tuple[Array, tuple]:
    """Max pooling, naively.

    Parameters
    ----------
    x : array of shape (N, C, H, W)
    pool_param : dict
        ``pool_height``, ``pool_width`` and ``stride``; windows may overlap
        and be rectangular, but must tile the input exactly.

    Returns
    -------
    out : array of shape (N, C, H', W')
        ``H' = 1 + (H - pool_height) / stride``, likewise ``W'``. A window
        holding NaN gives NaN.
    cache : tuple
        ``(x, pool_param)``.
    """
    caller = "max_pool_forward_naive"
    xp = namespace_of(x, caller=caller)
    ph, pw, stride = conv.pool_params(pool_param, caller)
    out_h, out_w = conv.pool_geometry(x, ph, pw, stride, caller)
    out = xp.zeros((x.shape[0], x.shape[1], out_h, out_w), dtype=x.dtype, device=device(x))
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
            out[:, :, i, j] = xp.max(window, axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward_naive(dout: Array, cache: tuple) -> Array:
    """Backward pass of :func:`max_pool_forward_naive`.

    Each window's gradient goes to its first maximum in row-major order (its
    first NaN, if any), as ``argmax`` would pick it; overlapping windows add up.
    """
    caller = "max_pool_backward_naive"
    x, pool_param = cache
    xp = namespace_of(dout, x, caller=caller)
    ph, pw, stride = conv.pool_params(pool_param, caller)
    out_h, out_w = conv.pool_geometry(x, ph, pw, stride, caller)
    n, c = x.shape[0], x.shape[1]
    conv.check_dout(dout, (n, c, out_h, out_w), caller)
    dx = xp.zeros(x.shape, dtype=dout.dtype, device=device(dout))
    positions = xp.arange(ph * pw, device=device(x))
    for i in range(out_h):
        for j in range(out_w):
            rows = slice(i * stride, i * stride + ph)
            cols = slice(j * stride, j * stride + pw)
            window = xp.reshape(x[:, :, rows, cols], (n, c, ph * pw))
            top = xp.max(window, axis=2, keepdims=True)
            hit = (window == top) | (xp.isnan(window) & xp.isnan(top))
            first = xp.argmax(xp.astype(hit, xp.int8), axis=2, keepdims=True)
            routed = xp.where(positions == first, dout[:, :, i, j][:, :, None], 0)
            dx[:, :, rows, cols] += xp.reshape(routed, (n, c, ph, pw))
    return dx


# ---------------------------------------------------------------------------
# Spatial normalization: the same core, statistics over other axes
# ---------------------------------------------------------------------------

def spatial_batchnorm_forward(
    x: Array, gamma: Array, beta: Array, bn_param: dict
) -> tuple[Array, dict | None]:
    """Batch normalization of (N, C, H, W) input: statistics per channel over N, H, W.

    Parameters
    ----------
    x : array of shape (N, C, H, W)
    gamma, beta : arrays of shape (C,)
    bn_param : dict
        As for :func:`batchnorm_forward`; the running averages have shape (C,).

    Returns
    -------
    out : array of shape (N, C, H, W)
    cache : dict or None (test mode)
    """
    caller = "spatial_batchnorm_forward"
    namespace_of(x, gamma, beta, caller=caller)
    checks.ndim(x, 4, "x", "(N, C, H, W)", caller)
    for name, arr in (("gamma", gamma), ("beta", beta)):
        checks.param_shape(x, name, arr, (x.shape[1],), caller)
    return _batch_statistics_norm(caller, x, gamma, beta, bn_param, (0, 2, 3),
                                  (1, x.shape[1], 1, 1))


def spatial_batchnorm_backward(dout: Array, cache: dict) -> tuple[Array, Array, Array]:
    """Backward pass of :func:`spatial_batchnorm_forward`: ``(dx, dgamma, dbeta)``,
    ``dgamma`` and ``dbeta`` of shape (C,)."""
    checks.train_cache(cache, "spatial_batchnorm_backward", "spatial_batchnorm_forward")
    return normalization.backward(dout, cache, "spatial_batchnorm_backward")


def spatial_groupnorm_forward(
    x: Array, gamma: Array, beta: Array, G: int, gn_param: dict
) -> tuple[Array, dict]:
    """Group normalization: per sample, statistics over each group of C/G channels and H, W.

    Parameters
    ----------
    x : array of shape (N, C, H, W)
    gamma, beta : arrays of shape (1, C, 1, 1)
        (Shape (C,) is accepted too; the gradients come back in the given shape.)
    G : int
        Number of groups of contiguous channels; must divide C. G = 1 is layer
        normalization over C, H, W; G = C is instance normalization.
    gn_param : dict
        May hold ``eps`` (1e-5); other keys are ignored. Train and test behave
        the same.

    Returns
    -------
    out : array of shape (N, C, H, W)
    cache : dict
    """
    caller = "spatial_groupnorm_forward"
    xp = namespace_of(x, gamma, beta, caller=caller)
    checks.ndim(x, 4, "x", "(N, C, H, W)", caller)
    n, c, h, w = x.shape
    groups = checks.positive_int(G, "G", caller)
    if c % groups:
        raise InputError(f"{caller}: G = {groups} groups do not divide the {c} channels of "
                         f"x {checks.shape_str(x.shape)}; choose G among the divisors of {c}")
    for name, arr in (("gamma", gamma), ("beta", beta)):
        if tuple(arr.shape) != (c,):
            checks.param_shape(x, name, arr, (1, c, 1, 1), caller)
    eps = (gn_param or {}).get("eps", 1e-5)
    out, cache, _, _ = normalization.forward(
        xp, x, gamma, beta, eps, (2, 3, 4), (n, groups, c // groups, h, w),
        (1, groups, c // groups, 1, 1))
    return out, cache


def spatial_groupnorm_backward(dout: Array, cache: dict) -> tuple[Array, Array, Array]:
    """Backward pass of :func:`spatial_groupnorm_forward`: ``(dx, dgamma, dbeta)``."""
    checks.train_cache(cache, "spatial_groupnorm_backward", "spatial_groupnorm_forward")
    return normalization.backward(dout, cache, "spatial_groupnorm_backward")


# ---------------------------------------------------------------------------
# Global average pooling (not in the course: the head of deeper conv nets)
# ---------------------------------------------------------------------------

def global_avg_pool_forward(x: Array) -> tuple[Array, tuple]:
    """The mean of each channel over H and W: (N, C, H, W) -> (N, C).

    Returns ``(out, cache)`` with the cache ``x``'s shape.
    """
    caller = "global_avg_pool_forward"
    xp = namespace_of(x, caller=caller)
    checks.ndim(x, 4, "x", "(N, C, H, W)", caller)
    return xp.mean(x, axis=(2, 3)), tuple(x.shape)


def global_avg_pool_backward(dout: Array, cache: tuple) -> Array:
    """Backward pass of :func:`global_avg_pool_forward`: each pixel gets dout / (H W)."""
    caller = "global_avg_pool_backward"
    xp = namespace_of(dout, caller=caller)
    n, c, h, w = cache
    conv.check_dout(dout, (n, c), caller)
    share = dout / (h * w)
    return xp.broadcast_to(share[:, :, None, None], (n, c, h, w))
