"""Backends: the one package (with the fast paths) that knows concrete array libraries.

Everything else in xpnet is written against the Python Array API standard and
finds its namespace from its inputs (:func:`namespace_of`). A :class:`Backend`
is one library on one device: it resolves to a namespace, makes seeded random
numbers (the standard has none), moves arrays between the host (NumPy) and its
device, and synchronizes. One adapter class per library lives in its own
module (``numpy_adapter``, ``cupy_adapter``, ``torch_adapter``,
``strict_adapter``); :func:`get_backend` and :func:`backend_of` hand out exactly
one object per (library, canonical device), however the device is spelled
(``'cuda'``, ``'cuda:0'``, ``0``, ``torch.device('cuda', 0)``).

Random numbers come from :class:`RandomStream` objects (:mod:`.random`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from collections.abc import Hashable
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from .._backend_list import BACKEND_NAMES, BACKENDS
from ..errors import BackendError, BackendMismatchError, InputTypeError
from .base import Backend, dtype_name, library_of
from .numpy_adapter import NumpyBackend
from .random import _ACTIVE_STREAM, RandomStream, _derive_seed, active_stream, fresh_seed

__all__ = [
    "Backend",
    "BackendError",
    "BackendMismatchError",
    "BACKEND_NAMES",
    "RandomStream",
    "active_stream",
    "available_backends",
    "backend_of",
    "backend_problem",
    "canonical_name",
    "dtype_name",
    "get_backend",
    "library_of",
    "namespace_of",
    "to_numpy",
]

# re-exported for xpnet._ops.counter_random
_ = (_ACTIVE_STREAM, _derive_seed, fresh_seed)

_ADAPTERS: dict[str, str] = {
    "numpy": "numpy_adapter:NumpyBackend",
    "cupy": "cupy_adapter:CupyBackend",
    "torch": "torch_adapter:TorchBackend",
    "array_api_strict": "strict_adapter:StrictBackend",
}

_ALIASES = {
    "np": "numpy",
    "cp": "cupy",
    "pytorch": "torch",
    "strict": "array_api_strict",
    "array-api-strict": "array_api_strict",
}


def install_hint(name: str) -> str:
    """The command that installs backend ``name``."""
    if name == "numpy":
        return "pip install numpy"
    if name == "cupy":
        return 'pip install "xpnet[cuda12]"  (or "xpnet[cuda13]" for CUDA 13 drivers)'
    return f'pip install "xpnet[{BACKENDS[name][2]}]"'


def adapter(name: str) -> type[Backend]:
    """The adapter class of library ``name`` (imported on first use)."""
    module, _, cls = _ADAPTERS[name].partition(":")
    return getattr(importlib.import_module(f".{module}", __name__), cls)


# ---------------------------------------------------------------------------
# What can run here
# ---------------------------------------------------------------------------

def backend_problem(name: str) -> str | None:
    """Why the backend ``name`` cannot be used here, or None when it can."""
    name = canonical_name(name)
    if name == "auto":
        return None
    if name == "cupy":
        from .cupy_adapter import cupy_problem

        return cupy_problem(install_hint("cupy"))
    if importlib.util.find_spec(name) is None:
        return f"{name} is not installed; {install_hint(name)}"
    return None


def available_backends() -> list[str]:
    """Names of the backends that can run on this machine."""
    return [name for name in BACKEND_NAMES if backend_problem(name) is None]


def canonical_name(name: str) -> str:
    """The backend name ``name`` stands for ('np' -> 'numpy'), or BackendError."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in BACKEND_NAMES and key != "auto":
        raise BackendError(
            f"unknown backend {name!r}; expected one of "
            f"{', '.join(BACKEND_NAMES + ('auto',))}"
        )
    return key


def _auto() -> tuple[str, Any]:
    """CuPy when a CUDA device is usable, else torch on CUDA, else NumPy."""
    if backend_problem("cupy") is None:
        return "cupy", None
    if backend_problem("torch") is None:
        from .torch_adapter import torch_cuda_problem

        if torch_cuda_problem() is None:
            return "torch", "cuda"
    return "numpy", None


# ---------------------------------------------------------------------------
# One object per (library, canonical device)
# ---------------------------------------------------------------------------

_BACKENDS: dict[tuple[str, Hashable], Backend] = {}
_LOCK = threading.Lock()


def _resolve_name(spec: Any) -> str:
    if spec is None:
        spec = os.environ.get("XPNET_BACKEND", "auto") or "auto"
    if isinstance(spec, ModuleType):
        return name_of_module(spec)
    if isinstance(spec, str):
        return canonical_name(spec)
    raise BackendError(f"backend must be a name, a namespace module or a Backend, "
                       f"got {type(spec).__name__}")


