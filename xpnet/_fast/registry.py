"""The machinery of the fast-path registry: operations, fast paths, the switch.

An :class:`Operation` is a callable with an Array API reference. When it is
called, it looks at the library of its first argument and tries that
library's registered :class:`FastPath` objects in order: the first whose
``supports(*args)`` is true runs; otherwise (or with fast paths switched off
by :func:`fast_paths_disabled`) the reference runs. A fast path declares how
far it may differ from the reference (:class:`Tolerance`), and the registry
test holds it to that over hostile inputs.

The per-library modules are imported the first time an array of that library
reaches an operation, so nothing here imports an array library.
"""

from __future__ import annotations

import contextvars
import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EXACT",
    "FastPath",
    "LIBRARY_MODULES",
    "MORE_LIBRARY_MODULES",
    "Operation",
    "Tolerance",
    "fast_paths_disabled",
    "fast_paths_enabled",
    "fast_paths_for",
    "rtol",
]

#: library -> the module of its fast paths (each has ``fast_paths() -> list[FastPath]``)
LIBRARY_MODULES: dict[str, str] = {
    "numpy": "xpnet._fast.numpy_paths",
    "torch": "xpnet._fast.torch_paths",
    "cupy": "xpnet._fast.cupy_paths",
}

#: library -> further modules of its fast paths, loaded with the one above (the torch
#: convolution kernels live apart from the update rules' paths)
MORE_LIBRARY_MODULES: dict[str, tuple[str, ...]] = {
    "torch": ("xpnet._fast.torch_conv",),
}

_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("xpnet_fast_paths",
                                                                default=True)


@dataclass(frozen=True)
class Tolerance:
    """How far a fast path may be from the reference.

    ``exact``: the same bits (signed zeros and NaN positions included).
    Otherwise ``rtol`` per dtype name: finite entries within
    ``rtol * (|ref| + max |ref|)``, i.e. relative to the array's scale, as
    reordered floating-point sums are; non-finite entries where the reference
    has them, the same value (``nonfinite='same'``) or any non-finite value
    (``nonfinite='any'``: e.g. NaN where the reference gives inf, for kernels
    that compute ``m + (dw - m) * c`` instead of ``b * m + c * dw``).
    """

    exact: bool = False
    rtol: Mapping[str, float] = field(default_factory=dict)
    nonfinite: str = "same"

    def rtol_for(self, dtype_name: str) -> float:
        if self.exact:
            return 0.0
        return self.rtol[dtype_name]

    def __str__(self) -> str:
        if self.exact:
            return "exact"
        text = "rtol " + " / ".join(f"{v:g}" for v in self.rtol.values()) + " (" + \
            " / ".join(k for k in self.rtol) + ")"
        return text + ("; any non-finite value" if self.nonfinite == "any" else "")


EXACT = Tolerance(exact=True)


def rtol(float32: float, float64: float, nonfinite: str = "same") -> Tolerance:
    """A :class:`Tolerance` of ``float32`` / ``float64`` relative to the array's scale."""
    return Tolerance(rtol={"float32": float32, "float64": float64}, nonfinite=nonfinite)


@dataclass(frozen=True)
class FastPath:
    """One library's faster code for one operation.

    Attributes
    ----------
    operation : str
        The :class:`Operation` it stands in for.
    library : str
        'numpy', 'torch' or 'cupy'.
    impl : callable
        Same signature and convention as the reference.
    supports : callable
        ``supports(*args, **kwargs) -> bool``: dtype, shape, contiguity,
        writeability, device; cheap, never raises.
    tolerance : Tolerance
    summary : str
        One line: what it does that the reference does not.
    """

    operation: str
    library: str
    impl: Callable[..., Any]
    supports: Callable[..., bool]
    tolerance: Tolerance
    summary: str


_BY_LIBRARY: dict[str, dict[str, tuple[FastPath, ...]]] = {}


def fast_paths_for(library: str) -> dict[str, tuple[FastPath, ...]]:
    """The registered fast paths of ``library``, by operation name (loaded once)."""
    table = _BY_LIBRARY.get(library)
    if table is None:
        table = {}
        module_name = LIBRARY_MODULES.get(library)
        names = () if module_name is None else (module_name,
                                                *MORE_LIBRARY_MODULES.get(library, ()))
        for module_name in names:
            module = importlib.import_module(module_name)
            for path in module.fast_paths():
                if path.library != library:
                    raise RuntimeError(f"{module_name} registers a fast path for "
                                       f"{path.library}: {path.operation}")
                table.setdefault(path.operation, ())
                table[path.operation] += (path,)
        _BY_LIBRARY[library] = table
    return table


def fast_paths_enabled() -> bool:
    """Whether operations may take fast paths in this context (default True)."""
    return _ENABLED.get()


@contextmanager
def fast_paths_disabled() -> Iterator[None]:
    """Run only the Array API references inside the ``with`` block (this thread)."""
    token = _ENABLED.set(False)
    try:
        yield
    finally:
        _ENABLED.reset(token)


class Operation:
    """An operation with an Array API reference and per-library fast paths.

    Parameters
    ----------
    reference : callable
        The definition; its ``__name__`` is the operation's name.
    cases : dict
        ``label -> build(make) -> (args, kwargs)``: the argument layouts the
        registry test feeds it (``make(shape, role)`` returns an array of the
        family under test; role 'in' for read-only inputs, 'state' for arrays
        updated in place).
    """

    def __init__(self, reference: Callable[..., Any],
                 cases: Mapping[str, Callable[..., tuple[tuple, dict]]]) -> None:
        self.reference = reference
        self.name: str = reference.__name__
        self.inplace = self.name.endswith("_")
        self.cases = dict(cases)
        self._by_type: dict[type, tuple[FastPath, ...]] = {}
        self.__doc__ = reference.__doc__

    def fast_paths(self, library: str) -> tuple[FastPath, ...]:
        """The fast paths registered for ``library``."""
        return fast_paths_for(library).get(self.name, ())

    def _paths_for(self, t: type) -> tuple[FastPath, ...]:
        paths = self._by_type.get(t)
        if paths is None:
            paths = self.fast_paths(t.__module__.split(".")[0])
            self._by_type[t] = paths
        return paths

    def select(self, *args: Any, **kwargs: Any) -> FastPath | None:
        """The fast path a call with these arguments would take (None: the reference)."""
        if not _ENABLED.get():
            return None
        for path in self._paths_for(type(args[0])):
            if path.supports(*args, **kwargs):
                return path
        return None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _ENABLED.get():
            for path in self._paths_for(type(args[0])):
                if path.supports(*args, **kwargs):
                    return path.impl(*args, **kwargs)
        return self.reference(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<xpnet operation {self.name}>"
