"""Numerical gradients by central differences, on any backend's arrays.

The per-element functions follow CS231n: they perturb ``x`` in place, evaluate
``f`` and restore ``x``. Use float64 inputs: with float32, rounding swamps the
difference quotient. :func:`directional_gradient_check` needs only two forward
passes for any number of parameters, which makes float64 checks cheap on a GPU.

This module is the one place of the central difference (``_central_difference``),
the relative error of two numbers (``_relative_error``) and the directional
check; :func:`xpnet.testing.check_layer_backward` builds on them.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping
from typing import Any

from .backend import backend_of, namespace_of, to_numpy
from .errors import InputError, MissingKeyError

__all__ = [
    "eval_numerical_gradient",
    "eval_numerical_gradient_array",
    "grad_check_sparse",
    "directional_gradient_check",
    "rel_error",
]

Array = Any


def _indices(shape: tuple[int, ...]):
    return itertools.product(*(range(int(s)) for s in shape))


def _central_difference(f: Callable, x: Array, ix: tuple, h: float,
                        read: Callable[[Any], Any] = float) -> tuple[Any, Any]:
    """``(read(f(x + h e_ix)), read(f(x - h e_ix)))``, with ``x`` restored afterwards.

    ``read`` takes each value at once (``float``, or a copy of an array), since
    ``f`` may return ``x`` itself or a view of it.
    """
    old = float(x[ix])
    try:
        x[ix] = old + h
        pos = read(f(x))
        x[ix] = old - h
        neg = read(f(x))
    finally:
        x[ix] = old
    return pos, neg


def _relative_error(a: float, b: float) -> float:
    """``|a - b| / max(|a| + |b|, 1e-12)``: the relative error of two numbers."""
    return abs(a - b) / max(abs(a) + abs(b), 1e-12)


def eval_numerical_gradient(
    f: Callable[[Array], Any], x: Array, verbose: bool = True, h: float = 1e-5
) -> Array:
    """Numerical gradient of a scalar function ``f`` at ``x``.

    Parameters
    ----------
    f : callable
        Takes ``x`` (or ignores it and reads ``x`` through a closure) and
        returns a scalar (a float or a 0-D array).
    x : array
        Perturbed in place, one element at a time, and restored.
    verbose : bool
        Print each index and its gradient, as CS231n does.
    h : float
        The step of the central difference.

    Returns
    -------
    array like ``x``, on the same backend.
    """
    xp = namespace_of(x, caller="eval_numerical_gradient")
    grad = xp.zeros_like(x)
    for ix in _indices(x.shape):
        pos, neg = _central_difference(f, x, ix, h)
        grad[ix] = (float(pos) - float(neg)) / (2 * h)
        if verbose:
            print(ix, float(grad[ix]))
    return grad


def eval_numerical_gradient_array(
    f: Callable[[Array], Array], x: Array, df: Array, h: float = 1e-5
) -> Array:
    """Numerical gradient of ``sum(f(x) * df)``: backpropagates ``df`` through ``f``."""
    xp = namespace_of(x, df, caller="eval_numerical_gradient_array")
    grad = xp.zeros_like(x)
    for ix in _indices(x.shape):
        pos, neg = _central_difference(f, x, ix, h, read=lambda v: xp.asarray(v, copy=True))
        grad[ix] = float(xp.sum((pos - neg) * df)) / (2 * h)
    return grad


def grad_check_sparse(
    f: Callable[[Array], Any], x: Array, analytic_grad: Array, num_checks: int = 10,
    h: float = 1e-5, seed: int | None = None, verbose: bool = True,
) -> float:
    """Compare ``num_checks`` random entries of ``analytic_grad`` with numerical ones.

    Returns the largest relative error (CS231n printed them only).
    """
    namespace_of(x, analytic_grad, caller="grad_check_sparse")
    picker = random.Random(seed)
    worst = 0.0
    for _ in range(num_checks):
        ix = tuple(picker.randrange(int(s)) for s in x.shape)
        pos, neg = _central_difference(f, x, ix, h)
        numerical = (float(pos) - float(neg)) / (2 * h)
        analytic = float(analytic_grad[ix])
        error = _relative_error(numerical, analytic)
        worst = max(worst, error)
        if verbose:
            print(f"numerical: {numerical:f} analytic: {analytic:f}, relative error: {error:e}")
    return worst


def directional_gradient_check(
    f: Callable[[], Any], params: Mapping[str, Array] | Array,
    grads: Mapping[str, Array] | Array, h: float = 1e-6, seed: int = 0,
) -> tuple[float, float, float]:
    """Check gradients along one random unit direction with two evaluations of ``f``.

    With ``u`` a random unit vector over all parameters together, compares the
    central difference ``(f(p + h u) - f(p - h u)) / 2h`` with ``<grad, u>``.
    A wrong gradient in any parameter shows up with probability one.

    Parameters
    ----------
    f : callable
        Takes no arguments and returns the scalar loss, reading the parameters
        (which are perturbed in place and restored).
    params, grads : dict of arrays (or one array each)
        The parameters and their analytic gradients, keyed alike.
    h : float
        Step along ``u``.
    seed : int
        Seed of the direction, drawn from the parameters' backend.

    Returns
    -------
    numerical, analytic, relative_error : float
    """
    if not isinstance(params, Mapping):
        params, grads = {"x": params}, {"x": grads}
    missing = sorted(set(params) - set(grads))
    if missing:
        raise MissingKeyError(f"directional_gradient_check: no gradient for {', '.join(missing)}")
    names = sorted(params)
    backend = backend_of(params[names[0]])
    directions = {}
    for i, name in enumerate(names):
        p = params[name]
        directions[name] = backend.random_normal(p.shape, dtype=p.dtype, seed=seed + i)
    xp = namespace_of(*params.values(), caller="directional_gradient_check")
    norm = sum(float(xp.sum(u * u)) for u in directions.values()) ** 0.5
    analytic = sum(float(xp.sum(grads[n] * directions[n])) for n in names) / norm
    originals = {n: xp.asarray(params[n], copy=True) for n in names}
    try:
        for n in names:
            params[n][...] = originals[n] + (h / norm) * directions[n]
        pos = float(f())
        for n in names:
            params[n][...] = originals[n] - (h / norm) * directions[n]
        neg = float(f())
    finally:
        for n in names:
            params[n][...] = originals[n]
    numerical = (pos - neg) / (2 * h)
    return numerical, analytic, _relative_error(numerical, analytic)


def rel_error(x: Any, y: Any) -> float:
    """Largest relative error ``|x - y| / max(1e-8, |x| + |y|)``, arrays of any backend."""
    a = to_numpy(x)
    b = to_numpy(y)
    xp = namespace_of(a, b)
    a = xp.astype(xp.asarray(a), xp.float64)
    b = xp.astype(xp.asarray(b), xp.float64)
    if a.shape != b.shape and a.size != 1 and b.size != 1:
        raise InputError(f"rel_error: shapes {a.shape} and {b.shape} differ")
    return float(xp.max(xp.abs(a - b) / xp.maximum(1e-8, xp.abs(a) + xp.abs(b))))
