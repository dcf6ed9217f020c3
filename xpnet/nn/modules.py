"""Modules: the ``(out, cache)`` layer functions with their parameters and buffers.

A module knows its kind and settings; :meth:`Module.build` sees the shape of
one input (without the batch axis), returns the shape of one output and says
which parameters it needs; :meth:`Module.forward` and :meth:`Module.backward`
call the course's layer functions (no autograd: each backward is the layer's
own). Parameters live in the model's flat ``params`` dict under the module's
``prefix`` (``"3.W"``, ``"5.0.gamma"``), so the Solver, checkpoints and
gradient checks see one dict; batchnorm running statistics live in the
module's ``bn_param`` and reach the model as buffers.

Used by :class:`xpnet.nn.Sequential`; see :data:`MODULE_KINDS` for the list.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .. import fast_layers, layers
from .._ops import checks
from ..backend import namespace_of
from ..errors import InputError

__all__ = ["GELU", "MODULE_KINDS", "Affine", "BatchNorm", "Conv", "Dropout", "Flatten",
           "GlobalAvgPool", "GroupNorm", "LayerNorm", "MaxPool", "Module", "ReLU",
           "Residual", "Scale", "SpatialBatchNorm", "module_from_config"]

Array = Any
Shape = tuple[int, ...]
#: local parameter name -> (shape, initial values: 'zeros', 'ones' or a std for N(0, std^2))
ParamSpecs = dict[str, tuple[Shape, Any]]


def _shape(shape: Sequence[int]) -> str:
    return checks.shape_str(tuple(shape))


class Module:
    """Base class of the modules (see the module docstring)."""

    kind: ClassVar[str] = ""
    #: the parameters that L2 regularization applies to
    weight_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.prefix = ""
        self.index_label = ""
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        #: local names of the parameters held fixed (:meth:`hold`): no gradient, no update;
        #: their arrays are in :attr:`fixed` and reach the model as buffers
        self.frozen: tuple[str, ...] = ()
        self.fixed: dict[str, Array] = {}

    # -- description -----------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """``kind`` plus the constructor's arguments (JSON-ready)."""
        return {"kind": self.kind}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Module:
        """The module that ``config`` (a :attr:`config` dict, ``kind`` included) describes."""
        return cls(**{k: v for k, v in config.items() if k != "kind"})

    def describe(self) -> str:
        """The module in a few words, for the summary table and messages."""
        args = ", ".join(f"{k}={v}" for k, v in self.config.items()
                         if k != "kind" and v is not None)
        return f"{self.kind}({args})" if args else self.kind

    def __repr__(self) -> str:
        return self.describe()

    # -- building --------------------------------------------------------------
    def build(self, input_shape: Shape, prefix: str) -> tuple[Shape, ParamSpecs]:
        """Fix the shapes: ``(output shape, parameter specs)`` for one input of
        ``input_shape``; InputError when the input does not fit."""
        self.prefix = prefix
        self.input_shape = tuple(input_shape)
        self.output_shape = self._output_shape(self.input_shape)
        return self.output_shape, self._param_specs(self.input_shape)

    def _output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def _param_specs(self, input_shape: Shape) -> ParamSpecs:
        return {}

    def _misfit(self, expected: str) -> InputError:
        return InputError(
            f"layer {self.prefix.rstrip('.') or '?'} ({self.describe()}) expects one input of "
            f"shape {expected}, but the layer before it gives {_shape(self.input_shape or ())}")

    def _p(self, params: Mapping[str, Array], name: str) -> Array:
        fixed = self.fixed.get(name)
        return params[self.prefix + name] if fixed is None else fixed

    # -- frozen parameters -------------------------------------------------------
    def hold(self, name: str, value: Array) -> None:
        """Hold the parameter ``name`` (local, e.g. ``'W'``) fixed at ``value``: the
        module reads it from :attr:`fixed`, returns no gradient for it and, where its
        layer allows, does not compute one (:meth:`xpnet.nn.Sequential.freeze`)."""
        if name not in self.frozen:
            self.frozen = (*self.frozen, name)
        self.fixed[name] = value

    def release(self, name: str) -> Array:
        """Stop holding ``name`` fixed; returns its array (a parameter again)."""
        self.frozen = tuple(n for n in self.frozen if n != name)
        return self.fixed.pop(name)

    def _trained(self, grads: Mapping[str, Array | None]) -> dict[str, Array]:
        """``grads`` (local names) keyed globally, without those of frozen parameters."""
        return {self.prefix + k: v for k, v in grads.items()
                if v is not None and k not in self.frozen}

    def fixed_buffers(self) -> dict[str, Array]:
        """Global name -> array of the parameters held fixed."""
        return {self.prefix + k: v for k, v in self.fixed.items()}

    def load_fixed(self, buffers: Mapping[str, Array], backend: Any) -> None:
        """Take this module's entries of ``buffers`` for its fixed parameters (copies)."""
        for name in self.frozen:
            key = self.prefix + name
            if key not in buffers:
                continue
            value = backend.asarray(buffers[key])
            old = self.fixed.get(name)
            if old is not None and tuple(value.shape) != tuple(old.shape):
                raise InputError(f"buffer {key} must have shape {_shape(old.shape)}, got "
                                 f"{_shape(value.shape)}")
            self.fixed[name] = backend.xp.asarray(value, copy=True)

    # -- running -----------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        """'train' or 'test' (dropout, batch statistics)."""

    def forward(self, x: Array, params: Mapping[str, Array]) -> tuple[Array, Any]:
        """``(out, cache)`` for the input ``x``, with the module's parameters looked up in
        ``params`` by global name."""
        raise NotImplementedError

    def backward(self, dout: Array, cache: Any, params: Mapping[str, Array],
                 need_dx: bool = True) -> tuple[Array | None, dict[str, Array]]:
        """``(dx, grads)`` with grads keyed by global parameter name; ``dx`` may be
        None when ``need_dx`` is False (the first layer)."""
        raise NotImplementedError

    def buffers(self) -> dict[str, Array]:
        """Global name -> array of the module's running statistics."""
        return {}

    def load_buffers(self, buffers: Mapping[str, Array], backend: Any) -> None:
        """Take this module's entries of ``buffers`` (global names)."""

    def modules(self) -> list[Module]:
        """This module and every module inside it, depth first."""
        return [self]


