"""Bad input to models and the Solver gets a clear error naming what was wrong."""

from __future__ import annotations

import errno

import numpy as np
import pytest

import xpnet
from xpnet import FullyConnectedNet, Solver
from xpnet.backend import BackendError, BackendMismatchError
from xpnet.files import CheckpointError, load_arrays, save_arrays


def data(n=20, d=6, classes=3):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(classes, size=n)
    return {"X_train": X, "y_train": y, "X_val": X[:5], "y_val": y[:5]}


@pytest.fixture
def model(backend):
    return FullyConnectedNet([4], input_dim=6, num_classes=3, seed=0, backend=backend)


def test_unknown_normalization(backend):
    with pytest.raises(ValueError, match=r"unknown normalization 'groupnorm'.*'batchnorm'"):
        FullyConnectedNet([4], normalization="groupnorm", backend=backend)


@pytest.mark.parametrize("keep", [0, 1.5, -0.2])
def test_keep_ratio_outside_0_1(backend, keep):
    with pytest.raises(ValueError, match=r"KEEPING.*\(0, 1\]"):
        FullyConnectedNet([4], dropout_keep_ratio=keep, backend=backend)


def test_unknown_backend():
    with pytest.raises(BackendError, match="unknown backend 'numpyy'"):
        FullyConnectedNet([4], backend="numpyy")


def test_unknown_update_rule(model):
    with pytest.raises(ValueError, match=r"unknown update_rule 'adamw'.*adam"):
        Solver(model, data(), update_rule="adamw")


def test_x_y_length_mismatch(model):
    bad = data()
    bad["y_train"] = bad["y_train"][:-1]
    with pytest.raises(ValueError, match=r"X_train has 20 samples but y_train has shape \(19,\)"):
        Solver(model, bad)


def test_missing_data_key(model):
    bad = data()
    del bad["y_val"]
    with pytest.raises(KeyError, match="y_val"):
        Solver(model, bad)


def test_labels_out_of_range(model):
    bad = data()
    bad["y_val"] = np.array([0, 1, 2, 3, 1])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\].*from 0 to 3"):
        Solver(model, bad)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        model.loss(bad["X_val"], bad["y_val"])


def test_labels_not_integers(model):
    bad = data()
    bad["y_train"] = bad["y_train"].astype(np.float32)
    with pytest.raises(TypeError, match="labels y must be integers"):
        Solver(model, bad)
    with pytest.raises(TypeError, match="labels y must be integers"):
        model.loss(bad["X_train"], bad["y_train"])


def test_input_features_mismatch(model):
    with pytest.raises(ValueError, match=r"x of shape \(2, 5\) has 5 features.*expects 6"):
        model.loss(np.zeros((2, 5), dtype=np.float32))


def test_y_length_mismatch_in_loss(model):
    with pytest.raises(ValueError, match=r"y must have shape \(2,\)"):
        model.loss(np.zeros((2, 6), dtype=np.float32), np.array([0, 1, 2]))


def test_arrays_from_another_backend(backend, model):
    others = [b for b in xpnet.available_backends() if b not in (backend.name, "cupy", "numpy")]
    if not others:
        pytest.skip("needs a second non-NumPy backend installed")
    other = xpnet.get_backend(others[0])
    with pytest.raises(BackendMismatchError, match=f"{other.name}.*{backend.name}|backend"):
        model.loss(other.asarray(np.zeros((2, 6), dtype=np.float32)))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_batch_size(model, bad):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        Solver(model, data(), batch_size=bad)


def test_full_disk_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    save_arrays(path, {"a": np.arange(3)}, {"v": 1})

    def full_disk(handle, **arrays):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device.*nothing was written"):
        save_arrays(path, {"a": np.arange(5)}, {"v": 2})
    monkeypatch.undo()
    arrays, meta = load_arrays(path)
    np.testing.assert_array_equal(arrays["a"], np.arange(3))
    assert meta == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]


def test_unwritable_checkpoint_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="cannot write"):
        save_arrays(blocker / "ck.npz", {"a": np.arange(3)}, {})


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / "ck.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a readable xpnet checkpoint"):
        load_arrays(path)
