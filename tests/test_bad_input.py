"""Layer-level bad input: the exception type, and a message that names the
argument, what was expected and what was got.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

import xpnet
from xpnet import layers, optim

F64 = "float64"
LOSSES = [layers.svm_loss, layers.softmax_loss]


def _norm_args(dev, n=3, d=2):
    return dev(np.ones((n, d)), F64), dev(np.ones(d), F64), dev(np.zeros(d), F64)


# ---------------------------------------------------------------------------
# affine
# ---------------------------------------------------------------------------

def test_affine_x_w_mismatch(dev):
    x, w, b = dev(np.ones((2, 3)), F64), dev(np.ones((4, 5)), F64), dev(np.ones(5), F64)
    with pytest.raises(ValueError, match=r"affine_forward: x of shape \(2, 3\) has 3 features"
                                         r".*w of shape \(4, 5\) expects 4"):
        layers.affine_forward(x, w, b)


def test_affine_multidim_x_w_mismatch(dev):
    x, w, b = dev(np.ones((2, 3, 2)), F64), dev(np.ones((5, 1)), F64), dev(np.ones(1), F64)
    with pytest.raises(ValueError, match=r"x of shape \(2, 3, 2\) has 6 features.*expects 5"):
        layers.affine_forward(x, w, b)


def test_affine_b_mismatch(dev):
    x, w, b = dev(np.ones((2, 3)), F64), dev(np.ones((3, 4)), F64), dev(np.ones(3), F64)
    with pytest.raises(ValueError, match=r"b must have shape \(4,\).*got \(3,\)"):
        layers.affine_forward(x, w, b)


# ---------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("loss_fn", LOSSES)
def test_loss_float_labels(loss_fn, dev):
    x = dev(np.zeros((3, 4)), F64)
    name = loss_fn.__name__
    with pytest.raises(TypeError, match=rf"{name}: labels y must be integers, got dtype .*float"):
        loss_fn(x, dev(np.array([0.0, 1.0, 2.0]), F64))


@pytest.mark.parametrize("loss_fn", LOSSES)
@pytest.mark.parametrize("labels, low, high", [([0, 4, 1], 0, 4), ([-1, 2, 3], -1, 3)])
def test_loss_labels_out_of_range(loss_fn, labels, low, high, dev):
    x = dev(np.zeros((3, 4)), F64)
    with pytest.raises(ValueError, match=rf"{loss_fn.__name__}: labels must lie in \[0, 3\] "
                                         rf"for 4 classes, got values from {low} to {high}"):
        loss_fn(x, dev(np.array(labels)))


@pytest.mark.parametrize("loss_fn", LOSSES)
@pytest.mark.parametrize("labels", [[0, 1], [0, 1, 2, 3]])
def test_loss_labels_wrong_length(loss_fn, labels, dev):
    x = dev(np.zeros((3, 4)), F64)
    got = re.escape(f"({len(labels)},)")
    with pytest.raises(ValueError, match=rf"{loss_fn.__name__}: labels y must have shape "
                                         rf"\(3,\) to match x \(3, 4\), got {got}"):
        loss_fn(x, dev(np.array(labels)))


# ---------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0, 1.5, -0.1, True, 0.0])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_dropout_keep_probability_out_of_range(p, mode, dev):
    x = dev(np.ones((2, 3)), F64)
    with pytest.raises(ValueError, match=r"dropout_param\['p'\] is the probability of KEEPING"
                                         rf".*\(0, 1\], got {re.escape(repr(p))}$"):
        layers.dropout_forward(x, {"mode": mode, "p": p})


def test_dropout_without_mode(dev):
    with pytest.raises(KeyError, match=r"dropout_param has no 'mode'"):
        layers.dropout_forward(dev(np.ones((2, 3)), F64), {"p": 0.5})


def test_dropout_bad_mode(dev):
    with pytest.raises(ValueError, match=r"dropout_param\['mode'\] must be 'train' or 'test', "
                                         r"got 'eval'"):
        layers.dropout_forward(dev(np.ones((2, 3)), F64), {"mode": "eval", "p": 0.5})


# ---------------------------------------------------------------------------
# batchnorm
# ---------------------------------------------------------------------------

def test_batchnorm_without_mode(dev):
    with pytest.raises(KeyError, match=r"batchnorm_forward: bn_param has no 'mode'; "
                                       r"set bn_param\['mode'\] = 'train' or 'test'"):
        layers.batchnorm_forward(*_norm_args(dev), {})


@pytest.mark.parametrize("mode", ["Train", "eval", None])
def test_batchnorm_bad_mode(mode, dev):
    with pytest.raises(ValueError, match=r"bn_param\['mode'\] must be 'train' or 'test', "
                                         rf"got {re.escape(repr(mode))}"):
        layers.batchnorm_forward(*_norm_args(dev), {"mode": mode})


def test_batchnorm_bn_param_not_a_dict(dev):
    with pytest.raises(TypeError, match=r"bn_param must be a dict, got str"):
        layers.batchnorm_forward(*_norm_args(dev), "train")


@pytest.mark.parametrize("backward", [layers.batchnorm_backward, layers.batchnorm_backward_alt])
def test_batchnorm_backward_on_test_mode_cache(backward, dev):
    _, cache = layers.batchnorm_forward(*_norm_args(dev), {"mode": "test"})
    with pytest.raises(ValueError, match=rf"{backward.__name__}: the cache is None.*'test' mode"
                                         r".*bn_param\['mode'\] = 'train'"):
        backward(dev(np.ones((3, 2)), F64), cache)


def test_batchnorm_gamma_mismatch(dev):
    x, _, beta = _norm_args(dev)
    with pytest.raises(ValueError, match=r"gamma must have shape \(2,\).*got \(3,\)"):
        layers.batchnorm_forward(x, dev(np.ones(3), F64), beta, {"mode": "train"})


# ---------------------------------------------------------------------------
# mixed backends
# ---------------------------------------------------------------------------

needs_strict = pytest.mark.skipif(importlib.util.find_spec("array_api_strict") is None,
                                  reason="array_api_strict is not installed")


@needs_strict
def test_numpy_and_strict_arrays_in_one_call():
    strict = xpnet.get_backend("array_api_strict")
    x = np.zeros((2, 3))
    w = strict.asarray(np.ones((3, 4)))
    b = strict.asarray(np.zeros(4))
    with pytest.raises(xpnet.BackendMismatchError,
                       match=r"affine_forward got arrays from different backends "
                             r"\(array_api_strict, numpy\)"):
        layers.affine_forward(x, w, b)


def _foreign(backend, a):
    """``a`` on a backend other than the one under test (NumPy, else array_api_strict)."""
    if backend.name != "numpy":
        return "numpy", np.asarray(a)
    if importlib.util.find_spec("array_api_strict") is None:
        pytest.skip("array_api_strict is not installed")
    return "array_api_strict", xpnet.get_backend("array_api_strict").asarray(a)


def test_foreign_array_in_affine(backend, dev):
    other, x = _foreign(backend, np.zeros((2, 3)))
    with pytest.raises(xpnet.BackendMismatchError) as info:
        layers.affine_forward(x, dev(np.ones((3, 4)), F64), dev(np.zeros(4), F64))
    assert other in str(info.value) and backend.name in str(info.value)


@pytest.mark.parametrize("loss_fn", LOSSES)
def test_foreign_labels_in_loss(loss_fn, backend, dev):
    other, y = _foreign(backend, np.array([0, 1]))
    with pytest.raises(xpnet.BackendMismatchError) as info:
        loss_fn(dev(np.zeros((2, 3)), F64), y)
    assert other in str(info.value) and backend.name in str(info.value)
    assert loss_fn.__name__ in str(info.value)


def test_foreign_gradient_in_update_rule(backend, dev):
    other, dw = _foreign(backend, np.ones(3))
    with pytest.raises(xpnet.BackendMismatchError) as info:
        optim.sgd(dev(np.ones(3), F64), dw)
    assert other in str(info.value) and backend.name in str(info.value)


# ---------------------------------------------------------------------------
# update rules
# ---------------------------------------------------------------------------

def test_unknown_update_rule():
    with pytest.raises(ValueError, match=r"unknown update_rule 'adamw'; expected one of "
                                         r"sgd, sgd_momentum, rmsprop, adam, adagrad"):
        optim.get_update_rule("adamw")


@pytest.mark.parametrize("name", ["sgd", "sgd_momentum", "rmsprop", "adam", "adagrad"])
def test_update_rule_shape_mismatch(name, dev):
    with pytest.raises(ValueError, match=rf"{name}: dw has shape \(3, 2\) but w has \(2, 3\)"):
        optim.get_update_rule(name)(dev(np.ones((2, 3)), F64), dev(np.ones((3, 2)), F64), None)
