"""xpnet's one file format for models and training state (version 2).

A file is an ``.npz`` written atomically by :mod:`xpnet.files` (no pickle):
named arrays plus a JSON header.

Arrays
    ``params/<name>`` and ``buffers/<name>`` of the model; in a Solver
    checkpoint also ``best/params/<name>``, ``best/buffers/<name>`` and
    ``optim/<param>/<key>`` (the update rule's state).
Header
    ``format: "xpnet"``, ``version: 2``, ``kind`` ('model' or 'solver'),
    ``model: {class, config}`` (what rebuilds it), and for a Solver
    ``solver`` (counters, histories, update-rule scalars, the update rule and
    the random stream's kind, ``stream``: 'generator' or 'counter') and ``rng``
    (its random stream's state); ``info`` holds anything else (epoch,
    validation accuracy).

Solver checkpoints, run folders' ``best_model.npz`` and :func:`save_model`
all write this format, and :func:`load_model` rebuilds any model from any of
them on any backend. Files of the first formats (``xpnet-solver-checkpoint/1``
and ``xpnet-model/1``) are read and upgraded on the fly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .backend import Backend, dtype_name, get_backend, to_numpy
from .errors import CheckpointError, InputError
from .files import load_arrays, save_arrays
from .nn.model import Model, model_class, qualified_name

__all__ = ["FORMAT", "VERSION", "load_model", "model_meta", "read", "rebuild_model",
           "save_model", "split", "write"]

FORMAT = "xpnet"
VERSION = 2
_KINDS = ("model", "solver")


def model_meta(model: Model) -> dict[str, Any]:
    """``{'class': ..., 'config': ...}``: what rebuilds ``model``."""
    return {"class": qualified_name(type(model)), "config": model.config}


def model_arrays(model: Model, prefix: str = "") -> dict[str, np.ndarray]:
    """The model's params and buffers as host arrays named for a file."""
    arrays = {f"{prefix}params/{k}": to_numpy(v) for k, v in model.params.items()}
    arrays.update({f"{prefix}buffers/{k}": to_numpy(v) for k, v in model.buffers.items()})
    return arrays


def write(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any],
          kind: str) -> Path:
    """Write a version-2 file atomically (``meta`` gets the format stamp)."""
    header = {"format": FORMAT, "version": VERSION, "kind": kind,
              "xpnet_version": __version__, **meta}
    return save_arrays(path, arrays, header)


def save_model(path: str | os.PathLike, model: Model,
               info: Mapping[str, Any] | None = None) -> Path:
    """Save ``model`` (class, config, params, buffers) to ``path`` atomically.

    Parameters
    ----------
    path : path
        The file (``.npz``).
    model : Model
    info : dict, optional
        JSON-ready facts to keep with it (epoch, validation accuracy, ...).
    """
    return write(path, model_arrays(model), {"model": model_meta(model),
                                             "info": dict(info or {})}, "model")


def read(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read any xpnet file as version 2: ``(arrays, meta)``.

    Raises
    ------
    CheckpointError
        For a missing, truncated or foreign file, or a version this xpnet does
        not know, naming the file.
    """
    arrays, meta = load_arrays(path)
    fmt = meta.get("format")
    if fmt == "xpnet-solver-checkpoint/1":
        return _upgrade_solver_v1(arrays, meta, path)
    if fmt == "xpnet-model/1":
        return _upgrade_model_v1(arrays, meta, path)
    if fmt != FORMAT:
        raise CheckpointError(f"{path} is not an xpnet model or checkpoint file "
                              f"(format {fmt!r})")
    version = meta.get("version")
    if version != VERSION:
        raise CheckpointError(
            f"{path} has format version {version!r}, which this xpnet ({__version__}) cannot "
            f"read (it reads versions 1 and {VERSION}); it was written by another xpnet "
            "release: upgrade xpnet to load it")
    if meta.get("kind") not in _KINDS or not isinstance(meta.get("model"), dict):
        raise CheckpointError(f"{path} has a damaged header (kind or model missing)")
    return arrays, meta


def split(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays under ``prefix`` ('params/', 'best/buffers/', ...), prefix removed."""
    return {k[len(prefix):]: v for k, v in arrays.items()
            if k.startswith(prefix) and "/" not in k[len(prefix):]}


def rebuild_model(meta_model: Mapping[str, Any], backend: Backend | str | None = None,
                  source: str = "the file") -> Model:
    """A new model of the class and config in ``meta_model`` (initial weights)."""
    cls = model_class(str(meta_model.get("class")), source)
    config = meta_model.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{source} does not say how to rebuild its "
                              f"{cls.__name__} (no config)")
    try:
        return cls.from_config(config, backend=backend)
    except (TypeError, KeyError) as err:
        raise CheckpointError(f"{source}: cannot rebuild {cls.__name__} from its "
                              f"config ({err})") from None


