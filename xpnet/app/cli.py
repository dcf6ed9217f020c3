"""The ``xpnet`` command: ``train``, ``sweep``, ``info`` and ``gradcheck``.

Examples
--------
::

    xpnet info
    xpnet gradcheck --backend torch
    xpnet train                                # CIFAR-10 if found, else digits
    xpnet train --preset best --data-dir ~/data
    xpnet train --hidden 100 100 --normalization layernorm --keep-ratio 0.8 --epochs 5
    xpnet train --model cnn --epochs 1          # ThreeLayerConvNet
    xpnet train --resume runs/20250101-120000  # continue after Ctrl-C
    xpnet sweep --trials 20 --workers 2 --epochs 5 --sweep-dir runs/sweep1 \
        --lr 1e-4:1e-1:log --reg 1e-6:1e-1:log --hidden 100 512x256 --keep-ratio 0.5:1
    xpnet sweep --resume runs/sweep1            # after a crash or Ctrl-C
    xpnet sweep show runs/sweep1                # the trials, best first; plots

Every :class:`~xpnet.errors.XpnetError` (bad options, data, run folders,
checkpoints, backends) and every operating-system error (a full disk, a
missing permission) ends the command with one line ``xpnet: error: ...`` on
stderr and exit status 2. A training run that diverges and a failed gradient
check exit with 1 (the command was right, the result is not), and so does a
sweep in which no trial completed; Ctrl-C during training or a sweep saves
checkpoints and exits with 130. Any other exception is a bug
in xpnet and keeps its traceback; ``--debug`` shows tracebacks for everything.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import optim
from .._version import __version__
from ..backend import BACKEND_NAMES
from ..errors import RunError, TrainingDivergedError, XpnetError
from .devices import DEVICE_HELP, device_label, explicit_device
from .models import MODELS, NORMALIZATION_CHOICES
from .presets import PRESETS
from .sweep.space import SEARCHABLE

__all__ = ["build_parser", "main"]

_BACKEND_HELP = (f"{', '.join(BACKEND_NAMES)} or auto (default: $XPNET_BACKEND, else auto)")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _UsageError(Exception):
    """A command line argparse rejected."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one line instead of usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _presets_help(key: str) -> str:
    values = []
    for name, options in PRESETS.items():
        if key not in options:
            continue
        value = options[key]
        shown = " ".join(map(str, value)) if isinstance(value, list) else value
        values.append(f"{name}: {shown}")
    return "; ".join(values)


