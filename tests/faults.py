"""Run the ``xpnet`` command with one fault injected from outside the package.

    python tests/faults.py FAULT ARGS...      # ARGS as for the xpnet command

FAULT is one of

``interrupt:N``
    ``xpnet train`` sends itself SIGINT (a real Ctrl-C) right after iteration N.
``kill-worker:K:E``
    The worker process of sweep trial K SIGKILLs itself after the checkpoint of
    epoch E (only in the trial's first run, not one continued from a checkpoint).
``kill-driver:K:E``
    That worker SIGKILLs the sweep's driver (its parent) there instead, then
    waits for its watchdog to end it.
``die-asking:K``
    The sweep's driver SIGKILLs itself while it gives trial K its parameters,
    after the first one (the study then holds a trial with some of them).

The package has no hook for this: the script wraps public seams of
``xpnet.app.train`` (the ``on_epoch`` callback of :func:`xpnet.app.train.train`,
the per-iteration callback the command hands the Solver) before the command
starts. The wrapping happens at import, outside the ``__main__`` block, so a
sweep's worker processes (spawned: they import this script again as
``__mp_main__``, with the same ``sys.argv``) are wrapped too.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import xpnet.app.train as train_module

USAGE = ("usage: python tests/faults.py interrupt:N | kill-worker:K:E | kill-driver:K:E | "
         "die-asking:K ARGS...")


def parse(spec: str) -> tuple[str, tuple[int, ...]]:
    """``'kill-worker:1:2'`` as ``('kill-worker', (1, 2))``; SystemExit when malformed."""
    kind, *numbers = spec.split(":")
    sizes = {"interrupt": 1, "kill-worker": 2, "kill-driver": 2, "die-asking": 1}
    if kind not in sizes or len(numbers) != sizes[kind] or not all(n.isdigit() for n in numbers):
        raise SystemExit(f"{USAGE}\ngot {spec!r}")
    return kind, tuple(int(n) for n in numbers)


def interrupt_after(iteration: int) -> None:
    """SIGINT this process once the Solver has finished ``iteration``."""
    monitor = train_module._Monitor
    original = monitor.__call__

    def call(self, solver, event):
        original(self, solver, event)
        if event != "epoch" and solver.iteration == iteration:
            os.kill(os.getpid(), signal.SIGINT)

    monitor.__call__ = call


def kill_in_trial(target: str, trial: int, epoch: int) -> None:
    """SIGKILL the worker (or its driver) after ``epoch`` of sweep trial ``trial``."""
    original = train_module.train

    def train(explicit, argv=None, out=None, err=None, on_epoch=None):
        first_run = "resume" not in explicit
        if first_run and on_epoch is not None and list(argv or [])[-2:] == ["trial", str(trial)]:
            inner = on_epoch

            def on_epoch(done: int, val_acc: float) -> None:  # after the epoch's checkpoint
                if done == epoch:
                    if target == "worker":
                        os.kill(os.getpid(), signal.SIGKILL)
                    os.kill(os.getppid(), signal.SIGKILL)  # the local pool's driver
                    time.sleep(30)  # the worker's watchdog ends it once the driver is gone
                inner(done, val_acc)

        return original(explicit, argv=argv, out=out, err=err, on_epoch=on_epoch)

    train_module.train = train


def die_asking(trial: int) -> None:
    """SIGKILL the driver after it gave trial ``trial`` its first parameter."""
    from xpnet.app.sweep.space import SearchSpace

    original = SearchSpace.suggest

    def suggest(self, optuna_trial):
        if optuna_trial.number == trial and os.environ.get("XPNET_TEST_RESUMED") != "1":
            first = next(iter(self.dimensions))
            original(type(self)({first: self.dimensions[first]}, self.fixed), optuna_trial)
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, optuna_trial)

    SearchSpace.suggest = suggest


def install(spec: str) -> None:
    kind, numbers = parse(spec)
    if kind == "interrupt":
        interrupt_after(*numbers)
    elif kind == "die-asking":
        die_asking(*numbers)
    else:
        kill_in_trial(kind.split("-")[1], *numbers)


if len(sys.argv) < 2:
    raise SystemExit(USAGE)
install(sys.argv[1])

if __name__ == "__main__":
    from xpnet.app.cli import main

    sys.exit(main(sys.argv[2:]))
