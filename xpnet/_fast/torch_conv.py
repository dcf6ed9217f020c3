"""PyTorch fast paths for convolution: the kernels ``torch.nn.Conv2d`` runs.

- ``conv2d``: ``torch.nn.functional.conv2d`` (oneDNN on the CPU, cuDNN on CUDA);
- ``conv2d_backward``: ``torch.ops.aten.convolution_backward``, autograd's own
  kernel, giving dx, dw and db in one call (dx skipped for a first layer); in
  float32 for stride 1 only (see :func:`supports_conv2d_backward`).

They sum in their own order (blocked direct, GEMM-based or Winograd kernels,
chosen by the library per shape), so they agree with the reference to
rounding: rtol 2e-5 in float32 and 1e-12 in float64 relative to the array's
scale (measured against float64 at batch 128 of the convnet's layers: forward
and dx 3e-7 to 6e-7, dw and db 2e-6 to 7e-6, the batch-long sums); non-finite
entries where the reference has them, maybe of another kind (NaN for inf). On
CUDA, TF32 (cuDNN's default for float32 convolutions, 10-bit mantissas) is
switched off around the call, or the float32 tolerance would be 1e-3.

- ``max_pool_tiles_backward`` (windows that tile the input, pool == stride; CPU):
  ``max_pool2d_with_indices`` and its backward kernel, which route to the first
  maximum as the reference does; where a window holds a NaN (the kernel would
  take its last NaN, the reference its first) the reference runs. Equal values
  (rtol 0), except that a routed -0.0 comes back +0.0. The forward pass stays
  the Array API maxima of strided views (:mod:`xpnet._ops.pooling`); the
  overlapping windows' torch path is ``max_pool_windows`` in
  :mod:`xpnet._fast.torch_paths`.
"""

from __future__ import annotations

import contextlib

import torch

from . import reference
from .registry import FastPath, rtol

__all__ = ["conv2d", "conv2d_backward", "fast_paths", "max_pool_tiles_backward",
           "supports_conv2d", "supports_conv2d_backward", "supports_max_pool_tiles_backward"]

_MAX_POOL_WITH_INDICES = torch.ops.aten.max_pool2d_with_indices
_MAX_POOL_BACKWARD = torch.ops.aten.max_pool2d_with_indices_backward
_CONVOLUTION_BACKWARD = getattr(getattr(torch.ops, "aten", None), "convolution_backward", None)
TOLERANCE = rtol(2e-5, 1e-12, nonfinite="any")


def _floating_alike(*arrays) -> bool:
    first = arrays[0]
    return all(isinstance(a, torch.Tensor) and a.dtype == first.dtype
               and a.device == first.device for a in arrays) and first.dtype.is_floating_point


def _exact_float32(device: torch.device):
    """No TF32 inside: cuDNN's float32 convolutions default to it."""
    if device.type == "cuda":
        return torch.backends.cudnn.flags(enabled=True, allow_tf32=False)
    return contextlib.nullcontext()


def supports_conv2d(x, w, b, stride, pad) -> bool:
    """Floating tensors of one dtype and device; x and w 4-D, b 1-D."""
    return (_floating_alike(x, w, b) and x.ndim == 4 and w.ndim == 4 and b.ndim == 1
            and x.dtype in (torch.float32, torch.float64))


def conv2d(x, w, b, stride, pad):
    """``torch.nn.functional.conv2d``."""
    with _exact_float32(x.device):
        return torch.nn.functional.conv2d(x, w, b, stride=stride, padding=pad)


def supports_conv2d_backward(dout, x, w, stride, pad, need_dx=True) -> bool:
    """Floating tensors of one dtype and device, 4-D, where the kernel exists; in
    float32 stride 1 only: oneDNN's strided float32 backward drops the NaN or inf of
    some taps from dx (the registry test's non-finite families show it), so the
    reference's non-finite positions would not hold."""
    return (_CONVOLUTION_BACKWARD is not None and _floating_alike(dout, x, w)
            and dout.ndim == x.ndim == w.ndim == 4
            and (x.dtype == torch.float64 or (x.dtype == torch.float32 and stride == 1)))


def conv2d_backward(dout, x, w, stride, pad, need_dx=True):
    """``aten.convolution_backward``: ``(dx, dw, db)`` (dx None unless ``need_dx``)."""
    with _exact_float32(x.device):
        dx, dw, db = _CONVOLUTION_BACKWARD(
            dout, x, w, [w.shape[0]], [stride, stride], [pad, pad], [1, 1], False, [0, 0], 1,
            [bool(need_dx), True, True])
    return dx, dw, db


def supports_max_pool_tiles_backward(dout, x, out, p) -> bool:
    """CPU floating tensors of one dtype, x 4-D, dout of out's shape (the NaN test
    below would make a GPU wait)."""
    return (_floating_alike(dout, x, out) and x.ndim == 4 and dout.shape == out.shape
            and x.device.type == "cpu")


def max_pool_tiles_backward(dout, x, out, p):
    """``max_pool2d_with_indices`` (the first maximum of each window, as the reference)
    and its backward kernel; a window with a NaN would go to its last NaN, so where
    ``out`` has one the reference runs instead. The kernel adds dout into zeros, so a
    routed -0.0 comes back +0.0 (equal values, not the same bits)."""
    if bool(torch.isnan(out).any()):
        return reference.max_pool_tiles_backward(dout, x, out, p)
    _, index = _MAX_POOL_WITH_INDICES(x, [p, p], [p, p])
    return _MAX_POOL_BACKWARD(dout, x, [p, p], [p, p], [0, 0], [1, 1], False, index)


def fast_paths() -> list[FastPath]:
    """The torch convolution fast paths."""
    return [
        FastPath("conv2d", "torch", conv2d, supports_conv2d, TOLERANCE,
                 "torch.nn.functional.conv2d (oneDNN / cuDNN, no TF32)"),
        FastPath("conv2d_backward", "torch", conv2d_backward, supports_conv2d_backward,
                 TOLERANCE, "aten.convolution_backward: dx, dw and db in one call"),
        FastPath("max_pool_tiles_backward", "torch", max_pool_tiles_backward,
                 supports_max_pool_tiles_backward, rtol(0.0, 0.0),
                 "max_pool2d_with_indices and its backward kernel (the reference where "
                 "a window has a NaN); -0.0 routed as +0.0"),
    ]
