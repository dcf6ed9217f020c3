"""``xpnet gradcheck``: every layer's float64 gradient check on one backend.

:func:`run_gradient_checks` checks each layer, sandwich and loss with
:func:`xpnet.testing.check_layer_backward` (element-wise and directional
central differences in float64) and the gradients of small models with
:func:`xpnet.gradient_check.eval_numerical_gradient`, on the chosen backend,
and returns one :class:`CheckResult` per check; :func:`format_table` prints
them.

Layer functions are looked up on their modules at call time, so a patched
``xpnet.layers.relu_backward`` is what gets checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import fast_layers, gradient_check, layer_utils, layers
from ..backend import Backend, get_backend, to_numpy
from ..classifiers import cnn, fc_net
from ..testing import check_layer_backward

__all__ = ["CHECK_NAMES", "CheckResult", "format_table", "run_gradient_checks"]

#: Largest relative error that passes, for layers and for whole networks.
LAYER_TOLERANCE = 1e-6
NET_TOLERANCE = 1e-5


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

    def distinct(self, *shape: int) -> Any:
        """Distinct values 0.01 apart (no max-pooling window has a near tie)."""
        self.count += 1
        n = int(np.prod(shape))
        values = np.random.default_rng(self.count).permutation(n).reshape(shape) * 0.01
        return self.backend.asarray(values)

    def labels(self, n: int, classes: int) -> Any:
        self.count += 1
        return self.backend.random_integers(classes, n, seed=(231, self.count))


def _fn(module: Any, name: str) -> Callable:
    """``module.name`` looked up at call time (so patches are seen)."""
    return lambda *args: getattr(module, name)(*args)


def _loss_layer(name: str, y: Any) -> tuple[Callable, Callable]:
    """A loss as an ``(out, cache)`` layer: out is the loss, backward scales dx."""
    def forward(x):
        loss, dx = getattr(layers, name)(x, y)
        return loss, dx

    return forward, lambda dout, dx: dx * dout


# name -> builder(data) -> (forward, backward, inputs, wrt names)
def _layer_cases(data: _Inputs) -> Iterator[tuple[str, Callable, Callable, list, list]]:
    L, U, F = layers, layer_utils, fast_layers
    yield ("affine", _fn(L, "affine_forward"), _fn(L, "affine_backward"),
           [data.normal(4, 2, 3), data.normal(6, 5), data.normal(5)], ["x", "w", "b"])
    yield "relu", _fn(L, "relu_forward"), _fn(L, "relu_backward"), [data.normal(5, 6)], ["x"]
    for name in ("svm_loss", "softmax_loss"):
        forward, backward = _loss_layer(name, data.labels(8, 5))
        yield name, forward, backward, [data.normal(8, 5, scale=0.5)], ["x"]
    for name, backward in (("batchnorm", "batchnorm_backward"),
                           ("batchnorm_alt", "batchnorm_backward_alt")):
        yield (name, _fn(L, "batchnorm_forward"), _fn(L, backward),
               [data.normal(6, 4, scale=2.0), data.normal(4), data.normal(4), {"mode": "train"}],
               ["x", "gamma", "beta"])
    yield ("layernorm", _fn(L, "layernorm_forward"), _fn(L, "layernorm_backward"),
           [data.normal(4, 6, scale=2.0), data.normal(6), data.normal(6), {}],
           ["x", "gamma", "beta"])
    yield ("dropout", _fn(L, "dropout_forward"), _fn(L, "dropout_backward"),
           [data.normal(6, 5), {"mode": "train", "p": 0.6, "seed": 123}], ["x"])
    yield ("affine_relu", _fn(U, "affine_relu_forward"), _fn(U, "affine_relu_backward"),
           [data.normal(3, 4), data.normal(4, 5), data.normal(5)], ["x", "w", "b"])
    for name, param in (("affine_bn_relu", {"mode": "train"}), ("affine_ln_relu", {})):
        yield (name, _fn(U, f"{name}_forward"), _fn(U, f"{name}_backward"),
               [data.normal(5, 4), data.normal(4, 6), data.normal(6), data.normal(6),
                data.normal(6), param], ["x", "w", "b", "gamma", "beta"])
    conv = {"stride": 2, "pad": 1}
    for name, forward, backward in (
            ("conv_naive", _fn(L, "conv_forward_naive"), _fn(L, "conv_backward_naive")),
            ("conv_im2col", _fn(F, "conv_forward_im2col"), _fn(F, "conv_backward_im2col")),
            ("conv_strides", _fn(F, "conv_forward_strides"), _fn(F, "conv_backward_strides"))):
        yield (name, forward, backward, [data.normal(2, 3, 5, 5), data.normal(3, 3, 3, 3),
                                         data.normal(3), conv], ["x", "w", "b"])
    pool = {"pool_height": 3, "pool_width": 2, "stride": 1}
    for name, forward, backward in (
            ("max_pool_naive", _fn(L, "max_pool_forward_naive"),
             _fn(L, "max_pool_backward_naive")),
            ("max_pool_fast", _fn(F, "max_pool_forward_fast"), _fn(F, "max_pool_backward_fast"))):
        yield name, forward, backward, [data.distinct(2, 2, 4, 4), pool], ["x"]
    yield ("spatial_batchnorm", _fn(L, "spatial_batchnorm_forward"),
           _fn(L, "spatial_batchnorm_backward"),
           [data.normal(3, 4, 2, 3, scale=2.0), data.normal(4), data.normal(4),
            {"mode": "train"}], ["x", "gamma", "beta"])
    yield ("spatial_groupnorm", _fn(L, "spatial_groupnorm_forward"),
           _fn(L, "spatial_groupnorm_backward"),
           [data.normal(2, 6, 2, 3, scale=2.0), data.normal(1, 6, 1, 1),
            data.normal(1, 6, 1, 1), 3, {}], ["x", "gamma", "beta"])
    same = {"stride": 1, "pad": 1}
    yield ("conv_relu", _fn(U, "conv_relu_forward"), _fn(U, "conv_relu_backward"),
           [data.normal(2, 3, 4, 4), data.normal(3, 3, 3, 3), data.normal(3), same],
           ["x", "w", "b"])
    yield ("conv_relu_pool", _fn(U, "conv_relu_pool_forward"), _fn(U, "conv_relu_pool_backward"),
           [data.normal(2, 3, 4, 4), data.normal(3, 3, 3, 3), data.normal(3), same,
            {"pool_height": 2, "pool_width": 2, "stride": 2}], ["x", "w", "b"])
    yield ("conv_bn_relu", _fn(U, "conv_bn_relu_forward"), _fn(U, "conv_bn_relu_backward"),
           [data.normal(2, 3, 4, 4), data.normal(3, 3, 3, 3), data.normal(3), data.normal(3),
            data.normal(3), same, {"mode": "train"}], ["x", "w", "b", "gamma", "beta"])


def _layer_checks(data: _Inputs) -> Iterator[tuple[str, float, str]]:
    for name, forward, backward, inputs, names in _layer_cases(data):
        wrt = [i for i, v in enumerate(inputs) if hasattr(v, "shape")][:len(names)]
        report = check_layer_backward(forward, backward, inputs, wrt=wrt, names=names,
                                      rtol=LAYER_TOLERANCE, raise_error=False)
        errors = [report.worst, report.directional]
        error = max(errors, key=lambda e: (e != e, e))  # NaN counts as the worst
        where = report.worst_input if report.worst >= report.directional else "directional"
        yield name, error, f"worst: {where}"


def _worst(pairs: list[tuple[str, Any, Any]]) -> tuple[float, str]:
    """The largest relative error over ``(name, analytic, numerical)`` gradients,
    with the floor ``1e-4 * max |numerical|`` of :func:`check_layer_backward`."""
    host = [(name, to_numpy(a).astype(np.float64), to_numpy(n).astype(np.float64))
            for name, a, n in pairs]
    scale = max((float(np.max(np.abs(n), initial=0.0)) for _, _, n in host), default=0.0)
    floor = max(1e-4 * scale, 1e-12)
    errors = []
    for name, a, n in host:
        err = np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), floor)
        errors.append((float(np.max(err, initial=0.0)), name))
    error, name = max(errors, key=lambda e: (e[0] != e[0], e[0]))  # NaN counts as worst
    return error, f"worst: {name}"


def _model_gradients(model: Any, X: Any, y: Any, data: _Inputs) -> tuple[float, str]:
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
    return _worst(pairs)


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
        yield name, *_model_gradients(model, X, y, data)
    model = cnn.ThreeLayerConvNet(input_dim=(2, 6, 6), num_filters=3, filter_size=3,
                                  hidden_dim=5, num_classes=4, weight_scale=0.3, reg=0.1,
                                  dtype="float64", seed=231, backend=backend)
    yield ("three_layer_convnet",
           *_model_gradients(model, data.normal(2, 2, 6, 6), data.labels(2, 4), data))


LAYER_NAMES = (
    "affine", "relu", "svm_loss", "softmax_loss", "batchnorm", "batchnorm_alt", "layernorm",
    "dropout", "affine_relu", "affine_bn_relu", "affine_ln_relu", "conv_naive", "conv_im2col",
    "conv_strides", "max_pool_naive", "max_pool_fast", "spatial_batchnorm",
    "spatial_groupnorm", "conv_relu", "conv_relu_pool", "conv_bn_relu",
)
NET_NAMES = ("fc_net", "fc_net_batchnorm", "fc_net_layernorm", "fc_net_dropout",
             "three_layer_convnet")
CHECK_NAMES = LAYER_NAMES + NET_NAMES


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
    results = [CheckResult(name, error, LAYER_TOLERANCE, detail)
               for name, error, detail in _layer_checks(data)]
    results += [CheckResult(name, error, NET_TOLERANCE, detail)
                for name, error, detail in _net_checks(data, be)]
    return results


def format_table(results: list[CheckResult], backend_name: str, device: str | None = None
                 ) -> str:
    """The results as a text table with a summary line."""
    width = max(len(r.name) for r in results)
    where = f" on {device}" if device else ""
    lines = [f"gradient checks on the {backend_name} backend{where} (float64)",
             f"{'check':<{width}}  {'rel. error':>10}  {'tolerance':>9}  result",
             "-" * (width + 33)]
    for r in results:
        status = "pass" if r.passed else f"FAIL ({r.detail})"
        lines.append(f"{r.name:<{width}}  {r.error:>10.2e}  {r.tolerance:>9.0e}  {status}")
    failed = [r.name for r in results if not r.passed]
    lines.append(f"all {len(results)} checks passed" if not failed
                 else f"{len(failed)} of {len(results)} checks FAILED: {', '.join(failed)}")
    return "\n".join(lines)
