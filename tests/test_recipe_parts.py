"""The speed record's layers: batchnorm without scale, convolution and affine layers
without bias, identity ("dirac") filters, frozen parameters, patch whitening and
the scaled head.

Each layer's backward against float64 central differences; forward values against
NumPy computations written here; whitening against a NumPy eigen-decomposition of
patches gathered here; frozen parameters through real Solver training.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from xpnet import Solver, fast_layers
from xpnet.errors import InputError
from xpnet.nn import (
    GELU,
    Affine,
    BatchNorm,
    Conv,
    Flatten,
    MaxPool,
    ReLU,
    Scale,
    Sequential,
    SpatialBatchNorm,
)
from xpnet.nn.init import dirac, init_whitening
from xpnet.recipe import Callbacks, FreezeAfter
from xpnet.testing import check_layer_backward

# ---------------------------------------------------------------------------
# helpers


def module_gradcheck(backend, module, shape, seed=1):
    """check_layer_backward of a built module over its input and its own parameters."""
    module = type(module).from_config(module.config)
    out_shape, specs = module.build(shape, "m.")
    rng = np.random.default_rng(seed)
    params = {"m." + name: backend.asarray({"zeros": 0.1, "ones": 1.0}.get(
        init if isinstance(init, str) else "", 0.0) + 0.3 * rng.standard_normal(pshape))
        for name, (pshape, init) in specs.items()}
    names = sorted(params)
    x = backend.asarray((rng.permutation(3 * math.prod(shape)).reshape(3, *shape) - 10.5) / 7)
    module.set_mode("train")

    def forward(x, *values):
        return module.forward(x, dict(zip(names, values, strict=True)))

    def backward(dout, cache):
        dx, grads = module.backward(dout, cache, params)
        assert sorted(grads) == names, "gradients for exactly the module's parameters"
        return (dx, *(grads[n] for n in names))

    check_layer_backward(forward, backward, [x, *(params[n] for n in names)],
                         names=["x", *names])
    return names


def other_backend(backend):
    return "numpy" if backend.name != "numpy" else (
        [b for b in xpnet.available_backends() if b not in ("numpy", "cupy")] or ["numpy"])[0]


def conv_reference(x, w, pad):
    """Cross-correlation, stride 1, zero padding, in NumPy loops over the filter taps."""
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp_ = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    out = np.zeros((n, f, oh, ow))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,fc->nfhw", xp_[:, :, i:i + oh, j:j + ow], w[:, :, i, j])
    return out


# ---------------------------------------------------------------------------
# Batchnorm without scale (or shift), any eps and momentum


@pytest.mark.parametrize("module, shape", [
    (BatchNorm(scale=False), (5,)),
    (BatchNorm(center=False, eps=1e-3, momentum=0.5), (4,)),
    (SpatialBatchNorm(scale=False, momentum=0.6, eps=1e-12), (3, 2, 2)),
    (SpatialBatchNorm(scale=False, center=False), (2, 3, 2)),
], ids=["bn-no-scale", "bn-no-shift", "sbn-no-scale", "sbn-neither"])
def test_batchnorm_without_scale_backward(backend, module, shape):
    names = module_gradcheck(backend, module, shape)
    assert ("m.gamma" in names) == module.scale and ("m.beta" in names) == module.center


def test_spatial_batchnorm_without_scale_values_and_running_statistics(backend):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 2, 5)) * 3 + 1
    beta = rng.standard_normal(3)
    model = Sequential(SpatialBatchNorm(scale=False, momentum=0.6, eps=1e-12), Flatten(),
                       input_shape=(3, 2, 5), dtype="float64", backend=backend)
    assert sorted(model.params) == ["0.beta"]
    model.params["0.beta"] = backend.asarray(beta)
    bn = model.layers[0]
    bn.set_mode("train")
    out, _ = bn.forward(backend.asarray(x), model.params)
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)  # biased, as the course's
    expected = (x - mean) / np.sqrt(var + 1e-12) + beta[None, :, None, None]
    np.testing.assert_allclose(xpnet.to_numpy(out), expected, rtol=1e-12, atol=1e-12)
    # running = 0.6 * running + 0.4 * batch, from zeros
    np.testing.assert_allclose(xpnet.to_numpy(model.buffers["0.running_mean"]),
                               0.4 * mean.ravel(), rtol=1e-12)
    np.testing.assert_allclose(xpnet.to_numpy(model.buffers["0.running_var"]),
                               0.4 * var.ravel(), rtol=1e-12)


@pytest.mark.parametrize("kwargs, match", [({"momentum": 1.5}, "momentum"),
                                           ({"momentum": -0.1}, "momentum"),
                                           ({"eps": 0.0}, "eps"), ({"eps": -1e-5}, "eps")])
def test_batchnorm_refuses_bad_momentum_and_eps(kwargs, match):
    with pytest.raises(InputError, match=match):
        SpatialBatchNorm(**kwargs)


# ---------------------------------------------------------------------------
# Convolution and affine layers without bias; identity filters


def test_conv_and_affine_without_bias_backward(backend):
    assert module_gradcheck(backend, Conv(3, bias=False), (2, 4, 4)) == ["m.W"]
    assert module_gradcheck(backend, Conv(2, size=2, pad=0, bias=False), (2, 5, 4)) == ["m.W"]
    assert module_gradcheck(backend, Affine(3, bias=False), (2, 3)) == ["m.W"]


def test_conv_without_bias_is_the_plain_cross_correlation(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 5))
    model = Sequential(Conv(4, bias=False), Flatten(), input_shape=(3, 5, 5),
                       dtype="float64", seed=0, backend=backend)
    w = xpnet.to_numpy(model.params["0.W"])
    np.testing.assert_allclose(xpnet.to_numpy(model.loss(x)),
                               conv_reference(x, w, 1).reshape(2, -1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("filters, channels", [(6, 4), (4, 4), (3, 5)])
def test_dirac_filters_pass_the_first_channels_through(backend, filters, channels):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, channels, 6, 5))
    model = Sequential(Conv(filters, init="dirac", bias=False), Flatten(),
                       input_shape=(channels, 6, 5), dtype="float64", seed=0, backend=backend)
    out = xpnet.to_numpy(model.loss(x)).reshape(2, filters, 6, 5)
    m = min(filters, channels)
    np.testing.assert_array_equal(out[:, :m], x[:, :m])
    w = xpnet.to_numpy(model.params["0.W"])
    if filters > channels:  # the other filters are random (He), not zero
        assert np.all(np.abs(w[m:]).sum(axis=(1, 2, 3)) > 0)
    # the identity filters: one 1 at the centre of their own channel
    expected = np.zeros((m, channels, 3, 3))
    expected[np.arange(m), np.arange(m), 1, 1] = 1.0
    np.testing.assert_array_equal(w[:m], expected)


def test_dirac_of_an_even_kernel_uses_the_lower_right_centre(xp, backend):
    w = dirac(xp, backend.asarray(np.ones((2, 2, 2, 2))))
    expected = np.zeros((2, 2, 2, 2))
    expected[0, 0, 1, 1] = expected[1, 1, 1, 1] = 1.0  # PyTorch's dirac_: index k // 2
    np.testing.assert_array_equal(xpnet.to_numpy(w), expected)
    with pytest.raises(InputError, match="filter bank"):
        dirac(xp, backend.asarray(np.ones((2, 2))))


def test_conv_refuses_an_unknown_init():
    with pytest.raises(InputError, match="init"):
        Conv(3, init="orthogonal")


# ---------------------------------------------------------------------------
# Scaled head


def test_scale_module_values_and_backward(backend):
    module_gradcheck(backend, Scale(1 / 9), (4,))
    s = Scale(0.5)
    out, cache = s.forward(backend.asarray(np.array([[2.0, -4.0]])), {})
    np.testing.assert_array_equal(xpnet.to_numpy(out), [[1.0, -2.0]])
    for bad in (0.0, math.inf, "a"):
        with pytest.raises(InputError, match="factor"):
            Scale(bad)


# ---------------------------------------------------------------------------
# Frozen parameters


def toy_data(n=40, seed=0, shape=(3, 6, 6), classes=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, *shape)).astype(np.float32)
    y = rng.integers(0, classes, n)
    return {"X_train": X, "y_train": y, "X_val": X[:10], "y_val": y[:10]}


def recipe_net(backend, frozen=("0.W",), dtype="float32"):
    return Sequential(Conv(24, size=2, pad=0), GELU(), Conv(8, init="dirac", bias=False),
                      SpatialBatchNorm(scale=False, momentum=0.6, eps=1e-12), GELU(),
                      MaxPool(2), Flatten(), Affine(3, bias=False), Scale(1 / 9),
                      input_shape=(3, 6, 6), frozen=list(frozen), dtype=dtype, seed=0,
                      backend=backend)


def test_a_frozen_first_layer_is_never_updated_nor_differentiated(backend, monkeypatch):
    model = recipe_net(backend)
    assert "0.W" not in model.params and model.frozen == ["0.W"]
    assert "0.W" in model.buffers and "0.b" in model.params
    before = {k: xpnet.to_numpy(v).copy() for k, v in model.params.items()}
    w_before = xpnet.to_numpy(model.buffers["0.W"]).copy()
    calls = []
    real_params, real_fast = fast_layers.conv_backward_params, fast_layers.conv_backward_fast

    def spy_params(dout, cache):
        calls.append(("params", tuple(cache["w"].shape) if isinstance(cache, dict)
                      and "w" in cache else None))
        return real_params(dout, cache)

    def spy_fast(dout, cache):
        calls.append(("fast", None))
        return real_fast(dout, cache)

    monkeypatch.setattr(fast_layers, "conv_backward_params", spy_params)
    monkeypatch.setattr(fast_layers, "conv_backward_fast", spy_fast)
    data = toy_data()
    loss, grads = model.loss(data["X_train"][:5], data["y_train"][:5])
    assert "0.W" not in grads and sorted(grads) == sorted(model.params)
    # the one conv backward that ran is the second layer's (which needs dx); the first
    # layer's bias gradient is a sum, and its frozen filters get no gradient at all
    assert calls == [("fast", None)]
    solver = Solver(model, data, update_rule="sgd_momentum", batch_size=10, num_epochs=2,
                    optim_config={"learning_rate": 0.05}, verbose=False, seed=0)
    solver.train()
    np.testing.assert_array_equal(xpnet.to_numpy(model.buffers["0.W"]), w_before)
    for name, value in before.items():
        assert not np.array_equal(xpnet.to_numpy(model.params[name]), value), name


def test_the_first_layer_bias_gradient_is_its_sum(backend):
    model = recipe_net(backend, dtype="float64")
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((3, 3, 6, 6)), np.array([0, 1, 2])
    _, grads = model.loss(X, y)
    num = xpnet.gradient_check.eval_numerical_gradient(
        lambda _: model.loss(X, y)[0], model.params["0.b"], verbose=False, h=1e-6)
    np.testing.assert_allclose(xpnet.to_numpy(grads["0.b"]), xpnet.to_numpy(num), rtol=1e-6,
                               atol=1e-10)


def test_freeze_and_unfreeze_move_parameters_between_params_and_buffers(backend):
    model = recipe_net(backend, frozen=())
    name = "7.W"  # the head
    w = model.params[name]
    assert model.params[name] is w
    model.freeze(name)
    assert name not in model.params and model.buffers[name] is w
    assert "frozen" in model.config and model.config["frozen"] == [name]
    _, grads = model.loss(toy_data()["X_train"][:4], np.arange(4) % 3)
    assert name not in grads
    model.unfreeze(name)
    assert model.params[name] is w and name not in model.buffers and model.frozen == []
    with pytest.raises(InputError, match="no parameter"):
        model.freeze("9.W")


def test_freeze_after_trains_the_bias_then_holds_it(backend):
    model = recipe_net(backend)
    data = toy_data()
    seen = []

    def record(solver, event):
        if event == "epoch":
            seen.append((solver.epoch, xpnet.to_numpy(solver.model.buffers.get(
                "0.b", solver.model.params.get("0.b"))).copy()))

    solver = Solver(model, data, update_rule="sgd_momentum", batch_size=10, num_epochs=4,
                    optim_config={"learning_rate": 0.05}, verbose=False, seed=1,
                    callback=Callbacks(FreezeAfter("0.b", epochs=2), record))
    solver.train()
    by_epoch = dict(seen)  # the last check of each epoch
    assert not np.array_equal(by_epoch[1], by_epoch[2]), "trained during the second epoch"
    np.testing.assert_array_equal(by_epoch[2], by_epoch[3])
    np.testing.assert_array_equal(by_epoch[3], by_epoch[4])
    assert "0.b" not in model.params and model.frozen == ["0.W", "0.b"]


def test_every_new_module_saves_and_loads_on_another_backend(backend, tmp_path):
    model = recipe_net(backend, dtype="float64")
    data = toy_data()
    X = data["X_train"][:6].astype(np.float64)
    model.loss(X, data["y_train"][:6])  # running statistics
    model.freeze("0.b")
    path = xpnet.save_model(tmp_path / "recipe.npz", model)
    loaded = xpnet.load_model(path, backend=other_backend(backend))
    assert loaded.config == model.config and loaded.frozen == ["0.W", "0.b"]
    for name, value in model.buffers.items():
        np.testing.assert_array_equal(xpnet.to_numpy(loaded.buffers[name]),
                                      xpnet.to_numpy(value))
    np.testing.assert_allclose(xpnet.to_numpy(loaded.loss(X)), xpnet.to_numpy(model.loss(X)),
                               rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------
# Patch whitening


def smooth_images(n=30, c=3, h=9, w=8, seed=0):
    """Correlated pixels and channels (cumulative sums), so the covariance is far from
    the identity before whitening."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(np.cumsum(rng.standard_normal((n, c, h, w)), axis=2), axis=3) / 4
    return x + 0.5 * x[:, :1]


