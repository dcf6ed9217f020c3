"""How the Solver applies its update rule: one strategy, chosen once.

:func:`choose` picks, from the rule and the backend, one of

:class:`CourseUpdate`
    a rule that is not built in: ``rule(w, dw, config) -> (next_w, config)``
    returns new arrays, as in CS231n;
:class:`InPlaceUpdate`
    a built-in rule on a library without guaranteed views (``array_api_strict``):
    its in-place twin (:func:`xpnet.optim.inplace_update`) updates the Solver's
    own copies of the parameters one by one;
:class:`FlatUpdate`
    a built-in rule on NumPy, PyTorch or CuPy: parameters and the rule's state
    are views of one flat buffer per dtype (:mod:`xpnet._ops.flat`); PyTorch and
    CuPy update each buffer in one call (one fused kernel instead of one per
    parameter), NumPy view by view (which spares the gradients' copy: its update
    is memory bound either way);
:class:`CapturableStep`
    ``capturable=True``, a step that can be captured once and replayed (a CUDA
    graph): the learning rate and Adam's step count are device scalars with the
    bias corrections computed there (:class:`xpnet._ops.capture.CapturableUpdate`).
    With the Solver's counter-based stream, its loss buffer and the training set on
    the device, the step has no host input and no synchronization, and nothing it
    writes (parameters, optimizer state, running statistics, losses) is rebound.
    :func:`capture_problem` says when this cannot be (another rule, a per-iteration
    schedule, mixed dtypes, the training set on the host).

The in-place strategies never change an array they did not make: a parameter
the model or a user put there is copied once, at the first step that sees it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

from .. import optim
from .._ops.capture import CAPTURABLE_RULES, CapturableUpdate
from .._ops.flat import VIEW_LIBRARIES, FlatParams
from ..backend import Backend

__all__ = ["CapturableStep", "CourseUpdate", "FlatUpdate", "InPlaceUpdate", "UpdateStrategy",
           "capture_problem", "choose", "fresh_configs", "rule_label", "rule_name",
           "try_capture"]

Params = dict[str, Any]
Configs = dict[str, dict[str, Any]]


def rule_name(rule: Callable) -> str | None:
    """The name of a built-in update rule (None for any other function)."""
    return next((name for name, f in optim.UPDATE_RULES.items() if f is rule), None)


def rule_label(rule: Callable) -> str:
    """A built-in rule's name, else the function's qualified name (for checkpoints)."""
    return rule_name(rule) or (f"{getattr(rule, '__module__', '?')}."
                               f"{getattr(rule, '__qualname__', type(rule).__qualname__)}")


def fresh_configs(backend: Backend, optim_config: Mapping[str, Any], names) -> Configs:
    """One copy of ``optim_config`` per parameter (arrays copied: they may be
    updated in place)."""
    xp = backend.xp
    return {name: {k: xp.asarray(v, copy=True) if backend.owns(v) else v
                   for k, v in optim_config.items()} for name in names}


def capture_problem(rule: Callable, schedule: Any, params: Params, on_device: bool) -> str | None:
    """Why the step cannot be kept capture-ready, or None."""
    name = rule_name(rule)
    if name not in CAPTURABLE_RULES:
        return (f"update rule {name or rule!r} is not one of the built-in rules "
                f"{', '.join(CAPTURABLE_RULES)}")
    if schedule is not None:
        return "a per-iteration lr_schedule sets the learning rate from the host"
    dtypes = {str(v.dtype) for v in params.values()}
    if len(dtypes) != 1:
        return f"the parameters have several dtypes ({', '.join(sorted(dtypes))})"
    if not on_device:
        return ("the training set stays on the host (data_on_device=False), so every step "
                "copies its minibatch from the host and waits for it; put it on the device")
    return None


def try_capture(rule: Callable, schedule: Any, params: Params, on_device: bool
                ) -> tuple[bool, str | None]:
    """``(capturable, problem)`` for a Solver asked for a capture-ready step: where
    it cannot be, one warning says why (and the ordinary step runs)."""
    problem = capture_problem(rule, schedule, params, on_device)
    if problem:
        warnings.warn(f"Solver: the step runs uncaptured: {problem}", stacklevel=3)
    return problem is None, problem


def choose(backend: Backend, rule: Callable, optim_config: Mapping[str, Any], params: Params,
           capturable: bool = False) -> UpdateStrategy:
    """The update strategy for ``rule`` on ``backend`` (see the module docstring)."""
    if capturable:
        dtype = next(iter(params.values())).dtype
        return CapturableStep(backend, rule, CapturableUpdate(
            backend.xp, rule_name(rule), dtype, backend.device, dict(optim_config)))
    twin = optim.inplace_update(rule)
    if twin is None:
        return CourseUpdate(backend, rule)
    if backend.name in VIEW_LIBRARIES:
        return FlatUpdate(backend, rule, twin)
    return InPlaceUpdate(backend, rule, twin)


class UpdateStrategy:
    """Applies an update rule to a model's parameters, step after step."""

    #: the in-place update ``f(w, dw, config) -> config`` (None: the rule returns new arrays)
    in_place: Callable | None = None

    def __init__(self, backend: Backend, rule: Callable) -> None:
        self.backend, self.rule = backend, rule

    def apply(self, params: Params, grads: Params, configs: Configs) -> None:
        """Update every parameter (and its config) from this step's gradients."""
        raise NotImplementedError

    def set_learning_rate(self, configs: Configs, new: Callable[[float], float] | None
                          ) -> None:
        """Between steps: every ``learning_rate`` becomes ``new(learning_rate)`` (None:
        unchanged; see :mod:`.rate`)."""
        if new is None:
            return
        for config in configs.values():
            if "learning_rate" in config:
                config["learning_rate"] = new(config["learning_rate"])

    def sync(self, configs: Configs) -> None:
        """Before a checkpoint: scalars kept elsewhere written into the configs."""

    def load(self, configs: Configs) -> None:
        """After a checkpoint: the configs' scalars put where this strategy keeps them."""

    def restore(self, params: Params, values: Params) -> None:
        """Put ``values`` (the best parameters) into ``params``, never aliasing them."""
        xp = self.backend.xp
        for name, value in values.items():
            params[name] = xp.asarray(value, copy=True)


