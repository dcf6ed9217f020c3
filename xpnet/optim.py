"""First-order update rules: ``rule(w, dw, config) -> (next_w, config)``.

``config`` holds the hyperparameters and the rule's state (velocity, moment
estimates); missing entries are filled with the defaults below, and the state
arrays are created on the parameter's backend on first use. The rules return
new arrays and leave ``w`` untouched, as in CS231n.

Every rule takes an optional ``weight_decay`` (0 by default: the course's rule):
decoupled weight decay, ``w -= learning_rate * weight_decay * w`` before the
rule's step (AdamW's form, not an L2 term added to ``dw``). The course's rules,
the Solver's in-place twins (also on the flat buffers) and the captured step
(:mod:`xpnet._ops.capture`) apply it the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._fast import ops
from ._ops.muon import muon
from ._ops.rule_defaults import RULE_STATE, with_defaults
from .backend import namespace_of
from .errors import InputError

__all__ = ["sgd", "sgd_momentum", "rmsprop", "adam", "adagrad", "muon", "UPDATE_RULES",
           "MATRIX_RULES", "get_update_rule"]

Array = Any
Config = dict


def _state(xp, config: Config, key: str, w: Array) -> Array:
    """``config[key]``, created as zeros like ``w`` on first use."""
    if config.get(key) is None:
        config[key] = (xp or namespace_of(w)).zeros_like(w)
    return config[key]


def _setup(w, dw, config, caller):
    xp = namespace_of(w, dw, caller=caller)
    if tuple(w.shape) != tuple(dw.shape):
        raise InputError(f"{caller}: dw has shape {tuple(dw.shape)} but w has {tuple(w.shape)}")
    return xp, with_defaults({} if config is None else config, caller)


def _decayed(w: Array, config: Config) -> Array:
    """``w - lr * weight_decay * w``: decoupled weight decay (AdamW's), before the step."""
    decay = config.get("weight_decay", 0.0)
    if not decay:
        return w
    return w - (config["learning_rate"] * decay) * w


def sgd(w: Array, dw: Array, config: Config | None = None) -> tuple[Array, Config]:
    """Vanilla stochastic gradient descent: ``w - learning_rate * dw``.

    config: ``learning_rate`` (1e-2); optionally ``weight_decay`` (0: decoupled,
    ``w -= lr * weight_decay * w`` before the step).
    """
    _, config = _setup(w, dw, config, "sgd")
    return _decayed(w, config) - config["learning_rate"] * dw, config


def sgd_momentum(w: Array, dw: Array, config: Config | None = None) -> tuple[Array, Config]:
    """SGD with momentum: ``v = momentum*v - lr*dw; w = w + v``.

    config: ``learning_rate`` (1e-2), ``momentum`` (0.9), ``velocity`` (zeros);
    optionally ``nesterov`` (False: with True, ``w = w + momentum*v - lr*dw``, the
    CS231n notes' Nesterov form) and ``weight_decay`` (0: decoupled, ``w -=
    lr * weight_decay * w`` before the step).
    """
    xp, config = _setup(w, dw, config, "sgd_momentum")
    lr, mu = config["learning_rate"], config["momentum"]
    v = mu * _state(xp, config, "velocity", w) - lr * dw
    config["velocity"] = v
    w = _decayed(w, config)
    if config.get("nesterov", False):
        return (w + mu * v) - lr * dw, config
    return w + v, config


def rmsprop(w: Array, dw: Array, config: Config | None = None) -> tuple[Array, Config]:
    """RMSProp: a moving average of squared gradients scales each step.

    ``cache = d*cache + (1-d)*dw**2; w -= lr*dw/(sqrt(cache)+eps)``.
    config: ``learning_rate`` (1e-2), ``decay_rate`` (0.99), ``epsilon`` (1e-8),
    ``cache`` (zeros); optionally ``weight_decay`` (0: decoupled, ``w -= lr *
    weight_decay * w`` before the step).
    """
    xp, config = _setup(w, dw, config, "rmsprop")
    d = config["decay_rate"]
    cache = d * _state(xp, config, "cache", w) + (1 - d) * (dw * dw)
    config["cache"] = cache
    w = _decayed(w, config)
    next_w = w - config["learning_rate"] * dw / (xp.sqrt(cache) + config["epsilon"])
    return next_w, config


def adam(w: Array, dw: Array, config: Config | None = None) -> tuple[Array, Config]:
    """Adam with bias correction; ``t`` is incremented before the update.

    config: ``learning_rate`` (1e-3), ``beta1`` (0.9), ``beta2`` (0.999),
    ``epsilon`` (1e-8), ``m`` and ``v`` (zeros), ``t`` (0); optionally
    ``weight_decay`` (0: decoupled, AdamW's ``w -= lr * weight_decay * w``).
    """
    xp, config = _setup(w, dw, config, "adam")
    config.setdefault("t", 0)
    b1, b2 = config["beta1"], config["beta2"]
    config["t"] += 1
    t = config["t"]
    m = b1 * _state(xp, config, "m", w) + (1 - b1) * dw
    v = b2 * _state(xp, config, "v", w) + (1 - b2) * (dw * dw)
    config["m"], config["v"] = m, v
    m_hat = m / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    w = _decayed(w, config)
    next_w = w - config["learning_rate"] * m_hat / (xp.sqrt(v_hat) + config["epsilon"])
    return next_w, config


def adagrad(w: Array, dw: Array, config: Config | None = None) -> tuple[Array, Config]:
    """Adagrad: steps scaled by the root of the sum of all squared gradients.

    ``cache += dw**2; w -= lr*dw/(sqrt(cache)+eps)``.
    config: ``learning_rate`` (1e-2), ``epsilon`` (1e-8), ``cache`` (zeros);
    optionally ``weight_decay`` (0: decoupled, ``w -= lr * weight_decay * w``
    before the step).
    """
    xp, config = _setup(w, dw, config, "adagrad")
    cache = _state(xp, config, "cache", w) + dw * dw
    config["cache"] = cache
    w = _decayed(w, config)
    next_w = w - config["learning_rate"] * dw / (xp.sqrt(cache) + config["epsilon"])
    return next_w, config


UPDATE_RULES: dict[str, Callable] = {
    "sgd": sgd,
    "sgd_momentum": sgd_momentum,
    "rmsprop": rmsprop,
    "adam": adam,
    "adagrad": adagrad,
}

#: Rules for matrices and filter banks only (not for every parameter, so apart from
#: UPDATE_RULES): Muon, for the conv weights of a parameter group
#: (:func:`xpnet._ops.muon.muon`).
MATRIX_RULES: dict[str, Callable] = {"muon": muon}

#: The state arrays each built-in rule keeps in its config, by rule function (the
#: table by name is :data:`xpnet._ops.rule_defaults.RULE_STATE`).
STATE_KEYS: dict[Callable, tuple[str, ...]] = {
    rule: RULE_STATE[name] for name, rule in UPDATE_RULES.items()}


def get_update_rule(rule: str | Callable) -> Callable:
    """The update rule named ``rule`` (a callable is returned as is)."""
    if callable(rule):
        return rule
    if rule in MATRIX_RULES:
        return MATRIX_RULES[rule]
    if rule not in UPDATE_RULES:
        raise InputError(
            f"unknown update_rule {rule!r}; expected one of "
            f"{', '.join([*UPDATE_RULES, *MATRIX_RULES])} "
            "or a function rule(w, dw, config) -> (next_w, config)"
        )
    return UPDATE_RULES[rule]


# ---------------------------------------------------------------------------
# In-place twins, for the Solver only
# ---------------------------------------------------------------------------
# The public rules above return new arrays and leave w untouched, as CS231n
# users expect. The Solver owns its parameters and state, so it updates them in
# place with these twins instead: same defaults, same state keys in config (so
# checkpoints are unchanged) and no new arrays per step. The arithmetic is the
# registered operations' (xpnet._fast.ops): their references compute in the
# same order as the rules above (the same results, bit for bit); a library's
# fast path may fuse or reorder it within its declared tolerance.

def _decay_(w, config: Config) -> None:
    decay = config.get("weight_decay", 0.0)
    if decay:
        ops.sgd_(w, w, config["learning_rate"] * decay)  # w -= (lr * decay) * w


def _inplace_sgd(w, dw, config: Config) -> Config:
    with_defaults(config, "sgd")
    _decay_(w, config)
    ops.sgd_(w, dw, config["learning_rate"])
    return config


def _inplace_sgd_momentum(w, dw, config: Config) -> Config:
    with_defaults(config, "sgd_momentum")
    v = _state(None, config, "velocity", w)
    _decay_(w, config)
    if config.get("nesterov", False):
        ops.nesterov_momentum_(w, dw, v, config["learning_rate"], config["momentum"])
    else:
        ops.sgd_momentum_(w, dw, v, config["learning_rate"], config["momentum"])
    return config


def _inplace_rmsprop(w, dw, config: Config) -> Config:
    with_defaults(config, "rmsprop")
    cache = _state(None, config, "cache", w)
    _decay_(w, config)
    ops.rmsprop_(w, dw, cache, config["learning_rate"], config["decay_rate"],
                 config["epsilon"])
    return config


def _inplace_adam(w, dw, config: Config) -> Config:
    with_defaults(config, "adam")
    config["t"] = config.get("t", 0) + 1
    m = _state(None, config, "m", w)
    v = _state(None, config, "v", w)
    _decay_(w, config)
    ops.adam_(w, dw, m, v, config["learning_rate"], config["beta1"], config["beta2"],
              config["epsilon"], config["t"])
    return config


def _inplace_adagrad(w, dw, config: Config) -> Config:
    with_defaults(config, "adagrad")
    cache = _state(None, config, "cache", w)
    _decay_(w, config)
    ops.adagrad_(w, dw, cache, config["learning_rate"], config["epsilon"])
    return config


_INPLACE_TWINS: dict[Callable, Callable] = {
    sgd: _inplace_sgd,
    sgd_momentum: _inplace_sgd_momentum,
    rmsprop: _inplace_rmsprop,
    adam: _inplace_adam,
    adagrad: _inplace_adagrad,
}


def inplace_update(rule: Callable) -> Callable | None:
    """Solver-internal: ``f(w, dw, config) -> config`` updating ``w`` and the rule's
    state arrays in place, for the built-in ``rule``; None for any other rule.

    The caller must own ``w`` and the state arrays (nothing else may hold them)
    and pass ``dw`` of ``w``'s shape, dtype and backend.
    """
    twin = _INPLACE_TWINS.get(rule)
    if twin is None:
        return None

    def update(w: Array, dw: Array, config: Config) -> Config:
        if w.shape != dw.shape:
            raise InputError(f"{rule.__name__}: dw has shape {tuple(dw.shape)} but w has "
                             f"{tuple(w.shape)}")
        return twin(w, dw, config)

    return update
