"""Parameter groups: an update rule and ``optim_config`` that differ per parameter.

The Solver's ``param_groups`` is a list of dicts, each with ``params`` (which
parameters: a name pattern such as ``"*.beta"`` (:mod:`fnmatch`), a list of
patterns, or a predicate ``f(name, array) -> bool``), optionally
``update_rule``, and any ``optim_config`` entries to override. A parameter
belongs to the first group that matches it; the others train with the
Solver's own ``update_rule`` and ``optim_config``. Examples, the speed record's::

    param_groups=[
        # batchnorm shifts: 64x the learning rate, the same decay per step
        {"params": "*.beta", "learning_rate": 64 * lr, "weight_decay": wd / 64},
        # conv filter banks: Muon
        {"params": lambda name, w: w.ndim == 4, "update_rule": "muon",
         "learning_rate": 0.24, "momentum": 0.6, "ns_steps": 3, "normalize": True},
    ]

A group's ``learning_rate`` is its rate where the Solver's ``optim_config`` has
its base rate: schedules and ``lr_decay`` scale every group alike (a group at
64x the base stays at 64x). With decoupled weight decay (``w -= lr * wd * w``)
a group with 64x the rate and the same decay per step has ``wd / 64``.

:class:`GroupedUpdate` applies one update strategy per group (each chosen as
the Solver chooses one, :func:`xpnet.training.updates.choose`), each over its
own parameters.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import optim
from ..backend import Backend
from ..errors import InputError
from .updates import UpdateStrategy, choose, fresh_configs

__all__ = ["GroupedUpdate", "ParamGroups"]

Params = dict[str, Any]
Configs = dict[str, dict[str, Any]]
#: the keys of a group that are not optim_config entries
_GROUP_KEYS = ("params", "update_rule")


def _matcher(spec: Any, index: int) -> Callable[[str, Any], bool]:
    if callable(spec):
        return lambda name, w: bool(spec(name, w))
    patterns = [spec] if isinstance(spec, str) else list(spec) if isinstance(
        spec, (list, tuple)) else None
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise InputError(f"param_groups[{index}]['params'] must be a name pattern, a list of "
                         f"them or a function (name, array) -> bool, got {spec!r}")
    return lambda name, w: any(fnmatch.fnmatchcase(name, p) for p in patterns)


class ParamGroups:
    """Which parameters follow which rule and config (see the module docstring).

    Parameters
    ----------
    groups : sequence of dict
        The Solver's ``param_groups``.
    rule : callable
        The Solver's update rule (the default group's).
    optim_config : dict
        The Solver's ``optim_config`` (the default group's, and the base of the others).
    """

    def __init__(self, groups: Sequence[Mapping[str, Any]], rule: Callable,
                 optim_config: Mapping[str, Any]) -> None:
        if isinstance(groups, Mapping) or not isinstance(groups, (list, tuple)):
            raise InputError("Solver: param_groups must be a list of dicts, each with "
                             f"'params', got {type(groups).__name__}")
        self.specs = []
        self.rules: list[Callable] = []
        self.configs: list[dict[str, Any]] = []
        base = dict(optim_config)
        for i, group in enumerate(groups):
            if not isinstance(group, Mapping) or "params" not in group:
                raise InputError(f"param_groups[{i}] must be a dict with 'params' (which "
                                 f"parameters), got {group!r}")
            self.specs.append(_matcher(group["params"], i))
            self.rules.append(optim.get_update_rule(group.get("update_rule", rule)))
            own = {k: v for k, v in group.items() if k not in _GROUP_KEYS}
            if "learning_rate" in own and not base.get("learning_rate"):
                raise InputError(f"param_groups[{i}] sets a learning_rate: the Solver's "
                                 "optim_config needs its base learning_rate too")
            self.configs.append({**base, **own})
        # the default group: the Solver's own rule and config
        self.rules.append(optim.get_update_rule(rule))
        self.configs.append(base)
        self.base_rate = base.get("learning_rate")

    def __len__(self) -> int:
        return len(self.configs)

    def of(self, name: str, w: Any) -> int:
        """The index of ``name``'s group (the last index: the default group)."""
        for i, match in enumerate(self.specs):
            if match(name, w):
                return i
        return len(self.specs)

    def assign(self, params: Params) -> list[list[str]]:
        """The names of ``params`` in each group, in model order."""
        members: list[list[str]] = [[] for _ in self.configs]
        for name, w in params.items():
            members[self.of(name, w)].append(name)
        return members

    def scale(self, index: int) -> float:
        """Group ``index``'s learning rate over the base rate (1 without one)."""
        rate = self.configs[index].get("learning_rate")
        if rate is None or not self.base_rate:
            return 1.0
        return float(rate) / float(self.base_rate)

    def fresh_configs(self, backend: Backend, params: Params) -> Configs:
        """One copy of its group's config per parameter."""
        configs: Configs = {}
        for index, names in enumerate(self.assign(params)):
            configs.update(fresh_configs(backend, self.configs[index], names))
        return configs