def _floor_extent(size: int, window: int, stride: int, pad: int) -> tuple[int, int]:
    """Output size rounded down (as PyTorch does) and the pad after the input that makes
    the windows tile exactly (negative: that many trailing pixels are never seen)."""
    out = (size + 2 * pad - window) // stride + 1
    return out, (out - 1) * stride + window - size - pad


def _reframe(xp, x: Array, top: int, bottom: int, left: int, right: int) -> Array:
    """``x`` with ``top``/``left`` zero rows/cols before and ``bottom``/``right`` after
    (negative: cropped)."""
    n, c, h, w = x.shape
    out = xp.zeros((n, c, h + top + bottom, w + left + right), dtype=x.dtype,
                   device=getattr(x, "device", None))
    rows, cols = min(h, h + bottom), min(w, w + right)
    out[:, :, top:top + rows, left:left + cols] = x[:, :, :rows, :cols]
    return out


def _unframe(xp, d: Array, shape: Shape, top: int, bottom: int, left: int, right: int
             ) -> Array:
    """The gradient of :func:`_reframe` for an input of ``shape``."""
    h, w = shape[2], shape[3]
    rows, cols = min(h, h + bottom), min(w, w + right)
    inner = d[:, :, top:top + rows, left:left + cols]
    if rows == h and cols == w:
        return inner
    out = xp.zeros(tuple(shape), dtype=d.dtype, device=getattr(d, "device", None))
    out[:, :, :rows, :cols] = inner
    return out


def _init_std(weight_scale: float | None, fan_in: int) -> float:
    """``weight_scale``, or He initialization ``sqrt(2 / fan_in)`` for ReLU nets."""
    return math.sqrt(2.0 / fan_in) if weight_scale is None else float(weight_scale)


