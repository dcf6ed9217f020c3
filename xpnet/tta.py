"""Test-time augmentation: class scores averaged over mirrored and shifted views.

The speed record's levels (airbench):

``0``
    the scores of the images;
``1``
    the mean of the scores of the images and of their mirrors;
``2``
    half level 1, plus half the mean of level 1 on two translations by one pixel
    (up-left and down-right, the border filled by reflection): six views with
    weights 1/4, 1/4, 1/8, 1/8, 1/8, 1/8.

The scores are the model's logits (``model.loss(X)``), averaged before the
argmax.
"""

from __future__ import annotations

from typing import Any

from ._ops import checks
from .augment import flip_horizontal, reflect_pad
from .backend import get_backend
from .errors import InputError

__all__ = ["TTA_LEVELS", "tta_accuracy", "tta_scores", "tta_views"]

Array = Any

TTA_LEVELS = (0, 1, 2)


def _mirror_mean(model: Any, x: Array) -> Array:
    return 0.5 * model.loss(x) + 0.5 * model.loss(flip_horizontal(x))


def tta_views(model: Any, x: Array, level: int) -> Array:
    """The averaged scores of one batch of images ``x`` (on the model's device) at
    ``level`` (see the module docstring)."""
    if level == 0:
        return model.loss(x)
    scores = _mirror_mean(model, x)
    if level == 1:
        return scores
    h, w = x.shape[2], x.shape[3]
    padded = reflect_pad(x, 1)
    up_left = padded[:, :, 0:h, 0:w]
    down_right = padded[:, :, 2:h + 2, 2:w + 2]
    shifted = 0.5 * (_mirror_mean(model, up_left) + _mirror_mean(model, down_right))
    return 0.5 * scores + 0.5 * shifted


def tta_scores(model: Any, X: Any, level: int = 2, batch_size: int = 1000) -> Array:
    """The averaged class scores (N, classes) of images ``X`` (N, C, H, W), host or
    device, on the model's device, ``batch_size`` images at a time, in test mode."""
    level = checks.choice(level, TTA_LEVELS, "level", "tta_scores")
    batch_size = checks.positive_int(batch_size, "batch_size", "tta_scores")
    backend = get_backend(model.backend)
    x = backend.asarray(X)
    if level and x.ndim != 4:
        raise InputError(f"tta_scores: level {level} needs images (N, C, H, W), got shape "
                         f"{checks.shape_str(x.shape)}")
    if x.dtype != model.dtype:
        x = backend.xp.astype(x, model.dtype)
    n = x.shape[0]
    parts = [tta_views(model, x[start:min(start + batch_size, n), ...], level)
             for start in range(0, n, batch_size)]
    return parts[0] if len(parts) == 1 else backend.xp.concat(parts, axis=0)


def tta_accuracy(model: Any, X: Any, y: Any, level: int = 2, batch_size: int = 1000) -> float:
    """The fraction of ``X`` whose averaged scores (:func:`tta_scores`) pick ``y``."""
    backend = get_backend(model.backend)
    xp = backend.xp
    scores = tta_scores(model, X, level, batch_size)
    y = backend.asarray(y)
    if y.ndim != 1 or y.shape[0] != scores.shape[0]:
        raise InputError(f"tta_accuracy: y must have shape ({scores.shape[0]},), got "
                         f"{checks.shape_str(y.shape)}")
    hits = xp.sum(xp.astype(xp.argmax(scores, axis=1) == xp.astype(y, xp.int64), xp.int64))
    return float(hits) / scores.shape[0]