def _add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train", help="train a model and write a run folder",
        description="Train a model (--model) on CIFAR-10 (or, offline, on scikit-learn's "
                    "handwritten digits) and write a run folder with the best model, the "
                    "configuration and history (JSON) and plots (PNG). Options left out take "
                    "the preset's value; Ctrl-C saves a checkpoint that --resume continues.")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="a set of defaults that explicit options override: "
                        + "; ".join(f"{name}: --model {options['model']}"
                                    for name, options in PRESETS.items())
                        + " (default: the model's own preset)")
    model = p.add_argument_group("model")
    model.add_argument("--model", choices=sorted(MODELS),
                       help="; ".join(f"{m.name}: {m.summary} (preset {m.preset})"
                                      for m in MODELS.values()) + " (default: the preset's, "
                            "else fc)")
    model.add_argument("--hidden", type=int, nargs="+", metavar="H",
                       help=f"hidden layer sizes ({_presets_help('hidden')})")
    model.add_argument("--filters", dest="num_filters", type=int, metavar="F",
                       help=f"cnn: number of filters ({_presets_help('num_filters')})")
    model.add_argument("--filter-size", type=int, metavar="K",
                       help=f"cnn: filter height and width ({_presets_help('filter_size')})")
    model.add_argument("--width", type=int, metavar="C",
                       help=f"convnet, resnet, airbench: channels of the first stage "
                            f"({_presets_help('width')})")
    model.add_argument("--gelu", choices=("none", "tanh"),
                       help=f"airbench: the exact GELU or its tanh form "
                            f"({_presets_help('gelu')})")
    model.add_argument("--label-smoothing", type=float, metavar="EPS",
                       help="softmax targets (1 - EPS) onehot + EPS / classes "
                            f"({_presets_help('label_smoothing')})")
    model.add_argument("--normalization", choices=NORMALIZATION_CHOICES,
                       help=f"({_presets_help('normalization')})")
    model.add_argument("--keep-ratio", "--dropout-keep-ratio", dest="keep_ratio", type=float,
                       metavar="P", help="dropout: probability of KEEPING a unit, in (0, 1]; "
                                         f"1 = no dropout ({_presets_help('keep_ratio')})")
    model.add_argument("--reg", type=float, help=f"L2 strength ({_presets_help('reg')})")
    model.add_argument("--weight-scale", type=float, metavar="STD",
                       help=f"std of the initial weights ({_presets_help('weight_scale')})")
    opt = p.add_argument_group("optimization")
    opt.add_argument("--update-rule", choices=tuple(optim.UPDATE_RULES),
                     help=f"({_presets_help('update_rule')})")
    opt.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float, metavar="LR",
                     help=f"learning rate ({_presets_help('learning_rate')})")
    opt.add_argument("--lr-decay", type=float, metavar="FACTOR",
                     help=f"learning rate factor after every epoch ({_presets_help('lr_decay')})")
    opt.add_argument("--epochs", type=int, metavar="N",
                     help=f"({_presets_help('epochs')}); with --resume, more epochs continue "
                          "a finished run")
    opt.add_argument("--batch-size", type=int, metavar="N", help=f"({_presets_help('batch_size')})")
    opt.add_argument("--momentum", type=float, metavar="MU",
                     help="sgd_momentum's momentum (default 0.9)")
    opt.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None,
                     help=f"Nesterov momentum, with sgd_momentum ({_presets_help('nesterov')})")
    opt.add_argument("--weight-decay", type=float, metavar="WD",
                     help="decoupled weight decay, w -= lr * WD * w every step, with "
                          f"every update rule ({_presets_help('weight_decay')})")
    opt.add_argument("--schedule", choices=("none", "constant", "cosine", "onecycle",
                                            "triangle"),
                     help="learning rate per iteration: cosine (after a linear warm-up) or "
                          "one-cycle (up to the peak at --warmup, then down); none: "
                          f"--lr-decay per epoch ({_presets_help('schedule')})")
    opt.add_argument("--warmup", type=float, metavar="FRACTION",
                     help="a fraction of the run: the warm-up of constant and cosine, the peak of "
                          f"onecycle (schedules.get_schedule) ({_presets_help('warmup')})")
    opt.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                     help="random crops (4 pixels of zero padding) and horizontal flips of "
                          f"every training batch ({_presets_help('augment')})")
    opt.add_argument("--test-time-flip", action=argparse.BooleanOptionalAction, default=None,
                     help="evaluate on each image and its mirror "
                          f"({_presets_help('test_time_flip')})")
    opt.add_argument("--test-time-augment", type=int, choices=(0, 1, 2), metavar="LEVEL",
                     help="evaluate on averaged views: 0 none, 1 mirror, 2 mirror and "
                          f"one-pixel translations ({_presets_help('test_time_augment')})")
    opt.add_argument("--param-group", dest="param_groups", nargs="+", action="append",
                     metavar="PATTERN KEY=VALUE",
                     help="an optim_config for the parameters whose names match PATTERN "
                          "(fnmatch), e.g. --param-group '*.beta' lr=0.64 weight_decay=0; "
                          "keys: lr, weight_decay, momentum, update_rule (repeatable; the "
                          "first match wins)"),
    opt.add_argument("--seed", type=int, metavar="N",
                     help="seed of the weights, minibatches and dropout (default: random, "
                          "recorded in config.json)")
    data = p.add_argument_group("data")
    data.add_argument("--dataset", choices=("auto", "cifar10", "digits"),
                      help="auto (default): CIFAR-10 if found or downloadable, else digits; "
                           "cifar10: CIFAR-10 or an error")
    data.add_argument("--data-dir", metavar="PATH",
                      help="where CIFAR-10 is (or is downloaded to): a folder holding "
                           "cifar-10-batches-py, that folder, or the .tar.gz (default: "
                           "$XPNET_DATA_DIR or ~/.cache/xpnet)")
    data.add_argument("--no-download", dest="download", action="store_const", const=False,
                      default=None, help="never download CIFAR-10")
    for split, default in (("train", "49000 / 1197"), ("val", "1000 / 300"),
                           ("test", "10000 / 300")):
        data.add_argument(f"--num-{split}", type=int, metavar="N",
                          help=f"{split} split size (CIFAR-10 / digits default: {default})")
    run = p.add_argument_group("run")
    run.add_argument("--run-dir", metavar="PATH",
                     help="the new run's folder (default: runs/<timestamp>)")
    run.add_argument("--resume", metavar="RUN",
                     help="continue the run in folder RUN from its latest checkpoint")
    run.add_argument("--backend", metavar="NAME", help=_BACKEND_HELP)
    run.add_argument("--device", metavar="DEVICE", help=DEVICE_HELP)
    run.add_argument("-q", "--quiet", action="store_true", default=None,
                     help="no progress bar (the epoch lines stay)")
    run.add_argument("--nproc", type=int, metavar="N",
                     help="data-parallel over N local ranks (torch.distributed; --batch-size "
                          "is the global batch); torchrun -m xpnet train for several machines")
    run.add_argument("--sync-batchnorm", action="store_true", default=None,
                     help="data-parallel: batchnorm statistics over the global batch")


