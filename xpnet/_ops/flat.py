"""Parameters, gradients and update-rule state as views of one flat buffer per dtype.

The Solver packs a model's parameters into one 1-D buffer per dtype and
rebinds ``model.params[name]`` to views of it; the gradients of a step are
copied into a twin buffer, and the update rule's state arrays (``m``, ``v``,
``velocity``, ``cache``) live in buffers of the same layout, with each
parameter's ``optim_configs[name][key]`` a view too. One in-place update then
covers every parameter of a dtype in one call (one pass over memory per
operation instead of one per parameter). The same layout is what one
all-reduce per step or a captured device graph of the step needs.

Views are guaranteed on NumPy, PyTorch and CuPy; elsewhere
:meth:`FlatParams.build` returns None and the Solver updates parameter by
parameter. :meth:`FlatParams.current` tells whether the model and the configs
still hold exactly these views (a user who rebinds ``model.params['W1']`` is
detected, and the Solver packs again, taking the new value).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from array_api_compat import device

Array = Any

#: libraries whose slices and reshapes of a contiguous 1-D array are views
VIEW_LIBRARIES = ("numpy", "torch", "cupy")
#: libraries where one update of the whole flat buffer beats one per parameter view
#: (fewer kernel launches); on NumPy the gradients' copy costs more than it saves
FUSED_LIBRARIES = ("torch", "cupy")


@dataclass
class FlatGroup:
    """The parameters of one dtype: their slices and the flat buffers."""

    names: list[str]
    offsets: list[tuple[int, int]]
    shapes: list[tuple[int, ...]]
    w: Array
    dw: Array
    state: dict[str, Array] = field(default_factory=dict)
    views: dict[str, Array] = field(default_factory=dict)  # param name -> view of w
    state_views: dict[str, dict[str, Array]] = field(default_factory=dict)

    def view(self, flat: Array, xp, i: int) -> Array:
        start, stop = self.offsets[i]
        return xp.reshape(flat[start:stop], self.shapes[i])


class FlatParams:
    """One :class:`FlatGroup` per dtype of a model's parameters."""

    def __init__(self, xp, groups: list[FlatGroup], state_keys: Sequence[str],
                 fused: bool = True) -> None:
        self.xp = xp
        self.groups = groups
        self.state_keys = tuple(state_keys)
        #: update the whole flat buffer at once (else view by view)
        self.fused = fused

    @classmethod
    def build(cls, xp, library: str, params: dict[str, Array],
              configs: Mapping[str, dict[str, Any]], state_keys: Sequence[str]
              ) -> FlatParams | None:
        """Pack ``params`` (rebinding its values to views) and the configs' state
        arrays; None where the library has no guaranteed views or the parameters'
        configs differ in anything but their state arrays."""
        if library not in VIEW_LIBRARIES or not params:
            return None
        if not _same_scalars([configs[name] for name in params], state_keys):
            return None
        by_dtype: dict[Any, list[str]] = {}
        for name, value in params.items():
            by_dtype.setdefault(value.dtype, []).append(name)
        groups = []
        for dtype, names in by_dtype.items():
            shapes = [tuple(params[n].shape) for n in names]
            sizes = [math.prod(s) for s in shapes]
            bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
            dev = device(params[names[0]])
            total = bounds[-1]
            w = xp.empty((total,), dtype=dtype, device=dev)
            group = FlatGroup(names, list(zip(bounds[:-1], bounds[1:], strict=True)), shapes,
                              w, xp.empty((total,), dtype=dtype, device=dev))
            for i, name in enumerate(names):
                view = group.view(w, xp, i)
                view[...] = params[name]
                params[name] = group.views[name] = view
            for key in state_keys:
                flat = xp.zeros((total,), dtype=dtype, device=dev)
                group.state[key] = flat
                for i, name in enumerate(names):
                    view = group.view(flat, xp, i)
                    old = configs[name].get(key)
                    if old is not None:
                        view[...] = old
                    configs[name][key] = view
                    group.state_views.setdefault(name, {})[key] = view
            groups.append(group)
        return cls(xp, groups, state_keys, fused=library in FUSED_LIBRARIES)

    def current(self, params: Mapping[str, Array], configs: Mapping[str, Mapping]) -> bool:
        """Whether ``params`` and the configs still hold exactly these views."""
        if sum(len(g.names) for g in self.groups) != len(params):
            return False
        for group in self.groups:
            for name in group.names:
                if params.get(name) is not group.views[name]:
                    return False
                config = configs.get(name)
                if config is None:
                    return False
                for key, view in group.state_views.get(name, {}).items():
                    if config.get(key) is not view:
                        return False
        return True

    def load_grads(self, grads: Mapping[str, Array]) -> None:
        """Copy this step's gradients into the flat gradient buffers."""
        xp = self.xp
        for group in self.groups:
            for i, name in enumerate(group.names):
                start, stop = group.offsets[i]
                group.dw[start:stop] = xp.reshape(grads[name], (-1,))


def _same_scalars(configs: Sequence[Mapping[str, Any]], state_keys: Sequence[str]) -> bool:
    """Whether every config holds the same plain (non-state) entries, so that one
    update serves all."""
    def scalars(config):
        plain = {k: v for k, v in config.items() if k not in state_keys}
        if not all(isinstance(v, int | float | str | bool) or v is None for v in plain.values()):
            return None
        return plain

    first = scalars(configs[0])
    return first is not None and all(scalars(c) == first for c in configs[1:])
