"""The search space of ``xpnet sweep``: which training options vary, and how.

Each searched option (a key of :func:`xpnet.app.train.resolve_options`, such as
``learning_rate`` or ``hidden``) takes one of

* a fixed value: ``--lr 1e-3``;
* a list of values to choose from: ``--hidden 100 512x256`` (``512x256`` is
  the two hidden layers 512 and 256), ``--normalization batchnorm none``;
* a range ``LOW:HIGH`` or ``LOW:HIGH:log``: ``--lr 1e-4:1e-1:log``,
  ``--batch-size 32:256:log`` (integers for integer options).

From Python the same strings work, and also ``(low, high)``, ``(low, high,
"log")``, a list (choices) or a single value. Fixed values are training
options like any other; the rest become Optuna distributions whose parameter
names are the option keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import InputError

__all__ = [
    "ALIASES",
    "SEARCHABLE",
    "Choices",
    "FloatRange",
    "IntRange",
    "SearchSpace",
    "format_value",
]


@dataclass(frozen=True)
class Searchable:
    """A training option a sweep can vary: its flag, the kind of its values, a summary."""

    flag: str
    kind: str  # 'float', 'int', 'hidden' (layer sizes) or 'str'
    summary: str


#: Every option a sweep can search, by its key in the training options.
SEARCHABLE: dict[str, Searchable] = {
    "learning_rate": Searchable("--lr", "float", "learning rate"),
    "reg": Searchable("--reg", "float", "L2 strength"),
    "weight_scale": Searchable("--weight-scale", "float", "std of the initial weights"),
    "lr_decay": Searchable("--lr-decay", "float", "learning rate factor per epoch"),
    "keep_ratio": Searchable("--keep-ratio", "float", "dropout: probability of keeping a unit"),
    "momentum": Searchable("--momentum", "float", "sgd_momentum's momentum"),
    "weight_decay": Searchable("--weight-decay", "float", "decoupled weight decay"),
    "label_smoothing": Searchable("--label-smoothing", "float", "label smoothing"),
    "warmup": Searchable("--warmup", "float", "warm-up fraction of the schedule"),
    "batch_size": Searchable("--batch-size", "int", "minibatch size"),
    "width": Searchable("--width", "int", "convnet, resnet: channels of the first stage"),
    "num_filters": Searchable("--filters", "int", "cnn: number of filters"),
    "filter_size": Searchable("--filter-size", "int", "cnn: filter size"),
    "hidden": Searchable("--hidden", "hidden", "networks to try, such as 100 512x256"),
    "normalization": Searchable("--normalization", "str", "normalization layers"),
    "update_rule": Searchable("--update-rule", "str", "update rule"),
}
#: Other names accepted for the keys of a space given from Python.
ALIASES = {"lr": "learning_rate", "filters": "num_filters",
           **{s.flag[2:].replace("-", "_"): key for key, s in SEARCHABLE.items()}}

_RANGE_HELP = "a value, several values to choose from, or a range LOW:HIGH[:log]"


@dataclass(frozen=True)
class FloatRange:
    """Real values in ``[low, high]``, sampled uniformly or (``log``) log-uniformly."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class IntRange:
    """Integers in ``[low, high]``, sampled uniformly or (``log``) log-uniformly."""

    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class Choices:
    """Values to choose from (training-option values: ``hidden`` choices are lists)."""

    values: tuple


Dimension = FloatRange | IntRange | Choices


def format_value(key: str, value: Any) -> str:
    """A training option's value as the command line writes it."""
    if key == "hidden" and isinstance(value, list | tuple):
        return "x".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _hidden_from(token: Any, flag: str) -> list[int]:
    if isinstance(token, bool):
        raise InputError(f"{flag}: {token!r} is not a layer size")
    if isinstance(token, int):
        sizes: list[Any] = [token]
    elif isinstance(token, list | tuple):
        sizes = list(token)
    elif isinstance(token, str):
        try:
            sizes = [int(part) for part in token.lower().split("x")]
        except ValueError:
            raise InputError(f"{flag} {token}: expected layer sizes such as 100 or 512x256 "
                             "(one value per network to try)") from None
    else:
        raise InputError(f"{flag}: {token!r} is not a layer-size list such as 512x256")
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0
                        for s in sizes):
        raise InputError(f"{flag} {format_value('hidden', sizes)}: layer sizes must be "
                         "positive integers, such as 100 or 512x256")
    return sizes


