"""Backends: the one module (with the fast paths) that knows concrete array libraries.

Everything else in xpnet is written against the Python Array API standard and
finds its namespace from its inputs (:func:`namespace_of`). A :class:`Backend`
resolves a name to a namespace and a device, makes seeded random numbers (the
standard has none), moves arrays between the host (NumPy) and its device, and
synchronizes.

Random numbers come from :class:`RandomStream` objects: counter based, a
stream holds ``(seed, counter)`` and every draw uses a fresh generator of the
library's own kind seeded from that pair, so its state is two integers that a
checkpoint saves and restores exactly on every backend. Each backend has a
default stream; a :class:`~xpnet.solver.Solver` owns a stream of its own and
makes it the *active* one (:meth:`RandomStream.active`) while it trains, so
dropout masks drawn inside the model come from the Solver's stream. The active
stream is a context variable: two Solvers in two threads never share one.
"""

from __future__ import annotations

import contextvars
import importlib
import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from ._backend_list import BACKEND_NAMES, BACKENDS
from .errors import BackendError, BackendMismatchError, InputTypeError

__all__ = [
    "Backend",
    "BackendError",
    "BackendMismatchError",
    "BACKEND_NAMES",
    "RandomStream",
    "available_backends",
    "backend_of",
    "backend_problem",
    "get_backend",
    "library_of",
    "namespace_of",
    "to_numpy",
]


def install_hint(name: str) -> str:
    """The command that installs backend ``name``."""
    if name == "numpy":
        return "pip install numpy"
    if name == "cupy":
        return 'pip install "xpnet[cuda12]"  (or "xpnet[cuda13]" for CUDA 13 drivers)'
    return f'pip install "xpnet[{BACKENDS[name][2]}]"'


_ALIASES = {
    "np": "numpy",
    "cp": "cupy",
    "pytorch": "torch",
    "strict": "array_api_strict",
    "array-api-strict": "array_api_strict",
}


# ---------------------------------------------------------------------------
# Library detection
# ---------------------------------------------------------------------------

def _is_installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cuda_problem() -> str | None:
    """Why CuPy cannot run here, or None when it can."""
    if not _is_installed("cupy"):
        return f"CuPy is not installed; {install_hint('cupy')}"
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # the CUDA runtime raises its own error types
        return f"CuPy is installed but no usable CUDA device was found ({err})"
    if count < 1:
        return "CuPy is installed but no CUDA device is present"
    return None


def backend_problem(name: str) -> str | None:
    """Why the backend ``name`` cannot be used here, or None when it can."""
    name = canonical_name(name)
    if name == "cupy":
        return _cuda_problem()
    if name == "auto":
        return None
    if not _is_installed(name):
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


# ---------------------------------------------------------------------------
# Random streams
# ---------------------------------------------------------------------------