def get_backend(name_or_namespace: Any = None, device: Any = None) -> Backend:
    """Resolve a backend: one object per library and device.

    Parameters
    ----------
    name_or_namespace : str, module, Backend or None
        A name (``'numpy'``, ``'cupy'``, ``'torch'``, ``'array_api_strict'``,
        ``'auto'``), an array namespace or library module, or a :class:`Backend`
        (returned as is unless ``device`` names another device). ``None`` reads
        ``$XPNET_BACKEND`` and falls back to ``'auto'``: CuPy when a CUDA device
        is usable, else torch on CUDA, else NumPy.
    device : optional
        ``'cpu'``, ``'cuda'``, ``'cuda:1'``, an index or a library device object;
        default ``$XPNET_DEVICE`` for the libraries with devices (torch, CuPy; NumPy
        and array_api_strict ignore it), else the library's default (the CPU for
        torch, device 0 for CuPy).

    Returns
    -------
    Backend
        The same object for the same library and device, however spelled.

    Raises
    ------
    BackendError
        For an unknown name, a library that is not installed (with the command
        that installs it), a device the library cannot use (CuPy without a GPU,
        torch on CUDA without one, NumPy on a GPU).
    """
    if isinstance(name_or_namespace, Backend):
        if device is None:
            return name_or_namespace
        name_or_namespace = name_or_namespace.name
    name = _resolve_name(name_or_namespace)
    if name == "auto":
        name, auto_device = _auto()
        device = auto_device if device is None else device
    problem = backend_problem(name)
    if problem is not None:
        raise BackendError(f"the {name} backend cannot be used: {problem}")
    cls = adapter(name)
    if device is None and cls.has_devices:
        device = os.environ.get("XPNET_DEVICE") or None
    canonical = cls.canonical_device(device)
    return _backend_for(cls, canonical)


def _backend_for(cls: type[Backend], canonical: Any) -> Backend:
    key = (cls.name, cls.device_key(canonical))
    backend = _BACKENDS.get(key)
    if backend is None:
        with _LOCK:
            backend = _BACKENDS.get(key)
            if backend is None:
                backend = _BACKENDS[key] = cls(canonical)
    return backend


def name_of_module(module: ModuleType) -> str:
    """The backend name of a library or namespace module."""
    root = module.__name__.split(".")
    if root[0] == "array_api_compat" and len(root) > 1:
        return canonical_name(root[1])
    return canonical_name(root[0])


# ---------------------------------------------------------------------------
# Arrays -> namespace / backend
# ---------------------------------------------------------------------------

_NUMPY: list[Backend] = []  # the NumPy backend, once made (backend_of's fast path)


def backend_of(x: Any) -> Backend:
    """The :class:`Backend` an array lives on (the very object :func:`get_backend`
    returns for its library and device)."""
    lib = library_of(x)
    if lib == "numpy":
        if not _NUMPY:
            _NUMPY.append(_backend_for(NumpyBackend, "cpu"))
        return _NUMPY[0]
    if lib not in _ADAPTERS:
        raise BackendError(f"arrays of type {type(x).__name__} belong to no xpnet backend")
    cls = adapter(lib)
    return _backend_for(cls, cls.device_of(x))


#: libraries whose arrays carry a device that namespace_of must compare
_DEVICE_LIBRARIES = frozenset({"torch", "cupy"})
_NAMESPACE_BY_TYPE: dict[type, ModuleType] = {}


def namespace_of(*arrays: Any, caller: str = "this function") -> ModuleType:
    """The Array API namespace shared by ``arrays`` (None entries are ignored).

    Raises
    ------
    BackendMismatchError
        When the arrays come from different libraries or devices, naming them.
    """
    # The namespace depends only on the arrays' types: remember it per type, which
    # saves the array_api_compat dispatch (microseconds) in every layer call.
    kind = None
    present = [a for a in arrays if a is not None]
    for a in present:
        t = type(a)
        if kind is None:
            kind = t
        elif t is not kind:
            kind = False
            break
    xp = _NAMESPACE_BY_TYPE.get(kind) if kind else None
    if xp is None:
        xp = _namespace_of_mixed(present, caller)
        if kind:
            _NAMESPACE_BY_TYPE[kind] = xp
    if len(present) > 1 and library_of(present[0]) in _DEVICE_LIBRARIES:
        _check_one_device(present, caller)
    return xp


def _namespace_of_mixed(arrays: list[Any], caller: str) -> ModuleType:
    try:
        return array_api_compat.array_namespace(*arrays)
    except TypeError as err:
        libs = sorted({library_of(a) for a in arrays})
        if len(libs) > 1:
            raise BackendMismatchError(
                f"{caller} got arrays from different backends ({', '.join(libs)}); "
                "put them on one backend first, e.g. with backend.asarray(x)"
            ) from None
        raise InputTypeError(f"{caller}: {err}") from None


def _check_one_device(arrays: list[Any], caller: str) -> None:
    first = arrays[0].device
    for a in arrays[1:]:
        if a.device != first:
            devices = sorted({str(b.device) for b in arrays})
            raise BackendMismatchError(
                f"{caller} got {library_of(a)} arrays on different devices "
                f"({', '.join(devices)}); move them to one device first, e.g. with "
                "backend.asarray(x)"
            )


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any backend to a NumPy array on the host.

    Python scalars and NumPy arrays pass through ``np.asarray``.
    """
    lib = library_of(x)
    if lib in _ADAPTERS and lib != "numpy":
        return backend_of(x).to_numpy(x)
    return np.asarray(x)
