"""What a training step needs to be captured once and replayed (a CUDA graph).

A captured step replays the same kernel launches with the same arguments, so
nothing that changes between steps may be a host value baked into a launch,
and nothing may wait for the device. :class:`CapturableUpdate` keeps the
learning rate and Adam's step count as 0-D arrays on the device (updated there,
or between steps), computes the bias corrections on the device, and writes
each step's loss into a preallocated device buffer at a device-side position.
With the Solver's counter-based random stream (:mod:`.counter_random`) for the
minibatch indices and dropout masks, the step has no host input at all.

The arithmetic is the reference update rules' (:mod:`xpnet._fast.reference`),
in the same order, with the device scalars rounded to the parameters' dtype as
host scalars are; so the trajectory equals the ordinary step's to rounding.
"""

from __future__ import annotations

from typing import Any

from .._fast import reference
from .rule_defaults import RULE_DEFAULTS, RULE_STATE

__all__ = ["CAPTURABLE_RULES", "CapturableUpdate", "LossBuffer"]

Array = Any

#: the built-in rules a captured step can run
CAPTURABLE_RULES = tuple(RULE_DEFAULTS)


class CapturableUpdate:
    """A built-in update rule with its changing scalars on the device.

    Parameters
    ----------
    xp : namespace
    rule : str
        One of :data:`CAPTURABLE_RULES`.
    dtype, dev
        The parameters' dtype and device.
    config : dict
        The rule's hyperparameters (``optim_config``); ``learning_rate`` and
        Adam's ``t`` become device scalars, the rest stay constants.
    """

    def __init__(self, xp, rule: str, dtype: Any, dev: Any, config: dict[str, Any]) -> None:
        self.xp, self.rule, self.dtype, self.device = xp, rule, dtype, dev
        self.config = {**RULE_DEFAULTS[rule], **{k: v for k, v in config.items()
                                             if k not in RULE_STATE[rule]}}
        self.lr = xp.asarray(float(self.config["learning_rate"]), dtype=dtype, device=dev)
        self.t = xp.asarray(float(self.config.get("t", 0)), dtype=xp.float64, device=dev)

    @property
    def state_keys(self) -> tuple[str, ...]:
        return RULE_STATE[self.rule]

    def set_learning_rate(self, value: float) -> None:
        """Between steps: the new learning rate, written into the device scalar."""
        self.lr[...] = value
        self.config["learning_rate"] = float(value)

    def begin_step(self) -> None:
        """Advance Adam's step count on the device (once per step)."""
        if self.rule == "adam":
            self.t += 1.0

    def host_t(self) -> int:
        """Adam's step count on the host (waits for the device; for checkpoints)."""
        return int(float(self.t))

    def set_host_t(self, t: int) -> None:
        self.t[...] = float(t)

    def _state(self, config: dict, key: str, w: Array) -> Array:
        if config.get(key) is None:
            config[key] = self.xp.zeros_like(w)
        return config[key]

    def update(self, w: Array, dw: Array, config: dict[str, Any]) -> None:
        """Update ``w`` and the rule's state in ``config`` in place: ``weight_decay``
        (decoupled, ``w -= lr * weight_decay * w``) first, for every rule, as in
        :mod:`xpnet.optim`, then the rule's step."""
        c, lr = self.config, self.lr
        decay = c.get("weight_decay", 0.0)
        if decay:
            reference.sgd_(w, w, lr * decay)
        if self.rule == "sgd":
            reference.sgd_(w, dw, lr)
        elif self.rule == "sgd_momentum":
            v = self._state(config, "velocity", w)
            if c.get("nesterov", False):
                reference.nesterov_momentum_(w, dw, v, lr, c["momentum"])
            else:
                reference.sgd_momentum_(w, dw, v, lr, c["momentum"])
        elif self.rule == "rmsprop":
            reference.rmsprop_(w, dw, self._state(config, "cache", w), lr, c["decay_rate"],
                               c["epsilon"])
        elif self.rule == "adagrad":
            reference.adagrad_(w, dw, self._state(config, "cache", w), lr, c["epsilon"])
        else:
            self._adam(w, dw, self._state(config, "m", w), self._state(config, "v", w))

    def _adam(self, w: Array, dw: Array, m: Array, v: Array) -> None:
        # reference.adam_ with the bias corrections computed on the device in float64
        # and rounded to the parameters' dtype, as the host's Python floats are
        xp, c = self.xp, self.config
        b1, b2 = c["beta1"], c["beta2"]
        c1 = xp.astype(1.0 - b1 ** self.t, self.dtype)
        c2 = xp.astype(1.0 - b2 ** self.t, self.dtype)
        m *= b1
        m += (1 - b1) * dw
        v *= b2
        v += (1 - b2) * (dw * dw)
        step = m / c1
        step *= self.lr
        denom = xp.sqrt(v / c2)
        denom += c["epsilon"]
        step /= denom
        w -= step


class LossBuffer:
    """Losses written on the device at a device-side position; read in bulk.

    ``values`` and ``position`` are written in place, never rebound: a captured
    step replays writes to the same arrays.
    """

    def __init__(self, xp, capacity: int, dtype: Any, dev: Any) -> None:
        self.xp = xp
        self.values = xp.zeros((capacity,), dtype=dtype, device=dev)
        self.slots = xp.arange(capacity, dtype=xp.int64, device=dev)
        self.position = xp.zeros((), dtype=xp.int64, device=dev)
        self.count = 0  # host bookkeeping only: how many were written since the last read

    def record(self, loss: Array) -> None:
        xp = self.xp
        self.values[...] = xp.where(self.slots == self.position,
                                    xp.astype(loss, self.values.dtype), self.values)
        self.position += 1
        self.count += 1

    def take(self) -> Array:
        """The losses written since the last call (a copy: one transfer when converted)."""
        out = self.xp.asarray(self.values[:self.count], copy=True)
        self.position[...] = 0
        self.count = 0
        return out

    @property
    def capacity(self) -> int:
        return int(self.values.shape[0])
