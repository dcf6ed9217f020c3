"""The data-parallel engine: ``torch.distributed`` over xpnet's arrays.

One process per rank, started by ``torchrun`` (or ``xpnet train --nproc``, which
uses the same launcher, :mod:`xpnet.distributed.launch`). :func:`init` reads the
launcher's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) and joins the process group: gloo between
CPUs, NCCL between NVIDIA GPUs. The :class:`Communicator` reduces and
broadcasts xpnet arrays in place and without copies: NumPy arrays through
``torch.from_numpy``, torch tensors as they are, CuPy arrays through DLPack
(``torch.from_dlpack``); only a library without shared memory
(``array_api_strict``) goes through one host copy.

Faults: every collective runs under the group's timeout. When one fails (a
peer died, or did not arrive in time) the rank marks itself alive in the
launcher's key-value store and waits a moment for the others' marks: the
ranks without one are the culprits, and the error (:class:`DistributedError`,
one line) names them.
"""

from __future__ import annotations

import atexit
import datetime
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..errors import InputError, RunError
from . import launched

__all__ = ["Communicator", "DistributedError", "init", "launched"]

#: all-reduces of more than this many bytes are split in buckets (as PyTorch's DDP)
BUCKET_BYTES = 25 * 2**20
#: default seconds a collective may wait for the other ranks
DEFAULT_TIMEOUT = 60.0


class DistributedError(RunError):
    """A rank died, hung, or the process group could not be formed."""


def _as_tensor(a: Any) -> torch.Tensor | None:
    """``a`` as a torch tensor sharing its memory, or None where it cannot."""
    if isinstance(a, torch.Tensor):
        return a
    if isinstance(a, np.ndarray):
        return torch.from_numpy(a) if a.flags.writeable and a.flags.c_contiguous else None
    if type(a).__module__.split(".")[0] == "cupy":
        return torch.from_dlpack(a)
    return None


class Communicator:
    """All-reduce, broadcast and barrier over xpnet arrays, across the ranks.

    Build one with :func:`init`. ``rank``, ``world_size`` and ``local_rank`` say
    where this process stands; :attr:`is_root` is rank 0, the one that writes.
    """

    def __init__(self, rank: int, world_size: int, local_rank: int, timeout: float,
                 store: Any, engine: str) -> None:
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.timeout, self.store, self.engine = float(timeout), store, engine
        self._failed: DistributedError | None = None

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        return (f"Communicator(rank={self.rank}, world_size={self.world_size}, "
                f"engine={self.engine!r}, timeout={self.timeout:g})")

    # -- collectives ------------------------------------------------------------------
    def all_reduce(self, arrays: Sequence[Any], what: str = "all-reduce") -> list[Any]:
        """Sum ``arrays`` over the ranks, in place where the library shares memory
        (the returned list holds the same objects), else into new host arrays.
        Buffers of more than :data:`BUCKET_BYTES` go in several calls, in flight at once."""
        return self._collective(arrays, what, lambda t: [
            dist.all_reduce(b, op=dist.ReduceOp.SUM, async_op=True) for b in _buckets(t)])

    def broadcast(self, arrays: Sequence[Any], src: int = 0, what: str = "broadcast"
                  ) -> list[Any]:
        """Every rank's ``arrays`` become rank ``src``'s (in place where possible)."""
        return self._collective(arrays, what, lambda t: [
            dist.broadcast(b, src=src, async_op=True) for b in _buckets(t)])

    def barrier(self, what: str = "barrier") -> None:
        """Wait until every rank is here (a one-element all-reduce: gloo and NCCL alike)."""
        flag = torch.zeros(1, device=self._device())
        self._collective([flag], what, lambda t: [dist.all_reduce(t, async_op=True)])

    def sum_host(self, values: Sequence[float], what: str = "all-reduce") -> list[float]:
        """Sum a few host numbers (counts, flags) over the ranks."""
        t = torch.tensor(list(values), dtype=torch.float64, device=self._device())
        self._collective([t], what, lambda u: [dist.all_reduce(u, async_op=True)])
        return [float(v) for v in t.cpu()]

    def publish(self, key: str, value: str) -> None:
        """Rank 0 makes ``value`` known to the others (:meth:`receive`), through the
        launcher's store: no collective, so no timeout while rank 0 works on it."""
        self.store.set(f"xpnet/published/{key}", value)

    def receive(self, key: str, timeout: float = 3600.0) -> str:
        """What rank 0 :meth:`publish`-ed as ``key``, waiting up to ``timeout`` seconds."""
        name = f"xpnet/published/{key}"
        try:
            self.store.wait([name], datetime.timedelta(seconds=timeout))
            return self.store.get(name).decode()
        except Exception as error:  # noqa: BLE001
            raise DistributedError(f"rank {self.rank} of {self.world_size}: rank 0 did not "
                                   f"make {key} known within {timeout:g} s ("
                                   f"{' '.join(str(error).split())[:160]})") from None

    def _device(self) -> torch.device:
        if self.engine == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def _collective(self, arrays: Sequence[Any], what: str, start) -> list[Any]:
        if self._failed is not None:
            raise self._failed
        out, tensors, copies = [], [], []
        for a in arrays:
            t = _as_tensor(a)
            if t is None:  # no shared memory: through one host copy
                host = np.ascontiguousarray(np.from_dlpack(a) if hasattr(a, "__dlpack__")
                                            else np.asarray(a)).copy()
                t = torch.from_numpy(host)
                copies.append(host)
                out.append(host)
            else:
                out.append(a)
            tensors.append(t)
        flat = [t.reshape(-1) for t in tensors]
        try:
            works = []
            for t in flat:
                works.extend(start(t))
            for w in works:
                w.wait()
        except Exception as error:  # noqa: BLE001 (gloo and NCCL raise several kinds)
            raise self._failure(what, error) from None
        return out

    # -- faults -----------------------------------------------------------------------
    def _failure(self, what: str, error: BaseException) -> DistributedError:
        """The one-line error of a failed collective, naming the ranks that did not answer."""
        began = time.monotonic()
        culprits = None
        try:
            self.store.set(f"xpnet/alive/{self.rank}", "1")
            keys = [f"xpnet/alive/{r}" for r in range(self.world_size)]
            grace = min(3.0, self.timeout)
            while time.monotonic() - began < grace:
                culprits = [r for r, k in enumerate(keys) if not self.store.check([k])]
                if not culprits:
                    break
                time.sleep(0.05)
        except Exception:  # noqa: BLE001 (the store went with the launcher)
            culprits = None
        reason = " ".join(str(error).split())[:160]
        if culprits:
            who = ", ".join(str(r) for r in culprits)
            message = (f"rank {who} of {self.world_size} stopped answering (it died or hangs): "
                       f"rank {self.rank} gave up on the {what} within the "
                       f"{self.timeout:g} s timeout ({reason})")
        else:
            message = (f"rank {self.rank} of {self.world_size}: the {what} failed ({reason})")
        self._failed = DistributedError(message)
        return self._failed

    def close(self) -> None:
        """Leave the process group (again: nothing)."""
        if dist.is_initialized():
            dist.destroy_process_group()
        self.store = None


