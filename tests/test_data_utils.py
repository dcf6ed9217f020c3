"""Tests for xpnet.data_utils, on a small synthetic CIFAR-10 served from 127.0.0.1.

Nothing here touches the internet.  The one test on the real data set is
marked ``realdata`` and runs only when ``XPNET_DATA_DIR`` points at it.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import pickle
import shutil
import socket
import struct
import subprocess
import tarfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from xpnet import data_utils as du
from xpnet.data_utils import (
    DataError,
    default_data_dir,
    find_or_fetch_cifar10,
    get_CIFAR10_data,
    load_CIFAR10,
    load_CIFAR_batch,
)

N_PER_TRAIN_BATCH = 4
N_TEST = 5
N_TRAIN = 5 * N_PER_TRAIN_BATCH
# One pixel with a value no random pixel has: image 2 of data_batch_2, blue, row 5, col 7.
KNOWN_BATCH, KNOWN_IMAGE, KNOWN_CH, KNOWN_ROW, KNOWN_COL, KNOWN_VALUE = 2, 2, 2, 5, 7, 255
KNOWN_TRAIN_INDEX = (KNOWN_BATCH - 1) * N_PER_TRAIN_BATCH + KNOWN_IMAGE


# ---------------------------------------------------------------------------
# Synthetic CIFAR-10 in the official layout (Python 2 protocol-2 pickles)


def _py2(obj: object) -> bytes:
    """Pickle opcodes for ``obj`` as Python 2 wrote the official batches."""
    if isinstance(obj, bytes):
        size = len(obj)
        head = b"U" + struct.pack("<B", size) if size < 256 else b"T" + struct.pack("<I", size)
        return head + obj
    if isinstance(obj, int):
        return b"J" + struct.pack("<i", obj)
    if isinstance(obj, list):
        return b"](" + b"".join(_py2(x) for x in obj) + b"e"
    if isinstance(obj, dict):
        return b"}(" + b"".join(_py2(k) + _py2(v) for k, v in obj.items()) + b"u"
    assert isinstance(obj, np.ndarray) and obj.dtype == np.uint8 and obj.ndim == 2
    dtype = (b"cnumpy\ndtype\n" + _py2(b"u1") + b"K\x00K\x01\x87R(K\x03" + _py2(b"|")
             + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    shape = b"(" + _py2(obj.shape[0]) + _py2(obj.shape[1]) + b"t"
    return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n(K\x00tU\x01b\x87R"
            + b"(K\x01" + shape + dtype + b"\x89" + _py2(obj.tobytes()) + b"tb")


def _py2_pickle(d: dict) -> bytes:
    return b"\x80\x02" + _py2(d) + b"."


def _batch_dict(name: str, data: np.ndarray, labels: np.ndarray) -> dict:
    return {
        b"batch_label": name.encode(),
        b"labels": [int(v) for v in labels],
        b"data": data,
        b"filenames": [f"{name}_{i}.png".encode() for i in range(len(labels))],
    }


@dataclass(frozen=True)
class Synthetic:
    """A synthetic data set written to ``parent/cifar-10-batches-py`` plus its archive."""

    parent: Path
    archive: bytes
    md5: str
    train_data: np.ndarray  # (N_TRAIN, 3072) uint8, batches in order
    train_labels: np.ndarray
    test_data: np.ndarray
    test_labels: np.ndarray

    @property
    def folder(self) -> Path:
        return self.parent / du.BATCHES_DIRNAME


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def _archive_members(folder: Path) -> dict[str, bytes]:
    return {f"{du.BATCHES_DIRNAME}/{p.name}": p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synthetic:
    rng = np.random.default_rng(0)
    parent = tmp_path_factory.mktemp("synthetic")
    folder = parent / du.BATCHES_DIRNAME
    folder.mkdir()
    train = rng.integers(0, 255, size=(N_TRAIN, 3072), dtype=np.uint8)  # never 255
    train[KNOWN_TRAIN_INDEX, KNOWN_CH * 1024 + KNOWN_ROW * 32 + KNOWN_COL] = KNOWN_VALUE
    train_labels = rng.integers(0, 10, size=N_TRAIN)
    test = rng.integers(0, 255, size=(N_TEST, 3072), dtype=np.uint8)
    test_labels = rng.integers(0, 10, size=N_TEST)
    for b in range(5):
        rows = slice(b * N_PER_TRAIN_BATCH, (b + 1) * N_PER_TRAIN_BATCH)
        name = f"data_batch_{b + 1}"
        (folder / name).write_bytes(_py2_pickle(_batch_dict(name, train[rows],
                                                            train_labels[rows])))
    (folder / "test_batch").write_bytes(_py2_pickle(_batch_dict("test", test, test_labels)))
    meta = {b"label_names": [c.encode() for c in du.CIFAR10_CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(_py2_pickle(meta))
    archive = _tar_gz(_archive_members(folder))
    return Synthetic(parent, archive, hashlib.md5(archive).hexdigest(),
                     train, train_labels, test, test_labels)


def _expected_nhwc(data: np.ndarray) -> np.ndarray:
    """(N, 3072) channel-major rows -> (N, 32, 32, 3), by index arithmetic alone."""
    row, col, ch = np.indices((32, 32, 3))
    return data[:, ch * 1024 + row * 32 + col].astype(np.float32)


def _write_archive(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# ---------------------------------------------------------------------------
# Loading batches and the whole set


def test_load_batch_values_and_layout(synth: Synthetic) -> None:
    X, y = load_CIFAR_batch(synth.folder / f"data_batch_{KNOWN_BATCH}")
    rows = slice((KNOWN_BATCH - 1) * N_PER_TRAIN_BATCH, KNOWN_BATCH * N_PER_TRAIN_BATCH)
    assert X.shape == (N_PER_TRAIN_BATCH, 32, 32, 3) and X.dtype == np.float32
    assert y.dtype == np.int64 and y.shape == (N_PER_TRAIN_BATCH,)
    assert X[KNOWN_IMAGE, KNOWN_ROW, KNOWN_COL, KNOWN_CH] == KNOWN_VALUE
    assert np.count_nonzero(X == KNOWN_VALUE) == 1
    np.testing.assert_array_equal(X, _expected_nhwc(synth.train_data[rows]))
    np.testing.assert_array_equal(y, synth.train_labels[rows])


@pytest.mark.parametrize("key_type", [bytes, str])
@pytest.mark.parametrize("labels_as", ["list", "ndarray", "numpy_scalars"])
def test_load_batch_written_by_python3(tmp_path: Path, key_type: type, labels_as: str) -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)
    labels = np.array([9, 0, 4])
    value = {"list": labels.tolist(), "ndarray": labels, "numpy_scalars": list(labels)}
    key = (lambda k: k.encode()) if key_type is bytes else (lambda k: k)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({key("data"): data, key("labels"): value[labels_as]},
                                  protocol=2))
    X, y = load_CIFAR_batch(path)
    np.testing.assert_array_equal(X, _expected_nhwc(data))
    np.testing.assert_array_equal(y, labels)
    assert y.dtype == np.int64


def test_load_cifar10_concatenates_batches_in_order(synth: Synthetic) -> None:
    X_train, y_train, X_test, y_test = load_CIFAR10(synth.folder)
    assert X_train.shape == (N_TRAIN, 32, 32, 3) and X_test.shape == (N_TEST, 32, 32, 3)
    assert X_train.dtype == X_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64
    assert X_train[KNOWN_TRAIN_INDEX, KNOWN_ROW, KNOWN_COL, KNOWN_CH] == KNOWN_VALUE
    np.testing.assert_array_equal(X_train, _expected_nhwc(synth.train_data))
    np.testing.assert_array_equal(y_train, synth.train_labels)
    np.testing.assert_array_equal(X_test, _expected_nhwc(synth.test_data))
    np.testing.assert_array_equal(y_test, synth.test_labels)


def test_get_data_splits_without_mean(synth: Synthetic) -> None:
    d = get_CIFAR10_data(15, 3, 4, subtract_mean=False, root=synth.parent, download=False)
    assert sorted(d) == ["X_test", "X_train", "X_val", "y_test", "y_train", "y_val"]
    assert d["X_train"].shape == (15, 3, 32, 32) and d["X_val"].shape == (3, 3, 32, 32)
    assert d["X_test"].shape == (4, 3, 32, 32)
    assert all(d[k].dtype == np.float32 for k in ("X_train", "X_val", "X_test"))
    assert all(d[k].dtype == np.int64 for k in ("y_train", "y_val", "y_test"))
    assert d["X_train"][KNOWN_TRAIN_INDEX, KNOWN_CH, KNOWN_ROW, KNOWN_COL] == KNOWN_VALUE
    chw = _expected_nhwc(synth.train_data).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(d["X_train"], chw[:15])
    np.testing.assert_array_equal(d["X_val"], chw[15:18])
    np.testing.assert_array_equal(d["y_val"], synth.train_labels[15:18])
    np.testing.assert_array_equal(d["X_test"],
                                  _expected_nhwc(synth.test_data[:4]).transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(d["y_test"], synth.test_labels[:4])


def test_get_data_subtracts_train_mean(synth: Synthetic) -> None:
    d = get_CIFAR10_data(10, 5, 3, subtract_mean=True, root=synth.parent, download=False)
    train = synth.train_data.reshape(-1, 3, 32, 32).astype(np.float64)
    test = synth.test_data.reshape(-1, 3, 32, 32).astype(np.float64)
    mean = train[:10].sum(axis=0) / 10
    np.testing.assert_allclose(d["X_train"], train[:10] - mean, atol=1e-4)
    np.testing.assert_allclose(d["X_val"], train[10:15] - mean, atol=1e-4)
    np.testing.assert_allclose(d["X_test"], test[:3] - mean, atol=1e-4)
    np.testing.assert_allclose(d["X_train"].mean(axis=0), 0, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_training": 0}, "num_training must be a positive integer"),
        ({"num_validation": -1}, "num_validation must be a positive integer"),
        ({"num_test": 2.5}, "num_test must be a positive integer"),
        ({"num_training": True}, "num_training must be a positive integer"),
        ({"num_training": "100"}, "num_training must be a positive integer"),
        ({"num_training": 49001}, "num_training \\+ num_validation must be at most 50000"),
        ({"num_test": 10001}, "num_test must be at most 10000"),
    ],
)
def test_get_data_rejects_bad_counts(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_CIFAR10_data(**kwargs, root=tmp_path, download=False)
    assert _listing(tmp_path) == []  # checked before looking for data


def test_get_data_rejects_more_than_the_data_holds(synth: Synthetic) -> None:
    with pytest.raises(ValueError, match=f"holds only {N_TRAIN} and {N_TEST}"):
        get_CIFAR10_data(N_TRAIN, 1, 1, root=synth.parent, download=False)


# ---------------------------------------------------------------------------
# Bad batch files and the restricted unpickler


class _Reduce:
    """Pickles as a call of ``func(*args)``, as an attacker's file would."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


