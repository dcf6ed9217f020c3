"""Patch whitening: the filters of a first convolution that decorrelate its input.

The ``kh x kw`` patches of the training images (every position, every image)
have an uncentred covariance ``S = E[p p^T]`` of size ``D = C kh kw``; with its
eigen-decomposition ``S = V diag(l) V^T`` the filters ``V^T / sqrt(l + eps)``
map each patch to coordinates of (nearly) unit variance that are uncorrelated:
``E[(V^T p)(V^T p)^T] = diag(l)``, so the outputs have covariance
``diag(l / (l + eps))``. The speed record (airbench) uses these ``D`` filters
and their negatives (``2 D`` channels, so a following GELU sees both signs),
largest eigenvalue first, with ``eps = 5e-4`` and a 2x2 window.

Written on the Array API with its ``linalg`` extension (``eigh``): the patches
are never gathered into one (patches, D) matrix; the covariance is a batched
product of per-image (D, positions) views.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from ..backend import namespace_of
from ..errors import InputError
from . import checks

__all__ = ["patch_covariance", "whitening_filters"]

Array = Any


def _patch_columns(xp, x: Array, kh: int, kw: int) -> Array:
    """(N, D, positions) with ``D`` ordered as a filter's (C, kh, kw) flattening."""
    n, c, h, w = x.shape
    oh, ow = h - kh + 1, w - kw + 1
    taps = [x[:, :, i:i + oh, j:j + ow] for i in range(kh) for j in range(kw)]
    cols = xp.stack(taps, axis=2)  # (N, C, kh*kw, oh, ow)
    return xp.reshape(cols, (n, c * kh * kw, oh * ow))


def patch_covariance(x: Array, size: int | tuple[int, int] = 2, batch: int = 512) -> Array:
    """The uncentred covariance ``E[p p^T]`` (D, D) of every ``size`` patch of the images
    ``x`` (N, C, H, W), in float64 where the library has it; ``batch`` images at a time."""
    xp = namespace_of(x, caller="patch_covariance")
    checks.ndim(x, 4, "x", "(N, C, H, W)", "patch_covariance")
    kh, kw = (size, size) if isinstance(size, int) else tuple(size)
    kh = checks.positive_int(kh, "size", "patch_covariance")
    kw = checks.positive_int(kw, "size", "patch_covariance")
    n, c, h, w = x.shape
    if h < kh or w < kw or n == 0:
        raise InputError(f"patch_covariance: no {kh}x{kw} patch in images of shape "
                         f"{checks.shape_str(x.shape)}")
    d = c * kh * kw
    total = xp.zeros((d, d), dtype=xp.float64, device=device(x))
    for start in range(0, n, batch):
        cols = _patch_columns(xp, x[start:min(start + batch, n), ...], kh, kw)
        part = xp.sum(cols @ xp.matrix_transpose(cols), axis=0)
        total = total + xp.astype(part, xp.float64)
    return total / float(n * (h - kh + 1) * (w - kw + 1))


def whitening_filters(x: Array, size: int | tuple[int, int] = 2, eps: float = 5e-4,
                      negatives: bool = True) -> Array:
    """Whitening filters for the patches of the images ``x`` (N, C, H, W).

    Parameters
    ----------
    x : array (N, C, H, W)
        Training images, normalized as the network will see them (a few thousand
        are enough).
    size : int or (int, int)
        The window (2 in the record).
    eps : float
        Added to each eigenvalue before the inverse square root (bounds the gain of
        directions with almost no variance).
    negatives : bool
        Append the negated filters (2 D filters in all).

    Returns
    -------
    array (2 D or D, C, kh, kw) in ``x``'s dtype
        Eigenvectors of the patch covariance, largest eigenvalue first, each scaled
        by ``1 / sqrt(eigenvalue + eps)``.
    """
    xp = namespace_of(x, caller="whitening_filters")
    eps = float(checks.nonnegative_number(eps, "eps", "whitening_filters"))
    cov = patch_covariance(x, size)
    kh, kw = (size, size) if isinstance(size, int) else tuple(size)
    c = x.shape[1]
    values, vectors = xp.linalg.eigh(cov)  # ascending; eigenvectors in columns
    values = xp.flip(values, axis=0)
    rows = xp.flip(xp.matrix_transpose(vectors), axis=0)  # (D, D): one eigenvector a row
    scale = 1.0 / xp.sqrt(xp.clip(values, 0.0, None) + eps)
    filters = xp.reshape(rows * scale[:, None], (c * kh * kw, c, kh, kw))
    if negatives:
        filters = xp.concat([filters, -filters], axis=0)
    return xp.astype(filters, x.dtype)
