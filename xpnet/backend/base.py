"""The adapter interface: what xpnet needs from an array library on one device.

:class:`Backend` holds what every library shares (dtypes, moving host data in,
random draws through streams); one subclass per library
(``numpy_adapter``, ``cupy_adapter``, ``torch_adapter``, ``strict_adapter``)
fills in the rest. Each (library, canonical device) has exactly one object,
made by :func:`xpnet.backend.get_backend`: never construct one directly.
"""

from __future__ import annotations

from collections.abc import Hashable
from types import ModuleType
from typing import Any, ClassVar

import array_api_compat
import numpy as np

from ..errors import BackendError, BackendMismatchError, InputTypeError
from .random import RandomStream, active_stream, derive_seed

__all__ = ["Backend", "dtype_name", "library_of"]

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


def dtype_name(dtype: Any) -> str:
    """'float32' for np.float32, torch.float32, array_api_strict.float32 or 'float32'."""
    if isinstance(dtype, str):
        return dtype
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(getattr(dtype, "__name__", dtype)).rsplit(".", 1)[-1].strip("'>")


def float_name(dtype: Any) -> str:
    """'float32' or 'float64' for a floating dtype; InputTypeError for anything else."""
    name = dtype_name(dtype)
    if name not in ("float32", "float64"):
        raise InputTypeError(f"random floats need float32 or float64, got {dtype}")
    return name