def _attacks(marker: Path) -> dict[str, object]:
    touch = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": _Reduce(os.system, f"touch '{marker}'"),
        "builtins.eval": _Reduce(builtins.eval, touch),
        "builtins.exec": _Reduce(builtins.exec, touch),
        "subprocess.call": _Reduce(subprocess.call, ["touch", str(marker)]),
        "_codecs.encode (not latin-1)": {"data": _Reduce(__import__("_codecs").encode,
                                                         "x", "rot13")},
        "nested in a dict": {"data": _Reduce(os.system, f"touch '{marker}'"), "labels": []},
    }


@pytest.mark.parametrize("attack", list(_attacks(Path("m"))))
def test_crafted_pickle_does_not_run(tmp_path: Path, attack: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(_attacks(marker)[attack], protocol=2))
    with pytest.raises(DataError, match="not a valid CIFAR-10 batch") as info:
        load_CIFAR_batch(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("cut", [1, 100, 5000])
def test_truncated_batch_names_the_file(synth: Synthetic, tmp_path: Path, cut: int) -> None:
    path = tmp_path / "data_batch_3"
    path.write_bytes((synth.folder / "data_batch_3").read_bytes()[:cut])
    with pytest.raises(DataError, match="data_batch_3") as info:
        load_CIFAR_batch(path)
    assert str(path) in str(info.value)


def _bad_batches() -> dict[str, object]:
    ok = np.zeros((2, 3072), np.uint8)
    return {
        "a list": [ok],
        "no labels": {"data": ok},
        "no data": {"labels": [0, 1]},
        "float data": {"data": ok.astype(np.float32), "labels": [0, 1]},
        "wrong width": {"data": np.zeros((2, 3071), np.uint8), "labels": [0, 1]},
        "no images": {"data": np.zeros((0, 3072), np.uint8), "labels": []},
        "label 10": {"data": ok, "labels": [0, 10]},
        "label -1": {"data": ok, "labels": [-1, 0]},
        "too few labels": {"data": ok, "labels": [0]},
        "float labels": {"data": ok, "labels": [0.0, 1.0]},
        "labels a string": {"data": ok, "labels": "01"},
    }


@pytest.mark.parametrize("case", list(_bad_batches()))
def test_malformed_batch_is_rejected(tmp_path: Path, case: str) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(_bad_batches()[case], protocol=2))
    with pytest.raises(DataError, match="test_batch"):
        load_CIFAR_batch(path)


