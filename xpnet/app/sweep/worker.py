"""What runs in a sweep's worker process: one trial, as an ``xpnet train`` run.

:func:`run_trial` trains trial ``k`` into its run folder ``SWEEP/trial_000k``
with :func:`xpnet.app.train.train`. When that folder already holds a run (the
trial's previous worker died, or the driver did), it continues the run from
its latest checkpoint instead, and a run that had already finished is only
read back, so a trial never trains twice.

After every epoch (after its checkpoint is saved) the trial reports its
validation accuracy to the study and asks the pruner whether to go on; a
pruned trial stops there. A resumed trial first reports the epoch it resumes
from, whose report may have been lost with the old worker.

:func:`init_local_worker` prepares a process of the local pool: its device
slot (``CUDA_VISIBLE_DEVICES``, before any CUDA library starts), Ctrl-C only
during training (where the Solver saves a checkpoint), and a watchdog thread
that ends the process when the driver that spawned it is gone.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import TrainingDivergedError
from ...files import read_json_object
from ..runs import CONFIG, HISTORY, RESULT, RunFolder
from ..train import StopTraining
from .folder import DRIVER, JOURNAL

__all__ = [
    "TrialOutcome",
    "TrialTask",
    "init_local_worker",
    "run_trial",
]

#: Seconds between a local worker's checks that its driver is alive.
WATCH_INTERVAL = 0.25


@dataclass(frozen=True)
class TrialTask:
    """Everything a worker needs to run (or continue) one trial.

    Attributes
    ----------
    number : int
        The trial's number in the study.
    trial_id : int
        The trial's id in the study's storage.
    run_dir : str
        The trial's run folder (absolute).
    options : dict
        The options of :func:`xpnet.app.train.train` for a new run.
    sweep_dir : str
        The sweep folder (absolute).
    session : str
        The driver's session (``driver.json``); a worker whose driver was
        replaced stops at its next epoch.
    study_name, storage, pruner
        The study to report to and the pruner to ask, when pruning (storage
        None: the journal file in the sweep folder).
    attempt : int
        1 for the trial's first submission, then 2, 3, ...
    """

    number: int
    trial_id: int
    run_dir: str
    options: dict[str, Any]
    sweep_dir: str
    session: str
    study_name: str | None = None
    storage: str | None = None
    pruner: Any = None
    attempt: int = 1


@dataclass(frozen=True)
class TrialOutcome:
    """What a worker reports about a trial.

    ``status`` is ``complete``, ``pruned``, ``diverged``, ``interrupted``
    (Ctrl-C: a checkpoint was saved) or ``superseded`` (a newer driver owns
    the sweep). ``value`` is the best validation accuracy (the last one for a
    pruned trial); ``resumed_from`` the epoch this run continued from.
    """

    number: int
    status: str
    value: float | None = None
    test_acc: float | None = None
    epochs: int = 0
    seconds: float = 0.0
    resumed_from: int | None = None
    device: str | None = None
    worker: str = ""
    error: str | None = None


class _Pruned(StopTraining):  # noqa: N818
    def __init__(self, message: str = "pruned") -> None:
        super().__init__(message, status="pruned")


class _Superseded(StopTraining):  # noqa: N818
    def __init__(self, message: str = "superseded") -> None:
        super().__init__(message, status=None)  # the run now belongs to the newer driver


# ---------------------------------------------------------------------------
# The local pool's processes


def init_local_worker(parent_pid: int, slots: Any = None) -> None:
    """Prepare a process of the local pool (``ProcessPoolExecutor`` initializer).

    Parameters
    ----------
    parent_pid : int
        The driver; the process exits as soon as it is gone.
    slots : multiprocessing queue of str, optional
        Device slots; the process takes one as its ``CUDA_VISIBLE_DEVICES``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the Solver takes Ctrl-C while training
    if slots is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(slots.get(timeout=60))
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True,
                     name="xpnet-sweep-watchdog").start()


def _exit_with_parent(parent_pid: int) -> None:
    while True:
        time.sleep(WATCH_INTERVAL)
        if os.getppid() != parent_pid:  # the driver died: this process was re-parented
            os._exit(1)


# ---------------------------------------------------------------------------
# One trial


