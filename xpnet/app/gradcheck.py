"""``xpnet gradcheck``: every layer's float64 gradient check on one backend.

:func:`run_gradient_checks` compares each backward pass (and the gradients of
small FullyConnectedNets) with central-difference gradients from
:mod:`xpnet.gradient_check`, in float64 on the chosen backend, and returns one
:class:`CheckResult` per check; :func:`format_table` prints them.

Layer functions are looked up on their modules at call time, so a patched
``xpnet.layers.relu_backward`` is what gets checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import gradient_check, layer_utils, layers
from ..backend import Backend, get_backend, to_numpy
from ..classifiers import fc_net

__all__ = ["CheckResult", "format_table", "run_gradient_checks", "CHECK_NAMES"]

#: Largest relative error that passes, for layers and for whole networks.
LAYER_TOLERANCE = 1e-6
NET_TOLERANCE = 1e-5

CHECK_NAMES = (
    "affine", "relu", "svm_loss", "softmax_loss",
    "batchnorm", "batchnorm_alt", "layernorm", "dropout",
    "affine_relu", "affine_bn_relu", "affine_ln_relu",
    "fc_net", "fc_net_batchnorm", "fc_net_layernorm", "fc_net_dropout",
)


@dataclass(frozen=True)
class CheckResult:
    """One gradient check: the largest relative error over its gradients."""

    name: str
    error: float
    tolerance: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.error <= self.tolerance  # NaN fails


class _Inputs:
    """Seeded float64 test data on one backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.count = 0

    def normal(self, *shape: int, scale: float = 1.0) -> Any:
        self.count += 1
        return self.backend.random_normal(shape, std=scale, dtype="float64",
                                          seed=(231, self.count))

    def labels(self, n: int, classes: int) -> Any:
        self.count += 1
        return self.backend.random_integers(classes, n, seed=(231, self.count))


def _num_array(f: Callable[[Any], Any], x: Any, dout: Any) -> Any:
    return gradient_check.eval_numerical_gradient_array(f, x, dout)


def _worst(pairs: list[tuple[str, Any, Any]]) -> tuple[float, str]:
    """The largest relative error over ``(name, analytic, numerical)`` gradients.

    Elementwise ``|a - n| / max(|a| + |n|, floor)`` as in ``rel_error``, but
    with ``floor = 1e-4 * (largest |n| in this check)`` rather than 1e-8:
    gradients that vanish in exact arithmetic (the bias before a batchnorm)
    then compare their rounding noise with the check's scale, not with itself.
    """
    host = [(name, to_numpy(a).astype(np.float64), to_numpy(n).astype(np.float64))
            for name, a, n in pairs]
    scale = max((float(np.max(np.abs(n), initial=0.0)) for _, _, n in host), default=0.0)
    floor = max(1e-4 * scale, 1e-12)
    errors = []
    for name, a, n in host:
        if a.shape != n.shape:
            errors.append((float("inf"), f"{name} has shape {a.shape}, expected {n.shape}"))
            continue
        err = np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), floor)
        errors.append((float(np.max(err, initial=0.0)), name))
    error, name = max(errors, key=lambda e: (e[0] != e[0], e[0]))  # NaN counts as worst
    return error, f"worst: {name}"


def _layer_checks(data: _Inputs) -> Iterator[tuple[str, float, str]]:
    x, w, b = data.normal(4, 2, 3), data.normal(6, 5), data.normal(5)
    dout = data.normal(4, 5)
    _, cache = layers.affine_forward(x, w, b)
    dx, dw, db = layers.affine_backward(dout, cache)
    yield "affine", *_worst([
        ("dx", dx, _num_array(lambda v: layers.affine_forward(v, w, b)[0], x, dout)),
        ("dw", dw, _num_array(lambda v: layers.affine_forward(x, v, b)[0], w, dout)),
        ("db", db, _num_array(lambda v: layers.affine_forward(x, w, v)[0], b, dout)),
    ])

    x, dout = data.normal(5, 6), data.normal(5, 6)
    _, cache = layers.relu_forward(x)
    yield "relu", *_worst([
        ("dx", layers.relu_backward(dout, cache),
         _num_array(lambda v: layers.relu_forward(v)[0], x, dout))])

    for name in ("svm_loss", "softmax_loss"):
        loss_fn = getattr(layers, name)
        scores, y = data.normal(8, 5, scale=0.5), data.labels(8, 5)
        _, dx = loss_fn(scores, y)
        num = gradient_check.eval_numerical_gradient(lambda v, f=loss_fn, y=y: f(v, y)[0],
                                                     scores, verbose=False)
        yield name, *_worst([("dx", dx, num)])

    for name, backward in (("batchnorm", "batchnorm_backward"),
                           ("batchnorm_alt", "batchnorm_backward_alt")):
        x = data.normal(6, 4, scale=2.0)
        gamma, beta, dout = data.normal(4), data.normal(4), data.normal(6, 4)

        def bn(v=None, g=None, be=None, x=x, gamma=gamma, beta=beta):
            return layers.batchnorm_forward(x if v is None else v, gamma if g is None else g,
                                            beta if be is None else be, {"mode": "train"})[0]

        _, cache = layers.batchnorm_forward(x, gamma, beta, {"mode": "train"})
        dx, dgamma, dbeta = getattr(layers, backward)(dout, cache)
        yield name, *_worst([
            ("dx", dx, _num_array(lambda v, bn=bn: bn(v=v), x, dout)),
            ("dgamma", dgamma, _num_array(lambda v, bn=bn: bn(g=v), gamma, dout)),
            ("dbeta", dbeta, _num_array(lambda v, bn=bn: bn(be=v), beta, dout)),
        ])

    x = data.normal(4, 6, scale=2.0)
    gamma, beta, dout = data.normal(6), data.normal(6), data.normal(4, 6)
    _, cache = layers.layernorm_forward(x, gamma, beta, {})
    dx, dgamma, dbeta = layers.layernorm_backward(dout, cache)
    yield "layernorm", *_worst([
        ("dx", dx, _num_array(lambda v: layers.layernorm_forward(v, gamma, beta, {})[0],
                              x, dout)),
        ("dgamma", dgamma, _num_array(lambda v: layers.layernorm_forward(x, v, beta, {})[0],
                                      gamma, dout)),
        ("dbeta", dbeta, _num_array(lambda v: layers.layernorm_forward(x, gamma, v, {})[0],
                                    beta, dout)),
    ])

    x, dout = data.normal(6, 5), data.normal(6, 5)
    param = {"mode": "train", "p": 0.6, "seed": 123}
    _, cache = layers.dropout_forward(x, param)
    yield "dropout", *_worst([
        ("dx", layers.dropout_backward(dout, cache),
         _num_array(lambda v: layers.dropout_forward(v, param)[0], x, dout))])


