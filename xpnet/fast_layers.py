"""Fast convolution and max pooling: the naive layers' results without their loops.

Same signatures and results (to rounding) as
:func:`xpnet.layers.conv_forward_naive` and friends, for every stride,
padding and window those accept, on every backend: built from strided slices
and matrix products (:mod:`xpnet._ops.conv`), with no Python loop over the
batch or the image. The course's other names are here too:

=============================================  =====================================
``conv_forward_fast`` / ``conv_backward_fast``  the array library's own kernels where
                                                registered (torch), else im2col or
                                                shifted products (im2col while its
                                                column matrix fits in
                                                ``IM2COL_BUDGET_BYTES``)
``conv_forward_im2col`` / ``..._backward_im2col``  one column matrix, one product
``conv_forward_strides`` / ``..._backward_strides``  one product per filter tap
``conv_forward_winograd`` / ``..._backward_winograd``  3x3 stride 1: Winograd F(2x2, 3x3)
``max_pool_forward_fast`` / ``..._backward_fast``  one strided slice per window offset,
                                                   or the reshape below where it applies
``max_pool_forward_im2col`` / ``..._backward_im2col``  the same (an alias)
``max_pool_forward_reshape`` / ``..._backward_reshape``  square windows that tile the
                                                   input (pool size = stride): a reshape and
                                                   maxima of strided views, no copies
=============================================  =====================================

Every backward function takes the cache of any of the forward functions. Max
pooling routes each window's gradient to its first maximum, as the naive
layer does.
"""

from __future__ import annotations

from typing import Any

from ._ops import conv
from ._ops.conv import IM2COL_BUDGET_BYTES
from .backend import namespace_of
from .errors import InputError

__all__ = [
    "IM2COL_BUDGET_BYTES",
    "conv_backward_fast", "conv_backward_im2col", "conv_backward_strides",
    "conv_backward_winograd",
    "conv_forward_fast", "conv_forward_im2col", "conv_forward_strides", "conv_forward_winograd",
    "max_pool_backward_fast", "max_pool_backward_im2col", "max_pool_backward_reshape",
    "max_pool_forward_fast", "max_pool_forward_im2col", "max_pool_forward_reshape",
]

Array = Any


def _conv_forward(x, w, b, conv_param, method: str, caller: str):
    xp = namespace_of(x, w, b, caller=caller)
    stride, pad = conv.conv_params(conv_param, caller)
    return conv.conv_forward(xp, x, w, b, stride, pad, method, caller)


def _conv_backward(dout, cache, caller: str, need_dx: bool = True):
    if not isinstance(cache, dict) or "method" not in cache:
        raise InputError(f"{caller}: cache must come from conv_forward_fast (or "
                         "conv_forward_im2col / conv_forward_strides / conv_forward_winograd)")
    xp = namespace_of(dout, cache["x"], caller=caller)
    return conv.conv_backward(xp, dout, cache, caller, need_dx)


def conv_forward_fast(x: Array, w: Array, b: Array, conv_param: dict) -> tuple[Array, dict]:
    """Convolutional layer: :func:`xpnet.layers.conv_forward_naive` without the loop.

    Returns ``(out, cache)`` with ``out`` of shape (N, F, H', W') (a view in a
    channels-first layout; use it as any array).
    """
    return _conv_forward(x, w, b, conv_param, "auto", "conv_forward_fast")


def conv_backward_fast(dout: Array, cache: dict) -> tuple[Array, Array, Array]:
    """Backward pass of the fast convolutions: ``(dx, dw, db)``."""
    return _conv_backward(dout, cache, "conv_backward_fast")


def conv_backward_params(dout: Array, cache: dict) -> tuple[Array, Array]:
    """``(dw, db)`` of :func:`conv_backward_fast` without ``dx`` (a network's first
    layer, whose input needs no gradient)."""
    _, dw, db = _conv_backward(dout, cache, "conv_backward_fast", need_dx=False)
    return dw, db


