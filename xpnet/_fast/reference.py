"""The Array API reference of every registered operation.

These are the definitions: every fast path in :mod:`xpnet._fast.numpy_paths`,
:mod:`~xpnet._fast.torch_paths` and :mod:`~xpnet._fast.cupy_paths` must agree
with the function of the same name here, within the tolerance it declares
(the registry test checks each one). They use the standard's operators and
functions only, so they run on any conforming namespace.

Calling convention: a trailing ``_`` updates its first arguments in place and
returns None; everything else returns new arrays and modifies nothing.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from ..backend import namespace_of

Array = Any


# ---------------------------------------------------------------------------
# Update rules, in place. Arithmetic in the order of xpnet.optim, so that the
# results equal the public (out-of-place) rules bit for bit.

def sgd_(w: Array, dw: Array, lr: float) -> None:
    """``w -= lr * dw``."""
    w -= lr * dw


def sgd_momentum_(w: Array, dw: Array, velocity: Array, lr: float, momentum: float) -> None:
    """``v = momentum * v - lr * dw; w += v``."""
    velocity *= momentum
    velocity -= lr * dw
    w += velocity


def nesterov_momentum_(w: Array, dw: Array, velocity: Array, lr: float,
                       momentum: float) -> None:
    """``v = momentum * v - lr * dw; w += momentum * v; w -= lr * dw`` (Nesterov)."""
    velocity *= momentum
    velocity -= lr * dw
    w += momentum * velocity
    w -= lr * dw


def _scaled_step_(xp, w, dw, cache, lr, eps) -> None:
    # w - lr * dw / (sqrt(cache) + eps)
    denom = xp.sqrt(cache)
    denom += eps
    step = lr * dw
    step /= denom
    w -= step


def rmsprop_(w: Array, dw: Array, cache: Array, lr: float, decay_rate: float,
             eps: float) -> None:
    """``cache = d * cache + (1 - d) * dw**2; w -= lr * dw / (sqrt(cache) + eps)``."""
    xp = namespace_of(w, dw, cache, caller="rmsprop")
    cache *= decay_rate
    cache += (1 - decay_rate) * (dw * dw)
    _scaled_step_(xp, w, dw, cache, lr, eps)


def adagrad_(w: Array, dw: Array, cache: Array, lr: float, eps: float) -> None:
    """``cache += dw**2; w -= lr * dw / (sqrt(cache) + eps)``."""
    xp = namespace_of(w, dw, cache, caller="adagrad")
    cache += dw * dw
    _scaled_step_(xp, w, dw, cache, lr, eps)


def adam_(w: Array, dw: Array, m: Array, v: Array, lr: float, beta1: float, beta2: float,
          eps: float, t: int) -> None:
    """Adam at step ``t`` (already incremented): the moments, then
    ``w -= lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)``."""
    xp = namespace_of(w, dw, m, v, caller="adam")
    m *= beta1
    m += (1 - beta1) * dw
    v *= beta2
    v += (1 - beta2) * (dw * dw)
    step = m / (1 - beta1**t)
    step *= lr
    denom = xp.sqrt(v / (1 - beta2**t))
    denom += eps
    step /= denom
    w -= step


# ---------------------------------------------------------------------------
# Layers

def relu_backward(dout: Array, x: Array) -> Array:
    """``dout`` where ``x > 0``, else +0 (NaN and infinite ``dout`` included)."""
    xp = namespace_of(dout, x, caller="relu_backward")
    return xp.where(x > 0, dout, 0)


def normalization_sums(xp, dout: Array, x_hat: Array, gamma: Array,
                       stat_axes: tuple[int, ...]) -> tuple[tuple[int, ...], int, Array, Array]:
    """``(param_axes, n, dgamma, dbeta)``: the axes gamma is constant along, the count
    of the statistics, and the parameter gradients (summed keeping dims)."""
    param_axes = tuple(i for i, s in enumerate(gamma.shape) if s == 1)
    n = 1
    for axis in stat_axes:
        n *= x_hat.shape[axis]
    return (param_axes, n, xp.sum(dout * x_hat, axis=param_axes, keepdims=True),
            xp.sum(dout, axis=param_axes, keepdims=True))


def normalize_backward(dout: Array, x_hat: Array, gamma: Array, inv_std: Array,
                       stat_axes: tuple[int, ...]) -> tuple[Array, Array, Array]:
    """Closed-form gradient of ``out = x_hat * gamma + beta`` with
    ``x_hat = (x - mean) * inv_std`` and the statistics over ``stat_axes``.

    ``gamma`` and ``inv_std`` have ``dout``'s rank (size 1 where they are
    constant). Returns ``(dx, dgamma, dbeta)``, the last two summed over the
    axes where ``gamma`` has size 1, keeping dims.
    """
    xp = namespace_of(dout, x_hat, gamma, inv_std, caller="normalize_backward")
    param_axes, n, dgamma, dbeta = normalization_sums(xp, dout, x_hat, gamma, stat_axes)
    if param_axes == tuple(stat_axes):
        # batchnorm: gamma is constant over the statistics' axes, so their two means
        # are gamma * dbeta / n and gamma * dgamma / n; with s = gamma * inv_std,
        # dx = dout * s - x_hat * (s * dgamma / n) - s * dbeta / n: four passes, not seven
        s = gamma * inv_std
        dx = dout * s
        proj = x_hat * (s * dgamma / n)
        mean = s * dbeta / n
        if dx.dtype == proj.dtype == mean.dtype:
            dx -= proj
            dx -= mean
        else:
            dx = dx - proj - mean
        return dx, dgamma, dbeta
    dx_hat = dout * gamma
    mean_dx_hat = xp.sum(dx_hat, axis=stat_axes, keepdims=True) / n
    mean_proj = xp.sum(dx_hat * x_hat, axis=stat_axes, keepdims=True) / n
    dx = (dx_hat - mean_dx_hat - x_hat * mean_proj) * inv_std
    return dx, dgamma, dbeta


# ---------------------------------------------------------------------------
# Strided windows (convolution and pooling)

def _tap(kh: int, kw: int, stride: int, out_h: int, out_w: int) -> tuple:
    """The index of the strided slice that kernel offset (kh, kw) sees."""
    return (slice(None), slice(None), slice(kh, kh + stride * (out_h - 1) + 1, stride),
            slice(kw, kw + stride * (out_w - 1) + 1, stride))


def add_window_(dst: Array, src: Array, kh: int, kw: int, stride: int) -> None:
    """``dst[:, :, kh::stride, kw::stride] += src`` over src's (out_h, out_w) positions."""
    index = _tap(kh, kw, stride, src.shape[2], src.shape[3])
    dst[index] = dst[index] + src