def _constant(xp, like: Array, n: int, value: float) -> Array:
    """``n`` copies of ``value`` in ``like``'s dtype and device (a missing bias or scale)."""
    return xp.full((n,), value, dtype=like.dtype, device=getattr(like, "device", None))


#: the initializations of :class:`Conv`'s filters
CONV_INITS = ("he", "dirac")


# ---------------------------------------------------------------------------
# Layers with weights


class Affine(Module):
    """Fully connected: ``x.reshape(N, D) @ W + b`` (``W`` (D, out), ``b`` (out,)).

    ``weight_scale`` is the std of the initial weights (default He: sqrt(2 / D));
    ``bias=False``: no ``b`` (the speed record's head).
    """

    kind = "affine"
    weight_names = ("W",)

    def __init__(self, out_features: int, weight_scale: float | None = None,
                 bias: bool = True) -> None:
        super().__init__()
        self.out_features = checks.positive_int(out_features, "out_features", "Affine")
        self.weight_scale = weight_scale
        self.bias = bool(bias)

    @property
    def config(self) -> dict[str, Any]:
        config = {"kind": self.kind, "out_features": self.out_features,
                  "weight_scale": self.weight_scale}
        if not self.bias:
            config["bias"] = False
        return config

    def describe(self) -> str:
        return f"affine {self.out_features}" + ("" if self.bias else " no bias")

    def _output_shape(self, input_shape: Shape) -> Shape:
        return (self.out_features,)

    def _param_specs(self, input_shape: Shape) -> ParamSpecs:
        d = math.prod(input_shape)
        specs: ParamSpecs = {"W": ((d, self.out_features), _init_std(self.weight_scale, d))}
        if self.bias:
            specs["b"] = ((self.out_features,), "zeros")
        return specs

    def _b(self, params, w):
        if self.bias:
            return self._p(params, "b")
        return _constant(namespace_of(w, caller="Affine"), w, self.out_features, 0.0)

    def forward(self, x, params):
        w = self._p(params, "W")
        return layers.affine_forward(x, w, self._b(params, w))

    def backward(self, dout, cache, params, need_dx=True):
        if "W" in self.frozen:  # no weight gradient: dx and db only
            x, w, _ = cache
            xp = namespace_of(dout, w, caller="Affine")
            dx = xp.reshape(dout @ w.T, tuple(x.shape)) if need_dx else None
            dw, db = None, xp.sum(dout, axis=0)
        elif need_dx:
            dx, dw, db = layers.affine_backward(dout, cache)
        else:
            dx = None
            dw, db = layers._affine_backward_params(dout, cache)
        return dx, self._trained({"W": dw, "b": db if self.bias else None})


