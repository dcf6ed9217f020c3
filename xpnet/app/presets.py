"""Training presets for ``xpnet train``: named sets of default options.

A preset only supplies defaults: every option given on the command line
overrides it. Measured with ``benchmarks/accuracy.py`` on CIFAR-10 (NumPy
backend, seed 0, a 2-core CPU shared with other jobs):

``default``
    [512, 256] with batchnorm, Adam, lr 1e-3 decaying by 0.9 per epoch, 10
    epochs: 56.5% best validation, 52.8% test accuracy in 5.3 minutes.
``best``
    [1024, 1024, 512] with batchnorm and dropout (keep 0.7), Adam, lr 1e-3
    decaying by 0.92 per epoch, 30 epochs: 62.1% best validation, 59.4% test
    accuracy in 32 minutes (17 minutes with less competition for the CPU).
``cnn``
    ThreeLayerConvNet, 32 7x7 filters, hidden 500, Adam lr 1e-3 decaying by
    0.95 per epoch, batch 50, 5 epochs (the course's network, trained longer).
``airbench``
    The CIFAR-10 speed record's net and recipe (:mod:`xpnet.airbench`: widths
    64/256/256, batch 1024, 10 epochs, test-time augmentation level 2), for GPUs;
    the record reaches 94% in 3.8 s on an A100. Not measured here yet.
``airbench-muon``
    The current record's recipe (airbench94_muon: Muon for the filters, batch 2000,
    8 epochs; 94.01% in 2.59 s on an A100), for GPUs. Not measured here yet.
``airbench-cpu``
    The same recipe as ``airbench`` at widths 32/128/128, the tanh GELU, batch 256,
    9 epochs, for a 2-core CPU in under 30 minutes: sized from a measured step, not
    run on CIFAR-10 yet. One step of the whole recipe (augmentation, forward,
    backward, grouped update) took 0.68 s on this 2-core CPU with little else
    running (load 1.5), about 130 s per epoch of 49,000 images plus 11 s for the
    epoch's TTA-2 accuracy checks: 9 epochs and the final test in about 23 minutes.
"""

from __future__ import annotations

from typing import Any

from .._ops import checks

__all__ = ["PRESETS", "TRAINING_OPTIONS", "preset_options"]

#: The options of the optimization, with the values of the ``default`` preset.
TRAINING_OPTIONS: dict[str, Any] = {
    "update_rule": "adam",
    "learning_rate": 1e-3,
    "lr_decay": 0.9,
    "reg": 1e-3,
    "weight_scale": 1e-2,
    "epochs": 10,
    "batch_size": 200,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 0.0,
    "schedule": "none",
    "warmup": 0.0,
    "augment": False,
    "label_smoothing": 0.0,
    "test_time_flip": False,
    "test_time_augment": 0,
    "param_groups": [],
    "recipe": None,
}

#: The accuracy recipe of the composed models.
_RECIPE: dict[str, Any] = {
    "update_rule": "sgd_momentum", "momentum": 0.9, "nesterov": True, "lr_decay": 1.0,
    "schedule": "onecycle", "warmup": 0.25, "augment": True, "label_smoothing": 0.1,
    "test_time_flip": True, "reg": 0.0, "weight_scale": 1e-2,
}

#: The speed record's recipe (xpnet.airbench.airbench_solver_options): it sets the
#: rates and decay from the batch size (these are batch 1024's), the per-group rate
#: of the batchnorm shifts, the triangle schedule, alternating flips and
#: translations, lookahead and the whitening bias's freeze.
_AIRBENCH: dict[str, Any] = {
    "recipe": "airbench", "update_rule": "sgd_momentum", "momentum": 0.85, "nesterov": True,
    "learning_rate": 1.5, "weight_decay": 0.0153 * 3 / 23 / 0.15 / 1.5, "lr_decay": 1.0,
    "schedule": "triangle", "warmup": 0.0, "augment": True, "label_smoothing": 0.2,
    "test_time_flip": False, "test_time_augment": 2, "reg": 0.0, "weight_scale": 1e-2,
}

#: Each preset names its model (``--model``) and that model's options.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {
        "model": "fc", "hidden": [512, 256], "normalization": "batchnorm", "keep_ratio": 1.0,
        **TRAINING_OPTIONS,
    },
    "best": {
        "model": "fc", "hidden": [1024, 1024, 512], "normalization": "batchnorm",
        "keep_ratio": 0.7, **TRAINING_OPTIONS, "lr_decay": 0.92, "epochs": 30,
    },
    "cnn": {
        "model": "cnn", "num_filters": 32, "filter_size": 7, "hidden": [500],
        **TRAINING_OPTIONS, "weight_scale": 1e-3, "lr_decay": 0.95, "epochs": 5,
        "batch_size": 50,
    },
    "convnet": {
        "model": "convnet", "width": 16, **TRAINING_OPTIONS, **_RECIPE,
        "learning_rate": 0.05, "weight_decay": 5e-3, "epochs": 12, "batch_size": 128,
    },
    "resnet": {
        "model": "resnet", "width": 64, **TRAINING_OPTIONS, **_RECIPE,
        "learning_rate": 0.1, "weight_decay": 5e-3, "epochs": 20, "batch_size": 512,
    },
    "airbench": {
        "model": "airbench", "width": 64, "gelu": "none", **TRAINING_OPTIONS, **_AIRBENCH,
        "epochs": 10, "batch_size": 1024,
    },
    "airbench-cpu": {
        "model": "airbench", "width": 32, "gelu": "tanh", **TRAINING_OPTIONS, **_AIRBENCH,
        "epochs": 9, "batch_size": 256, "learning_rate": 0.375,
    },
    "airbench-muon": {
        "model": "airbench", "width": 64, "gelu": "none", **TRAINING_OPTIONS, **_AIRBENCH,
        "recipe": "airbench-muon", "schedule": "none", "learning_rate": 0.053 * 2000,
        "weight_decay": 0.004 / 0.15 / (0.053 * 2000), "epochs": 8, "batch_size": 2000,
    },
}


def preset_options(name: str) -> dict[str, Any]:
    """A copy of the options of preset ``name``.

    Raises
    ------
    InputError
        For an unknown preset.
    """
    checks.choice(name, tuple(PRESETS), "preset")
    return {k: (list(v) if isinstance(v, list) else v) for k, v in PRESETS[name].items()}
