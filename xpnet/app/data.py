"""Data sets for ``xpnet train``: CIFAR-10, or scikit-learn's digits offline.

:func:`load_dataset` returns the train/validation/test splits as host (NumPy)
arrays together with a JSON-ready description of where they came from, which
a run folder records so that ``--resume`` reloads exactly the same data.

* ``cifar10``: :func:`xpnet.data_utils.get_CIFAR10_data` (mean image
  subtracted), then divided by the training set's standard deviation.
* ``digits``: ``sklearn.datasets.load_digits`` (1797 8x8 grey images that
  ship with scikit-learn, so no download), split with a fixed permutation and
  standardized per feature with the training statistics.
* ``auto``: CIFAR-10 when it is found (or downloaded), else digits with a
  one-line notice.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import data_utils
from .._ops import checks
from ..errors import DataError, InputError

__all__ = [
    "DATASETS",
    "DOWNLOAD_TIMEOUT",
    "Dataset",
    "load_cifar10",
    "load_dataset",
    "load_digits",
]

DATASETS = ("auto", "cifar10", "digits")
#: Seconds to wait for the CIFAR-10 server before falling back (auto) or failing.
DOWNLOAD_TIMEOUT = 10.0
#: Default split sizes: (train, validation, test).
CIFAR10_SPLITS = (49_000, 1_000, 10_000)
DIGITS_SPLITS = (1_197, 300, 300)
_DIGITS_SPLIT_SEED = 0


@dataclass
class Dataset:
    """Splits on the host plus a description of their source.

    Attributes
    ----------
    data : dict
        ``X_train, y_train, X_val, y_val, X_test, y_test`` (float32 / int64).
    source : dict
        JSON-ready: ``name`` ('cifar10' or 'digits'), sizes, preprocessing and,
        for CIFAR-10, the ``path`` of the batches folder.
    notice : str or None
        A one-line message for the user (the offline fallback), if any.
    """

    data: dict[str, np.ndarray]
    source: dict[str, Any]
    notice: str | None = field(default=None)

    @property
    def name(self) -> str:
        return self.source["name"]

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one input: (3, 32, 32) for CIFAR-10, (1, 8, 8) for digits."""
        return tuple(self.source["image_shape"])

    @property
    def input_dim(self) -> int:
        return int(np.prod(self.image_shape))


def _sizes(requested: tuple[int | None, int | None, int | None],
           defaults: tuple[int, int, int]) -> tuple[int, int, int]:
    sizes = tuple(d if r is None else r for r, d in zip(requested, defaults, strict=True))
    return tuple(checks.positive_int(value, name) for name, value in  # type: ignore[return-value]
                 zip(("--num-train", "--num-val", "--num-test"), sizes, strict=True))


def _scale_by_std(data: dict[str, np.ndarray]) -> float:
    """Divide every X split by the training set's standard deviation (in place)."""
    X = data["X_train"].reshape(len(data["X_train"]), -1)
    total = 0.0
    for start in range(0, len(X), 4096):  # float64 sums without a float64 copy of X
        chunk = X[start:start + 4096]
        total += float(np.einsum("ij,ij->", chunk, chunk, dtype=np.float64))
    mean = float(X.mean(dtype=np.float64))
    std = float(np.sqrt(max(total / X.size - mean * mean, 0.0))) or 1.0
    for key in ("X_train", "X_val", "X_test"):
        data[key] /= np.float32(std)
    return std


def load_cifar10(data_dir: str | os.PathLike | None = None, download: bool = True,
                 sizes: tuple[int | None, int | None, int | None] = (None, None, None),
                 progress: bool = True) -> Dataset:
    """CIFAR-10 from ``data_dir`` (downloaded there if allowed), standardized.

    Raises
    ------
    DataError
        When the data is missing and cannot be downloaded, or is damaged.
    InputError
        For split sizes that are not positive or exceed the data.
    """
    num_train, num_val, num_test = _sizes(sizes, CIFAR10_SPLITS)
    folder = data_utils.find_or_fetch_cifar10(data_dir, download=download, progress=progress,
                                              timeout=DOWNLOAD_TIMEOUT)
    data = data_utils.get_CIFAR10_data(num_train, num_val, num_test, subtract_mean=True,
                                       root=folder, download=False)
    std = _scale_by_std(data)
    source = {
        "name": "cifar10",
        "path": str(Path(folder).resolve()),
        "num_train": num_train, "num_val": num_val, "num_test": num_test,
        "image_shape": [3, 32, 32],
        "preprocessing": f"mean image subtracted, divided by the pixel std {std:.4f}",
    }
    return Dataset(data, source)


