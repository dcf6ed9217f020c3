"""Sandwich layers: affine or convolution followed by (normalization,) ReLU (and pooling).

The convolutional sandwiches use :mod:`xpnet.fast_layers`, as the course's do.

Every backward pass takes ``need_dx=True``; with False it returns None for
``dx`` without computing it. A network's first layer sees the data, whose
gradient nothing needs (a third of that layer's matrix products): the models
pass ``need_dx=False`` there, and :func:`affine_grads` and :func:`conv_grads`
are the one place that skips it.
"""

from __future__ import annotations

from typing import Any

from .fast_layers import (
    conv_backward_fast,
    conv_backward_params,
    conv_forward_fast,
    max_pool_backward_fast,
    max_pool_forward_fast,
)
from .layers import (
    _affine_backward_params,
    affine_backward,
    affine_forward,
    batchnorm_backward_alt,
    batchnorm_forward,
    layernorm_backward,
    layernorm_forward,
    relu_backward,
    relu_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)

__all__ = [
    "affine_grads", "conv_grads",
    "affine_relu_forward", "affine_relu_backward",
    "affine_bn_relu_forward", "affine_bn_relu_backward",
    "affine_ln_relu_forward", "affine_ln_relu_backward",
    "conv_relu_forward", "conv_relu_backward",
    "conv_relu_pool_forward", "conv_relu_pool_backward",
    "conv_bn_relu_forward", "conv_bn_relu_backward",
]

Array = Any


def affine_grads(dout: Array, cache: tuple, need_dx: bool = True
                 ) -> tuple[Array | None, Array, Array]:
    """:func:`~xpnet.layers.affine_backward`'s ``(dx, dw, db)``; ``dx`` None, and not
    computed, unless ``need_dx``."""
    if need_dx:
        return affine_backward(dout, cache)
    return (None, *_affine_backward_params(dout, cache))


def conv_grads(dout: Array, cache: Any, need_dx: bool = True
               ) -> tuple[Array | None, Array, Array]:
    """:func:`~xpnet.fast_layers.conv_backward_fast`'s ``(dx, dw, db)``; ``dx`` None, and
    not computed, unless ``need_dx``."""
    if need_dx:
        return conv_backward_fast(dout, cache)
    return (None, *conv_backward_params(dout, cache))


def affine_relu_forward(x: Array, w: Array, b: Array) -> tuple[Array, tuple]:
    """Affine then ReLU. Returns ``(out, (fc_cache, relu_cache))``."""
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout: Array, cache: tuple, need_dx: bool = True
                         ) -> tuple[Array | None, Array, Array]:
    """Backward pass of :func:`affine_relu_forward`: ``(dx, dw, db)``."""
    fc_cache, relu_cache = cache
    return affine_grads(relu_backward(dout, relu_cache), fc_cache, need_dx)


def _affine_norm_relu_forward(norm_forward, x, w, b, gamma, beta, param):
    a, fc_cache = affine_forward(x, w, b)
    an, norm_cache = norm_forward(a, gamma, beta, param)
    out, relu_cache = relu_forward(an)
    return out, (fc_cache, norm_cache, relu_cache)


def _affine_norm_relu_backward(norm_backward, dout, cache, need_dx=True):
    fc_cache, norm_cache, relu_cache = cache
    dan, dgamma, dbeta = norm_backward(relu_backward(dout, relu_cache), norm_cache)
    dx, dw, db = affine_grads(dan, fc_cache, need_dx)
    return dx, dw, db, dgamma, dbeta


def affine_bn_relu_forward(
    x: Array, w: Array, b: Array, gamma: Array, beta: Array, bn_param: dict
) -> tuple[Array, tuple]:
    """Affine, batch normalization, ReLU. Returns ``(out, cache)``."""
    return _affine_norm_relu_forward(batchnorm_forward, x, w, b, gamma, beta, bn_param)


def affine_bn_relu_backward(dout: Array, cache: tuple, need_dx: bool = True
                            ) -> tuple[Array | None, ...]:
    """Backward pass of :func:`affine_bn_relu_forward`: ``(dx, dw, db, dgamma, dbeta)``."""
    return _affine_norm_relu_backward(batchnorm_backward_alt, dout, cache, need_dx)


def affine_ln_relu_forward(
    x: Array, w: Array, b: Array, gamma: Array, beta: Array, ln_param: dict
) -> tuple[Array, tuple]:
    """Affine, layer normalization, ReLU. Returns ``(out, cache)``."""
    return _affine_norm_relu_forward(layernorm_forward, x, w, b, gamma, beta, ln_param)


def affine_ln_relu_backward(dout: Array, cache: tuple, need_dx: bool = True
                            ) -> tuple[Array | None, ...]:
    """Backward pass of :func:`affine_ln_relu_forward`: ``(dx, dw, db, dgamma, dbeta)``."""
    return _affine_norm_relu_backward(layernorm_backward, dout, cache, need_dx)


def conv_relu_forward(x: Array, w: Array, b: Array, conv_param: dict) -> tuple[Array, tuple]:
    """Convolution then ReLU. Returns ``(out, (conv_cache, relu_cache))``."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout: Array, cache: tuple, need_dx: bool = True
                       ) -> tuple[Array | None, Array, Array]:
    """Backward pass of :func:`conv_relu_forward`: ``(dx, dw, db)``."""
    conv_cache, relu_cache = cache
    return conv_grads(relu_backward(dout, relu_cache), conv_cache, need_dx)


def conv_relu_pool_forward(x: Array, w: Array, b: Array, conv_param: dict,
                           pool_param: dict) -> tuple[Array, tuple]:
    """Convolution, ReLU, max pooling. Returns ``(out, (conv_cache, relu_cache,
    pool_cache))``."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    s, relu_cache = relu_forward(a)
    out, pool_cache = max_pool_forward_fast(s, pool_param)
    return out, (conv_cache, relu_cache, pool_cache)


def conv_relu_pool_backward(dout: Array, cache: tuple, need_dx: bool = True
                            ) -> tuple[Array | None, Array, Array]:
    """Backward pass of :func:`conv_relu_pool_forward`: ``(dx, dw, db)``."""
    conv_cache, relu_cache, pool_cache = cache
    ds = max_pool_backward_fast(dout, pool_cache)
    return conv_grads(relu_backward(ds, relu_cache), conv_cache, need_dx)


def conv_bn_relu_forward(x: Array, w: Array, b: Array, gamma: Array, beta: Array,
                         conv_param: dict, bn_param: dict) -> tuple[Array, tuple]:
    """Convolution, spatial batch normalization, ReLU. Returns ``(out, cache)``."""
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    an, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (conv_cache, bn_cache, relu_cache)


def conv_bn_relu_backward(dout: Array, cache: tuple, need_dx: bool = True
                          ) -> tuple[Array | None, ...]:
    """Backward pass of :func:`conv_bn_relu_forward`: ``(dx, dw, db, dgamma, dbeta)``."""
    conv_cache, bn_cache, relu_cache = cache
    dan, dgamma, dbeta = spatial_batchnorm_backward(relu_backward(dout, relu_cache), bn_cache)
    dx, dw, db = conv_grads(dan, conv_cache, need_dx)
    return dx, dw, db, dgamma, dbeta
