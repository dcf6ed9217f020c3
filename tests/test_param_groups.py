"""Parameter groups: per-group update rules and optim_config, against updates
computed by hand here (plain SGD arithmetic in NumPy)."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import optim
from xpnet.errors import InputError
from xpnet.training.groups import GroupedUpdate, ParamGroups

NAMES = {"0.W": (3, 2, 3, 3), "0.b": (3,), "1.beta": (3,), "2.W": (4, 3), "2.b": (4,)}


def params_of(backend, seed=0):
    rng = np.random.default_rng(seed)
    return {k: backend.asarray(rng.standard_normal(s)) for k, s in NAMES.items()}


def test_groups_match_patterns_lists_and_predicates_first_match_wins(backend):
    params = params_of(backend)
    groups = ParamGroups([{"params": "*.beta", "learning_rate": 6.4},
                          {"params": lambda name, w: w.ndim == 4, "update_rule": "muon"},
                          {"params": ["*.b", "1.*"], "momentum": 0.5}],
                         optim.sgd, {"learning_rate": 0.1})
    assert groups.assign(params) == [["1.beta"], ["0.W"], ["0.b", "2.b"], ["2.W"]]
    assert groups.rules == [optim.sgd, optim.muon, optim.sgd, optim.sgd]
    assert groups.scale(0) == pytest.approx(64.0) and groups.scale(1) == 1.0
    configs = groups.fresh_configs(backend, params)
    assert configs["1.beta"] == {"learning_rate": 6.4}
    assert configs["0.b"] == {"learning_rate": 0.1, "momentum": 0.5}
    assert configs["2.W"] == {"learning_rate": 0.1}


@pytest.mark.parametrize("bad, match", [
    ({"learning_rate": 1.0}, "'params'"),
    ({"params": 3}, "name pattern"),
    ({"params": "*", "update_rule": "nope"}, "unknown update_rule"),
])
def test_bad_groups_are_refused(bad, match):
    with pytest.raises(InputError, match=match):
        ParamGroups([bad], optim.sgd, {"learning_rate": 0.1})
    with pytest.raises(InputError, match="list of dicts"):
        ParamGroups({"params": "*"}, optim.sgd, {"learning_rate": 0.1})
    with pytest.raises(InputError, match="base learning_rate"):
        ParamGroups([{"params": "*", "learning_rate": 1.0}], optim.sgd, {})


def test_grouped_sgd_steps_and_learning_rate_changes(backend):
    params = params_of(backend)
    host = {k: xpnet.to_numpy(v).copy() for k, v in params.items()}
    grads = {k: backend.asarray(np.full(s, 1.0)) for k, s in NAMES.items()}
    groups = ParamGroups([{"params": "*.beta", "learning_rate": 6.4, "weight_decay": 0.5 / 64}],
                         optim.sgd, {"learning_rate": 0.1, "weight_decay": 0.5})
    configs = groups.fresh_configs(backend, params)
    update = GroupedUpdate(backend, groups, params)
    update.apply(params, grads, configs)
    # decoupled decay lr * wd is the same per step in both groups (0.05), the rates differ
    for name, w0 in host.items():
        lr = 6.4 if name == "1.beta" else 0.1
        expected = w0 - 0.05 * w0 - lr * 1.0
        np.testing.assert_allclose(xpnet.to_numpy(params[name]), expected, rtol=1e-12)
    # a schedule sets the base rate: the group keeps its 64x
    update.set_learning_rate(configs, lambda _current: 0.02)
    assert configs["1.beta"]["learning_rate"] == pytest.approx(1.28)
    assert configs["2.W"]["learning_rate"] == pytest.approx(0.02)
    # lr_decay multiplies every rate
    update.set_learning_rate(configs, lambda current: current * 0.5)
    assert configs["1.beta"]["learning_rate"] == pytest.approx(0.64)
    assert configs["0.W"]["learning_rate"] == pytest.approx(0.01)


def test_grouped_muon_for_filters_sgd_momentum_for_the_rest(backend):
    params = params_of(backend, seed=1)
    host = {k: xpnet.to_numpy(v).copy() for k, v in params.items()}
    rng = np.random.default_rng(2)
    g_host = {k: rng.standard_normal(s) for k, s in NAMES.items()}
    grads = {k: backend.asarray(v) for k, v in g_host.items()}
    groups = ParamGroups([{"params": lambda n, w: w.ndim == 4, "update_rule": "muon",
                           "learning_rate": 0.24, "momentum": 0.6, "ns_steps": 3}],
                         optim.sgd_momentum, {"learning_rate": 0.1, "momentum": 0.9})
    configs = groups.fresh_configs(backend, params)
    GroupedUpdate(backend, groups, params).apply(params, grads, configs)
    # muon's first step: buf = g, direction g + 0.6 g = 1.6 g, orthogonalized (scale-free)
    g = g_host["0.W"].reshape(3, -1)
    P, s, Qt = np.linalg.svd(1.6 * g, full_matrices=False)
    s = s / np.sqrt(np.sum(s ** 2))
    for _ in range(3):
        s = 3.4445 * s - 4.7750 * s ** 3 + 2.0315 * s ** 5
    expected = host["0.W"] - 0.24 * ((P * s) @ Qt).reshape(3, 2, 3, 3)
    np.testing.assert_allclose(xpnet.to_numpy(params["0.W"]), expected, rtol=1e-4, atol=1e-5)
    # sgd_momentum's first step: v = -lr g, w + v
    for name in ("0.b", "1.beta", "2.W", "2.b"):
        np.testing.assert_allclose(xpnet.to_numpy(params[name]),
                                   host[name] - 0.1 * g_host[name], rtol=1e-12)
    assert "momentum_buffer" in configs["0.W"] and "velocity" in configs["2.W"]
