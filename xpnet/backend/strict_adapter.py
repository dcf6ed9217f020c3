"""array_api_strict: the standard and nothing more, to prove xpnet needs nothing else."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import BackendError
from .base import Backend, draw_numpy_like

__all__ = ["StrictBackend"]


def _strict() -> ModuleType:
    return importlib.import_module("array_api_strict")


class StrictBackend(Backend):
    """``array_api_strict`` arrays on one of its (simulated) devices; random numbers
    drawn with NumPy's PCG64 and moved in."""

    name = "array_api_strict"

    def _namespace(self) -> ModuleType:
        return _strict()

    @classmethod
    def canonical_device(cls, device: Any) -> Any:
        xp = _strict()
        devices = xp.__array_namespace_info__().devices()
        if device is None:
            return xp.asarray(0).device
        if isinstance(device, str):
            spelled = "CPU_DEVICE" if device.strip().lower() == "cpu" else device.strip()
            device = next((d for d in devices if str(d) == f"array_api_strict.Device("
                           f"'{spelled}')"), None)
        if device not in devices:
            raise BackendError(f"array_api_strict has no device {device!r}; its devices: "
                               f"{', '.join(map(str, devices))} ('cpu' names the first)")
        return device

    @classmethod
    def device_of(cls, x: Any) -> Any:
        return x.device

    def make_generator(self, seed: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(seed))

    def generator_state(self, generator: np.random.Generator) -> dict[str, Any]:
        return generator.bit_generator.state

    def restore_generator(self, state: dict[str, Any]) -> np.random.Generator:
        generator = np.random.Generator(np.random.PCG64())
        generator.bit_generator.state = state
        return generator

    def draw(self, generator, kind, shape, dtype, arg=None):
        out = draw_numpy_like(np, generator, kind, shape, dtype, arg)
        return self.xp.asarray(out, device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        xp = self.xp
        cpu = xp.asarray(0).device
        if x.device != cpu:
            x = xp.asarray(x, device=cpu)
        return np.from_dlpack(x)
