"""``xpnet train``: train a FullyConnectedNet into a run folder, or resume one.

:func:`resolve_options` turns a preset and the options given on the command
line (or a resumed run's saved options) into the complete option set;
:func:`train` loads the data, builds the model and the
:class:`~xpnet.solver.Solver`, trains with a progress bar and one line per
epoch, and writes the run folder (see :mod:`xpnet.runs`).

Reproducibility: the model's initial weights come from ``seed``; minibatches,
dropout masks and accuracy subsamples come from the backend's random
stream seeded with ``seed`` and saved in every checkpoint, so a resumed run
ends with the same weights as an uninterrupted one on the same backend.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from .. import checkpoint, optim, schedules
from .._ops import checks
from .._version import __version__
from ..airbench import airbench_muon_solver_options, airbench_solver_options, prepare
from ..augment import RandomCropFlip
from ..backend import get_backend, to_numpy
from ..data_utils import default_data_dir
from ..errors import CheckpointError, InputError, RunError, TrainingDivergedError
from ..solver import Solver
from ..tta import TTA_LEVELS
from . import data as datasets
from . import parallel
from .devices import device_label, explicit_device
from .models import MODEL_OPTIONS, build_model, describe_model, model_spec
from .presets import TRAINING_OPTIONS, preset_options
from .runs import CURVES, RESULT, WEIGHTS, RunFolder

__all__ = [
    "RESUMABLE_OPTIONS",
    "StopTraining",
    "TrainResult",
    "resolve_options",
    "train",
    "validate_options",
]

#: Options a resumed run may change; every other one must match the saved run.
RESUMABLE_OPTIONS = ("epochs", "backend", "device", "data_dir", "download", "quiet")
#: Options that are not part of the saved configuration of a run.
_NOT_SAVED = ("quiet", "run_dir", "resume", "nproc", "sync_batchnorm")
_FLAGS = {
    "model": "--model", "num_filters": "--filters", "filter_size": "--filter-size",
    "width": "--width", "label_smoothing": "--label-smoothing", "weight_decay": "--weight-decay",
    "test_time_flip": "--test-time-flip", "schedule": "--schedule", "warmup": "--warmup",
    "hidden": "--hidden", "normalization": "--normalization", "keep_ratio": "--keep-ratio",
    "update_rule": "--update-rule", "learning_rate": "--lr", "lr_decay": "--lr-decay",
    "reg": "--reg", "weight_scale": "--weight-scale", "epochs": "--epochs",
    "batch_size": "--batch-size", "seed": "--seed", "preset": "--preset",
    "dataset": "--dataset", "data_dir": "--data-dir", "num_train": "--num-train",
    "num_val": "--num-val", "num_test": "--num-test", "download": "--download",
    "backend": "--backend", "device": "--device", "param_groups": "--param-group",
}
_NUM_TRAIN_ACC_SAMPLES = 1000
#: Both data sets (CIFAR-10 and digits) have ten classes.
NUM_CLASSES = 10
#: ``recipe`` values: None (the options' own rule and schedule) or a named recipe
RECIPES = (None, "airbench", "airbench-muon")


# ---------------------------------------------------------------------------
# Options


def _flag(key: str) -> str:
    return _FLAGS.get(key, "--" + key.replace("_", "-"))


def _show(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def resolve_options(explicit: dict[str, Any], saved: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """The complete options of a run.

    Parameters
    ----------
    explicit : dict
        Options given on the command line (absent or None: not given).
    saved : dict, optional
        The ``args`` of a run being resumed.

    Returns
    -------
    dict
        For a new run: the preset's values overridden by ``explicit``, with
        ``seed`` drawn at random when not given. For a resumed run: ``saved``
        with the :data:`RESUMABLE_OPTIONS` of ``explicit`` applied.

    Raises
    ------
    RunError
        When resuming with an option that differs from the saved run.
    InputError
        For an unknown preset.
    """
    given = {k: v for k, v in explicit.items() if v is not None}
    if saved is not None:
        options = dict(saved)
        for key, value in given.items():
            if key in RESUMABLE_OPTIONS or key in _NOT_SAVED:
                options[key] = value
            elif key in options and options[key] != value:
                raise RunError(
                    f"{_flag(key)} {_show(value)} does not match the run being resumed, which "
                    f"used {_flag(key)} {_show(options[key])}; a resumed run keeps its "
                    f"architecture and settings (only --epochs, --backend, --device, "
                    f"--data-dir, --no-download may change)")
        options.setdefault("model", "fc")  # runs of xpnet 0.1 knew no other model
        options.setdefault("device", None)  # ... nor devices
        for key in MODEL_OPTIONS:
            options.setdefault(key, None)
        for key, value in TRAINING_OPTIONS.items():  # ... nor the recipe's options
            options.setdefault(key, value)
        return options
    model = given.get("model")
    preset = given.get("preset") or model_spec(model or "fc").preset
    options = preset_options(preset)
    if model is not None and options["model"] != model:
        raise InputError(f"--preset {preset} is for --model {options['model']}, not --model "
                         f"{model}; leave one of them out")
    spec = model_spec(options["model"])
    foreign = [k for k in MODEL_OPTIONS if k not in spec.options and k in given]
    if foreign:
        raise InputError(f"{', '.join(_flag(k) for k in foreign)} does not apply to --model "
                         f"{spec.name} (which takes {', '.join(_flag(k) for k in spec.options)})")
    options.update({key: None for key in MODEL_OPTIONS if key not in options})
    options.update({"preset": preset, "dataset": "auto", "data_dir": None,
                    "num_train": None, "num_val": None, "num_test": None, "download": True,
                    "backend": None, "device": None, "seed": None})
    options.update(given)
    if options["seed"] is None:
        options["seed"] = secrets.randbelow(2**31)
    if options["data_dir"] is None:
        options["data_dir"] = str(default_data_dir())
    if options["backend"] is None:
        options["backend"] = os.environ.get("XPNET_BACKEND") or "auto"
    options["device"] = explicit_device(options["device"])
    return options


def validate_options(options: dict[str, Any]) -> None:
    """Check the training options before anything is loaded or written.

    Raises
    ------
    InputError
        With a one-line message naming the option.
    """
    model_spec(options["model"]).validate(options)
    for key in ("epochs", "batch_size"):
        checks.positive_int(options[key], _flag(key))
    checks.choice(options["update_rule"], tuple(optim.UPDATE_RULES), "update rule")
    _validate_recipe(options)
    checks.choice(options.get("recipe"), RECIPES, "recipe")
    checks.choice(options.get("test_time_augment", 0), TTA_LEVELS, "--test-time-augment")
    param_groups(options)
    for key in ("learning_rate", "weight_scale", "lr_decay"):
        checks.positive_number(options[key], _flag(key))
    checks.nonnegative_number(options["reg"], "--reg")
    checks.nonnegative_int(options["seed"], "--seed")
    checks.choice(options["dataset"], datasets.DATASETS, "data set")
    for key in ("num_train", "num_val", "num_test"):
        if options[key] is not None:
            checks.positive_int(options[key], _flag(key))


def _validate_recipe(options: dict[str, Any]) -> None:
    """The recipe's options: schedule, momentum, weight decay, smoothing."""
    rule = options["update_rule"]
    checks.choice(options["schedule"], ("none", *schedules.SCHEDULES), "schedule")
    if options["schedule"] == "piecewise":
        raise InputError("--schedule piecewise needs its points: use it from Python "
                         "(xpnet.schedules.PiecewiseLinear)")
    warmup = options["warmup"]
    if isinstance(warmup, bool) or not isinstance(warmup, int | float) or not 0 <= warmup < 1:
        raise InputError(f"--warmup is a fraction of the run in [0, 1), got {warmup!r}")
    if options["nesterov"] and rule != "sgd_momentum":
        raise InputError(f"--nesterov needs --update-rule sgd_momentum, not {rule}")
    checks.nonnegative_number(options["weight_decay"], "--weight-decay")
    momentum = options["momentum"]
    if isinstance(momentum, bool) or not isinstance(momentum, int | float) \
            or not 0 <= momentum < 1:
        raise InputError(f"--momentum must lie in [0, 1), got {momentum!r}")
    smoothing = options["label_smoothing"]
    if isinstance(smoothing, bool) or not isinstance(smoothing, int | float) \
            or not 0 <= smoothing < 1:
        raise InputError(f"--label-smoothing must lie in [0, 1), got {smoothing!r}")