def _number(token: Any, kind: str, flag: str, spec: Any) -> float | int:
    if isinstance(token, bool):
        raise InputError(f"{flag} {spec}: expected {_RANGE_HELP}")
    if isinstance(token, str):
        try:
            value: float | int = float(token)
        except ValueError:
            raise InputError(f"{flag} {spec}: {token!r} is not a number; expected {_RANGE_HELP}"
                             f" (such as 1e-4:1e-1:log)") from None
    elif isinstance(token, int | float):
        value = token
    else:
        raise InputError(f"{flag} {spec}: expected {_RANGE_HELP}")
    if not math.isfinite(value):
        raise InputError(f"{flag} {spec}: {token} is not a finite number")
    if kind == "int":
        if float(value) != int(value):
            raise InputError(f"{flag} {spec}: {token} is not an integer")
        return int(value)
    return float(value)


def _range(parts: Sequence[Any], kind: str, flag: str, spec: Any) -> FloatRange | IntRange:
    if kind in ("hidden", "str"):
        raise InputError(f"{flag} takes values to choose from, not a range ({spec})")
    scale = "linear"
    if len(parts) == 3:
        scale = str(parts[2]).strip().lower()
        if scale not in ("log", "linear"):
            raise InputError(f"{flag} {spec}: the third part of a range is 'log' or 'linear', "
                             f"not {parts[2]!r}")
    elif len(parts) != 2:
        raise InputError(f"{flag} {spec}: a range is LOW:HIGH or LOW:HIGH:log")
    low, high = (_number(p, kind, flag, spec) for p in parts[:2])
    if not low < high:
        raise InputError(f"{flag} {spec}: the low end must come first and be below the high "
                         f"end, as in {flag} {format_value('', min(low, high))}:"
                         f"{format_value('', max(low, high))}")
    log = scale == "log"
    if log and low <= 0:
        raise InputError(f"{flag} {spec}: a log range needs LOW > 0")
    return IntRange(int(low), int(high), log) if kind == "int" else FloatRange(low, high, log)


def _value(token: Any, kind: str, flag: str, spec: Any) -> Any:
    if kind == "hidden":
        return _hidden_from(token, flag)
    if kind == "str":
        if not isinstance(token, str) or not token:
            raise InputError(f"{flag}: {token!r} is not a name")
        return token
    return _number(token, kind, flag, spec)


def _parse(key: str, spec: Any) -> Any:
    """A fixed value, or a :data:`Dimension`, from one option's specification."""
    searchable = SEARCHABLE[key]
    flag, kind = searchable.flag, searchable.kind
    if isinstance(spec, FloatRange | IntRange):
        return _range([spec.low, spec.high, "log" if spec.log else "linear"], kind, flag,
                      f"{spec.low}:{spec.high}")
    if isinstance(spec, Choices):
        spec = list(spec.values)
    if isinstance(spec, tuple) and kind not in ("hidden",) and len(spec) in (2, 3):
        return _range(list(spec), kind, flag, ":".join(map(str, spec)))
    if isinstance(spec, str) and ":" in spec:
        return _range(spec.split(":"), kind, flag, spec)
    tokens = list(spec) if isinstance(spec, list) else [spec]
    if not tokens:
        raise InputError(f"{flag} needs {_RANGE_HELP}")
    if len(tokens) > 1 and any(isinstance(t, str) and ":" in t for t in tokens):
        raise InputError(f"{flag} {' '.join(map(str, tokens))}: a range LOW:HIGH[:log] is "
                         "one value; give either a range or values to choose from")
    if len(tokens) == 1 and isinstance(tokens[0], str) and ":" in tokens[0]:
        return _range(tokens[0].split(":"), kind, flag, tokens[0])
    values = [_value(t, kind, flag, t) for t in tokens]
    unique = []
    for value in values:
        if value not in unique:
            unique.append(value)
    return unique[0] if len(unique) == 1 else Choices(tuple(unique))


def _canonical(key: str) -> str:
    name = ALIASES.get(key.lstrip("-").replace("-", "_"), key.lstrip("-").replace("-", "_"))
    if name not in SEARCHABLE:
        raise InputError(f"{key!r} cannot be searched; a sweep searches "
                         f"{', '.join(s.flag for s in SEARCHABLE.values())}")
    return name


