"""First-order update rules: ``rule(w, dw, config) -> (next_w, config)``.

``config`` holds the hyperparameters and the rule's state (velocity, moment
estimates); missing entries are filled with the defaults below, and the state
arrays are created on the parameter's backend on first use. The rules return
new arrays and leave ``w`` untouched, as in CS231n.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .backend import namespace_of

__all__ = ["sgd", "sgd_momentum", "rmsprop", "adam", "adagrad", "UPDATE_RULES", "get_update_rule"]

Array = Any
Config = dict


def _state(xp, config: Config, key: str, w: Array) -> Array:
    if config.get(key) is None:
        config[key] = xp.zeros_like(w)
    return config[key]


def _setup(w, dw, config, caller, **defaults):
    xp = namespace_of(w, dw, caller=caller)
    if tuple(w.shape) != tuple(dw.shape):
        raise ValueError(f"{caller}: dw has shape {tuple(dw.shape)} but w has {tuple(w.shape)}")
    config = {} if config is None else config
    for key, value in defaults.items():
        config.setdefault(key, value)
    return xp, config


def sgd(w: Array, dw: Array, config: Config | None = None) -> tuple[Array, Config]:
    """Vanilla stochastic gradient descent: ``w - learning_rate * dw``.

    config: ``learning_rate`` (1e-2).
    """
    _, config = _setup(w, dw, config, "sgd", learning_rate=1e-2)
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w: Array, dw: Array, config: Config | None = None) -> tuple[Array, Config]:
    """SGD with momentum: ``v = momentum*v - lr*dw; w = w + v``.

    config: ``learning_rate`` (1e-2), ``momentum`` (0.9), ``velocity`` (zeros).
    """
    xp, config = _setup(w, dw, config, "sgd_momentum", learning_rate=1e-2, momentum=0.9)
    v = config["momentum"] * _state(xp, config, "velocity", w) - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def rmsprop(w: Array, dw: Array, config: Config | None = None) -> tuple[Array, Config]:
    """RMSProp: a moving average of squared gradients scales each step.

    ``cache = d*cache + (1-d)*dw**2; w -= lr*dw/(sqrt(cache)+eps)``.
    config: ``learning_rate`` (1e-2), ``decay_rate`` (0.99), ``epsilon`` (1e-8),
    ``cache`` (zeros).
    """
    xp, config = _setup(w, dw, config, "rmsprop", learning_rate=1e-2, decay_rate=0.99,
                        epsilon=1e-8)
    d = config["decay_rate"]
    cache = d * _state(xp, config, "cache", w) + (1 - d) * (dw * dw)
    config["cache"] = cache
    next_w = w - config["learning_rate"] * dw / (xp.sqrt(cache) + config["epsilon"])
    return next_w, config


def adam(w: Array, dw: Array, config: Config | None = None) -> tuple[Array, Config]:
    """Adam with bias correction; ``t`` is incremented before the update.

    config: ``learning_rate`` (1e-3), ``beta1`` (0.9), ``beta2`` (0.999),
    ``epsilon`` (1e-8), ``m`` and ``v`` (zeros), ``t`` (0).
    """
    xp, config = _setup(w, dw, config, "adam", learning_rate=1e-3, beta1=0.9, beta2=0.999,
                        epsilon=1e-8, t=0)
    b1, b2 = config["beta1"], config["beta2"]
    config["t"] += 1
    t = config["t"]
    m = b1 * _state(xp, config, "m", w) + (1 - b1) * dw
    v = b2 * _state(xp, config, "v", w) + (1 - b2) * (dw * dw)
    config["m"], config["v"] = m, v
    m_hat = m / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    next_w = w - config["learning_rate"] * m_hat / (xp.sqrt(v_hat) + config["epsilon"])
    return next_w, config


def adagrad(w: Array, dw: Array, config: Config | None = None) -> tuple[Array, Config]:
    """Adagrad: steps scaled by the root of the sum of all squared gradients.

    ``cache += dw**2; w -= lr*dw/(sqrt(cache)+eps)``.
    config: ``learning_rate`` (1e-2), ``epsilon`` (1e-8), ``cache`` (zeros).
    """
    xp, config = _setup(w, dw, config, "adagrad", learning_rate=1e-2, epsilon=1e-8)
    cache = _state(xp, config, "cache", w) + dw * dw
    config["cache"] = cache
    next_w = w - config["learning_rate"] * dw / (xp.sqrt(cache) + config["epsilon"])
    return next_w, config


UPDATE_RULES: dict[str, Callable] = {
    "sgd": sgd,
    "sgd_momentum": sgd_momentum,
    "rmsprop": rmsprop,
    "adam": adam,
    "adagrad": adagrad,
}


def get_update_rule(rule: str | Callable) -> Callable:
    """The update rule named ``rule`` (a callable is returned as is)."""
    if callable(rule):
        return rule
    if rule not in UPDATE_RULES:
        raise ValueError(
            f"unknown update_rule {rule!r}; expected one of {', '.join(UPDATE_RULES)} "
            "or a function rule(w, dw, config) -> (next_w, config)"
        )
    return UPDATE_RULES[rule]
