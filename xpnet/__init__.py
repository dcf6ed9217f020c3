"""xpnet: CS231n-style neural networks written once against the Array API.

The same layers, models, update rules and solver run on NumPy, CuPy, PyTorch
and ``array_api_strict`` arrays; see :func:`get_backend`.
"""

from .backend import (
    Backend,
    BackendError,
    BackendMismatchError,
    available_backends,
    backend_of,
    get_backend,
    to_numpy,
)
from .classifiers.fc_net import FullyConnectedNet, TwoLayerNet
from .solver import Solver, TrainingDivergedError

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendError",
    "BackendMismatchError",
    "FullyConnectedNet",
    "Solver",
    "TrainingDivergedError",
    "TwoLayerNet",
    "__version__",
    "available_backends",
    "backend_of",
    "get_backend",
    "to_numpy",
]
