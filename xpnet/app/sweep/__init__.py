"""``xpnet sweep``: hyperparameter search with Optuna, trials run locally or on Dask.

The package, one job a module: ``space`` (what is searched), ``study`` (the
Optuna side: storage, samplers, pruners, trial records), ``folder`` (the
sweep folder and its lock), ``executors`` (where trials run), ``worker`` (one
trial in a worker process), ``driver`` (asks, submits, records, recovers) and
``report`` (the table and plots); this module is the command's engine.

:func:`run` checks a new sweep (search space, settings, the trials' training
options) before anything is written, creates the sweep folder
(:mod:`xpnet.app.sweep.folder`) and the Optuna study, and hands them to the
driver (:mod:`xpnet.app.sweep.driver`); :func:`resume` continues a sweep
after a crash or Ctrl-C; :func:`show` prints the table of trials and writes
the plots. ``xpnet.sweep`` re-exports them for use from Python.

With one worker and a fixed seed a sweep is deterministic: the same
parameters and the same accuracies every time (see :mod:`xpnet.app.sweep.study`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from ..._ops import checks
from ..._version import __version__
from ...backend import BACKEND_NAMES, get_backend
from ...errors import DataError, InputError, SweepError
from ..devices import explicit_device, gpu_worker_device
from .driver import Driver, SweepResult, best_of, trial_options
from .executors import check_executor, make_executor
from .folder import SPEC, SweepFolder
from .report import best_first, format_table, write_plots
from .space import SEARCHABLE, Choices, FloatRange, IntRange, SearchSpace, format_value
from .study import (
    PRUNERS,
    SAMPLERS,
    TrialRecord,
    make_pruner,
    open_storage,
    records,
    require_optuna,
)

__all__ = ["Choices", "FloatRange", "IntRange", "SweepResult", "TrialRecord", "resume", "run",
           "show"]

#: Options a sweep sets itself for each trial.
_PER_TRIAL = ("seed", "run_dir", "resume", "quiet")


# ---------------------------------------------------------------------------
# Checking a new sweep


def _known_options() -> set[str]:
    from ..train import resolve_options

    return set(resolve_options({"seed": 0, "data_dir": ".", "backend": "numpy"}))


def _fixed_options(options: Mapping[str, Any] | None, space: SearchSpace,
                   epochs: int | None, gpus: Sequence[str], local: bool = True
                   ) -> dict[str, Any]:
    """The training options every trial shares.

    ``local``: the trials run on this machine, so their backend and device are
    checked here (BackendError before anything is written); a Dask cluster's
    workers may have devices this machine lacks.
    """
    fixed = {k: v for k, v in dict(options or {}).items() if v is not None}
    for key in _PER_TRIAL:
        if key in fixed:
            raise InputError(f"{key} is set by the sweep for each trial (the training seed "
                             "comes from the sweep's --seed and the trial's number)")
    unknown = sorted(set(fixed) - _known_options())
    if unknown:
        raise InputError(f"unknown training option(s) {', '.join(unknown)}")
    for key, value in space.fixed.items():
        if key in fixed and fixed[key] != value:
            raise InputError(f"{SEARCHABLE[key].flag} is given twice")
        fixed[key] = value
    if epochs is not None:
        fixed["epochs"] = checks.positive_int(epochs, "--epochs")
    if not fixed.get("backend"):
        fixed["backend"] = os.environ.get("XPNET_BACKEND") or ("auto" if gpus else "numpy")
    if fixed["backend"] not in (*BACKEND_NAMES, "auto"):
        raise InputError(f"unknown backend {fixed['backend']!r}; choose one of "
                         f"{', '.join(BACKEND_NAMES)} or auto")
    device = fixed.get("device")
    fixed["device"] = gpu_worker_device(device) if gpus else explicit_device(device)
    if local:
        get_backend(fixed["backend"], fixed["device"])  # now, not once per trial
    return fixed


def _check_space(fixed: Mapping[str, Any], space: SearchSpace) -> None:
    """Every end of every range (and every choice) must be a valid training option."""
    for key, corner in space.corners():
        try:
            trial_options(fixed, corner, 0)
        except InputError as err:
            if key is None:
                raise
            raise InputError(f"{SEARCHABLE[key].flag} {space.describe(key)} reaches "
                             f"{format_value(key, corner[key])}, which xpnet train rejects: "
                             f"{err}") from None


def _resolve_dataset(fixed: dict[str, Any], progress: bool, err: TextIO) -> None:
    """Settle ``--dataset auto`` once, in the driver (and fetch CIFAR-10 once)."""
    from ... import data_utils
    from .. import data

    name = fixed.get("dataset") or "auto"
    if name == "digits":
        fixed["dataset"] = name
        return
    try:
        data_utils.find_or_fetch_cifar10(fixed.get("data_dir"),
                                         download=fixed.get("download", True),
                                         progress=progress, timeout=data.DOWNLOAD_TIMEOUT)
        fixed["dataset"] = "cifar10"
    except DataError as error:
        if name == "cifar10":
            raise
        fixed["dataset"] = "digits"
        print(f"xpnet: CIFAR-10 is not available ({str(error).rstrip('.')}); the trials train "
              "on scikit-learn's handwritten digits instead", file=err, flush=True)


# ---------------------------------------------------------------------------
# The entry points


def _refuse_in_worker_startup() -> None:
    """A spawned worker re-runs the main script: starting a sweep there is a mistake."""
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):  # as Python checks
        raise RuntimeError("xpnet.sweep was called while a worker process imported the main "
                           "script; start the sweep under if __name__ == '__main__':")


def run(space: Mapping[str, Any], *, n_trials: int | None = None, workers: int | None = None,
        sweep_dir: str | os.PathLike | None = None, executor: Any = "local",
        epochs: int | None = None, options: Mapping[str, Any] | None = None,
        sampler: str = "tpe", pruner: Any = "median", seed: int = 0,
        gpus: str | Sequence[int | str] | None = None, per_gpu: int = 1,
        storage: str | None = None, quiet: bool = False, out: TextIO | None = None,
        err: TextIO | None = None, argv: Sequence[str] | None = None) -> SweepResult:
    """Search hyperparameters: train ``n_trials`` runs, ``workers`` at a time.

    Parameters
    ----------
    space : mapping
        Training option (``learning_rate`` or ``lr``, ``reg``, ``hidden``,
        ``keep_ratio``, ...) to its values: ``"1e-4:1e-1:log"``, ``(1e-4, 1e-1,
        "log")``, a list to choose from (``["100", "512x256"]``), or one value.
    n_trials : int
        How many trials (default for ``sampler="grid"``: the grid's size).
    workers : int, optional
        Trials at once (default 1; with ``gpus``, one per device slot).
    sweep_dir : path, optional
        A new folder for the sweep (default ``runs/sweep-<timestamp>``).
    executor : {'local', 'dask', 'dask://HOST:PORT'} or concurrent.futures.Executor
    epochs : int, optional
        Epochs per trial (default: the preset's).
    options : mapping, optional
        Other training options every trial shares (``dataset``, ``num_train``,
        ``model``, ``batch_size``, ``backend``, ``device``, ...).
    sampler : {'tpe', 'random', 'grid'}
    pruner : {'median', 'hyperband', 'none'} or an Optuna pruner
    seed : int
        Seeds the sampler and every trial's training.
    gpus, per_gpu
        Device ids (``"0,1"``) and workers per device, for the local executor;
        each worker trains on its own GPU (``device`` defaults to ``cuda``).
    storage : str, optional
        An Optuna database URL (default: a journal file in the sweep folder).
    quiet : bool
        No progress bar.
    out, err : text streams
        For the per-trial lines and the summary, and for notices.
    argv : list of str, optional
        The command line, recorded in ``sweep.json``.

    Returns
    -------
    SweepResult

    Raises
    ------
    InputError, SweepError, BackendError
        For a bad space or setting (before anything is written), a folder that
        holds a sweep, or an error that stops every trial.
    KeyboardInterrupt
        After Ctrl-C, once the running trials have saved their checkpoints.
    """
    _refuse_in_worker_startup()
    out, err = out or sys.stdout, err or sys.stderr
    require_optuna()
    parsed = SearchSpace.parse(space)
    n_trials = _checked_settings(parsed, n_trials, workers, sampler, pruner, seed)
    gpu_ids = check_executor(executor, workers, gpus, per_gpu)
    fixed = _fixed_options(options, parsed, epochs, gpu_ids, local=executor == "local")
    _check_space(fixed, parsed)
    _resolve_dataset(fixed, progress=not quiet and err.isatty(), err=err)
    fixed.setdefault("epochs", trial_options(fixed, {}, 0)["epochs"])
    spec = {
        "xpnet_version": __version__, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "argv": list(argv or []), "storage": storage, "n_trials": n_trials,
        "space": parsed.to_json(), "options": fixed, "sampler": sampler,
        "pruner": pruner if isinstance(pruner, str) else "custom", "seed": seed,
        "executor": executor if isinstance(executor, str) else "custom",
        "gpus": ",".join(gpu_ids) or None, "per_gpu": per_gpu,
    }
    return _start(sweep_dir, spec, parsed, make_pruner(pruner, fixed["epochs"]), executor,
                  workers, gpu_ids, quiet, out, err)


def _checked_settings(space: SearchSpace, n_trials: int | None, workers: int | None,
                      sampler: str, pruner: Any, seed: int) -> int:
    """Check a new sweep's settings; the number of trials."""
    if not space.dimensions:
        raise InputError("nothing to search: give at least one option several values or a "
                         "range, such as --lr 1e-4:1e-1:log")
    checks.choice(sampler, SAMPLERS, "sampler")
    if isinstance(pruner, str):
        checks.choice(pruner, PRUNERS, "pruner")
    checks.nonnegative_int(seed, "--seed")
    if n_trials is None:
        if sampler != "grid":
            raise InputError("--trials N is needed: how many trials to run")
        n_trials = space.grid_size()
    _check_trials(checks.positive_int(n_trials, "--trials"), sampler, space)
    if workers is not None:
        checks.positive_int(workers, "--workers")
    return n_trials


def _check_trials(n_trials: int, sampler: str, space: SearchSpace) -> None:
    if sampler == "grid" and n_trials > space.grid_size():
        raise InputError(f"--trials {n_trials} is more than the {space.grid_size()} points "
                         "of the grid")


def _start(sweep_dir: str | os.PathLike | None, spec: dict[str, Any], space: SearchSpace,
           pruner: Any, executor: Any, workers: int | None, gpu_ids: list[str], quiet: bool,
           out: TextIO, err: TextIO) -> SweepResult:
    """Create the sweep's folder and study, then drive it (the folder goes if that fails)."""
    optuna = require_optuna()
    folder = SweepFolder.create(sweep_dir)
    try:
        with folder.lock() as session:
            if (folder.path / SPEC).exists():
                raise SweepError(f"{folder.path} already holds a sweep; continue it with "
                                 f"xpnet sweep --resume {folder.path}")
            pool = make_executor(executor, workers, gpu_ids, spec["per_gpu"])
            try:
                spec["study_name"] = f"{folder.path.name}-{session[:8]}"
                study = optuna.create_study(study_name=spec["study_name"], direction="maximize",
                                            storage=open_storage(spec["storage"], folder.journal),
                                            pruner=pruner)
                return _drive(folder, spec, study, space, pruner, pool, session, quiet, out, err)
            finally:
                pool.shutdown(kill=True)
    finally:
        folder.discard_if_unused()


def _drive(folder: SweepFolder, spec: dict[str, Any], study: Any, space: SearchSpace,
           pruner: Any, pool: Any, session: str, quiet: bool, out: TextIO, err: TextIO
           ) -> SweepResult:
    """Record the settings in ``sweep.json``, then run the trials to the end."""
    spec["workers"] = pool.workers
    folder.write_spec(spec)
    return Driver(folder, spec, study, space, pruner, pool, session, quiet, out, err).run()


def resume(sweep_dir: str | os.PathLike, *, n_trials: int | None = None,
           workers: int | None = None, executor: Any = None,
           gpus: str | Sequence[int | str] | None = None, per_gpu: int | None = None,
           pruner: Any = None, quiet: bool = False, out: TextIO | None = None,
           err: TextIO | None = None) -> SweepResult:
    """Continue the sweep in ``sweep_dir``: running trials first, then the rest.

    ``n_trials`` (more trials), ``workers``, ``executor``, ``gpus`` and
    ``per_gpu`` may change; ``pruner`` must be given again when the sweep
    was started with a pruner object. Raises as :func:`run`.
    """
    _refuse_in_worker_startup()
    out, err = out or sys.stdout, err or sys.stderr
    optuna = require_optuna()
    folder = SweepFolder.open(sweep_dir)
    spec = folder.read_spec()
    changes = {"n_trials": n_trials, "workers": workers, "executor": executor,
               "per_gpu": per_gpu}
    spec.update({k: v for k, v in changes.items() if v is not None})
    if gpus is not None:
        spec["gpus"] = gpus if isinstance(gpus, str) else ",".join(map(str, gpus))
    space = SearchSpace.from_json(spec["space"])
    _check_trials(checks.positive_int(spec["n_trials"], "--trials"), spec["sampler"], space)
    checks.positive_int(spec["workers"], "--workers")
    if spec["pruner"] == "custom" and pruner is None:
        raise SweepError(f"{folder.path} was started with a pruner object; pass it again: "
                         "xpnet.sweep.resume(..., pruner=...)")
    if spec["executor"] == "custom" and executor is None:
        raise SweepError(f"{folder.path} was started with an executor object; pass one "
                         "again, or executor='local'")
    executor = executor if executor is not None else spec["executor"]
    gpu_ids = check_executor(executor, spec["workers"], spec["gpus"], spec["per_gpu"])
    with folder.lock() as session:
        pruner_obj = make_pruner(pruner or spec["pruner"], spec["options"]["epochs"])
        study = optuna.load_study(study_name=spec["study_name"], pruner=pruner_obj,
                                  storage=open_storage(spec["storage"], folder.journal))
        existing = len(study.get_trials(deepcopy=False))
        if spec["n_trials"] < existing:
            raise SweepError(f"--trials {spec['n_trials']} is fewer than the {existing} trials "
                             f"{folder.path} already has")
        pool = make_executor(executor, spec["workers"], gpu_ids, spec["per_gpu"])
        try:
            if isinstance(executor, str):
                spec["executor"] = executor
            return _drive(folder, spec, study, space, pruner_obj, pool, session, quiet, out, err)
        finally:
            pool.shutdown(kill=True)


def show(sweep_dir: str | os.PathLike, *, top: int | None = None,
         out: TextIO | None = None) -> list[TrialRecord]:
    """Print the sweep's trials (best first) and write its plots; the trials, best first."""
    out = out or sys.stdout
    optuna = require_optuna()
    folder = SweepFolder.open(sweep_dir)
    spec = folder.read_spec()
    study = optuna.load_study(study_name=spec["study_name"],
                              storage=open_storage(spec["storage"], folder.journal))
    space = SearchSpace.from_json(spec["space"])
    trials = records(study, space)
    counts: dict[str, int] = {}
    for record in trials:
        counts[record.state] = counts.get(record.state, 0) + 1
    states = ", ".join(f"{n} {state}" for state, n in counts.items())
    print(f"sweep {folder.path}: {len(trials)} of {spec['n_trials']} trials "
          f"({states or 'none yet'})", file=out)
    best = best_of(folder, trials)
    if best.best_trial is not None:
        print(f"best: trial {best.best_trial}, val acc {best.best_value:.4f}, in "
              f"{best.best_run}", file=out)
    print(format_table(trials, space, top=top), file=out)
    plots = write_plots(trials, space, folder.path)
    if plots:
        print(f"plots: {', '.join(str(p) for p in plots)}", file=out)
    out.flush()
    return best_first(trials)
