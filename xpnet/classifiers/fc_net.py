"""Fully-connected classifiers: ``TwoLayerNet`` and ``FullyConnectedNet``.

Architecture: ``{affine - [batch/layer norm] - relu - [dropout]} x (L - 1) -
affine - softmax``. Parameters live in ``self.params`` on the model's backend;
``loss(X, y=None)`` returns class scores at test time and ``(loss, grads)`` at
training time, with ``grads`` keyed like ``params``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._ops import checks
from ..backend import Backend, dtype_name, get_backend
from ..errors import InputError
from ..layer_utils import (
    affine_bn_relu_backward,
    affine_bn_relu_forward,
    affine_grads,
    affine_ln_relu_backward,
    affine_ln_relu_forward,
    affine_relu_backward,
    affine_relu_forward,
)
from ..layers import (
    affine_forward,
    dropout_backward,
    dropout_forward,
    softmax_loss,
)
from ..nn.model import Model

__all__ = ["FullyConnectedNet", "TwoLayerNet", "NORMALIZATIONS"]

NORMALIZATIONS = (None, "batchnorm", "layernorm")

_HIDDEN_FORWARD = {
    None: affine_relu_forward,
    "batchnorm": affine_bn_relu_forward,
    "layernorm": affine_ln_relu_forward,
}
_HIDDEN_BACKWARD = {
    None: affine_relu_backward,
    "batchnorm": affine_bn_relu_backward,
    "layernorm": affine_ln_relu_backward,
}


class FullyConnectedNet(Model):
    """A fully-connected network of any depth with ReLU, softmax loss and L2.

    Parameters
    ----------
    hidden_dims : sequence of int
        Size of each hidden layer.
    input_dim : int
        Features per input (inputs of shape (N, d1, ..., dk) are flattened).
    num_classes : int
    dropout_keep_ratio : float
        Probability of keeping a unit, in (0, 1]; 1 means no dropout.
    normalization : {None, 'batchnorm', 'layernorm'}
    reg : float
        L2 strength: the loss adds ``0.5 * reg * sum(W**2)`` over the weights.
    weight_scale : float
        Standard deviation of the initial weights (biases start at 0).
    dtype : dtype or str
        ``float32`` to train, ``float64`` for gradient checks.
    seed : int, optional
        Seeds the initial weights and makes dropout masks the same on every
        call (for gradient checks), as in CS231n.
    backend : str, module or Backend, optional
        Where the parameters live; default ``$XPNET_BACKEND`` or auto.
    """

    def __init__(
        self,
        hidden_dims: Sequence[int],
        input_dim: int = 3 * 32 * 32,
        num_classes: int = 10,
        dropout_keep_ratio: float = 1,
        normalization: str | None = None,
        reg: float = 0.0,
        weight_scale: float = 1e-2,
        dtype: Any = "float32",
        seed: int | None = None,
        *,
        backend: str | Backend | Any = None,
    ) -> None:
        caller = type(self).__name__
        self.normalization = checks.choice(normalization, NORMALIZATIONS, "normalization",
                                           caller)
        checks.keep_ratio(dropout_keep_ratio, "dropout_keep_ratio", caller)
        self.use_dropout = dropout_keep_ratio != 1
        checks.positive_int(input_dim, "input_dim", caller)
        checks.positive_int(num_classes, "num_classes", caller)
        for h in hidden_dims:
            checks.positive_int(h, "every entry of hidden_dims", caller)
        dims = [int(input_dim), *(int(h) for h in hidden_dims), int(num_classes)]
        self.reg = reg
        self.weight_scale = weight_scale
        self.seed = seed
        self.dropout_keep_ratio = dropout_keep_ratio
        self.num_layers = len(dims) - 1
        self.num_classes = int(num_classes)
        self.backend = get_backend(backend)
        self.dtype = self.backend.dtype(dtype)
        self.params: dict[str, Any] = {}
        self._init_params(dims, weight_scale, seed)

        self.dropout_param: dict[str, Any] = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": dropout_keep_ratio}
            if seed is not None:
                self.dropout_param["seed"] = seed
        self.bn_params: list[dict[str, Any]] = []
        if self.normalization == "batchnorm":
            self.bn_params = [{"mode": "train"} for _ in range(self.num_layers - 1)]
        elif self.normalization == "layernorm":
            self.bn_params = [{} for _ in range(self.num_layers - 1)]

    # -- construction --------------------------------------------------------
    def _init_params(self, dims: list[int], weight_scale: float, seed: int | None) -> None:
        xp, be = self.backend.xp, self.backend
        for i in range(self.num_layers):
            layer_seed = None if seed is None else (seed, i)
            self.params[f"W{i + 1}"] = be.random_normal(
                (dims[i], dims[i + 1]), std=weight_scale, dtype=self.dtype, seed=layer_seed)
            self.params[f"b{i + 1}"] = xp.zeros((dims[i + 1],), dtype=self.dtype,
                                                device=be.device)
            if self.normalization is not None and i < self.num_layers - 1:
                self.params[f"gamma{i + 1}"] = xp.ones((dims[i + 1],), dtype=self.dtype,
                                                       device=be.device)
                self.params[f"beta{i + 1}"] = xp.zeros((dims[i + 1],), dtype=self.dtype,
                                                       device=be.device)

    # -- the model protocol ----------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """What rebuilds this network (see :class:`xpnet.nn.Model`)."""
        dims = [self.params[f"W{i}"].shape[1] for i in range(1, self.num_layers)]
        return {"hidden_dims": [int(d) for d in dims],
                "input_dim": int(self.params["W1"].shape[0]),
                "num_classes": self.num_classes,
                "dropout_keep_ratio": self.dropout_keep_ratio,
                "normalization": self.normalization, "reg": self.reg,
                "weight_scale": self.weight_scale, "dtype": dtype_name(self.dtype),
                "seed": self.dropout_param.get("seed") if self.use_dropout else self.seed}

    @property
    def buffers(self) -> dict[str, Any]:
        """Batchnorm running statistics: ``running_mean{i}``, ``running_var{i}``."""
        out = {}
        if self.normalization == "batchnorm":
            for i, bn_param in enumerate(self.bn_params, start=1):
                for key in ("running_mean", "running_var"):
                    if bn_param.get(key) is not None:
                        out[f"{key}{i}"] = bn_param[key]
        return out

    def load_buffers(self, buffers: Mapping[str, Any]) -> None:
        names = {f"{key}{i}": (i, key) for i in range(1, len(self.bn_params) + 1)
                 for key in ("running_mean", "running_var")} \
            if self.normalization == "batchnorm" else {}
        for name, value in buffers.items():
            if name not in names:
                raise InputError(f"{type(self).__name__} has no buffer {name!r}; it has "
                                 f"{', '.join(names) or 'none'}")
            i, key = names[name]
            width = self.params[f"gamma{i}"].shape[0]
            if tuple(value.shape) != (width,):
                raise InputError(f"buffer {name} must have shape ({width},), got "
                                 f"{tuple(value.shape)}")
            # a copy: batchnorm updates its running statistics in place
            self.bn_params[i - 1][key] = self.backend.xp.asarray(self.backend.asarray(value),
                                                                 copy=True)

    def set_mode(self, mode: str) -> None:
        """'train' or 'test': dropout and batchnorm behaviour."""
        super().set_mode(mode)
        if self.use_dropout:
            self.dropout_param["mode"] = mode
        if self.normalization == "batchnorm":
            for bn_param in self.bn_params:
                bn_param["mode"] = mode

    # -- forward and backward --------------------------------------------------
    def loss(self, X: Any, y: Any = None):
        """Class scores, or the loss and its gradients.

        Parameters
        ----------
        X : array of shape (N, d1, ..., dk)
            Host (NumPy) data is moved to the model's device.
        y : integer array of shape (N,), optional

        Returns
        -------
        scores : array of shape (N, C)
            When ``y`` is None (test mode).
        loss, grads : 0-D array, dict
            Otherwise; ``grads[k]`` is the gradient for ``params[k]``.
        """
        params = self.device_params()
        X = self.inputs(X, params["W1"].dtype)
        self.set_mode("test" if y is None else "train")

        hidden = _HIDDEN_FORWARD[self.normalization]
        caches = []
        h = X
        for i in range(1, self.num_layers):
            W, b = params[f"W{i}"], params[f"b{i}"]
            if self.normalization is None:
                h, cache = hidden(h, W, b)
            else:
                h, cache = hidden(h, W, b, params[f"gamma{i}"], params[f"beta{i}"],
                                  self.bn_params[i - 1])
            drop_cache = None
            if self.use_dropout:
                h, drop_cache = dropout_forward(h, self.dropout_param)
            caches.append((cache, drop_cache))
        last = self.num_layers
        scores, out_cache = affine_forward(h, params[f"W{last}"], params[f"b{last}"])
        if y is None:
            return scores

        y = self.labels(y, X.shape[0])
        loss, dscores = softmax_loss(scores, y, check_labels=False,
                                     label_smoothing=self.label_smoothing)
        grads: dict[str, Any] = {}
        # Layer 1 sees X, whose gradient nothing needs: it skips computing it.
        dh, grads[f"W{last}"], grads[f"b{last}"] = affine_grads(dscores, out_cache,
                                                               need_dx=last > 1)
        backward = _HIDDEN_BACKWARD[self.normalization]
        for i in range(self.num_layers - 1, 0, -1):
            cache, drop_cache = caches[i - 1]
            if drop_cache is not None:
                dh = dropout_backward(dh, drop_cache)
            if self.normalization is None:
                dh, grads[f"W{i}"], grads[f"b{i}"] = backward(dh, cache, need_dx=i > 1)
            else:
                dh, grads[f"W{i}"], grads[f"b{i}"], grads[f"gamma{i}"], grads[f"beta{i}"] = (
                    backward(dh, cache, need_dx=i > 1))

        loss = self.l2_penalty(loss, grads, [f"W{i}" for i in range(1, self.num_layers + 1)])
        return loss, grads

    def __repr__(self) -> str:
        dims = [self.params[f"W{i}"].shape[1] for i in range(1, self.num_layers)]
        return (f"{type(self).__name__}(hidden_dims={dims}, normalization="
                f"{self.normalization!r}, backend={self.backend.name!r})")


class TwoLayerNet(FullyConnectedNet):
    """``affine - relu - affine - softmax``, the CS231n two-layer network.

    Parameters are ``W1, b1, W2, b2``. Unlike :class:`FullyConnectedNet` it
    defaults to float64, like the CS231n class whose notebooks check its
    gradients to 1e-8; pass ``dtype='float32'`` to train faster.
    """

    def __init__(
        self,
        input_dim: int = 3 * 32 * 32,
        hidden_dim: int = 100,
        num_classes: int = 10,
        weight_scale: float = 1e-3,
        reg: float = 0.0,
        *,
        dtype: Any = "float64",
        seed: int | None = None,
        backend: str | Backend | Any = None,
    ) -> None:
        super().__init__([hidden_dim], input_dim=input_dim, num_classes=num_classes,
                         reg=reg, weight_scale=weight_scale, dtype=dtype, seed=seed,
                         backend=backend)

    @property
    def config(self) -> dict[str, Any]:
        """What rebuilds this network (see :class:`xpnet.nn.Model`)."""
        return {"input_dim": int(self.params["W1"].shape[0]),
                "hidden_dim": int(self.params["W1"].shape[1]),
                "num_classes": self.num_classes, "weight_scale": self.weight_scale,
                "reg": self.reg, "dtype": dtype_name(self.dtype), "seed": self.seed}
