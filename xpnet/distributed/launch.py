"""``xpnet train --nproc N``: N local ranks through torchrun's own launcher.

:func:`run_local` starts ``python -m xpnet ARGS`` N times with
``torch.distributed.launcher.elastic_launch``, the library behind ``torchrun``:
a loopback rendezvous on 127.0.0.1 with a free port, each rank in its own
session (a Ctrl-C reaches the launcher, which forwards one SIGINT to every rank,
and they stop together after the step in flight), and, when a rank fails, the
others stopped. The ranks record their one-line errors in the launcher's error
files (:func:`record_error`); the launcher prints one line for the run.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Sequence

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

__all__ = ["LAUNCHED_BY_XPNET", "record_error", "run_local"]

#: set in the ranks that ``xpnet train --nproc`` started: they leave the error line to it
LAUNCHED_BY_XPNET = "XPNET_NPROC_LAUNCHER"
EXIT_INTERRUPTED = 130


def record_error(line: str) -> None:
    """Write a rank's one-line error where its launcher (torchrun's agent) reads it."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    data = {"message": line, "timestamp": int(time.time())}
    try:
        with open(path, "w") as fp:
            json.dump(data, fp)
    except OSError:
        pass


def run_local(nproc: int, args: Sequence[str], err=None,
              entry: Sequence[str] = ("-m", "xpnet")) -> int:
    """Run ``python *entry *args`` (``python -m xpnet ARGS``) as ``nproc`` ranks on this
    machine; the exit status."""
    err = err or sys.stderr
    for name in list(logging.Logger.manager.loggerDict):  # the agent's own notices
        if name.startswith(("torch.distributed.elastic", "torch.distributed.launcher")):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc,
                          run_id=f"xpnet-{uuid.uuid4().hex[:8]}", rdzv_backend="c10d",
                          rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.1,
                          start_method="spawn")
    os.environ[LAUNCHED_BY_XPNET] = "1"
    try:
        elastic_launch(config, sys.executable)(*entry, *args)
    except ChildFailedError as failed:
        status, line = _summary(failed)
        if line:
            print(line, file=err, flush=True)
        return status
    except (KeyboardInterrupt, SignalException):  # the ranks got it too and saved
        return EXIT_INTERRUPTED
    finally:
        os.environ.pop(LAUNCHED_BY_XPNET, None)
    return 0


def _summary(failed: ChildFailedError) -> tuple[int, str | None]:
    """The exit status and the one line of a run in which ranks failed."""
    failures = failed.failures
    codes = {f.exitcode for f in failures.values()}
    if codes == {EXIT_INTERRUPTED}:
        return EXIT_INTERRUPTED, None
    killed = {r: f for r, f in failures.items() if f.exitcode < 0
              and f.exitcode != -signal.SIGTERM}
    if killed:
        rank, f = min(killed.items())
        return 1, (f"xpnet: error: rank {rank} of {_world(failed)} died ({f.signal_name()}); "
                   "the other ranks were stopped")
    messages = {r: f.message for r, f in failures.items()
                if isinstance(f.message, str) and f.message.startswith("xpnet")}
    if messages:
        naming = [r for r, m in messages.items() if "stopped answering" in m]
        rank = min(naming or messages)
        worst = max((f.exitcode for f in failures.values()), default=1)
        return worst if worst > 0 else 1, messages[rank]
    rank, f = min(failures.items())
    return max(f.exitcode, 1), (f"xpnet: error: rank {rank} of {_world(failed)} exited with "
                                f"status {f.exitcode}")


def _world(failed: ChildFailedError) -> str:
    return os.environ.get("WORLD_SIZE") or str(max(failed.failures) + 1)