def _buckets(t: torch.Tensor) -> list[torch.Tensor]:
    """Views of the 1-D ``t`` of at most :data:`BUCKET_BYTES` each."""
    step = max(BUCKET_BYTES // max(t.element_size(), 1), 1)
    n = t.numel()
    return [t] if n <= step else [t[i:i + step] for i in range(0, n, step)]


def _engine(engine: str | None, device: Any) -> str:
    if engine is not None:
        if engine not in ("gloo", "nccl"):
            raise InputError(f"the distributed engine is 'gloo' or 'nccl', not {engine!r}")
        return engine
    on_gpu = device is not None and "cuda" in str(device).lower()
    return "nccl" if on_gpu and dist.is_nccl_available() else "gloo"


def _cuda_index(device: Any, local_rank: int) -> int:
    """The CUDA device index of ``device`` (a torch device, a CuPy device), else the rank's."""
    for attribute in ("index", "id"):  # torch.device.index, cupy.cuda.Device.id
        value = getattr(device, attribute, None)
        if isinstance(value, int):
            return value
    return local_rank


def init(engine: str | None = None, timeout: float = DEFAULT_TIMEOUT,
         device: Any = None) -> Communicator:
    """Join the process group a launcher (``torchrun``, ``xpnet train --nproc``) set up.

    Parameters
    ----------
    engine : 'gloo', 'nccl' or None
        None: NCCL when ``device`` is a CUDA device, else gloo.
    timeout : float
        Seconds any collective may wait for the other ranks (``$XPNET_DIST_TIMEOUT``
        overrides the default).
    device : optional
        The device this rank trains on (a CUDA device selects NCCL and is made current).

    Raises
    ------
    DistributedError
        Outside a launcher, or when the group cannot be formed in time.
    """
    if not launched():
        raise DistributedError(
            "xpnet.distributed.init() reads the environment torchrun sets (RANK, WORLD_SIZE, "
            "MASTER_ADDR, MASTER_PORT); start the program with torchrun, or use "
            "xpnet train --nproc N")
    timeout = float(os.environ.get("XPNET_DIST_TIMEOUT", timeout))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    chosen = _engine(engine, device)
    if chosen == "nccl":
        torch.cuda.set_device(_cuda_index(device, local_rank))
    # the launcher's store (torchrun hosts it in its agent; else rank 0 does)
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    span = datetime.timedelta(seconds=timeout)
    try:
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                              world, is_master=rank == 0 and not agent_store, timeout=span,
                              wait_for_workers=False)
        if not dist.is_initialized():
            dist.init_process_group(chosen, store=dist.PrefixStore("xpnet/pg", store),
                                    rank=rank, world_size=world, timeout=span)
    except Exception as error:  # noqa: BLE001
        raise DistributedError(f"rank {rank} of {world} could not join the process group "
                               f"within {timeout:g} s: {' '.join(str(error).split())}") from None
    comm = Communicator(rank, world, local_rank, timeout, store, chosen)
    # leaving the group before the interpreter's teardown: gloo's threads otherwise
    # outlive it and the process aborts ("terminate called without an active exception")
    atexit.register(comm.close)
    return comm