def _derive_seed(*entropy: int) -> int:
    """A 63-bit seed that mixes the integers ``entropy`` well."""
    state = np.random.SeedSequence([int(e) for e in entropy]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def fresh_seed() -> int:
    """A seed drawn from the operating system's entropy."""
    return int(np.random.SeedSequence().entropy) >> 65


_ACTIVE_STREAM: contextvars.ContextVar[RandomStream | None] = contextvars.ContextVar(
    "xpnet_active_stream", default=None)


class RandomStream:
    """A counter-based stream of random numbers on one backend.

    Parameters
    ----------
    backend : Backend
        Where the numbers are made.
    seed : int, optional
        Default: fresh entropy.

    Notes
    -----
    Draw ``k`` of a stream uses a generator of the library's own kind (Philox
    for NumPy, CuPy and array_api_strict, ``torch.Generator`` for torch)
    seeded from ``(seed, k)``; :meth:`state` is those two integers.
    """

    __slots__ = ("backend", "seed", "counter")

    def __init__(self, backend: Backend, seed: int | None = None) -> None:
        self.backend = backend
        self.seed = fresh_seed() if seed is None else int(seed)
        self.counter = 0

    def state(self) -> dict[str, int]:
        """``{'seed': ..., 'counter': ...}``, for a checkpoint."""
        return {"seed": self.seed, "counter": self.counter}

    def set_state(self, state: dict[str, int]) -> None:
        """Restore a :meth:`state`."""
        self.seed = int(state["seed"])
        self.counter = int(state["counter"])

    def reseed(self, seed: int) -> None:
        """Restart the stream from ``seed``."""
        self.seed, self.counter = int(seed), 0

    def _next(self) -> int:
        self.counter += 1
        return _derive_seed(self.seed, self.counter)

    def normal(self, shape: tuple[int, ...], std: float = 1.0, dtype: Any = None) -> Any:
        """Samples of N(0, std**2)."""
        return self.backend._draw("normal", shape, dtype, self._next(), std)

    def uniform(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        """Samples of U[0, 1)."""
        return self.backend._draw("uniform", shape, dtype, self._next())

    def integers(self, high: int, size: int) -> Any:
        """``size`` integers drawn uniformly from [0, high), with replacement."""
        return self.backend._draw("integers", (int(size),), None, self._next(), int(high))

    def permutation(self, n: int) -> Any:
        """A random permutation of ``range(n)`` (int64)."""
        return self.backend._draw("permutation", (int(n),), None, self._next(), int(n))

    @contextmanager
    def active(self) -> Iterator[RandomStream]:
        """Make this the stream that unseeded draws on its backend use, in this context."""
        token = _ACTIVE_STREAM.set(self)
        try:
            yield self
        finally:
            _ACTIVE_STREAM.reset(token)

    def __repr__(self) -> str:
        return f"RandomStream({self.backend.name!r}, seed={self.seed}, counter={self.counter})"


# ---------------------------------------------------------------------------
# The Backend
# ---------------------------------------------------------------------------

class Backend:
    """One array library on one device.

    Parameters
    ----------
    name : str
        ``'numpy'``, ``'cupy'``, ``'torch'`` or ``'array_api_strict'``.
    xp : module
        The Array API namespace (the ``array_api_compat`` wrapper where one
        exists).
    device : object
        The device arrays are created on.
    """

    def __init__(self, name: str, xp: ModuleType, device: Any = None) -> None:
        self.name = name
        self.xp = xp
        self.device = device
        #: the stream of unseeded draws when no stream of this backend is active
        self.default_stream = RandomStream(self)

    # -- dtypes ------------------------------------------------------------
    def dtype(self, spec: Any) -> Any:
        """The namespace's dtype for ``spec`` ('float32', np.float64, xp.float32...)."""
        if spec is None:
            return self.xp.float32
        key = dtype_name(spec)
        try:
            return getattr(self.xp, key)
        except AttributeError:
            raise InputTypeError(
                f"dtype {spec!r} is not a dtype of the {self.name} backend; "
                "use a name such as 'float32' or 'float64'"
            ) from None

    # -- moving data -------------------------------------------------------
    def asarray(self, x: Any, dtype: Any = None, copy: bool | None = None) -> Any:
        """``x`` (host data or an array of this backend) as an array on this device.

        Arrays of another backend are refused with :class:`BackendMismatchError`
        rather than silently copied.
        """
        if dtype is not None:
            dtype = self.dtype(dtype)
        if _is_foreign_array(x, self):
            raise BackendMismatchError(
                f"got an array of the {library_of(x)} backend where the {self.name} "
                f"backend was expected; convert it with xpnet.to_numpy() first"
            )
        if self.name == "torch" and isinstance(x, np.ndarray) and not x.flags.writeable:
            x = np.array(x)  # torch warns on read-only buffers
        return self.xp.asarray(x, dtype=dtype, device=self.device, copy=copy)

    def to_numpy(self, x: Any) -> np.ndarray:
        """A NumPy copy (or view, on the CPU) of an array of this backend."""
        return to_numpy(x)

    def synchronize(self) -> None:
        """Wait until queued device work has finished (a no-op on the CPU)."""
        if self.name == "cupy":
            import cupy

            cupy.cuda.get_current_stream().synchronize()
        elif self.name == "torch":
            import torch

            if getattr(self.device, "type", "cpu") == "cuda":
                torch.cuda.synchronize(self.device)

    # -- random numbers ----------------------------------------------------
    def new_stream(self, seed: int | None = None) -> RandomStream:
        """A random stream of its own on this backend (fresh entropy without ``seed``)."""
        return RandomStream(self, seed)

    @property
    def stream(self) -> RandomStream:
        """The stream unseeded draws use now: the active one, else the default."""
        active = _ACTIVE_STREAM.get()
        if active is not None and active.backend is self:
            return active
        return self.default_stream

    def seed(self, seed: int) -> None:
        """Restart this backend's default random stream from ``seed``."""
        self.default_stream.reseed(seed)

    def rng_state(self) -> dict[str, int]:
        """The default random stream's state."""
        return self.default_stream.state()

    def set_rng_state(self, state: dict[str, int]) -> None:
        """Restore a state returned by :meth:`rng_state`."""
        self.default_stream.set_state(state)

    @staticmethod
    def _seeded(seed: int | tuple[int, ...]) -> int:
        return _derive_seed(*(seed if isinstance(seed, (tuple, list)) else (seed,)), 0)

    def random_normal(
        self, shape: tuple[int, ...], std: float = 1.0, dtype: Any = None,
        seed: int | tuple[int, ...] | None = None,
    ) -> Any:
        """Samples of N(0, std**2): from :attr:`stream`, or a stream of their own
        for ``seed``."""
        if seed is None:
            return self.stream.normal(shape, std, dtype)
        return self._draw("normal", shape, dtype, self._seeded(seed), std)

    def random_uniform(
        self, shape: tuple[int, ...], dtype: Any = None,
        seed: int | tuple[int, ...] | None = None,
    ) -> Any:
        """Samples of U[0, 1), like :meth:`random_normal`."""
        if seed is None:
            return self.stream.uniform(shape, dtype)
        return self._draw("uniform", shape, dtype, self._seeded(seed))

    def random_integers(self, high: int, size: int,
                        seed: int | tuple[int, ...] | None = None) -> Any:
        """``size`` integers drawn uniformly from [0, high), with replacement."""
        if seed is None:
            return self.stream.integers(high, size)
        return self._draw("integers", (int(size),), None, self._seeded(seed), int(high))

    def _draw(self, kind: str, shape, dtype, derived: int, arg=None):
        shape = tuple(int(s) for s in shape)
        dtype = self.dtype(dtype) if kind in ("normal", "uniform") else self.xp.int64
        if self.name == "torch":
            return self._draw_torch(kind, shape, dtype, derived, arg)
        if self.name == "cupy":
            import cupy

            gen = cupy.random.Generator(cupy.random.Philox4x3210(derived))
            lib = cupy
        else:
            gen = np.random.Generator(np.random.Philox(derived))
            lib = np
        if kind == "integers":
            out = gen.integers(0, arg, size=shape, dtype=lib.int64)
        elif kind == "permutation":
            out = gen.permutation(arg).astype(lib.int64)
        else:
            floating = _numpy_float_name(dtype)
            if kind == "normal":
                out = gen.standard_normal(size=shape, dtype=floating)
                if arg != 1.0:
                    out *= arg
            else:
                out = gen.random(size=shape, dtype=floating)
        if self.name == "array_api_strict":
            return self.xp.asarray(out, device=self.device)
        return out

    def _draw_torch(self, kind, shape, dtype, derived, arg):
        import torch

        gen = torch.Generator(device=self.device).manual_seed(derived)
        if kind == "integers":
            return torch.randint(0, arg, shape, generator=gen, device=self.device)
        if kind == "permutation":
            return torch.randperm(arg, generator=gen, device=self.device)
        if kind == "normal":
            out = torch.randn(shape, generator=gen, dtype=dtype, device=self.device)
            return out.mul_(arg) if arg != 1.0 else out
        return torch.rand(shape, generator=gen, dtype=dtype, device=self.device)

    # -- facts -------------------------------------------------------------
    @property
    def on_host(self) -> bool:
        """Whether arrays live in host memory (every backend but CuPy and torch on CUDA)."""
        return not (self.name == "cupy"
                    or (self.name == "torch" and getattr(self.device, "type", "cpu") != "cpu"))

    def free_memory(self) -> int | None:
        """Free bytes of device memory (None for the CPU backends: host memory)."""
        if self.name == "cupy":
            import cupy

            with self.device:
                free, _ = cupy.cuda.runtime.memGetInfo()
            pool = cupy.get_default_memory_pool()
            return int(free + pool.free_bytes())
        if self.name == "torch" and getattr(self.device, "type", "cpu") == "cuda":
            import torch

            free, _ = torch.cuda.mem_get_info(self.device)
            return int(free)
        return None

    @property
    def synchronous(self) -> bool:
        """True where reading a result costs no device synchronization (CPUs)."""
        if self.name == "cupy":
            return False
        return self.name != "torch" or getattr(self.device, "type", "cpu") == "cpu"

    def owns(self, x: Any) -> bool:
        """Whether ``x`` is an array of this backend (NumPy arrays for NumPy)."""
        return library_of(x) == self.name

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device!r})"