class SearchSpace:
    """The searched options (:data:`Dimension` by option key) and the fixed ones.

    Parameters
    ----------
    dimensions : dict
        Option key to :class:`FloatRange`, :class:`IntRange` or :class:`Choices`.
        Optuna samples them in the order of :data:`SEARCHABLE`, whatever order
        they were given in, so the same space always gives the same trials.
    fixed : dict
        Option key to value, for options given one value.
    """

    def __init__(self, dimensions: Mapping[str, Dimension], fixed: Mapping[str, Any]) -> None:
        self.dimensions = {key: dimensions[key] for key in SEARCHABLE if key in dimensions}
        self.fixed = dict(fixed)

    @classmethod
    def parse(cls, space: Mapping[str, Any]) -> SearchSpace:
        """Read a space from option keys (or flags, or aliases such as ``lr``) to specs.

        Raises
        ------
        InputError
            With a one-line message naming the option, for a bad value or range.
        """
        dimensions: dict[str, Dimension] = {}
        fixed: dict[str, Any] = {}
        for name, spec in space.items():
            key = _canonical(str(name))
            if key in dimensions or key in fixed:
                raise InputError(f"{SEARCHABLE[key].flag} is given twice in the search space")
            parsed = _parse(key, spec)
            if isinstance(parsed, FloatRange | IntRange | Choices):
                dimensions[key] = parsed
            else:
                fixed[key] = parsed
        return cls(dimensions, fixed)

    # -- Optuna --------------------------------------------------------------------
    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask an Optuna trial for every dimension; the training options it chose."""
        chosen: dict[str, Any] = {}
        for key, dim in self.dimensions.items():
            if isinstance(dim, FloatRange):
                chosen[key] = trial.suggest_float(key, dim.low, dim.high, log=dim.log)
            elif isinstance(dim, IntRange):
                chosen[key] = trial.suggest_int(key, dim.low, dim.high, log=dim.log)
            else:
                chosen[key] = trial.suggest_categorical(key, self._categories(key))
        return self.options(chosen)

    def _categories(self, key: str) -> list[Any]:
        dim = self.dimensions[key]
        assert isinstance(dim, Choices)
        if SEARCHABLE[key].kind == "hidden":  # Optuna's categories are scalars
            return [format_value("hidden", v) for v in dim.values]
        return list(dim.values)

    def options(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Training options from Optuna's parameters (``"512x256"`` becomes [512, 256])."""
        return {key: (_hidden_from(value, "--hidden") if SEARCHABLE[key].kind == "hidden"
                      else value) for key, value in params.items() if key in SEARCHABLE}

    def grid(self) -> dict[str, list[Any]]:
        """The grid for Optuna's GridSampler.

        Raises
        ------
        InputError
            When a dimension is a range.
        """
        ranges = [SEARCHABLE[k].flag for k, d in self.dimensions.items()
                  if not isinstance(d, Choices)]
        if ranges:
            raise InputError(f"--sampler grid needs values to choose from, not ranges "
                             f"({', '.join(ranges)})")
        return {key: self._categories(key) for key in self.dimensions}

    def grid_size(self) -> int:
        return math.prod(len(values) for values in self.grid().values())

    def corners(self) -> list[tuple[str | None, dict[str, Any]]]:
        """Each dimension at each of its ends (or choices), the others at their first.

        Returns ``(key, options)`` pairs: ``key`` names the dimension that moved
        (None for the first corner). A sweep checks these option sets before it
        starts, so that a range reaching a value ``xpnet train`` rejects is
        reported at once.
        """
        def ends(dim: Dimension) -> list[Any]:
            return list(dim.values) if isinstance(dim, Choices) else [dim.low, dim.high]

        first = {key: ends(dim)[0] for key, dim in self.dimensions.items()}
        found: list[tuple[str | None, dict[str, Any]]] = [(None, dict(first))]
        for key, dim in self.dimensions.items():
            for value in ends(dim)[1:]:
                found.append((key, {**first, key: value}))
        return found

    def describe(self, key: str) -> str:
        """One dimension as the command line writes it."""
        dim = self.dimensions[key]
        if isinstance(dim, Choices):
            return " ".join(format_value(key, v) for v in dim.values)
        return (f"{format_value('', dim.low)}:{format_value('', dim.high)}"
                f"{':log' if dim.log else ''}")

    # -- JSON ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The dimensions as JSON (the fixed options are saved with the others)."""
        out: dict[str, Any] = {}
        for key, dim in self.dimensions.items():
            if isinstance(dim, Choices):
                out[key] = {"choices": [list(v) if isinstance(v, list | tuple) else v
                                        for v in dim.values]}
            else:
                out[key] = {"low": dim.low, "high": dim.high, "log": dim.log,
                            "type": "int" if isinstance(dim, IntRange) else "float"}
        return out

    @classmethod
    def from_json(cls, dimensions: Mapping[str, Any]) -> SearchSpace:
        parsed: dict[str, Dimension] = {}
        for key, dim in dimensions.items():
            if "choices" in dim:
                parsed[key] = Choices(tuple(dim["choices"]))
            elif dim.get("type") == "int":
                parsed[key] = IntRange(int(dim["low"]), int(dim["high"]), bool(dim["log"]))
            else:
                parsed[key] = FloatRange(float(dim["low"]), float(dim["high"]),
                                         bool(dim["log"]))
        return cls(parsed, {})
