"""Models from modules: the model protocol, the modules and ``Sequential``.

The modules wrap the course's ``(out, cache)`` layer functions and own their
parameters and buffers; :class:`Sequential` composes them into a model that
the Solver, checkpoints, :func:`xpnet.load_model`, gradient checks and
``xpnet train`` take like the course's models.
"""

from .model import MODES, Model, model_class, registered_models
from .modules import (
    GELU,
    MODULE_KINDS,
    Affine,
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    GroupNorm,
    LayerNorm,
    MaxPool,
    Module,
    ReLU,
    Residual,
    Scale,
    SpatialBatchNorm,
    module_from_config,
)
from .sequential import Sequential

__all__ = [
    "GELU", "MODES", "MODULE_KINDS", "Affine", "BatchNorm", "Conv", "Dropout", "Flatten",
    "GlobalAvgPool", "GroupNorm", "LayerNorm", "MaxPool", "Model", "Module", "ReLU",
    "Residual", "Scale", "Sequential", "SpatialBatchNorm", "model_class", "module_from_config",
    "registered_models",
]
