"""CIFAR-10 loading in the CS231n style, with a safe download and a safe unpickler.

``load_CIFAR_batch``, ``load_CIFAR10`` and ``get_CIFAR10_data`` keep the names
and layouts of the CS231n assignments, but return ``float32`` images (CS231n
used ``float64``) to halve memory.  ``find_or_fetch_cifar10`` locates the data
(or downloads the official archive, checking its MD5) and is shared with the
command-line tools.

Every problem with the data (missing, corrupt, unsafe, offline) is raised as
:class:`DataError` with a one-sentence message that names the file or folder
and says what to do.  Batches are read with a restricted unpickler that can
rebuild NumPy arrays and nothing else, so a crafted file cannot run code.
"""

from __future__ import annotations

import codecs
import hashlib
import http.client
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np
from tqdm import tqdm

from ._ops import checks
from .errors import DataError, InputError

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "DataError",
    "default_data_dir",
    "find_or_fetch_cifar10",
    "get_CIFAR10_data",
    "load_CIFAR10",
    "load_CIFAR_batch",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

BATCHES_DIRNAME = "cifar-10-batches-py"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
REQUIRED_FILES = (*TRAIN_BATCHES, TEST_BATCH)
# Members of the official archive that we extract; anything else is skipped.
ARCHIVE_FILES = frozenset({*REQUIRED_FILES, "batches.meta", "readme.html"})

NUM_TRAIN = 50_000
NUM_TEST = 10_000
_PIXELS = 3 * 32 * 32
_CHUNK = 1 << 20
_HOW_TO_SUPPLY = (
    f"download {ARCHIVE_NAME} by hand and pass its path with --data-dir or XPNET_DATA_DIR"
)

PathLike = str | os.PathLike




# ---------------------------------------------------------------------------
# Restricted unpickling of one batch


def _latin1_encode(obj: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 protocol-2 pickles use it for ``bytes``."""
    if not isinstance(obj, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError("_codecs.encode is allowed only for latin-1 strings")
    return obj.encode("latin1")


def _numpy_multiarray():
    try:
        from numpy._core import multiarray  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import multiarray
    return multiarray


def _safe_globals() -> dict[tuple[str, str], object]:
    multiarray = _numpy_multiarray()
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    return allowed


_SAFE_GLOBALS = _safe_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild NumPy arrays and scalars, and nothing else."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"it refers to {module}.{name}, which a CIFAR-10 batch never contains"
            ) from None


def _unpickle(path: Path) -> object:
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="latin1").load()
    except OSError as err:
        raise DataError(f"cannot read CIFAR-10 batch {path} ({err.strerror or err})") from err
    except Exception as err:  # any failure to parse untrusted bytes is a bad file
        raise DataError(
            f"{path} is not a valid CIFAR-10 batch ({err or type(err).__name__}); "
            "delete it and fetch CIFAR-10 again"
        ) from err


def _field(batch: dict, key: str, path: Path) -> object:
    for k in (key, key.encode("latin1")):
        if k in batch:
            return batch[k]
    raise DataError(f"CIFAR-10 batch {path} has no {key!r} entry; delete it and fetch it again")


def _load_batch_uint8(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch as ``(data uint8 (N, 3072), labels int64 (N,))``, fully checked."""
    path = Path(path)
    batch = _unpickle(path)

    def bad(why: str) -> DataError:
        return DataError(
            f"CIFAR-10 batch {path} is malformed ({why}); delete it and fetch it again"
        )

    if not isinstance(batch, dict):
        raise bad(f"it holds a {type(batch).__name__}, not a dict")
    data = _field(batch, "data", path)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == _PIXELS and data.shape[0] > 0):
        raise bad("'data' is not a non-empty uint8 array of shape (N, 3072)")
    labels = _field(batch, "labels", path)
    if not isinstance(labels, list | np.ndarray):
        raise bad("'labels' is not a list")
    labels = np.asarray(labels)
    if (labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu"
            or labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)):
        raise bad(f"'labels' is not {data.shape[0]} integers in 0..9")
    return data, labels.astype(np.int64)


def _to_nhwc_float(data: np.ndarray) -> np.ndarray:
    """(N, 3072) uint8 -> C-contiguous float32 (N, 32, 32, 3), the CS231n layout."""
    nhwc = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(nhwc, dtype=np.float32)


def _to_nchw_float(data: np.ndarray) -> np.ndarray:
    """(N, 3072) uint8 -> float32 (N, 3, 32, 32), channels first."""
    return data.reshape(-1, 3, 32, 32).astype(np.float32)


