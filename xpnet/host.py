"""The host side of a training set that does not live on the device.

NumPy is the host format (as for files and data sets): when the Solver keeps
the training set on the host (``data_on_device=False``), it holds it here as
an (N, D) NumPy view and gathers each minibatch's rows on the host before one
transfer to the device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import dtype_name, to_numpy

__all__ = ["as_host", "gather_rows", "host_rows"]


def as_host(x: Any, dtype: Any = None) -> np.ndarray:
    """``x`` as a NumPy array on the host (in ``dtype``'s name when given)."""
    out = np.asarray(to_numpy(x))
    if dtype is not None and out.dtype != np.dtype(dtype_name(dtype)):
        out = out.astype(dtype_name(dtype))
    return out


def host_rows(x: np.ndarray) -> np.ndarray:
    """The (N, D) view of ``x``."""
    return np.reshape(x, (x.shape[0], -1))


def gather_rows(rows: np.ndarray, index: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The rows ``index`` (any backend's integer array) in the sample ``shape``."""
    return np.reshape(np.take(rows, to_numpy(index), axis=0), shape)
