"""Testing helpers that xpnet's suite and its users share.

:func:`assert_close`
    Compares arrays of any backend after checking that they come from the
    same namespace and have the same dtype and shape, with a tolerance that
    depends on the dtype (SciPy's ``xp_assert_close`` works this way).
:func:`check_layer_backward`
    Checks a layer written in the ``(out, cache)`` style: its backward pass
    against float64 central differences, element by element and along one
    random direction (with :mod:`xpnet.gradient_check`'s functions), printing
    the worst entries when it fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import backend_of, dtype_name, library_of, namespace_of, to_numpy
from .errors import InputTypeError
from .gradient_check import directional_gradient_check, eval_numerical_gradient_array

__all__ = ["BackwardCheck", "assert_close", "check_layer_backward", "default_rtol"]

Array = Any


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def default_rtol(dtype: Any) -> float:
    """``4 * sqrt(eps)`` of a floating dtype (about 1.4e-3 for float32, 6e-8 for
    float64); 0 for integers and booleans."""
    name = dtype_name(dtype)
    if not name.startswith(("float", "complex")):
        return 0.0
    return 4 * math.sqrt(float(np.finfo(np.dtype(name)).eps))


def assert_close(actual: Any, desired: Any, *, rtol: float | None = None, atol: float = 0.0,
                 check_namespace: bool = True, check_dtype: bool = True,
                 check_shape: bool = True, err_msg: str = "") -> None:
    """Assert that two arrays are equal to a tolerance, after checking what they are.

    Parameters
    ----------
    actual, desired : arrays (of any backend) or Python scalars / sequences
        A non-array ``desired`` is taken as given in ``actual``'s namespace and
        dtype.
    rtol : float, optional
        Default :func:`default_rtol` of the dtype (0, i.e. exact, for integers).
    atol : float
    check_namespace, check_dtype, check_shape : bool
        Compare these before the values (each on by default).
    err_msg : str
        Prefixed to the failure message.

    Raises
    ------
    AssertionError
        Naming the first thing that differs: namespace, dtype, shape or the
        values (NumPy's report of the mismatching entries).
    """
    prefix = f"{err_msg}: " if err_msg else ""
    if not _is_array(actual):
        raise AssertionError(f"{prefix}actual is a {type(actual).__name__}, not an array")
    if _is_array(desired):
        if check_namespace and library_of(actual) != library_of(desired):
            raise AssertionError(f"{prefix}namespaces differ: actual is a {library_of(actual)} "
                                 f"array, desired a {library_of(desired)} array")
        if check_dtype and dtype_name(actual.dtype) != dtype_name(desired.dtype):
            raise AssertionError(f"{prefix}dtypes differ: actual {dtype_name(actual.dtype)}, "
                                 f"desired {dtype_name(desired.dtype)}")
        desired_host = to_numpy(desired)
    else:
        desired_host = np.asarray(desired, dtype=np.dtype(dtype_name(actual.dtype)))
    actual_host = to_numpy(actual)
    if check_shape and tuple(actual_host.shape) != tuple(desired_host.shape):
        raise AssertionError(f"{prefix}shapes differ: actual {tuple(actual_host.shape)}, "
                             f"desired {tuple(desired_host.shape)}")
    tol = default_rtol(actual.dtype) if rtol is None else rtol
    np.testing.assert_allclose(actual_host, desired_host, rtol=tol, atol=atol,
                               equal_nan=True, err_msg=err_msg)


@dataclass(frozen=True)
class BackwardCheck:
    """What :func:`check_layer_backward` measured.

    Attributes
    ----------
    errors : dict
        Largest relative error per checked input (by its name).
    directional : float
        Relative error of the directional derivative over all inputs together.
    rtol : float
        The tolerance it was held to.
    failures : list of str
        The worst entries of every gradient that failed (empty when it passed).
    """

    errors: dict[str, float]
    directional: float
    rtol: float = 1e-6
    failures: tuple[str, ...] | list[str] = ()

    @property
    def worst(self) -> float:
        """The largest element-wise relative error (NaN when one was NaN)."""
        values = list(self.errors.values())
        return math.nan if any(v != v for v in values) else max(values, default=0.0)

    @property
    def worst_input(self) -> str:
        """The name of the input with the largest error."""
        return max(self.errors, key=lambda k: (self.errors[k] != self.errors[k],
                                               self.errors[k]))

    @property
    def passed(self) -> bool:
        return not self.failures


def _relative_errors(a: np.ndarray, n: np.ndarray, floor: float) -> np.ndarray:
    return np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), floor)


def _worst_entries(name: str, a: np.ndarray, n: np.ndarray, err: np.ndarray,
                   count: int = 5) -> str:
    order = np.argsort(-np.nan_to_num(err, nan=np.inf), axis=None)[:count]
    lines = [f"  {name}{list(np.unravel_index(i, err.shape))}: analytic {a.flat[i]:.8g}, "
             f"numerical {n.flat[i]:.8g}, relative error {err.flat[i]:.2e}" for i in order]
    return "\n".join(lines)


def check_layer_backward(
    forward: Callable[..., tuple[Array, Any]],
    backward: Callable[[Array, Any], Any],
    inputs: Sequence[Any],
    dout: Array | None = None,
    *,
    wrt: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
    h: float = 1e-5,
    rtol: float = 1e-6,
    seed: int = 0,
    raise_error: bool = True,
) -> BackwardCheck:
    """Check a ``(out, cache)`` layer's backward pass against float64 differences.

    The numerical gradients are :func:`xpnet.gradient_check.eval_numerical_gradient_array`
    of ``forward`` with ``dout``, and the directional check is
    :func:`xpnet.gradient_check.directional_gradient_check` over all ``wrt``
    inputs together: the course's functions, not a copy of them.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs) -> (out, cache)``.
    backward : callable
        ``backward(dout, cache)`` returning the gradient of each input in
        ``wrt`` (a tuple in that order, or one array when there is one).
    inputs : sequence
        The arguments of ``forward``: arrays of one backend, and anything else
        (parameter dicts, integers) passed through.
    dout : array, optional
        The upstream gradient; default a seeded N(0, 1) array like ``out``.
    wrt : sequence of int, optional
        Positions in ``inputs`` whose gradients ``backward`` returns; default
        every floating array.
    names : sequence of str, optional
        Names of the ``wrt`` inputs for messages (default ``x0, x1, ...``).
    h : float
        Step of the central differences.
    rtol : float
        Largest relative error allowed, ``|a - n| / max(|a| + |n|, floor)``
        with ``floor = 1e-4 * max |n|`` over all gradients (so gradients that
        vanish in exact arithmetic compare their rounding with the check's
        scale, not with themselves).
    seed : int
        Seeds ``dout`` and the random direction.
    raise_error : bool
        Raise on failure (default); with False, return the report either way.

    Returns
    -------
    BackwardCheck
        Its ``failures`` lists the worst entries of each failing gradient.

    Raises
    ------
    AssertionError
        With the worst entries of each failing gradient.
    InputTypeError
        When a checked input is not float64 (float32 differences are noise).
    """
    inputs = list(inputs)
    backend, wrt, names = _checked_inputs(inputs, wrt, names)
    out, cache = forward(*inputs)
    if dout is None:
        dout = backend.random_normal(tuple(out.shape), dtype="float64", seed=(seed, 1))
    grads = _gradients(backward(dout, cache), len(wrt))
    numerical = [to_numpy(eval_numerical_gradient_array(lambda _: forward(*inputs)[0],
                                                        inputs[i], dout, h))
                 for i in wrt]
    analytic = [to_numpy(g).astype(np.float64) for g in grads]
    errors, failures = _compare(names, analytic, numerical, rtol)
    directional = math.inf
    if all(a.shape == n.shape for a, n in zip(analytic, numerical, strict=True)):
        directional = _directional(forward, inputs, dout, wrt, names, grads, h, seed)
    if not directional <= rtol:
        failures.append(f"  directional derivative: relative error {directional:.2e}")
    if failures and raise_error:
        raise AssertionError("backward pass disagrees with float64 central differences "
                             f"(rtol {rtol:g}):\n" + "\n".join(failures))
    return BackwardCheck(errors, directional, rtol, failures)


def _checked_inputs(inputs: list[Any], wrt: Sequence[int] | None,
                    names: Sequence[str] | None) -> tuple[Any, list[int], list[str]]:
    """The inputs' backend, the checked positions and their names, after the checks."""
    arrays = [i for i, v in enumerate(inputs) if _is_array(v)]
    if not arrays:
        raise InputTypeError("check_layer_backward: inputs hold no array")
    xp = namespace_of(*(inputs[i] for i in arrays), caller="check_layer_backward")
    if wrt is None:
        wrt = [i for i in arrays if xp.isdtype(inputs[i].dtype, "real floating")]
    wrt = list(wrt)
    names = list(names) if names is not None else [f"x{i}" for i in wrt]
    for i, name in zip(wrt, names, strict=True):
        if dtype_name(inputs[i].dtype) != "float64":
            raise InputTypeError(f"check_layer_backward: {name} is {dtype_name(inputs[i].dtype)}; "
                                 "gradient checks need float64 inputs")
    return backend_of(inputs[arrays[0]]), wrt, names


def _gradients(grads: Any, count: int) -> list[Array]:
    """``backward``'s result as a list of ``count`` gradients."""
    if count == 1 and _is_array(grads):
        grads = (grads,)
    grads = list(grads)
    if len(grads) < count:
        raise AssertionError(f"backward returned {len(grads)} gradients for {count} inputs")
    return grads[:count]


def _compare(names: list[str], analytic: list[np.ndarray], numerical: list[np.ndarray],
             rtol: float) -> tuple[dict[str, float], list[str]]:
    """The largest relative error per input, and the worst entries of those that fail."""
    scale = max((float(np.max(np.abs(n), initial=0.0)) for n in numerical), default=0.0)
    floor = max(1e-4 * scale, 1e-12)
    errors: dict[str, float] = {}
    failures = []
    for name, a, n in zip(names, analytic, numerical, strict=True):
        if a.shape != n.shape:
            failures.append(f"  {name}: gradient has shape {a.shape}, the input {n.shape}")
            errors[name] = math.inf
            continue
        err = _relative_errors(a, n, floor)
        worst = float(np.max(err, initial=0.0)) if not np.isnan(err).any() else math.nan
        errors[name] = worst
        if not worst <= rtol:
            failures.append(_worst_entries(name, a, n, err))
    return errors, failures


def _directional(forward: Callable[..., Any], inputs: list[Any], dout: Array, wrt: list[int],
                 names: list[str], grads: list[Array], h: float, seed: int) -> float:
    """The relative error of ``<grad, u>`` along one random direction of all inputs."""
    xp = namespace_of(dout)

    def objective() -> float:
        return float(xp.sum(forward(*inputs)[0] * dout))

    params = {name: inputs[i] for name, i in zip(names, wrt, strict=True)}
    analytic = {name: xp.astype(g, xp.float64) for name, g in zip(names, grads, strict=True)}
    return directional_gradient_check(objective, params, analytic, h=h, seed=seed)[2]
