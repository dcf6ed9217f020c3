"""Layers, losses and sandwich layers against hand-computed values, plain-NumPy
float64 references and central-difference gradients (computed on the host).

Every result is checked with the ``check`` fixture, which also asserts that it
is an array of the backend under test.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import layer_utils, layers

# every test here runs with the registered fast paths and with the references only
pytestmark = pytest.mark.usefixtures("fast_paths")

F64 = "float64"


# ---------------------------------------------------------------------------
# Independent helpers (plain NumPy on the host)
# ---------------------------------------------------------------------------

def num_grad(forward, x, df, h=1e-5):
    """Central differences of ``sum(forward() * df)`` w.r.t. the host array ``x``.

    ``forward`` takes no arguments and reads ``x`` through a closure; ``x`` is
    perturbed in place and restored.
    """
    grad = np.zeros_like(x)
    for ix in np.ndindex(x.shape):
        old = x[ix]
        x[ix] = old + h
        pos = np.array(forward(), dtype=np.float64)
        x[ix] = old - h
        neg = np.array(forward(), dtype=np.float64)
        x[ix] = old
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
    return grad


def check_grads(check, forward, inputs, analytic, df):
    """Each analytic gradient (keyed like ``inputs``) against :func:`num_grad`."""
    for name, grad in analytic.items():
        check(grad, num_grad(forward, inputs[name], df), rtol=1e-7, atol=1e-9)


def np_norm(a, axis, eps=1e-5):
    mean = a.mean(axis=axis, keepdims=True)
    var = ((a - mean) ** 2).mean(axis=axis, keepdims=True)  # no Bessel correction
    return (a - mean) / np.sqrt(var + eps)


def host(a):
    return np.asarray(xpnet.to_numpy(a), dtype=np.float64)


# ---------------------------------------------------------------------------
# Affine
# ---------------------------------------------------------------------------

def test_affine_forward_hand_computed(dev, check):
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    w = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = np.array([0.5, -1.0])
    out, _ = layers.affine_forward(dev(x, F64), dev(w, F64), dev(b, F64))
    # row 0: [1 + 3 + 0.5, 2 + 3 - 1] ; row 1: [4 + 6 + 0.5, 5 + 6 - 1]
    check(out, [[4.5, 4.0], [10.5, 10.0]])


def test_affine_backward_hand_computed(dev, check):
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    w = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = np.array([0.5, -1.0])
    _, cache = layers.affine_forward(dev(x, F64), dev(w, F64), dev(b, F64))
    dx, dw, db = layers.affine_backward(dev(np.eye(2), F64), cache)
    check(dx, [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])  # dout @ w.T = rows of w.T
    check(dw, [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]])  # x.T @ I
    check(db, [1.0, 1.0])  # column sums of I


def test_affine_forward_cs231n_notebook(dev, check):
    x = np.linspace(-0.1, 0.5, num=2 * 120).reshape(2, 4, 5, 6)
    w = np.linspace(-0.2, 0.3, num=120 * 3).reshape(120, 3)
    b = np.linspace(-0.3, 0.1, num=3)
    out, _ = layers.affine_forward(dev(x, F64), dev(w, F64), dev(b, F64))
    check(out, [[1.49834967, 1.70660132, 1.91485297],
                [3.25553199, 3.5141327, 3.77273342]], rtol=0, atol=1e-8)


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-5), ("float64", 1e-12)])
def test_affine_forward_multidim_matches_numpy(dtype, rtol, dev, check):
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(3, 2, 2, 2)), rng.normal(size=(8, 5)), rng.normal(size=5)
    out, _ = layers.affine_forward(dev(x, dtype), dev(w, dtype), dev(b, dtype))
    assert tuple(out.shape) == (3, 5)
    check(out, x.reshape(3, 8) @ w + b, rtol=rtol, atol=rtol)


def test_affine_backward_matches_numerical(dev, check):
    rng = np.random.default_rng(1)
    inp = {"x": rng.normal(size=(4, 2, 3)), "w": rng.normal(size=(6, 5)),
           "b": rng.normal(size=5)}
    dout = rng.normal(size=(4, 5))

    def forward():
        return xpnet.to_numpy(layers.affine_forward(*(dev(inp[k], F64) for k in "xwb"))[0])

    _, cache = layers.affine_forward(*(dev(inp[k], F64) for k in "xwb"))
    dx, dw, db = layers.affine_backward(dev(dout, F64), cache)
    assert tuple(dx.shape) == (4, 2, 3)
    check_grads(check, forward, inp, {"x": dx, "w": dw, "b": db}, dout)


# ---------------------------------------------------------------------------
# ReLU
# ---------------------------------------------------------------------------

def test_relu_forward_backward_hand_computed(dev, check):
    x = np.array([[-1.0, 2.0, -0.5], [3.0, -4.0, 0.5]])
    out, cache = layers.relu_forward(dev(x, F64))
    check(out, [[0.0, 2.0, 0.0], [3.0, 0.0, 0.5]])
    dout = np.array([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]])
    check(layers.relu_backward(dev(dout, F64), cache), [[0.0, 20.0, 0.0], [40.0, 0.0, 60.0]])


def test_relu_forward_cs231n_notebook(dev, check):
    x = np.linspace(-0.5, 0.5, num=12).reshape(3, 4)
    out, _ = layers.relu_forward(dev(x, F64))
    check(out, [[0.0, 0.0, 0.0, 0.0],
                [0.0, 0.0, 0.04545455, 0.13636364],
                [0.22727273, 0.31818182, 0.40909091, 0.5]], rtol=0, atol=1e-8)


def test_relu_backward_matches_numerical(dev, check):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 5))
    x[np.abs(x) < 0.1] += 0.2  # stay away from the kink
    dout = rng.normal(size=(4, 5))
    _, cache = layers.relu_forward(dev(x, F64))
    dx = layers.relu_backward(dev(dout, F64), cache)
    check(dx, num_grad(lambda: xpnet.to_numpy(layers.relu_forward(dev(x, F64))[0]), x, dout),
          rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------

def test_svm_loss_hand_computed(dev, check):
    x = np.array([[3.0, 1.0, 2.5], [0.0, 2.0, 1.5]])
    y = np.array([0, 2])
    loss, dx = layers.svm_loss(dev(x, F64), dev(y))
    # sample 0 (correct 3.0): max(0, 1-3+1)=0, max(0, 2.5-3+1)=0.5  -> 0.5
    # sample 1 (correct 1.5): max(0, 0-1.5+1)=0, max(0, 2-1.5+1)=1.5 -> 1.5
    check(loss, (0.5 + 1.5) / 2)
    # one positive margin per row: +1 on it, -1 on the correct class, / N = 2
    check(dx, [[-0.5, 0.0, 0.5], [0.0, 0.5, -0.5]])


def test_softmax_loss_hand_computed(dev, check):
    x = np.array([[0.0, 0.0, 0.0], [0.0, np.log(2.0), 0.0]])
    y = np.array([1, 0])
    loss, dx = layers.softmax_loss(dev(x, F64), dev(y))
    # probs: row 0 = [1/3, 1/3, 1/3]; row 1 = [1, 2, 1] / 4 = [1/4, 1/2, 1/4]
    # loss = (-log(1/3) - log(1/4)) / 2 = log(12) / 2
    check(loss, np.log(12.0) / 2, rtol=1e-12)
    # dx = (probs - onehot) / N
    check(dx, [[1 / 6, -1 / 3, 1 / 6], [-3 / 8, 1 / 4, 1 / 8]], rtol=1e-12)


def test_softmax_loss_is_numerically_stable(dev, check):
    # shifting all scores by 1000 must not overflow: same result as above
    x = np.array([[1000.0, 1000.0, 1000.0], [-1000.0, -1000.0 + np.log(2.0), -1000.0]])
    loss, dx = layers.softmax_loss(dev(x, F64), dev(np.array([1, 0])))
    check(loss, np.log(12.0) / 2, rtol=1e-9)
    check(dx, [[1 / 6, -1 / 3, 1 / 6], [-3 / 8, 1 / 4, 1 / 8]], rtol=1e-9)


@pytest.mark.parametrize("loss_fn, expected",
                         [(layers.svm_loss, 9.0), (layers.softmax_loss, np.log(10))])
def test_loss_of_tiny_scores(loss_fn, expected, dev, check):
    # CS231n sanity check: scores ~ 0 give ~9 (C - 1 margins of 1) and ~log(C)
    rng = np.random.default_rng(4)
    x = 1e-3 * rng.normal(size=(6, 10))
    y = rng.integers(0, 10, size=6)
    loss, _ = loss_fn(dev(x, F64), dev(y))
    check(loss, expected, rtol=2e-3)


def _np_svm(x, y):
    n = x.shape[0]
    margins = np.maximum(0.0, x - x[np.arange(n), y][:, None] + 1.0)
    margins[np.arange(n), y] = 0.0
    return margins.sum() / n


def _np_softmax(x, y):
    n = x.shape[0]
    z = x - x.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(n), y].sum() / n


@pytest.mark.parametrize("loss_fn, reference", [(layers.svm_loss, _np_svm),
                                                (layers.softmax_loss, _np_softmax)])
def test_loss_matches_numpy_and_numerical_gradient(loss_fn, reference, dev, check):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 5))
    y = np.array([0, 1, 2, 3, 4, 2])
    n = x.shape[0]
    # keep every margin x_j - x_y + 1 at least 0.05 away from the hinge at 0
    m = x - x[np.arange(n), y][:, None] + 1.0
    x[np.abs(m) < 0.05] += 0.1
    m = x - x[np.arange(n), y][:, None] + 1.0
    m[np.arange(n), y] = 1.0
    assert np.abs(m).min() > 0.05
    loss, dx = loss_fn(dev(x, F64), dev(y))
    check(loss, reference(x, y), rtol=1e-12)
    check(dx, num_grad(lambda: reference(x, y), x, 1.0), rtol=1e-7, atol=1e-9)


def test_losses_accept_float32(dev, check):
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(4, 3)), np.array([2, 0, 1, 1])
    check(layers.svm_loss(dev(x, "float32"), dev(y))[0], _np_svm(x, y), rtol=1e-5)
    check(layers.softmax_loss(dev(x, "float32"), dev(y))[0], _np_softmax(x, y), rtol=1e-5)


# ---------------------------------------------------------------------------
# Batch normalization
# ---------------------------------------------------------------------------

def test_batchnorm_train_hand_computed(dev, check):
    x = np.array([[1.0, 2.0], [3.0, 6.0]])
    gamma, beta = np.array([2.0, 0.5]), np.array([0.1, -1.0])
    bn_param = {"mode": "train", "eps": 0.0}
    out, _ = layers.batchnorm_forward(dev(x, F64), dev(gamma, F64), dev(beta, F64), bn_param)
    # mean = [2, 4]; var (no Bessel) = [((-1)^2 + 1^2)/2, ((-2)^2 + 2^2)/2] = [1, 4]
    # x_hat = [[-1, -1], [1, 1]]; out = gamma * x_hat + beta
    check(out, [[-1.9, -1.5], [2.1, -0.5]], rtol=1e-12)


def test_batchnorm_default_eps(dev, check):
    x = np.array([[0.99, 5.0], [1.01, 7.0]])
    ones, zeros = np.ones(2), np.zeros(2)
    out, _ = layers.batchnorm_forward(dev(x, F64), dev(ones, F64), dev(zeros, F64),
                                 {"mode": "train"})
    # var = [1e-4, 1]; x_hat = +-0.01 / sqrt(1e-4 + 1e-5), +-1 / sqrt(1 + 1e-5)
    a, b = 0.01 / np.sqrt(1.1e-4), 1.0 / np.sqrt(1.0 + 1e-5)
    check(out, [[-a, -b], [a, b]], rtol=1e-10)


def test_batchnorm_running_stats_momentum_no_bessel(dev, check):
    x1 = np.array([[1.0, 2.0], [3.0, 6.0]])  # mean [2, 4], var [1, 4]
    x2 = np.array([[0.0, 1.0], [4.0, 1.0]])  # mean [2, 1], var [4, 0]
    gamma, beta = dev(np.ones(2), F64), dev(np.zeros(2), F64)
    bn_param = {"mode": "train"}
    layers.batchnorm_forward(dev(x1, F64), gamma, beta, bn_param)
    # from zeros with the default momentum 0.9: 0.9 * 0 + 0.1 * stat
    check(bn_param["running_mean"], [0.2, 0.4], rtol=1e-12)
    check(bn_param["running_var"], [0.1, 0.4], rtol=1e-12)  # with Bessel: [0.2, 0.8]
    bn_param["momentum"] = 0.75
    layers.batchnorm_forward(dev(x2, F64), gamma, beta, bn_param)
    # 0.75 * [0.2, 0.4] + 0.25 * [2, 1] ; 0.75 * [0.1, 0.4] + 0.25 * [4, 0]
    check(bn_param["running_mean"], [0.65, 0.55], rtol=1e-12)
    check(bn_param["running_var"], [1.075, 0.3], rtol=1e-12)


def test_batchnorm_test_mode_uses_running_stats(dev, check):
    x = np.array([[1.0, 2.0], [3.0, 6.0]])
    bn_param = {"mode": "test", "eps": 0.0,
                "running_mean": dev(np.array([1.0, -2.0]), F64),
                "running_var": dev(np.array([4.0, 16.0]), F64)}
    gamma, beta = np.array([2.0, 0.5]), np.array([0.1, -1.0])
    out, _ = layers.batchnorm_forward(dev(x, F64), dev(gamma, F64), dev(beta, F64), bn_param)
    # (x - [1, -2]) / [2, 4] = [[0, 1], [1, 2]] ; * gamma + beta
    check(out, [[0.1, -0.5], [2.1, 0.0]], rtol=1e-12)
    # test mode leaves the running statistics alone
    check(bn_param["running_mean"], [1.0, -2.0])
    check(bn_param["running_var"], [4.0, 16.0])


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-4), ("float64", 1e-10)])
def test_batchnorm_train_matches_numpy(dtype, rtol, dev, check):
    rng = np.random.default_rng(7)
    x = rng.normal(5.0, 3.0, size=(6, 4))
    gamma, beta = rng.normal(size=4), rng.normal(size=4)
    out, _ = layers.batchnorm_forward(dev(x, dtype), dev(gamma, dtype), dev(beta, dtype),
                                 {"mode": "train"})
    check(out, gamma * np_norm(x, axis=0) + beta, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("backward", [layers.batchnorm_backward, layers.batchnorm_backward_alt])
def test_batchnorm_backward_matches_numerical(backward, dev, check):
    rng = np.random.default_rng(8)
    inp = {"x": rng.normal(2.0, 3.0, size=(5, 4)), "gamma": rng.normal(size=4),
           "beta": rng.normal(size=4)}
    dout = rng.normal(size=(5, 4))

    def forward():
        args = (dev(inp[k], F64) for k in ("x", "gamma", "beta"))
        return xpnet.to_numpy(layers.batchnorm_forward(*args, {"mode": "train"})[0])

    args = (dev(inp[k], F64) for k in ("x", "gamma", "beta"))
    _, cache = layers.batchnorm_forward(*args, {"mode": "train"})
    dx, dgamma, dbeta = backward(dev(dout, F64), cache)
    check_grads(check, forward, inp, {"x": dx, "gamma": dgamma, "beta": dbeta}, dout)


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-4), ("float64", 1e-10)])
def test_batchnorm_backward_forms_agree(dtype, rtol, dev, check):
    rng = np.random.default_rng(9)
    x = rng.normal(-1.0, 2.0, size=(6, 5))
    gamma, beta, dout = rng.normal(size=5), rng.normal(size=5), rng.normal(size=(6, 5))
    _, cache = layers.batchnorm_forward(dev(x, dtype), dev(gamma, dtype), dev(beta, dtype),
                                   {"mode": "train"})
    graph = layers.batchnorm_backward(dev(dout, dtype), cache)
    closed = layers.batchnorm_backward_alt(dev(dout, dtype), cache)
    for a, b in zip(graph, closed, strict=True):
        check(a, host(b), rtol=rtol, atol=rtol)


# ---------------------------------------------------------------------------
# Layer normalization
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("ln_param", [{}, {"mode": "train"}, {"mode": "test"}])
def test_layernorm_hand_computed_same_in_train_and_test(ln_param, dev, check):
    x = np.array([[1.0, 2.0, 3.0], [4.0, 4.0, 10.0]])
    gamma, beta = np.array([1.0, 2.0, -1.0]), np.array([0.0, 1.0, 0.5])
    out, _ = layers.layernorm_forward(dev(x, F64), dev(gamma, F64), dev(beta, F64),
                                 dict(ln_param, eps=0.0))
    # row 0: mean 2, var (1 + 0 + 1)/3 = 2/3 -> x_hat = [-1, 0, 1] / sqrt(2/3)
    # row 1: mean 6, var (4 + 4 + 16)/3 = 8 -> x_hat = [-2, -2, 4] / sqrt(8)
    s0, s1 = np.sqrt(2.0 / 3.0), np.sqrt(8.0)
    expected = [[-1.0 / s0, 1.0, -1.0 / s0 + 0.5],
                [-2.0 / s1, -4.0 / s1 + 1.0, -4.0 / s1 + 0.5]]
    check(out, expected, rtol=1e-12)


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-4), ("float64", 1e-10)])
def test_layernorm_matches_numpy(dtype, rtol, dev, check):
    rng = np.random.default_rng(10)
    x = rng.normal(3.0, 2.0, size=(4, 6))
    gamma, beta = rng.normal(size=6), rng.normal(size=6)
    out, _ = layers.layernorm_forward(dev(x, dtype), dev(gamma, dtype), dev(beta, dtype), {})
    check(out, gamma * np_norm(x, axis=1) + beta, rtol=rtol, atol=rtol)


def test_layernorm_backward_matches_numerical(dev, check):
    rng = np.random.default_rng(11)
    inp = {"x": rng.normal(1.0, 2.0, size=(4, 5)), "gamma": rng.normal(size=5),
           "beta": rng.normal(size=5)}
    dout = rng.normal(size=(4, 5))

    def forward():
        args = (dev(inp[k], F64) for k in ("x", "gamma", "beta"))
        return xpnet.to_numpy(layers.layernorm_forward(*args, {})[0])

    _, cache = layers.layernorm_forward(*(dev(inp[k], F64) for k in ("x", "gamma", "beta")), {})
    dx, dgamma, dbeta = layers.layernorm_backward(dev(dout, F64), cache)
    check_grads(check, forward, inp, {"x": dx, "gamma": dgamma, "beta": dbeta}, dout)


# ---------------------------------------------------------------------------
# Dropout (p is the probability of KEEPING a unit)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.3, 1.0])
def test_dropout_test_mode_is_identity(p, dev, check):
    x = np.arange(1.0, 13.0).reshape(3, 4)
    out, cache = layers.dropout_forward(dev(x, F64), {"mode": "test", "p": p, "seed": 0})
    check(out, x)
    dout = np.arange(12.0).reshape(3, 4) - 5.0
    check(layers.dropout_backward(dev(dout, F64), cache), dout)


def test_dropout_keep_all_at_train_time_is_identity(dev, check):
    x = np.arange(1.0, 13.0).reshape(3, 4)
    out, _ = layers.dropout_forward(dev(x, F64), {"mode": "train", "p": 1.0})
    check(out, x)


@pytest.mark.parametrize("p", [0.25, 0.5, 0.8])
def test_dropout_train_scales_kept_units_by_1_over_p(p, dev, check):
    x = np.arange(1.0, 41.0).reshape(5, 8)  # no zeros, so a zero output means dropped
    out, _ = layers.dropout_forward(dev(x, F64), {"mode": "train", "p": p, "seed": 3})
    kept = host(out) != 0
    assert 0 < kept.sum() < x.size  # 40 units: all kept or all dropped is ~impossible
    check(out, np.where(kept, x / p, 0.0), rtol=1e-12)


def test_dropout_same_seed_same_mask(dev, check):
    x = np.arange(1.0, 41.0).reshape(5, 8)
    first, _ = layers.dropout_forward(dev(x, F64), {"mode": "train", "p": 0.5, "seed": 42})
    second, _ = layers.dropout_forward(dev(x, F64), {"mode": "train", "p": 0.5, "seed": 42})
    other, _ = layers.dropout_forward(dev(x, F64), {"mode": "train", "p": 0.5, "seed": 43})
    check(second, host(first))
    assert (host(first) != host(other)).any()


def test_dropout_without_seed_draws_new_masks(dev):
    x = dev(np.ones((20, 50)), F64)
    first, _ = layers.dropout_forward(x, {"mode": "train", "p": 0.5})
    second, _ = layers.dropout_forward(x, {"mode": "train", "p": 0.5})
    assert (host(first) != host(second)).any()


@pytest.mark.parametrize("p", [0.25, 0.4, 0.7])
def test_dropout_statistics(p, dev):
    # CS231n check: mean of the output ~ mean of the input; fraction kept ~ p
    rng = np.random.default_rng(12)
    x = rng.normal(size=(200, 250)) + 10.0
    out, _ = layers.dropout_forward(dev(x, "float32"), {"mode": "train", "p": p, "seed": 5})
    kept = host(out) != 0
    assert abs(kept.mean() - p) < 0.01
    assert abs(host(out).mean() - x.mean()) < 0.05 * x.mean()


def test_dropout_backward_matches_mask_and_numerical(dev, check):
    rng = np.random.default_rng(13)
    x = rng.normal(size=(4, 6)) + 3.0  # no zeros in x
    dout = rng.normal(size=(4, 6))
    param = {"mode": "train", "p": 0.6, "seed": 7}
    out, cache = layers.dropout_forward(dev(x, F64), param)
    dx = layers.dropout_backward(dev(dout, F64), cache)
    kept = host(out) != 0
    check(dx, np.where(kept, dout / 0.6, 0.0), rtol=1e-12)
    forward = lambda: xpnet.to_numpy(layers.dropout_forward(dev(x, F64), param)[0])  # noqa: E731
    check(dx, num_grad(forward, x, dout), rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------------------
# Sandwich layers
# ---------------------------------------------------------------------------

def test_affine_relu_forward_backward(dev, check):
    rng = np.random.default_rng(14)
    inp = {"x": rng.normal(size=(4, 2, 3)), "w": rng.normal(size=(6, 5)),
           "b": rng.normal(size=5)}
    a = inp["x"].reshape(4, 6) @ inp["w"] + inp["b"]
    assert np.abs(a).min() > 1e-3  # away from the ReLU kink
    dout = rng.normal(size=(4, 5))

    def forward():
        args = (dev(inp[k], F64) for k in "xwb")
        return xpnet.to_numpy(layer_utils.affine_relu_forward(*args)[0])

    out, cache = layer_utils.affine_relu_forward(*(dev(inp[k], F64) for k in "xwb"))
    check(out, np.maximum(a, 0.0), rtol=1e-12, atol=1e-12)
    dx, dw, db = layer_utils.affine_relu_backward(dev(dout, F64), cache)
    check_grads(check, forward, inp, {"x": dx, "w": dw, "b": db}, dout)


@pytest.mark.parametrize("kind", ["bn", "ln"])
def test_affine_norm_relu_forward_backward(kind, dev, check):
    fwd, bwd, axis = {
        "bn": (layer_utils.affine_bn_relu_forward, layer_utils.affine_bn_relu_backward, 0),
        "ln": (layer_utils.affine_ln_relu_forward, layer_utils.affine_ln_relu_backward, 1),
    }[kind]
    rng = np.random.default_rng(15)
    keys = ("x", "w", "b", "gamma", "beta")
    inp = {"x": rng.normal(size=(4, 2, 3)), "w": rng.normal(size=(6, 5)),
           "b": rng.normal(size=5), "gamma": rng.normal(1.0, 0.3, size=5),
           "beta": rng.normal(size=5)}
    a = inp["x"].reshape(4, 6) @ inp["w"] + inp["b"]
    an = inp["gamma"] * np_norm(a, axis=axis) + inp["beta"]
    assert np.abs(an).min() > 1e-3  # away from the ReLU kink
    dout = rng.normal(size=(4, 5))

    def forward():
        return xpnet.to_numpy(fwd(*(dev(inp[k], F64) for k in keys), {"mode": "train"})[0])

    out, cache = fwd(*(dev(inp[k], F64) for k in keys), {"mode": "train"})
    check(out, np.maximum(an, 0.0), rtol=1e-10, atol=1e-12)
    grads = bwd(dev(dout, F64), cache)
    assert len(grads) == 5
    check_grads(check, forward, inp, dict(zip(keys, grads, strict=True)), dout)
