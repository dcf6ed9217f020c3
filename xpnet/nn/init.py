"""Initializations of the speed record's network: identity ("dirac") filter banks
and the patch-whitening first convolution.

:func:`dirac`
    The first ``min(F, C)`` filters of a (F, C, kh, kw) bank become the
    identity: filter ``i`` passes channel ``i`` through its centre tap (PyTorch's
    ``torch.nn.init.dirac_``); ``Conv(init='dirac')`` uses it.
:func:`init_whitening`
    Sets a model's first convolution to the whitening filters of the training
    images (:func:`xpnet._ops.whitening.whitening_filters`).
"""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from .._ops.whitening import whitening_filters
from ..errors import InputError

__all__ = ["dirac", "init_whitening"]

Array = Any


def dirac(xp, w: Array) -> Array:
    """``w`` (F, C, kh, kw) with its first ``min(F, C)`` filters replaced by the identity
    (a new array; the rest of ``w`` unchanged)."""
    if w.ndim != 4:
        raise InputError(f"dirac: a filter bank (F, C, kh, kw) is needed, got shape "
                         f"{tuple(w.shape)}")
    f, c, kh, kw = w.shape
    m = min(f, c)
    ident = xp.zeros((m, c, kh, kw), dtype=w.dtype, device=device(w))
    ident[:, :, kh // 2, kw // 2] = xp.eye(m, c, dtype=w.dtype, device=device(w))
    return ident if m == f else xp.concat([ident, w[m:, ...]], axis=0)


def init_whitening(model: Any, X: Any, layer: int = 0, eps: float = 5e-4) -> Array:
    """Set the filters of ``model.layers[layer]`` (a Conv of ``2 C k k`` filters, k its
    size) to the whitening filters of the images ``X`` (host or device, N, C, H, W) and
    return them; a frozen ``W`` (``Sequential(frozen=['0.W'])``) stays frozen."""
    from .modules import Conv
    conv = model.layers[layer]
    if not isinstance(conv, Conv):
        raise InputError(f"init_whitening: layer {layer} is {conv.describe()}, not a Conv")
    c, (kh, kw) = model.input_shape[0] if layer == 0 else conv.input_shape[0], conv.size
    if conv.filters != 2 * c * kh * kw:
        raise InputError(f"init_whitening: layer {layer} ({conv.describe()}) needs "
                         f"2 * {c} * {kh} * {kw} = {2 * c * kh * kw} filters (the eigenvectors "
                         "and their negatives)")
    be = model.backend
    x = be.asarray(X)
    if x.dtype != model.dtype:
        x = be.xp.astype(x, model.dtype)
    w = whitening_filters(x, (kh, kw), eps)
    if "W" in conv.frozen:
        conv.fixed["W"] = w
    else:
        model.params[conv.prefix + "W"] = w
    return w