class Conv(Module):
    """Convolution (the course's cross-correlation) of ``filters`` filters.

    ``size`` is an int or (height, width); ``pad`` defaults to ``(size - 1) // 2``
    ("same" for odd sizes and stride 1); ``weight_scale`` defaults to He
    initialization, sqrt(2 / (C * size * size)). ``bias=False``: no ``b`` (before a
    batchnorm it is redundant). ``init='dirac'``: the first ``min(filters, C)`` filters
    are the identity (filter ``i`` passes input channel ``i`` through its centre tap,
    PyTorch's ``dirac_``), the others drawn as for ``'he'``.
    """

    kind = "conv"
    weight_names = ("W",)

    def __init__(self, filters: int, size: int | Sequence[int] = 3, stride: int = 1,
                 pad: int | None = None, weight_scale: float | None = None,
                 bias: bool = True, init: str = "he") -> None:
        super().__init__()
        self.bias = bool(bias)
        self.init = checks.choice(init, CONV_INITS, "init", "Conv")
        self.filters = checks.positive_int(filters, "filters", "Conv")
        sizes = (size, size) if isinstance(size, int) else tuple(size)
        self.size = tuple(checks.positive_int(s, "size", "Conv") for s in sizes)
        self.stride = checks.positive_int(stride, "stride", "Conv")
        self.pad = ((self.size[0] - 1) // 2 if pad is None
                    else checks.nonnegative_int(pad, "pad", "Conv"))
        self.weight_scale = weight_scale

    @property
    def config(self) -> dict[str, Any]:
        size = self.size[0] if self.size[0] == self.size[1] else list(self.size)
        config = {"kind": self.kind, "filters": self.filters, "size": size,
                  "stride": self.stride, "pad": self.pad, "weight_scale": self.weight_scale}
        if not self.bias:
            config["bias"] = False
        if self.init != "he":
            config["init"] = self.init
        return config

    def describe(self) -> str:
        return (f"conv {self.filters} {self.size[0]}x{self.size[1]}"
                + (f" stride {self.stride}" if self.stride != 1 else "")
                + (f" pad {self.pad}" if self.pad != (self.size[0] - 1) // 2 else "")
                + ("" if self.bias else " no bias")
                + (f" {self.init}" if self.init != "he" else ""))

    def _output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise self._misfit("(C, H, W)")
        _, h, w = input_shape
        out, after = [], []
        for size, k, axis in ((h, self.size[0], "height"), (w, self.size[1], "width")):
            if size + 2 * self.pad < k:
                raise InputError(
                    f"layer {self.prefix.rstrip('.')} ({self.describe()}) does not fit the "
                    f"input {_shape(input_shape)} from the layer before it: its {axis} "
                    f"{size} with pad {self.pad} is smaller than the {k}-pixel filter")
            o, a = _floor_extent(size, k, self.stride, self.pad)
            out.append(o)
            after.append(a)
        # where the windows do not tile, the output size is rounded down (PyTorch's
        # rule): the input is framed explicitly and the layer runs without padding
        self._frame = None if after == [self.pad, self.pad] else \
            (self.pad, after[0], self.pad, after[1])
        return (self.filters, *out)

    def _param_specs(self, input_shape: Shape) -> ParamSpecs:
        c = input_shape[0]
        fan_in = c * self.size[0] * self.size[1]
        std = _init_std(self.weight_scale, fan_in)
        specs: ParamSpecs = {"W": ((self.filters, c, *self.size),
                                   ("dirac", std) if self.init == "dirac" else std)}
        if self.bias:
            specs["b"] = ((self.filters,), "zeros")
        return specs

    def forward(self, x, params):
        w = self._p(params, "W")
        b = self._p(params, "b") if self.bias else \
            _constant(namespace_of(w, caller="Conv"), w, self.filters, 0.0)
        frame = getattr(self, "_frame", None)
        if frame is None:
            return fast_layers.conv_forward_fast(x, w, b, {"stride": self.stride,
                                                           "pad": self.pad})
        xf = _reframe(namespace_of(x, caller="Conv"), x, *frame)
        out, cache = fast_layers.conv_forward_fast(xf, w, b, {"stride": self.stride, "pad": 0})
        return out, (cache, tuple(x.shape))

    def backward(self, dout, cache, params, need_dx=True):
        """Frozen filters in the first layer (``need_dx`` False) cost only the bias
        gradient, a sum; elsewhere the fused backward computes and drops theirs."""
        frame = getattr(self, "_frame", None)
        if frame is not None:
            cache, shape = cache
        if "W" in self.frozen and not need_dx:
            dx = dw = None
            db = (namespace_of(dout, caller="Conv").sum(dout, axis=(0, 2, 3))
                  if self.bias and "b" not in self.frozen else None)
        elif need_dx:
            dx, dw, db = fast_layers.conv_backward_fast(dout, cache)
            if frame is not None:
                dx = _unframe(namespace_of(dx, caller="Conv"), dx, shape, *frame)
        else:
            dx = None
            dw, db = fast_layers.conv_backward_params(dout, cache)
        return dx, self._trained({"W": dw, "b": db if self.bias else None})


# ---------------------------------------------------------------------------
# Layers without parameters


class ReLU(Module):
    """``max(x, 0)``."""

    kind = "relu"

    def forward(self, x, params):
        return layers.relu_forward(x)

    def backward(self, dout, cache, params, need_dx=True):
        return layers.relu_backward(dout, cache), {}


class GELU(Module):
    """Gaussian error linear unit ``x * Phi(x)`` (:func:`xpnet.layers.gelu_forward`);
    ``approximate='tanh'`` takes the tanh form."""

    kind = "gelu"

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = checks.choice(approximate, layers.GELU_FORMS, "approximate", "GELU")

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "approximate": self.approximate}

    def describe(self) -> str:
        return self.kind if self.approximate == "none" else f"gelu({self.approximate})"

    def forward(self, x, params):
        return layers.gelu_forward(x, self.approximate)

    def backward(self, dout, cache, params, need_dx=True):
        return layers.gelu_backward(dout, cache), {}