def load_state(model: Model, arrays: Mapping[str, np.ndarray], prefix: str = "",
               source: str = "the file") -> None:
    """Put the file's params and buffers (under ``prefix``) into ``model``."""
    params = split(arrays, f"{prefix}params/")
    shapes = {k: tuple(v.shape) for k, v in model.params.items()}
    saved = {k: tuple(v.shape) for k, v in params.items()}
    if shapes != saved:
        raise InputError(
            f"{source} holds parameters {_shapes(saved)} but the "
            f"{type(model).__name__} has {_shapes(shapes)}; the architectures differ: "
            "build the model with the same architecture")
    be = model.backend
    for name, value in params.items():
        dtype = np.dtype(dtype_name(model.params[name].dtype))
        model.params[name] = be.asarray(value.astype(dtype, copy=False))
    buffers = split(arrays, f"{prefix}buffers/")
    if buffers:
        model.load_buffers(buffers)


def _shapes(shapes: Mapping[str, tuple]) -> str:
    return "{" + ", ".join(f"{k}: {list(v)}" for k, v in sorted(shapes.items())) + "}"


def load_model(path: str | os.PathLike, backend: Backend | str | None = None) -> Model:
    """Rebuild the model saved in ``path`` on ``backend``.

    Parameters
    ----------
    path : path
        A file of :func:`save_model`, a run folder's ``best_model.npz`` or a
        Solver checkpoint (its current parameters), of any format version.
    backend : name or Backend, optional
        Default ``$XPNET_BACKEND`` or auto; need not be the one it was saved on.

    Raises
    ------
    CheckpointError
        When the file cannot be read or does not describe a model.
    """
    arrays, meta = read(path)
    model = rebuild_model(meta["model"], get_backend(backend), source=str(path))
    load_state(model, arrays, source=str(path))
    return model


# ---------------------------------------------------------------------------
# Version 1 files


def _fc_config(params: Mapping[str, np.ndarray], normalization: str | None,
               keep_ratio: float = 1.0) -> dict[str, Any]:
    layers = sorted(int(k[1:]) for k in params if k.startswith("W") and k[1:].isdigit())
    if not layers:
        raise CheckpointError("no weights W1, W2, ... in the file")
    widths = [int(params[f"W{i}"].shape[1]) for i in layers]
    return {"hidden_dims": widths[:-1], "input_dim": int(params["W1"].shape[0]),
            "num_classes": widths[-1], "dropout_keep_ratio": keep_ratio,
            "normalization": normalization, "dtype": str(params["W1"].dtype)}


def _upgrade_solver_v1(arrays: dict, meta: dict, path: Any) -> tuple[dict, dict]:
    new: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if key.startswith("best_params/"):
            new["best/params/" + key[len("best_params/"):]] = value
        elif key.startswith("bn/"):
            _, index, stat = key.split("/")
            new[f"buffers/{stat}{int(index) + 1}"] = value
        else:
            new[key] = value
    params = split(new, "params/")
    has_gamma = "gamma1" in params
    normalization = None if not has_gamma else (
        "batchnorm" if any(k.startswith("buffers/") for k in new) else "layernorm")
    try:
        name = meta.get("model", "FullyConnectedNet")
        config = _fc_config(params, normalization)
        if name == "TwoLayerNet":
            config = {"input_dim": config["input_dim"], "hidden_dim": config["hidden_dims"][0],
                      "num_classes": config["num_classes"], "dtype": config["dtype"]}
        solver = {k: meta[k] for k in ("update_rule", "optim_scalars", "lr_decay", "batch_size",
                                       "num_epochs", "epoch", "iteration", "best_val_acc",
                                       "loss_history", "train_acc_history", "val_acc_history")}
    except (KeyError, IndexError, CheckpointError) as err:
        raise CheckpointError(f"{path} is a damaged version-1 checkpoint ({err})") from None
    return new, {"format": FORMAT, "version": 1, "kind": "solver",
                 "model": {"class": name, "config": config}, "solver": solver,
                 "rng": meta.get("rng_state"), "info": {}}


def _upgrade_model_v1(arrays: dict, meta: dict, path: Any) -> tuple[dict, dict]:
    new = {(f"buffers/{k}" if k.startswith("running_") else f"params/{k}"): v
           for k, v in arrays.items()}
    normalization = meta.get("normalization")
    try:
        config = _fc_config(split(new, "params/"),
                            None if normalization in (None, "none") else normalization,
                            float(meta.get("keep_ratio", 1.0)))
        if "input_shape" in meta:
            if math.prod(meta["input_shape"]) != config["input_dim"]:
                raise CheckpointError("input_shape does not fit W1")
    except (KeyError, CheckpointError) as err:
        raise CheckpointError(f"{path} is a damaged version-1 model file ({err})") from None
    info = {k: meta[k] for k in ("epoch", "iteration", "val_acc", "input_shape") if k in meta}
    return new, {"format": FORMAT, "version": 1, "kind": "model",
                 "model": {"class": meta.get("model", "FullyConnectedNet"), "config": config},
                 "info": info}
