"""xpnet.gradient_check on functions whose gradients are known analytically.

Every check also asserts that the perturbed input is restored exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet.gradient_check import (
    directional_gradient_check,
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    grad_check_sparse,
    rel_error,
)

F64 = "float64"
X0 = np.linspace(-1.5, 1.2, num=6).reshape(2, 3)  # -1.5, -0.96, -0.42, 0.12, 0.66, 1.2
X0.flags.writeable = False  # the reference values; tests perturb copies (dev() may not copy)


def assert_restored(x, original):
    np.testing.assert_array_equal(xpnet.to_numpy(x), original)


# ---------------------------------------------------------------------------
# eval_numerical_gradient
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("as_float", [False, True])
def test_eval_numerical_gradient_of_cube(as_float, xp, dev, check):
    x = dev(X0.copy(), F64)

    def f(z):
        s = xp.sum(z**3)
        return float(s) if as_float else s

    grad = eval_numerical_gradient(f, x, verbose=False)
    check(grad, 3 * X0**2, rtol=1e-7, atol=1e-12)  # d/dx sum(x^3) = 3x^2
    assert_restored(x, X0)


def test_eval_numerical_gradient_uses_h(xp, dev, check):
    # ((x + h)^3 - (x - h)^3) / 2h = 3x^2 + h^2 exactly: h = 1e-3 shifts every entry by 1e-6
    x = dev(X0.copy(), F64)
    grad = eval_numerical_gradient(lambda z: xp.sum(z**3), x, verbose=False, h=1e-3)
    check(grad, 3 * X0**2 + 1e-6, rtol=1e-9, atol=1e-10)
    assert_restored(x, X0)


def test_eval_numerical_gradient_closure_over_x(xp, dev, check):
    # CS231n style: f ignores its argument and reads x (perturbed in place) itself
    x = dev(X0.copy(), F64)
    a = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])
    a_dev = dev(a, F64)
    grad = eval_numerical_gradient(lambda _: xp.sum(a_dev * x), x, verbose=False)
    check(grad, a, rtol=1e-8, atol=1e-10)  # linear: the gradient is a
    assert_restored(x, X0)


def test_eval_numerical_gradient_of_one_entry(dev, check):
    # f returns an entry of x (a 0-D view of x on some backends): the gradient is one-hot
    x = dev(X0.copy(), F64)
    grad = eval_numerical_gradient(lambda z: z[1, 2], x, verbose=False)
    check(grad, [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]], rtol=1e-8, atol=1e-10)
    assert_restored(x, X0)


@pytest.mark.parametrize("check", ["gradient", "array", "sparse"])
def test_x_is_restored_when_f_raises(check, dev):
    x = dev(X0.copy(), F64)

    def f(z):
        raise ValueError("f failed")

    with pytest.raises(ValueError, match="f failed"):
        if check == "gradient":
            eval_numerical_gradient(f, x, verbose=False)
        elif check == "array":
            eval_numerical_gradient_array(f, x, dev(np.ones((2, 3)), F64))
        else:
            grad_check_sparse(f, x, dev(np.ones((2, 3)), F64), verbose=False)
    assert_restored(x, X0)


@pytest.mark.parametrize("wrong", [False, True])
def test_grad_check_sparse_of_one_entry(wrong, dev):
    onehot = np.zeros((2, 3))
    onehot[0, 1] = 1.0
    analytic = 2 * onehot if wrong else onehot  # |1 - 2| / (1 + 2) = 1/3 where it matters
    worst = grad_check_sparse(lambda z: z[0, 1], dev(X0.copy(), F64), dev(analytic, F64),
                              num_checks=40, seed=0, verbose=False)
    assert abs(worst - (1 / 3 if wrong else 0.0)) < 1e-7


@pytest.mark.parametrize("verbose", [False, True])
def test_eval_numerical_gradient_verbose(verbose, xp, dev, capsys):
    eval_numerical_gradient(lambda z: xp.sum(z * z), dev(X0.copy(), F64), verbose=verbose)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == (X0.size if verbose else 0)


# ---------------------------------------------------------------------------
# eval_numerical_gradient_array
# ---------------------------------------------------------------------------

A = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]])
DF = np.array([[0.5, -1.0], [2.0, 1.5]])


def test_eval_numerical_gradient_array_matmul(dev, check):
    x = dev(X0.copy(), F64)
    a = dev(A, F64)
    grad = eval_numerical_gradient_array(lambda z: z @ a, x, dev(DF, F64))
    check(grad, DF @ A.T, rtol=1e-8, atol=1e-10)  # d sum((x @ A) * df) / dx = df @ A.T
    assert_restored(x, X0)


DF_X = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]])


@pytest.mark.parametrize("name, f, expected", [
    ("identity", lambda z: z, DF_X),  # f returns x itself, not a copy
    ("square", lambda z: z * z, 2 * X0 * DF_X),
    ("cube", lambda z: z**3, (3 * X0**2 + 1e-6) * DF_X),  # + h^2 with h = 1e-3
])
def test_eval_numerical_gradient_array_elementwise(name, f, expected, dev, check):
    x = dev(X0.copy(), F64)
    h = 1e-3 if name == "cube" else 1e-5
    grad = eval_numerical_gradient_array(f, x, dev(DF_X, F64), h=h)
    check(grad, expected, rtol=1e-8, atol=1e-10)
    assert_restored(x, X0)


# ---------------------------------------------------------------------------
# grad_check_sparse
# ---------------------------------------------------------------------------

def test_grad_check_sparse_right_gradient(xp, dev, capsys):
    x = dev(X0.copy(), F64)
    worst = grad_check_sparse(lambda z: xp.sum(z**3), x, dev(3 * X0**2, F64),
                              num_checks=7, seed=0)
    assert isinstance(worst, float)
    assert worst < 1e-7
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7 and all("relative error" in line for line in lines)
    assert_restored(x, X0)


def test_grad_check_sparse_wrong_gradient(xp, dev):
    x = dev(X0.copy(), F64)
    # analytic 6x^2 against the true 3x^2: |3 - 6| / (3 + 6) = 1/3 at every entry
    worst = grad_check_sparse(lambda z: xp.sum(z**3), x, dev(6 * X0**2, F64),
                              num_checks=5, seed=1, verbose=False)
    assert abs(worst - 1 / 3) < 1e-6
    assert_restored(x, X0)


def test_grad_check_sparse_finds_one_wrong_entry(xp, dev):
    wrong = 3 * X0**2
    wrong[1, 2] += 1.0
    worst = grad_check_sparse(lambda z: xp.sum(z**3), dev(X0.copy(), F64), dev(wrong, F64),
                              num_checks=60, seed=2, verbose=False)
    # true 3 * 1.2^2 = 4.32 against 5.32: 1 / 9.64
    assert abs(worst - 1 / 9.64) < 1e-6


def test_grad_check_sparse_is_reproducible(xp, dev, capsys):
    x = dev(X0.copy(), F64)
    bad = dev(3 * X0**2 + np.arange(6.0).reshape(2, 3), F64)  # a different error per entry
    f = lambda z: xp.sum(z**3)  # noqa: E731
    first = grad_check_sparse(f, x, bad, num_checks=3, seed=5)
    out_first = capsys.readouterr().out
    second = grad_check_sparse(f, x, bad, num_checks=3, seed=5)
    assert first == second
    assert capsys.readouterr().out == out_first


# ---------------------------------------------------------------------------
# directional_gradient_check
# ---------------------------------------------------------------------------

B0 = np.array([0.5, -1.0, 2.0])
B0.flags.writeable = False


def _two_params(xp, dev):
    """f(a, b) = sum(a^3) + sum(a @ b); da = 3a^2 + b (per row), db = column sums of a."""
    params = {"a": dev(X0.copy(), F64), "b": dev(B0.copy(), F64)}

    def f():
        return xp.sum(params["a"] ** 3) + xp.sum(params["a"] @ params["b"])

    grads = {"a": 3 * X0**2 + B0[None, :], "b": X0.sum(axis=0)}
    return params, f, grads


def test_directional_gradient_check_right_gradient(xp, dev):
    params, f, grads = _two_params(xp, dev)
    numerical, analytic, error = directional_gradient_check(
        f, params, {k: dev(v, F64) for k, v in grads.items()}, seed=3)
    assert error < 1e-7
    assert abs(numerical - analytic) < 1e-7 * abs(analytic)
    assert abs(analytic) > 1e-3  # not a degenerate direction
    assert_restored(params["a"], X0)
    assert_restored(params["b"], B0)


@pytest.mark.parametrize("wrong", ["a", "b"])
def test_directional_gradient_check_wrong_gradient(wrong, xp, dev):
    params, f, grads = _two_params(xp, dev)
    grads[wrong] = grads[wrong] + 1.0  # a wrong gradient in either parameter shows up
    _, _, error = directional_gradient_check(
        f, params, {k: dev(v, F64) for k, v in grads.items()}, seed=3)
    assert error > 1e-3
    assert_restored(params["a"], X0)
    assert_restored(params["b"], B0)


def test_directional_gradient_check_linear_is_exact(xp, dev):
    # f(x) = sum(c * x): the directional derivative is <c, u> whatever u is
    c = np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.5]])
    x, c_dev = dev(X0.copy(), F64), dev(c, F64)
    numerical, analytic, error = directional_gradient_check(
        lambda: xp.sum(c_dev * x), x, c_dev, seed=0)
    assert error < 1e-8
    assert abs(numerical - analytic) < 1e-8
    assert_restored(x, X0)


def test_directional_gradient_check_single_array(xp, dev):
    x = dev(X0.copy(), F64)
    _, _, error = directional_gradient_check(lambda: xp.sum(x**3), x, dev(3 * X0**2, F64))
    assert error < 1e-7
    _, _, error = directional_gradient_check(lambda: xp.sum(x**3), x, dev(2 * X0**2, F64))
    assert error > 1e-3
    assert_restored(x, X0)


def test_directional_gradient_check_restores_after_error(xp, dev):
    x = dev(X0.copy(), F64)

    def f():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        directional_gradient_check(f, {"x": x}, {"x": dev(X0.copy(), F64)})
    assert_restored(x, X0)


def test_directional_gradient_check_missing_gradient(xp, dev):
    params, f, grads = _two_params(xp, dev)
    with pytest.raises(KeyError, match="no gradient for b"):
        directional_gradient_check(f, params, {"a": dev(grads["a"], F64)})


# ---------------------------------------------------------------------------
# rel_error
# ---------------------------------------------------------------------------

def test_rel_error_hand_computed(dev):
    assert rel_error(dev([1.0, 2.0, 4.0], F64), dev([1.0, 2.0, 4.0], F64)) == 0.0
    # max(|1-1| / 2, |3-1| / (3+1)) = 0.5
    assert rel_error(dev([1.0, 3.0], F64), dev([1.0, 1.0], F64)) == pytest.approx(0.5)
    # the denominator is floored at 1e-8: 1e-9 / 1e-8
    assert rel_error(0.0, 1e-9) == pytest.approx(0.1)
    assert rel_error(1.0, 3.0) == pytest.approx(0.5)


def test_rel_error_mixes_backend_and_host(dev):
    got = rel_error(dev([[2.0, -1.0]], "float32"), np.array([[2.0, -3.0]]))
    assert isinstance(got, float)
    assert got == pytest.approx(0.5)  # |-1 - -3| / (1 + 3)


def test_rel_error_shape_mismatch(dev):
    with pytest.raises(ValueError, match=r"shapes \(2,\) and \(3,\) differ"):
        rel_error(dev([1.0, 2.0], F64), dev([1.0, 2.0, 3.0], F64))