#: --param-group keys and the optim_config entries they set
_GROUP_KEYS = {"lr": "learning_rate", "learning_rate": "learning_rate",
               "weight_decay": "weight_decay", "momentum": "momentum",
               "update_rule": "update_rule"}


def param_groups(options: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The Solver's ``param_groups`` from ``--param-group PATTERN KEY=VALUE ...`` (None:
    no groups); InputError for a malformed one."""
    groups = []
    for spec in options.get("param_groups") or []:
        if not isinstance(spec, list) or len(spec) < 2:
            raise InputError(f"--param-group needs a pattern and KEY=VALUE settings, got "
                             f"{spec!r}")
        group: dict[str, Any] = {"params": str(spec[0])}
        for item in spec[1:]:
            key, sep, value = str(item).partition("=")
            if not sep or key not in _GROUP_KEYS:
                raise InputError(f"--param-group {spec[0]}: {item!r} is not KEY=VALUE with "
                                 f"KEY one of {', '.join(_GROUP_KEYS)}")
            if key == "update_rule":
                optim.get_update_rule(value)
                group["update_rule"] = value
                continue
            try:
                group[_GROUP_KEYS[key]] = float(value)
            except ValueError:
                raise InputError(f"--param-group {spec[0]}: {key} must be a number, got "
                                 f"{value!r}") from None
        groups.append(group)
    return groups or None


def optim_config(options: dict[str, Any]) -> dict[str, Any]:
    """The update rule's hyperparameters from the options."""
    config: dict[str, Any] = {"learning_rate": float(options["learning_rate"])}
    if options["update_rule"] == "sgd_momentum":
        config["momentum"] = float(options["momentum"])
        if options["nesterov"]:
            config["nesterov"] = True
    if options["weight_decay"]:
        config["weight_decay"] = float(options["weight_decay"])
    return config