def conv_forward_im2col(x: Array, w: Array, b: Array, conv_param: dict
                        ) -> tuple[Array, dict]:
    """Convolution as one product with the column matrix of all receptive fields."""
    return _conv_forward(x, w, b, conv_param, "im2col", "conv_forward_im2col")


def conv_backward_im2col(dout: Array, cache: dict) -> tuple[Array, Array, Array]:
    """Backward pass of :func:`conv_forward_im2col`: ``(dx, dw, db)``."""
    return _conv_backward(dout, cache, "conv_backward_im2col")


def conv_forward_strides(x: Array, w: Array, b: Array, conv_param: dict
                         ) -> tuple[Array, dict]:
    """Convolution as a sum of one product per filter tap, each over a strided slice
    (no column matrix: the memory of one slice)."""
    return _conv_forward(x, w, b, conv_param, "shifted", "conv_forward_strides")


def conv_backward_strides(dout: Array, cache: dict) -> tuple[Array, Array, Array]:
    """Backward pass of :func:`conv_forward_strides`: ``(dx, dw, db)``."""
    return _conv_backward(dout, cache, "conv_backward_strides")


def conv_forward_winograd(x: Array, w: Array, b: Array, conv_param: dict
                          ) -> tuple[Array, dict]:
    """3x3 stride-1 convolution by Winograd F(2x2, 3x3) (:mod:`xpnet._ops.winograd`):
    2.25x fewer multiplications, float32 error about 1e-6 of the output's scale.

    Raises InputError for other filters or strides.
    """
    return _conv_forward(x, w, b, conv_param, "winograd", "conv_forward_winograd")


def conv_backward_winograd(dout: Array, cache: dict) -> tuple[Array, Array, Array]:
    """Backward pass of :func:`conv_forward_winograd`: ``(dx, dw, db)``."""
    return _conv_backward(dout, cache, "conv_backward_winograd")


def max_pool_forward_fast(x: Array, pool_param: dict) -> tuple[Array, dict]:
    """Max pooling: :func:`xpnet.layers.max_pool_forward_naive` without the loop."""
    caller = "max_pool_forward_fast"
    xp = namespace_of(x, caller=caller)
    ph, pw, stride = conv.pool_params(pool_param, caller)
    return conv.pool_forward(xp, x, ph, pw, stride, caller)


def max_pool_backward_fast(dout: Array, cache: dict) -> Array:
    """Backward pass of the fast max poolings: the gradient ``dx``."""
    caller = "max_pool_backward_fast"
    if not isinstance(cache, dict) or "arg" not in cache:
        raise InputError(f"{caller}: cache must come from max_pool_forward_fast (or "
                         "max_pool_forward_reshape / max_pool_forward_im2col)")
    xp = namespace_of(dout, cache["x"] if cache.get("tile") else cache["arg"], caller=caller)
    return conv.pool_backward(xp, dout, cache, caller)


max_pool_forward_im2col = max_pool_forward_fast
max_pool_backward_im2col = max_pool_backward_fast


def max_pool_forward_reshape(x: Array, pool_param: dict) -> tuple[Array, dict]:
    """Max pooling of square windows that tile the input (pool size = stride).

    Raises InputError for other windows (use :func:`max_pool_forward_fast`).
    """
    caller = "max_pool_forward_reshape"
    xp = namespace_of(x, caller=caller)
    ph, pw, stride = conv.pool_params(pool_param, caller)
    conv.pool_geometry(x, ph, pw, stride, caller)
    if not ph == pw == stride:
        raise InputError(f"{caller}: needs pool_height == pool_width == stride, got "
                         f"{ph}, {pw}, {stride}; use max_pool_forward_fast")
    return conv.pool_forward(xp, x, ph, pw, stride, caller)


max_pool_backward_reshape = max_pool_backward_fast
