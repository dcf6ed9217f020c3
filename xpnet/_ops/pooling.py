"""Max pooling over windows that tile the input: a reshape and maxima, no window copies.

When ``pool_height == pool_width == stride`` (and the input's height and
width are multiples of it, which the geometry check already demands) the
windows do not overlap: ``x`` of shape (N, C, H, W) is, without a copy, the
array ``(N, C, H/p, p, W/p, p)`` whose axes 3 and 5 run over a window. The
maximum is the running ``maximum`` of the ``p * p`` strided views
``x6[:, :, :, i, :, j]`` (NaN propagates, as ``maximum`` does by the
standard), so the forward pass reads ``x`` once and writes only the output.

The backward pass routes each window's gradient to the reference's argmax:
the first (row-major) entry equal to the window's maximum, or the first NaN
when the maximum is NaN. An entry ``v`` is a candidate when ``v == out`` or
``v != v``: if ``out`` is a number no entry of its window is NaN (a NaN would
have propagated), and if ``out`` is NaN no entry equals it. The first
candidate wins; the gradient is written into a fresh zero array, one strided
slice ``[:, :, i::p, j::p]`` per window offset.

Everything is Array API code: it runs on every backend.
"""

from __future__ import annotations

from typing import Any

from .._fast import ops

Array = Any


def tiles(x_shape: tuple[int, ...], pool_height: int, pool_width: int, stride: int) -> bool:
    """Whether the windows tile the input exactly (pool size == stride, sizes divisible)."""
    return (pool_height == pool_width == stride and len(x_shape) == 4
            and x_shape[2] % stride == 0 and x_shape[3] % stride == 0)


def tile_pool_forward(xp, x: Array, p: int) -> Array:
    """The maximum of each ``p x p`` tile of ``x`` (N, C, H, W): (N, C, H/p, W/p)."""
    if p == 1:
        return xp.asarray(x, copy=True)
    # along the width first: (N, C, H, W/p) from p strided views, then along the height
    cols = xp.reshape(x, (x.shape[0], x.shape[1], x.shape[2], x.shape[3] // p, p))
    rows = xp.maximum(cols[..., 0], cols[..., 1])
    for j in range(2, p):
        rows = xp.maximum(rows, cols[..., j])
    n, c, h, wo = rows.shape
    r = xp.reshape(rows, (n, c, h // p, p, wo))
    out = xp.maximum(r[:, :, :, 0, :], r[:, :, :, 1, :])
    for i in range(2, p):
        out = xp.maximum(out, r[:, :, :, i, :])
    return out


def tile_pool_backward(xp, dout: Array, x: Array, out: Array, p: int) -> Array:
    """``dx``: each tile's gradient at its first maximum (or first NaN); the
    registered operation :func:`xpnet._fast.reference.max_pool_tiles_backward`."""
    return ops.max_pool_tiles_backward(dout, x, out, p)