#: The training options ``xpnet sweep`` passes to every trial unchanged (besides SEARCHABLE).
_SWEEP_FIXED = ("model", "preset", "epochs", "schedule", "nesterov", "augment", "test_time_flip",
                "dataset", "data_dir", "download", "num_train", "num_val", "num_test", "backend",
                "device")
#: What ``xpnet sweep --resume`` may change, by argparse dest.
_SWEEP_RESUMABLE = ("trials", "workers", "executor", "gpus", "per_gpu", "quiet")


def _add_sweep(sub: Any) -> None:
    from .sweep.study import PRUNERS, SAMPLERS

    p = sub.add_parser(
        "sweep", help="search hyperparameters with Optuna, trials in parallel (local or Dask)",
        description="Train many runs with hyperparameters chosen by Optuna, several at a time "
                    "on local processes or a Dask cluster. Each trial is an xpnet train run "
                    "folder in the sweep folder; the study is kept there too, so --resume "
                    "continues a sweep after a crash or Ctrl-C. At the end: the best trial, a "
                    "table of the top trials, and plots in the sweep folder.")
    actions = p.add_subparsers(dest="sweep_action", metavar="ACTION")
    show = actions.add_parser("show", help="print a sweep's trials, best first; write its plots",
                              description="Print the table of a sweep's trials, best first, "
                                          "and write params.png and history.png into it.")
    show.add_argument("folder", metavar="DIR", help="the sweep folder")
    show.add_argument("--top", type=int, metavar="N", help="only the N best trials")
    run = p.add_argument_group("the sweep")
    run.add_argument("--trials", type=int, metavar="N",
                     help="how many trials (with --sampler grid: the grid's size by default); "
                          "with --resume, more trials extend the sweep")
    run.add_argument("--workers", type=int, metavar="N",
                     help="trials at a time (default 1; with --gpus: one per device slot; "
                          "with a Dask scheduler: its threads)")
    run.add_argument("--sweep-dir", metavar="DIR",
                     help="the new sweep's folder (default: runs/sweep-<timestamp>)")
    run.add_argument("--resume", metavar="DIR",
                     help="continue the sweep in DIR: running trials from their checkpoints, "
                          "then the rest")
    run.add_argument("--sampler", choices=SAMPLERS, help="Optuna sampler (default tpe)")
    run.add_argument("--pruner", choices=PRUNERS,
                     help="stop poor trials early, judged on validation accuracy after each "
                          "epoch (default median)")
    run.add_argument("--executor", metavar="KIND",
                     help="local (default: spawned processes on this machine), dask (a local "
                          "Dask cluster) or dask://HOST:PORT (a running Dask scheduler)")
    run.add_argument("--gpus", metavar="IDS",
                     help="local executor: GPU numbers such as 0,1; each worker sees one "
                          "(CUDA_VISIBLE_DEVICES) and trains on it (cupy or torch); without "
                          "it trials run on the CPU")
    run.add_argument("--per-gpu", type=int, metavar="N", help="workers per GPU (default 1)")
    run.add_argument("--seed", type=int, metavar="N",
                     help="seeds the sampler and every trial's training (default 0)")
    run.add_argument("--storage", metavar="URL",
                     help="an Optuna database URL (sqlite:///..., postgresql://...) for the "
                          "study (default: a journal file in the sweep folder)")
    run.add_argument("-q", "--quiet", action="store_true", default=None,
                     help="no progress bar (the per-trial lines stay)")
    searched = p.add_argument_group(
        "searched options", "each takes a value, several values to choose from, or a range "
                            "LOW:HIGH or LOW:HIGH:log (integers for integer options); --hidden "
                            "takes networks such as 100 512x256")
    for key, option in SEARCHABLE.items():
        searched.add_argument(option.flag, dest=key, nargs="+", metavar="SPEC",
                              help=option.summary)
    fixed = p.add_argument_group("fixed training options (as for xpnet train)")
    fixed.add_argument("--model", choices=sorted(MODELS))
    fixed.add_argument("--preset", choices=sorted(PRESETS))
    fixed.add_argument("--epochs", type=int, metavar="N",
                       help="epochs per trial (default: the preset's)")
    fixed.add_argument("--schedule", choices=("none", "constant", "cosine", "onecycle"))
    for flag in ("--nesterov", "--augment", "--test-time-flip"):
        fixed.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
    fixed.add_argument("--dataset", choices=("auto", "cifar10", "digits"),
                       help="auto (default): CIFAR-10 if found or downloadable, else digits")
    fixed.add_argument("--data-dir", metavar="PATH")
    fixed.add_argument("--no-download", dest="download", action="store_const", const=False,
                       default=None)
    for split in ("train", "val", "test"):
        fixed.add_argument(f"--num-{split}", type=int, metavar="N")
    fixed.add_argument("--backend", metavar="NAME",
                       help="the trials' backend (default: $XPNET_BACKEND, else numpy, or auto "
                            "with --gpus)")
    fixed.add_argument("--device", metavar="DEVICE",
                       help="the trials' device: cpu, cuda or cuda:INDEX (default: "
                            "$XPNET_DEVICE, else the backend's; with --gpus: cuda, each "
                            "worker's own GPU)")