class GroupedUpdate(UpdateStrategy):
    """One update strategy per parameter group, each over its own parameters."""

    def __init__(self, backend: Backend, groups: ParamGroups, params: Params) -> None:
        super().__init__(backend, groups.rules[-1])
        self.groups = groups
        members = groups.assign(params)
        self.strategies = [choose(backend, rule, config, {n: params[n] for n in names})
                           if names else None
                           for rule, config, names in zip(groups.rules, groups.configs, members,
                                                          strict=True)]
        self._members: tuple[tuple[str, ...], list[list[str]]] | None = None
        #: parameter name -> its group (every name ever seen: configs outlive a freeze)
        self.index: dict[str, int] = {}
        self._split(params)

    def _split(self, params: Params) -> list[list[str]]:
        key = tuple(params)
        if self._members is None or self._members[0] != key:  # frozen or new parameters
            self._members = (key, self.groups.assign(params))
            for index, names in enumerate(self._members[1]):
                self.index.update(dict.fromkeys(names, index))
        return self._members[1]

    def _strategy(self, index: int, names: list[str], params: Params) -> UpdateStrategy:
        strategy = self.strategies[index]
        if strategy is None:
            strategy = self.strategies[index] = choose(
                self.backend, self.groups.rules[index], self.groups.configs[index],
                {n: params[n] for n in names})
        return strategy

    def apply(self, params: Params, grads: Params, configs: Configs) -> None:
        for index, names in enumerate(self._split(params)):
            if not names:
                continue
            # each strategy sees only its group's parameters and configs (a fused step
            # writes its scalars into every config it is given)
            sub = {n: params[n] for n in names}
            sub_configs = {n: configs[n] for n in names}
            self._strategy(index, names, params).apply(sub, grads, sub_configs)
            params.update(sub)  # strategies that own copies put them in sub
            configs.update(sub_configs)

    def set_learning_rate(self, configs: Configs, new: Callable[[float], float] | None
                          ) -> None:
        """Every group's rate changes as the base rate does: ``s * new(lr / s)`` with
        ``s`` the group's scale."""
        if new is None:
            return
        for name, config in configs.items():
            if "learning_rate" not in config:
                continue
            s = self.groups.scale(self.index.get(name, len(self.groups) - 1))
            config["learning_rate"] = s * new(config["learning_rate"] / s)

    def _each(self, configs: Configs):
        """``(strategy, its group's configs)`` of every group that has a strategy."""
        for index, strategy in enumerate(self.strategies):
            if strategy is not None:
                yield strategy, {n: c for n, c in configs.items()
                                 if self.index.get(n, len(self.groups) - 1) == index}

    def sync(self, configs: Configs) -> None:
        for strategy, sub in self._each(configs):
            strategy.sync(sub)

    def load(self, configs: Configs) -> None:
        for strategy, sub in self._each(configs):
            strategy.load(sub)

    def restore(self, params: Params, values: Params) -> None:
        members = self._split(params)
        placed = set()
        for index, names in enumerate(members):
            sub_values = {n: values[n] for n in names if n in values}
            if not sub_values:
                continue
            sub = {n: params[n] for n in names}
            strategy = self.strategies[index] or UpdateStrategy(self.backend, None)
            strategy.restore(sub, sub_values)
            params.update(sub)
            placed.update(sub_values)
        rest = {n: v for n, v in values.items() if n not in placed}
        if rest:
            UpdateStrategy.restore(self, params, rest)
