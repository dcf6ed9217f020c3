"""The registered operations: what the rest of xpnet calls.

Each operation is its Array API reference (:mod:`xpnet._fast.reference`) plus
the argument layouts the registry test feeds it. Calling one runs the fast
path of the arguments' library when there is one and it supports them.
"""

from __future__ import annotations

from collections.abc import Callable

from . import reference
from .registry import Operation

__all__ = ["OPERATIONS", "adagrad_", "adam_", "add_window_", "conv2d", "conv2d_backward",
           "max_pool_tiles_backward", "max_pool_windows",
           "nesterov_momentum_", "normalize_backward", "relu_backward", "rmsprop_", "sgd_",
           "sgd_momentum_"]

#: Shapes of the elementwise cases: ranks 1, 2 and 4.
ELEMENTWISE_SHAPES = {"1d": (37,), "2d": (12, 9), "4d": (3, 4, 5, 6)}


def _elementwise_cases(build: Callable) -> dict[str, Callable]:
    return {label: (lambda make, shape=shape: build(make, shape))
            for label, shape in ELEMENTWISE_SHAPES.items()}


sgd_ = Operation(reference.sgd_, _elementwise_cases(
    lambda make, s: ((make(s, "state"), make(s, "in"), 0.05), {})))

sgd_momentum_ = Operation(reference.sgd_momentum_, _elementwise_cases(
    lambda make, s: ((make(s, "state"), make(s, "in"), make(s, "state"), 0.05, 0.9), {})))

nesterov_momentum_ = Operation(reference.nesterov_momentum_, _elementwise_cases(
    lambda make, s: ((make(s, "state"), make(s, "in"), make(s, "state"), 0.05, 0.9), {})))

rmsprop_ = Operation(reference.rmsprop_, _elementwise_cases(
    lambda make, s: ((make(s, "state"), make(s, "in"), make(s, "state", positive=True),
                      0.01, 0.99, 1e-8), {})))

adagrad_ = Operation(reference.adagrad_, _elementwise_cases(
    lambda make, s: ((make(s, "state"), make(s, "in"), make(s, "state", positive=True),
                      0.01, 1e-8), {})))

adam_ = Operation(reference.adam_, _elementwise_cases(
    lambda make, s: ((make(s, "state"), make(s, "in"), make(s, "state"),
                      make(s, "state", positive=True), 1e-3, 0.9, 0.999, 1e-8, 3), {})))

relu_backward = Operation(reference.relu_backward, _elementwise_cases(
    lambda make, s: ((make(s, "in"), make(s, "in")), {})))


def _normalization_case(shape: tuple[int, ...], stat_axes: tuple[int, ...],
                        param_axes: tuple[int, ...]) -> Callable:
    stat_shape = tuple(1 if i in stat_axes else n for i, n in enumerate(shape))
    param_shape = tuple(1 if i in param_axes else n for i, n in enumerate(shape))

    def build(make):
        return ((make(shape, "in"), make(shape, "in"), make(param_shape, "in"),
                 make(stat_shape, "in", positive=True), stat_axes), {})

    return build


normalize_backward = Operation(reference.normalize_backward, {
    "batchnorm_2d": _normalization_case((10, 6), (0,), (0,)),
    "layernorm_2d": _normalization_case((10, 6), (1,), (0,)),
    "spatial_batchnorm_4d": _normalization_case((4, 3, 5, 2), (0, 2, 3), (0, 2, 3)),
    "groupnorm_5d": _normalization_case((4, 2, 3, 5, 2), (2, 3, 4), (0, 3, 4)),
})

def _window_case(dst_shape, out_hw, kh, kw, stride):
    def build(make):
        return ((make(dst_shape, "state"), make((*dst_shape[:2], *out_hw), "in"), kh, kw,
                 stride), {})

    return build


add_window_ = Operation(reference.add_window_, {
    "stride1": _window_case((2, 3, 6, 7), (4, 5), 1, 2, 1),
    "stride2": _window_case((2, 3, 7, 7), (3, 3), 1, 0, 2),
    "overlap_1x1": _window_case((1, 2, 5, 5), (5, 5), 0, 0, 1),
})


def _pool_case(shape, ph, pw, stride):
    out_h, out_w = (shape[2] - ph) // stride + 1, (shape[3] - pw) // stride + 1

    def build(make):
        return ((make(shape, "in"), ph, pw, stride, out_h, out_w), {})

    return build


max_pool_windows = Operation(reference.max_pool_windows, {
    "2x2_stride2": _pool_case((2, 3, 4, 6), 2, 2, 2),
    "3x3_stride1": _pool_case((2, 2, 5, 5), 3, 3, 1),
    "3x2_stride2": _pool_case((1, 3, 7, 6), 3, 2, 2),
})

def _tiles_case(shape, p):
    def build(make):
        x = make(shape, "in")
        out = reference.max_pool_windows(x, p, p, p, shape[2] // p, shape[3] // p)[0]
        return ((make(tuple(out.shape), "in"), x, out, p), {})

    return build


max_pool_tiles_backward = Operation(reference.max_pool_tiles_backward, {
    "2x2": _tiles_case((2, 3, 4, 6), 2),
    "3x3": _tiles_case((1, 2, 6, 9), 3),
    "1x1": _tiles_case((2, 1, 3, 2), 1),
})

def _conv_case(xs, ws, stride, pad, backward):
    out_h, out_w = (xs[2] + 2 * pad - ws[2]) // stride + 1, (xs[3] + 2 * pad - ws[3]) // stride + 1

    def build(make):
        if backward:
            return ((make((xs[0], ws[0], out_h, out_w), "in"), make(xs, "in"), make(ws, "in"),
                     stride, pad), {})
        return ((make(xs, "in"), make(ws, "in"), make((ws[0],), "in"), stride, pad), {})

    return build


_CONV_CASES = {
    "3x3_pad1": ((2, 3, 5, 6), (4, 3, 3, 3), 1, 1),
    "3x3_stride2": ((2, 3, 7, 7), (2, 3, 3, 3), 2, 0),
    "5x3_pad2": ((1, 1, 6, 5), (3, 1, 5, 3), 1, 2),
    "1x1": ((3, 4, 3, 4), (2, 4, 1, 1), 1, 0),
}
conv2d = Operation(reference.conv2d, {
    label: _conv_case(*geometry, backward=False) for label, geometry in _CONV_CASES.items()})
conv2d_backward = Operation(reference.conv2d_backward, {
    label: _conv_case(*geometry, backward=True) for label, geometry in _CONV_CASES.items()})

#: Every registered operation, by name.
OPERATIONS: dict[str, Operation] = {
    op.name: op for op in (sgd_, sgd_momentum_, nesterov_momentum_, rmsprop_, adagrad_, adam_,
                           relu_backward, normalize_backward, add_window_, max_pool_windows,
                           max_pool_tiles_backward, conv2d, conv2d_backward)
}