def load_CIFAR_batch(filename: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Load one pickled CIFAR-10 batch file.

    Parameters
    ----------
    filename : str or os.PathLike
        A batch file such as ``.../cifar-10-batches-py/data_batch_1``.

    Returns
    -------
    X : numpy.ndarray
        ``float32`` images of shape ``(N, 32, 32, 3)`` with values 0..255
        (CS231n used ``float64``; ``float32`` halves memory).
    y : numpy.ndarray
        ``int64`` labels of shape ``(N,)`` in 0..9.

    Raises
    ------
    DataError
        If the file cannot be read, is not a CIFAR-10 batch, or refers to
        anything but NumPy arrays (the unpickler refuses to run code).
    """
    data, labels = _load_batch_uint8(filename)
    return _to_nhwc_float(data), labels


# ---------------------------------------------------------------------------
# Whole data set


def _require_batches(folder: Path) -> None:
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"{folder} is not a complete CIFAR-10 batches folder (missing {', '.join(missing)}); "
            f"delete it or pass a complete {BATCHES_DIRNAME} folder"
        )


def _load_uint8(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    _require_batches(folder)
    train = [_load_batch_uint8(folder / name) for name in TRAIN_BATCHES]
    x_test, y_test = _load_batch_uint8(folder / TEST_BATCH)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test


def load_CIFAR10(
    root: PathLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load all of CIFAR-10 from a ``cifar-10-batches-py`` folder.

    Parameters
    ----------
    root : str or os.PathLike
        The ``cifar-10-batches-py`` folder itself (``data_batch_1`` ..
        ``data_batch_5`` and ``test_batch``).

    Returns
    -------
    X_train, y_train, X_test, y_test : numpy.ndarray
        Images as ``float32`` arrays of shape ``(N, 32, 32, 3)`` with values
        0..255 (CS231n used ``float64``; ``float32`` halves memory) and labels
        as ``int64`` arrays of shape ``(N,)``; N is 50000 and 10000 for the
        official data.

    Raises
    ------
    DataError
        If a batch is missing or invalid.
    """
    x_train, y_train, x_test, y_test = _load_uint8(Path(root))
    return _to_nhwc_float(x_train), y_train, _to_nhwc_float(x_test), y_test


def _check_counts(num_training: int, num_validation: int, num_test: int) -> None:
    checks.positive_int(num_training, "num_training")
    checks.positive_int(num_validation, "num_validation")
    checks.positive_int(num_test, "num_test")
    if num_training + num_validation > NUM_TRAIN:
        raise InputError(
            f"num_training + num_validation must be at most {NUM_TRAIN} (the CIFAR-10 "
            f"training set), got {num_training} + {num_validation}"
        )
    if num_test > NUM_TEST:
        raise InputError(f"num_test must be at most {NUM_TEST} (the CIFAR-10 test set), "
                         f"got {num_test}")


def get_CIFAR10_data(
    num_training: int = 49000,
    num_validation: int = 1000,
    num_test: int = 1000,
    subtract_mean: bool = True,
    root: PathLike | None = None,
    download: bool = True,
) -> dict[str, np.ndarray]:
    """Load CIFAR-10 split into train/validation/test, ready for a classifier.

    Parameters
    ----------
    num_training, num_validation, num_test : int
        Sizes of the splits.  Training images are the first ``num_training``
        images of the training set, validation images the next
        ``num_validation`` (the CS231n convention), test images the first
        ``num_test`` of the test set.
    subtract_mean : bool
        Subtract the mean image of ``X_train`` from all three splits.
    root : str or os.PathLike, optional
        A folder holding ``cifar-10-batches-py``, that folder itself, or the
        path of a ``cifar-10-python.tar.gz``; see :func:`find_or_fetch_cifar10`.
        Defaults to :func:`default_data_dir`.
    download : bool
        Download the official archive if the data is not under ``root``.

    Returns
    -------
    dict
        ``X_train``, ``X_val``, ``X_test``: ``float32`` arrays of shape
        ``(N, 3, 32, 32)`` (channels first); ``y_train``, ``y_val``,
        ``y_test``: ``int64`` arrays of shape ``(N,)``.

    Raises
    ------
    InputError (a ValueError)
        If a count is not a positive integer or asks for more images than
        CIFAR-10 (or the data found) has.
    DataError
        If the data cannot be found, downloaded or read.
    """
    _check_counts(num_training, num_validation, num_test)
    folder = find_or_fetch_cifar10(root, download=download)
    x_train, y_train, x_test, y_test = _load_uint8(folder)
    if num_training + num_validation > len(x_train) or num_test > len(x_test):
        raise InputError(
            f"asked for {num_training} + {num_validation} training and {num_test} test "
            f"images but {folder} holds only {len(x_train)} and {len(x_test)}"
        )
    stop = num_training + num_validation
    data = {
        "X_train": _to_nchw_float(x_train[:num_training]), "y_train": y_train[:num_training],
        "X_val": _to_nchw_float(x_train[num_training:stop]), "y_val": y_train[num_training:stop],
        "X_test": _to_nchw_float(x_test[:num_test]), "y_test": y_test[:num_test],
    }
    if subtract_mean:
        mean_image = data["X_train"].mean(axis=0, dtype=np.float64).astype(np.float32)
        for key in ("X_train", "X_val", "X_test"):
            data[key] -= mean_image
    return data


# ---------------------------------------------------------------------------
# Finding, downloading and extracting


def default_data_dir() -> Path:
    """Folder searched (and downloaded into) when no root is given.

    Returns
    -------
    pathlib.Path
        ``$XPNET_DATA_DIR`` if set and non-empty, else ``~/.cache/xpnet``.
    """
    env = os.environ.get("XPNET_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "xpnet"


def _is_batches_folder(folder: Path) -> bool:
    return folder.name == BATCHES_DIRNAME or any((folder / n).exists() for n in REQUIRED_FILES)


def _archive_members(tar: tarfile.TarFile, archive: Path) -> Iterator[tarfile.TarInfo]:
    """Yield the expected members; refuse unsafe ones anywhere in the archive."""
    for member in tar:
        parts = PurePosixPath(member.name).parts
        if (member.name.startswith(("/", "\\")) or ".." in parts
                or not (member.isfile() or member.isdir())):
            raise DataError(
                f"archive {archive} holds an unsafe member {member.name!r} (absolute path, "
                f"'..', link or device); delete it and use the official {ARCHIVE_NAME}"
            )
        if (member.isfile() and len(parts) == 2 and parts[0] == BATCHES_DIRNAME
                and parts[1] in ARCHIVE_FILES):
            yield member


def _extract_into(tar: tarfile.TarFile, archive: Path, tmp: Path) -> None:
    for member in _archive_members(tar, archive):
        if hasattr(tarfile, "data_filter"):
            tar.extract(member, tmp, filter="data")
        else:  # pragma: no cover - Python without extraction filters
            tar.extract(member, tmp)


def _extract(archive: Path, dest: Path) -> Path:
    """Extract ``archive`` to ``dest/cifar-10-batches-py`` atomically; return that folder.

    Files go to a temporary folder in ``dest`` first and are moved into place
    with one :func:`os.replace` once complete, so an interrupted or failed
    extraction leaves nothing that looks like data.
    """
    target = dest / BATCHES_DIRNAME
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{BATCHES_DIRNAME}.", suffix=".tmp", dir=dest))
    except OSError as err:
        raise DataError(f"cannot extract {archive} into {dest} ({err.strerror or err}); "
                        f"extract it by hand or make {dest} writable") from err
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                _extract_into(tar, archive, tmp)
        except (OSError, tarfile.TarError, EOFError, zlib.error) as err:
            raise DataError(
                f"cannot extract {archive} ({err}); it is not a complete {ARCHIVE_NAME}, "
                "so delete it and fetch CIFAR-10 again"
            ) from err
        try:
            _require_batches(tmp / BATCHES_DIRNAME)
        except DataError:
            raise DataError(f"archive {archive} does not hold the CIFAR-10 batches; delete it "
                            f"and use the official {ARCHIVE_NAME}") from None
        try:
            os.replace(tmp / BATCHES_DIRNAME, target)
        except OSError:
            _require_batches(target)  # another process extracted it first
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _content_length(resp: http.client.HTTPResponse) -> int | None:
    value = resp.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _stream(url: str, out: BinaryIO, progress: bool, timeout: float) -> str:
    """Copy ``url`` into ``out`` with a progress bar; return the MD5 of what was read."""
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        total = _content_length(resp)
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=ARCHIVE_NAME, disable=not progress) as bar:
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:
        raise http.client.IncompleteRead(b"", total - received)
    return digest.hexdigest()


def _download(url: str, dest: Path, md5: str | None, progress: bool, timeout: float) -> Path:
    """Download ``url`` to ``dest/cifar-10-python.tar.gz``, verified, or raise DataError.

    The bytes go to a ``*.part`` file in ``dest`` that is renamed into place
    only once complete and matching ``md5``; it is deleted on every failure,
    including KeyboardInterrupt.
    """
    fd, part_name = tempfile.mkstemp(prefix=f"{ARCHIVE_NAME}.", suffix=".part", dir=dest)
    part = Path(part_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                got = _stream(url, out, progress, timeout)
            except (OSError, ValueError, http.client.HTTPException) as err:
                raise DataError(
                    f"CIFAR-10 not found in {dest} and download from {url} failed "
                    f"({_describe(err)}); {_HOW_TO_SUPPLY}"
                ) from err
        if md5 is not None and got != md5.lower():
            raise DataError(
                f"download of {url} was corrupt (MD5 {got}, expected {md5}) and was deleted; "
                f"run again to retry, or {_HOW_TO_SUPPLY}"
            )
        archive = dest / ARCHIVE_NAME
        os.replace(part, archive)
        return archive
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _describe(err: BaseException) -> str:
    if isinstance(err, http.client.IncompleteRead):
        return f"connection closed with {err.expected} bytes still to come"
    reason = getattr(err, "reason", None)  # urllib.error.URLError
    return str(reason if reason is not None else err) or type(err).__name__


def _from_archive_path(archive: Path) -> Path:
    try:
        is_tar = tarfile.is_tarfile(archive)
    except (OSError, EOFError, zlib.error):
        is_tar = False
    if not is_tar:
        raise DataError(f"{archive} is not a {ARCHIVE_NAME} archive; pass the archive, "
                        f"the {BATCHES_DIRNAME} folder or the folder holding it")
    target = archive.parent / BATCHES_DIRNAME
    if target.is_dir():
        _require_batches(target)
        return target
    return _extract(archive, archive.parent)


def _find_local(root: Path) -> Path | None:
    """The batches folder for ``root`` if the data is there (extracting if needed)."""
    if root.is_file():
        return _from_archive_path(root)
    if root.is_dir() and _is_batches_folder(root):
        _require_batches(root)
        return root
    target = root / BATCHES_DIRNAME
    if target.is_dir():
        _require_batches(target)
        return target
    if (root / ARCHIVE_NAME).is_file():
        return _extract(root / ARCHIVE_NAME, root)
    return None


def find_or_fetch_cifar10(
    root: PathLike | None = None,
    download: bool = True,
    url: str = CIFAR10_URL,
    md5: str | None = CIFAR10_MD5,
    progress: bool = True,
    *,
    timeout: float = 30.0,
) -> Path:
    """Return the ``cifar-10-batches-py`` folder, downloading CIFAR-10 if needed.

    Parameters
    ----------
    root : str or os.PathLike, optional
        One of: a folder holding ``cifar-10-batches-py`` (or a
        ``cifar-10-python.tar.gz`` to extract), the ``cifar-10-batches-py``
        folder itself, or the path of a ``cifar-10-python.tar.gz`` (extracted
        next to it).  Defaults to :func:`default_data_dir`.  Data that the
        user supplies is used as it is: its MD5 is not checked.
    download : bool
        If the data is not under ``root``, download ``url`` into ``root``.
    url : str
        Where to download the archive from.
    md5 : str or None
        Expected MD5 of the download; ``None`` skips the check.
    progress : bool
        Show a progress bar while downloading.
    timeout : float
        Seconds to wait for the connection and for each read.

    Returns
    -------
    pathlib.Path
        The ``cifar-10-batches-py`` folder, with all six batches present.

    Raises
    ------
    DataError
        If the data is missing and cannot be downloaded, the download is
        corrupt, or what was found is incomplete, unsafe or not CIFAR-10.
        A failed download or extraction leaves no partial files behind.
    """
    root = Path(root).expanduser() if root is not None else default_data_dir()
    if root.name.endswith((".tar.gz", ".tgz")) and not root.exists():
        raise DataError(f"archive {root} does not exist; {_HOW_TO_SUPPLY}")
    if root.name == BATCHES_DIRNAME and not root.exists():
        root = root.parent
    found = _find_local(root)
    if found is not None:
        return found
    if not download:
        raise DataError(
            f"CIFAR-10 not found in {root} and downloading is off; put {BATCHES_DIRNAME} or "
            f"{ARCHIVE_NAME} there, or pass their location with --data-dir or XPNET_DATA_DIR"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create data folder {root} ({err.strerror or err}); "
                        "pass a writable folder with --data-dir or XPNET_DATA_DIR") from err
    return _extract(_download(url, root, md5, progress, timeout), root)