class Scale(Module):
    """``factor * x`` with a constant ``factor`` (the speed record multiplies its logits
    by 1/9 after a linear head without bias)."""

    kind = "scale"

    def __init__(self, factor: float) -> None:
        super().__init__()
        factor = float(factor) if isinstance(factor, (int, float)) else factor
        if not isinstance(factor, float) or not math.isfinite(factor) or factor == 0.0:
            raise InputError(f"Scale: factor must be a finite nonzero number, got {factor!r}")
        self.factor = factor

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "factor": self.factor}

    def describe(self) -> str:
        return f"scale {self.factor:.6g}"

    def forward(self, x, params):
        return x * self.factor, None

    def backward(self, dout, cache, params, need_dx=True):
        return dout * self.factor, {}


class MaxPool(Module):
    """Max pooling over ``size`` windows (int or (height, width)) every ``stride``
    pixels (default: the window size)."""

    kind = "maxpool"

    def __init__(self, size: int | Sequence[int] = 2, stride: int | None = None) -> None:
        super().__init__()
        sizes = (size, size) if isinstance(size, int) else tuple(size)
        self.size = tuple(checks.positive_int(s, "size", "MaxPool") for s in sizes)
        self.stride = self.size[0] if stride is None else \
            checks.positive_int(stride, "stride", "MaxPool")

    @property
    def config(self) -> dict[str, Any]:
        size = self.size[0] if self.size[0] == self.size[1] else list(self.size)
        return {"kind": self.kind, "size": size, "stride": self.stride}

    def describe(self) -> str:
        return f"maxpool {self.size[0]}x{self.size[1]}" + (
            f" stride {self.stride}" if self.stride != self.size[0] else "")

    @property
    def pool_param(self) -> dict[str, int]:
        return {"pool_height": self.size[0], "pool_width": self.size[1], "stride": self.stride}

    def _output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise self._misfit("(C, H, W)")
        c, h, w = input_shape
        out, after = [], []
        for size, k in ((h, self.size[0]), (w, self.size[1])):
            if size < k:
                raise InputError(
                    f"layer {self.prefix.rstrip('.')} ({self.describe()}) does not fit the "
                    f"input {_shape(input_shape)} from the layer before it: the window "
                    f"{k} is larger than {size}")
            o, a = _floor_extent(size, k, self.stride, 0)
            out.append(o)
            after.append(a)
        # trailing pixels no window reaches are dropped (PyTorch's rule)
        self._frame = None if after == [0, 0] else (0, after[0], 0, after[1])
        return (c, *out)

    def forward(self, x, params):
        frame = getattr(self, "_frame", None)
        if frame is None:
            return fast_layers.max_pool_forward_fast(x, self.pool_param)
        out, cache = fast_layers.max_pool_forward_fast(x[:, :, :x.shape[2] + frame[1],
                                                         :x.shape[3] + frame[3]],
                                                       self.pool_param)
        return out, (cache, tuple(x.shape))

    def backward(self, dout, cache, params, need_dx=True):
        frame = getattr(self, "_frame", None)
        if frame is None:
            return fast_layers.max_pool_backward_fast(dout, cache), {}
        cache, shape = cache
        dx = fast_layers.max_pool_backward_fast(dout, cache)
        return _unframe(namespace_of(dx, caller="MaxPool"), dx, shape, *frame), {}


class GlobalAvgPool(Module):
    """The mean of each channel: (C, H, W) -> (C,)."""

    kind = "global_avg_pool"

    def _output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise self._misfit("(C, H, W)")
        return (input_shape[0],)

    def forward(self, x, params):
        return layers.global_avg_pool_forward(x)

    def backward(self, dout, cache, params, need_dx=True):
        return layers.global_avg_pool_backward(dout, cache), {}