def dtype_name(dtype: Any) -> str:
    """'float32' for np.float32, torch.float32, array_api_strict.float32 or 'float32'."""
    if isinstance(dtype, str):
        return dtype
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(getattr(dtype, "__name__", dtype)).rsplit(".", 1)[-1].strip("'>")


def _numpy_float_name(dtype: Any) -> str:
    name = dtype_name(dtype)
    if name not in ("float32", "float64"):
        raise InputTypeError(f"random floats need float32 or float64, got {dtype}")
    return name


# ---------------------------------------------------------------------------
# Resolving backends
# ---------------------------------------------------------------------------

_CACHE: dict[tuple[str, str], Backend] = {}


def _make_backend(name: str, device: Any) -> Backend:
    problem = backend_problem(name)
    if problem is not None:
        raise BackendError(f"the {name} backend cannot be used: {problem}")
    if name == "numpy":
        return Backend("numpy", array_api_compat.array_namespace(np.empty(0)), "cpu")
    if name == "array_api_strict":
        xp = importlib.import_module("array_api_strict")
        dev = device if device is not None else xp.asarray(0).device
        if isinstance(dev, str):
            dev = xp.Device(dev)
        return Backend("array_api_strict", xp, dev)
    if name == "torch":
        import torch

        dev = torch.device(device if device is not None else "cpu")
        return Backend("torch", array_api_compat.array_namespace(torch.empty(0)), dev)
    import cupy

    dev = cupy.cuda.Device(0 if device is None else int(getattr(device, "id", device)))
    with dev:
        xp = array_api_compat.array_namespace(cupy.empty(0))
    return Backend("cupy", xp, dev)