def _digits_file() -> Path | None:
    """scikit-learn's ``digits.csv.gz``, located without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits as ``(X (1797, 64) float, y (1797,) int)``.

    Reads the file that ``sklearn.datasets.load_digits`` reads, directly: that
    skips importing scikit-learn and SciPy (seconds). Falls back to
    ``load_digits`` itself when the file is not where it used to be.
    """
    path = _digits_file()
    if path is not None:
        try:
            table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        except (OSError, ValueError):
            table = None
        if table is not None and table.shape == (1797, 65):
            return table[:, :-1], table[:, -1].astype(np.int64)
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise DataError("the digits data set needs scikit-learn; install it with "
                        "pip install \"xpnet[digits]\"") from None
    return sk_load_digits(return_X_y=True)


def load_digits(sizes: tuple[int | None, int | None, int | None] = (None, None, None)
                ) -> Dataset:
    """scikit-learn's handwritten digits, split and standardized.

    The 1797 images are permuted with a fixed seed (the split never depends on
    ``--seed``), cut into train / validation / test, and every feature is
    standardized with the training mean and standard deviation.

    Raises
    ------
    DataError
        When scikit-learn is not installed.
    InputError
        When the split sizes do not fit in 1797 images.
    """
    num_train, num_val, num_test = _sizes(sizes, DIGITS_SPLITS)
    X, y = _digits_arrays()
    if num_train + num_val + num_test > len(X):
        raise InputError(f"--num-train + --num-val + --num-test must be at most {len(X)} for "
                         f"the digits data set, got {num_train} + {num_val} + {num_test}")
    order = np.random.default_rng(_DIGITS_SPLIT_SEED).permutation(len(X))
    X = X[order].astype(np.float32).reshape(-1, 1, 8, 8)  # one grey channel
    y = y[order].astype(np.int64)
    stops = np.cumsum([num_train, num_val, num_test])
    data = {
        "X_train": X[:stops[0]], "y_train": y[:stops[0]],
        "X_val": X[stops[0]:stops[1]], "y_val": y[stops[0]:stops[1]],
        "X_test": X[stops[1]:stops[2]], "y_test": y[stops[1]:stops[2]],
    }
    mean = data["X_train"].mean(axis=0)
    std = data["X_train"].std(axis=0)
    std[std == 0] = 1.0  # pixels that are blank in every training image
    for key in ("X_train", "X_val", "X_test"):
        data[key] = np.ascontiguousarray((data[key] - mean) / std, dtype=np.float32)
    source = {
        "name": "digits",
        "origin": "sklearn.datasets.load_digits",
        "num_train": num_train, "num_val": num_val, "num_test": num_test,
        "image_shape": [1, 8, 8],
        "preprocessing": f"fixed permutation (seed {_DIGITS_SPLIT_SEED}), each pixel "
                         "standardized with the training mean and std",
    }
    return Dataset(data, source)


def load_dataset(name: str = "auto", data_dir: str | os.PathLike | None = None,
                 download: bool = True,
                 sizes: tuple[int | None, int | None, int | None] = (None, None, None),
                 progress: bool = True) -> Dataset:
    """Load the data set ``name``: 'cifar10', 'digits' or 'auto'.

    Parameters
    ----------
    name : {'auto', 'cifar10', 'digits'}
        'auto' tries CIFAR-10 and falls back to digits (setting
        :attr:`Dataset.notice`) when CIFAR-10 is neither in ``data_dir`` nor
        downloadable.
    data_dir : path, optional
        Where CIFAR-10 is looked for (default :func:`xpnet.data_utils.default_data_dir`).
    download : bool
        Whether CIFAR-10 may be downloaded (timeout :data:`DOWNLOAD_TIMEOUT`).
    sizes : (num_train, num_val, num_test)
        Split sizes; None entries take the data set's defaults.
    progress : bool
        Show a download progress bar.

    Raises
    ------
    DataError
        For 'cifar10' when the data is unavailable; for 'digits' without scikit-learn.
    InputError
        For an unknown name or bad split sizes.
    """
    checks.choice(name, DATASETS, "data set")
    if name == "digits":
        return load_digits(sizes)
    try:
        return load_cifar10(data_dir, download=download, sizes=sizes, progress=progress)
    except DataError as err:
        if name == "cifar10":
            raise
        reason = str(err).rstrip(".")
    dataset = load_digits(sizes)
    dataset.notice = (f"CIFAR-10 is not available ({reason}); training on scikit-learn's "
                      "handwritten digits instead (--dataset cifar10 makes CIFAR-10 mandatory)")
    return dataset
