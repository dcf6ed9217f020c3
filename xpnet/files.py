"""Atomic files, and the pickle-free container of xpnet's array files.

:func:`atomic_write` writes to a temporary file in the destination folder,
flushes, syncs and renames it over the target, so a crash or a full disk
never leaves a half-written file behind: the previous file stays intact.
:func:`write_json` is the one JSON writer of run and sweep folders, and
:func:`read_json_object` the forgiving reader of files another process may
be rewriting or may have left half done.
:func:`save_arrays` / :func:`load_arrays` store named NumPy arrays plus a JSON
header in one ``.npz`` file (no pickle); :mod:`xpnet.checkpoint` defines what
goes in them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError

__all__ = ["CheckpointError", "atomic_write", "load_arrays", "read_json_object", "save_arrays",
           "write_json"]

_META_KEY = "__meta__.json"


def atomic_write(path: str | os.PathLike, write: Any, mode: str = "wb") -> Path:
    """Call ``write(file)`` on a temporary file, then rename it to ``path``.

    Raises
    ------
    CheckpointError
        When the folder is missing or unwritable or the disk fills up; the
        temporary file is removed and any existing ``path`` is left untouched.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise CheckpointError(
            f"cannot write {path}: {err.strerror or err}; choose a folder you can write to"
        ) from err
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise CheckpointError(
                f"could not save {path}: {err.strerror or err}; nothing was written "
                "(free some disk space or pick another folder)"
            ) from err
        raise
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` to ``path`` as indented JSON with a final newline, atomically.

    Raises
    ------
    TypeError
        When ``obj`` is not JSON-ready (nothing is written then).
    CheckpointError
        As :func:`atomic_write`.
    """
    text = json.dumps(obj, indent=2) + "\n"  # before the file is touched
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object in ``path``; empty when it is missing, unreadable or not an object."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def save_arrays(path: str | os.PathLike, arrays: Mapping[str, np.ndarray],
                meta: Mapping[str, Any]) -> Path:
    """Write ``arrays`` and ``meta`` to ``path`` (``.npz``) atomically."""
    payload = {name: np.asarray(value) for name, value in arrays.items()}
    payload[_META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return atomic_write(path, lambda handle: np.savez(handle, **payload))


def load_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_arrays`: ``(arrays, meta)``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder, not an xpnet checkpoint file") from None
    except Exception as err:
        raise CheckpointError(f"{path} is truncated or not a readable xpnet checkpoint "
                              f"({type(err).__name__}: {err})") from None
    raw = arrays.pop(_META_KEY, None)
    if raw is None:
        raise CheckpointError(f"{path} is not an xpnet checkpoint (it has no metadata)")
    try:
        meta = json.loads(raw.tobytes().decode())
    except ValueError:
        raise CheckpointError(f"{path} has damaged metadata; it is not a readable "
                              "xpnet checkpoint") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} has damaged metadata; it is not a readable "
                              "xpnet checkpoint")
    return arrays, meta
