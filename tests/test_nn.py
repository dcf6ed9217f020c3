"""xpnet.nn: modules and Sequential.

Every module's backward against float64 central differences on the backend
(xpnet.testing.check_layer_backward, parameters included); a Sequential net
with conv, batchnorm, pooling, a residual block and dropout (fixed mask)
through a whole-model gradient check; a residual net memorising 50 random
images; save, load on another backend, same scores; shapes inferred once and
clear errors when a layer does not fit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from xpnet import Solver, gradient_check
from xpnet.nn import (
    Affine,
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    GroupNorm,
    LayerNorm,
    MaxPool,
    ReLU,
    Residual,
    Sequential,
    SpatialBatchNorm,
)
from xpnet.testing import check_layer_backward

pytestmark = pytest.mark.usefixtures("fast_paths")


def host_params(model, seed=0, scale=0.5):
    """Replace every parameter with seeded host values (the same on every backend)."""
    rng = np.random.default_rng(seed)
    for name, value in model.params.items():
        shape = tuple(value.shape)
        if name.endswith("gamma"):
            new = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith(("b", "beta")):
            new = 0.1 * rng.standard_normal(shape)
        else:
            new = scale * rng.standard_normal(shape) / math.sqrt(max(np.prod(shape[1:]), 1))
        model.params[name] = model.backend.asarray(new)


# (module, input shape of one sample)
MODULES = [
    (Affine(5), (3, 2)),
    (Conv(3, size=3), (2, 5, 5)),
    (Conv(2, size=(3, 2), stride=2), (2, 6, 5)),  # does not tile: rounded down
    (ReLU(), (4,)),
    (MaxPool(2), (2, 4, 4)),
    (MaxPool(3, stride=2), (2, 6, 6)),  # rounded down
    (GlobalAvgPool(), (3, 2, 3)),
    (Flatten(), (2, 3, 2)),
    (Dropout(0.7, seed=5), (6,)),
    (BatchNorm(), (5,)),
    (SpatialBatchNorm(), (3, 2, 2)),
    (LayerNorm(), (6,)),
    (GroupNorm(2), (4, 2, 3)),
    (Residual(Conv(3), SpatialBatchNorm(), Conv(3)), (3, 4, 4)),  # (ReLU kinks: elsewhere)
    (Residual(Conv(4, stride=2), SpatialBatchNorm()), (2, 4, 4)),  # with a projection
    (Residual(Affine(3)), (5,)),  # a projection for vectors
]


@pytest.mark.parametrize("module, shape", MODULES, ids=[m.describe() for m, _ in MODULES])
def test_module_backward_against_numerical_gradients(backend, module, shape):
    module = type(module).from_config(module.config)
    out_shape, specs = module.build(shape, "m.")
    rng = np.random.default_rng(1)
    params = {}
    for name, (pshape, init) in specs.items():
        values = {"zeros": 0.1, "ones": 1.0}.get(init, 0.5)
        params["m." + name] = backend.asarray(values + 0.3 * rng.standard_normal(pshape))
    names = sorted(params)
    # distinct inputs, so no max-pooling window has a near tie and no ReLU sits at 0
    x = backend.asarray((rng.permutation(3 * math.prod(shape)).reshape(3, *shape) - 10.5) / 7)
    module.set_mode("train")

    def forward(x, *values):
        p = dict(zip(names, values, strict=True))
        return module.forward(x, p)

    def backward(dout, cache):
        dx, grads = module.backward(dout, cache, params)
        return (dx, *(grads[n] for n in names))

    out, _ = forward(x, *(params[n] for n in names))
    assert tuple(out.shape) == (3, *out_shape)
    check_layer_backward(forward, backward, [x, *(params[n] for n in names)],
                         names=["x", *names])


def small_net(backend, dropout_seed=3):
    model = Sequential(
        Conv(3), SpatialBatchNorm(), ReLU(),
        Residual(Conv(3), SpatialBatchNorm(), ReLU(), Conv(3), SpatialBatchNorm()), ReLU(),
        MaxPool(2), Dropout(0.8, seed=dropout_seed), Flatten(), Affine(4),
        input_shape=(2, 4, 4), reg=0.2, dtype="float64", seed=0, backend=backend)
    host_params(model)
    return model


def test_whole_model_gradient_check(backend):
    model = small_net(backend)
    rng = np.random.default_rng(2)
    X, y = backend.asarray(rng.standard_normal((3, 2, 4, 4))), backend.asarray(np.arange(3))
    loss, grads = model.loss(X, y)
    assert sorted(grads) == sorted(model.params)
    worst = {}
    for name in sorted(model.params):
        num = gradient_check.eval_numerical_gradient(
            lambda _: model.loss(X, y)[0], model.params[name], verbose=False, h=1e-6)
        a, n = xpnet.to_numpy(grads[name]), xpnet.to_numpy(num)
        scale = max(float(np.abs(n).max()), float(np.abs(a).max()))
        if scale < 1e-7:  # a bias right before batchnorm: zero in exact arithmetic
            assert scale < 1e-7
            continue
        worst[name] = float(np.max(np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n),
                                                               1e-4 * scale)))
    assert max(worst.values()) < 1e-5, worst
    numerical, analytic, error = gradient_check.directional_gradient_check(
        lambda: model.loss(X, y)[0], model.params, grads)
    assert error < 1e-6


def test_parameters_are_named_by_position_and_kind(backend):
    model = small_net(backend)
    assert set(model.params) == {
        "0.W", "0.b", "1.gamma", "1.beta", "3.0.W", "3.0.b", "3.1.gamma", "3.1.beta",
        "3.3.W", "3.3.b", "3.4.gamma", "3.4.beta", "8.W", "8.b"}
    model.loss(np.zeros((2, 2, 4, 4)), np.array([0, 1]))
    assert set(model.buffers) == {"1.running_mean", "1.running_var", "3.1.running_mean",
                                  "3.1.running_var", "3.4.running_mean", "3.4.running_var"}
    assert model.weights == ["0.W", "3.0.W", "3.3.W", "8.W"]  # L2 applies to these only


def test_summary_shows_layers_shapes_and_parameter_counts(backend):
    model = Sequential(Conv(8), ReLU(), MaxPool(2), Flatten(), Affine(10),
                       input_shape=(3, 8, 8), backend=backend)
    text = repr(model)
    assert "conv 8 3x3" in text and "(8, 8, 8)" in text and "(8, 4, 4)" in text
    assert f"{8 * 3 * 9 + 8:,}" in text and f"{128 * 10 + 10:,}" in text
    assert f"{model.num_params():,} parameters" in text


def test_save_load_on_another_backend_same_scores(backend, tmp_path):
    model = small_net(backend)
    X = np.random.default_rng(4).standard_normal((5, 2, 4, 4))
    model.loss(X, np.arange(5) % 4)  # running statistics become buffers
    path = xpnet.save_model(tmp_path / "seq.npz", model)
    other = "numpy" if backend.name != "numpy" else (
        [b for b in xpnet.available_backends() if b not in ("numpy", "cupy")] or ["numpy"])[0]
    loaded = xpnet.load_model(path, backend=other)
    assert type(loaded) is Sequential and loaded.config == model.config
    np.testing.assert_allclose(xpnet.to_numpy(loaded.loss(X)), xpnet.to_numpy(model.loss(X)),
                               rtol=1e-10, atol=1e-12)


def test_a_residual_net_memorises_fifty_images(backend):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((50, 3, 8, 8)).astype(np.float32)
    y = rng.integers(10, size=50)
    model = Sequential(
        Conv(16), SpatialBatchNorm(), ReLU(),
        Residual(Conv(16), SpatialBatchNorm(), ReLU(), Conv(16), SpatialBatchNorm()), ReLU(),
        MaxPool(2), Flatten(), Affine(10), input_shape=(3, 8, 8), seed=6, backend=backend)
    solver = Solver(model, {"X_train": X, "y_train": y, "X_val": X, "y_val": y},
                    update_rule="adam", optim_config={"learning_rate": 5e-3}, batch_size=25,
                    num_epochs=15, verbose=False, seed=7)
    solver.train()
    assert max(solver.train_acc_history) == 1.0


def test_label_smoothing_against_a_hand_computation(backend):
    x = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    y = np.array([1, 2])
    eps = 0.1
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    target = np.full((2, 3), eps / 3)
    target[[0, 1], y] += 1 - eps
    loss, dx = xpnet.layers.softmax_loss(backend.asarray(x), backend.asarray(y),
                                         label_smoothing=eps)
    np.testing.assert_allclose(float(loss), -(target * logp).sum() / 2, rtol=1e-12)
    np.testing.assert_allclose(xpnet.to_numpy(dx), (np.exp(logp) - target) / 2, rtol=1e-12)
    plain, _ = xpnet.layers.softmax_loss(backend.asarray(x), backend.asarray(y))
    np.testing.assert_allclose(float(plain), -logp[[0, 1], y].sum() / 2, rtol=1e-12)


def test_a_layer_that_does_not_fit_names_both_shapes_and_the_layer(backend):
    with pytest.raises(xpnet.InputError, match=r"layer 2 \(conv 8 3x3\) expects one input of "
                                               r"shape \(C, H, W\), but the layer before it "
                                               r"gives \(64,\)"):
        Sequential(Flatten(), Affine(64), Conv(8), input_shape=(3, 8, 8), backend=backend)
    with pytest.raises(xpnet.InputError, match=r"layer 1 \(groupnorm\(groups=3\)\): 3 groups "
                                               r"do not divide the 8 channels"):
        Sequential(Conv(8), GroupNorm(3), input_shape=(3, 8, 8), backend=backend)
    with pytest.raises(xpnet.InputError, match=r"must give class scores"):
        Sequential(Conv(8), input_shape=(3, 8, 8), backend=backend)
    with pytest.raises(xpnet.InputError, match=r"unknown module kind 'transformer'"):
        xpnet.nn.module_from_config({"kind": "transformer"})
    model = Sequential(Flatten(), Affine(3), input_shape=(2, 2), backend=backend)
    with pytest.raises(xpnet.InputError, match=r"X must have shape \(N, 2, 2\)"):
        model.loss(np.zeros((4, 3)))