def get_backend(name_or_namespace: Any = None, device: Any = None) -> Backend:
    """Resolve a backend.

    Parameters
    ----------
    name_or_namespace : str, module, Backend or None
        A name (``'numpy'``, ``'cupy'``, ``'torch'``, ``'array_api_strict'``,
        ``'auto'``), an array namespace or library module, or a :class:`Backend`
        (returned as is). ``None`` reads ``$XPNET_BACKEND`` and falls back to
        ``'auto'``: CuPy when a CUDA device is usable, else NumPy.
    device : optional
        The device; the library's default when omitted.

    Returns
    -------
    Backend
        The same object for the same name and device.

    Raises
    ------
    BackendError
        For an unknown name, a library that is not installed (with the command
        that installs it), or CuPy without a usable GPU.
    """
    if isinstance(name_or_namespace, Backend):
        return name_or_namespace
    if name_or_namespace is None:
        name_or_namespace = os.environ.get("XPNET_BACKEND", "auto") or "auto"
    if isinstance(name_or_namespace, ModuleType):
        name = name_of_module(name_or_namespace)
    elif isinstance(name_or_namespace, str):
        name = canonical_name(name_or_namespace)
    else:
        raise BackendError(
            f"backend must be a name, a namespace module or a Backend, "
            f"got {type(name_or_namespace).__name__}"
        )
    if name == "auto":
        name = "cupy" if _cuda_problem() is None else "numpy"
    key = (name, str(device))
    if key not in _CACHE:
        _CACHE[key] = _make_backend(name, device)
    return _CACHE[key]


