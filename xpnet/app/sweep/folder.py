"""Sweep folders: where ``xpnet sweep`` keeps a search and its trials.

A sweep folder holds

``sweep.json``
    What the sweep is: the search space, the fixed training options, the
    number of trials, sampler, pruner, seed, executor and the Optuna study's
    name and storage. ``xpnet sweep --resume`` needs nothing else.
``study.journal``
    The Optuna study (an append-only journal, unless ``--storage`` named a
    database): every trial's parameters, state, value and records.
``driver.json``
    The driver that holds the sweep now (process, host, session), so a
    second driver can say who holds it and a worker of a previous driver can
    notice that it has been replaced.
``trials.json``
    A summary of every trial, rewritten after each change (for people and
    tools; the study is the record).
``trial_0000/`` ...
    One ``xpnet train`` run folder per trial.
``params.png`` / ``history.png``
    Accuracy against each hyperparameter, and the optimization history.

Every file is written atomically (:func:`xpnet.files.atomic_write`). One
driver at a time: :meth:`SweepFolder.lock` takes an exclusive ``flock`` on
``.lock``, which the operating system releases when the driver dies.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ...errors import SweepError
from ...files import read_json_object, write_json

__all__ = ["SweepFolder"]

SPEC = "sweep.json"
DRIVER = "driver.json"
TRIALS = "trials.json"
JOURNAL = "study.journal"
PARAMS_PLOT = "params.png"
HISTORY_PLOT = "history.png"
_LOCK = ".lock"


class SweepFolder:
    """One sweep's folder. Make it with :meth:`create` or :meth:`open`."""

    def __init__(self, path: str | os.PathLike, created: bool = False) -> None:
        self.path = Path(path).resolve()
        self.created = created
        self._lock_handle: Any = None
        self.session: str | None = None

    @classmethod
    def create(cls, path: str | os.PathLike | None = None, root: str | os.PathLike = "runs"
               ) -> SweepFolder:
        """A folder for a new sweep (default ``runs/sweep-<timestamp>``).

        Raises
        ------
        SweepError
            When it already holds a sweep or other files, or cannot be created.
        """
        if path is None:
            path = Path(root) / time.strftime("sweep-%Y%m%d-%H%M%S")
        folder = cls(path)
        if (folder.path / SPEC).exists():
            raise SweepError(f"{path} already holds a sweep; continue it with xpnet sweep "
                             f"--resume {path}, or choose another --sweep-dir")
        if folder.path.is_dir() and any(p.name != _LOCK for p in folder.path.iterdir()):
            raise SweepError(f"{path} already holds files that are not a sweep; choose an "
                             "empty or new --sweep-dir")
        folder.created = not folder.path.exists()
        try:
            folder.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SweepError(f"cannot create sweep folder {path}: {err.strerror or err}; "
                             "choose a folder you can write to with --sweep-dir") from None
        return folder

    def discard_if_unused(self) -> None:
        """Undo :meth:`create` when no sweep was written (its start failed)."""
        if (self.path / SPEC).exists():
            return
        for name in (DRIVER, JOURNAL, f"{JOURNAL}.lock", _LOCK):
            (self.path / name).unlink(missing_ok=True)
        if self.created:
            try:
                self.path.rmdir()
            except OSError:
                pass

    @classmethod
    def open(cls, path: str | os.PathLike) -> SweepFolder:
        """An existing sweep folder (one with a ``sweep.json``).

        Raises
        ------
        SweepError
            When ``path`` is not a sweep folder.
        """
        folder = cls(path)
        if not (folder.path / SPEC).is_file():
            what = "does not exist" if not folder.path.exists() else f"has no {SPEC}"
            raise SweepError(f"{path} is not a sweep folder: it {what}; pass a folder that "
                             "xpnet sweep created")
        return folder

    # -- one driver at a time -----------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[str]:
        """Hold the sweep for this process; yields this driver's session id.

        Raises
        ------
        SweepError
            When another driver holds it (the message names that process).
        """
        import fcntl

        handle = open(self.path / _LOCK, "a+")  # noqa: SIM115 (held until released)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            holder = self.read_driver()
            who = (f"process {holder.get('pid')} on {holder.get('host')} since "
                   f"{holder.get('started')}" if holder else "another process")
            raise SweepError(f"{self.path} is already being driven by {who}; only one driver "
                             "may run a sweep: wait for it to finish or stop it first") from None
        self._lock_handle = handle
        self.session = uuid.uuid4().hex
        try:
            self.write_json(DRIVER, {"session": self.session, "pid": os.getpid(),
                                     "host": socket.gethostname(),
                                     "started": time.strftime("%Y-%m-%d %H:%M:%S")})
            yield self.session
        finally:
            self._lock_handle = None
            handle.close()  # releases the lock

    def read_driver(self) -> dict[str, Any]:
        """``driver.json`` (empty when missing or unreadable)."""
        return read_json_object(self.path / DRIVER)

    # -- files ---------------------------------------------------------------------
    def write_json(self, name: str, obj: Mapping[str, Any] | list[Any]) -> Path:
        """Write ``obj`` to ``name`` in the folder as JSON, atomically."""
        return write_json(self.path / name, obj)

    def read_spec(self) -> dict[str, Any]:
        """``sweep.json``.

        Raises
        ------
        SweepError
            When it is unreadable.
        """
        path = self.path / SPEC
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise SweepError(f"cannot read {path} ({err}); the sweep folder is damaged") from None
        if not isinstance(obj, dict) or "study_name" not in obj:
            raise SweepError(f"{path} is not an xpnet sweep description")
        return obj

    def write_spec(self, spec: Mapping[str, Any]) -> Path:
        return self.write_json(SPEC, spec)

    @property
    def journal(self) -> Path:
        """The Optuna journal file (used unless the sweep names a ``--storage``)."""
        return self.path / JOURNAL

    def trial_dir(self, number: int) -> Path:
        """The run folder of trial ``number``."""
        return self.path / f"trial_{number:04d}"