# ---------------------------------------------------------------------------
# Model and solver


class StopTraining(Exception):  # noqa: N818 (a signal to stop, not an error)
    """Raised by an ``on_epoch`` hook of :func:`train` to end the run after an epoch.

    It propagates out of :func:`train` after the run's ``history.json`` records
    ``status`` (None leaves the history as it was). A hyperparameter sweep prunes
    a trial this way.
    """

    def __init__(self, message: str = "", status: str | None = "stopped") -> None:
        super().__init__(message)
        self.status = status


@dataclass
class TrainResult:
    """What a finished (or interrupted) run reports."""

    run: RunFolder
    status: str  # 'complete' or 'interrupted'
    iteration: int
    num_iterations: int
    test_acc: float | None = None
    best_val_acc: float | None = None
    seconds_per_epoch: float | None = None
    checkpoint: str | None = None


class _Monitor:
    """The Solver callback: progress bar, epoch lines, best model, history, pruning."""

    def __init__(self, run: RunFolder, model: Any, history: dict[str, Any], show_bar: bool,
                 out: TextIO, err: TextIO,
                 on_epoch: Callable[[int, float], None] | None = None) -> None:
        self.run = run
        self.on_epoch = on_epoch
        self.err = err
        self.model = model
        self.history = history
        self.show_bar = show_bar
        self.out = out
        self.bar: Any = None
        self.best_seen: Any = None
        self.t_last = time.perf_counter()
        self.epoch_start_iteration = 0

    def start(self, solver: Solver) -> None:
        self.best_seen = solver.best_params if solver.best_params else None
        self.t_last = time.perf_counter()
        self.epoch_start_iteration = solver.iteration

    def __call__(self, solver: Solver, event: str) -> None:
        if event == "epoch":
            if solver.best_params and solver.best_params is not self.best_seen:
                self._save_best(solver)
            return
        ipe = solver.iterations_per_epoch
        if self.show_bar:
            if self.bar is None:
                from tqdm import tqdm

                done = (solver.iteration - 1) % ipe  # steps of this epoch before this one
                epoch = solver.epoch if solver.iteration % ipe == 0 else solver.epoch + 1
                self.bar = tqdm(total=ipe, initial=done, leave=False, file=self.err,
                                desc=f"epoch {epoch}/{solver.num_epochs}", unit="it",
                                dynamic_ncols=True)
            self.bar.update(1)
        if solver.iteration % ipe == 0:
            self._end_epoch(solver)

    def _save_best(self, solver: Solver) -> None:
        self.best_seen = solver.best_params
        info = {
            "epoch": solver.epoch, "iteration": solver.iteration,
            "val_acc": solver.val_acc_history[-1] if solver.val_acc_history else None,
            "input_shape": self.history["input_shape"],
        }
        arrays = {f"params/{k}": to_numpy(v) for k, v in solver.best_params.items()}
        arrays.update({f"buffers/{k}": to_numpy(v) for k, v in solver.best_buffers.items()})
        # the model's config now: parameters may have been frozen since the start
        self.run.save_model(arrays, checkpoint.model_meta(solver.model), info)
        self.history["best_epoch"] = solver.epoch

    def _end_epoch(self, solver: Solver) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        now = time.perf_counter()
        self.history["train_seconds"] += now - self.t_last
        self.history["timed_iterations"] += solver.iteration - self.epoch_start_iteration
        self.t_last, self.epoch_start_iteration = now, solver.iteration
        ipe = solver.iterations_per_epoch
        losses = solver.loss_history[-ipe:]
        seconds = self.history["train_seconds"] / self.history["timed_iterations"] * ipe
        print(f"epoch {solver.epoch}/{solver.num_epochs}: loss {sum(losses) / len(losses):.4f}, "
              f"train acc {solver.train_acc_history[-1]:.4f}, val acc "
              f"{solver.val_acc_history[-1]:.4f} ({seconds:.1f} s/epoch)",
              file=self.out, flush=True)
        self.run.prune_epoch_checkpoints(keep=1)
        self.run.write_history(_history(solver, self.history, "running"))
        if self.on_epoch is not None:  # after the epoch's checkpoint and history are saved
            self.on_epoch(solver.epoch, solver.val_acc_history[-1])

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _history(solver: Solver, extra: dict[str, Any], status: str) -> dict[str, Any]:
    ipe = solver.iterations_per_epoch
    timed = extra["timed_iterations"]
    return {
        "status": status,
        "epoch": solver.epoch,
        "iteration": solver.iteration,
        "num_iterations": solver.num_iterations,
        "iterations_per_epoch": ipe,
        "best_val_acc": solver.best_val_acc,
        "best_epoch": extra.get("best_epoch"),
        "test_acc": extra.get("test_acc"),
        "seconds_per_epoch": extra["train_seconds"] / timed * ipe if timed else None,
        "train_seconds": extra["train_seconds"],
        "timed_iterations": timed,
        "loss_history": solver.loss_history,
        "train_acc_history": solver.train_acc_history,
        "val_acc_history": solver.val_acc_history,
    }


