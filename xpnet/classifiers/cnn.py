"""The course's convolutional classifier: ``ThreeLayerConvNet``.

Architecture: ``conv - relu - 2x2 max pool - affine - relu - affine - softmax``,
with parameters ``W1, b1`` (the filters), ``W2, b2`` (the hidden affine layer)
and ``W3, b3`` (the scores), on the model's backend. ``loss(X, y=None)``
returns scores at test time and ``(loss, grads)`` at training time, like the
fully-connected models, and it implements the model protocol, so the
Solver, checkpoints, run folders and :func:`xpnet.load_model` take it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._ops import checks
from ..backend import Backend, dtype_name, get_backend
from ..errors import InputError
from ..layer_utils import (
    affine_relu_backward,
    affine_relu_forward,
    conv_relu_pool_backward,
    conv_relu_pool_forward,
)
from ..layers import affine_backward, affine_forward, softmax_loss
from ..nn.model import Model

__all__ = ["ThreeLayerConvNet"]

_POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


class ThreeLayerConvNet(Model):
    """``conv - relu - 2x2 max pool - affine - relu - affine - softmax``.

    Parameters
    ----------
    input_dim : (C, H, W)
        Shape of one input.
    num_filters : int
        Filters of the convolutional layer.
    filter_size : int
        Height and width of the filters; the convolution has stride 1 and
        padding ``(filter_size - 1) // 2`` (an odd size keeps H and W).
    hidden_dim : int
        Units of the hidden affine layer.
    num_classes : int
    weight_scale : float
        Standard deviation of the initial weights (biases start at 0).
    reg : float
        L2 strength: the loss adds ``0.5 * reg * sum(W**2)`` over W1, W2, W3,
        read from ``self.reg`` at each call.
    dtype : dtype or str
        ``float32`` to train, ``float64`` for gradient checks.
    seed : int, optional
        Seeds the initial weights.
    backend : str, module or Backend, optional
        Where the parameters live; default ``$XPNET_BACKEND`` or auto.
    """

    def __init__(
        self,
        input_dim: Sequence[int] = (3, 32, 32),
        num_filters: int = 32,
        filter_size: int = 7,
        hidden_dim: int = 100,
        num_classes: int = 10,
        weight_scale: float = 1e-3,
        reg: float = 0.0,
        dtype: Any = "float32",
        *,
        seed: int | None = None,
        backend: str | Backend | Any = None,
    ) -> None:
        caller = type(self).__name__
        if len(tuple(input_dim)) != 3:
            raise InputError(f"{caller}: input_dim must be (C, H, W), got {tuple(input_dim)}")
        c, h, w = (checks.positive_int(d, "every entry of input_dim", caller)
                   for d in input_dim)
        self.input_dim = (c, h, w)
        self.num_filters = checks.positive_int(num_filters, "num_filters", caller)
        self.filter_size = checks.positive_int(filter_size, "filter_size", caller)
        self.hidden_dim = checks.positive_int(hidden_dim, "hidden_dim", caller)
        self.num_classes = checks.positive_int(num_classes, "num_classes", caller)
        self.weight_scale = weight_scale
        self.reg = reg
        self.seed = seed
        self.conv_param = {"stride": 1, "pad": (self.filter_size - 1) // 2}
        self.pool_param = dict(_POOL)
        pooled = [self._pooled(size, axis, caller) for size, axis in ((h, "H"), (w, "W"))]
        self.backend = get_backend(backend)
        self.dtype = self.backend.dtype(dtype)
        shapes = {
            "W1": (self.num_filters, c, self.filter_size, self.filter_size),
            "W2": (self.num_filters * pooled[0] * pooled[1], self.hidden_dim),
            "W3": (self.hidden_dim, self.num_classes),
        }
        be, xp = self.backend, self.backend.xp
        self.params: dict[str, Any] = {}
        for i, (name, shape) in enumerate(shapes.items(), start=1):
            self.params[name] = be.random_normal(shape, std=weight_scale, dtype=self.dtype,
                                                 seed=None if seed is None else (seed, i))
            self.params[f"b{i}"] = xp.zeros((shape[0] if i == 1 else shape[1],),
                                            dtype=self.dtype, device=be.device)

    def _pooled(self, size: int, axis: str, caller: str) -> int:
        """The size after the convolution and the 2x2 pooling, or a clear error."""
        conv = size + 2 * self.conv_param["pad"] - self.filter_size + 1
        if conv < 2 or conv % 2:
            raise InputError(
                f"{caller}: with filter_size {self.filter_size} the convolution makes {axis} "
                f"{conv}, which 2x2 pooling with stride 2 cannot tile; use an odd "
                "filter_size or an input of even size")
        return conv // 2

    @property
    def config(self) -> dict[str, Any]:
        """What rebuilds this network (see :class:`xpnet.nn.Model`)."""
        return {"input_dim": list(self.input_dim), "num_filters": self.num_filters,
                "filter_size": self.filter_size, "hidden_dim": self.hidden_dim,
                "num_classes": self.num_classes, "weight_scale": self.weight_scale,
                "reg": self.reg, "dtype": dtype_name(self.dtype), "seed": self.seed}

    def loss(self, X: Any, y: Any = None):
        """Class scores, or the loss and its gradients.

        Parameters
        ----------
        X : array of shape (N, C, H, W)
            Host (NumPy) data is moved to the model's device.
        y : integer array of shape (N,), optional

        Returns
        -------
        scores : array of shape (N, num_classes)
            When ``y`` is None.
        loss, grads : 0-D array, dict
            Otherwise; ``grads[k]`` is the gradient for ``params[k]``.
        """
        p = self.device_params()
        X = self.inputs(X, p["W1"].dtype)
        if X.ndim != 4 or tuple(X.shape[1:]) != self.input_dim:
            raise InputError(f"{type(self).__name__}.loss: X must have shape (N, "
                             f"{', '.join(map(str, self.input_dim))}), got "
                             f"{checks.shape_str(X.shape)}")
        self.set_mode("test" if y is None else "train")
        h1, cache1 = conv_relu_pool_forward(X, p["W1"], p["b1"], self.conv_param,
                                            self.pool_param)
        h2, cache2 = affine_relu_forward(h1, p["W2"], p["b2"])
        scores, cache3 = affine_forward(h2, p["W3"], p["b3"])
        if y is None:
            return scores

        y = self.labels(y, X.shape[0])
        loss, dscores = softmax_loss(scores, y, check_labels=False,
                                     label_smoothing=self.label_smoothing)
        grads: dict[str, Any] = {}
        dh2, grads["W3"], grads["b3"] = affine_backward(dscores, cache3)
        dh1, grads["W2"], grads["b2"] = affine_relu_backward(dh2, cache2)
        # Layer 1 sees X, whose gradient nothing needs: it skips computing it.
        _, grads["W1"], grads["b1"] = conv_relu_pool_backward(dh1, cache1, need_dx=False)
        loss = self.l2_penalty(loss, grads, ["W1", "W2", "W3"])
        return loss, grads

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(input_dim={self.input_dim}, num_filters="
                f"{self.num_filters}, filter_size={self.filter_size}, hidden_dim="
                f"{self.hidden_dim}, backend={self.backend.name!r})")
