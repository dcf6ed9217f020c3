"""The plain PyTorch training loops that xpnet is measured against.

Same networks as :class:`xpnet.FullyConnectedNet` (``{affine - [batchnorm] -
relu} x (L - 1) - affine - softmax``) and :class:`xpnet.ThreeLayerConvNet`
(``conv - relu - 2x2 max pool - affine - relu - affine - softmax``), same
initial scale (weights N(0, weight_scale^2), biases 0, gamma 1, beta 0), same
Adam hyperparameters and the same minibatching as the xpnet ``Solver``:
indices drawn uniformly with replacement on the device, rows gathered there,
losses kept on the device and fetched in bulk. Built from ``torch.nn`` modules
with autograd.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def fused_adam_kind(device: torch.device, dtype: torch.dtype) -> str:
    """'fused' when ``torch.optim.Adam(fused=True)`` steps here, else 'foreach'."""
    try:
        p = torch.nn.Parameter(torch.zeros(4, device=device, dtype=dtype))
        opt = torch.optim.Adam([p], lr=1e-3, fused=True)
        p.grad = torch.ones_like(p)
        opt.step()
        return "fused"
    except (RuntimeError, TypeError, ValueError):
        return "foreach"


def build_net(
    dims: Sequence[int], normalization: str | None, weight_scale: float,
    dtype: torch.dtype, device: torch.device, seed: int = 0,
) -> torch.nn.Sequential:
    """``Flatten - {Linear - [BatchNorm1d] - ReLU} x (L-1) - Linear``."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    layers: list[torch.nn.Module] = [torch.nn.Flatten()]
    for i in range(len(dims) - 1):
        lin = torch.nn.Linear(dims[i], dims[i + 1], dtype=dtype, device=device)
        with torch.no_grad():
            w = torch.randn(dims[i + 1], dims[i], generator=gen, dtype=dtype) * weight_scale
            lin.weight.copy_(w)
            lin.bias.zero_()
        layers.append(lin)
        if i < len(dims) - 2:
            if normalization == "batchnorm":
                # xpnet's momentum 0.9 keeps 90% of the running value; torch's 0.1 adds 10%
                layers.append(torch.nn.BatchNorm1d(dims[i + 1], eps=1e-5, momentum=0.1,
                                                   dtype=dtype, device=device))
            elif normalization is not None:
                raise ValueError(f"no reference for normalization {normalization!r}")
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def build_cnn(
    input_shape: Sequence[int], num_filters: int, filter_size: int, hidden: int,
    num_classes: int, weight_scale: float, dtype: torch.dtype, device: torch.device,
    seed: int = 0,
) -> torch.nn.Sequential:
    """``Conv2d - ReLU - MaxPool2d(2) - Flatten - Linear - ReLU - Linear``."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    c, h, w = input_shape
    conv = torch.nn.Conv2d(c, num_filters, filter_size, padding=(filter_size - 1) // 2,
                           dtype=dtype, device=device)
    pooled = num_filters * (h // 2) * (w // 2)
    fc1 = torch.nn.Linear(pooled, hidden, dtype=dtype, device=device)
    fc2 = torch.nn.Linear(hidden, num_classes, dtype=dtype, device=device)
    with torch.no_grad():
        for layer in (conv, fc1, fc2):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen, dtype=dtype)
                               * weight_scale)
            layer.bias.zero_()
    return torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                               fc1, torch.nn.ReLU(), fc2)


class _ChannelsLast(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last)


def build_convnet(in_channels: int, width: int, num_classes: int, dtype: torch.dtype,
                  device: torch.device, channels_last: bool = False, seed: int = 0
                  ) -> torch.nn.Sequential:
    """xpnet's ``convnet`` (xpnet/app/models.py): three stages of two 3x3 conv - BN -
    ReLU (width, 2 width, 4 width channels) each followed by 2x2 max pooling, then
    global average pooling and a Linear layer; torch's default initialization."""
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [_ChannelsLast()] if channels_last else []
    c = in_channels
    for stage in (1, 2, 4):
        for _ in range(2):
            layers += [torch.nn.Conv2d(c, stage * width, 3, padding=1, dtype=dtype,
                                       device=device),
                       torch.nn.BatchNorm2d(stage * width, dtype=dtype, device=device),
                       torch.nn.ReLU()]
            c = stage * width
        layers.append(torch.nn.MaxPool2d(2))
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
               torch.nn.Linear(c, num_classes, dtype=dtype, device=device)]
    net = torch.nn.Sequential(*layers)
    return net.to(memory_format=torch.channels_last) if channels_last else net


class TorchTrainer:
    """Adam training of :func:`build_net` on a data set held on ``device``.

    ``adam`` is ``'default'`` (``torch.optim.Adam`` with its default
    implementation choice), ``'fused'`` or ``'foreach'``.
    """

    def __init__(
        self, X: Any, y: Any, dims: Sequence[int] | None, normalization: str | None,
        weight_scale: float, batch_size: int, dtype: torch.dtype,
        device: torch.device, adam: str = "default", learning_rate: float = 1e-3,
        seed: int = 0, net: torch.nn.Module | None = None,
    ) -> None:
        self.device = device
        self.X = torch.as_tensor(X, device=device)
        if self.X.dtype != dtype:
            self.X = self.X.to(dtype)
        self.y = torch.as_tensor(y, device=device, dtype=torch.int64)
        self.batch_size = batch_size
        self.net = net if net is not None else build_net(dims, normalization, weight_scale,
                                                         dtype, device, seed)
        kwargs: dict[str, Any] = {}
        if adam == "fused":
            kwargs["fused"] = True
        elif adam == "foreach":
            kwargs["foreach"] = True
        self.opt = torch.optim.Adam(self.net.parameters(), lr=learning_rate,
                                    betas=(0.9, 0.999), eps=1e-8, **kwargs)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.pending: list[torch.Tensor] = []
        self.losses: list[float] = []

    def step(self) -> None:
        idx = torch.randint(0, self.X.shape[0], (self.batch_size,), generator=self.gen,
                            device=self.device)
        xb = self.X.index_select(0, idx)
        yb = self.y.index_select(0, idx)
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.net(xb), yb)
        loss.backward()
        self.opt.step()
        self.pending.append(loss.detach())

    def flush(self) -> None:
        """Fetch the pending losses in one transfer (this synchronizes)."""
        if self.pending:
            self.losses.extend(torch.stack(self.pending).cpu().tolist())
            self.pending = []

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def accuracy(self, X: Any, y: Any, num_samples: int | None = None,
                 batch_size: int = 100) -> float:
        """Fraction classified right, on a random subsample like the Solver's."""
        X = torch.as_tensor(X, device=self.device, dtype=self.X.dtype)
        y = torch.as_tensor(y, device=self.device, dtype=torch.int64)
        if num_samples is not None and X.shape[0] > num_samples:
            idx = torch.randint(0, X.shape[0], (num_samples,), generator=self.gen,
                                device=self.device)
            X, y = X.index_select(0, idx), y.index_select(0, idx)
        self.net.eval()
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        with torch.no_grad():
            for start in range(0, X.shape[0], batch_size):
                scores = self.net(X[start:start + batch_size])
                correct += (scores.argmax(dim=1) == y[start:start + batch_size]).sum()
        self.net.train()
        return float(correct) / X.shape[0]
