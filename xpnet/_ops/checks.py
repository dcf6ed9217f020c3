"""Input validation shared by the layers, models, solver and command.

Every check takes the name of the function the user called (``caller``) and
raises an :mod:`xpnet.errors` exception whose message names that function,
the argument, what was expected and what was got, so that a mistake never
surfaces as a deep traceback from inside an array library.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

from array_api_compat import device

from ..errors import InputError, InputTypeError, MissingKeyError

MODES = ("train", "test")


def shape_str(shape: Iterable[int]) -> str:
    """``(3, 4)``, ``(5,)``: a shape as Python prints a tuple."""
    shape = tuple(shape)
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _prefix(caller: str | None) -> str:
    return f"{caller}: " if caller else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(value: Any, name: str, caller: str | None = None) -> int:
    """``int(value)`` if it is an integer >= 1 (not a bool), else InputError naming ``name``."""
    if not _is_int(value) or value < 1:
        raise InputError(f"{_prefix(caller)}{name} must be a positive integer, got {value!r}")
    return int(value)


def nonnegative_int(value: Any, name: str, caller: str | None = None) -> int:
    """``int(value)`` if it is an integer >= 0 (not a bool), else InputError naming ``name``."""
    if not _is_int(value) or value < 0:
        raise InputError(f"{_prefix(caller)}{name} must be a non-negative integer, "
                         f"got {value!r}")
    return int(value)


def positive_number(value: Any, name: str, caller: str | None = None) -> float:
    """``value`` if it is a real number > 0, else InputError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise InputError(f"{_prefix(caller)}{name} must be a positive number, got {value!r}")
    return value


