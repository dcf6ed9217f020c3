"""PyTorch, on the CPU or a CUDA device."""

from __future__ import annotations

import base64
from collections.abc import Hashable
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from ..errors import BackendError
from .base import Backend
from .graphs import GraphAPI

__all__ = ["TorchBackend", "TorchGraphs", "torch_cuda_problem"]


def torch_cuda_problem() -> str | None:
    """Why torch cannot use a CUDA device here, or None when it can."""
    import torch

    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        return (f"torch {torch.__version__} ({build}) sees no usable CUDA device "
                "(torch.cuda.is_available() is False)")
    return None


class TorchBackend(Backend):
    """torch tensors on one ``torch.device`` ('cpu' or 'cuda:i')."""

    name = "torch"
    has_devices = True

    def __init__(self, device: Any) -> None:
        super().__init__(device)
        self.on_host = self.synchronous = device.type == "cpu"

    def _namespace(self) -> ModuleType:
        import torch

        return array_api_compat.array_namespace(torch.empty(0))

    @classmethod
    def canonical_device(cls, device: Any) -> Any:
        import torch

        if device is None:
            return torch.device("cpu")
        try:
            dev = torch.device(device) if not isinstance(device, int) else torch.device(
                "cuda", device)
        except (RuntimeError, TypeError) as err:
            raise BackendError(f"torch cannot use device {device!r}: {err}; "
                               "use 'cpu', 'cuda' or 'cuda:INDEX'") from None
        if dev.type == "cpu":
            return torch.device("cpu")
        if dev.type != "cuda":
            raise BackendError(f"xpnet runs torch on 'cpu' or 'cuda' devices, got {device!r}")
        problem = torch_cuda_problem()
        if problem:
            raise BackendError(f"torch cannot use device {device!r}: {problem}")
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if not 0 <= index < torch.cuda.device_count():
            raise BackendError(f"torch cannot use device {device!r}: this machine has "
                               f"{torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)

    @classmethod
    def device_key(cls, device: Any) -> Hashable:
        return (device.type, device.index)

    @classmethod
    def device_of(cls, x: Any) -> Any:
        return x.device

    def _host_input(self, x: Any) -> Any:
        if isinstance(x, np.ndarray) and not x.flags.writeable:
            return np.array(x)  # torch warns on read-only buffers
        return x

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)

    def free_memory(self) -> int | None:
        if self.device.type != "cuda":
            return None
        import torch

        free, _ = torch.cuda.mem_get_info(self.device)
        return int(free)

    def set_tf32(self, enabled: bool) -> None:
        if self.device.type != "cuda":
            super().set_tf32(enabled)
            return
        import torch

        torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
        torch.backends.cudnn.allow_tf32 = bool(enabled)

    def graph_api(self) -> GraphAPI | None:
        return TorchGraphs(self.device) if self.device.type == "cuda" else None

    def make_generator(self, seed: int) -> Any:
        import torch

        return torch.Generator(device=self.device).manual_seed(seed)

    def generator_state(self, generator: Any) -> str:
        return base64.b64encode(generator.get_state().numpy().tobytes()).decode("ascii")

    def restore_generator(self, state: str) -> Any:
        import torch

        generator = torch.Generator(device=self.device)
        raw = np.frombuffer(base64.b64decode(state), dtype=np.uint8).copy()
        generator.set_state(torch.from_numpy(raw))
        return generator

    def draw(self, generator, kind, shape, dtype, arg=None):
        import torch

        shape = tuple(int(s) for s in shape)
        if kind == "integers":
            return torch.randint(0, arg, shape, generator=generator, device=self.device)
        if kind == "permutation":
            return torch.randperm(arg, generator=generator, device=self.device)
        dtype = self.dtype(dtype)
        if kind == "normal":
            out = torch.randn(shape, generator=generator, dtype=dtype, device=self.device)
            return out.mul_(arg) if arg != 1.0 else out
        return torch.rand(shape, generator=generator, dtype=dtype, device=self.device)


class TorchGraphs(GraphAPI):
    """CUDA graphs through ``torch.cuda.CUDAGraph`` on one device."""

    def __init__(self, device: Any) -> None:
        import torch

        self.device = device
        self.side = torch.cuda.Stream(device=device)

    def warm_up(self, step):
        import torch

        self.side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.side):
            result = step()
        torch.cuda.current_stream(self.device).wait_stream(self.side)
        return result

    def capture(self, step):
        import torch

        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize(self.device)
        with torch.cuda.graph(graph):
            result = step()
        return graph, result

    def replay(self, graph) -> None:
        graph.replay()
