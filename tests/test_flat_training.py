"""The Solver's flat parameter buffers and row gather give today's trajectories.

The reference is the Solver updating parameter by parameter (the flat packing
switched off), with the same seed: same losses, same final parameters; and a
user who replaces a parameter mid-training sees the new value used.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import FullyConnectedNet, Solver, ThreeLayerConvNet
from xpnet._ops import flat as flat_module

TOLERANCE = {"float32": 1e-6, "float64": 1e-12}


def data(n=60, shape=(3, 4, 4), classes=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, *shape)).astype(np.float32)
    y = rng.integers(classes, size=n)
    return {"X_train": X, "y_train": y, "X_val": X[:20], "y_val": y[:20]}


def train(backend, rule, dtype, packed, monkeypatch, model_kind="fc", callback=None,
          epochs=3):
    if not packed:
        monkeypatch.setattr(flat_module.FlatParams, "build", classmethod(lambda *a: None))
    if model_kind == "fc":
        # no batchnorm: the biases before it get zero gradients plus rounding noise,
        # which Adam and RMSProp scale up to full steps, so rounding would decide them
        model = FullyConnectedNet([16, 12], input_dim=48, num_classes=5, dtype=dtype, seed=1,
                                  backend=backend)
    else:
        model = ThreeLayerConvNet(input_dim=(3, 4, 4), num_filters=4, filter_size=3,
                                  hidden_dim=8, num_classes=5, weight_scale=0.1, dtype=dtype,
                                  seed=1, backend=backend)
    solver = Solver(model, data(), update_rule=rule, optim_config={"learning_rate": 1e-2},
                    batch_size=10, num_epochs=epochs, verbose=False, seed=2, callback=callback)
    solver.train()
    monkeypatch.undo()
    return solver


@pytest.mark.parametrize("rule", ["sgd", "sgd_momentum", "rmsprop", "adam", "adagrad"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_flat_buffers_give_the_same_trajectory(backend, monkeypatch, rule, dtype):
    packed = train(backend, rule, dtype, True, monkeypatch)
    one_by_one = train(backend, rule, dtype, False, monkeypatch)
    if backend.name in flat_module.VIEW_LIBRARIES:
        assert packed.updater.flat is not None and one_by_one.updater.flat is None
    np.testing.assert_allclose(packed.loss_history, one_by_one.loss_history,
                               rtol=TOLERANCE[dtype])
    for name, value in packed.model.params.items():
        np.testing.assert_allclose(xpnet.to_numpy(value),
                                   xpnet.to_numpy(one_by_one.model.params[name]),
                                   rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype], err_msg=name)


def test_conv_model_same_trajectory(backend, monkeypatch):
    packed = train(backend, "adam", "float32", True, monkeypatch, model_kind="cnn")
    one_by_one = train(backend, "adam", "float32", False, monkeypatch, model_kind="cnn")
    np.testing.assert_allclose(packed.loss_history, one_by_one.loss_history, rtol=1e-6)


def test_params_are_views_of_one_buffer(backend, monkeypatch):
    if backend.name not in flat_module.VIEW_LIBRARIES:
        pytest.skip(f"{backend.name} arrays have no guaranteed views: the Solver updates "
                    "parameter by parameter there")
    solver = train(backend, "adam", "float32", True, monkeypatch, epochs=1)
    flat = solver.updater.flat
    assert flat is not None and flat.current(solver.model.params, solver.optim_configs), \
        "train() restores the best parameters into the flat buffer, in place"
    solver._step()
    assert solver.updater.flat is flat  # and the next step needs no packing
    assert flat is not None and len(flat.groups) == 1
    group = flat.groups[0]
    assert group.w.shape == (sum(int(np.prod(s)) for s in group.shapes),)
    for name in group.names:
        assert solver.model.params[name] is group.views[name]
        assert solver.optim_configs[name]["m"] is group.state_views[name]["m"]


@pytest.mark.parametrize("packed", [True, False])
def test_a_parameter_replaced_mid_training_is_used(backend, monkeypatch, packed):
    replacement = {}

    def replace_w1(solver, event):
        if event == "iteration" and solver.iteration == 4:
            new = np.full(tuple(solver.model.params["W1"].shape), 0.01, dtype=np.float32)
            replacement["W1"] = new
            solver.model.params["W1"] = backend.asarray(new)

    with_swap = train(backend, "sgd", "float32", packed, monkeypatch, callback=replace_w1,
                      epochs=1)
    without = train(backend, "sgd", "float32", packed, monkeypatch, epochs=1)
    # the first 4 losses agree; from the 5th step on W1 starts from the replacement
    assert with_swap.loss_history[:4] == without.loss_history[:4]
    assert with_swap.loss_history[4] != without.loss_history[4]
    # the user's array itself was never modified by the in-place updates
    np.testing.assert_array_equal(replacement["W1"], np.full_like(replacement["W1"], 0.01))
    reference = train(backend, "sgd", "float32", not packed, monkeypatch, callback=replace_w1,
                      epochs=1)
    np.testing.assert_allclose(with_swap.loss_history, reference.loss_history, rtol=1e-6)
