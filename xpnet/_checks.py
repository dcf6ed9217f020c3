"""Input validation shared by the layers, models and solver.

Each check raises an exception whose message names the function, the argument,
what was expected and what was got, so that a mistake never surfaces as a deep
traceback from inside an array library.
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import device

_MODES = ("train", "test")


class MissingKeyError(KeyError):
    """A required key is missing from a parameter dict (message printed as is)."""

    def __str__(self) -> str:
        return str(self.args[0])


def shape_str(shape: tuple) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def flatten_for_affine(xp, x, w, b):
    """``x`` reshaped to (N, D) after checking it against ``w`` and ``b``."""
    if w.ndim != 2:
        raise ValueError(f"affine_forward: w must be 2-D (D, M), got shape {shape_str(w.shape)}")
    if x.ndim < 1:
        raise ValueError("affine_forward: x must have a batch dimension, got a 0-D array")
    d, m = w.shape
    features = math.prod(x.shape[1:])
    if features != d:
        raise ValueError(
            f"affine_forward: x of shape {shape_str(x.shape)} has {features} features per "
            f"sample but w of shape {shape_str(w.shape)} expects {d}"
        )
    if tuple(b.shape) != (m,):
        raise ValueError(
            f"affine_forward: b must have shape ({m},) to match w {shape_str(w.shape)}, "
            f"got {shape_str(b.shape)}"
        )
    return xp.reshape(x, (x.shape[0], d))


def check_label_dtype(xp, y, caller: str) -> None:
    if not xp.isdtype(y.dtype, "integral"):
        raise TypeError(
            f"{caller}: labels y must be integers, got dtype {y.dtype}; "
            "convert them with .astype(int)"
        )


def check_label_range(xp, y, num_classes: int, caller: str) -> None:
    """Raise ValueError unless ``0 <= y < num_classes`` (synchronizes a device)."""
    if y.shape[0] == 0:
        return
    low, high = int(xp.min(y)), int(xp.max(y))
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"{caller}: labels must lie in [0, {num_classes - 1}] for {num_classes} "
            f"classes, got values from {low} to {high}"
        )


def onehot_labels(xp, x, y, caller: str, check_range: bool):
    """Boolean (N, C) mask with True at ``(i, y[i])``, after validating ``y``."""
    if x.ndim != 2:
        raise ValueError(f"{caller}: scores x must be 2-D (N, C), got {shape_str(x.shape)}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{caller}: labels y must have shape ({x.shape[0]},) to match x "
            f"{shape_str(x.shape)}, got {shape_str(y.shape)}"
        )
    check_label_dtype(xp, y, caller)
    if check_range:
        check_label_range(xp, y, x.shape[1], caller)
    classes = xp.arange(x.shape[1], dtype=y.dtype, device=device(y))
    return y[:, None] == classes[None, :]


def mode_of(param: Any, name: str, caller: str) -> str:
    if not isinstance(param, dict):
        raise TypeError(f"{caller}: {name} must be a dict, got {type(param).__name__}")
    if "mode" not in param:
        raise MissingKeyError(
            f"{caller}: {name} has no 'mode'; set {name}['mode'] = 'train' or 'test'"
        )
    mode = param["mode"]
    if mode not in _MODES:
        raise ValueError(f"{caller}: {name}['mode'] must be 'train' or 'test', got {mode!r}")
    return mode


def keep_probability(dropout_param: dict) -> float:
    if "p" not in dropout_param:
        raise MissingKeyError("dropout_forward: dropout_param has no 'p' (the keep probability)")
    p = dropout_param["p"]
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise ValueError(
            f"dropout_forward: dropout_param['p'] is the probability of KEEPING a unit and "
            f"must lie in (0, 1], got {p!r}"
        )
    return float(p)


def normalization_shapes(x, gamma, beta, caller: str) -> None:
    if x.ndim != 2:
        raise ValueError(f"{caller}: x must be 2-D (N, D), got {shape_str(x.shape)}")
    d = x.shape[1]
    for name, arr in (("gamma", gamma), ("beta", beta)):
        if tuple(arr.shape) != (d,):
            raise ValueError(
                f"{caller}: {name} must have shape ({d},) to match x {shape_str(x.shape)}, "
                f"got {shape_str(arr.shape)}"
            )


def train_cache(cache: Any, caller: str) -> None:
    if cache is None:
        raise ValueError(
            f"{caller}: the cache is None, which batchnorm_forward returns in 'test' "
            "mode; run the forward pass with bn_param['mode'] = 'train' to backpropagate"
        )


def choice(value: Any, allowed: tuple, name: str) -> Any:
    if value not in allowed:
        raise ValueError(
            f"unknown {name} {value!r}; expected one of "
            + ", ".join(repr(a) for a in allowed)
        )
    return value