# ---------------------------------------------------------------------------
# The command


def _resumed_device(explicit: dict[str, Any], backend: str, saved: dict[str, Any]
                    ) -> str | None:
    """A resumed run's device: ``--device``, else ``$XPNET_DEVICE``, else the one it ran on
    (when it stays on the same backend), else the backend's default."""
    given = explicit_device(explicit.get("device"))
    if given is not None:
        return given
    return saved.get("device") if backend == saved.get("backend") else None


def _load_data(options: dict[str, Any], saved_source: dict[str, Any] | None,
               progress: bool) -> datasets.Dataset:
    sizes = (options["num_train"], options["num_val"], options["num_test"])
    if saved_source is not None:
        name = saved_source["name"]
        sizes = (saved_source["num_train"], saved_source["num_val"], saved_source["num_test"])
    else:
        name = options["dataset"]
    return datasets.load_dataset(name, options["data_dir"], download=options["download"],
                                 sizes=sizes, progress=progress)


def _describe(options: dict[str, Any], dataset: datasets.Dataset, backend: Any) -> str:
    src = dataset.source
    recipe = [name for name, on in (
        ("nesterov", options["nesterov"]), (f"schedule {options['schedule']}",
                                            options["schedule"] != "none"),
        ("augmented", options["augment"]), (f"smoothing {options['label_smoothing']:g}",
                                             options["label_smoothing"]),
        (f"weight decay {options['weight_decay']:g}", options["weight_decay"]),
        ("test-time flips", options["test_time_flip"])) if on]
    return (f"{describe_model(options)}, {options['update_rule']}"
            f"{' (' + ', '.join(recipe) + ')' if recipe else ''} lr "
            f"{options['learning_rate']:g} decay {options['lr_decay']:g}, batch "
            f"{options['batch_size']}; "
            f"{src['name']} {src['num_train']}/{src['num_val']}/{src['num_test']}; "
            f"{backend.name} backend on {device_label(backend)}; seed {options['seed']}")