def nonnegative_number(value: Any, name: str, caller: str | None = None) -> float:
    """``value`` if it is a real number >= 0, else InputError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise InputError(f"{_prefix(caller)}{name} must be a number >= 0, got {value!r}")
    return value


def choice(value: Any, allowed: Sequence, name: str, caller: str | None = None) -> Any:
    """``value`` if it is one of ``allowed``, else InputError listing them."""
    if value not in allowed:
        raise InputError(
            f"{_prefix(caller)}unknown {name} {value!r}; expected one of "
            + ", ".join(repr(a) for a in allowed)
        )
    return value


def ndim(x: Any, expected: int, name: str, layout: str, caller: str) -> None:
    """InputError unless ``x.ndim == expected`` (``layout`` like '(N, C, H, W)')."""
    if x.ndim != expected:
        raise InputError(f"{caller}: {name} must be {expected}-D {layout}, got shape "
                         f"{shape_str(x.shape)}")


def param_dict(param: Any, name: str, caller: str) -> dict:
    """``param`` if it is a dict, else InputTypeError."""
    if not isinstance(param, dict):
        raise InputTypeError(f"{caller}: {name} must be a dict, got {type(param).__name__}")
    return param


def require_keys(param: Any, keys: Sequence[str], name: str, caller: str) -> dict:
    """``param`` if it is a dict holding every key in ``keys``, else an error naming them."""
    param_dict(param, name, caller)
    missing = [k for k in keys if k not in param]
    if missing:
        raise MissingKeyError(
            f"{caller}: {name} has no {', '.join(repr(k) for k in missing)}; it needs "
            + ", ".join(repr(k) for k in keys))
    return param


def flatten_for_affine(xp, x, w, b, caller: str = "affine_forward"):
    """``x`` reshaped to (N, D) after checking it against ``w`` and ``b``."""
    if w.ndim != 2:
        raise InputError(f"{caller}: w must be 2-D (D, M), got shape {shape_str(w.shape)}")
    if x.ndim < 1:
        raise InputError(f"{caller}: x must have a batch dimension, got a 0-D array")
    d, m = w.shape
    features = math.prod(x.shape[1:])
    if features != d:
        raise InputError(
            f"{caller}: x of shape {shape_str(x.shape)} has {features} features per "
            f"sample but w of shape {shape_str(w.shape)} expects {d}"
        )
    if tuple(b.shape) != (m,):
        raise InputError(
            f"{caller}: b must have shape ({m},) to match w {shape_str(w.shape)}, "
            f"got {shape_str(b.shape)}"
        )
    return xp.reshape(x, (x.shape[0], d))


def check_label_dtype(xp, y, caller: str) -> None:
    if not xp.isdtype(y.dtype, "integral"):
        raise InputTypeError(
            f"{caller}: labels y must be integers, got dtype {y.dtype}; "
            "convert them with .astype(int)"
        )


def check_label_range(xp, y, num_classes: int, caller: str) -> None:
    """InputError unless ``0 <= y < num_classes`` (synchronizes a device)."""
    if y.shape[0] == 0:
        return
    low, high = int(xp.min(y)), int(xp.max(y))
    if low < 0 or high >= num_classes:
        raise InputError(
            f"{caller}: labels must lie in [0, {num_classes - 1}] for {num_classes} "
            f"classes, got values from {low} to {high}"
        )


def onehot_labels(xp, x, y, caller: str, check_range: bool):
    """Boolean (N, C) mask with True at ``(i, y[i])``, after validating ``y``."""
    if x.ndim != 2:
        raise InputError(f"{caller}: scores x must be 2-D (N, C), got {shape_str(x.shape)}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise InputError(
            f"{caller}: labels y must have shape ({x.shape[0]},) to match x "
            f"{shape_str(x.shape)}, got {shape_str(y.shape)}"
        )
    check_label_dtype(xp, y, caller)
    if check_range:
        check_label_range(xp, y, x.shape[1], caller)
    # compare in int64: a narrow label dtype (int8, uint8) cannot hold the class
    # indices (arange(300) in int8 wraps around and matches twice), though its
    # labels may well be valid
    if y.dtype != xp.int64:
        y = xp.astype(y, xp.int64)
    classes = xp.arange(x.shape[1], dtype=xp.int64, device=device(y))
    return y[:, None] == classes[None, :]


def mode_of(param: Any, name: str, caller: str) -> str:
    """``param['mode']``, 'train' or 'test'."""
    param_dict(param, name, caller)
    if "mode" not in param:
        raise MissingKeyError(
            f"{caller}: {name} has no 'mode'; set {name}['mode'] = 'train' or 'test'"
        )
    mode = param["mode"]
    if mode not in MODES:
        raise InputError(f"{caller}: {name}['mode'] must be 'train' or 'test', got {mode!r}")
    return mode


def keep_ratio(p: Any, name: str, caller: str | None = None) -> float:
    """A probability of keeping a unit, in (0, 1]."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < p <= 1:
        raise InputError(
            f"{_prefix(caller)}{name} is the probability of KEEPING a unit and must lie in "
            f"(0, 1], got {p!r}"
        )
    return float(p)


def keep_probability(dropout_param: dict, caller: str = "dropout_forward") -> float:
    """``dropout_param['p']``, checked."""
    if "p" not in dropout_param:
        raise MissingKeyError(f"{caller}: dropout_param has no 'p' (the keep probability)")
    return keep_ratio(dropout_param["p"], "dropout_param['p']", caller)


def param_shape(x, name: str, arr, expected: tuple[int, ...], caller: str) -> None:
    """InputError unless ``arr`` (gamma, beta) has shape ``expected``."""
    if tuple(arr.shape) != tuple(expected):
        raise InputError(
            f"{caller}: {name} must have shape {shape_str(expected)} to match x "
            f"{shape_str(x.shape)}, got {shape_str(arr.shape)}"
        )


def train_cache(cache: Any, caller: str, forward: str) -> None:
    """InputError for the None cache that a forward pass in test mode returns."""
    if cache is None:
        raise InputError(
            f"{caller}: the cache is None, which {forward} returns in 'test' "
            "mode; run the forward pass with bn_param['mode'] = 'train' to backpropagate"
        )
