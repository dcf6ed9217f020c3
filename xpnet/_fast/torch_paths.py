"""PyTorch fast paths: the kernels that ``torch.optim`` and autograd use.

The reference's in-place code allocates a temporary per operation, and
PyTorch's CPU allocator returns large blocks to the system, so every
temporary costs fresh pages.

- ``adam_``: ``torch._fused_adam_``, the kernel of ``Adam(fused=True)``; it
  orders its arithmetic differently (``lerp`` for m, ``sqrt(v) / sqrt(1 -
  beta2**t)``), so it agrees with the reference to rounding;
- ``relu_backward`` (CPU): autograd's ``threshold_backward``, with the
  entries where ``x`` is NaN (which it would pass) cleared as the reference
  does.
"""

from __future__ import annotations

import torch

from .registry import EXACT, FastPath, rtol

__all__ = ["adam_", "fast_paths", "relu_backward", "supports_adam",
           "supports_relu_backward"]

_FUSED_ADAM = getattr(torch, "_fused_adam_", None)
_THRESHOLD_BACKWARD = getattr(getattr(torch.ops, "aten", None), "threshold_backward", None)


def _alike(*arrays) -> bool:
    first = arrays[0]
    return all(isinstance(a, torch.Tensor) and a.dtype == first.dtype
               and a.shape == first.shape and a.device == first.device for a in arrays)


def supports_adam(w, dw, m, v, lr, beta1, beta2, eps, t) -> bool:
    """Contiguous floating tensors of one dtype, shape and device, where the fused
    kernel exists (it computes wrong values on strided views)."""
    return (_FUSED_ADAM is not None and _alike(w, dw, m, v) and w.dtype.is_floating_point
            and w.is_contiguous() and dw.is_contiguous() and m.is_contiguous()
            and v.is_contiguous())


def adam_(w, dw, m, v, lr, beta1, beta2, eps, t) -> None:
    """``torch._fused_adam_`` on one parameter."""
    step = torch.full((), float(t), dtype=torch.float32, device=w.device)
    _FUSED_ADAM([w], [dw], [m], [v], [], [step], lr=float(lr), beta1=float(beta1),
                beta2=float(beta2), weight_decay=0.0, eps=float(eps), amsgrad=False,
                maximize=False)


def supports_relu_backward(dout, x) -> bool:
    """CPU tensors of one dtype, shape and device (the NaN test below would make a
    GPU wait)."""
    return _THRESHOLD_BACKWARD is not None and _alike(dout, x) and x.device.type == "cpu"


def relu_backward(dout, x):
    """``threshold_backward(dout, x, 0)``, which passes ``dout`` where ``x`` is NaN:
    those entries are cleared, as the reference does."""
    dx = _THRESHOLD_BACKWARD(dout, x, 0)
    if x.dtype.is_floating_point and bool(torch.isnan(x).any()):
        dx = dx.masked_fill(torch.isnan(x), 0)
    return dx


def supports_add_window(dst, src, kh, kw, stride) -> bool:
    """Tensors of one dtype and device."""
    return _alike(dst, dst) and isinstance(src, torch.Tensor) and src.dtype == dst.dtype \
        and src.device == dst.device


def add_window(dst, src, kh, kw, stride) -> None:
    """``add_`` into the strided view (the reference writes the sum back)."""
    oh, ow = src.shape[2], src.shape[3]
    dst[:, :, kh:kh + stride * (oh - 1) + 1:stride,
        kw:kw + stride * (ow - 1) + 1:stride].add_(src)


def supports_max_pool_windows(x, pool_height, pool_width, stride, out_h, out_w) -> bool:
    """4-D floating tensors."""
    return isinstance(x, torch.Tensor) and x.ndim == 4 and x.dtype.is_floating_point


def max_pool_windows(x, pool_height, pool_width, stride, out_h, out_w):
    """``max_pool2d`` with its indices, turned into offsets within each window.

    ``max_pool2d`` takes the first of tied maxima, as the reference does, but the
    LAST NaN of a window (CPU and CUDA kernels alike replace the running maximum at
    every NaN); the reference takes the first. So windows whose maximum is NaN take
    their index from a second ``max_pool2d`` over the NaN mask, whose first
    maximum (1) is the first NaN. On the CPU that pass runs only when some window
    is NaN (reading that is free there); on a device it always runs, since asking
    would synchronize."""
    kernel = (pool_height, pool_width)
    out, index = torch.nn.functional.max_pool2d(x, kernel, stride, return_indices=True)
    nan_out = torch.isnan(out)
    if x.device.type != "cpu" or bool(nan_out.any()):
        _, first_nan = torch.nn.functional.max_pool2d(torch.isnan(x).to(x.dtype), kernel,
                                                      stride, return_indices=True)
        index = torch.where(nan_out, first_nan, index)
    width = x.shape[3]
    rows = torch.arange(out_h, device=x.device).view(1, 1, -1, 1) * stride
    cols = torch.arange(out_w, device=x.device).view(1, 1, 1, -1) * stride
    arg = (index // width - rows) * pool_width + (index % width - cols)
    return out, arg.to(torch.int32)


def fast_paths() -> list[FastPath]:
    """PyTorch's registered fast paths."""
    return [
        FastPath("add_window_", "torch", add_window, supports_add_window, EXACT,
                 "add_ into the strided view, without writing it back"),
        FastPath("max_pool_windows", "torch", max_pool_windows, supports_max_pool_windows,
                 EXACT, "max_pool2d with its indices (the first NaN of a NaN window from a "
                 "second pass over the NaN mask)"),
        FastPath("adam_", "torch", adam_, supports_adam, rtol(2e-6, 1e-14, nonfinite="any"),
                 "torch._fused_adam_, the kernel of Adam(fused=True)"),
        FastPath("relu_backward", "torch", relu_backward, supports_relu_backward, EXACT,
                 "autograd's threshold_backward instead of a branchy torch.where"),
    ]
