"""TwoLayerNet and FullyConnectedNet: known values and whole-model gradient checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from xpnet.classifiers.fc_net import FullyConnectedNet, TwoLayerNet

# every test here runs with the registered fast paths and with the references only
pytestmark = pytest.mark.usefixtures("fast_paths")


def numeric_grad(f, x, h=1e-6):
    """Central differences on an array of any backend, read on the host."""
    grad = np.zeros(x.shape)
    for ix in np.ndindex(*x.shape):
        old = float(x[ix])
        x[ix] = old + h
        pos = float(f())
        x[ix] = old - h
        neg = float(f())
        x[ix] = old
        grad[ix] = (pos - neg) / (2 * h)
    return grad


def cs231n_two_layer_setup(backend):
    n, d, h, c = 3, 5, 50, 7
    model = TwoLayerNet(input_dim=d, hidden_dim=h, num_classes=c, weight_scale=1e-3,
                        backend=backend)
    model.params["W1"] = np.linspace(-0.7, 0.3, num=d * h).reshape(d, h)
    model.params["b1"] = np.linspace(-0.1, 0.9, num=h)
    model.params["W2"] = np.linspace(-0.3, 0.4, num=h * c).reshape(h, c)
    model.params["b2"] = np.linspace(-0.9, 0.1, num=c)
    X = np.linspace(-5.5, 4.5, num=n * d).reshape(d, n).T
    return model, X


def test_two_layer_net_matches_the_cs231n_notebook(backend, check):
    # The numbers printed by the CS231n two-layer-net notebook for this setup.
    model, X = cs231n_two_layer_setup(backend)
    scores = model.loss(X)
    correct_scores = np.asarray([
        [11.53165108, 12.2917344, 13.05181771, 13.81190102, 14.57198434, 15.33206765,
         16.09215096],
        [12.05769098, 12.74614105, 13.43459113, 14.1230412, 14.81149128, 15.49994135,
         16.18839143],
        [12.58373087, 13.20054771, 13.81736455, 14.43418138, 15.05099822, 15.66781506,
         16.2846319],
    ])
    check(scores, correct_scores, rtol=1e-8)
    y = np.asarray([0, 5, 1])
    loss, _ = model.loss(X, y)
    assert abs(float(loss) - 3.4702243556) < 1e-9
    model.reg = 1.0
    loss, _ = model.loss(X, y)
    assert abs(float(loss) - 26.5948426952) < 1e-9


def test_two_layer_net_defaults_follow_cs231n(backend):
    model = TwoLayerNet(seed=0, backend=backend)
    assert sorted(model.params) == ["W1", "W2", "b1", "b2"]
    assert tuple(model.params["W1"].shape) == (3 * 32 * 32, 100)
    assert tuple(model.params["W2"].shape) == (100, 10)
    w1 = xpnet.to_numpy(model.params["W1"])
    assert abs(w1.std() - 1e-3) < 5e-5 and abs(w1.mean()) < 5e-5
    assert not np.any(xpnet.to_numpy(model.params["b1"]))


def test_fc_net_initialization(backend):
    model = FullyConnectedNet([40, 30], input_dim=50, num_classes=7, weight_scale=0.1,
                              normalization="batchnorm", seed=3, backend=backend)
    assert sorted(model.params) == sorted(
        ["W1", "b1", "W2", "b2", "W3", "b3", "gamma1", "beta1", "gamma2", "beta2"])
    shapes = {k: tuple(v.shape) for k, v in model.params.items()}
    assert shapes["W1"] == (50, 40) and shapes["W2"] == (40, 30) and shapes["W3"] == (30, 7)
    assert shapes["gamma2"] == (30,) and "gamma3" not in shapes
    w = np.concatenate([xpnet.to_numpy(model.params[k]).ravel() for k in ("W1", "W2", "W3")])
    assert abs(w.std() - 0.1) < 0.005
    assert np.all(xpnet.to_numpy(model.params["gamma1"]) == 1)
    assert not np.any(xpnet.to_numpy(model.params["beta1"]))
    assert model.dtype == backend.xp.float32
    assert all(backend.owns(v) for v in model.params.values())


def test_same_seed_same_weights(backend):
    a = FullyConnectedNet([8], input_dim=5, seed=11, backend=backend)
    b = FullyConnectedNet([8], input_dim=5, seed=11, backend=backend)
    c = FullyConnectedNet([8], input_dim=5, seed=12, backend=backend)
    wa, wb, wc = (xpnet.to_numpy(m.params["W1"]) for m in (a, b, c))
    np.testing.assert_array_equal(wa, wb)
    assert not np.allclose(wa, wc)


def test_initial_loss_is_log_num_classes(backend):
    rng = np.random.default_rng(0)
    model = FullyConnectedNet([20, 20], input_dim=15, num_classes=10, weight_scale=1e-3,
                              dtype="float64", seed=0, backend=backend)
    X = rng.standard_normal((30, 15))
    y = rng.integers(10, size=30)
    loss, _ = model.loss(X, y)
    assert abs(float(loss) - math.log(10)) < 1e-3


GRADIENT_CASES = [([], None, 1, 0.0), ([], None, 1, 3.14)] + [
    (hidden, normalization, keep, reg)
    for hidden in ([6], [6, 5, 4])
    for normalization in (None, "batchnorm", "layernorm")
    for keep in (1, 0.6)
    for reg in (0.0, 3.14)
]


@pytest.mark.parametrize(("hidden", "normalization", "keep", "reg"), GRADIENT_CASES)
def test_fc_net_gradients(backend, hidden, normalization, keep, reg):
    rng = np.random.default_rng(1)
    n, d, c = 6, 5, 3
    X = rng.standard_normal((n, d))
    y = np.array([0, 1, 2, 2, 1, 0])
    model = FullyConnectedNet(hidden, input_dim=d, num_classes=c, reg=reg, weight_scale=5e-1,
                              normalization=normalization, dropout_keep_ratio=keep,
                              dtype="float64", seed=123, backend=backend)
    for name, param in model.params.items():
        if name.startswith("b"):  # biases of 0 put ReLU inputs on the kink for dropped rows
            model.params[name] = param + backend.asarray(rng.normal(0, 0.1, param.shape))
    loss, grads = model.loss(X, y)
    assert sorted(grads) == sorted(model.params)
    for name, param in model.params.items():
        expected = numeric_grad(lambda: model.loss(X, y)[0], param)
        assert backend.owns(grads[name])
        np.testing.assert_allclose(xpnet.to_numpy(grads[name]), expected, rtol=1e-5, atol=1e-8,
                                   err_msg=f"gradient of {name}")


def test_reg_term_is_half_sum_of_squares_of_weights_only(backend):
    model = FullyConnectedNet([4], input_dim=3, num_classes=2, normalization="batchnorm",
                              dtype="float64", seed=5, backend=backend)
    X = np.arange(6.0).reshape(2, 3) / 10
    y = np.array([0, 1])
    base, _ = model.loss(X, y)
    model.reg = 2.0
    with_reg, _ = model.loss(X, y)
    w_sq = sum(float((xpnet.to_numpy(model.params[k]) ** 2).sum()) for k in ("W1", "W2"))
    assert abs((float(with_reg) - float(base)) - 0.5 * 2.0 * w_sq) < 1e-12


def test_test_mode_returns_scores_on_the_device(backend):
    model = FullyConnectedNet([4], input_dim=3, num_classes=2, seed=1, backend=backend)
    scores = model.loss(np.ones((5, 3), dtype=np.float32))
    assert backend.owns(scores) and tuple(scores.shape) == (5, 2)
    assert scores.dtype == backend.xp.float32


def test_directional_check_catches_a_wrong_gradient(backend):
    from xpnet.gradient_check import directional_gradient_check

    model = FullyConnectedNet([5], input_dim=4, num_classes=3, dtype="float64", seed=2,
                              backend=backend)
    X = np.random.default_rng(0).standard_normal((4, 4))
    y = np.array([0, 1, 2, 0])
    _, grads = model.loss(X, y)
    f = lambda: model.loss(X, y)[0]  # noqa: E731
    assert directional_gradient_check(f, model.params, grads)[2] < 1e-7
    grads["b1"] = grads["b1"] * 1.5
    assert directional_gradient_check(f, model.params, grads)[2] > 1e-4
