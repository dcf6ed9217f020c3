"""The update rules' default hyperparameters and state arrays: the one table that
the course's rules (:mod:`xpnet.optim`), the Solver's in-place twins, the flat
buffers and the captured step share."""

from __future__ import annotations

from typing import Any

__all__ = ["RULE_DEFAULTS", "RULE_STATE", "with_defaults"]

RULE_DEFAULTS: dict[str, dict[str, float]] = {
    "sgd": {"learning_rate": 1e-2},
    "sgd_momentum": {"learning_rate": 1e-2, "momentum": 0.9},
    "rmsprop": {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8},
    "adam": {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
    "adagrad": {"learning_rate": 1e-2, "epsilon": 1e-8},
}

#: The state arrays each built-in rule keeps in its config (zeros like ``w`` at first).
#: Adam's step count ``t`` is a number, not one of them.
RULE_STATE: dict[str, tuple[str, ...]] = {
    "sgd": (),
    "sgd_momentum": ("velocity",),
    "rmsprop": ("cache",),
    "adam": ("m", "v"),
    "adagrad": ("cache",),
}


def with_defaults(config: dict[str, Any], rule: str) -> dict[str, Any]:
    """Fill ``config`` in place with ``rule``'s defaults for the keys it lacks."""
    for key, value in RULE_DEFAULTS[rule].items():
        config.setdefault(key, value)
    return config
