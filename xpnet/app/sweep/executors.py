"""Where a sweep's trials run: a local process pool, a Dask cluster, or any executor.

Every kind offers the ``concurrent.futures`` interface the driver uses
(``submit`` returning a ``Future``), so the driver's code is the same on a
laptop and on a cluster:

``local`` (:class:`LocalPool`)
    A ``ProcessPoolExecutor`` of spawned (not forked) processes. Each one
    takes a device slot when ``--gpus`` is given, limits its math libraries
    to its share of the CPU cores, and exits when the driver dies. A worker
    that dies breaks the pool; :meth:`LocalPool.restart` starts a new one and
    the driver hands the trials that were running to it again.
``dask`` / ``dask://HOST:PORT`` (:class:`DaskPool`)
    A ``LocalCluster`` bound to 127.0.0.1, or the scheduler at that address,
    through ``Client.get_executor``. Dask runs a task again when its worker
    dies; the sweep folder must be on a file system every worker sees.
any ``concurrent.futures.Executor`` (:class:`GivenPool`)
    From Python; the caller owns it.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from typing import Any

from ..._ops import checks
from ...errors import SweepError
from .study import INSTALL_HINT
from .worker import init_local_worker

__all__ = [
    "DaskPool",
    "GivenPool",
    "LocalPool",
    "TrialExecutor",
    "check_executor",
    "device_slots",
    "make_executor",
    "parse_gpus",
]

#: The math libraries' thread counts, set for each local worker unless already set.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse_gpus(gpus: str | Sequence[int | str] | None) -> list[str]:
    """``"0,1"`` (or ``[0, 1]``) as device ids; [] for None.

    Raises
    ------
    SweepError
        For anything but distinct non-negative integers.
    """
    if gpus is None:
        return []
    items = gpus.split(",") if isinstance(gpus, str) else list(gpus)
    ids = [str(item).strip() for item in items]
    if not ids or not all(i.isdigit() for i in ids) or len(set(ids)) != len(ids):
        raise SweepError(f"--gpus takes distinct device numbers separated by commas, such as "
                         f"0,1; got {gpus!r}")
    return ids


def device_slots(gpus: Sequence[str], per_gpu: int) -> list[str]:
    """One ``CUDA_VISIBLE_DEVICES`` value per worker: each GPU ``per_gpu`` times."""
    per_gpu = checks.positive_int(per_gpu, "--per-gpu")
    return [gpu for gpu in gpus for _ in range(per_gpu)]


class TrialExecutor:
    """The driver's view of an executor.

    Attributes
    ----------
    workers : int
        How many trials run at once.
    description : str
        For the sweep's first line.
    breaks_as_a_whole : bool
        Whether one dead worker fails every running trial (a process pool), or
        only its own (Dask).
    """

    workers: int = 1
    description: str = ""
    breaks_as_a_whole: bool = True

    def submit(self, fn: Callable[..., Any], task: Any) -> Future:
        raise NotImplementedError

    def restart(self) -> bool:
        """Replace a broken pool; False when this kind cannot (or need not)."""
        return False

    def shutdown(self, kill: bool = False) -> None:
        """Release the workers; ``kill`` ends the trials still running."""


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` (where unset) for processes started inside."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


class LocalPool(TrialExecutor):
    """Spawned worker processes on this machine.

    Parameters
    ----------
    workers : int
    slots : list of str, optional
        ``CUDA_VISIBLE_DEVICES`` per worker (from :func:`device_slots`).
    """

    def __init__(self, workers: int, slots: Sequence[str] | None = None) -> None:
        self.workers = workers
        self.slots = list(slots or [])
        cores = os.cpu_count() or 1
        self.threads = str(max(1, cores // workers))
        devices = f", devices {','.join(self.slots)}" if self.slots else ""
        self.description = (f"{workers} local worker{'s' if workers > 1 else ''}{devices}")
        self._pool: Any = None
        self._start()

    def _start(self) -> None:
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        queue = None
        if self.slots:
            queue = context.Queue()
            for slot in self.slots[:self.workers]:
                queue.put(slot)
        self._pool = ProcessPoolExecutor(self.workers, mp_context=context,
                                         initializer=init_local_worker,
                                         initargs=(os.getpid(), queue))

    def submit(self, fn: Callable[..., Any], task: Any) -> Future:
        # Processes are spawned inside submit(): they inherit these variables.
        with _environment({name: self.threads for name in THREAD_VARIABLES}):
            return self._pool.submit(fn, task)

    def restart(self) -> bool:
        self.shutdown(kill=True)
        self._start()
        return True

    def shutdown(self, kill: bool = False) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if kill:
            for process in list(getattr(pool, "_processes", {}).values()):
                if process.is_alive():
                    process.kill()
        pool.shutdown(wait=True, cancel_futures=True)


class DaskPool(TrialExecutor):
    """Trials on Dask: a new ``LocalCluster`` (``address`` None) or a running scheduler.

    Parameters
    ----------
    address : str or None
        ``tcp://HOST:PORT`` of a scheduler.
    workers : int or None
        Trials at once (default: the cluster's threads; a new cluster gets
        this many single-threaded worker processes, default 1).
    """

    breaks_as_a_whole = False

    def __init__(self, address: str | None, workers: int | None) -> None:
        try:
            import logging

            from distributed import Client, LocalCluster
        except ImportError:
            raise SweepError(f"--executor dask needs Dask's distributed scheduler, which is "
                             f"not installed: {INSTALL_HINT}") from None
        self.cluster: Any = None
        if address is None:
            self.cluster = LocalCluster(n_workers=workers or 1, threads_per_worker=1,
                                        processes=True, host="127.0.0.1",
                                        dashboard_address=None, silence_logs=logging.ERROR)
            address = self.cluster.scheduler_address
        try:
            self.client = Client(address, timeout="20s")
        except (OSError, TimeoutError) as err:
            self._close_cluster()
            raise SweepError(f"cannot reach the Dask scheduler at {address}: {err}") from None
        threads = sum(self.client.nthreads().values()) or 1
        self.workers = workers or threads
        where = "a local Dask cluster" if self.cluster is not None else f"Dask at {address}"
        self.description = f"{self.workers} trials at a time on {where}"
        self._executor = self.client.get_executor(pure=False)

    def submit(self, fn: Callable[..., Any], task: Any) -> Future:
        return self._executor.submit(fn, task)

    def shutdown(self, kill: bool = False) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            self._executor.shutdown(wait=not kill)
            client.close()
        finally:
            self._close_cluster()

    def _close_cluster(self) -> None:
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None


class GivenPool(TrialExecutor):
    """A ``concurrent.futures.Executor`` the caller made (and shuts down)."""

    def __init__(self, executor: Executor, workers: int) -> None:
        self._executor = executor
        self.workers = workers
        self.description = f"{workers} trials at a time on {type(executor).__name__}"

    def submit(self, fn: Callable[..., Any], task: Any) -> Future:
        return self._executor.submit(fn, task)


def check_executor(executor: Any, workers: int | None,
                   gpus: str | Sequence[int | str] | None, per_gpu: int) -> list[str]:
    """Check the executor settings before anything starts; the device ids.

    Raises
    ------
    SweepError
        For an unknown kind, GPUs with Dask, or more workers than device slots.
    """
    ids = parse_gpus(gpus)
    slots = device_slots(ids, per_gpu) if ids else []
    if isinstance(executor, Executor):
        if ids:
            raise SweepError("gpus works with executor='local' only")
        return ids
    if not isinstance(executor, str) or not (
            executor in ("local", "dask") or executor.startswith("dask://")):
        raise SweepError(f"--executor must be local, dask or dask://HOST:PORT, got "
                         f"{executor!r}")
    if executor == "local":
        if slots and workers is not None and workers > len(slots):
            raise SweepError(f"--workers {workers} is more than the {len(slots)} device slots "
                             f"of --gpus {','.join(ids)} --per-gpu {per_gpu}")
        return ids
    if ids:
        raise SweepError("--gpus works with --executor local; give a Dask cluster its GPUs "
                         "when starting its workers (one GPU per worker, e.g. dask-cuda)")
    if executor == "dask://" or executor.endswith(":"):
        raise SweepError("--executor dask://HOST:PORT needs the scheduler's address and port")
    return ids


def make_executor(executor: Any, workers: int | None, gpus: Sequence[str],
                  per_gpu: int) -> TrialExecutor:
    """The executor named by ``--executor`` (or an Executor object, from Python).

    ``gpus`` and the rest must have passed :func:`check_executor`.
    """
    if isinstance(executor, Executor):
        return GivenPool(executor, workers or 1)
    if executor == "local":
        slots = device_slots(gpus, per_gpu) if gpus else []
        return LocalPool(workers or len(slots) or 1, slots or None)
    address = None
    if executor.startswith("dask://"):
        address = "tcp://" + executor[len("dask://"):]
    return DaskPool(address, workers)
