"""ThreeLayerConvNet: the course's checks (initial loss, gradient check, overfitting a
small set) and the model protocol (checkpoints, load_model, the Solver)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from xpnet import Solver, ThreeLayerConvNet
from xpnet.gradient_check import eval_numerical_gradient

pytestmark = pytest.mark.usefixtures("fast_paths")


def small_net(backend, **kw):
    args = dict(input_dim=(3, 8, 8), num_filters=3, filter_size=3, hidden_dim=7,
                num_classes=4, weight_scale=0.1, dtype="float64", seed=0, backend=backend)
    args.update(kw)
    return ThreeLayerConvNet(**args)


def test_parameters_and_shapes(backend):
    model = ThreeLayerConvNet(backend=backend)
    shapes = {k: tuple(v.shape) for k, v in model.params.items()}
    assert shapes == {"W1": (32, 3, 7, 7), "b1": (32,), "W2": (32 * 16 * 16, 100),
                      "b2": (100,), "W3": (100, 10), "b3": (10,)}
    assert model.dtype == backend.dtype("float32")
    std = float(np.std(xpnet.to_numpy(model.params["W2"])))
    assert abs(std - 1e-3) < 1e-4  # N(0, weight_scale**2)
    assert float(np.abs(xpnet.to_numpy(model.params["b1"])).max()) == 0.0


def test_initial_loss_is_log_of_the_classes(backend):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3, 32, 32)), rng.integers(10, size=20)
    model = ThreeLayerConvNet(weight_scale=1e-3, dtype="float64", seed=1, backend=backend)
    loss, _ = model.loss(X, y)
    assert abs(float(loss) - math.log(10)) < 1e-3
    model.reg = 0.5  # read at each call
    loss_reg, _ = model.loss(X, y)
    penalty = 0.5 * 0.5 * sum(float(np.sum(xpnet.to_numpy(model.params[w]) ** 2))
                              for w in ("W1", "W2", "W3"))
    assert abs(float(loss_reg) - float(loss) - penalty) < 1e-9


@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_gradient_check(backend, reg):
    model = small_net(backend, reg=reg)
    rng = np.random.default_rng(2)
    for name in ("b1", "b2", "b3"):  # off zero, so no ReLU sits at its kink
        model.params[name] = backend.asarray(rng.normal(0, 0.1, tuple(model.params[name].shape)))
    X, y = backend.asarray(rng.standard_normal((2, 3, 8, 8))), backend.asarray(np.array([1, 3]))
    loss, grads = model.loss(X, y)
    for name in sorted(model.params):
        numerical = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[name],
                                            verbose=False)
        a, n = xpnet.to_numpy(grads[name]), xpnet.to_numpy(numerical)
        err = np.max(np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), 1e-6))
        assert err < 1e-5, (name, err)


def test_memorizes_fifty_random_images(backend):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 3, 16, 16)).astype(np.float32)
    y = rng.integers(10, size=50)
    model = ThreeLayerConvNet(input_dim=(3, 16, 16), num_filters=8, filter_size=3,
                              hidden_dim=50, weight_scale=5e-2, seed=4, backend=backend)
    solver = Solver(model, {"X_train": X, "y_train": y, "X_val": X, "y_val": y},
                    update_rule="adam", optim_config={"learning_rate": 1e-2}, batch_size=25,
                    num_epochs=20, verbose=False, seed=5)
    solver.train()
    assert max(solver.train_acc_history) == 1.0
    assert solver.loss_history[-1] < 0.3 * solver.loss_history[0]


def test_save_and_load_on_another_backend(backend, tmp_path):
    model = small_net(backend)
    rng = np.random.default_rng(6)
    X = rng.standard_normal((3, 3, 8, 8))
    path = xpnet.save_model(tmp_path / "cnn.npz", model)
    loaded = xpnet.load_model(path, backend="numpy")
    assert type(loaded) is ThreeLayerConvNet and loaded.config == model.config
    np.testing.assert_allclose(xpnet.to_numpy(loaded.loss(X)), xpnet.to_numpy(model.loss(X)),
                               rtol=1e-10, atol=1e-12)


def test_bad_input(backend):
    with pytest.raises(xpnet.InputError, match=r"filter_size 4 .* makes H 31, which 2x2 "
                                               r"pooling"):
        ThreeLayerConvNet(filter_size=4, backend=backend)
    with pytest.raises(xpnet.InputError, match=r"input_dim must be \(C, H, W\)"):
        ThreeLayerConvNet(input_dim=(32, 32), backend=backend)
    model = small_net(backend)
    with pytest.raises(xpnet.InputError, match=r"X must have shape \(N, 3, 8, 8\), got "
                                               r"\(2, 3, 8, 9\)"):
        model.loss(np.zeros((2, 3, 8, 9)))