def name_of_module(module: ModuleType) -> str:
    """The backend name of a library or namespace module."""
    root = module.__name__.split(".")
    if root[0] == "array_api_compat" and len(root) > 1:
        return canonical_name(root[1])
    return canonical_name(root[0])


# ---------------------------------------------------------------------------
# Arrays -> namespace / backend
# ---------------------------------------------------------------------------

_LIBRARY_BY_TYPE: dict[type, str] = {}


def library_of(x: Any) -> str:
    """The library an array belongs to: 'numpy', 'cupy', 'torch', 'array_api_strict'
    (or the top-level module of anything else)."""
    t = type(x)
    lib = _LIBRARY_BY_TYPE.get(t)
    if lib is None:
        lib = t.__module__.split(".")[0]
        _LIBRARY_BY_TYPE[t] = lib
    return lib


def _is_foreign_array(x: Any, backend: Backend) -> bool:
    if not array_api_compat.is_array_api_obj(x):
        return False
    lib = library_of(x)
    if backend.name == "numpy" or lib == "numpy":
        # host NumPy data may go anywhere; NumPy accepts nothing else
        return backend.name == "numpy" and lib != "numpy"
    return lib != backend.name


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
    for a in arrays:
        if a is not None:
            t = type(a)
            if kind is None:
                kind = t
            elif t is not kind:
                kind = False
                break
    if kind:
        xp = _NAMESPACE_BY_TYPE.get(kind)
        if xp is not None:
            return xp
    try:
        xp = array_api_compat.array_namespace(*arrays)
    except TypeError as err:
        libs = sorted({library_of(a) for a in arrays if a is not None})
        if len(libs) > 1:
            raise BackendMismatchError(
                f"{caller} got arrays from different backends ({', '.join(libs)}); "
                "put them on one backend first, e.g. with backend.asarray(x)"
            ) from None
        raise InputTypeError(f"{caller}: {err}") from None
    if kind:
        _NAMESPACE_BY_TYPE[kind] = xp
    return xp


def backend_of(x: Any) -> Backend:
    """The :class:`Backend` an array lives on."""
    lib = library_of(x)
    if lib == "numpy":
        return get_backend("numpy")
    if lib not in BACKEND_NAMES:
        raise BackendError(f"arrays of type {type(x).__name__} belong to no xpnet backend")
    device = array_api_compat.device(x)
    if lib == "cupy":
        device = getattr(device, "id", device)
        return get_backend("cupy", None if device == 0 else device)
    if lib == "torch":
        return get_backend("torch", None if str(device) == "cpu" else device)
    default = get_backend("array_api_strict")
    return default if device == default.device else get_backend(lib, device)


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any backend to a NumPy array on the host.

    Python scalars and NumPy arrays pass through ``np.asarray``.
    """
    lib = library_of(x)
    if lib == "cupy":
        return x.get()
    if lib == "torch":
        return x.detach().cpu().numpy()
    if lib == "array_api_strict":
        return np.from_dlpack(x)
    return np.asarray(x)