def train(explicit: dict[str, Any], argv: list[str] | None = None, out: TextIO | None = None,
          err: TextIO | None = None, on_epoch: Callable[[int, float], None] | None = None
          ) -> TrainResult:
    """Run ``xpnet train`` with the options given on the command line.

    Parameters
    ----------
    explicit : dict
        The command line's options; None or absent means not given.
        ``resume`` (a run folder) continues that run; ``run_dir`` names a new one.
    argv : list of str, optional
        The command line, recorded in ``config.json``.
    out, err : text streams
        For the epoch lines and for notices (default stdout / stderr).
    on_epoch : callable, optional
        ``on_epoch(epoch, val_acc)`` at the end of every epoch, after its
        checkpoint is saved; it may raise :class:`StopTraining` to end the run.

    Returns
    -------
    TrainResult

    Raises
    ------
    RunError, DataError, CheckpointError, BackendError, ValueError
        On bad input, before anything is written where possible.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    quiet = bool(explicit.get("quiet"))
    resume = explicit.get("resume")
    run: RunFolder | None = None
    saved = None
    if resume is not None:
        run = RunFolder.open(resume)
        saved = run.read_config()
        if not isinstance(saved.get("args"), dict) or not isinstance(saved.get("data"), dict):
            raise RunError(f"{run.path / 'config.json'} is not an xpnet train configuration")
        explicit = dict(explicit)
        if explicit.get("dataset") == saved["data"].get("name"):
            explicit["dataset"] = None  # 'auto' that became this data set: the same thing
        if explicit.get("backend") is None and saved.get("backend"):
            explicit["backend"] = saved["backend"]  # the backend it ran on, not 'auto'
        options = resolve_options(explicit, saved["args"])
        options["device"] = _resumed_device(explicit, options["backend"], saved)
    else:
        options = resolve_options(explicit)
    validate_options(options)
    backend = get_backend(options["backend"], options["device"])
    backend = parallel.rank_backend(backend)
    comm = parallel.join(backend)  # one rank of several (torchrun, --nproc), else None
    if comm is not None and not comm.is_root:  # rank 0 alone writes and prints
        return parallel.follow(comm, options, resume, backend)
    show_bar = not quiet and err.isatty()

    dataset = _load_data(options, saved["data"] if saved else None, progress=show_bar)
    parallel.share_data(comm, dataset.source)  # the other ranks load the same
    if dataset.notice:
        print(f"xpnet: {dataset.notice}", file=err, flush=True)
    if run is None:
        run = RunFolder.create(options.get("run_dir"))
    try:
        return _train_in(run, options, dataset, backend, saved is not None, argv, out, err,
                         show_bar, on_epoch, comm)
    except BaseException:
        run.discard_if_empty()
        raise


def _train_in(run: RunFolder, options: dict[str, Any], dataset: datasets.Dataset, backend: Any,
              resuming: bool, argv: list[str] | None, out: TextIO, err: TextIO,
              show_bar: bool, on_epoch: Callable[[int, float], None] | None,
              comm: Any = None) -> TrainResult:
    """Build, resume and train the run's model in ``run``, then test and picture it."""
    model = build_model(options, dataset.image_shape, NUM_CLASSES, backend)
    model_meta = checkpoint.model_meta(model)
    history: dict[str, Any] = {"train_seconds": 0.0, "timed_iterations": 0, "model": model_meta,
                               "input_shape": list(dataset.image_shape)}
    monitor = _Monitor(run, model, history, show_bar, out, err, on_epoch)
    solver = _make_solver(model, dataset.data, options, run, monitor, comm)
    if resuming:
        _resume(solver, run, history, out)
    _write_config(run, options, dataset, backend, model_meta, argv, resuming)
    print(f"xpnet: {_describe(options, dataset, backend)}; run folder {run.path}",
          file=out, flush=True)
    stopped = _run_solver(solver, run, history, monitor)
    if stopped is not None:
        return stopped
    return _finish(run, model, solver, history, options, dataset, backend, err)


