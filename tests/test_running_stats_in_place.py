"""Batchnorm writes its running statistics into their arrays (nothing a captured
training step writes may be rebound), with the course's values; arrays that cannot
hold the result (read-only, another dtype) are replaced, as before."""

from __future__ import annotations

import numpy as np

import xpnet
from xpnet import layers
from xpnet.nn import Affine, BatchNorm, Sequential

X1 = np.array([[1.0, 2.0], [3.0, 6.0]])  # mean [2, 4], var [1, 4]
X2 = np.array([[0.0, 1.0], [4.0, 1.0]])  # mean [2, 1], var [4, 0]


def test_running_statistics_keep_their_arrays(backend):
    f64 = backend.xp.float64
    gamma, beta = backend.asarray(np.ones(2), dtype=f64), backend.asarray(np.zeros(2), dtype=f64)
    bn_param = {"mode": "train"}
    layers.batchnorm_forward(backend.asarray(X1, dtype=f64), gamma, beta, bn_param)
    mean, var = bn_param["running_mean"], bn_param["running_var"]
    layers.batchnorm_forward(backend.asarray(X2, dtype=f64), gamma, beta, bn_param)
    assert bn_param["running_mean"] is mean and bn_param["running_var"] is var
    # 0.9 * (0.1 * [2, 4]) + 0.1 * [2, 1] ; 0.9 * (0.1 * [1, 4]) + 0.1 * [4, 0]
    np.testing.assert_allclose(xpnet.to_numpy(mean), [0.38, 0.46], rtol=1e-12)
    np.testing.assert_allclose(xpnet.to_numpy(var), [0.49, 0.36], rtol=1e-12)


def test_spatial_batchnorm_and_the_module_keep_their_arrays(backend):
    x = backend.asarray(np.random.default_rng(0).standard_normal((4, 3, 2, 2)))
    gamma, beta = backend.asarray(np.ones(3)), backend.asarray(np.zeros(3))
    bn_param = {"mode": "train"}
    layers.spatial_batchnorm_forward(x, gamma, beta, bn_param)
    mean = bn_param["running_mean"]
    layers.spatial_batchnorm_forward(x, gamma, beta, bn_param)
    assert bn_param["running_mean"] is mean
    expected = 0.19 * np.mean(xpnet.to_numpy(x), axis=(0, 2, 3))  # 0.9 * 0.1 m + 0.1 m
    np.testing.assert_allclose(xpnet.to_numpy(mean), expected, rtol=1e-12)


def test_read_only_or_narrower_statistics_are_replaced():
    gamma, beta = np.ones(2), np.zeros(2)
    frozen = np.zeros(2)
    frozen.flags.writeable = False
    narrow = np.ones(2, dtype=np.float32)
    bn_param = {"mode": "train", "running_mean": frozen, "running_var": narrow}
    layers.batchnorm_forward(X1, gamma, beta, bn_param)
    assert bn_param["running_mean"] is not frozen and not frozen.any()
    assert bn_param["running_var"] is not narrow and bn_param["running_var"].dtype == np.float64
    np.testing.assert_allclose(bn_param["running_mean"], [0.2, 0.4], rtol=1e-12)
    np.testing.assert_allclose(bn_param["running_var"], [1.0, 1.3], rtol=1e-6)


def test_loaded_buffers_are_copies(backend):
    # in-place statistics must not write into arrays the caller still holds
    model = Sequential(Affine(2), BatchNorm(), Affine(2), input_shape=(3,), backend=backend)
    model.loss(np.zeros((2, 3)), np.array([0, 1]))
    mine = {k: backend.asarray(np.full(2, 0.5)) for k in model.buffers}
    model.load_buffers(mine)
    model.loss(np.ones((2, 3)), np.array([0, 1]))  # a training step updates the statistics
    for value in mine.values():
        np.testing.assert_array_equal(xpnet.to_numpy(value), np.full(2, 0.5))


def test_fully_connected_net_loaded_buffers_are_copies(backend):
    model = xpnet.FullyConnectedNet([4], input_dim=3, num_classes=2, normalization="batchnorm",
                                    seed=0, backend=backend)
    mine = {k: backend.asarray(np.full(4, 0.5)) for k in ("running_mean1", "running_var1")}
    model.load_buffers(mine)
    model.loss(np.ones((2, 3)), np.array([0, 1]))
    for value in mine.values():
        np.testing.assert_array_equal(xpnet.to_numpy(value), np.full(4, 0.5))

