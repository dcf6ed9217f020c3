"""The driver of a sweep: it asks Optuna for trials, runs them, records them.

:class:`Driver` keeps up to ``workers`` trials in flight on an executor
(:mod:`xpnet.app.sweep.executors`); each is an ``xpnet train`` run in the
sweep folder (:mod:`xpnet.app.sweep.worker`). Where each trial stands is in
the Optuna study: parameters, state (running, complete, pruned, failed),
value, and the driver's records (run folder, seed, attempts, worker losses,
errors, the worker and device). Faults:

* a worker that dies during a trial: the driver starts new workers and the
  trial runs again with the same parameters from its run folder's latest
  checkpoint (after :data:`MAX_LOST` such losses it is recorded as failed);
* a driver that died: a new one finds the trials the study still calls
  running and continues each from its checkpoint (a finished run is only
  read back), then asks for the remaining ones: exactly the requested
  number of trials, none twice;
* a trial whose training diverges, or whose options ``xpnet train`` rejects,
  is recorded as failed and the sweep goes on; an error that would stop every
  trial (missing data, a full disk) stops the sweep, to be resumed once the
  cause is fixed;
* Ctrl-C: running trials save a checkpoint, then the workers stop.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from ...errors import InputError, SweepError, XpnetError
from .executors import TrialExecutor
from .folder import TRIALS, SweepFolder
from .report import best_first, format_table, write_plots
from .space import SEARCHABLE, SearchSpace, format_value
from .study import (
    TRAINING_STREAM,
    TrialRecord,
    make_sampler,
    records,
    set_attrs,
    trial_seed,
)
from .worker import TrialOutcome, TrialTask, run_trial

__all__ = ["GRACE_SECONDS", "MAX_LOST", "Driver", "SweepResult", "best_of", "trial_options"]

#: Seconds a stopping sweep waits for running trials to save their checkpoint.
GRACE_SECONDS = 10.0
#: A trial whose worker died this many times is recorded as failed; the workers dying
#: this many times in a row, with no trial finished in between, stops the sweep.
MAX_LOST = 3
#: Trials in the table printed at the end.
TOP = 10


@dataclass
class SweepResult:
    """What a sweep found.

    Attributes
    ----------
    sweep_dir : Path
    best_params : dict or None
        The searched training options of the best completed trial.
    best_value : float or None
        Its best validation accuracy.
    best_trial : int or None
        Its number.
    best_run : Path or None
        Its run folder.
    trials : list of TrialRecord
        Every trial, by number.
    """

    sweep_dir: Path
    best_params: dict[str, Any] | None
    best_value: float | None
    best_trial: int | None
    best_run: Path | None
    trials: list[TrialRecord] = field(default_factory=list)


def trial_options(fixed: Mapping[str, Any], chosen: Mapping[str, Any], seed: int
                  ) -> dict[str, Any]:
    """A trial's complete, checked training options.

    Raises
    ------
    InputError
        When ``xpnet train`` would reject them.
    """
    from ..train import resolve_options, validate_options

    options = resolve_options({**fixed, **chosen, "seed": seed})
    validate_options(options)
    return options


class Driver:
    """Runs a sweep's trials to the end: asks, submits, records, recovers.

    Parameters
    ----------
    folder : SweepFolder
        The sweep's folder, locked by this process.
    spec : dict
        ``sweep.json``: trials, sampler, seed, fixed training options, study.
    study : optuna.Study
    space : SearchSpace
    pruner : optuna pruner
        Asked by the workers after each epoch (a NopPruner: no reports at all).
    pool : TrialExecutor
    session : str
        This driver's session id (``driver.json``).
    quiet : bool
        No progress bar.
    out, err : text streams
    """

    def __init__(self, folder: SweepFolder, spec: dict[str, Any], study: Any,
                 space: SearchSpace, pruner: Any, pool: TrialExecutor, session: str,
                 quiet: bool, out: TextIO, err: TextIO) -> None:
        import optuna

        self.optuna = optuna
        self.folder, self.spec, self.study, self.space = folder, spec, study, space
        self.pruner = None if isinstance(pruner, optuna.pruners.NopPruner) else pruner
        self.pool, self.session = pool, session
        self.out, self.err = out, err
        self.show_bar = not quiet and err.isatty()
        self.bar: Any = None
        self.in_flight: dict[Future, TrialTask] = {}
        self.waiting: list[TrialTask] = []
        self.trials: dict[int, Any] = {}
        self.created = len(study.get_trials(deepcopy=False))
        self.finished = 0
        self.breaks_in_a_row = 0

    # -- the loop ----------------------------------------------------------------
    def run(self) -> SweepResult:
        n_trials = self.spec["n_trials"]
        running = self._recover()
        self.finished = self.created - len(running)
        what = (f"resuming {self.finished} of {n_trials} trials finished, "
                f"{len(running)} to continue" if self.created else f"{n_trials} trials")
        pruner = "no" if self.spec["pruner"] == "none" else self.spec["pruner"]
        print(f"xpnet: sweep {self.folder.path}: {what}; {self.spec['sampler']} sampler, "
              f"{pruner} pruner, {self.pool.description}", file=self.out, flush=True)
        if self.show_bar:
            from tqdm import tqdm

            self.bar = tqdm(total=n_trials, initial=self.finished, file=self.err,
                            desc="sweep", unit="trial", dynamic_ncols=True)
        try:
            self._loop()
        except KeyboardInterrupt:
            self._stop_on_interrupt()
            raise
        except BaseException:
            self.pool.shutdown(kill=True)
            raise
        finally:
            if self.bar is not None:
                self.bar.close()
            try:
                self._write_summary()
            except Exception:  # noqa: S110 (the error on its way out matters more)
                pass
        self.pool.shutdown()
        return self._result()

    def _loop(self) -> None:
        while True:
            while len(self.in_flight) < self.pool.workers:
                task = self._next_task()
                if task is None:
                    break
                self._submit(task)
            if not self.in_flight:
                return
            done, _ = wait(self.in_flight, timeout=1.0, return_when=FIRST_COMPLETED)
            lost = self._collect(done)
            if lost:
                self._replace_workers(lost)

    def _collect(self, futures) -> list[TrialTask]:
        """Record the finished trials among ``futures``; return those whose worker died."""
        lost = []
        for future in futures:
            task = self.in_flight.pop(future)
            outcome = self._outcome(future, task)
            if outcome is None:
                lost.append(task)
            else:
                self._record(task, outcome)
        return lost

    def _outcome(self, future: Future, task: TrialTask) -> TrialOutcome | None:
        """The trial's outcome; None when its worker died."""
        try:
            return future.result()
        except BrokenExecutor:
            return None
        except XpnetError as error:
            raise SweepError(f"trial {task.number} stopped the sweep: {error} (fix the cause, "
                             f"then continue with: xpnet sweep --resume "
                             f"{self.folder.path})") from error
        except Exception as error:
            if type(error).__name__ == "KilledWorker":  # Dask gave up on the task
                return None
            raise

    def _replace_workers(self, lost: list[TrialTask]) -> None:
        """Workers died: their trials (with a process pool, all trials) run again."""
        if self.pool.breaks_as_a_whole:  # every running trial fails with the pool
            lost += self._collect(list(wait(self.in_flight)[0]))
        self.breaks_in_a_row += 1
        if self.breaks_in_a_row >= MAX_LOST:
            raise SweepError(f"the workers died {self.breaks_in_a_row} times in a row without "
                             "finishing a trial (see the errors above; a Python script that "
                             "starts a sweep must do so under if __name__ == '__main__':); "
                             f"continue with: xpnet sweep --resume {self.folder.path}")
        if self.pool.breaks_as_a_whole and not self.pool.restart():
            raise SweepError(f"a worker died and the executor cannot be restarted; continue "
                             f"with: xpnet sweep --resume {self.folder.path}")
        for task in sorted(lost, key=lambda t: t.number, reverse=True):
            trial = self.trials[task.number]
            losses = int(trial.user_attrs.get("lost", 0)) + 1
            set_attrs(trial, {"lost": losses})
            if losses >= MAX_LOST:
                self._fail(task.number, "lost", f"its worker died {losses} times")
                continue
            self._note(f"trial {task.number}: its worker died; it runs again from its last "
                       f"checkpoint")
            self.waiting.insert(0, replace(task, attempt=task.attempt + 1))

    def _next_task(self) -> TrialTask | None:
        if self.waiting:
            return self.waiting.pop(0)
        while self.created < self.spec["n_trials"]:
            task = self._ask()
            if task is not None:
                return task
        return None

    def _submit(self, task: TrialTask) -> None:
        set_attrs(self.trials[task.number], {"attempts": task.attempt})
        try:
            self.in_flight[self.pool.submit(run_trial, task)] = task
        except BrokenExecutor:  # a worker died before its trial's failure reached us
            self.waiting.insert(0, task)
            self._replace_workers([])

    # -- trials ----------------------------------------------------------------
    def _sampled(self, number: int, trial_id: int | None) -> tuple[Any, dict[str, Any]]:
        """The Optuna trial ``number`` (new when ``trial_id`` is None) and its options."""
        spec = self.spec
        self.study.sampler = make_sampler(spec["sampler"], self.space, spec["seed"], number)
        if trial_id is None:
            trial = self.study.ask()
            if trial.number != number:
                raise SweepError(f"the study {spec['study_name']} gained trials from elsewhere "
                                 f"(expected trial {number}, got {trial.number}); one sweep "
                                 "per study")
        else:  # a trial of a previous driver: its parameters, completed if it died asking
            trial = self.optuna.trial.Trial(self.study, trial_id)
            missing = set(self.space.dimensions) - set(trial.params)
            if missing and spec["sampler"] != "grid":  # (the grid's point is in the trial)
                with warnings.catch_warnings():  # PartialFixedSampler is "experimental"
                    warnings.simplefilter("ignore", self.optuna.exceptions.ExperimentalWarning)
                    self.study.sampler = self.optuna.samplers.PartialFixedSampler(
                        self._asked_then(number, trial_id), self.study.sampler)
        self.trials[number] = trial
        return trial, self.space.suggest(trial)

    def _asked_then(self, number: int, trial_id: int) -> dict[str, Any]:
        """Every parameter trial ``number`` was being given when its driver died asking:
        the same sampler asked again, in memory, with the trials finished before it began
        (what the sampler saw then), so a resumed sweep gets the uninterrupted one's."""
        optuna, spec = self.optuna, self.spec
        frozen = self.study._storage.get_trial(trial_id)
        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        replay = optuna.create_study(directions=self.study.directions, sampler=make_sampler(
            spec["sampler"], self.space, spec["seed"], number))
        for done in self.study.get_trials(deepcopy=False, states=finished):
            if done.datetime_complete and frozen.datetime_start \
                    and done.datetime_complete <= frozen.datetime_start:
                replay.add_trial(done)
        probe = replay.ask()
        self.space.suggest(probe)
        return dict(probe.params)

    def _task(self, trial: Any, chosen: dict[str, Any], attempt: int) -> TrialTask | None:
        number = trial.number
        seed = trial_seed(self.spec["seed"], number, TRAINING_STREAM)
        run = self.folder.trial_dir(number)
        set_attrs(trial, {"run": run.name, "seed": seed})
        try:
            options = trial_options(self.spec["options"], chosen, seed)
        except InputError as error:
            self._fail(number, "invalid", str(error))
            return None
        options = {k: v for k, v in options.items() if k not in ("run_dir", "resume", "quiet")}
        return TrialTask(number, trial._trial_id, str(run), options, str(self.folder.path),
                         self.session, self.spec["study_name"],
                         self.spec["storage"], self.pruner, attempt)

    def _ask(self) -> TrialTask | None:
        trial, chosen = self._sampled(self.created, None)
        self.created += 1
        return self._task(trial, chosen, 1)

    def _recover(self) -> list[TrialTask]:
        """The trials a previous driver left running, queued to continue."""
        state = self.optuna.trial.TrialState
        for frozen in self.study.get_trials(deepcopy=False, states=(state.RUNNING,)):
            trial, chosen = self._sampled(frozen.number, frozen._trial_id)
            task = self._task(trial, chosen, int(frozen.user_attrs.get("attempts", 0)) + 1)
            if task is not None:
                self.waiting.append(task)
        self.waiting.sort(key=lambda t: t.number)
        return list(self.waiting)

    def _record(self, task: TrialTask, outcome: TrialOutcome) -> None:
        self.breaks_in_a_row = 0
        trial = self.trials[task.number]
        TrialState = self.optuna.trial.TrialState
        previous = trial.user_attrs.get("seconds", 0.0)
        set_attrs(trial, {"status": outcome.status, "epochs": outcome.epochs,
                          "seconds": round(float(previous) + outcome.seconds, 3),
                          "test_acc": outcome.test_acc, "device": outcome.device,
                          "worker": outcome.worker, "resumed_from": outcome.resumed_from,
                          "error": outcome.error})
        if outcome.status == "complete":
            self._tell(trial, outcome.value)
        elif outcome.status == "pruned":
            self._tell(trial, state=TrialState.PRUNED)
        elif outcome.status == "diverged":
            self._tell(trial, state=TrialState.FAIL)
        elif outcome.status == "interrupted":
            # It saved a checkpoint. After Ctrl-C, --resume continues it; when only its
            # worker got the signal, it continues now.
            self.waiting.insert(0, replace(task, attempt=task.attempt + 1))
            return
        else:
            raise SweepError(f"another driver has taken over {self.folder.path}")
        self._finished(task.number, outcome.status, outcome.value, outcome.seconds,
                       outcome.error)

    def _tell(self, trial: Any, value: float | None = None, state: Any = None) -> None:
        """Finish ``trial`` in the study.

        Outside ``study.optimize`` a sampler must not act after a trial (the grid
        sampler would stop the study), so a neutral sampler is in place meanwhile.
        """
        self.study.sampler = self.optuna.samplers.RandomSampler()
        self.study.tell(trial, value, state=state)

    def _fail(self, number: int, status: str, error: str) -> None:
        trial = self.trials[number]
        set_attrs(trial, {"status": status, "error": error})
        self._tell(trial, state=self.optuna.trial.TrialState.FAIL)
        self._finished(number, status, None, 0.0, error)

    def _finished(self, number: int, status: str, value: float | None, seconds: float,
                  error: str | None) -> None:
        self.finished += 1
        options = self.space.options(self.trials[number].params)
        shown = ", ".join(f"{SEARCHABLE[k].flag[2:]} {format_value(k, v)}"
                          for k, v in options.items())
        result = f"val acc {value:.4f}" if value is not None else (error or "").split(";")[0]
        self._note(f"trial {number} {status}: {result} ({shown}) in {seconds:.1f} s")
        if self.bar is not None:
            self.bar.update(1)
        self._write_summary()

    # -- output ------------------------------------------------------------------
    def _note(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.out)
        else:
            print(line, file=self.out, flush=True)

    def _write_summary(self) -> None:
        self.folder.write_json(TRIALS, [r.to_json() for r in records(self.study, self.space)])

    def _stop_on_interrupt(self) -> None:
        print(f"xpnet: stopping: running trials save a checkpoint (up to {GRACE_SECONDS:g} s; "
              "Ctrl-C again stops at once)", file=self.err, flush=True)
        try:
            done, _ = wait(self.in_flight, timeout=GRACE_SECONDS)
            for future in done:
                task = self.in_flight.pop(future)
                try:
                    outcome = future.result()
                except Exception:  # a broken pool: the trial continues on --resume
                    continue
                self._record(task, outcome)
        except KeyboardInterrupt:
            pass
        finally:
            self.pool.shutdown(kill=True)
        print(f"xpnet: sweep interrupted with {self.finished} of {self.spec['n_trials']} trials "
              f"finished; continue it with: xpnet sweep --resume {self.folder.path}",
              file=self.err, flush=True)

    def _result(self) -> SweepResult:
        trials = records(self.study, self.space)
        result = best_of(self.folder, trials)
        plots = write_plots(trials, self.space, self.folder.path)
        if result.best_trial is None:
            print("xpnet: no trial completed", file=self.out, flush=True)
        else:
            print(f"best: trial {result.best_trial}, val acc {result.best_value:.4f}, in "
                  f"{result.best_run}", file=self.out)
        print(format_table(trials, self.space, top=TOP), file=self.out)
        if plots:
            print(f"plots: {', '.join(str(p) for p in plots)}", file=self.out)
        self.out.flush()
        return result


def best_of(folder: SweepFolder, trials: list[TrialRecord]) -> SweepResult:
    """The sweep's result: its best completed trial (the lowest number among equals)."""
    complete = [t for t in best_first(trials) if t.state == "complete"]
    if not complete:
        return SweepResult(folder.path, None, None, None, None, trials)
    best = complete[0]
    return SweepResult(folder.path, dict(best.options), best.value, best.number,
                       folder.trial_dir(best.number), trials)