def build_parser() -> argparse.ArgumentParser:
    """The ``xpnet`` argument parser."""
    parser = _Parser(prog="xpnet", description="CS231n-style neural networks on any Array API "
                                               "backend: train, sweep hyperparameters, check.")
    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of every error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(sub)
    _add_sweep(sub)
    sub.add_parser("info", help="backends, devices and library versions",
                   description="Show which backends can run here (and why not), their "
                               "devices, and the versions of the libraries xpnet uses.")
    grad = sub.add_parser("gradcheck", help="check every layer's gradients (float64)",
                          description="Compare every layer's analytic gradients, and those of "
                                      "small FullyConnectedNets, with numerical ones in "
                                      "float64; exit 1 if any check fails.")
    grad.add_argument("--backend", metavar="NAME", help=_BACKEND_HELP)
    grad.add_argument("--device", metavar="DEVICE", help=DEVICE_HELP)
    return parser


# ---------------------------------------------------------------------------
# Commands


def _train(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .train import train

    explicit = {k: v for k, v in vars(args).items() if k not in ("command", "debug")}
    if explicit["resume"] is not None and explicit["run_dir"] is not None:
        raise RunError("--run-dir names a new run and --resume continues one; give only one")
    if explicit.get("nproc") is not None:  # starts the ranks, which run the rest
        from .parallel import launch

        return launch(explicit["nproc"], argv)
    result = train(explicit, argv=["xpnet", *argv])
    if result.run is None:  # a rank other than 0 of a data-parallel run: rank 0 reports
        return EXIT_INTERRUPTED if result.status == "interrupted" else EXIT_OK
    if result.status == "interrupted":
        where = (f"continue from {result.checkpoint} with: xpnet train --resume "
                 f"{result.run.path}" if result.checkpoint else "no checkpoint was saved")
        print(f"xpnet: interrupted at iteration {result.iteration}/{result.num_iterations}; "
              f"{where}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    print(f"test accuracy {result.test_acc:.4f} (best val acc {result.best_val_acc:.4f}); "
          f"{result.seconds_per_epoch:.2f} s per epoch; results in {result.run.path}",
          flush=True)
    return EXIT_OK


def _sweep(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from . import sweep

    if args.sweep_action == "show":
        sweep.show(args.folder, top=args.top)
        return EXIT_OK
    given = {k: v for k, v in vars(args).items() if v is not None}
    try:
        if args.resume is not None:
            fixed = [k for k in given if k not in (*_SWEEP_RESUMABLE, "resume", "command",
                                                   "debug", "sweep_action")]
            if fixed:
                flags = ", ".join("--" + k.replace("_", "-") if k not in SEARCHABLE
                                  else SEARCHABLE[k].flag for k in fixed)
                raise RunError(f"{flags} cannot change when resuming a sweep: it keeps its "
                               "search space and training options (only --trials, --workers, "
                               "--executor, --gpus and --per-gpu may change)")
            result = sweep.resume(args.resume, n_trials=args.trials, workers=args.workers,
                                  executor=args.executor, gpus=args.gpus,
                                  per_gpu=args.per_gpu, quiet=bool(args.quiet))
        else:
            options = {k: given[k] for k in _SWEEP_FIXED if k in given}
            result = sweep.run(
                {k: given[k] for k in SEARCHABLE if k in given}, n_trials=args.trials,
                workers=args.workers, sweep_dir=args.sweep_dir,
                executor=args.executor or "local", epochs=options.pop("epochs", None),
                options=options, sampler=args.sampler or "tpe",
                pruner=args.pruner or "median", seed=0 if args.seed is None else args.seed,
                gpus=args.gpus, per_gpu=1 if args.per_gpu is None else args.per_gpu,
                storage=args.storage, quiet=bool(args.quiet), argv=["xpnet", *argv])
    except KeyboardInterrupt:  # the sweep said how to continue
        return EXIT_INTERRUPTED
    return EXIT_OK if result.best_trial is not None else EXIT_FAILED


def _info() -> int:
    from .info import environment_report

    print(environment_report(), flush=True)
    return EXIT_OK


def _gradcheck(args: argparse.Namespace) -> int:
    from ..backend import get_backend
    from .gradcheck import format_table, run_gradient_checks

    backend = get_backend(args.backend, explicit_device(args.device))
    results = run_gradient_checks(backend)
    print(format_table(results, backend.name, device_label(backend)), flush=True)
    return EXIT_OK if all(r.passed for r in results) else EXIT_FAILED


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _report(err: BaseException, debug: bool, message: str | None = None) -> None:
    """The one-line error; with ``--debug`` the traceback first."""
    if debug:
        traceback.print_exception(err, file=sys.stderr)
    line = f"xpnet: error: {_one_line(err) if message is None else message}"
    from .parallel import report

    if not report(line):  # a rank of xpnet train --nproc leaves the line to the launcher
        print(line, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``xpnet`` command; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``xpnet`` (default ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as err:
        print(f"xpnet: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as done:  # --help, --version
        return done.code if isinstance(done.code, int) else EXIT_OK
    try:
        if args.command == "train":
            return _train(args, argv)
        if args.command == "sweep":
            return _sweep(args, argv)
        if args.command == "info":
            return _info()
        return _gradcheck(args)
    except TrainingDivergedError as err:
        _report(err, args.debug)
        return EXIT_FAILED
    except XpnetError as err:
        _report(err, args.debug)
        return EXIT_USAGE
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        _report(err, args.debug, f"{where}{err.strerror or err}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("xpnet: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
