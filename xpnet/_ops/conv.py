"""Convolution and max pooling from strided slices and matrix products.

Everything here is written on the Array API; nothing loops in Python over the
batch or the image. A kernel offset ``(kh, kw)`` selects, with one strided
slice, the input pixel that every output position sees through that tap of
the filter (Chainer's im2col works this way). Two algorithms use it:

``im2col``
    The slices of all ``HH * WW`` offsets stacked into one column matrix of
    shape ``(C * HH * WW, N * H' * W')``, then one matrix product with the
    filters. Fastest when that matrix fits in memory.
``shifted``
    One matrix product per offset, ``W[:, :, kh, kw] @ slice``, summed. The
    same arithmetic without the column matrix: memory of one slice.
``library``
    What ``auto`` takes where the array library's own convolution kernels are
    registered (:mod:`xpnet._fast.torch_conv`: oneDNN on the CPU, cuDNN on CUDA).
``winograd``
    3x3 stride-1 filters only: Winograd F(2x2, 3x3) (:mod:`xpnet._ops.winograd`),
    transforms from strided slices and one batched product, 2.25x fewer
    multiplications.

Both work in a channels-first-then-batch layout ``(C, N, H, W)``, in which
every product is one large GEMM without transposes; the output is returned as
a view of logical shape ``(N, F, H', W')``, so chains of layers copy nothing
to change layout. Max pooling takes the maximum over one strided slice per
window offset and routes the gradient to the first maximum of each window
(the first NaN, if any), as ``argmax`` does; windows that tile the input
(pool size == stride) take :mod:`xpnet._ops.pooling`'s reshape and maxima.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from .._fast import ops
from ..errors import InputError
from . import pooling, winograd
from .checks import ndim, nonnegative_int, positive_int, require_keys, shape_str

Array = Any

#: Bytes the im2col column matrix may take before ``'auto'`` switches to ``shifted``.
IM2COL_BUDGET_BYTES = 384 * 2**20
#: Above this size the backward pass of im2col does not build the column matrix's
#: gradient but adds one product per filter tap into dx (the memory of one slice).
DCOLS_BUDGET_BYTES = 64 * 2**20
#: ``'auto'`` takes Winograd F(2x2, 3x3) for 3x3 stride-1 filters from this many input
#: channels; None: never (on NumPy its transforms' passes cost what its 2.25x fewer
#: multiplications save at the convnet's shapes: measured no faster than im2col).
WINOGRAD_MIN_CHANNELS: int | None = None
METHODS = ("auto", "im2col", "shifted", "winograd")


# ---------------------------------------------------------------------------
# Geometry and validation


def conv_params(conv_param: Any, caller: str) -> tuple[int, int]:
    """``(stride, pad)`` from a course ``conv_param`` dict, checked."""
    require_keys(conv_param, ("stride", "pad"), "conv_param", caller)
    stride = positive_int(conv_param["stride"], "conv_param['stride']", caller)
    pad = nonnegative_int(conv_param["pad"], "conv_param['pad']", caller)
    return stride, pad


def pool_params(pool_param: Any, caller: str) -> tuple[int, int, int]:
    """``(pool_height, pool_width, stride)`` from a course ``pool_param`` dict, checked."""
    keys = ("pool_height", "pool_width", "stride")
    require_keys(pool_param, keys, "pool_param", caller)
    return tuple(positive_int(pool_param[k], f"pool_param[{k!r}]", caller)  # type: ignore
                 for k in keys)


def _output_size(size: int, window: int, stride: int, pad: int, what: str, axis: str,
                 caller: str) -> int:
    span = size + 2 * pad - window
    if span < 0:
        raise InputError(f"{caller}: the {what} ({window}) is larger than the "
                         f"{'padded ' if pad else ''}input {axis} ({size + 2 * pad})")
    if span % stride:
        raise InputError(
            f"{caller}: stride {stride} does not tile the input {axis}: ({size} + 2*{pad} - "
            f"{window}) / {stride} + 1 = {span / stride + 1:g} output positions is not an "
            "integer; change the stride or the padding")
    return span // stride + 1


def conv_geometry(x: Array, w: Array, b: Array, stride: int, pad: int, caller: str
                  ) -> tuple[int, int]:
    """``(H', W')`` of a convolution, after checking x, w and b against each other."""
    ndim(x, 4, "x", "(N, C, H, W)", caller)
    ndim(w, 4, "w", "(F, C, HH, WW)", caller)
    if x.shape[1] != w.shape[1]:
        raise InputError(f"{caller}: x has {x.shape[1]} channels (shape {shape_str(x.shape)}) "
                         f"but w expects {w.shape[1]} (shape {shape_str(w.shape)})")
    if tuple(b.shape) != (w.shape[0],):
        raise InputError(f"{caller}: b must have shape ({w.shape[0]},) for {w.shape[0]} "
                         f"filters, got {shape_str(b.shape)}")
    height = _output_size(x.shape[2], w.shape[2], stride, pad, "filter height", "height",
                          caller)
    width = _output_size(x.shape[3], w.shape[3], stride, pad, "filter width", "width", caller)
    return height, width


def pool_geometry(x: Array, pool_height: int, pool_width: int, stride: int, caller: str
                  ) -> tuple[int, int]:
    """``(H', W')`` of a max pooling, after checking x."""
    ndim(x, 4, "x", "(N, C, H, W)", caller)
    return (_output_size(x.shape[2], pool_height, stride, 0, "pool height", "height", caller),
            _output_size(x.shape[3], pool_width, stride, 0, "pool width", "width", caller))


def check_dout(dout: Array, expected: tuple[int, ...], caller: str) -> None:
    if tuple(dout.shape) != tuple(expected):
        raise InputError(f"{caller}: dout must have the shape of the forward pass's output, "
                         f"{shape_str(expected)}, got {shape_str(dout.shape)}")


# ---------------------------------------------------------------------------
# Layout helpers


def _window(a: Array, kh: int, kw: int, stride: int, out_h: int, out_w: int) -> Array:
    """The strided slice of the last two axes that kernel offset (kh, kw) sees."""
    return a[:, :, kh:kh + stride * (out_h - 1) + 1:stride,
             kw:kw + stride * (out_w - 1) + 1:stride]


def _padded_cnhw(xp, x: Array, pad: int) -> Array:
    """``x`` (N, C, H, W) as (C, N, H + 2 pad, W + 2 pad), zero padded."""
    xt = xp.permute_dims(x, (1, 0, 2, 3))
    if pad == 0:
        return xt
    c, n, h, w = xt.shape
    out = xp.zeros((c, n, h + 2 * pad, w + 2 * pad), dtype=x.dtype, device=device(x))
    out[:, :, pad:pad + h, pad:pad + w] = xt
    return out


def _as_matrix(xp, a: Array, rows: int) -> Array:
    """``a`` reshaped to (rows, -1) (a copy when its layout requires one)."""
    return xp.reshape(a, (rows, -1))


def _column_bytes(x: Array, w: Array, out_h: int, out_w: int) -> int:
    item = 8 if "64" in str(x.dtype) else 4
    return x.shape[1] * w.shape[2] * w.shape[3] * x.shape[0] * out_h * out_w * item


def choose_method(method: str, x: Array, w: Array, out_h: int, out_w: int,
                  stride_pad: tuple[int, int] = (0, 0), caller: str = "conv_forward") -> str:
    """The algorithm ``'auto'`` stands for: Winograd for 3x3 stride-1 filters over at
    least :data:`WINOGRAD_MIN_CHANNELS` input channels (if set), else im2col within
    :data:`IM2COL_BUDGET_BYTES`, else shifted products."""
    if method == "winograd" and not winograd.applies(tuple(w.shape), *stride_pad):
        raise InputError(f"{caller}: method 'winograd' needs 3x3 filters and stride 1, got "
                         f"{w.shape[2]}x{w.shape[3]} filters, stride {stride_pad[0]}")
    if method == "winograd" and not all("float" in str(a.dtype) for a in (x, w)):
        raise InputError(f"{caller}: method 'winograd' needs floating-point x and w (its "
                         f"transforms halve), got {x.dtype} and {w.dtype}")
    if method != "auto":
        return method
    if (WINOGRAD_MIN_CHANNELS is not None and winograd.applies(tuple(w.shape), *stride_pad)
            and w.shape[1] >= WINOGRAD_MIN_CHANNELS):
        return "winograd"
    return "im2col" if _column_bytes(x, w, out_h, out_w) <= IM2COL_BUDGET_BYTES else "shifted"


# ---------------------------------------------------------------------------
# Convolution


def conv_forward(xp, x: Array, w: Array, b: Array, stride: int, pad: int, method: str,
                 caller: str) -> tuple[Array, dict]:
    """Cross-correlation of ``x`` with ``w`` plus ``b``: ``(out, cache)``."""
    out_h, out_w = conv_geometry(x, w, b, stride, pad, caller)
    f, c, hh, ww = w.shape
    n = x.shape[0]
    if method == "auto" and ops.conv2d.select(x, w, b, stride, pad) is not None:
        # the library's own kernels (torch: oneDNN / cuDNN), a registered fast path
        return ops.conv2d(x, w, b, stride, pad), {
            "x": x, "w": w, "b": b, "stride": stride, "pad": pad, "method": "library",
            "out_shape": (n, f, out_h, out_w)}
    method = choose_method(method, x, w, out_h, out_w, (stride, pad), caller)
    cache = {"x": x, "w": w, "b": b, "stride": stride, "pad": pad, "method": method,
             "out_shape": (n, f, out_h, out_w)}
    if method == "winograd":
        out, cache["winograd"] = winograd.forward(xp, xp.permute_dims(x, (1, 0, 2, 3)), w, pad)
        bias = xp.reshape(b, (f, 1, 1, 1))
        out = out + bias if out.dtype != bias.dtype else _add_(out, bias)
        return xp.permute_dims(out, (1, 0, 2, 3)), cache
    xpad = _padded_cnhw(xp, x, pad)
    if method == "im2col":
        cols = _im2col(xp, xpad, hh, ww, stride, out_h, out_w)
        out = xp.reshape(w, (f, c * hh * ww)) @ cols
        cache["cols"] = cols
    else:
        taps = xp.reshape(xp.permute_dims(w, (2, 3, 0, 1)), (hh * ww, f, c))
        out = None
        for k in range(hh * ww):
            patch = _as_matrix(xp, _window(xpad, k // ww, k % ww, stride, out_h, out_w), c)
            term = taps[k, ...] @ patch
            if out is None:
                out = term
            else:
                out += term
    bias = xp.reshape(b, (f, 1))
    if out.dtype == bias.dtype:
        out += bias  # in place on the fresh product
    else:
        out = out + bias
    out = xp.permute_dims(xp.reshape(out, (f, n, out_h, out_w)), (1, 0, 2, 3))
    return out, cache


def _im2col(xp, xpad: Array, hh: int, ww: int, stride: int, out_h: int, out_w: int) -> Array:
    """The column matrix (C HH WW, N H' W') of ``xpad`` (C, N, H + 2 pad, W + 2 pad)."""
    c, n = xpad.shape[0], xpad.shape[1]
    cols = xp.stack([_window(xpad, kh, kw, stride, out_h, out_w)
                     for kh in range(hh) for kw in range(ww)], axis=1)
    return xp.reshape(cols, (c * hh * ww, n * out_h * out_w))


def _dx_as_convolution(xp, dout: Array, w: Array, pad: int, x_shape: tuple[int, ...]
                       ) -> Array:
    """dx of a stride-1 convolution with square filters and ``pad <= HH - 1``: the
    correlation of dout, padded by ``HH - 1 - pad``, with the filters flipped and their
    channels swapped, by one im2col product (one column matrix and one GEMM instead of
    HH WW products and overlapping adds)."""
    f, c, hh, ww = w.shape
    n, _, h, wdt = x_shape
    dpad = _padded_cnhw(xp, dout, hh - 1 - pad)  # (F, N, H + HH - 1, W + WW - 1)
    cols = _im2col(xp, dpad, hh, ww, 1, h, wdt)  # (F HH WW, N H W)
    wf = xp.reshape(xp.permute_dims(xp.flip(w, axis=(2, 3)), (1, 0, 2, 3)), (c, f * hh * ww))
    dx = xp.reshape(wf @ cols, (c, n, h, wdt))
    return xp.permute_dims(dx, (1, 0, 2, 3))


def _add_(a: Array, b: Array) -> Array:
    a += b
    return a


def conv_backward(xp, dout: Array, cache: dict, caller: str, need_dx: bool = True
                  ) -> tuple[Array | None, Array, Array]:
    """``(dx, dw, db)`` of :func:`conv_forward` (``dx`` None unless ``need_dx``)."""
    x, w, stride, pad = cache["x"], cache["w"], cache["stride"], cache["pad"]
    check_dout(dout, cache["out_shape"], caller)
    method = cache["method"]
    if method == "library":
        if ops.conv2d_backward.select(dout, x, w, stride, pad, need_dx=need_dx) is not None:
            return ops.conv2d_backward(dout, x, w, stride, pad, need_dx=need_dx)
        method = "shifted"  # the library's backward refuses these (or is switched off)
    n, f, out_h, out_w = cache["out_shape"]
    _, c, hh, ww = w.shape
    dout_t = _as_matrix(xp, xp.permute_dims(dout, (1, 0, 2, 3)), f)  # (F, N H' W')
    db = xp.sum(dout_t, axis=1)
    taps = dcols = None
    if method == "winograd":
        dx, dw = winograd.backward(xp, xp.permute_dims(dout, (1, 0, 2, 3)), cache["winograd"],
                                   tuple(x.shape), tuple(w.shape), pad, need_dx)
        return dx, dw, db
    if method == "im2col":
        cols = cache["cols"]
        dw = xp.reshape(dout_t @ xp.matrix_transpose(cols), w.shape)
        if not need_dx:
            return None, dw, db
        h, wdt = x.shape[2], x.shape[3]
        if (stride == 1 and hh == ww and pad <= hh - 1
                and _column_bytes(dout, w, h, wdt) <= IM2COL_BUDGET_BYTES):
            return _dx_as_convolution(xp, dout, w, pad, tuple(x.shape)), dw, db
        if _column_bytes(x, w, out_h, out_w) <= DCOLS_BUDGET_BYTES:
            dcols = xp.matrix_transpose(xp.reshape(w, (f, c * hh * ww))) @ dout_t
            dcols = xp.reshape(dcols, (c, hh * ww, n, out_h, out_w))
        else:
            taps = xp.reshape(xp.permute_dims(w, (2, 3, 0, 1)), (hh * ww, f, c))
    else:
        xpad = _padded_cnhw(xp, x, pad)
        taps = xp.reshape(xp.permute_dims(w, (2, 3, 0, 1)), (hh * ww, f, c))
        dtaps = []
        for k in range(hh * ww):
            patch = _as_matrix(xp, _window(xpad, k // ww, k % ww, stride, out_h, out_w), c)
            dtaps.append(dout_t @ xp.matrix_transpose(patch))
        dw = xp.permute_dims(xp.reshape(xp.stack(dtaps, axis=0), (hh, ww, f, c)), (2, 3, 0, 1))
        if not need_dx:
            return None, dw, db
    h, wdt = x.shape[2], x.shape[3]
    dxpad = xp.zeros((c, n, h + 2 * pad, wdt + 2 * pad), dtype=dout.dtype, device=device(dout))
    for k in range(hh * ww):
        kh, kw = k // ww, k % ww
        if dcols is not None:
            grad = dcols[:, k, ...]
        else:
            grad = xp.reshape(xp.matrix_transpose(taps[k, ...]) @ dout_t, (c, n, out_h, out_w))
        ops.add_window_(dxpad, grad, kh, kw, stride)
    dx = dxpad[:, :, pad:pad + h, pad:pad + wdt] if pad else dxpad
    return xp.permute_dims(dx, (1, 0, 2, 3)), dw, db


# ---------------------------------------------------------------------------
# Max pooling


def pool_forward(xp, x: Array, pool_height: int, pool_width: int, stride: int, caller: str
                 ) -> tuple[Array, dict]:
    """Max over each window: ``(out, cache)``; the cache holds the argmax offsets."""
    out_h, out_w = pool_geometry(x, pool_height, pool_width, stride, caller)
    if pooling.tiles(tuple(x.shape), pool_height, pool_width, stride):
        out = pooling.tile_pool_forward(xp, x, stride)
        return out, {"x_shape": tuple(x.shape), "x": x, "out": out, "tile": stride,
                     "arg": None, "pool": (pool_height, pool_width, stride), "dtype": x.dtype}
    out, arg = ops.max_pool_windows(x, pool_height, pool_width, stride, out_h, out_w)
    cache = {"x_shape": tuple(x.shape), "arg": arg, "pool": (pool_height, pool_width, stride),
             "dtype": x.dtype}
    return out, cache


def pool_backward(xp, dout: Array, cache: dict, caller: str) -> Array:
    """Route each window's gradient to its first maximum (overlaps add up)."""
    if cache.get("tile"):
        check_dout(dout, tuple(cache["out"].shape), caller)
        return pooling.tile_pool_backward(xp, dout, cache["x"], cache["out"], cache["tile"])
    arg = cache["arg"]
    check_dout(dout, tuple(arg.shape), caller)
    pool_height, pool_width, stride = cache["pool"]
    dx = xp.zeros(cache["x_shape"], dtype=dout.dtype, device=device(dout))
    zero = xp.zeros((), dtype=dout.dtype, device=device(dout))
    for k in range(pool_height * pool_width):
        ops.add_window_(dx, xp.where(arg == k, dout, zero), k // pool_width, k % pool_width,
                        stride)
    return dx