class Flatten(Module):
    """(d1, ..., dk) -> (d1 * ... * dk,)."""

    kind = "flatten"

    def _output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)

    def forward(self, x, params):
        xp = namespace_of(x, caller="Flatten")
        return xp.reshape(x, (x.shape[0], -1)), tuple(x.shape)

    def backward(self, dout, cache, params, need_dx=True):
        return namespace_of(dout, caller="Flatten").reshape(dout, cache), {}


class Dropout(Module):
    """Inverted dropout keeping each unit with probability ``keep``; ``seed`` fixes
    the mask (for gradient checks), else masks come from the Solver's stream."""

    kind = "dropout"

    def __init__(self, keep: float, seed: int | None = None) -> None:
        super().__init__()
        self.keep = checks.keep_ratio(keep, "keep", "Dropout")
        self.seed = seed
        self.dropout_param: dict[str, Any] = {"mode": "train", "p": self.keep}
        if seed is not None:
            self.dropout_param["seed"] = seed

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "keep": self.keep, "seed": self.seed}

    def set_mode(self, mode: str) -> None:
        self.dropout_param["mode"] = mode

    def forward(self, x, params):
        return layers.dropout_forward(x, self.dropout_param)

    def backward(self, dout, cache, params, need_dx=True):
        return layers.dropout_backward(dout, cache), {}


# ---------------------------------------------------------------------------
# Normalization


class _Norm(Module):
    """gamma (ones) and beta (zeros) of one entry per feature or channel."""

    def _param_shape(self, input_shape: Shape) -> Shape:
        return (input_shape[0],)

    def _param_specs(self, input_shape: Shape) -> ParamSpecs:
        shape = self._param_shape(input_shape)
        return {"gamma": (shape, "ones"), "beta": (shape, "zeros")}


class _BatchStatisticsNorm(_Norm):
    """Batch normalization: running averages are buffers."""

    rank: ClassVar[int] = 1
    layout: ClassVar[str] = "(D,)"

    def __init__(self, momentum: float = 0.9, eps: float = 1e-5, scale: bool = True,
                 center: bool = True) -> None:
        super().__init__()
        name = type(self).__name__
        momentum = checks.nonnegative_number(momentum, "momentum", name)
        if momentum > 1:
            raise InputError(f"{name}: momentum must lie in [0, 1] (running = momentum * "
                             f"running + (1 - momentum) * batch), got {momentum!r}")
        self.momentum, self.eps = momentum, checks.positive_number(eps, "eps", name)
        #: scale=False: no gamma (a scale of 1); center=False: no beta (a shift of 0)
        self.scale, self.center = bool(scale), bool(center)
        self.bn_param: dict[str, Any] = {"mode": "train", "momentum": momentum, "eps": eps}

    @property
    def config(self) -> dict[str, Any]:
        config = {"kind": self.kind, "momentum": self.momentum, "eps": self.eps}
        if not self.scale:
            config["scale"] = False
        if not self.center:
            config["center"] = False
        return config

    def _param_specs(self, input_shape: Shape) -> ParamSpecs:
        specs = super()._param_specs(input_shape)
        if not self.scale:
            del specs["gamma"]
        if not self.center:
            del specs["beta"]
        return specs

    def _gamma_beta(self, x: Array, params: Mapping[str, Array]) -> tuple[Array, Array]:
        xp = namespace_of(x, caller=type(self).__name__)
        n = self._param_shape(self.input_shape or tuple(x.shape[1:]))[0]
        gamma = self._p(params, "gamma") if self.scale else _constant(xp, x, n, 1.0)
        beta = self._p(params, "beta") if self.center else _constant(xp, x, n, 0.0)
        return gamma, beta

    def _grads(self, dgamma: Array, dbeta: Array) -> dict[str, Array]:
        return self._trained({"gamma": dgamma if self.scale else None,
                              "beta": dbeta if self.center else None})

    def describe(self) -> str:
        return self.kind + ("" if self.scale else " no scale") + \
            ("" if self.center else " no shift")

    def _output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != self.rank:
            raise self._misfit(self.layout)
        return input_shape

    def set_mode(self, mode: str) -> None:
        self.bn_param["mode"] = mode

    def buffers(self) -> dict[str, Array]:
        return {self.prefix + k: self.bn_param[k] for k in ("running_mean", "running_var")
                if self.bn_param.get(k) is not None}

    def load_buffers(self, buffers: Mapping[str, Array], backend: Any) -> None:
        for key in ("running_mean", "running_var"):
            name = self.prefix + key
            if name in buffers:
                value = buffers[name]
                expected = self._param_shape(self.input_shape or ())
                if tuple(value.shape) != expected:
                    raise InputError(f"buffer {name} must have shape {_shape(expected)}, got "
                                     f"{_shape(value.shape)}")
                # a copy: batchnorm updates its running statistics in place
                self.bn_param[key] = backend.xp.asarray(backend.asarray(value), copy=True)