def _make_solver(model: Any, data: dict[str, Any], options: dict[str, Any],
                 run: RunFolder | None, monitor: _Monitor | None, comm: Any = None) -> Solver:
    """The run's Solver: the options' rule, recipe and seed, checkpoints in ``run``
    (data-parallel over ``comm``'s ranks when given)."""
    ipe = max(len(data["X_train"]) // options["batch_size"], 1)
    common = dict(num_train_samples=_NUM_TRAIN_ACC_SAMPLES, num_val_samples=None,
                  print_every=ipe,
                  checkpoint_name=run.checkpoint_name if run is not None else None,
                  verbose=False, seed=options["seed"], communicator=comm,
                  sync_batchnorm=bool(options.get("sync_batchnorm")))
    train_val = {k: data[k] for k in ("X_train", "y_train", "X_val", "y_val")}
    recipe = options.get("recipe")
    if recipe is not None:  # the speed record's recipe sets the rest
        prepare(model, data["X_train"])
        make = (airbench_solver_options if recipe == "airbench"
                else airbench_muon_solver_options)
        return Solver(model, train_val, **make(
            options["batch_size"], options["epochs"],
            tta_level=options.get("test_time_augment", 2), callback=monitor), **common)
    schedule = None if options["schedule"] == "none" else options["schedule"]
    return Solver(model, train_val,
                  update_rule=options["update_rule"], optim_config=optim_config(options),
                  lr_decay=float(options["lr_decay"]), batch_size=options["batch_size"],
                  num_epochs=options["epochs"], callback=monitor,
                  lr_schedule=schedules.get_schedule(schedule, warmup=float(options["warmup"])),
                  augment=RandomCropFlip(pad=4) if options["augment"] else None,
                  test_time_flip=bool(options["test_time_flip"]),
                  test_time_augment=options.get("test_time_augment", 0),
                  param_groups=param_groups(options), **common)


def _resume(solver: Solver, run: RunFolder, history: dict[str, Any], out: TextIO) -> None:
    """Load the run's latest checkpoint (and its timings) into ``solver``, if it has one."""
    resume_from = run.latest_checkpoint()
    if resume_from is None:
        print(f"xpnet: {run.path} has no checkpoint yet; training it from the start",
              file=out, flush=True)
        return
    try:
        solver.load_checkpoint(str(resume_from))
    except (InputError, CheckpointError) as error:
        raise RunError(f"cannot resume {run.path}: {error}") from None
    previous = run.read_history() or {}
    for key in ("train_seconds", "timed_iterations", "best_epoch"):
        if key in previous:
            history[key] = previous[key]
    print(f"xpnet: resuming {run.path} at iteration {solver.iteration}/"
          f"{solver.num_iterations} from {resume_from.name}", file=out, flush=True)


def _write_config(run: RunFolder, options: dict[str, Any], dataset: datasets.Dataset,
                  backend: Any, model_meta: dict[str, Any], argv: list[str] | None,
                  resuming: bool) -> None:
    """``config.json``: the options, backend and device, data and model; a resumed run
    keeps its first command line and adds this one."""
    saved_options = {k: v for k, v in options.items() if k not in _NOT_SAVED}
    config = {"xpnet_version": __version__, "argv": list(argv or []), "resumed_with": [],
              "args": saved_options, "backend": backend.name,
              "device": device_label(backend), "data": dataset.source,
              "model": model_meta}
    if resuming:
        previous = run.read_config()
        config["argv"] = previous.get("argv", [])
        config["resumed_with"] = [*previous.get("resumed_with", []), list(argv or [])]
    run.write_config(config)


def _run_solver(solver: Solver, run: RunFolder, history: dict[str, Any], monitor: _Monitor
                ) -> TrainResult | None:
    """Train; the result of a Ctrl-C (None when training ended), with the history written
    for every way it can stop."""
    before = _mtime(run.interrupted_checkpoint)
    monitor.start(solver)
    try:
        solver.train()
    except KeyboardInterrupt:
        monitor.close()
        saved_now = _mtime(run.interrupted_checkpoint) not in (None, before)
        if saved_now:  # a second Ctrl-C stops without saving: leave the history as it was
            run.write_history(_history(solver, history, "interrupted"))
        latest = run.latest_checkpoint()
        return TrainResult(run, "interrupted", solver.iteration, solver.num_iterations,
                           checkpoint=str(latest) if latest else None)
    except TrainingDivergedError:
        monitor.close()
        run.write_history(_history(solver, history, "diverged"))
        raise
    except StopTraining as stop:
        monitor.close()
        if stop.status is not None:
            run.write_history(_history(solver, history, stop.status))
        raise
    finally:
        monitor.close()
    return None


def _finish(run: RunFolder, model: Any, solver: Solver, history: dict[str, Any],
            options: dict[str, Any], dataset: datasets.Dataset, backend: Any, err: TextIO
            ) -> TrainResult:
    """Test the best model, exactly as saved; write ``result.json`` and the plots."""
    arrays, meta = run.load_model()
    _match_frozen(model, meta)
    checkpoint.load_state(model, arrays, source=str(run.best_model_path))
    tested = time.perf_counter()
    history["test_acc"] = solver.check_accuracy(dataset.data["X_test"], dataset.data["y_test"])
    result_history = _history(solver, history, "complete")
    run.write_history(result_history)
    run.write_json(RESULT, {
        "test_acc": history["test_acc"], "best_val_acc": solver.best_val_acc,
        "epochs": solver.epoch, "seconds": history["train_seconds"]
        + time.perf_counter() - tested, "seconds_per_epoch": result_history["seconds_per_epoch"],
        "backend": backend.name, "device": device_label(backend), "model": options["model"],
        "preset": options["preset"],
        "params_count": model.num_params(), "seed": options["seed"], "data": dataset.source})
    run.interrupted_checkpoint.unlink(missing_ok=True)
    _plot(run, result_history, _first_weights(arrays), dataset.image_shape, err)
    return TrainResult(run, "complete", solver.iteration, solver.num_iterations,
                       test_acc=history["test_acc"], best_val_acc=solver.best_val_acc,
                       seconds_per_epoch=result_history["seconds_per_epoch"])


def _match_frozen(model: Any, meta: dict[str, Any]) -> None:
    """A model whose parameters froze during training (the whitening bias of airbench)
    takes the frozen set of the saved best model, which may be of an earlier epoch."""
    config = (meta.get("model") or {}).get("config")
    if isinstance(config, dict) and hasattr(model, "set_frozen"):
        model.set_frozen(config.get("frozen") or [])


def _first_weights(arrays: dict[str, Any]) -> Any:
    """The first layer's weights: ``W1`` of the course's models, ``0.W`` of composed ones."""
    if "params/W1" in arrays:
        return arrays["params/W1"]
    # the lowest layer's W, trained or frozen (a frozen one is a buffer)
    weights = [k for k in arrays if k.startswith(("params/", "buffers/")) and k.endswith(".W")]
    return arrays[min(weights, key=lambda k: int(k.split("/")[1].split(".")[0]))]


def _mtime(path: Any) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _plot(run: RunFolder, history: dict[str, Any], W1: Any, image_shape: tuple[int, ...],
          err: TextIO) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        print('xpnet: matplotlib is not installed, so no plots were drawn; '
              'pip install "xpnet[plot]"', file=err, flush=True)
        return
    from .. import vis_utils

    vis_utils.plot_training_curves(history, run.path / CURVES)
    vis_utils.plot_first_layer_weights(W1, image_shape, run.path / WEIGHTS)
