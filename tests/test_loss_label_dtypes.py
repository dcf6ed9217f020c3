"""The losses give the same values for every integer label dtype.

A one-hot mask built with ``arange(C, dtype=y.dtype)`` wraps around for narrow
label dtypes (int8 holds 127 at most, uint8 255): with 300 classes, class 256
"equals" label 0 and the loss is wrong. Every loss is compared here with an
independent float64 NumPy computation on the same labels held in int8, uint8,
int16, int32 and int64.
"""

from __future__ import annotations

import numpy as np
import pytest

from xpnet import layers

pytestmark = pytest.mark.usefixtures("fast_paths")

CLASSES = 300
N = 64
# the largest label each dtype can hold (uint8 labels < 256 with 300 classes are legitimate)
LABEL_MAX = {"int8": 127, "uint8": 255, "int16": CLASSES - 1, "int32": CLASSES - 1,
             "int64": CLASSES - 1}


def _np_softmax(x, y, eps=0.0):
    n, c = x.shape
    z = x - x.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    target = np.full((n, c), eps / c)
    target[np.arange(n), y] += 1.0 - eps
    loss = -(target * logp).sum() / n
    return loss, (np.exp(logp) - target) / n


def _np_svm(x, y):
    n = x.shape[0]
    margins = np.maximum(0.0, x - x[np.arange(n), y][:, None] + 1.0)
    margins[np.arange(n), y] = 0.0
    positive = (margins > 0).astype(np.float64)
    dx = positive.copy()
    dx[np.arange(n), y] = -positive.sum(axis=1)
    return margins.sum() / n, dx / n


def _labels(dtype):
    rng = np.random.default_rng(17)
    high = LABEL_MAX[dtype]
    y = rng.integers(0, high + 1, size=N)
    y[:3] = [0, high, high // 2]  # both ends of the range
    return y.astype(np.int64)


@pytest.mark.parametrize("dtype", list(LABEL_MAX))
@pytest.mark.parametrize("kind", ["softmax", "softmax_smoothed", "svm"])
def test_loss_is_independent_of_the_label_dtype(kind, dtype, dev, check):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N, CLASSES))
    y = _labels(dtype)
    if kind == "svm":
        expected_loss, expected_dx = _np_svm(x, y)
        loss, dx = layers.svm_loss(dev(x, "float64"), dev(y, dtype))
    else:
        eps = 0.1 if kind == "softmax_smoothed" else 0.0
        expected_loss, expected_dx = _np_softmax(x, y, eps)
        loss, dx = layers.softmax_loss(dev(x, "float64"), dev(y, dtype), label_smoothing=eps)
    check(loss, expected_loss, rtol=1e-12)
    check(dx, expected_dx, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_narrow_labels_still_check_their_range(dtype, dev):
    # range checking reads the labels' values, not the dtype: 255 in uint8 with 200
    # classes is out of range and must be refused
    from xpnet.errors import InputError

    x = np.zeros((2, 100))
    y = np.array([0, 100])
    with pytest.raises(InputError, match=r"\[0, 99\]"):
        layers.softmax_loss(dev(x, "float64"), dev(y, dtype))