def _sandwich_checks(data: _Inputs) -> Iterator[tuple[str, float, str]]:
    x, w, b, dout = data.normal(3, 4), data.normal(4, 5), data.normal(5), data.normal(3, 5)
    _, cache = layer_utils.affine_relu_forward(x, w, b)
    dx, dw, db = layer_utils.affine_relu_backward(dout, cache)
    ar = layer_utils.affine_relu_forward
    yield "affine_relu", *_worst([
        ("dx", dx, _num_array(lambda v: ar(v, w, b)[0], x, dout)),
        ("dw", dw, _num_array(lambda v: ar(x, v, b)[0], w, dout)),
        ("db", db, _num_array(lambda v: ar(x, w, v)[0], b, dout)),
    ])
    for name, fwd, bwd, param in (
            ("affine_bn_relu", "affine_bn_relu_forward", "affine_bn_relu_backward",
             {"mode": "train"}),
            ("affine_ln_relu", "affine_ln_relu_forward", "affine_ln_relu_backward", {})):
        x, w, b = data.normal(5, 4), data.normal(4, 6), data.normal(6)
        gamma, beta, dout = data.normal(6), data.normal(6), data.normal(5, 6)
        forward = getattr(layer_utils, fwd)
        args = [x, w, b, gamma, beta]

        def f(v, i, forward=forward, args=args, param=param):
            call = list(args)
            call[i] = v
            return forward(*call, dict(param))[0]

        _, cache = forward(*args, dict(param))
        grads = getattr(layer_utils, bwd)(dout, cache)
        yield name, *_worst([
            (label, grads[i], _num_array(lambda v, i=i, f=f: f(v, i), args[i], dout))
            for i, label in enumerate(("dx", "dw", "db", "dgamma", "dbeta"))])


def _net_checks(data: _Inputs, backend: Backend) -> Iterator[tuple[str, float, str]]:
    X, y = data.normal(5, 8), data.labels(5, 4)
    for name, normalization, keep in (("fc_net", None, 1.0),
                                      ("fc_net_batchnorm", "batchnorm", 1.0),
                                      ("fc_net_layernorm", "layernorm", 1.0),
                                      ("fc_net_dropout", None, 0.7)):
        model = fc_net.FullyConnectedNet(
            [6, 5], input_dim=8, num_classes=4, normalization=normalization,
            dropout_keep_ratio=keep, reg=0.1, weight_scale=0.5, dtype="float64", seed=231,
            backend=backend)
        for pname, value in model.params.items():  # off zero: no ReLU input exactly at 0
            if pname.startswith(("b", "beta")):
                model.params[pname] = data.normal(*value.shape, scale=0.1)
        _, grads = model.loss(X, y)
        pairs = []
        for pname in sorted(model.params):
            num = gradient_check.eval_numerical_gradient(
                lambda _, model=model: model.loss(X, y)[0], model.params[pname],
                verbose=False, h=1e-5)
            pairs.append((pname, grads[pname], num))
        yield name, *_worst(pairs)


def run_gradient_checks(backend: str | Backend | None = None) -> list[CheckResult]:
    """Run every gradient check in float64 on ``backend``.

    Parameters
    ----------
    backend : name or Backend, optional
        Default ``$XPNET_BACKEND`` or auto.

    Returns
    -------
    list of CheckResult
        One per name in :data:`CHECK_NAMES`, in that order.
    """
    be = get_backend(backend)
    data = _Inputs(be)
    results = []
    for name, error, detail in _layer_checks(data):
        results.append(CheckResult(name, error, LAYER_TOLERANCE, detail))
    for name, error, detail in _sandwich_checks(data):
        results.append(CheckResult(name, error, LAYER_TOLERANCE, detail))
    for name, error, detail in _net_checks(data, be):
        results.append(CheckResult(name, error, NET_TOLERANCE, detail))
    return results


def format_table(results: list[CheckResult], backend_name: str) -> str:
    """The results as a text table with a summary line."""
    width = max(len(r.name) for r in results)
    lines = [f"gradient checks on the {backend_name} backend (float64)",
             f"{'check':<{width}}  {'rel. error':>10}  {'tolerance':>9}  result",
             "-" * (width + 33)]
    for r in results:
        status = "pass" if r.passed else f"FAIL ({r.detail})"
        lines.append(f"{r.name:<{width}}  {r.error:>10.2e}  {r.tolerance:>9.0e}  {status}")
    failed = [r.name for r in results if not r.passed]
    lines.append(f"all {len(results)} checks passed" if not failed
                 else f"{len(failed)} of {len(results)} checks FAILED: {', '.join(failed)}")
    return "\n".join(lines)
