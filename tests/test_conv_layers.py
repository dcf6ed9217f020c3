"""Convolution, pooling and spatial normalization layers, naive and fast.

Expected values come from outside the code under test: a tiny case worked out
by hand, the course notebook's reference outputs, a plain-NumPy loop over
every output element (the definition), and float64 central differences
through :func:`xpnet.testing.check_layer_backward` on the backend under test.
Fast layers are compared with naive ones on the same inputs, including ties
in pooling windows.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import fast_layers, layer_utils, layers
from xpnet.testing import assert_close, check_layer_backward

pytestmark = pytest.mark.usefixtures("fast_paths")

# (x shape, w shape, stride, pad): stride 2, pads 0/1/2, rectangular and 1x1 filters
CONV_GEOMETRIES = [
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 1),
    ((2, 3, 7, 7), (2, 3, 3, 3), 2, 0),
    ((1, 2, 5, 6), (3, 2, 3, 2), 1, 2),
    ((2, 3, 4, 4), (3, 3, 1, 1), 1, 0),
    ((2, 2, 6, 5), (2, 2, 2, 3), 2, 1),
]
# (x shape, pool_height, pool_width, stride): overlapping and rectangular windows
POOL_GEOMETRIES = [
    ((2, 3, 4, 4), 2, 2, 2),
    ((1, 2, 5, 5), 3, 3, 1),
    ((2, 1, 6, 5), 2, 3, 2),
    ((1, 2, 5, 7), 3, 1, 2),
]
CONV_METHODS = [fast_layers.conv_forward_fast, fast_layers.conv_forward_im2col,
                fast_layers.conv_forward_strides]


def conv_reference(x, w, b, stride, pad):
    """The definition, one output element at a time (plain NumPy, float64)."""
    n, c, h, wd = x.shape
    f, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out_h, out_w = (h + 2 * pad - hh) // stride + 1, (wd + 2 * pad - ww) // stride + 1
    out = np.zeros((n, f, out_h, out_w))
    for i in range(n):
        for k in range(f):
            for r in range(out_h):
                for s in range(out_w):
                    patch = xp[i, :, r * stride:r * stride + hh, s * stride:s * stride + ww]
                    out[i, k, r, s] = np.sum(patch * w[k]) + b[k]
    return out


def pool_reference(x, ph, pw, stride):
    n, c, h, w = x.shape
    out = np.zeros((n, c, (h - ph) // stride + 1, (w - pw) // stride + 1))
    for r in range(out.shape[2]):
        for s in range(out.shape[3]):
            out[:, :, r, s] = x[:, :, r * stride:r * stride + ph,
                                s * stride:s * stride + pw].max(axis=(2, 3))
    return out


def rand(backend, *shape, seed=0):
    return backend.asarray(np.random.default_rng(seed).standard_normal(shape))


# ---------------------------------------------------------------------------
# Forward values


def test_conv_by_hand(backend):
    # one 3x3 image, one 2x2 filter, stride 1, no padding: four dot products
    x = backend.asarray(np.arange(9.0).reshape(1, 1, 3, 3))
    w = backend.asarray(np.array([[[[1.0, 0.0], [0.0, -1.0]]]]))
    b = backend.asarray(np.array([0.5]))
    # out[r, s] = x[r, s] - x[r + 1, s + 1] + 0.5 = -4 + 0.5 everywhere
    for forward in (layers.conv_forward_naive, *CONV_METHODS):
        out, _ = forward(x, w, b, {"stride": 1, "pad": 0})
        assert_close(out, backend.asarray(np.full((1, 1, 2, 2), -3.5)), rtol=0)
    # with pad 1 the corners see zeros: out[0, 0] = 0 - x[0, 0] + 0.5 = 0.5
    out, _ = layers.conv_forward_naive(x, w, b, {"stride": 1, "pad": 1})
    assert xpnet.to_numpy(out)[0, 0, 0, 0] == 0.5 and xpnet.to_numpy(out)[0, 0, 3, 3] == 8.5


def test_conv_forward_naive_matches_the_course_notebook(backend):
    x = np.linspace(-0.1, 0.5, num=2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    w = np.linspace(-0.2, 0.3, num=3 * 3 * 4 * 4).reshape(3, 3, 4, 4)
    b = np.linspace(-0.1, 0.2, num=3)
    out, _ = layers.conv_forward_naive(backend.asarray(x), backend.asarray(w),
                                       backend.asarray(b), {"stride": 2, "pad": 1})
    correct = np.array([[[[-0.08759809, -0.10987781], [-0.18387192, -0.2109216]],
                         [[0.21027089, 0.21661097], [0.22847626, 0.23004637]],
                         [[0.50813986, 0.54309974], [0.64082444, 0.67101435]]],
                        [[[-0.98053589, -1.03143541], [-1.19128892, -1.24695841]],
                         [[0.69108355, 0.66880383], [0.59480972, 0.56776003]],
                         [[2.36270298, 2.36904306], [2.38090835, 2.38247847]]]])
    assert_close(out, backend.asarray(correct), rtol=1e-7)


def test_max_pool_forward_naive_matches_the_course_notebook(backend):
    x = np.linspace(-0.3, 0.4, num=2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    out, _ = layers.max_pool_forward_naive(backend.asarray(x), {"pool_width": 2,
                                                                "pool_height": 2, "stride": 2})
    correct = np.array([[[[-0.26315789, -0.24842105], [-0.20421053, -0.18947368]],
                         [[-0.14526316, -0.13052632], [-0.08631579, -0.07157895]],
                         [[-0.02736842, -0.01263158], [0.03157895, 0.04631579]]],
                        [[[0.09052632, 0.10526316], [0.14947368, 0.16421053]],
                         [[0.20842105, 0.22315789], [0.26736842, 0.28210526]],
                         [[0.32631579, 0.34105263], [0.38526316, 0.4]]]])
    assert_close(out, backend.asarray(correct), rtol=1e-7)


@pytest.mark.parametrize("xs, ws, stride, pad", CONV_GEOMETRIES)
def test_conv_forward_matches_the_definition(backend, xs, ws, stride, pad):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    expected = backend.asarray(conv_reference(x, w, b, stride, pad))
    for forward in (layers.conv_forward_naive, *CONV_METHODS):
        out, _ = forward(backend.asarray(x), backend.asarray(w), backend.asarray(b),
                         {"stride": stride, "pad": pad})
        assert_close(out, expected, rtol=1e-12, atol=1e-12, err_msg=forward.__name__)


@pytest.mark.parametrize("xs, ph, pw, stride", POOL_GEOMETRIES)
def test_max_pool_forward_matches_the_definition(backend, xs, ph, pw, stride):
    x = np.random.default_rng(2).standard_normal(xs)
    param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    for forward in (layers.max_pool_forward_naive, fast_layers.max_pool_forward_fast):
        out, _ = forward(backend.asarray(x), param)
        assert_close(out, backend.asarray(pool_reference(x, ph, pw, stride)), rtol=0)


# ---------------------------------------------------------------------------
# Gradients (float64 central differences on the backend)


@pytest.mark.parametrize("xs, ws, stride, pad", CONV_GEOMETRIES)
@pytest.mark.parametrize("kind", ["naive", "fast", "im2col", "strides"])
def test_conv_gradients(backend, xs, ws, stride, pad, kind):
    forward, backward = {
        "naive": (layers.conv_forward_naive, layers.conv_backward_naive),
        "fast": (fast_layers.conv_forward_fast, fast_layers.conv_backward_fast),
        "im2col": (fast_layers.conv_forward_im2col, fast_layers.conv_backward_im2col),
        "strides": (fast_layers.conv_forward_strides, fast_layers.conv_backward_strides),
    }[kind]
    inputs = [rand(backend, *xs, seed=3), rand(backend, *ws, seed=4),
              rand(backend, ws[0], seed=5), {"stride": stride, "pad": pad}]
    check_layer_backward(forward, backward, inputs, wrt=[0, 1, 2], names=["x", "w", "b"])


@pytest.mark.parametrize("xs, ph, pw, stride", POOL_GEOMETRIES)
@pytest.mark.parametrize("kind", ["naive", "fast"])
def test_max_pool_gradients(backend, xs, ph, pw, stride, kind):
    forward, backward = {
        "naive": (layers.max_pool_forward_naive, layers.max_pool_backward_naive),
        "fast": (fast_layers.max_pool_forward_fast, fast_layers.max_pool_backward_fast),
    }[kind]
    # distinct values, so no window's maximum is within the step h of a runner-up
    x = np.random.default_rng(6).permutation(int(np.prod(xs))).reshape(xs) * 0.01
    inputs = [backend.asarray(x), {"pool_height": ph, "pool_width": pw, "stride": stride}]
    check_layer_backward(forward, backward, inputs, wrt=[0], names=["x"])


# ---------------------------------------------------------------------------
# Fast against naive


@pytest.mark.parametrize("xs, ws, stride, pad", CONV_GEOMETRIES)
@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-5), ("float64", 1e-12)])
def test_fast_conv_equals_naive(backend, xs, ws, stride, pad, dtype, rtol):
    x, w, b = (backend.asarray(xpnet.to_numpy(rand(backend, *s, seed=k)), dtype=dtype)
               for k, s in enumerate((xs, ws, (ws[0],))))
    param = {"stride": stride, "pad": pad}
    out, cache = layers.conv_forward_naive(x, w, b, param)
    dout = backend.asarray(np.random.default_rng(9).standard_normal(out.shape), dtype=dtype)
    expected = layers.conv_backward_naive(dout, cache)
    for forward in CONV_METHODS:
        fast_out, fast_cache = forward(x, w, b, param)
        assert_close(fast_out, out, rtol=rtol, atol=rtol)
        for got, want in zip(fast_layers.conv_backward_fast(dout, fast_cache), expected,
                             strict=True):
            assert_close(got, want, rtol=rtol, atol=rtol * 10)


@pytest.mark.parametrize("xs, ph, pw, stride", POOL_GEOMETRIES)
def test_fast_pool_equals_naive_with_ties(backend, xs, ph, pw, stride):
    # integer values: many windows hold their maximum twice; both route to the first
    x = backend.asarray(np.random.default_rng(7).integers(-2, 3, size=xs).astype(np.float64))
    param = {"pool_height": ph, "pool_width": pw, "stride": stride}
    out, cache = layers.max_pool_forward_naive(x, param)
    dout = rand(backend, *out.shape, seed=8)
    dx = layers.max_pool_backward_naive(dout, cache)
    fast_out, fast_cache = fast_layers.max_pool_forward_fast(x, param)
    assert_close(fast_out, out, rtol=0)
    assert_close(fast_layers.max_pool_backward_fast(dout, fast_cache), dx, rtol=0, atol=1e-15)
    # every window passes its whole gradient: the sums agree
    np.testing.assert_allclose(float(backend.xp.sum(dx)), float(backend.xp.sum(dout)),
                               rtol=1e-12)


def test_pool_gradient_goes_to_the_first_maximum(backend):
    x = backend.asarray(np.array([[[[1.0, 3.0], [3.0, 0.0]]]]))
    param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    dout = backend.asarray(np.array([[[[5.0]]]]))
    for forward, backward in ((layers.max_pool_forward_naive, layers.max_pool_backward_naive),
                              (fast_layers.max_pool_forward_fast,
                               fast_layers.max_pool_backward_fast),
                              (fast_layers.max_pool_forward_reshape,
                               fast_layers.max_pool_backward_reshape)):
        _, cache = forward(x, param)
        assert_close(backward(dout, cache), backend.asarray(np.array([[[[0.0, 5.0],
                                                                         [0.0, 0.0]]]])))


def test_reshape_pool_equals_fast_and_refuses_other_windows(backend):
    x = rand(backend, 2, 3, 6, 4, seed=10)
    param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    a, ca = fast_layers.max_pool_forward_reshape(x, param)
    b, cb = fast_layers.max_pool_forward_fast(x, param)
    assert_close(a, b, rtol=0)
    dout = rand(backend, *a.shape, seed=11)
    assert_close(fast_layers.max_pool_backward_reshape(dout, ca),
                 fast_layers.max_pool_backward_fast(dout, cb), rtol=0)
    with pytest.raises(xpnet.InputError, match="pool_height == pool_width == stride"):
        fast_layers.max_pool_forward_reshape(x, {"pool_height": 3, "pool_width": 2,
                                                 "stride": 1})


def test_nan_in_a_pooling_window(backend):
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 1, 0] = np.nan
    param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    naive, _ = layers.max_pool_forward_naive(backend.asarray(x), param)
    fast, _ = fast_layers.max_pool_forward_fast(backend.asarray(x), param)
    assert np.isnan(xpnet.to_numpy(naive)[0, 0, 0, 0])
    assert np.isnan(xpnet.to_numpy(fast)[0, 0, 0, 0])
    assert_close(fast, naive, rtol=0)


# ---------------------------------------------------------------------------
# Spatial normalization


def test_spatial_batchnorm_is_batchnorm_of_the_transposed_input(backend):
    rng = np.random.default_rng(12)
    x = rng.normal(3.0, 2.0, (4, 3, 5, 2))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    dout = rng.standard_normal(x.shape)
    flat = np.ascontiguousarray(x.transpose(0, 2, 3, 1).reshape(-1, 3))
    bn_a, bn_b = {"mode": "train"}, {"mode": "train"}
    out, cache = layers.spatial_batchnorm_forward(*(backend.asarray(a) for a in (x, gamma, beta)),
                                                  bn_a)
    ref, ref_cache = layers.batchnorm_forward(*(backend.asarray(a) for a in (flat, gamma, beta)),
                                              bn_b)
    ref_nchw = xpnet.to_numpy(ref).reshape(4, 5, 2, 3).transpose(0, 3, 1, 2)
    assert_close(out, backend.asarray(np.ascontiguousarray(ref_nchw)), rtol=1e-12, atol=1e-12)
    for key in ("running_mean", "running_var"):
        assert_close(bn_a[key], bn_b[key], rtol=1e-12)
    dx, dgamma, dbeta = layers.spatial_batchnorm_backward(backend.asarray(dout), cache)
    flat_dout = np.ascontiguousarray(dout.transpose(0, 2, 3, 1).reshape(-1, 3))
    rdx, rdgamma, rdbeta = layers.batchnorm_backward(backend.asarray(flat_dout), ref_cache)
    rdx_nchw = xpnet.to_numpy(rdx).reshape(4, 5, 2, 3).transpose(0, 3, 1, 2)
    assert_close(dx, backend.asarray(np.ascontiguousarray(rdx_nchw)), rtol=1e-9, atol=1e-12)
    assert_close(dgamma, rdgamma, rtol=1e-10)
    assert_close(dbeta, rdbeta, rtol=1e-10)
    # test mode uses the running averages
    bn_a["mode"] = "test"
    out_test, none = layers.spatial_batchnorm_forward(
        *(backend.asarray(a) for a in (x, gamma, beta)), bn_a)
    mean = xpnet.to_numpy(bn_a["running_mean"]).reshape(1, 3, 1, 1)
    var = xpnet.to_numpy(bn_a["running_var"]).reshape(1, 3, 1, 1)
    expected = gamma.reshape(1, 3, 1, 1) * (x - mean) / np.sqrt(var + 1e-5) + \
        beta.reshape(1, 3, 1, 1)
    assert none is None
    assert_close(out_test, backend.asarray(expected), rtol=1e-12)


def _instance_or_layer_norm(x, axes, gamma, beta, eps=1e-5):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


@pytest.mark.parametrize("groups, axes", [(1, (1, 2, 3)), (6, (2, 3))])
def test_group_norm_with_one_group_is_layer_norm_and_with_c_is_instance_norm(backend, groups,
                                                                               axes):
    rng = np.random.default_rng(13)
    x = rng.normal(1.0, 3.0, (2, 6, 3, 4))
    gamma, beta = rng.standard_normal((1, 6, 1, 1)), rng.standard_normal((1, 6, 1, 1))
    out, _ = layers.spatial_groupnorm_forward(*(backend.asarray(a) for a in (x, gamma, beta)),
                                              groups, {"eps": 1e-5, "ignored": True})
    assert_close(out, backend.asarray(_instance_or_layer_norm(x, axes, gamma, beta)),
                 rtol=1e-12, atol=1e-12)


def test_group_norm_statistics_are_per_group_of_contiguous_channels(backend):
    rng = np.random.default_rng(14)
    x = rng.normal(0.0, 2.0, (2, 6, 2, 2))
    gamma, beta = np.ones((1, 6, 1, 1)), np.zeros((1, 6, 1, 1))
    out, _ = layers.spatial_groupnorm_forward(*(backend.asarray(a) for a in (x, gamma, beta)),
                                              3, {})
    out = xpnet.to_numpy(out)
    for g in range(3):
        block = out[:, 2 * g:2 * g + 2]
        np.testing.assert_allclose(block.mean(axis=(1, 2, 3)), 0, atol=1e-12)
        np.testing.assert_allclose(block.var(axis=(1, 2, 3)), 1, rtol=1e-4)


def test_spatial_norm_gradients(backend):
    x = rand(backend, 3, 4, 2, 3, seed=15)
    g, b = rand(backend, 4, seed=16), rand(backend, 4, seed=17)
    check_layer_backward(layers.spatial_batchnorm_forward, layers.spatial_batchnorm_backward,
                         [x, g, b, {"mode": "train"}], wrt=[0, 1, 2])
    g4, b4 = rand(backend, 1, 4, 1, 1, seed=18), rand(backend, 1, 4, 1, 1, seed=19)
    report = check_layer_backward(layers.spatial_groupnorm_forward,
                                  layers.spatial_groupnorm_backward,
                                  [x, g4, b4, 2, {}], wrt=[0, 1, 2],
                                  names=["x", "gamma", "beta"])
    assert set(report.errors) == {"x", "gamma", "beta"}
    _, cache = layers.spatial_groupnorm_forward(x, g4, b4, 2, {})
    _, dgamma, dbeta = layers.spatial_groupnorm_backward(x, cache)
    assert tuple(dgamma.shape) == tuple(dbeta.shape) == (1, 4, 1, 1)


def test_integer_gamma_and_beta_are_promoted(backend):
    x = rand(backend, 2, 4, 3, 3, seed=20)
    ones = backend.asarray(np.ones((1, 4, 1, 1), dtype=np.int64))
    zeros = backend.asarray(np.zeros((1, 4, 1, 1), dtype=np.int64))
    out, cache = layers.spatial_groupnorm_forward(x, ones, zeros, 2, {})
    assert out.dtype == x.dtype
    _, dgamma, _ = layers.spatial_groupnorm_backward(x, cache)
    assert dgamma.dtype == x.dtype
    out, _ = layers.spatial_batchnorm_forward(x, ones[0, :, 0, 0], zeros[0, :, 0, 0],
                                              {"mode": "train"})
    assert out.dtype == x.dtype


# ---------------------------------------------------------------------------
# Sandwiches


def test_conv_sandwich_gradients(backend):
    x, w, b = rand(backend, 2, 3, 6, 6, seed=21), rand(backend, 4, 3, 3, 3, seed=22), \
        rand(backend, 4, seed=23)
    conv = {"stride": 1, "pad": 1}
    pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
    check_layer_backward(layer_utils.conv_relu_forward, layer_utils.conv_relu_backward,
                         [x, w, b, conv], wrt=[0, 1, 2])
    check_layer_backward(layer_utils.conv_relu_pool_forward,
                         layer_utils.conv_relu_pool_backward, [x, w, b, conv, pool],
                         wrt=[0, 1, 2])
    gamma, beta = rand(backend, 4, seed=24), rand(backend, 4, seed=25)
    check_layer_backward(layer_utils.conv_bn_relu_forward, layer_utils.conv_bn_relu_backward,
                         [x, w, b, gamma, beta, conv, {"mode": "train"}], wrt=[0, 1, 2, 3, 4])


def test_fast_layers_star_import_gives_the_course_names():
    namespace: dict = {}
    exec("from xpnet.fast_layers import *", namespace)  # noqa: S102
    for name in ("conv_forward_fast", "conv_backward_fast", "conv_forward_im2col",
                 "conv_backward_im2col", "conv_forward_strides", "conv_backward_strides",
                 "max_pool_forward_fast", "max_pool_backward_fast", "max_pool_forward_reshape",
                 "max_pool_backward_reshape", "max_pool_forward_im2col",
                 "max_pool_backward_im2col", "conv_forward_winograd", "conv_backward_winograd"):
        assert callable(namespace[name]), name


# ---------------------------------------------------------------------------
# Bad input: a clear error naming the argument, expected and got


@pytest.mark.parametrize("forward", [layers.conv_forward_naive, fast_layers.conv_forward_fast])
def test_conv_bad_input(backend, forward):
    x, w, b = rand(backend, 2, 3, 5, 5), rand(backend, 4, 3, 3, 3), rand(backend, 4)
    name = forward.__name__
    with pytest.raises(xpnet.InputError, match=rf"{name}: x must be 4-D \(N, C, H, W\), got "
                                               r"shape \(3, 5, 5\)"):
        forward(x[0, ...], w, b, {"stride": 1, "pad": 1})
    with pytest.raises(xpnet.InputError, match=rf"{name}: x has 3 channels .* but w expects 2"):
        forward(x, rand(backend, 4, 2, 3, 3), b, {"stride": 1, "pad": 1})
    with pytest.raises(xpnet.InputError, match=r"stride 2 does not tile the input height: "
                                               r"\(5 \+ 2\*0 - 2\) / 2 \+ 1 = 2.5"):
        forward(x, rand(backend, 4, 3, 2, 2), b, {"stride": 2, "pad": 0})
    with pytest.raises(xpnet.MissingKeyError, match=rf"{name}: conv_param has no 'pad'"):
        forward(x, w, b, {"stride": 1})
    with pytest.raises(xpnet.InputError, match=r"conv_param\['stride'\] must be a positive "
                                               r"integer, got 0"):
        forward(x, w, b, {"stride": 0, "pad": 1})
    with pytest.raises(xpnet.InputError, match=r"b must have shape \(4,\)"):
        forward(x, w, rand(backend, 3), {"stride": 1, "pad": 1})
    with pytest.raises(xpnet.InputError, match=rf"{name}: the filter height \(9\) is larger "
                                               r"than the padded input height \(7\)"):
        forward(x, rand(backend, 4, 3, 9, 3), b, {"stride": 1, "pad": 1})


@pytest.mark.parametrize("forward", [layers.max_pool_forward_naive,
                                     fast_layers.max_pool_forward_fast])
def test_pool_bad_input(backend, forward):
    x = rand(backend, 2, 3, 4, 4)
    name = forward.__name__
    with pytest.raises(xpnet.InputError, match=rf"{name}: the pool height \(5\) is larger than "
                                               r"the input height \(4\)"):
        forward(x, {"pool_height": 5, "pool_width": 2, "stride": 2})
    with pytest.raises(xpnet.MissingKeyError, match=rf"{name}: pool_param has no 'stride'"):
        forward(x, {"pool_height": 2, "pool_width": 2})
    with pytest.raises(xpnet.InputError, match=r"stride 3 does not tile the input width"):
        forward(x, {"pool_height": 1, "pool_width": 2, "stride": 3})
    with pytest.raises(xpnet.InputError, match=rf"{name}: x must be 4-D"):
        forward(x[0, ...], {"pool_height": 2, "pool_width": 2, "stride": 2})


def test_group_norm_bad_input(backend):
    x = rand(backend, 2, 6, 3, 3)
    g = rand(backend, 1, 6, 1, 1)
    with pytest.raises(xpnet.InputError, match=r"G = 4 groups do not divide the 6 channels"):
        layers.spatial_groupnorm_forward(x, g, g, 4, {})
    with pytest.raises(xpnet.InputError, match=r"gamma must have shape \(1, 6, 1, 1\)"):
        layers.spatial_groupnorm_forward(x, rand(backend, 1, 3, 1, 1), g, 2, {})
    with pytest.raises(xpnet.InputError, match=r"spatial_batchnorm_forward: gamma must have "
                                               r"shape \(6,\)"):
        layers.spatial_batchnorm_forward(x, g, g, {"mode": "train"})
    with pytest.raises(xpnet.MissingKeyError, match="bn_param has no 'mode'"):
        layers.spatial_batchnorm_forward(x, g[0, :, 0, 0], g[0, :, 0, 0], {})


def test_fast_conv_takes_the_registered_library_kernel_where_there_is_one(backend, fast_paths):
    """On torch conv_forward_fast runs torch's own kernels (a registered fast path,
    held to the reference by tests/test_fast_registry.py); elsewhere an algorithm of
    xpnet._ops.conv. Disabled fast paths always give xpnet's own."""
    x, w, b = rand(backend, 2, 3, 6, 6, seed=1), rand(backend, 4, 3, 3, 3, seed=2), \
        rand(backend, 4, seed=3)
    _, cache = fast_layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    assert (cache["method"] == "library") == (backend.name == "torch" and fast_paths)
    with xpnet.fast_paths_disabled():
        _, cache = fast_layers.conv_forward_fast(x, w, b, {"stride": 1, "pad": 1})
    assert cache["method"] in ("im2col", "shifted", "winograd")


def test_library_forward_then_backward_without_the_library_path(backend):
    """A cache from the library's forward (torch) still backpropagates where its backward
    refuses (float32 stride 2) or fast paths are switched off: by xpnet's own products."""
    x, w, b = (backend.asarray(xpnet.to_numpy(rand(backend, *s, seed=k)), dtype="float32")
               for k, s in enumerate(((2, 3, 7, 7), (2, 3, 3, 3), (2,))))
    for stride, pad in ((2, 0), (1, 1)):
        param = {"stride": stride, "pad": pad}
        out, cache = layers.conv_forward_naive(x, w, b, param)
        dout = backend.asarray(np.random.default_rng(9).standard_normal(out.shape),
                               dtype="float32")
        expected = layers.conv_backward_naive(dout, cache)
        _, fast_cache = fast_layers.conv_forward_fast(x, w, b, param)
        with xpnet.fast_paths_disabled():
            got = fast_layers.conv_backward_fast(dout, fast_cache)
        for g, e in zip(got, expected, strict=True):
            assert_close(g, e, rtol=1e-5, atol=1e-4)
