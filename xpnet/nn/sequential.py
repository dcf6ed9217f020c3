"""``Sequential``: a model composed of modules, trained like the course's models.

::

    from xpnet.nn import Sequential, Conv, SpatialBatchNorm, ReLU, MaxPool, Residual, \\
        GlobalAvgPool, Affine

    model = Sequential(
        Conv(32), SpatialBatchNorm(), ReLU(),
        Residual(Conv(32), SpatialBatchNorm(), ReLU(), Conv(32), SpatialBatchNorm()), ReLU(),
        MaxPool(2), Conv(64), SpatialBatchNorm(), ReLU(), GlobalAvgPool(), Affine(10),
        input_shape=(3, 32, 32), reg=5e-4, seed=0)
    print(model)          # layers, output shapes, parameter counts

Shapes are inferred from ``input_shape``, given once. Parameters are named by
position and kind (``"0.W"``, ``"1.gamma"``, ``"3.0.W"`` inside a residual
block); ``loss(X, y=None)`` returns scores, or ``(loss, grads)``, like the
course's models, and the model protocol (``params``, ``buffers``, ``config``,
``set_mode``) lets the Solver, checkpoints, :func:`xpnet.load_model`, the
gradient checks and ``xpnet train`` take it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .._ops import checks
from ..backend import Backend, dtype_name, get_backend
from ..errors import InputError
from ..layers import softmax_loss
from .init import dirac
from .model import Model
from .modules import Module, module_from_config

__all__ = ["Sequential"]


class Sequential(Model):
    """Modules applied in order, then softmax; a model of the model protocol.

    Parameters
    ----------
    *modules : Module
        The layers; the last one must produce the class scores (N, classes).
    input_shape : tuple of int
        Shape of one input, e.g. (3, 32, 32).
    reg : float
        L2 strength: the loss adds ``0.5 * reg * sum(W**2)`` over the weights of
        affine and convolution layers (not biases or normalization), read at
        each call.
    label_smoothing : float
        Softmax targets ``(1 - eps) * onehot + eps / classes`` (0: plain).
    dtype : dtype or str
        ``float32`` to train, ``float64`` for gradient checks.
    seed : int, optional
        Seeds the initial weights.
    backend : str, module or Backend, optional
    frozen : sequence of str
        Parameters held fixed from the start (:meth:`freeze`), e.g. ``["0.W"]``.
    """

    def __init__(self, *modules: Module, input_shape: Sequence[int], reg: float = 0.0,
                 label_smoothing: float = 0.0, dtype: Any = "float32",
                 seed: int | None = None, backend: str | Backend | Any = None,
                 frozen: Sequence[str] = ()) -> None:
        if not modules:
            raise InputError("Sequential needs at least one module")
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise InputError(f"Sequential: argument {i} is a {type(m).__name__}, not a "
                                 "module (xpnet.nn.Affine, Conv, ReLU, ...)")
        self.layers = list(modules)
        self.input_shape = tuple(checks.positive_int(s, "every entry of input_shape",
                                                     "Sequential") for s in input_shape)
        self.reg = reg
        self.label_smoothing = float(label_smoothing)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise InputError(f"Sequential: label_smoothing must lie in [0, 1), got "
                             f"{label_smoothing!r}")
        self.seed = seed
        self.backend = get_backend(backend)
        self.dtype = self.backend.dtype(dtype)
        self.shapes: list[tuple[int, ...]] = []
        specs: dict[str, tuple] = {}
        shape = self.input_shape
        for i, m in enumerate(self.layers):
            shape, sub = m.build(shape, f"{i}.")
            self.shapes.append(shape)
            specs.update({f"{i}.{k}": v for k, v in sub.items()})
        if len(shape) != 1:
            raise InputError(f"Sequential: the last layer ({self.layers[-1].describe()}) gives "
                             f"{checks.shape_str(shape)} per input; it must give class scores "
                             "(classes,): end with GlobalAvgPool() or Flatten() and Affine(k)")
        self.num_classes = shape[0]
        self.params: dict[str, Any] = {}
        self._init_params(specs)
        self.weights = [m.prefix + w for top in self.layers for m in top.modules()
                        for w in m.weight_names if m.prefix + w in self.params]
        #: global parameter name -> (the innermost module holding it, its local name)
        self._owners = {m.prefix + local: (m, local) for top in self.layers
                        for m in top.modules() for local in self._local_names(m, specs)}
        if isinstance(frozen, str):
            frozen = [frozen]
        self.freeze(*frozen)

    @staticmethod
    def _local_names(module: Module, specs: Mapping[str, tuple]) -> list[str]:
        """The names of ``module``'s own parameters (not those of modules inside it)."""
        n = len(module.prefix)
        return [k[n:] for k in specs if k.startswith(module.prefix) and "." not in k[n:]]

    def _init_params(self, specs: Mapping[str, tuple]) -> None:
        be, xp = self.backend, self.backend.xp
        for k, (name, (shape, init)) in enumerate(specs.items()):
            if init == "zeros":
                value = xp.zeros(shape, dtype=self.dtype, device=be.device)
            elif init == "ones":
                value = xp.ones(shape, dtype=self.dtype, device=be.device)
            elif isinstance(init, tuple) and init[0] == "dirac":  # identity, then N(0, std^2)
                value = dirac(xp, be.random_normal(
                    shape, std=init[1], dtype=self.dtype,
                    seed=None if self.seed is None else (self.seed, k)))
            else:
                value = be.random_normal(shape, std=init, dtype=self.dtype,
                                         seed=None if self.seed is None else (self.seed, k))
            self.params[name] = value

    # -- the model protocol ----------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """What rebuilds this model (the modules' configs and the settings)."""
        config = {"modules": [m.config for m in self.layers],
                  "input_shape": list(self.input_shape), "reg": self.reg,
                  "label_smoothing": self.label_smoothing, "dtype": dtype_name(self.dtype),
                  "seed": self.seed}
        if self.frozen:
            config["frozen"] = self.frozen
        return config

    # -- frozen parameters -------------------------------------------------------
    @property
    def frozen(self) -> list[str]:
        """The parameters held fixed now, in model order (buffers, not ``params``)."""
        return [name for name, (m, local) in self._owners.items() if local in m.frozen]

    def _owner(self, name: str) -> tuple[Module, str]:
        if name not in self._owners:
            raise InputError(f"Sequential has no parameter {name!r}; its parameters are "
                             f"{', '.join(self._owners)}")
        return self._owners[name]

    def freeze(self, *names: str) -> None:
        """Hold the parameters ``names`` fixed (e.g. ``"0.W"``): they leave ``params`` (so
        no update rule sees them), the loss returns no gradient for them and, where the
        layer allows, computes none; they are saved and loaded as buffers. Freezing a
        frozen parameter does nothing."""
        for name in names:
            module, local = self._owner(name)
            if local not in module.frozen:
                module.hold(local, self.params.pop(name))

    def unfreeze(self, *names: str) -> None:
        """Make frozen parameters trainable again (back in ``params``)."""
        for name in names:
            module, local = self._owner(name)
            if local in module.frozen:
                self.params[name] = module.release(local)

    def set_frozen(self, names: Sequence[str]) -> None:
        """Freeze exactly ``names`` (the others trainable): how a saved model or a
        checkpoint, whose parameters may have frozen during training, is loaded into
        a model built from its first config."""
        names = list(names)
        for name in names:
            self._owner(name)
        self.unfreeze(*[n for n in self.frozen if n not in names])
        self.freeze(*names)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], backend: Any = None) -> Sequential:
        rest = {k: v for k, v in config.items() if k != "modules"}
        return cls(*(module_from_config(c) for c in config["modules"]), backend=backend,
                   **rest)

    @property
    def buffers(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in self.layers:
            out.update(m.buffers())
        for top in self.layers:
            for m in top.modules():
                out.update(m.fixed_buffers())
        return out

    def load_buffers(self, buffers: Mapping[str, Any]) -> None:
        known = {m.prefix + k for top in self.layers for m in top.modules()
                 if hasattr(m, "bn_param") for k in ("running_mean", "running_var")}
        known.update(self.frozen)
        unknown = sorted(set(buffers) - known)
        if unknown:
            raise InputError(f"Sequential has no buffers {', '.join(unknown)}")
        for m in self.layers:
            m.load_buffers(buffers, self.backend)
        for top in self.layers:
            for m in top.modules():
                m.load_fixed(buffers, self.backend)

    def set_mode(self, mode: str) -> None:
        super().set_mode(mode)
        for m in self.layers:
            m.set_mode(mode)

    # -- forward and backward --------------------------------------------------
    def loss(self, X: Any, y: Any = None):
        """Class scores, or the loss and its gradients.

        Parameters
        ----------
        X : array of shape (N, *input_shape)
            Host (NumPy) data is moved to the model's device.
        y : integer array of shape (N,), optional

        Returns
        -------
        scores : array of shape (N, classes)
            When ``y`` is None (test mode).
        loss, grads : 0-D array, dict
            Otherwise; ``grads[k]`` is the gradient for ``params[k]``.
        """
        p = self.device_params()
        X = self.inputs(X, self.dtype)
        if tuple(X.shape[1:]) != self.input_shape:
            raise InputError(f"Sequential.loss: X must have shape (N, "
                             f"{', '.join(map(str, self.input_shape))}), got "
                             f"{checks.shape_str(X.shape)}")
        self.set_mode("test" if y is None else "train")
        caches = []
        h = X
        for m in self.layers:
            h, cache = m.forward(h, p)
            caches.append(cache)
        if y is None:
            return h
        y = self.labels(y, X.shape[0])
        loss, d = softmax_loss(h, y, check_labels=False, label_smoothing=self.label_smoothing)
        grads: dict[str, Any] = {}
        for i in range(len(self.layers) - 1, -1, -1):
            d, g = self.layers[i].backward(d, caches[i], p, need_dx=i > 0)
            grads.update(g)
        loss = self.l2_penalty(loss, grads, [w for w in self.weights if w in self.params])
        return loss, grads

    # -- description -----------------------------------------------------------
    def summary(self) -> str:
        """A table of the layers, their output shapes and parameter counts."""
        rows = [("#", "layer", "output shape", "params")]
        rows.append(("", "input", checks.shape_str(self.input_shape), ""))
        for i, (m, shape) in enumerate(zip(self.layers, self.shapes, strict=True)):
            count = sum(math.prod(v.shape) for k, v in self.params.items()
                        if k.startswith(f"{i}."))
            rows.append((str(i), m.describe(), checks.shape_str(shape),
                         f"{count:,}" if count else ""))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        lines = [f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  "
                 f"{r[3]:>{widths[3]}}" for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append("-" * len(lines[0]))
        lines.append(f"{self.num_params():,} parameters; {dtype_name(self.dtype)} on the "
                     f"{self.backend.name} backend")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Sequential(input_shape={self.input_shape})\n" + self.summary()
