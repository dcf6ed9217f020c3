"""The speed record's network and recipe (xpnet.airbench): its shapes, its
hyperparameters translated by hand from the record's units, and a float64
gradient check of a narrow copy of the whole network."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import gradient_check
from xpnet.airbench import (
    MUON_HEAD,
    airbench_muon_solver_options,
    airbench_net,
    airbench_solver_options,
    prepare,
)
from xpnet.errors import InputError


def test_the_record_network_shapes_and_parameters(backend):
    model = airbench_net(seed=0, backend=backend)
    shapes = dict(zip(range(len(model.layers)), model.shapes, strict=True))
    assert shapes[0] == (24, 31, 31) and shapes[3] == (64, 15, 15)
    assert shapes[10] == (256, 7, 7) and shapes[17] == (256, 3, 3)
    assert shapes[23] == (256, 1, 1) and shapes[26] == (10,)
    assert model.frozen == ["0.W"] and "0.b" in model.params
    assert not any(k.endswith("gamma") for k in model.params)
    assert sum(k.endswith(".beta") for k in model.params) == 6
    # conv weights without biases, 24 -> 64 -> 64 -> 256 -> 256 -> 256 -> 256, head 256 x 10
    assert model.num_params() == 24 + 9 * (24 * 64 + 64 * 64 + 64 * 256 + 3 * 256 * 256) \
        + 2 * (64 + 256 + 256) + 256 * 10
    assert model.label_smoothing == 0.2


def test_the_recipe_in_xpnets_units():
    options = airbench_solver_options()
    config = options["optim_config"]
    # record: lr 11.5 per 1024 examples over the Nesterov scale 1 + 1/(1 - 0.85) = 23/3, on
    # a summed loss; xpnet averages over the 1024 examples: 11.5 * 3 / 23 = 1.5
    assert config["learning_rate"] == pytest.approx(1.5)
    # record: decay 0.0153 / (23/3) per step through the momentum, 1 / 0.15 in steady state
    assert config["learning_rate"] * config["weight_decay"] == pytest.approx(
        0.0153 * 3 / 23 / 0.15)
    group = options["param_groups"][0]
    assert group["learning_rate"] == pytest.approx(96.0)
    assert group["learning_rate"] * group["weight_decay"] == pytest.approx(
        config["learning_rate"] * config["weight_decay"])
    assert group["params"]("4.beta", None) and not group["params"]("2.W", None)
    assert options["lr_schedule"](0, 100) == pytest.approx(0.2)
    assert options["test_time_augment"] == 2 and options["keep_best"] is False
    assert callable(options["after_step"])
    half = airbench_solver_options(batch_size=512)
    assert half["optim_config"]["learning_rate"] == pytest.approx(0.75)


def test_prepare_sets_frozen_whitening_filters(backend):
    model = airbench_net((4, 8, 8), seed=0, backend=backend)
    X = np.random.default_rng(0).standard_normal((20, 3, 32, 32)).astype(np.float32)
    before = xpnet.to_numpy(model.buffers["0.W"]).copy()
    prepare(model, X, images=10)
    w = xpnet.to_numpy(model.buffers["0.W"])
    assert w.shape == (24, 3, 2, 2) and not np.array_equal(w, before)
    np.testing.assert_array_equal(w[12:], -w[:12])
    assert "0.W" not in model.params


@pytest.mark.slow
def test_a_narrow_record_network_has_exact_gradients(backend):
    model = airbench_net((2, 3, 3), dtype="float64", seed=0, backend=backend)
    rng = np.random.default_rng(1)
    X = backend.asarray(rng.standard_normal((2, 3, 32, 32)))
    y = backend.asarray(np.array([1, 7]))
    prepare(model, X)
    loss, grads = model.loss(X, y)
    assert sorted(grads) == sorted(model.params)
    _, _, error = gradient_check.directional_gradient_check(
        lambda: model.loss(X, y)[0], model.params, grads)
    assert error < 1e-6
    for name in ("0.b", "4.beta", "25.W"):  # (the filters: through the directional check)
        num = gradient_check.eval_numerical_gradient(lambda _: model.loss(X, y)[0],
                                                     model.params[name], verbose=False,
                                                     h=1e-6)
        np.testing.assert_allclose(xpnet.to_numpy(grads[name]), xpnet.to_numpy(num),
                                   rtol=1e-5, atol=1e-8)


def test_the_network_needs_three_widths():
    with pytest.raises(InputError, match="three widths"):
        airbench_net((8, 8))


def test_the_muon_record_in_xpnets_units():
    options = airbench_muon_solver_options()
    base = options["optim_config"]
    # airbench94_muon: bias lr 0.053 and head lr 0.67 on a loss summed over 2000 images
    assert base["learning_rate"] == pytest.approx(0.053 * 2000)
    muon, head = options["param_groups"]
    assert muon["update_rule"] == "muon" and muon["learning_rate"] == 0.24
    assert (muon["momentum"], muon["ns_steps"], muon["normalize"]) == (0.6, 3, True)
    assert head["learning_rate"] == pytest.approx(0.67 * 2000)
    # coupled decay 2e-6 * 2000 per step through momentum 0.85: 0.004 / 0.15 decoupled
    for config in (base, head):
        assert config["learning_rate"] * config["weight_decay"] == pytest.approx(0.004 / 0.15)
    assert muon["params"]("2.W", np.zeros((2, 2, 3, 3))) and not muon["params"](
        "25.W", np.zeros((2, 2)))
    assert head["params"]("25.W", np.zeros((2, 2)))
    assert options["lr_schedule"](0, 10) == 1.0 and options["lr_schedule"](9, 10) == 0.0
    model = airbench_net((2, 3, 3), seed=0, **MUON_HEAD)
    assert model.layers[-1].factor == pytest.approx(1 / 256)
