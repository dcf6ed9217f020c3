"""The Solver's state: what a checkpoint holds, writing it, and resuming from it.

A Solver checkpoint is a file of :mod:`xpnet.checkpoint` (kind 'solver'): the
model's params and buffers, the best ones so far, the update rule's state
arrays, and a header with the counters, histories, update-rule scalars, the
random stream's state, and what the trajectory depends on: the update rule
and the random stream's kind. A checkpoint made with another rule or another
kind of stream is refused (resuming it would silently follow another
trajectory).
"""

from __future__ import annotations

from typing import Any

from .. import checkpoint
from .._ops.counter_random import CounterStream
from ..backend import to_numpy
from ..errors import CheckpointError
from .updates import rule_label

__all__ = ["buffers_of", "load", "restore_best", "save", "snapshot", "state", "stream_kind"]

#: what each random-stream kind is called in a header, and how a Solver gets it
_STREAMS = {"counter": "a counter-based device stream (device_random=True or capturable=True)",
            "generator": "the backend's generator (device_random=False, capturable=False)"}


def stream_kind(stream: Any) -> str:
    """'counter' for a :class:`CounterStream`, else 'generator'."""
    return "counter" if isinstance(stream, CounterStream) else "generator"


def buffers_of(model: Any) -> dict[str, Any]:
    """A model's buffers (none for a model without the protocol's ``buffers``)."""
    return dict(getattr(model, "buffers", None) or {})


