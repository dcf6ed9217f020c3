"""GELU and the Array API error function it needs.

erf / erfc against the standard library's (math.erf, math.erfc: correctly
rounded to about an ulp) over [-27, 27] on every backend, in float64 and
float32; gelu_forward against x * Phi(x) computed here with math.erf, and the
tanh form from its formula; both backward passes against float64 central
differences; the GELU module in a Sequential, its config, save and load on
another backend.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from xpnet import layers
from xpnet._ops import erf as erf_ops
from xpnet.errors import InputError, InputTypeError
from xpnet.nn import GELU, Affine, Flatten, Sequential
from xpnet.testing import check_layer_backward


def grid(dtype):
    """Dense near 0, the switch points and the tails; rounded to ``dtype`` first, so
    the reference is computed at the very inputs the backend sees."""
    x = np.concatenate([np.linspace(-27, 27, 20001), np.linspace(-3, 3, 6001),
                        [0.0, -0.0, 1e-300, 1e-30, 1e-8, 1.5, 2.5, -1.5, -2.5]])
    return x.astype(dtype).astype(np.float64)


def ulp_error(actual, desired, dtype):
    """Relative error in units of the dtype's epsilon (exact zeros compare absolutely)."""
    eps = float(np.finfo(dtype).eps)
    tiny = float(np.finfo(dtype).tiny)
    return np.abs(actual - desired) / np.maximum(np.abs(desired), tiny) / eps


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_erf_against_math_erf(backend, dtype):
    x = grid(dtype)
    ref = np.array([math.erf(v) for v in x])
    got = xpnet.to_numpy(erf_ops.erf(backend.asarray(x, dtype=dtype))).astype(np.float64)
    assert got.dtype == np.float64 and got.shape == x.shape
    assert ulp_error(got, ref.astype(dtype), dtype).max() < 6, \
        x[np.argmax(ulp_error(got, ref, dtype))]
    # odd, bounded
    np.testing.assert_array_equal(got[x == 0], 0.0)
    assert np.all(np.abs(got) <= 1.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_erfc_keeps_relative_accuracy_in_the_tail(backend, dtype):
    x = grid(dtype)
    ref = np.array([math.erfc(v) for v in x])
    got = xpnet.to_numpy(erf_ops.erfc(backend.asarray(x, dtype=dtype))).astype(np.float64)
    switch = 2.5 if dtype == "float64" else 1.5
    # from the switch point on: a few ulp of erfc itself, down to the smallest normal
    tail = (x >= switch) & (ref > np.finfo(dtype).tiny)
    assert ulp_error(got[tail], ref[tail], dtype).max() < 6
    # below: 1 - erf, a few ulp of 1 absolutely; above 1 (x < 0) relative
    head = x < switch
    eps = float(np.finfo(dtype).eps)
    assert np.max(np.abs(got[head] - ref[head]) / np.maximum(ref[head], 1.0)) < 6 * eps
    # erfc(x) = 0 once it underflows, never negative
    assert np.all(got >= 0.0) and np.all(got[x > 27] == 0.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_erf_of_non_finite_values(backend, dtype):
    x = backend.asarray(np.array([np.inf, -np.inf, np.nan]), dtype=dtype)
    np.testing.assert_array_equal(xpnet.to_numpy(erf_ops.erf(x)), [1.0, -1.0, np.nan])
    np.testing.assert_array_equal(xpnet.to_numpy(erf_ops.erfc(x)), [0.0, 2.0, np.nan])


def test_erf_refuses_integers(backend):
    with pytest.raises(InputTypeError, match="real floating"):
        erf_ops.erf(backend.asarray(np.arange(3)))


def gelu_exact_reference(x):
    return np.array([v * 0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x.ravel()]
                    ).reshape(x.shape)


def gelu_tanh_reference(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def test_gelu_forward_exact_and_tanh_against_their_formulas(backend):
    x = np.concatenate([np.linspace(-12, 12, 481), [-30.0, 30.0]]).reshape(3, -1)
    out, _ = layers.gelu_forward(backend.asarray(x))
    got = xpnet.to_numpy(out)
    ref = gelu_exact_reference(x)
    # Phi(x) to a few ulp of 1: out to a few ulp of |x| everywhere ...
    eps = float(np.finfo(np.float64).eps)
    err = np.abs(got - ref)
    assert np.all(err <= 8 * eps * np.abs(x))
    # ... and relative accuracy in the far lower tail (x Phi(x) is tiny there, not 0),
    # to the function's own condition number, about x^2 (the rounding of x / sqrt(2));
    # between -3.5 and 0, Phi = 1 - erf (see xpnet._ops.erf)
    tail = x < -2.5 * math.sqrt(2.0)
    assert np.all(err[tail] <= (8 + x[tail] ** 2) * eps * np.abs(ref[tail]))
    out_t, _ = layers.gelu_forward(backend.asarray(x), approximate="tanh")
    # (1 + tanh) cancels in the lower tail: libraries' tanh differ by an ulp of 1 there
    assert np.all(np.abs(xpnet.to_numpy(out_t) - gelu_tanh_reference(x))
                  <= 8 * eps * np.abs(x))
    # the two forms differ by less than 5e-4 (the tanh form's known error)
    assert np.max(np.abs(xpnet.to_numpy(out_t) - ref)) < 5e-4


def test_gelu_in_float32(backend):
    x = np.linspace(-12, 12, 961).astype(np.float32)
    out, _ = layers.gelu_forward(backend.asarray(x))
    got = xpnet.to_numpy(out)
    assert got.dtype == np.float32
    ref = gelu_exact_reference(x.astype(np.float64))
    eps = float(np.finfo(np.float32).eps)
    assert np.all(np.abs(got - ref) <= 8 * eps * np.abs(x))
    tail = x < -3  # relative there, to the condition number about x^2
    assert np.all(np.abs(got[tail] - ref[tail]) <= (8 + x[tail] ** 2) * eps * np.abs(ref[tail]))


def test_gelu_known_values(backend):
    # GELU(1) = Phi(1) = 0.8413447460685429..., GELU(-1) = -(1 - Phi(1))
    out, _ = layers.gelu_forward(backend.asarray(np.array([1.0, -1.0, 0.0])))
    np.testing.assert_allclose(xpnet.to_numpy(out),
                               [0.8413447460685429, -0.15865525393145707, 0.0], rtol=1e-15)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_backward_against_numerical_gradients(backend, approximate):
    rng = np.random.default_rng(0)
    x = backend.asarray(2.0 * rng.standard_normal((4, 3, 5)))
    check_layer_backward(lambda x: layers.gelu_forward(x, approximate), layers.gelu_backward,
                         [x], names=["x"])


def test_gelu_derivative_at_known_points(backend):
    # d/dx x Phi(x) = Phi(x) + x phi(x): at 0 it is 1/2; at 1 it is Phi(1) + phi(1)
    x = backend.asarray(np.array([0.0, 1.0]))
    _, cache = layers.gelu_forward(x)
    dx = layers.gelu_backward(backend.asarray(np.ones(2)), cache)
    phi1 = math.exp(-0.5) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(xpnet.to_numpy(dx), [0.5, 0.8413447460685429 + phi1],
                               rtol=1e-15)


def test_gelu_bad_input(backend):
    x = backend.asarray(np.ones((2, 3)))
    with pytest.raises(InputError, match="approximate"):
        layers.gelu_forward(x, approximate="sigmoid")
    _, cache = layers.gelu_forward(x)
    with pytest.raises(InputError, match="shape"):
        layers.gelu_backward(backend.asarray(np.ones((3, 2))), cache)
    with pytest.raises(InputError, match="cache"):
        layers.gelu_backward(x, x)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_module_in_a_model_gradients_and_save_load(backend, tmp_path, approximate):
    model = Sequential(Flatten(), Affine(5), GELU(approximate), Affine(3), input_shape=(2, 3),
                       dtype="float64", seed=0, backend=backend)
    assert model.layers[2].config == {"kind": "gelu", "approximate": approximate}
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((4, 2, 3)), np.array([0, 1, 2, 1])
    loss, grads = model.loss(X, y)
    for name in model.params:
        num = xpnet.gradient_check.eval_numerical_gradient(
            lambda _: model.loss(X, y)[0], model.params[name], verbose=False, h=1e-6)
        np.testing.assert_allclose(xpnet.to_numpy(grads[name]), xpnet.to_numpy(num),
                                   rtol=1e-6, atol=1e-9)
    path = xpnet.save_model(tmp_path / "gelu.npz", model)
    other = "numpy" if backend.name != "numpy" else (
        [b for b in xpnet.available_backends() if b not in ("numpy", "cupy")] or ["numpy"])[0]
    loaded = xpnet.load_model(path, backend=other)
    assert loaded.config == model.config
    np.testing.assert_allclose(xpnet.to_numpy(loaded.loss(X)), xpnet.to_numpy(model.loss(X)),
                               rtol=1e-12, atol=1e-14)


def test_gelu_module_refuses_an_unknown_form():
    with pytest.raises(InputError, match="approximate"):
        GELU("fast")
