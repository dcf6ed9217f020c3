"""Data-parallel training: several processes, GPUs or machines, one trajectory.

The engine is ``torch.distributed`` (gloo between CPUs, NCCL between NVIDIA
GPUs), launched by ``torchrun`` or by ``xpnet train --nproc N``::

    torchrun --nproc-per-node 4 -m xpnet train --preset convnet
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \\
        --rdzv-endpoint host0:29500 -m xpnet train --preset resnet --sync-batchnorm

From Python, in a program started by torchrun::

    comm = xpnet.distributed.init()
    Solver(model, data, ..., communicator=comm, sync_batchnorm=True).train()

``batch_size`` is the global batch: every rank draws the same minibatch
indices from the Solver's stream and computes the gradient of its slice; one
all-reduce per step over the flat gradient buffer averages them (see
:mod:`xpnet.training.parallel`). The engine's code (the only part that
imports torch) is in :mod:`xpnet.distributed.engine` and
:mod:`xpnet.distributed.launch`.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["Communicator", "DistributedError", "init", "launched"]

_LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched() -> bool:
    """Whether this process is one rank started by a launcher (torchrun's environment)."""
    return all(v in os.environ for v in _LAUNCH_VARIABLES)


def init(engine: str | None = None, timeout: float | None = None, device: Any = None) -> Any:
    """Join the launcher's process group: a :class:`~xpnet.distributed.engine.Communicator`
    (see :func:`xpnet.distributed.engine.init`)."""
    from . import engine as _engine

    return _engine.init(engine, _engine.DEFAULT_TIMEOUT if timeout is None else timeout, device)


def __getattr__(name: str) -> Any:
    if name in ("Communicator", "DistributedError"):
        from . import engine as _engine

        return getattr(_engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
