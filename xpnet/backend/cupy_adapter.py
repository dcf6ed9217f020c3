"""CuPy, on one CUDA device."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Hashable
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from ..errors import BackendError
from .base import Backend, draw_numpy_like

__all__ = ["CupyBackend", "cupy_problem"]


def cupy_problem(hint: str) -> str | None:
    """Why CuPy cannot run here, or None when it can (``hint``: how to install it)."""
    if importlib.util.find_spec("cupy") is None:
        return f"CuPy is not installed; {hint}"
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # the CUDA runtime raises its own error types
        return f"CuPy is installed but no usable CUDA device was found ({err})"
    if count < 1:
        return "CuPy is installed but no CUDA device is present"
    return None


def _device_index(device: Any) -> int:
    """The CUDA device index ``device`` names: None, 'cuda', 'cuda:1', 'gpu', 1, a Device."""
    if device is None:
        return 0
    if isinstance(device, int):
        return device
    if hasattr(device, "id"):  # cupy.cuda.Device
        return int(device.id)
    if getattr(device, "type", None) == "cuda":  # a torch.device
        return 0 if device.index is None else int(device.index)
    text = str(device).strip().lower()
    kind, _, index = text.partition(":")
    if kind in ("cuda", "gpu") and (not index or index.isdigit()):
        return int(index) if index else 0
    raise BackendError(f"CuPy cannot use device {device!r}: CuPy arrays live on a CUDA "
                       "device ('cuda', 'cuda:INDEX'); use --backend numpy for the CPU")


class CupyBackend(Backend):
    """CuPy arrays on one ``cupy.cuda.Device``; one Philox4x32-10 generator per stream."""

    name = "cupy"
    has_devices = True
    on_host = False
    synchronous = False

    def _namespace(self) -> ModuleType:
        import cupy

        with self.device:
            return array_api_compat.array_namespace(cupy.empty(0))

    @classmethod
    def canonical_device(cls, device: Any) -> Any:
        import cupy

        index = _device_index(device)
        count = cupy.cuda.runtime.getDeviceCount()
        if not 0 <= index < count:
            raise BackendError(f"CuPy cannot use device {device!r}: this machine has "
                               f"{count} CUDA device(s)")
        return cupy.cuda.Device(index)

    @classmethod
    def device_key(cls, device: Any) -> Hashable:
        return int(device.id)

    @classmethod
    def device_of(cls, x: Any) -> Any:
        return x.device

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.get()

    def synchronize(self) -> None:
        import cupy

        with self.device:
            cupy.cuda.get_current_stream().synchronize()

    def free_memory(self) -> int | None:
        import cupy

        with self.device:
            free, _ = cupy.cuda.runtime.memGetInfo()
        return int(free + cupy.get_default_memory_pool().free_bytes())

    def set_tf32(self, enabled: bool) -> None:
        """CuPy reads ``CUPY_TF32`` once, when it is imported: set it before starting."""
        if bool(enabled) != (os.environ.get("CUPY_TF32") == "1"):
            raise BackendError("CuPy decides TF32 once, at import: start Python with "
                               f"CUPY_TF32={'1' if enabled else '0'} instead")

    def make_generator(self, seed: int) -> Any:
        import cupy

        with self.device:  # curand states live on the device that makes them
            return cupy.random.Generator(cupy.random.Philox4x3210(seed))

    def draw(self, generator, kind, shape, dtype, arg=None):
        import cupy

        with self.device:
            return draw_numpy_like(cupy, generator, kind, shape, dtype, arg)
