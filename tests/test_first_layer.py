"""A network's first layer skips the gradient of its input (the data), in one place.

``layer_utils.affine_grads`` / ``conv_grads`` (and the sandwich backward passes
with ``need_dx=False``) are where it happens; the course's models ask for it at
their first layer. Each test records every dX-producing backward call, so a
model that computes the first layer's dX again fails, and checks the first
layer's parameter gradients against float64 central differences.
"""

from __future__ import annotations

import numpy as np
import pytest

from xpnet import layer_utils
from xpnet.backend import to_numpy as backend_numpy
from xpnet.classifiers.cnn import ThreeLayerConvNet
from xpnet.classifiers.fc_net import FullyConnectedNet
from xpnet.gradient_check import eval_numerical_gradient

N, D, C = 4, 3, 5  # D differs from every hidden size: the first layer's input is (N, D)


def spy(monkeypatch, name: str) -> list[tuple[int, ...]]:
    """The input shapes of the dX-producing backward ``name`` of layer_utils, as called."""
    seen: list[tuple[int, ...]] = []
    real = getattr(layer_utils, name)

    def recording(dout, cache):
        x = cache[0] if isinstance(cache, tuple) else cache["x"]
        seen.append(tuple(x.shape))
        return real(dout, cache)

    monkeypatch.setattr(layer_utils, name, recording)
    return seen


def assert_numerical(model, X, y, grads, names):
    for name in names:
        numerical = backend_numpy(eval_numerical_gradient(
            lambda _: model.loss(X, y)[0], model.params[name], verbose=False))
        analytic = backend_numpy(grads[name])
        scale = float(np.max(np.abs(numerical)))  # entries near 0 compare with the scale
        np.testing.assert_allclose(analytic, numerical, rtol=1e-6, atol=max(1e-7 * scale, 1e-12),
                                   err_msg=name)


@pytest.mark.parametrize("hidden, normalization", [
    ([], None), ([6], None), ([6, 7], "batchnorm"), ([6], "layernorm")])
def test_fc_net_first_layer_computes_no_dx(backend, monkeypatch, hidden, normalization):
    rng = np.random.default_rng(0)
    X = backend.asarray(rng.standard_normal((N, D)))
    y = backend.asarray(np.array([0, 1, 4, 2]))
    model = FullyConnectedNet(hidden, input_dim=D, num_classes=C, normalization=normalization,
                              reg=0.1, weight_scale=0.5, dtype="float64", seed=0,
                              backend=backend)
    seen = spy(monkeypatch, "affine_backward")
    loss, grads = model.loss(X, y)
    assert (N, D) not in seen  # the first layer's dX was never computed ...
    assert len(seen) == len(hidden)  # ... every other layer's was
    first = ["W1", "b1"] + (["gamma1", "beta1"] if normalization and hidden else [])
    assert_numerical(model, X, y, grads, first)


def test_conv_net_first_layer_computes_no_dx(backend, monkeypatch):
    rng = np.random.default_rng(1)
    X = backend.asarray(rng.standard_normal((2, 1, 6, 6)))
    y = backend.asarray(np.array([1, 3]))
    model = ThreeLayerConvNet(input_dim=(1, 6, 6), num_filters=2, filter_size=3, hidden_dim=4,
                              num_classes=C, weight_scale=0.5, reg=0.1, dtype="float64",
                              seed=0, backend=backend)
    seen = spy(monkeypatch, "conv_backward_fast")
    loss, grads = model.loss(X, y)
    assert seen == []  # its only convolution is the first layer
    assert_numerical(model, X, y, grads, ["W1", "b1"])


@pytest.mark.parametrize("sandwich", ["affine_relu", "affine_bn_relu", "conv_relu"])
def test_sandwich_backward_without_dx_gives_the_same_parameter_gradients(backend, sandwich):
    rng = np.random.default_rng(2)
    if sandwich == "conv_relu":
        args = [rng.standard_normal((2, 1, 5, 5)), rng.standard_normal((2, 1, 3, 3)),
                rng.standard_normal(2)]
        extra = [{"stride": 1, "pad": 1}]
    else:
        args = [rng.standard_normal((4, 3)), rng.standard_normal((3, 5)),
                rng.standard_normal(5)]
        extra = ([np.ones(5), np.zeros(5), {"mode": "train"}] if "bn" in sandwich else [])
    arrays = [backend.asarray(a) for a in args]
    extra = [backend.asarray(e) if isinstance(e, np.ndarray) else e for e in extra]
    forward = getattr(layer_utils, f"{sandwich}_forward")
    backward = getattr(layer_utils, f"{sandwich}_backward")
    out, cache = forward(*arrays, *extra)
    dout = backend.asarray(rng.standard_normal(tuple(out.shape)))
    full = backward(dout, cache)
    skipped = backward(dout, cache, need_dx=False)
    assert skipped[0] is None and full[0] is not None
    for a, b in zip(full[1:], skipped[1:], strict=True):
        np.testing.assert_array_equal(backend_numpy(a), backend_numpy(b))
