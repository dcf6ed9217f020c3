"""xpnet.testing: assert_close checks namespace, dtype and shape before values;
check_layer_backward passes correct layers and pinpoints broken ones."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import layers
from xpnet.testing import assert_close, check_layer_backward, default_rtol


def test_assert_close_checks_what_before_how_much(backend):
    a = backend.asarray(np.array([1.0, 2.0], dtype=np.float32))
    assert_close(a, backend.asarray(np.array([1.0, 2.0 + 1e-4], dtype=np.float32)))
    with pytest.raises(AssertionError, match="dtypes differ: actual float32, desired float64"):
        assert_close(a, backend.asarray(np.array([1.0, 2.0])))
    with pytest.raises(AssertionError, match=r"shapes differ: actual \(2,\), desired \(1, 2\)"):
        assert_close(a, backend.asarray(np.array([[1.0, 2.0]], dtype=np.float32)))
    with pytest.raises(AssertionError, match="Mismatched elements: 1 / 2"):
        assert_close(a, backend.asarray(np.array([1.0, 2.1], dtype=np.float32)))
    assert_close(a, [1.0, 2.0])  # a plain list is taken in a's namespace and dtype
    if backend.name != "numpy":
        with pytest.raises(AssertionError, match=f"namespaces differ: actual is a "
                                                 f"{backend.name} array, desired a numpy"):
            assert_close(a, np.array([1.0, 2.0], dtype=np.float32))


def test_default_tolerance_follows_the_dtype():
    assert 1e-3 < default_rtol("float32") < 2e-3
    assert 1e-8 < default_rtol("float64") < 1e-7
    assert default_rtol("int64") == 0.0
    a = np.array([1.0], dtype=np.float64)
    with pytest.raises(AssertionError):
        assert_close(a, np.array([1.0 + 1e-6]))  # fine in float32, not in float64


def test_check_layer_backward_passes_a_correct_layer(backend):
    rng = np.random.default_rng(0)
    x, w, b = (backend.asarray(rng.standard_normal(s)) for s in ((3, 4), (4, 5), (5,)))
    report = check_layer_backward(layers.affine_forward, layers.affine_backward, [x, w, b],
                                  names=["x", "w", "b"])
    assert set(report.errors) == {"x", "w", "b"} and report.worst < 1e-7


def test_check_layer_backward_pinpoints_a_broken_gradient(backend):
    rng = np.random.default_rng(1)
    x, w, b = (backend.asarray(rng.standard_normal(s)) for s in ((3, 4), (4, 5), (5,)))

    def broken_backward(dout, cache):
        dx, dw, db = layers.affine_backward(dout, cache)
        return dx, dw, db * 1.01  # off by 1% in db only

    with pytest.raises(AssertionError) as info:
        check_layer_backward(layers.affine_forward, broken_backward, [x, w, b],
                             names=["x", "w", "b"])
    message = str(info.value)
    assert "b[" in message and "analytic" in message and "numerical" in message
    assert "x[" not in message and "w[" not in message


def test_check_layer_backward_needs_float64(backend):
    x = backend.asarray(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(xpnet.XpnetError, match="x0 is float32; gradient checks need float64"):
        check_layer_backward(layers.relu_forward, layers.relu_backward, [x])


def test_the_backend_list_drives_the_requirement_files():
    from pathlib import Path

    from xpnet._backend_list import BACKEND_NAMES, BACKENDS

    folder = Path(__file__).resolve().parents[1] / "backends"
    listed = {f for files, _, _ in BACKENDS.values() for f in files}
    assert {p.name for p in folder.glob("*.txt")} == listed
    assert set(BACKENDS) == set(BACKEND_NAMES)


def test_check_layer_backward_reports_the_errors_it_measures(backend):
    # y = x * x: sum(y * dout) has the gradient 2 x dout, which central differences of a
    # quadratic give exactly (up to rounding). A backward off by a factor (1 + eps) has the
    # relative error eps / (2 + eps) in every entry, and along any direction as well.
    eps = 1e-3
    x = backend.asarray(np.linspace(-1.0, 1.0, 6).reshape(2, 3) + 0.05)
    dout = backend.asarray(np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]))

    def square(z):
        return z * z, z

    def scaled_backward(d, cache):
        return 2 * cache * d * (1 + eps)

    report = check_layer_backward(square, scaled_backward, [x], dout, raise_error=False)
    expected = eps / (2 + eps)
    assert report.errors == {"x0": pytest.approx(expected, rel=1e-5)}
    assert report.directional == pytest.approx(expected, rel=1e-4)
    assert not report.passed and "directional derivative" in report.failures[-1]
    exact = check_layer_backward(square, lambda d, cache: 2 * cache * d, [x], dout)
    assert exact.worst < 1e-9 and exact.directional < 1e-9
