"""The Optuna side of ``xpnet sweep``: storage, samplers, pruners, trial records.

Optuna is an optional dependency (``pip install "xpnet[sweep]"``);
:func:`require_optuna` says so in one line when it is missing.

Determinism: the sampler is made again before every trial with a seed drawn
from the sweep's seed and the trial's number (:func:`trial_seed`), and each
trial trains with a seed drawn the same way. A trial's parameters therefore
depend only on the seed, its number and the trials finished before it was
asked for, not on the sampler's history in this process: a resumed driver
asks for the next trials exactly as an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import SweepError
from .space import SearchSpace

__all__ = [
    "INSTALL_HINT",
    "PRUNERS",
    "SAMPLERS",
    "TrialRecord",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "records",
    "require_optuna",
    "set_attrs",
    "trial_seed",
]

INSTALL_HINT = 'pip install "xpnet[sweep]"'
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
#: Stream ids for :func:`trial_seed`.
SAMPLER_STREAM, TRAINING_STREAM = 0, 1


def require_optuna() -> Any:
    """The ``optuna`` module, with its logging quietened.

    Raises
    ------
    SweepError
        When Optuna is not installed (the message says what to install).
    """
    try:
        import optuna
    except ImportError:
        raise SweepError(f"xpnet sweep needs Optuna, which is not installed: "
                         f"{INSTALL_HINT}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def trial_seed(seed: int, number: int, stream: int) -> int:
    """A seed in [0, 2**31) for trial ``number``'s sampler or training (``stream``)."""
    state = np.random.SeedSequence([int(seed), int(number), int(stream)]).generate_state(1)
    return int(state[0]) % (2**31)


def make_sampler(kind: str, space: SearchSpace, seed: int, number: int) -> Any:
    """The sampler that picks trial ``number``'s parameters."""
    optuna = require_optuna()
    if kind == "grid":  # the grid's order comes from the sweep's seed; trial k takes point k
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    own = trial_seed(seed, number, SAMPLER_STREAM)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=own)
    return optuna.samplers.TPESampler(seed=own)


def make_pruner(pruner: Any, epochs: int) -> Any:
    """An Optuna pruner from a name in :data:`PRUNERS` (or a pruner object, unchanged).

    ``median`` prunes a trial whose accuracy after an epoch is below the median
    of the finished trials at that epoch (after 5 finished trials, from the
    second epoch on); ``hyperband`` runs Hyperband from 1 epoch to ``epochs``.
    """
    optuna = require_optuna()
    if not isinstance(pruner, str):
        if not isinstance(pruner, optuna.pruners.BasePruner):
            raise SweepError(f"pruner must be one of {', '.join(PRUNERS)} or an Optuna pruner, "
                             f"got {pruner!r}")
        return pruner
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(int(epochs), 1))
    if pruner == "none":
        return optuna.pruners.NopPruner()
    raise SweepError(f"unknown pruner {pruner!r}; choose {', '.join(PRUNERS)}")


def open_storage(url: str | None, journal: Path) -> Any:
    """The study's storage: the journal file, or the database at ``url``.

    Raises
    ------
    SweepError
        When the database cannot be opened.
    """
    optuna = require_optuna()
    if url is None:
        from optuna.storages.journal import JournalFileBackend

        backend = JournalFileBackend(str(journal), lock_obj=_FlockLock(f"{journal}.lock"))
        return optuna.storages.JournalStorage(backend)
    try:
        return optuna.storages.get_storage(url)
    except Exception as err:  # SQLAlchemy's errors for bad URLs, drivers, servers
        message = " ".join(str(err).split())[:300]
        raise SweepError(f"cannot open the study storage --storage {url}: "
                         f"{type(err).__name__}: {message}") from None


class _FlockLock:
    """The journal's lock: an ``flock``, which the system releases when its holder dies.

    (Optuna's own file locks are files that a killed process leaves behind,
    blocking everyone else until their grace period ends.)
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._handle: Any = None

    def acquire(self) -> bool:
        import fcntl

        handle = open(self.path, "a")  # noqa: SIM115 (closed in release)
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        self._handle = handle
        return True

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()  # releases the lock


@dataclass
class TrialRecord:
    """One trial as the sweep reports it.

    Attributes
    ----------
    number : int
    state : str
        ``complete``, ``pruned``, ``diverged``, ``failed``, ``lost`` or ``running``.
    value : float or None
        The best validation accuracy (for pruned trials: the last one reported).
    options : dict
        The searched training options of the trial.
    attrs : dict
        What the driver recorded: ``run`` (the folder), ``seed``, ``test_acc``,
        ``epochs``, ``seconds``, ``device``, ``worker``, ``attempts``, ``lost``, ``error``.
    intermediate : dict
        Validation accuracy per epoch, when a pruner asked for it.
    """

    number: int
    state: str
    value: float | None
    options: dict[str, Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    intermediate: dict[int, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The record as one JSON-ready dict, as ``trials.json`` lists it."""
        return {"number": self.number, "state": self.state, "value": self.value,
                "options": self.options, **self.attrs,
                "intermediate": {str(k): v for k, v in sorted(self.intermediate.items())}}


def _state(frozen: Any) -> str:
    name = frozen.state.name
    if name == "COMPLETE":
        return "complete"
    if name == "PRUNED":
        return "pruned"
    if name == "FAIL":
        return str(frozen.user_attrs.get("status") or "failed")
    return "running"


def records(study: Any, space: SearchSpace) -> list[TrialRecord]:
    """Every trial of ``study``, in the order of their numbers."""
    found = []
    for frozen in study.get_trials(deepcopy=False):
        value = frozen.value if frozen.state.name in ("COMPLETE", "PRUNED") else None
        if value is None and frozen.state.name == "PRUNED" and frozen.intermediate_values:
            value = frozen.intermediate_values[max(frozen.intermediate_values)]
        found.append(TrialRecord(frozen.number, _state(frozen), value,
                                 space.options(frozen.params), dict(frozen.user_attrs),
                                 dict(frozen.intermediate_values)))
    return sorted(found, key=lambda r: r.number)


def set_attrs(trial: Any, attrs: Mapping[str, Any]) -> None:
    """Record JSON-ready ``attrs`` on a running Optuna trial."""
    for key, value in attrs.items():
        if value is not None:
            trial.set_user_attr(key, value)
