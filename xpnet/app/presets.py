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
}

#: The accuracy recipe of the composed models.
_RECIPE: dict[str, Any] = {
    "update_rule": "sgd_momentum", "momentum": 0.9, "nesterov": True, "lr_decay": 1.0,
    "schedule": "onecycle", "warmup": 0.25, "augment": True, "label_smoothing": 0.1,
    "test_time_flip": True, "reg": 0.0, "weight_scale": 1e-2,
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