class CourseUpdate(UpdateStrategy):
    """The course's rule: new arrays for the parameters and the state."""

    def apply(self, params: Params, grads: Params, configs: Configs) -> None:
        for name, w in params.items():
            params[name], configs[name] = self.rule(w, grads[name], configs[name])


class InPlaceUpdate(UpdateStrategy):
    """A built-in rule's in-place twin on the Solver's own copies, one by one."""

    def __init__(self, backend: Backend, rule: Callable, in_place: Callable) -> None:
        super().__init__(backend, rule)
        self.in_place = in_place
        self._owned: Params = {}

    def owns(self, params: Params, name: str) -> bool:
        return name in params and self._owned.get(name) is params[name]

    def own(self, params: Params, name: str) -> Any:
        """``params[name]``, replaced by a copy of it the first time it is seen."""
        if not self.owns(params, name):
            params[name] = self._owned[name] = self.backend.xp.asarray(params[name], copy=True)
        return params[name]

    def apply(self, params: Params, grads: Params, configs: Configs) -> None:
        for name in params:
            result = self.in_place(self.own(params, name), grads[name], configs[name])
            if result is not None:
                configs[name] = result

    def restore(self, params: Params, values: Params) -> None:
        """In place into the arrays this strategy owns (they keep their addresses)."""
        xp = self.backend.xp
        for name, value in values.items():
            w = params.get(name)
            if self.owns(params, name) and w.shape == value.shape and w.dtype == value.dtype:
                w[...] = value
            else:
                params[name] = xp.asarray(value, copy=True)


class FlatUpdate(InPlaceUpdate):
    """Parameters and state as views of one flat buffer per dtype."""

    def __init__(self, backend: Backend, rule: Callable, in_place: Callable) -> None:
        super().__init__(backend, rule, in_place)
        self.keys = optim.STATE_KEYS[rule]
        self.flat: FlatParams | None = None

    def apply(self, params: Params, grads: Params, configs: Configs) -> None:
        flat = self.flat
        if flat is None or not flat.current(params, configs):
            # packs copies: arrays the Solver did not make are never changed
            flat = self.flat = FlatParams.build(self.backend.xp, self.backend.name, params,
                                                configs, self.keys)
            if flat is not None:
                self._owned = {n: g.views[n] for g in flat.groups for n in g.names}
        if flat is None:  # configs that cannot share one update: parameter by parameter
            super().apply(params, grads, configs)
        elif not flat.fused:
            for name, w in params.items():
                configs[name] = self.in_place(w, grads[name], configs[name])
        else:
            self._apply_fused(flat, grads, configs)

    def _apply_fused(self, flat: FlatParams, grads: Params, configs: Configs) -> None:
        flat.load_grads(grads)
        first = configs[flat.groups[0].names[0]]
        scalars = {k: v for k, v in first.items() if k not in self.keys}
        for group in flat.groups:
            config = self.in_place(group.w, group.dw, {**scalars, **group.state})
        scalars = {k: v for k, v in config.items() if k not in self.keys}
        for config in configs.values():
            config.update(scalars)  # Adam's t


class CapturableStep(InPlaceUpdate):
    """A built-in rule with its changing scalars on the device; nothing is rebound."""

    def __init__(self, backend: Backend, rule: Callable, capture: CapturableUpdate) -> None:
        super().__init__(backend, rule, capture.update)
        self.capture = capture

    def apply(self, params: Params, grads: Params, configs: Configs) -> None:
        self.capture.begin_step()
        super().apply(params, grads, configs)

    def set_learning_rate(self, configs: Configs, new: Callable[[float], float] | None
                          ) -> None:
        if new is None:
            return
        super().set_learning_rate(configs, new)
        self.capture.set_learning_rate(new(self.capture.config["learning_rate"]))

    def sync(self, configs: Configs) -> None:
        for config in configs.values():  # the device scalars, as the ordinary step keeps them
            config["learning_rate"] = self.capture.config["learning_rate"]
            if self.capture.rule == "adam":
                config["t"] = self.capture.host_t()

    def load(self, configs: Configs) -> None:
        first = next(iter(configs.values()), None)
        if first is None:
            return
        if "learning_rate" in first:
            self.capture.set_learning_rate(first["learning_rate"])
        self.capture.set_host_t(int(first.get("t", 0)))
