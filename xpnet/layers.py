"""Layers and losses: ``forward(...) -> (out, cache)``, ``backward(dout, cache)``.

Every function finds its Array API namespace from its inputs once and runs on
NumPy, CuPy, PyTorch or ``array_api_strict`` arrays alike. Names, signatures
and conventions follow the CS231n assignments.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from . import _checks
from .backend import backend_of, kernels_for, namespace_of

__all__ = [
    "affine_forward", "affine_backward",
    "relu_forward", "relu_backward",
    "svm_loss", "softmax_loss",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "layernorm_forward", "layernorm_backward",
    "dropout_forward", "dropout_backward",
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
    x2 = _checks.flatten_for_affine(xp, x, w, b)
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
    xp = namespace_of(dout, x, caller="relu_backward")
    return kernels_for(xp).relu_backward(dout, x)


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
    onehot = _checks.onehot_labels(xp, x, y, "svm_loss", check_labels)
    n = x.shape[0]
    correct = xp.sum(xp.where(onehot, x, 0), axis=1, keepdims=True)
    margins = xp.where(onehot, 0, xp.maximum(x - correct + 1.0, 0))
    loss = xp.sum(margins) / n
    positive = xp.astype(margins > 0, x.dtype)
    num_positive = xp.sum(positive, axis=1, keepdims=True)
    dx = (positive - xp.where(onehot, num_positive, 0)) / n
    return loss, dx


def softmax_loss(x: Array, y: Array, *, check_labels: bool = True) -> tuple[Array, Array]:
    """Softmax (cross-entropy) loss, numerically stable, averaged over N.

    Parameters and returns as :func:`svm_loss`.
    """
    xp = namespace_of(x, y, caller="softmax_loss")
    onehot = _checks.onehot_labels(xp, x, y, "softmax_loss", check_labels)
    n = x.shape[0]
    shifted = x - xp.max(x, axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    loss = -xp.sum(xp.where(onehot, log_probs, 0)) / n
    dx = xp.exp(log_probs)
    dx = (dx - xp.astype(onehot, x.dtype)) / n
    return loss, dx


# ---------------------------------------------------------------------------
# Normalization: one implementation for batchnorm (axis 0) and layernorm (axis 1)
# ---------------------------------------------------------------------------

def _normalize(xp, x, gamma, beta, eps: float, axis: int):
    mean = xp.mean(x, axis=axis, keepdims=True)
    centered = x - mean
    var = xp.mean(centered * centered, axis=axis, keepdims=True)
    std = xp.sqrt(var + eps)
    inv_std = 1.0 / std
    x_hat = centered * inv_std
    out = x_hat * gamma
    if out.dtype == beta.dtype:
        out += beta  # in place on the fresh product
    else:
        out = out + beta
    cache = {"x_hat": x_hat, "centered": centered, "std": std, "inv_std": inv_std,
             "var": var, "gamma": gamma, "eps": eps, "axis": axis}
    return out, cache, mean, var


def _normalize_backward_graph(dout, cache):
    """Walk the computational graph of :func:`_normalize` node by node."""
    xp = namespace_of(dout, cache["x_hat"], caller="batchnorm_backward")
    axis = cache["axis"]
    x_hat, centered, std = cache["x_hat"], cache["centered"], cache["std"]
    inv_std, var, gamma = cache["inv_std"], cache["var"], cache["gamma"]
    n = x_hat.shape[axis]
    dbeta = xp.sum(dout, axis=0)
    dgamma = xp.sum(dout * x_hat, axis=0)
    dx_hat = dout * gamma
    # x_hat = centered * inv_std
    dinv_std = xp.sum(dx_hat * centered, axis=axis, keepdims=True)
    dcentered = dx_hat * inv_std
    # inv_std = 1 / std ; std = sqrt(var + eps)
    dstd = -dinv_std / (std * std)
    dvar = dstd * 0.5 / xp.sqrt(var + cache["eps"])
    # var = mean(centered ** 2)
    dcentered = dcentered + (2.0 / n) * centered * dvar
    # centered = x - mean ; mean = mean(x)
    dmean = -xp.sum(dcentered, axis=axis, keepdims=True)
    dx = dcentered + dmean / n
    return dx, dgamma, dbeta


def _normalize_backward_closed(dout, cache):
    """The simplified closed form of the normalization gradient."""
    xp = namespace_of(dout, cache["x_hat"], caller="batchnorm_backward_alt")
    axis = cache["axis"]
    x_hat = cache["x_hat"]
    fused = kernels_for(xp).normalize_backward(dout, x_hat, cache["gamma"], cache["inv_std"],
                                               axis)
    if fused is not None:  # one kernel for the elementwise chain (CuPy)
        return fused
    n = x_hat.shape[axis]
    dbeta = xp.sum(dout, axis=0)
    dgamma = xp.sum(dout * x_hat, axis=0)
    if axis == 0:
        # batchnorm: gamma is constant along the batch, so the two batch means are
        # gamma * dbeta / n and gamma * dgamma / n; with s = gamma * inv_std,
        # dx = dout * s - x_hat * (s * dgamma / n) - s * dbeta / n: four passes, not seven
        s = cache["gamma"] * cache["inv_std"]
        dx = dout * s
        proj = x_hat * (s * dgamma / n)
        mean = s * dbeta / n
        if dx.dtype == proj.dtype == mean.dtype:
            dx -= proj
            dx -= mean
        else:
            dx = dx - proj - mean
        return dx, dgamma, dbeta
    dx_hat = dout * cache["gamma"]
    mean_dx_hat = xp.sum(dx_hat, axis=axis, keepdims=True) / n
    mean_proj = xp.sum(dx_hat * x_hat, axis=axis, keepdims=True) / n
    dx = (dx_hat - mean_dx_hat - x_hat * mean_proj) * cache["inv_std"]
    return dx, dgamma, dbeta


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
        (D,) and updated in train mode as ``m = momentum*m + (1-momentum)*stat``;
        the batch variance has no Bessel correction).

    Returns
    -------
    out : array of shape (N, D)
    cache : dict or None
        What the backward pass needs (None in test mode).
    """
    xp = namespace_of(x, gamma, beta, caller="batchnorm_forward")
    mode = _checks.mode_of(bn_param, "bn_param", "batchnorm_forward")
    _checks.normalization_shapes(x, gamma, beta, "batchnorm_forward")
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    d = x.shape[1]
    running_mean = bn_param.get("running_mean")
    running_var = bn_param.get("running_var")
    if running_mean is None:
        running_mean = xp.zeros((d,), dtype=x.dtype, device=device(x))
    if running_var is None:
        running_var = xp.zeros((d,), dtype=x.dtype, device=device(x))

    if mode == "train":
        out, cache, mean, var = _normalize(xp, x, gamma, beta, eps, axis=0)
        running_mean = momentum * running_mean + (1 - momentum) * xp.reshape(mean, (d,))
        running_var = momentum * running_var + (1 - momentum) * xp.reshape(var, (d,))
    else:
        out = gamma * (x - running_mean) / xp.sqrt(running_var + eps) + beta
        cache = None

    bn_param["running_mean"] = running_mean
    bn_param["running_var"] = running_var
    return out, cache