def snapshot(model: Any, backend: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Copies of the model's params and buffers (the best so far)."""
    xp = backend.xp
    return ({k: xp.asarray(v, copy=True) for k, v in model.params.items()},
            {k: xp.asarray(v, copy=True) for k, v in buffers_of(model).items()})


def restore_best(solver: Any) -> None:
    """The best parameters and buffers so far back into the model, in place where
    the update strategy owns the arrays."""
    if solver.best_params:
        solver.updater.restore(solver.model.params, solver.best_params)
        restore_buffers(solver.model, solver.best_buffers, solver.backend)


def restore_buffers(model: Any, values: dict[str, Any], backend: Any) -> None:
    """Put ``values`` into the model's buffers: in place where the arrays match
    (they keep their addresses), else through ``load_buffers`` with copies."""
    live = buffers_of(model)
    rest = {}
    for name, value in values.items():
        current = live.get(name)
        if current is not None and current.shape == value.shape and current.dtype == value.dtype:
            current[...] = value
        else:
            rest[name] = backend.xp.asarray(value, copy=True)
    if rest:
        model.load_buffers(rest)


def state(solver: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(host arrays, header)`` of ``solver``'s checkpoint."""
    solver._flush_losses()
    model = solver.model
    arrays: dict[str, Any] = {f"params/{k}": to_numpy(v) for k, v in model.params.items()}
    arrays.update({f"buffers/{k}": to_numpy(v) for k, v in buffers_of(model).items()})
    arrays.update({f"best/params/{k}": to_numpy(v) for k, v in solver.best_params.items()})
    arrays.update({f"best/buffers/{k}": to_numpy(v) for k, v in solver.best_buffers.items()})
    solver.updater.sync(solver.optim_configs)
    scalars: dict[str, dict[str, Any]] = {}
    for name, config in solver.optim_configs.items():
        scalars[name] = {}
        for key, value in config.items():
            if isinstance(value, (int, float, str, bool)) or value is None:
                scalars[name][key] = value
            else:
                arrays[f"optim/{name}/{key}"] = to_numpy(value)
    meta = {
        "model": _model_meta(model),
        "solver": {
            "update_rule": solver.update_rule_name,
            "update_function": None if solver.update_rule_name else _label(solver),
            "stream": stream_kind(solver.random),
            "optim_scalars": scalars,
            "lr_decay": solver.lr_decay,
            "batch_size": solver.batch_size,
            "num_epochs": solver.num_epochs,
            "epoch": solver.epoch,
            "iteration": solver.iteration,
            "best_val_acc": solver.best_val_acc,
            "loss_history": solver.losses.history,
            "train_acc_history": solver.train_acc_history,
            "val_acc_history": solver.val_acc_history,
        },
        "rng": solver.random.state(),
    }
    return arrays, meta


def save(solver: Any, path: str) -> str:
    """Write ``solver``'s state to ``path`` (``.npz``) atomically."""
    arrays, meta = state(solver)
    return str(checkpoint.write(path, arrays, meta, "solver"))


def load(solver: Any, path: str) -> None:
    """Restore ``solver`` from a checkpoint of :func:`save` (any format version)."""
    arrays, meta = checkpoint.read(path)
    if meta["kind"] != "solver" or not isinstance(meta.get("solver"), dict):
        raise CheckpointError(f"{path} holds a saved model, not a Solver checkpoint; "
                              "load it with xpnet.load_model instead")
    saved = meta["solver"]
    _check_trajectory(solver, saved, meta.get("rng"), path)
    config = (meta.get("model") or {}).get("config")
    if isinstance(config, dict) and hasattr(solver.model, "set_frozen"):
        # parameters that froze during the run (FreezeAfter) are frozen again
        solver.model.set_frozen(config.get("frozen") or [])
    checkpoint.load_state(solver.model, arrays, source=f"checkpoint {path}")
    be = solver.backend
    solver.best_params = {k: be.asarray(v)
                          for k, v in checkpoint.split(arrays, "best/params/").items()}
    solver.best_buffers = {k: be.asarray(v)
                           for k, v in checkpoint.split(arrays, "best/buffers/").items()}
    solver.optim_configs = {}
    for name, scalars in saved["optim_scalars"].items():
        config = dict(scalars)
        config.update({k: be.asarray(v)
                       for k, v in checkpoint.split(arrays, f"optim/{name}/").items()})
        solver.optim_configs[name] = config
    solver.epoch = saved["epoch"]
    solver.iteration = saved["iteration"]
    solver.best_val_acc = saved["best_val_acc"]
    solver.losses.load(saved["loss_history"])
    solver.train_acc_history = list(saved["train_acc_history"])
    solver.val_acc_history = list(saved["val_acc_history"])
    if meta.get("rng"):
        solver.random.set_state(meta["rng"])
    solver.updater.load(solver.optim_configs)


def _label(solver: Any) -> str:
    return rule_label(solver.update_rule)


def _check_trajectory(solver: Any, saved: dict, rng: Any, path: str) -> None:
    """Refuse a checkpoint whose update rule or random-stream kind differs."""
    rule, ours = saved.get("update_rule"), solver.update_rule_name
    function = saved.get("update_function")
    # files of earlier releases stored None for any function given as the rule
    # (optim.adam among them): there a missing name says nothing
    known = rule is not None or "update_function" in saved
    if known and (rule != ours or (rule is None and function != _label(solver))):
        theirs = rule or function or "a function of its own"
        mine = ours or _label(solver)
        raise CheckpointError(
            f"{path} was saved by a Solver with update rule {theirs!r}, this Solver has "
            f"{mine!r}: its optimizer state would follow another trajectory; build the "
            f"Solver with update_rule={theirs!r} to resume it, or start a new run")
    kind = saved.get("stream") or (
        "counter" if isinstance(rng, dict) and rng.get("kind") == "counter" else "generator")
    if kind != stream_kind(solver.random):
        raise CheckpointError(
            f"{path} was saved by a Solver drawing from {_STREAMS.get(kind, kind)}; this "
            f"Solver draws from {_STREAMS[stream_kind(solver.random)]}, so resuming would "
            "follow another trajectory: build the Solver with the same device_random / "
            "capturable settings to resume it, or start a new run")


def _model_meta(model: Any) -> dict[str, Any]:
    try:
        return checkpoint.model_meta(model)
    except (AttributeError, NotImplementedError):  # a duck-typed model: no config
        return {"class": f"{type(model).__module__}.{type(model).__qualname__}", "config": None}
