"""Run folders: where ``xpnet train`` keeps everything about one training run.

A run folder holds

``config.json``
    The full set of training options, the backend, the seed and the data
    source: enough to rebuild the model and the data to resume.
``history.json``
    Losses, accuracies, timings, the test accuracy and the run's status.
``best_model.npz``
    The model with the best validation accuracy (class, config, parameters and
    buffers of that moment, in :mod:`xpnet.checkpoint`'s format, so
    ``xpnet.load_model`` rebuilds it), rewritten whenever the best improves.
``checkpoint_epoch_{n}.npz`` / ``checkpoint_interrupted.npz``
    Solver checkpoints (only the latest epoch's is kept).
``result.json``
    At the end: test and best validation accuracy, epochs, seconds (and per
    epoch), backend, model, preset, parameter count, seed and data.
``curves.png`` / ``first_layer_weights.png``
    Plots written at the end.

Every file is written atomically (:func:`xpnet.files.atomic_write`), so a
crash or a full disk never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import checkpoint
from ..errors import CheckpointError, RunError
from ..files import write_json

__all__ = ["RunError", "RunFolder"]

CONFIG = "config.json"
HISTORY = "history.json"
BEST_MODEL = "best_model.npz"
RESULT = "result.json"
CURVES = "curves.png"
WEIGHTS = "first_layer_weights.png"
_CHECKPOINT = "checkpoint"
_EPOCH_FILE = re.compile(rf"^{_CHECKPOINT}_epoch_(\d+)\.npz$")


class RunFolder:
    """One run's folder. Make it with :meth:`create` or :meth:`open`.

    Parameters
    ----------
    path : path
        The folder (it must exist).
    created : bool
        Whether this process created it (then :meth:`discard_if_empty` may remove it).
    """

    def __init__(self, path: str | os.PathLike, created: bool = False) -> None:
        self.path = Path(path)
        self.created = created

    # -- making and opening ------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike | None = None, root: str | os.PathLike = "runs"
               ) -> RunFolder:
        """Create a new, empty run folder (default ``runs/<timestamp>``).

        Raises
        ------
        RunError
            When the folder cannot be created, or already holds files.
        """
        if path is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = Path(root) / stamp
            suffix = 1
            while path.exists():
                suffix += 1
                path = Path(root) / f"{stamp}-{suffix}"
        path = Path(path)
        if path.is_dir() and any(path.iterdir()):
            raise RunError(f"run folder {path} already holds files; continue that run with "
                           f"--resume {path} or choose another --run-dir")
        existed = path.is_dir()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunError(f"cannot create run folder {path}: {err.strerror or err}; "
                           "choose a folder you can write to with --run-dir") from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise RunError(f"run folder {path} is not writable; choose another --run-dir")
        return cls(path, created=not existed)

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunFolder:
        """An existing run folder (one with a ``config.json``).

        Raises
        ------
        RunError
            When ``path`` is not a run folder.
        """
        run = cls(path)
        if not (run.path / CONFIG).is_file():
            what = "does not exist" if not run.path.exists() else f"has no {CONFIG}"
            raise RunError(f"cannot resume {run.path}: it {what}; pass a folder that "
                           "xpnet train created")
        return run

    def discard_if_empty(self) -> None:
        """Remove the folder if this process created it and nothing was written."""
        if self.created:
            try:
                self.path.rmdir()
            except OSError:
                pass

    # -- JSON ------------------------------------------------------------------
    def write_json(self, name: str, obj: Mapping[str, Any]) -> Path:
        """Write ``obj`` to ``name`` in the folder as JSON, atomically."""
        return write_json(self.path / name, obj)

    def read_json(self, name: str) -> dict[str, Any]:
        """Read the JSON file ``name``.

        Raises
        ------
        RunError
            When it is missing or not valid JSON.
        """
        path = self.path / name
        try:
            with open(path, encoding="utf-8") as handle:
                obj = json.load(handle)
        except FileNotFoundError:
            raise RunError(f"{path} does not exist") from None
        except (OSError, ValueError) as err:
            raise RunError(f"cannot read {path} ({err}); the run folder is damaged") from None
        if not isinstance(obj, dict):
            raise RunError(f"{path} does not hold a JSON object; the run folder is damaged")
        return obj

    def write_config(self, config: Mapping[str, Any]) -> Path:
        return self.write_json(CONFIG, config)

    def read_config(self) -> dict[str, Any]:
        return self.read_json(CONFIG)

    def write_history(self, history: Mapping[str, Any]) -> Path:
        return self.write_json(HISTORY, history)

    def read_history(self) -> dict[str, Any] | None:
        """The saved history, or None when there is none yet."""
        if not (self.path / HISTORY).is_file():
            return None
        return self.read_json(HISTORY)

    # -- checkpoints -----------------------------------------------------------
    @property
    def checkpoint_name(self) -> str:
        """The Solver's ``checkpoint_name`` for this folder."""
        return str(self.path / _CHECKPOINT)

    @property
    def interrupted_checkpoint(self) -> Path:
        return self.path / f"{_CHECKPOINT}_interrupted.npz"

    def epoch_checkpoints(self) -> list[Path]:
        """The epoch checkpoints present, oldest first."""
        found = []
        for entry in self.path.iterdir():
            match = _EPOCH_FILE.match(entry.name)
            if match:
                found.append((int(match.group(1)), entry))
        return [p for _, p in sorted(found)]

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint furthest into training (interrupted or last epoch), if any.

        Raises
        ------
        CheckpointError
            When a checkpoint cannot be read.
        """
        candidates = self.epoch_checkpoints()[-1:]
        if self.interrupted_checkpoint.is_file():
            candidates.append(self.interrupted_checkpoint)
        best, best_iteration = None, -1
        for path in candidates:
            _, meta = checkpoint.read(path)
            iteration = (meta.get("solver") or {}).get("iteration")
            if not isinstance(iteration, int):
                raise CheckpointError(f"{path} is not a Solver checkpoint (no iteration count)")
            if iteration > best_iteration:
                best, best_iteration = path, iteration
        return best

    def prune_epoch_checkpoints(self, keep: int = 1) -> None:
        """Delete all but the newest ``keep`` epoch checkpoints."""
        for path in self.epoch_checkpoints()[:-keep]:
            path.unlink(missing_ok=True)

    # -- models ----------------------------------------------------------------
    @property
    def best_model_path(self) -> Path:
        return self.path / BEST_MODEL

    def save_model(self, arrays: Mapping[str, np.ndarray], model: Mapping[str, Any],
                   info: Mapping[str, Any]) -> Path:
        """Write ``best_model.npz`` (:mod:`xpnet.checkpoint` format).

        ``arrays`` holds ``params/<name>`` and ``buffers/<name>``; ``model`` is
        the model's ``{class, config}``; ``info`` anything JSON-ready.
        """
        return checkpoint.write(self.best_model_path, arrays,
                                {"model": dict(model), "info": dict(info)}, "model")

    def load_model(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Read ``best_model.npz`` (any format version): ``(arrays, meta)``."""
        return checkpoint.read(self.best_model_path)