def batchnorm_backward(dout: Array, cache: dict) -> tuple[Array, Array, Array]:
    """Backward pass of batchnorm, node by node through the graph.

    Returns ``(dx, dgamma, dbeta)``.
    """
    _checks.train_cache(cache, "batchnorm_backward")
    return _normalize_backward_graph(dout, cache)


def batchnorm_backward_alt(dout: Array, cache: dict) -> tuple[Array, Array, Array]:
    """Backward pass of batchnorm in the simplified closed form.

    Gives the same ``(dx, dgamma, dbeta)`` as :func:`batchnorm_backward` with
    fewer operations.
    """
    _checks.train_cache(cache, "batchnorm_backward_alt")
    return _normalize_backward_closed(dout, cache)


def layernorm_forward(
    x: Array, gamma: Array, beta: Array, ln_param: dict
) -> tuple[Array, dict]:
    """Layer normalization: per-sample statistics over the D features.

    Behaves the same at train and test time. ``ln_param`` may hold ``eps``
    (1e-5). Returns ``(out, cache)``.
    """
    xp = namespace_of(x, gamma, beta, caller="layernorm_forward")
    _checks.normalization_shapes(x, gamma, beta, "layernorm_forward")
    eps = (ln_param or {}).get("eps", 1e-5)
    out, cache, _, _ = _normalize(xp, x, gamma, beta, eps, axis=1)
    return out, cache


def layernorm_backward(dout: Array, cache: dict) -> tuple[Array, Array, Array]:
    """Backward pass of :func:`layernorm_forward`: ``(dx, dgamma, dbeta)``."""
    return _normalize_backward_closed(dout, cache)


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
    mode = _checks.mode_of(dropout_param, "dropout_param", "dropout_forward")
    p = _checks.keep_probability(dropout_param)
    mask = None
    out = x
    if mode == "train" and p < 1:
        backend = backend_of(x)
        u = backend.random_uniform(x.shape, dtype=x.dtype, seed=dropout_param.get("seed"))
        mask = xp.astype(u < p, x.dtype) / p
        out = x * mask
    return out, (dropout_param, mask)


def dropout_backward(dout: Array, cache: tuple) -> Array:
    """Backward pass of :func:`dropout_forward`."""
    _, mask = cache
    return dout if mask is None else dout * mask