class _EpochReporter:
    """The ``on_epoch`` hook of a trial's training: the driver's lease, then pruning."""

    def __init__(self, task: TrialTask) -> None:
        self.task = task
        self.epoch = 0
        self.value: float | None = None
        self._trial: Any = None

    def __call__(self, epoch: int, val_acc: float) -> None:
        self.epoch, self.value = epoch, float(val_acc)
        holder = read_json_object(Path(self.task.sweep_dir) / DRIVER).get("session")
        if holder is not None and holder != self.task.session:
            raise _Superseded(f"trial {self.task.number}: a newer driver owns the sweep")
        self.report(epoch, val_acc)

    def report(self, epoch: int, val_acc: float) -> None:
        """Report the epoch's accuracy; raise :class:`_Pruned` when the pruner says so."""
        self.epoch, self.value = epoch, float(val_acc)
        if self.task.pruner is None:
            return
        trial = self._optuna_trial()
        with warnings.catch_warnings():  # a step reported before the worker died: ignored
            warnings.simplefilter("ignore")
            trial.report(float(val_acc), int(epoch))
        if trial.should_prune():
            raise _Pruned(f"trial {self.task.number} pruned after epoch {epoch}")

    def _optuna_trial(self) -> Any:
        if self._trial is None:
            from .study import open_storage, require_optuna

            optuna = require_optuna()
            storage = open_storage(self.task.storage, Path(self.task.sweep_dir) / JOURNAL)
            study = optuna.load_study(study_name=self.task.study_name, storage=storage,
                                      pruner=self.task.pruner,
                                      sampler=optuna.samplers.RandomSampler())
            self._trial = optuna.trial.Trial(study, self.task.trial_id)
        return self._trial


def _finished(run: Path, number: int, base: dict[str, Any]) -> TrialOutcome | None:
    """The outcome of a run that already ended (its worker or driver died after)."""
    history = read_json_object(run / HISTORY)
    status = history.get("status")
    if status == "complete" and (run / RESULT).is_file():
        result = read_json_object(run / RESULT)
        return TrialOutcome(number, "complete", result.get("best_val_acc"),
                            result.get("test_acc"), int(history.get("epoch") or 0),
                            float(result.get("seconds") or 0.0), **base)
    accs = history.get("val_acc_history") or [None]
    if status == "pruned":
        return TrialOutcome(number, "pruned", accs[-1], None, int(history.get("epoch") or 0),
                            **base)
    if status == "diverged":
        return TrialOutcome(number, "diverged", None, None, int(history.get("epoch") or 0),
                            error="the training loss diverged (see its history.json)", **base)
    return None


def _resume_point(run: Path) -> tuple[int, float | None]:
    """The epoch of the run's latest checkpoint and its validation accuracy."""
    from ... import checkpoint

    latest = RunFolder(run).latest_checkpoint()
    if latest is None:
        return 0, None
    solver = checkpoint.read(latest)[1].get("solver") or {}
    accs = solver.get("val_acc_history") or [None]
    return int(solver.get("epoch") or 0), accs[-1]


def run_trial(task: TrialTask) -> TrialOutcome:
    """Run trial ``task.number`` to its end, or continue it from its checkpoint.

    Returns
    -------
    TrialOutcome

    Raises
    ------
    XpnetError
        For what stops every trial alike (missing data, a damaged run folder,
        an unusable backend); the driver then stops the sweep.
    """
    from ..train import train  # looked up at each call (tests/faults.py wraps it)

    started = time.perf_counter()
    base = {"device": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "worker": f"{socket.gethostname()}:{os.getpid()}"}
    run = Path(task.run_dir)
    fresh = not (run / CONFIG).is_file()
    if fresh:
        if run.exists():  # an attempt that died before writing anything worth keeping
            import shutil

            shutil.rmtree(run)
    else:
        done = _finished(run, task.number, base)
        if done is not None:
            return done
        for stray in run.glob(".*.tmp"):  # half-written files of a killed attempt
            stray.unlink(missing_ok=True)
    reporter = _EpochReporter(task)
    resumed_from = None
    explicit = {**task.options, "run_dir": str(run), "quiet": True}
    sink = io.StringIO()
    try:
        if not fresh:
            explicit = {"resume": str(run), "quiet": True}
            resumed_from, val_acc = _resume_point(run)
            if resumed_from > 0 and val_acc is not None:
                reporter.report(resumed_from, val_acc)
        with np.errstate(all="ignore"):  # a diverging trial is reported, not warned about
            result = train(explicit, argv=["xpnet", "sweep", "trial", str(task.number)],
                           out=sink, err=sink, on_epoch=reporter)
    except _Pruned:
        return TrialOutcome(task.number, "pruned", reporter.value, None, reporter.epoch,
                            time.perf_counter() - started, resumed_from, **base)
    except _Superseded:
        return TrialOutcome(task.number, "superseded", None, None, reporter.epoch,
                            time.perf_counter() - started, resumed_from, **base)
    except TrainingDivergedError as err:
        return TrialOutcome(task.number, "diverged", None, None, reporter.epoch,
                            time.perf_counter() - started, resumed_from,
                            error=" ".join(str(err).split()), **base)
    seconds = time.perf_counter() - started
    if result.status == "interrupted":
        return TrialOutcome(task.number, "interrupted", None, None, reporter.epoch, seconds,
                            resumed_from, **base)
    epochs = int(read_json_object(run / HISTORY).get("epoch") or reporter.epoch)
    return TrialOutcome(task.number, "complete", result.best_val_acc, result.test_acc, epochs,
                        seconds, resumed_from, **base)