def test_missing_batch_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read CIFAR-10 batch .*data_batch_9"):
        load_CIFAR_batch(tmp_path / "data_batch_9")


def test_folder_without_batches(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing data_batch_1, .*test_batch"):
        load_CIFAR10(tmp_path)
    with pytest.raises(DataError, match="not found in .*downloading is off"):
        find_or_fetch_cifar10(tmp_path, download=False)
    assert _listing(tmp_path) == []


def test_incomplete_batches_folder(synth: Synthetic, tmp_path: Path) -> None:
    folder = shutil.copytree(synth.folder, tmp_path / du.BATCHES_DIRNAME)
    (folder / "data_batch_4").unlink()
    with pytest.raises(DataError, match="missing data_batch_4"):
        find_or_fetch_cifar10(tmp_path, download=False)


def test_file_that_is_not_an_archive(synth: Synthetic) -> None:
    path = synth.folder / "data_batch_1"
    with pytest.raises(DataError, match="is not a cifar-10-python.tar.gz archive"):
        find_or_fetch_cifar10(path, download=False)


# ---------------------------------------------------------------------------
# Root resolution and local archives (used as they are, no MD5 check)


@pytest.mark.parametrize("layout", ["parent", "batches_folder", "archive_path",
                                    "folder_with_archive"])
def test_root_resolution(synth: Synthetic, tmp_path: Path, layout: str) -> None:
    assert synth.md5 != du.CIFAR10_MD5
    if layout in ("parent", "batches_folder"):
        shutil.copytree(synth.folder, tmp_path / du.BATCHES_DIRNAME)
    else:
        _write_archive(tmp_path / du.ARCHIVE_NAME, synth.archive)
    root = {"parent": tmp_path, "batches_folder": tmp_path / du.BATCHES_DIRNAME,
            "archive_path": tmp_path / du.ARCHIVE_NAME, "folder_with_archive": tmp_path}[layout]
    folder = find_or_fetch_cifar10(root, download=False)
    assert folder == tmp_path / du.BATCHES_DIRNAME
    d = get_CIFAR10_data(16, 4, 5, subtract_mean=False, root=str(root), download=False)
    assert d["X_train"][KNOWN_TRAIN_INDEX, KNOWN_CH, KNOWN_ROW, KNOWN_COL] == KNOWN_VALUE
    expected = {du.BATCHES_DIRNAME} | ({du.ARCHIVE_NAME} if "archive" in layout else set())
    assert set(_listing(tmp_path)) == expected  # no temporary folder left


def test_missing_archive_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        find_or_fetch_cifar10(tmp_path / du.ARCHIVE_NAME, url="http://127.0.0.1:9/")
    assert _listing(tmp_path) == []


def test_env_var_sets_default_root(synth: Synthetic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XPNET_DATA_DIR", str(synth.parent))
    assert default_data_dir() == synth.parent
    assert find_or_fetch_cifar10(download=False) == synth.folder
    d = get_CIFAR10_data(18, 2, 5, download=False)
    assert d["y_test"].tolist() == synth.test_labels.tolist()


def test_default_root_without_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XPNET_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / ".cache" / "xpnet"
    with pytest.raises(DataError, match=r"\.cache/xpnet"):
        find_or_fetch_cifar10(download=False)


# ---------------------------------------------------------------------------
# Safe extraction


def _link(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


_UNSAFE = {
    "absolute": tarfile.TarInfo("/tmp/xpnet-evil"),
    "dotdot": tarfile.TarInfo(f"{du.BATCHES_DIRNAME}/../../xpnet-evil"),
    "symlink": _link(f"{du.BATCHES_DIRNAME}/data_batch_1", tarfile.SYMTYPE, "/etc/passwd"),
    "hardlink": _link(f"{du.BATCHES_DIRNAME}/data_batch_1", tarfile.LNKTYPE, "/etc/passwd"),
    "device": _link(f"{du.BATCHES_DIRNAME}/data_batch_1", tarfile.CHRTYPE),
    "fifo": _link(f"{du.BATCHES_DIRNAME}/data_batch_1", tarfile.FIFOTYPE),
}


@pytest.mark.parametrize("case", list(_UNSAFE))
def test_unsafe_archive_is_refused(synth: Synthetic, tmp_path: Path, case: str) -> None:
    dest = tmp_path / "dest"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, payload in _archive_members(synth.folder).items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        bad = _UNSAFE[case]
        if bad.isfile():
            bad.size = 4
            tar.addfile(bad, io.BytesIO(b"evil"))
        else:
            tar.addfile(bad)
    archive = _write_archive(dest / du.ARCHIVE_NAME, buf.getvalue())
    with pytest.raises(DataError, match="unsafe member"):
        find_or_fetch_cifar10(archive, download=False)
    assert _listing(dest) == [du.ARCHIVE_NAME]
    assert _listing(tmp_path) == ["dest"]


def test_archive_extracts_only_expected_members(synth: Synthetic, tmp_path: Path) -> None:
    members = _archive_members(synth.folder)
    members[f"{du.BATCHES_DIRNAME}/notes.txt"] = b"extra"
    members[f"{du.BATCHES_DIRNAME}/sub/data_batch_1"] = b"nested"
    members["elsewhere/file"] = b"other"
    archive = _write_archive(tmp_path / "my-copy.tar.gz", _tar_gz(members))
    folder = find_or_fetch_cifar10(archive, download=False)
    assert _listing(folder) == sorted(["batches.meta", *du.REQUIRED_FILES])
    assert _listing(tmp_path) == [du.BATCHES_DIRNAME, "my-copy.tar.gz"]


@pytest.mark.parametrize("defect", ["missing batch", "truncated", "not gzip"])
def test_bad_local_archive(synth: Synthetic, tmp_path: Path, defect: str) -> None:
    members = _archive_members(synth.folder)
    del members[f"{du.BATCHES_DIRNAME}/data_batch_5"]
    payload = {"missing batch": _tar_gz(members),
               "truncated": synth.archive[: len(synth.archive) * 2 // 3],
               "not gzip": b"\x1f\x8b" + b"\0" * 600}[defect]
    _write_archive(tmp_path / du.ARCHIVE_NAME, payload)
    with pytest.raises(DataError, match=str(tmp_path / du.ARCHIVE_NAME)):
        find_or_fetch_cifar10(tmp_path, download=False)
    assert _listing(tmp_path) == [du.ARCHIVE_NAME]


def test_interrupted_extraction_leaves_no_folder(synth: Synthetic, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _write_archive(tmp_path / du.ARCHIVE_NAME, synth.archive)

    def interrupt(folder: Path) -> None:
        assert any(folder.iterdir())  # extraction had written files
        raise KeyboardInterrupt

    monkeypatch.setattr(du, "_require_batches", interrupt)
    with pytest.raises(KeyboardInterrupt):
        find_or_fetch_cifar10(tmp_path, download=False)
    assert _listing(tmp_path) == [du.ARCHIVE_NAME]
    monkeypatch.undo()
    assert find_or_fetch_cifar10(tmp_path, download=False) == tmp_path / du.BATCHES_DIRNAME


# ---------------------------------------------------------------------------
# Downloading from a local HTTP server


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.body``; the path picks how: /good, /truncated, /drop, /stall, /404."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        srv = self.server
        srv.hits.append(self.path)
        mode = self.path.strip("/")
        if mode == "404":
            self.send_error(404)
            return
        body = srv.body
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + (1000 if mode == "truncated" else 0)))
        self.end_headers()
        self.close_connection = True
        if mode == "stall":
            srv.release.wait(10)
        elif mode in ("truncated", "drop"):
            self.wfile.write(body[: len(body) // 2])
            if mode == "drop":  # reset the connection (RST) instead of closing it
                sock = socket.socket(fileno=self.connection.detach())
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
        else:
            self.wfile.write(body)


@pytest.fixture
def server(synth: Synthetic):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.body, srv.hits, srv.release = synth.archive, [], threading.Event()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.mark.parametrize("progress", [False, True])
def test_download_verifies_extracts_and_loads(synth: Synthetic, server, tmp_path: Path,
                                              capsys: pytest.CaptureFixture,
                                              progress: bool) -> None:
    root = tmp_path / "new" / "data"
    folder = find_or_fetch_cifar10(root, url=f"{server.url}/good", md5=synth.md5.upper(),
                                   progress=progress)
    assert folder == root / du.BATCHES_DIRNAME
    assert _listing(root) == [du.BATCHES_DIRNAME, du.ARCHIVE_NAME]
    assert (root / du.ARCHIVE_NAME).read_bytes() == synth.archive
    assert (du.ARCHIVE_NAME in capsys.readouterr().err) == progress
    np.testing.assert_array_equal(load_CIFAR10(folder)[1], synth.train_labels)
    # A second call finds the data and does not download again.
    assert find_or_fetch_cifar10(root, url=f"{server.url}/good", md5=synth.md5) == folder
    assert server.hits == ["/good"]


def test_download_with_bad_md5_is_deleted(synth: Synthetic, server, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="was corrupt .* and was deleted") as info:
        find_or_fetch_cifar10(tmp_path, url=f"{server.url}/good", md5="0" * 32,
                              progress=False)
    assert f"MD5 {synth.md5}" in str(info.value)
    assert _listing(tmp_path) == []


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("truncated", "bytes still to come"),
        ("drop", "reset"),
        ("404", "Not Found"),
        ("stall", "timed out"),
    ],
)
def test_failed_download_leaves_nothing(synth: Synthetic, server, tmp_path: Path,
                                        mode: str, reason: str) -> None:
    url = f"{server.url}/{mode}"
    with pytest.raises(DataError, match="download from .* failed") as info:
        find_or_fetch_cifar10(tmp_path, url=url, md5=synth.md5, progress=False, timeout=0.5)
    message = str(info.value)
    assert url in message and str(tmp_path) in message and reason in message
    assert _listing(tmp_path) == []
    assert server.hits == [f"/{mode}"]


def test_unreachable_server_gives_offline_message(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError) as info:
        find_or_fetch_cifar10(tmp_path, url=f"http://127.0.0.1:{port}/x", progress=False,
                              timeout=2)
    message = str(info.value)
    assert message.startswith(f"CIFAR-10 not found in {tmp_path} and download from")
    assert "refused" in message.lower()
    assert "by hand" in message and "--data-dir" in message and "XPNET_DATA_DIR" in message
    assert _listing(tmp_path) == []


def test_interrupted_download_leaves_nothing(synth: Synthetic, server, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    class InterruptingBar:
        def __init__(self, **kwargs: object) -> None:
            pass

        def __enter__(self) -> InterruptingBar:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def update(self, n: int) -> None:
            raise KeyboardInterrupt

    monkeypatch.setattr(du, "tqdm", InterruptingBar)
    with pytest.raises(KeyboardInterrupt):
        find_or_fetch_cifar10(tmp_path, url=f"{server.url}/good", md5=synth.md5)
    assert _listing(tmp_path) == []


# ---------------------------------------------------------------------------
# The real data set (only where XPNET_DATA_DIR points at it)


@pytest.mark.realdata
def test_real_cifar10() -> None:
    root = os.environ.get("XPNET_DATA_DIR")
    if not root:
        pytest.skip("set XPNET_DATA_DIR to a folder holding CIFAR-10 "
                    "(see /work/shared/data/cifar10/README.md) to run this test")
    try:
        folder = find_or_fetch_cifar10(root, download=False)
    except DataError as err:
        pytest.skip(f"XPNET_DATA_DIR={root} holds no usable CIFAR-10: {err}")
    X_train, y_train, X_test, y_test = load_CIFAR10(folder)
    assert X_train.shape == (50000, 32, 32, 3) and X_test.shape == (10000, 32, 32, 3)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    assert np.bincount(y_train).tolist() == [5000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert 0 <= X_train.min() and X_train.max() == 255
    d = get_CIFAR10_data(root=root, download=False)
    assert d["X_train"].shape == (49000, 3, 32, 32) and d["X_val"].shape == (1000, 3, 32, 32)
    assert d["X_test"].shape == (1000, 3, 32, 32) and d["y_val"].shape == (1000,)
    np.testing.assert_array_equal(d["y_val"], y_train[49000:])
    np.testing.assert_allclose(d["X_train"].mean(axis=0), 0, atol=1e-3)
    raw_val = X_train[49000:].transpose(0, 3, 1, 2)
    mean = X_train[:49000].mean(axis=0, dtype=np.float64).transpose(2, 0, 1)
    np.testing.assert_allclose(d["X_val"], raw_val - mean, atol=1e-3)