def numpy_patches(x, k):
    n, c, h, w = x.shape
    rows = [x[i, :, r:r + k, s:s + k].ravel() for i in range(n) for r in range(h - k + 1)
            for s in range(w - k + 1)]
    return np.array(rows)


def test_whitened_patches_have_identity_covariance(backend):
    x = smooth_images()
    p = numpy_patches(x, 2)
    raw = p.T @ p / len(p)
    assert np.max(np.abs(raw - np.eye(12))) > 1.0  # far from white before
    model = Sequential(Conv(24, size=2, pad=0), Flatten(), input_shape=(3, 9, 8),
                       frozen=["0.W"], dtype="float64", seed=0, backend=backend)
    eps = 1e-9
    w = init_whitening(model, x, eps=eps)
    assert tuple(w.shape) == (24, 3, 2, 2)
    assert xpnet.to_numpy(model.buffers["0.W"]) is not None and "0.W" not in model.params
    model.params["0.b"] = backend.asarray(np.zeros(24))
    out = xpnet.to_numpy(model.loss(x)).reshape(len(x), 24, -1)
    z = np.moveaxis(out[:, :12], 1, 2).reshape(-1, 12)  # the eigen-directions
    np.testing.assert_allclose(z.T @ z / len(z), np.eye(12), atol=1e-5)
    # the other 12 channels are their negatives
    np.testing.assert_allclose(out[:, 12:], -out[:, :12], rtol=0, atol=0)
    # against NumPy's decomposition: eigenvalues in decreasing order, filters V^T/sqrt(l+eps)
    values, vectors = np.linalg.eigh(raw)
    wn = xpnet.to_numpy(w)[:12].reshape(12, 12)
    np.testing.assert_allclose(np.abs(wn @ vectors[:, ::-1]),
                               np.diag(1 / np.sqrt(values[::-1] + eps)), atol=1e-6, rtol=1e-6)


