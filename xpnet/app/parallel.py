"""``xpnet train`` on several ranks: ``--nproc N`` here, or ``torchrun ... -m xpnet train``.

:func:`launch` starts the N local ranks through torchrun's launcher
(:mod:`xpnet.distributed.launch`); in each rank :func:`join` forms the process
group from the launcher's environment. Rank 0 runs the ordinary command (it
alone writes the run folder, progress and plots); the other ranks run
:func:`follow`: the same data, model and Solver, the same collectives, and no
output and no file. The ranks' one-line errors go to the launcher
(:func:`report`), which prints one line for the run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from .. import distributed
from ..errors import InputError, RunError

__all__ = ["follow", "join", "launch", "rank_backend", "report", "share_data", "strip_nproc"]


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc N`` (the ranks run the rest)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``xpnet *argv`` (without ``--nproc``) as ``nproc`` local ranks; the exit status."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise InputError(f"--nproc must be a positive integer, got {nproc!r}")
    if distributed.launched():
        raise InputError("--nproc starts its own ranks; under torchrun leave it out")
    from ..distributed.launch import run_local

    return run_local(nproc, strip_nproc(argv))


def rank_backend(backend: Any) -> Any:
    """Each rank of a GPU run on its own GPU of the machine: ``cuda:LOCAL_RANK``."""
    if not distributed.launched() or "cuda" not in str(backend.device).lower():
        return backend
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local == 0:
        return backend
    from ..backend import get_backend

    return get_backend(backend.name, f"cuda:{local}")


def join(backend: Any) -> Any:
    """This rank's communicator when a launcher started the command, else None."""
    if not distributed.launched():
        return None
    device = getattr(backend, "device", None)
    return distributed.init(device=device if "cuda" in str(device).lower() else None)


def share_data(comm: Any, source: dict[str, Any]) -> None:
    """Rank 0: the data set it loaded, for the other ranks to load (:func:`follow`)."""
    if comm is not None:
        comm.publish("data-source", json.dumps(source))


def report(line: str) -> bool:
    """Record a rank's one-line error for its launcher; True when the launcher
    (``xpnet train --nproc``) prints it, so the rank need not."""
    if not distributed.launched():
        return False
    from ..distributed.launch import LAUNCHED_BY_XPNET, record_error

    record_error(line)
    return bool(os.environ.get(LAUNCHED_BY_XPNET))


def follow(comm: Any, options: dict[str, Any], resume: str | None, backend: Any) -> Any:
    """A rank other than 0: train with rank 0, write nothing, print nothing."""
    from . import train as command
    from .runs import RunFolder

    # the data set rank 0 loaded (and downloaded, where it had to), from disk
    source = json.loads(comm.receive("data-source"))
    dataset = command._load_data({**options, "download": False}, source, progress=False)
    model = command.build_model(options, dataset.image_shape, command.NUM_CLASSES, backend)
    solver = command._make_solver(model, dataset.data, options, None, None, comm)
    if resume is not None:
        latest = RunFolder.open(resume).latest_checkpoint()
        if latest is not None:
            try:
                solver.load_checkpoint(str(latest))
            except Exception as error:
                raise RunError(f"cannot resume {resume}: {error}") from None
    try:
        solver.train()
    except KeyboardInterrupt:
        return command.TrainResult(None, "interrupted", solver.iteration,  # type: ignore
                                   solver.num_iterations)
    test_acc = solver.check_accuracy(dataset.data["X_test"], dataset.data["y_test"])
    return command.TrainResult(None, "follower", solver.iteration,  # type: ignore[arg-type]
                               solver.num_iterations, test_acc=test_acc)

