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


def affine_bn_relu_forward(
    x: Array, w: Array, b: Array, gamma: Array, beta: Array, bn_param: dict
) -> tuple[Array, tuple]:
    """Affine, batch normalization, ReLU. Returns ``(out, cache)``."""
    a, fc_cache = affine_forward(x, w, b)
    an, bn_cache = batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (fc_cache, bn_cache, relu_cache)


def affine_bn_relu_backward(dout: Array, cache: tuple) -> tuple[Array, ...]:
    """Backward pass of :func:`affine_bn_relu_forward`: ``(dx, dw, db, dgamma, dbeta)``."""
    fc_cache, bn_cache, relu_cache = cache
    dan, dgamma, dbeta = batchnorm_backward_alt(relu_backward(dout, relu_cache), bn_cache)
    dx, dw, db = affine_backward(dan, fc_cache)
    return dx, dw, db, dgamma, dbeta


def affine_ln_relu_forward(
    x: Array, w: Array, b: Array, gamma: Array, beta: Array, ln_param: dict
) -> tuple[Array, tuple]:
    """Affine, layer normalization, ReLU. Returns ``(out, cache)``."""
    a, fc_cache = affine_forward(x, w, b)
    an, ln_cache = layernorm_forward(a, gamma, beta, ln_param)
    out, relu_cache = relu_forward(an)
    return out, (fc_cache, ln_cache, relu_cache)


def affine_ln_relu_backward(dout: Array, cache: tuple) -> tuple[Array, ...]:
    """Backward pass of :func:`affine_ln_relu_forward`: ``(dx, dw, db, dgamma, dbeta)``."""
    fc_cache, ln_cache, relu_cache = cache
    dan, dgamma, dbeta = layernorm_backward(relu_backward(dout, relu_cache), ln_cache)
    dx, dw, db = affine_backward(dan, fc_cache)
    return dx, dw, db, dgamma, dbeta