class BatchNorm(_BatchStatisticsNorm):
    """Batch normalization of (D,) features (:func:`xpnet.layers.batchnorm_forward`)."""

    kind = "batchnorm"

    def forward(self, x, params):
        return layers.batchnorm_forward(x, *self._gamma_beta(x, params), self.bn_param)

    def backward(self, dout, cache, params, need_dx=True):
        dx, dg, db = layers.batchnorm_backward_alt(dout, cache)
        return dx, self._grads(dg, db)


class SpatialBatchNorm(_BatchStatisticsNorm):
    """Batch normalization per channel of (C, H, W) input."""

    kind = "spatial_batchnorm"
    rank = 3
    layout = "(C, H, W)"

    def forward(self, x, params):
        return layers.spatial_batchnorm_forward(x, *self._gamma_beta(x, params), self.bn_param)

    def backward(self, dout, cache, params, need_dx=True):
        dx, dg, db = layers.spatial_batchnorm_backward(dout, cache)
        return dx, self._grads(dg, db)


class LayerNorm(_Norm):
    """Layer normalization of (D,) features."""

    kind = "layernorm"

    def _output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise self._misfit("(D,)")
        return input_shape

    def forward(self, x, params):
        return layers.layernorm_forward(x, self._p(params, "gamma"), self._p(params, "beta"),
                                        {})

    def backward(self, dout, cache, params, need_dx=True):
        dx, dg, db = layers.layernorm_backward(dout, cache)
        return dx, self._trained({"gamma": dg, "beta": db})


class GroupNorm(_Norm):
    """Group normalization of (C, H, W) input in ``groups`` groups of channels."""

    kind = "groupnorm"

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = checks.positive_int(groups, "groups", "GroupNorm")

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "groups": self.groups}

    def _output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise self._misfit("(C, H, W)")
        if input_shape[0] % self.groups:
            raise InputError(f"layer {self.prefix.rstrip('.')} ({self.describe()}): "
                             f"{self.groups} groups do not divide the {input_shape[0]} "
                             f"channels of its input {_shape(input_shape)}")
        return input_shape

    def _param_shape(self, input_shape: Shape) -> Shape:
        return (1, input_shape[0], 1, 1)

    def forward(self, x, params):
        return layers.spatial_groupnorm_forward(x, self._p(params, "gamma"),
                                                self._p(params, "beta"), self.groups, {})

    def backward(self, dout, cache, params, need_dx=True):
        dx, dg, db = layers.spatial_groupnorm_backward(dout, cache)
        return dx, self._trained({"gamma": dg, "beta": db})


# ---------------------------------------------------------------------------
# Residual block


