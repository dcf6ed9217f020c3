"""Winograd F(2x2, 3x3) convolution against the naive layers in float64.

Forward, dx, dw and db of ``method='winograd'`` on the backend under test, in
float32 and float64, over odd sizes, batch 1, one channel, paddings 0-3,
non-contiguous and read-only inputs; non-finite inputs give non-finite
outputs wherever the reference has them.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import layers
from xpnet._ops import conv
from xpnet.errors import InputError

#: the largest error relative to the output's largest magnitude (docstring of
#: xpnet._ops.winograd: about 1e-6 in float32)
RTOL = {"float32": 2e-6, "float64": 1e-13}

GEOMETRIES = [  # x shape, number of filters, pad
    ((2, 3, 5, 7), 4, 1),
    ((1, 1, 4, 4), 1, 0),
    ((1, 1, 3, 3), 2, 0),
    ((2, 2, 6, 5), 3, 2),
    ((3, 2, 7, 7), 2, 3),
    ((1, 5, 9, 4), 6, 1),
    ((4, 16, 8, 8), 16, 1),
]


def reference(x, w, b, dout, pad):
    p = {"stride": 1, "pad": pad}
    out, cache = layers.conv_forward_naive(x, w, b, p)
    return (out, *layers.conv_backward_naive(dout, cache))


def assert_close(got, want, dtype, what):
    got = xpnet.to_numpy(got).astype(np.float64)
    assert got.shape == want.shape, what
    scale = float(np.max(np.abs(want)))
    err = float(np.max(np.abs(got - want))) / scale if scale else float(np.max(np.abs(got)))
    assert err <= RTOL[dtype], f"{what}: error {err:.2e} relative to the largest magnitude"


def run(backend, x_host, w_host, b_host, dout_host, pad, dtype, layout="plain"):
    xp = backend.xp

    def put(a, role):
        a = a.astype(dtype)
        if layout == "noncontiguous":
            wide = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), dtype=dtype)
            wide[..., ::2] = a
            return backend.asarray(wide)[..., ::2]
        arr = backend.asarray(a.copy())
        if layout == "readonly" and role == "in":
            arr.setflags(write=False)
        return arr

    x, w, b, dout = (put(a, "in") for a in (x_host, w_host, b_host, dout_host))
    out, cache = conv.conv_forward(xp, x, w, b, 1, pad, "winograd", "test")
    assert cache["method"] == "winograd"
    dx, dw, db = conv.conv_backward(xp, dout, cache, "test")
    for arr, host in ((x, x_host), (w, w_host), (dout, dout_host)):
        np.testing.assert_array_equal(xpnet.to_numpy(arr), host.astype(dtype))
    return out, dx, dw, db


@pytest.mark.parametrize("layout", ["plain", "noncontiguous", "readonly"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("xs, f, pad", GEOMETRIES)
def test_winograd_matches_the_naive_layer_in_float64(backend, xs, f, pad, dtype, layout):
    if layout == "readonly" and backend.name != "numpy":
        pytest.skip("only NumPy arrays can be read-only")
    rng = np.random.default_rng(sum(xs) + f + pad)
    x = rng.standard_normal(xs)
    w = rng.standard_normal((f, xs[1], 3, 3))
    b = rng.standard_normal(f)
    dout = rng.standard_normal((xs[0], f, xs[2] + 2 * pad - 2, xs[3] + 2 * pad - 2))
    want = reference(x, w, b, dout, pad)
    got = run(backend, x, w, b, dout, pad, dtype, layout)
    for name, g, r in zip(("out", "dx", "dw", "db"), got, want, strict=True):
        assert_close(g, r, dtype, name)


def test_first_layer_skips_dx(backend):
    rng = np.random.default_rng(1)
    x = backend.asarray(rng.standard_normal((2, 3, 6, 6)))
    w = backend.asarray(rng.standard_normal((4, 3, 3, 3)))
    b = backend.asarray(np.zeros(4))
    out, cache = conv.conv_forward(backend.xp, x, w, b, 1, 1, "winograd", "test")
    dout = backend.xp.ones_like(out)
    dx, dw, _ = conv.conv_backward(backend.xp, dout, cache, "test", need_dx=False)
    _, dw_full, _ = conv.conv_backward(backend.xp, dout, cache, "test")
    assert dx is None
    np.testing.assert_array_equal(xpnet.to_numpy(dw), xpnet.to_numpy(dw_full))


def test_nonfinite_inputs_stay_nonfinite(backend):
    """Where the reference is inf or NaN, so is Winograd; elsewhere in the tiles that
    see a non-finite input it may be NaN too (inf - inf in the transforms)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 6))
    x[0, 1, 2, 3] = np.inf
    x[1, 0, 4, 1] = np.nan
    w = rng.standard_normal((2, 3, 3, 3))
    b = np.zeros(2)
    dout = rng.standard_normal((2, 2, 6, 6))
    want = reference(x, w, b, dout, 1)[0]
    with np.errstate(all="ignore"):
        out = xpnet.to_numpy(run(backend, x, w, b, dout, 1, "float64")[0])
    assert not np.isfinite(out[~np.isfinite(want)]).any()
    fine = np.isfinite(out)
    np.testing.assert_allclose(out[fine], want[fine], rtol=1e-12, atol=1e-12)


def test_winograd_refuses_other_filters(backend):
    x = backend.asarray(np.zeros((1, 1, 7, 7)))
    b = backend.asarray(np.zeros(1))
    for w_shape, stride in (((1, 1, 5, 5), 1), ((1, 1, 3, 3), 2)):
        with pytest.raises(InputError, match="winograd"):
            conv.conv_forward(backend.xp, x, backend.asarray(np.zeros(w_shape)), b, stride, 1,
                              "winograd", "test")


@pytest.mark.parametrize("xs, f, pad", GEOMETRIES[:4])
def test_winograd_gradients(backend, xs, f, pad):
    from xpnet import fast_layers
    from xpnet.testing import check_layer_backward

    rng = np.random.default_rng(7)
    inputs = [backend.asarray(rng.standard_normal(xs)),
              backend.asarray(rng.standard_normal((f, xs[1], 3, 3))),
              backend.asarray(rng.standard_normal(f)), {"stride": 1, "pad": pad}]
    check_layer_backward(fast_layers.conv_forward_winograd, fast_layers.conv_backward_winograd,
                         inputs, wrt=[0, 1, 2], names=["x", "w", "b"])


def test_winograd_refuses_integer_arrays(backend):
    x = backend.asarray(np.zeros((1, 1, 4, 4), dtype=np.int64))
    w = backend.asarray(np.zeros((1, 1, 3, 3), dtype=np.int64))
    with pytest.raises(InputError, match="floating"):
        conv.conv_forward(backend.xp, x, w, backend.asarray(np.zeros(1, dtype=np.int64)), 1, 1,
                          "winograd", "test")
