"""Max pooling of tiling windows (pool size == stride): reshape and maxima, no copies.

Forward values and the backward routing against an independent NumPy loop
(the reference's rule: the first maximum in row-major window order; a window
with a NaN routes to its first NaN and outputs NaN), on the backend under
test, over odd sizes, batch 1, channel 1, ties, signed zeros, inf/NaN,
non-contiguous and read-only inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import fast_layers, layers


def loop_pool(x, p):
    """(out, dx for dout) by a Python loop over windows, the reference's rule."""
    n, c, h, w = x.shape
    out = np.empty((n, c, h // p, w // p), dtype=x.dtype)
    first = np.empty((n, c, h // p, w // p), dtype=np.int64)
    for idx in np.ndindex(*out.shape):
        a, b, i, j = idx
        win = x[a, b, i * p:(i + 1) * p, j * p:(j + 1) * p].reshape(-1)
        nan = np.flatnonzero(np.isnan(win))
        k = int(nan[0]) if nan.size else int(np.argmax(win))
        first[idx], out[idx] = k, win[k]
    return out, first


def loop_pool_backward(dout, first, x_shape, p):
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for idx in np.ndindex(*dout.shape):
        a, b, i, j = idx
        k = first[idx]
        dx[a, b, i * p + k // p, j * p + k % p] += dout[idx]
    return dx


def values(family, shape, rng, dtype):
    if family == "ties":
        x = rng.integers(-1, 2, size=shape).astype(dtype)
    elif family == "zeros":
        x = np.zeros(shape, dtype=dtype)
        x.reshape(-1)[::3] = -0.0
    else:
        x = rng.standard_normal(shape).astype(dtype)
    if family == "nonfinite":
        flat = x.reshape(-1)
        flat[::7] = np.nan
        flat[1::5] = np.inf
        flat[2::11] = -np.inf
    return x


SHAPES = [((2, 3, 4, 6), 2), ((1, 1, 2, 2), 2), ((3, 2, 6, 9), 3), ((1, 4, 5, 7), 1),
          ((2, 5, 10, 14), 2), ((1, 2, 8, 8), 4)]
FAMILIES = ["normal", "ties", "zeros", "nonfinite"]


@pytest.mark.parametrize("layout", ["plain", "noncontiguous", "channels_first", "readonly"])
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("shape, p", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tile_pool_matches_the_loop(backend, shape, p, family, layout, dtype):
    if layout == "readonly" and backend.name != "numpy":
        pytest.skip("only NumPy arrays can be read-only")
    rng = np.random.default_rng(sum(shape) + p)
    host = values(family, shape, rng, dtype)
    want, first = loop_pool(host, p)
    dout_host = rng.standard_normal(want.shape).astype(dtype)
    want_dx = loop_pool_backward(dout_host, first, shape, p)
    if layout == "noncontiguous":
        wide = np.zeros((*shape[:3], 2 * shape[3]), dtype=dtype)
        wide[..., ::2] = host
        x = backend.asarray(wide)[..., ::2]
    elif layout == "channels_first":  # the conv layers' output: a (C, N, H, W) buffer
        x = backend.xp.permute_dims(backend.asarray(np.ascontiguousarray(
            host.transpose(1, 0, 2, 3))), (1, 0, 2, 3))
    else:
        x = backend.asarray(host)
        if layout == "readonly":
            x.setflags(write=False)
    pool_param = {"pool_height": p, "pool_width": p, "stride": p}
    for forward in (fast_layers.max_pool_forward_fast, fast_layers.max_pool_forward_reshape):
        out, cache = forward(x, pool_param)
        assert cache.get("tile") == p
        got = xpnet.to_numpy(out)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(got, want)  # NaN == NaN for assert_array_equal
        dx = xpnet.to_numpy(fast_layers.max_pool_backward_fast(backend.asarray(dout_host),
                                                               cache))
        np.testing.assert_array_equal(dx, want_dx)
    np.testing.assert_array_equal(xpnet.to_numpy(x), host)


def test_tile_pool_equals_the_naive_layer_in_float64(backend):
    rng = np.random.default_rng(3)
    x = backend.asarray(rng.standard_normal((3, 4, 8, 6)))
    dout = backend.asarray(rng.standard_normal((3, 4, 4, 3)))
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out_n, cache_n = layers.max_pool_forward_naive(x, pool_param)
    out_f, cache_f = fast_layers.max_pool_forward_fast(x, pool_param)
    np.testing.assert_array_equal(xpnet.to_numpy(out_f), xpnet.to_numpy(out_n))
    np.testing.assert_array_equal(xpnet.to_numpy(fast_layers.max_pool_backward_fast(dout, cache_f)),
                                  xpnet.to_numpy(layers.max_pool_backward_naive(dout, cache_n)))


def test_overlapping_windows_keep_the_window_path(backend):
    x = backend.asarray(np.random.default_rng(0).standard_normal((1, 2, 5, 5)))
    _, cache = fast_layers.max_pool_forward_fast(x, {"pool_height": 3, "pool_width": 3,
                                                     "stride": 2})
    assert not cache.get("tile") and cache["arg"] is not None
