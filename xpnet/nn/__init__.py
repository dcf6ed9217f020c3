"""Models: the model protocol (and, built on the layers, composable modules)."""

from .model import MODES, Model, model_class, registered_models

__all__ = ["MODES", "Model", "model_class", "registered_models"]