def max_pool_windows(x: Array, pool_height: int, pool_width: int, stride: int,
                     out_h: int, out_w: int) -> tuple[Array, Array]:
    """The maximum of each window and the offset (row-major, int32) of its first
    maximum, or of its first NaN: ``(out, arg)``, each (N, C, out_h, out_w)."""
    xp = namespace_of(x, caller="max_pool_windows")
    out = arg = None
    for k in range(pool_height * pool_width):
        v = x[_tap(k // pool_width, k % pool_width, stride, out_h, out_w)]
        if out is None:
            out = xp.asarray(v, copy=True)
            arg = xp.zeros(v.shape, dtype=xp.int32, device=device(x))
            continue
        take = (v > out) | (xp.isnan(v) & ~xp.isnan(out))
        out = xp.where(take, v, out)
        arg = xp.where(take, xp.asarray(k, dtype=xp.int32, device=device(x)), arg)
    return out, arg


def max_pool_tiles_backward(dout: Array, x: Array, out: Array, p: int) -> Array:
    """Gradient of the max pooling of ``p x p`` tiles of ``x`` (stride ``p``): each
    window's ``dout`` at its first maximum in row-major order, or at its first NaN
    (``out`` is the forward pass's maximum, NaN where the window has one).

    A candidate is ``v == out`` or ``v != v`` (a number ``out`` means no NaN in the
    window); ``rest``, the gradient not yet routed, goes to the first candidate.
    """
    xp = namespace_of(dout, x, out, caller="max_pool_tiles_backward")
    dx = xp.zeros_like(x, dtype=dout.dtype)
    zero = xp.zeros((), dtype=dout.dtype, device=device(dout))
    rest = dout
    for k in range(p * p):
        i, j = divmod(k, p)
        v = x[:, :, i::p, j::p]
        hit = (v == out) | (v != v)
        dx[:, :, i::p, j::p] = xp.where(hit, rest, zero)
        if k < p * p - 1:
            rest = xp.where(hit, zero, rest)
    return dx


# ---------------------------------------------------------------------------
# Convolution (the definition a library's own kernels must meet)

def _conv_taps(w: Array, stride: int, out_h: int, out_w: int):
    for kh in range(w.shape[2]):
        for kw in range(w.shape[3]):
            yield kh, kw, _tap(kh, kw, stride, out_h, out_w)


def _zero_padded(xp, x: Array, pad: int) -> Array:
    if pad == 0:
        return x
    n, c, h, w = x.shape
    out = xp.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype, device=device(x))
    out[:, :, pad:pad + h, pad:pad + w] = x
    return out


def conv2d(x: Array, w: Array, b: Array, stride: int, pad: int) -> Array:
    """Cross-correlation of ``x`` (N, C, H, W) with ``w`` (F, C, HH, WW), zero padding
    ``pad``, plus ``b`` (F,): (N, F, H', W'), one product per filter tap."""
    xp = namespace_of(x, w, b, caller="conv2d")
    out_h = (x.shape[2] + 2 * pad - w.shape[2]) // stride + 1
    out_w = (x.shape[3] + 2 * pad - w.shape[3]) // stride + 1
    xpad = _zero_padded(xp, x, pad)
    out = None
    for kh, kw, index in _conv_taps(w, stride, out_h, out_w):
        term = xp.tensordot(w[:, :, kh, kw], xpad[index], axes=([1], [1]))  # (F, N, H', W')
        out = term if out is None else out + term
    out = out + xp.reshape(b, (-1, 1, 1, 1))
    return xp.permute_dims(out, (1, 0, 2, 3))


def conv2d_backward(dout: Array, x: Array, w: Array, stride: int, pad: int,
                    need_dx: bool = True) -> tuple[Array | None, Array, Array]:
    """``(dx, dw, db)`` of :func:`conv2d` for the output gradient ``dout`` (dx None
    unless ``need_dx``)."""
    xp = namespace_of(dout, x, w, caller="conv2d_backward")
    out_h, out_w = dout.shape[2], dout.shape[3]
    xpad = _zero_padded(xp, x, pad)
    dxpad = xp.zeros(xpad.shape, dtype=dout.dtype, device=device(dout))
    dws = []
    for kh, kw, index in _conv_taps(w, stride, out_h, out_w):
        dws.append(xp.tensordot(dout, xpad[index], axes=([0, 2, 3], [0, 2, 3])))  # (F, C)
        grad = xp.tensordot(w[:, :, kh, kw], dout, axes=([0], [1]))  # (C, N, H', W')
        dxpad[index] = dxpad[index] + xp.permute_dims(grad, (1, 0, 2, 3))
    dw = xp.reshape(xp.stack(dws, axis=2), w.shape)
    h, wd = x.shape[2], x.shape[3]
    dx = dxpad[:, :, pad:pad + h, pad:pad + wd] if pad else dxpad
    return dx if need_dx else None, dw, xp.sum(dout, axis=(0, 2, 3))
