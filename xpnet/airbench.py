"""The CIFAR-10 speed record's network and training recipe, from xpnet's parts.

Keller Jordan's airbench94 (github.com/KellerJordan/cifar10-airbench, MIT;
arXiv 2404.00498) reaches 94% test accuracy in about 10 epochs with

* a frozen 2x2 patch-whitening convolution (24 filters: the eigenvectors of the
  training patches' covariance and their negatives) whose bias trains for 3
  epochs, then GELU;
* three groups of conv - maxpool 2 - batchnorm - GELU - conv - batchnorm - GELU
  (64, 256, 256 channels), convolutions without bias and identity ("dirac")
  initialized, batchnorm without scale (momentum 0.6, eps 1e-12);
* maxpool 3, a linear head without bias, logits times 1/9;
* Nesterov SGD (momentum 0.85) with the batchnorm shifts at 64x the learning
  rate, the triangle schedule (0.2 -> 1 at 23% -> 0.07), label smoothing 0.2;
* random translation by 2 pixels (reflection) and alternating flips;
* lookahead every 5 steps (decay ``0.95**5 (t/T)**3``);
* test-time augmentation level 2 (mirror and one-pixel translations).

:func:`airbench_net` builds the network; :func:`airbench_solver_options` the
Solver's arguments (update rule, per-group configs, schedule, augmentation,
callbacks, test-time augmentation) and :func:`prepare` the whitening
initialization from the training images. The hyperparameters are the record's,
translated to xpnet's conventions: xpnet's losses average over the batch (the
record sums), and its weight decay is decoupled and outside the momentum, so
``learning_rate = 11.5 / 1024 / (1 + 1 / (1 - 0.85)) * batch_size`` and the
decay per step ``lr * wd`` equals the record's steady-state decay
``wd_torch / (1 - momentum)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from . import schedules
from ._ops import checks
from .augment import AlternatingFlip, Compose, RandomTranslate
from .ema import Lookahead, record_decay
from .errors import InputError
from .nn import (
    GELU,
    Affine,
    Conv,
    Flatten,
    MaxPool,
    Scale,
    Sequential,
    SpatialBatchNorm,
)
from .nn.init import init_whitening
from .recipe import Callbacks, FreezeAfter

__all__ = ["MUON_HEAD", "RECORD", "airbench_layers", "airbench_muon_solver_options",
           "airbench_net", "airbench_solver_options", "prepare"]

#: the record's hyperparameters (airbench94), in its own units
RECORD: dict[str, Any] = {
    "widths": (64, 256, 256), "batch_size": 1024, "epochs": 10,
    "lr_per_1024": 11.5, "momentum": 0.85, "weight_decay_per_1024": 0.0153,
    "bias_scaler": 64.0, "label_smoothing": 0.2, "whiten_bias_epochs": 3,
    "translate": 2, "batchnorm_momentum": 0.6, "batchnorm_eps": 1e-12,
    "scaling_factor": 1 / 9, "tta_level": 2, "lookahead_every": 5,
    "schedule": (0.2, 0.23, 0.07), "whiten_eps": 5e-4, "whiten_images": 5000,
}


def airbench_layers(widths: Sequence[int] = (64, 256, 256), in_channels: int = 3,
                    num_classes: int = 10, gelu: str = "none",
                    batchnorm_momentum: float = 0.6, batchnorm_eps: float = 1e-12,
                    scaling_factor: float = 1 / 9, head_std: float | None = None) -> list:
    """The record's layers for images of ``in_channels`` channels (see the module).

    Initial weights follow PyTorch's defaults, as the record keeps them: std
    ``1 / sqrt(3 fan_in)`` for the convolutions (then dirac) and the head (or
    ``head_std``: airbench94_muon's head has std 1 and scale 1/256).
    """
    widths = [checks.positive_int(w, "every width", "airbench_layers") for w in widths]
    if len(widths) != 3:
        raise InputError(f"airbench_layers: three widths (one per group), got {widths}")
    whiten = 2 * in_channels * 2 * 2

    def conv(c_in: int, c_out: int) -> Conv:
        return Conv(c_out, bias=False, init="dirac", weight_scale=1 / math.sqrt(3 * 9 * c_in))

    def bn() -> SpatialBatchNorm:
        return SpatialBatchNorm(momentum=batchnorm_momentum, eps=batchnorm_eps, scale=False)

    layers: list = [Conv(whiten, size=2, pad=0), GELU(gelu)]
    c = whiten
    for w in widths:
        layers += [conv(c, w), MaxPool(2), bn(), GELU(gelu), conv(w, w), bn(), GELU(gelu)]
        c = w
    return [*layers, MaxPool(3), Flatten(),
            Affine(num_classes, bias=False,
                   weight_scale=1 / math.sqrt(3 * c) if head_std is None else head_std),
            Scale(scaling_factor)]


def airbench_net(widths: Sequence[int] = (64, 256, 256), *,
                 input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10,
                 gelu: str = "none", label_smoothing: float = 0.2,
                 dtype: Any = "float32", seed: int | None = None, backend: Any = None,
                 **layer_options: Any) -> Sequential:
    """The record's network as a :class:`~xpnet.nn.Sequential`, its whitening filters
    (``"0.W"``) frozen; call :func:`prepare` with training images before training."""
    layers = airbench_layers(widths, input_shape[0], num_classes, gelu, **layer_options)
    return Sequential(*layers, input_shape=tuple(input_shape), label_smoothing=label_smoothing,
                      dtype=dtype, seed=seed, backend=backend, frozen=["0.W"])


def prepare(model: Sequential, X_train: Any, images: int = 5000, eps: float = 5e-4) -> None:
    """The whitening filters from the first ``images`` training images (the record's)."""
    n = min(checks.positive_int(images, "images", "prepare"), int(X_train.shape[0]))
    init_whitening(model, X_train[:n, ...], layer=0, eps=eps)


def _is_norm_shift(name: str, w: Any) -> bool:
    return name.endswith(".beta")


def airbench_solver_options(batch_size: int = 1024, epochs: int = 10, *,
                            lr_per_1024: float = 11.5, momentum: float = 0.85,
                            weight_decay_per_1024: float = 0.0153, bias_scaler: float = 64.0,
                            whiten_bias_epochs: int = 3, translate: int = 2,
                            flip: bool = True, lookahead_every: int | None = 5,
                            schedule: tuple[float, float, float] = (0.2, 0.23, 0.07),
                            tta_level: int = 2,
                            callback: Callable[[Any, str], None] | None = None
                            ) -> dict[str, Any]:
    """Keyword arguments for :class:`~xpnet.solver.Solver` that train
    :func:`airbench_net` with the record's recipe (see the module docstring).

    Returns
    -------
    dict
        ``update_rule``, ``optim_config``, ``param_groups``, ``lr_schedule``,
        ``augment``, ``callback`` (the whitening bias's freeze, then ``callback``),
        ``after_step`` (the lookahead), ``test_time_augment``, ``keep_best`` (False:
        the run ends with the averaged weights of its last step, as the record does),
        ``batch_size``, ``num_epochs``.
    """
    batch_size = checks.positive_int(batch_size, "batch_size", "airbench_solver_options")
    kilostep = 1 + 1 / (1 - momentum)  # the record's Nesterov step scale
    lr = lr_per_1024 / 1024 / kilostep * batch_size
    # the record's decay per step, wd_torch = wd * batch / (1024 kilostep), acts through
    # the momentum (x 1 / (1 - momentum) in steady state); xpnet's is decoupled: lr * wd
    wd_torch = weight_decay_per_1024 * batch_size / (1024 * kilostep)
    wd = wd_torch / (1 - momentum) / lr
    start, peak, end = schedule
    augment = [AlternatingFlip()] if flip else []
    if translate:
        augment.append(RandomTranslate(translate))
    lookahead = Lookahead(every=lookahead_every, decay=record_decay) if lookahead_every \
        else None
    return {
        "update_rule": "sgd_momentum",
        "optim_config": {"learning_rate": lr, "momentum": momentum, "nesterov": True,
                         "weight_decay": wd},
        "param_groups": [{"params": _is_norm_shift, "learning_rate": lr * bias_scaler,
                          "weight_decay": wd / bias_scaler}],
        "lr_schedule": schedules.Triangle(start, peak, end),
        "augment": Compose(*augment) if augment else None,
        "callback": Callbacks(FreezeAfter("0.b", whiten_bias_epochs), callback),
        "after_step": lookahead.after_step if lookahead is not None else None,
        "test_time_augment": tta_level,
        "keep_best": False,
        "batch_size": batch_size,
        "num_epochs": checks.positive_int(epochs, "epochs", "airbench_solver_options"),
    }


#: the head of airbench94_muon: std-1 weights, logits divided by the 256 features
MUON_HEAD: dict[str, float] = {"head_std": 1.0, "scaling_factor": 1 / 256}


def _is_filter_bank(name: str, w: Any) -> bool:
    return w.ndim == 4


def airbench_muon_solver_options(batch_size: int = 2000, epochs: int = 8, *,
                                 filter_lr: float = 0.24, filter_momentum: float = 0.6,
                                 ns_steps: int = 3, bias_lr_per_image: float = 0.053,
                                 head_lr_per_image: float = 0.67, momentum: float = 0.85,
                                 weight_decay_per_image: float = 2e-6,
                                 whiten_bias_epochs: int = 3, translate: int = 2,
                                 tta_level: int = 2,
                                 callback: Callable[[Any, str], None] | None = None
                                 ) -> dict[str, Any]:
    """Solver arguments of the current record, airbench94_muon (94.01% in 2.59 s on an
    A100): Muon for the filter banks (momentum 0.6, 3 Newton-Schulz steps, weights
    normalized), Nesterov SGD for the shifts, the whitening bias and the head, the
    learning rates decaying linearly to 0, no lookahead. Train
    ``airbench_net(..., **MUON_HEAD)`` with it.

    Differences from the record: xpnet has one schedule for every group, so the
    whitening bias follows the others' decay until it freezes after
    ``whiten_bias_epochs`` (the record decays its rate to 0 over those epochs); the
    record's summed loss and coupled decay are translated as in
    :func:`airbench_solver_options` (rates per image times the batch).
    """
    batch_size = checks.positive_int(batch_size, "batch_size", "airbench_muon_solver_options")
    bias_lr = bias_lr_per_image * batch_size
    head_lr = head_lr_per_image * batch_size
    wd_torch = weight_decay_per_image * batch_size  # lr * (wd / lr) per step, coupled

    def decay(lr: float) -> float:  # xpnet's decoupled wd with the same steady-state pull
        return wd_torch / (1 - momentum) / lr

    augment = Compose(AlternatingFlip(), RandomTranslate(translate)) if translate else \
        AlternatingFlip()
    return {
        "update_rule": "sgd_momentum",
        "optim_config": {"learning_rate": bias_lr, "momentum": momentum, "nesterov": True,
                         "weight_decay": decay(bias_lr)},
        "param_groups": [
            {"params": _is_filter_bank, "update_rule": "muon", "learning_rate": filter_lr,
             "momentum": filter_momentum, "nesterov": True, "ns_steps": ns_steps,
             "normalize": True, "weight_decay": 0.0},
            {"params": lambda name, w: w.ndim == 2, "learning_rate": head_lr,
             "weight_decay": decay(head_lr)},
        ],
        "lr_schedule": schedules.PiecewiseLinear(((0.0, 1.0), (1.0, 0.0))),
        "augment": augment,
        "callback": Callbacks(FreezeAfter("0.b", whiten_bias_epochs), callback),
        "after_step": None,
        "test_time_augment": tta_level,
        "keep_best": False,
        "batch_size": batch_size,
        "num_epochs": checks.positive_int(epochs, "epochs", "airbench_muon_solver_options"),
    }