class Backend:
    """One array library on one device.

    Attributes
    ----------
    name : str
        ``'numpy'``, ``'cupy'``, ``'torch'`` or ``'array_api_strict'``.
    xp : module
        The Array API namespace (the ``array_api_compat`` wrapper where one exists).
    device : object
        The canonical device arrays are created on.
    default_stream : RandomStream
        The stream of unseeded draws when no stream is active.
    """

    name: ClassVar[str] = ""
    #: whether the library has devices that ``$XPNET_DEVICE`` chooses from (torch, CuPy)
    has_devices: bool = False
    #: whether arrays live in host memory
    on_host: bool = True
    #: whether reading a result costs no device synchronization
    synchronous: bool = True

    def __init__(self, device: Any) -> None:
        self.device = device
        self.xp: ModuleType = self._namespace()
        self.default_stream = RandomStream(self)

    # -- what each library defines -------------------------------------------
    def _namespace(self) -> ModuleType:
        raise NotImplementedError

    @classmethod
    def problem(cls) -> str | None:
        """Why this library cannot be used here, or None."""
        return None

    @classmethod
    def canonical_device(cls, device: Any) -> Any:
        """The one device object ``device`` names (None: the library's default)."""
        raise NotImplementedError

    @classmethod
    def device_key(cls, device: Any) -> Hashable:
        """A hashable key of a canonical device."""
        return str(device)

    @classmethod
    def device_of(cls, x: Any) -> Any:
        """The canonical device of an array of this library."""
        return array_api_compat.device(x)

    def make_generator(self, seed: int) -> Any:
        """A new generator of the library's own kind, seeded from ``seed`` (63 bits)."""
        raise NotImplementedError

    def generator_state(self, generator: Any) -> Any:
        """The generator's state as plain JSON data, or None where it cannot be read."""
        return None

    def restore_generator(self, state: Any) -> Any:
        """A generator in the state :meth:`generator_state` returned."""
        raise NotImplementedError

    def draw(self, generator: Any, kind: str, shape: tuple[int, ...], dtype: Any,
             arg: Any = None) -> Any:
        """Draw ``kind`` ('normal', 'uniform', 'integers', 'permutation') from ``generator``."""
        raise NotImplementedError

    def to_numpy(self, x: Any) -> np.ndarray:
        """A NumPy copy (or view, on the CPU) of an array of this backend."""
        return np.asarray(x)

    def synchronize(self) -> None:
        """Wait until queued device work has finished (a no-op on the CPU)."""

    def free_memory(self) -> int | None:
        """Free bytes of device memory (None for the CPU backends: host memory)."""
        return None

    def set_tf32(self, enabled: bool) -> None:
        """Let float32 matrix products use TF32 tensor cores (CUDA only; the default is
        the library's: off for torch's matrix products, off for CuPy)."""
        if enabled:
            raise BackendError(f"TF32 is a CUDA feature; the {self.name} backend on "
                               f"{self.device} has none")

    def graph_api(self) -> Any:
        """Capture and replay of a step (:class:`~xpnet.backend.graphs.GraphAPI`), or None
        where the library cannot (every backend but torch on CUDA)."""
        return None

    def _host_input(self, x: Any) -> Any:
        """Host data as this library's ``asarray`` wants it."""
        return x

    # -- shared ----------------------------------------------------------------
    def dtype(self, spec: Any) -> Any:
        """The namespace's dtype for ``spec`` ('float32', np.float32, xp.float32...)."""
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

    def owns(self, x: Any) -> bool:
        """Whether ``x`` is an array of this library on this device."""
        return library_of(x) == self.name and self.device_of(x) == self.device

    def asarray(self, x: Any, dtype: Any = None, copy: bool | None = None) -> Any:
        """``x`` (host data, or an array of this library) as an array on this device.

        Arrays of this library on another device are moved; arrays of another
        library are refused with :class:`BackendMismatchError` rather than
        silently copied.
        """
        if dtype is not None:
            dtype = self.dtype(dtype)
        lib = library_of(x)
        if lib not in ("numpy", self.name) and array_api_compat.is_array_api_obj(x):
            raise BackendMismatchError(
                f"got an array of the {lib} backend where the {self.name} backend was "
                f"expected; convert it with xpnet.to_numpy() first"
            )
        if lib == "numpy":
            x = self._host_input(x)
        return self.xp.asarray(x, dtype=dtype, device=self.device, copy=copy)

    # -- random numbers ----------------------------------------------------------
    def new_stream(self, seed: int | None = None) -> RandomStream:
        """A random stream of its own on this backend (fresh entropy without ``seed``)."""
        return RandomStream(self, seed)

    @property
    def stream(self) -> Any:
        """The stream unseeded draws use now: the active one if it is this backend's,
        else :attr:`default_stream`."""
        active = active_stream()
        if active is not None and active.backend is self:
            return active
        return self.default_stream

    def seed(self, seed: int) -> None:
        """Restart this backend's default random stream from ``seed``."""
        self.default_stream.reseed(seed)

    def rng_state(self) -> dict[str, Any]:
        """The default random stream's state."""
        return self.default_stream.state()

    def set_rng_state(self, state: dict[str, Any]) -> None:
        """Restore a state returned by :meth:`rng_state`."""
        self.default_stream.set_state(state)

    def _one_off(self, seed: int | tuple[int, ...]) -> Any:
        """The generator of a draw seeded by the caller (a stream of one draw)."""
        entropy = seed if isinstance(seed, (tuple, list)) else (seed,)
        return self.make_generator(derive_seed(*entropy, 0))

    def random_normal(
        self, shape: tuple[int, ...], std: float = 1.0, dtype: Any = None,
        seed: int | tuple[int, ...] | None = None,
    ) -> Any:
        """Samples of N(0, std**2): from :attr:`stream`, or a stream of their own
        for ``seed``."""
        if seed is None:
            return self.stream.normal(shape, std, dtype)
        return self.draw(self._one_off(seed), "normal", shape, dtype, std)

    def random_uniform(
        self, shape: tuple[int, ...], dtype: Any = None,
        seed: int | tuple[int, ...] | None = None,
    ) -> Any:
        """Samples of U[0, 1), like :meth:`random_normal`."""
        if seed is None:
            return self.stream.uniform(shape, dtype)
        return self.draw(self._one_off(seed), "uniform", shape, dtype)

    def random_integers(self, high: int, size: int,
                        seed: int | tuple[int, ...] | None = None) -> Any:
        """``size`` integers drawn uniformly from [0, high), with replacement."""
        if seed is None:
            return self.stream.integers(high, size)
        return self.draw(self._one_off(seed), "integers", (int(size),), None, int(high))

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device!r})"


def draw_numpy_like(lib: ModuleType, generator: Any, kind: str, shape: tuple[int, ...],
                    dtype: Any, arg: Any) -> Any:
    """A draw from a NumPy-style ``Generator`` of NumPy or CuPy (``lib``)."""
    shape = tuple(int(s) for s in shape)
    if kind == "integers":
        return generator.integers(0, arg, size=shape, dtype=lib.int64)
    if kind == "permutation":  # argsort of uniform keys: every generator has random()
        return lib.argsort(generator.random(size=shape)).astype(lib.int64)
    floating = float_name(dtype if dtype is not None else "float32")
    if kind == "normal":
        out = generator.standard_normal(size=shape, dtype=floating)
        if arg != 1.0:
            out *= arg
        return out
    return generator.random(size=shape, dtype=floating)
