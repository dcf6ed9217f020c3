"""NumPy: the reference backend, on the host."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from ..errors import BackendError
from .base import Backend, draw_numpy_like, library_of

__all__ = ["NumpyBackend", "host_device"]


def host_device(name: str, device: Any) -> str:
    """'cpu' for None or 'cpu' (any case); BackendError for anything else."""
    if device is None or str(device).strip().lower() == "cpu":
        return "cpu"
    raise BackendError(f"the {name} backend runs on the CPU only, got device {device!r}; "
                       "use --backend torch or cupy for a GPU")


class NumpyBackend(Backend):
    """NumPy arrays in host memory; random numbers from PCG64 generators."""

    name = "numpy"

    def _namespace(self) -> ModuleType:
        return array_api_compat.array_namespace(np.empty(0))

    @classmethod
    def canonical_device(cls, device: Any) -> str:
        return host_device(cls.name, device)

    @classmethod
    def device_of(cls, x: Any) -> str:
        return "cpu"

    def owns(self, x: Any) -> bool:
        return library_of(x) == "numpy"  # arrays and NumPy scalars (0-D results)

    def make_generator(self, seed: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(seed))

    def generator_state(self, generator: np.random.Generator) -> dict[str, Any]:
        return generator.bit_generator.state  # plain ints: JSON as it is

    def restore_generator(self, state: dict[str, Any]) -> np.random.Generator:
        generator = np.random.Generator(np.random.PCG64())
        generator.bit_generator.state = state
        return generator

    def draw(self, generator, kind, shape, dtype, arg=None):
        return draw_numpy_like(np, generator, kind, shape, dtype, arg)