def test_whitening_with_eps_shrinks_the_small_directions(backend):
    x = smooth_images(seed=1)
    p = numpy_patches(x, 2)
    values = np.linalg.eigvalsh(p.T @ p / len(p))[::-1]
    eps = 5e-4 * values[0]
    model = Sequential(Conv(24, size=2, pad=0, bias=False), Flatten(), input_shape=(3, 9, 8),
                       dtype="float64", seed=0, backend=backend)
    init_whitening(model, x, eps=eps)
    out = xpnet.to_numpy(model.loss(x)).reshape(len(x), 24, -1)
    z = np.moveaxis(out[:, :12], 1, 2).reshape(-1, 12)
    np.testing.assert_allclose(z.T @ z / len(z), np.diag(values / (values + eps)), atol=1e-8)


def test_init_whitening_needs_twice_the_patch_size_in_filters(backend):
    model = Sequential(Conv(10, size=2, pad=0), ReLU(), Flatten(), input_shape=(3, 5, 5),
                       backend=backend)
    with pytest.raises(InputError, match="24 filters"):
        init_whitening(model, np.zeros((2, 3, 5, 5)))
    with pytest.raises(InputError, match="not a Conv"):
        init_whitening(model, np.zeros((2, 3, 5, 5)), layer=1)


def test_set_frozen_freezes_exactly_the_given_parameters(backend):
    model = recipe_net(backend)
    model.set_frozen(["0.b", "7.W"])
    assert model.frozen == ["0.b", "7.W"] and "0.W" in model.params
    model.set_frozen([])
    assert model.frozen == [] and {"0.W", "0.b", "7.W"} <= set(model.params)
    with pytest.raises(InputError, match="no parameter"):
        model.set_frozen(["8.W"])