class Residual(Module):
    """``out = body(x) + shortcut(x)``: the identity when the body keeps the shape,
    else a projection (a strided 1x1 convolution and spatial batchnorm for images,
    an affine layer for vectors). Its backward sums the two paths' gradients.

    Parameters are named ``"<i>.<j>.<name>"`` for the body's layer ``j`` and
    ``"<i>.proj.<j>.<name>"`` for the projection.
    """

    kind = "residual"

    def __init__(self, *body: Module) -> None:
        super().__init__()
        if not body:
            raise InputError("Residual needs at least one module in its body")
        for m in body:
            if not isinstance(m, Module):
                raise InputError(f"Residual takes modules, got {type(m).__name__}")
        self.body = list(body)
        self.projection: list[Module] = []

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "body": [m.config for m in self.body]}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Module:
        return cls(*(module_from_config(c) for c in config["body"]))

    def describe(self) -> str:
        return "residual[" + ", ".join(m.describe() for m in self.body) + "]" + (
            " + projection" if self.projection else "")

    def modules(self) -> list[Module]:
        return [self, *(m for part in (self.body, self.projection) for sub in part
                        for m in sub.modules())]

    def build(self, input_shape: Shape, prefix: str) -> tuple[Shape, ParamSpecs]:
        self.prefix = prefix
        self.input_shape = tuple(input_shape)
        specs: ParamSpecs = {}
        shape = self.input_shape
        for j, m in enumerate(self.body):
            shape, sub = m.build(shape, f"{prefix}{j}.")
            specs.update({f"{j}.{k}": v for k, v in sub.items()})
        self.output_shape = shape
        self.projection = []
        if shape != self.input_shape:
            if len(shape) == 3 and len(self.input_shape) == 3:
                stride = max(1, -(-self.input_shape[1] // shape[1]))  # ceil(H_in / H_out)
                self.projection = [Conv(shape[0], size=1, stride=stride, pad=0),
                                   SpatialBatchNorm()]
            elif len(shape) == 1:
                self.projection = [Affine(shape[0])]
            else:
                raise InputError(f"layer {prefix.rstrip('.')} ({self.describe()}): no "
                                 f"projection from {_shape(self.input_shape)} to "
                                 f"{_shape(shape)}")
            pshape = self.input_shape
            for j, m in enumerate(self.projection):
                pshape, sub = m.build(pshape, f"{prefix}proj.{j}.")
                specs.update({f"proj.{j}.{k}": v for k, v in sub.items()})
            if pshape != shape:
                raise InputError(f"layer {prefix.rstrip('.')} ({self.describe()}): the body "
                                 f"maps {_shape(self.input_shape)} to {_shape(shape)}, which "
                                 "a strided 1x1 projection cannot match")
        return shape, specs

    def set_mode(self, mode: str) -> None:
        for m in self.body + self.projection:
            m.set_mode(mode)

    def forward(self, x, params):
        h, body_caches = x, []
        for m in self.body:
            h, c = m.forward(h, params)
            body_caches.append(c)
        s, proj_caches = x, []
        for m in self.projection:
            s, c = m.forward(s, params)
            proj_caches.append(c)
        return h + s, (body_caches, proj_caches)

    def backward(self, dout, cache, params, need_dx=True):
        body_caches, proj_caches = cache
        grads: dict[str, Array] = {}
        d = dout
        for m, c in zip(reversed(self.body), reversed(body_caches), strict=True):
            d, g = m.backward(d, c, params)
            grads.update(g)
        ds = dout
        for m, c in zip(reversed(self.projection), reversed(proj_caches), strict=True):
            ds, g = m.backward(ds, c, params)
            grads.update(g)
        return (d + ds if need_dx else None), grads

    def buffers(self) -> dict[str, Array]:
        out: dict[str, Array] = {}
        for m in self.body + self.projection:
            out.update(m.buffers())
        return out

    def load_buffers(self, buffers: Mapping[str, Array], backend: Any) -> None:
        for m in self.body + self.projection:
            m.load_buffers(buffers, backend)


MODULE_KINDS: dict[str, type[Module]] = {
    cls.kind: cls for cls in (Affine, Conv, ReLU, GELU, Scale, MaxPool, GlobalAvgPool, Flatten,
                              Dropout, BatchNorm, SpatialBatchNorm, LayerNorm, GroupNorm,
                              Residual)
}


def module_from_config(config: Mapping[str, Any]) -> Module:
    """A module from its :attr:`Module.config` (InputError for an unknown kind)."""
    kind = config.get("kind")
    checks.choice(kind, tuple(MODULE_KINDS), "module kind")
    return MODULE_KINDS[kind].from_config(config)
