"""xpnet: CS231n-style neural networks written once against the Array API.

The same layers, models, update rules and solver run on NumPy, CuPy, PyTorch
and ``array_api_strict`` arrays; see :func:`get_backend`. The course's modules
keep their names (``xpnet.layers``, ``xpnet.fast_layers``, ``xpnet.layer_utils``,
``xpnet.classifiers``, ``xpnet.optim``, ``xpnet.solver``, ``xpnet.gradient_check``,
``xpnet.data_utils``, ``xpnet.vis_utils``); the ``xpnet`` command lives in
``xpnet.app``.
"""

from ._fast import fast_paths_disabled, fast_paths_enabled
from ._version import __version__
from .backend import (
    Backend,
    RandomStream,
    available_backends,
    backend_of,
    get_backend,
    to_numpy,
)
from .checkpoint import load_model, save_model
from .classifiers.cnn import ThreeLayerConvNet
from .classifiers.fc_net import FullyConnectedNet, TwoLayerNet
from .errors import (
    BackendError,
    BackendMismatchError,
    CheckpointError,
    DataError,
    InputError,
    InputTypeError,
    MissingKeyError,
    RunError,
    TrainingDivergedError,
    XpnetError,
)
from .nn.model import Model
from .solver import Solver

__all__ = [
    "Backend",
    "BackendError",
    "BackendMismatchError",
    "CheckpointError",
    "DataError",
    "FullyConnectedNet",
    "InputError",
    "InputTypeError",
    "MissingKeyError",
    "RunError",
    "Model",
    "RandomStream",
    "Solver",
    "ThreeLayerConvNet",
    "TrainingDivergedError",
    "TwoLayerNet",
    "XpnetError",
    "__version__",
    "available_backends",
    "backend_of",
    "fast_paths_disabled",
    "fast_paths_enabled",
    "get_backend",
    "load_model",
    "save_model",
    "to_numpy",
]
