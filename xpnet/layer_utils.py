"""Sandwich layers: affine followed by (normalization and) ReLU."""

from __future__ import annotations

from typing import Any

from .layers import (
    affine_backward,
    affine_forward,
    batchnorm_backward_alt,
    batchnorm_forward,
    layernorm_backward,
    layernorm_forward,
    relu_backward,
    relu_forward,
)

__all__ = [
    "affine_relu_forward", "affine_relu_backward",
    "affine_bn_relu_forward", "affine_bn_relu_backward",
    "affine_ln_relu_forward", "affine_ln_relu_backward",
]

Array = Any


def affine_relu_forward(x: Array, w: Array, b: Array) -> tuple[Array, tuple]:
    """Affine then ReLU. Returns ``(out, (fc_cache, relu_cache))``."""
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout: Array, cache: tuple) -> tuple[Array, Array, Array]:
    """Backward pass of :func:`affine_relu_forward`: ``(dx, dw, db)``."""
    fc_cache, relu_cache = cache
    return affine_backward(relu_backward(dout, relu_cache), fc_cache)


def _affine_norm_relu_forward(norm_forward, x, w, b, gamma, beta, param):
    a, fc_cache = affine_forward(x, w, b)
    an, norm_cache = norm_forward(a, gamma, beta, param)
    out, relu_cache = relu_forward(an)
    return out, (fc_cache, norm_cache, relu_cache)


def _affine_norm_relu_backward(norm_backward, dout, cache):
    fc_cache, norm_cache, relu_cache = cache
    dan, dgamma, dbeta = norm_backward(relu_backward(dout, relu_cache), norm_cache)
    dx, dw, db = affine_backward(dan, fc_cache)
    return dx, dw, db, dgamma, dbeta


def affine_bn_relu_forward(
    x: Array, w: Array, b: Array, gamma: Array, beta: Array, bn_param: dict
) -> tuple[Array, tuple]:
    """Affine, batch normalization, ReLU. Returns ``(out, cache)``."""
    return _affine_norm_relu_forward(batchnorm_forward, x, w, b, gamma, beta, bn_param)


def affine_bn_relu_backward(dout: Array, cache: tuple) -> tuple[Array, ...]:
    """Backward pass of :func:`affine_bn_relu_forward`: ``(dx, dw, db, dgamma, dbeta)``."""
    return _affine_norm_relu_backward(batchnorm_backward_alt, dout, cache)


def affine_ln_relu_forward(
    x: Array, w: Array, b: Array, gamma: Array, beta: Array, ln_param: dict
) -> tuple[Array, tuple]:
    """Affine, layer normalization, ReLU. Returns ``(out, cache)``."""
    return _affine_norm_relu_forward(layernorm_forward, x, w, b, gamma, beta, ln_param)


def affine_ln_relu_backward(dout: Array, cache: tuple) -> tuple[Array, ...]:
    """Backward pass of :func:`affine_ln_relu_forward`: ``(dx, dw, db, dgamma, dbeta)``."""
    return _affine_norm_relu_backward(layernorm_backward, dout, cache)
