"""One file format: models and Solver state saved, loaded on any backend, old files read.

Saved models are rebuilt by :func:`xpnet.load_model` from class and config and
give the same scores on another backend; files of the first format (written
here exactly as xpnet 0.1 wrote them) still load; files of an unknown version,
truncated files and foreign files get a clear error naming the file.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import xpnet
from xpnet import FullyConnectedNet, Solver, TwoLayerNet, checkpoint
from xpnet.files import load_arrays, save_arrays


def other_backend(backend):
    """A second backend to load on (NumPy, or for NumPy another installed one)."""
    if backend.name != "numpy":
        return xpnet.get_backend("numpy")
    others = [b for b in xpnet.available_backends() if b not in ("numpy", "cupy")]
    if not others:
        pytest.skip("no second backend installed")
    return xpnet.get_backend(others[0])


def data(n=40, d=12, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(classes, size=n)
    return {"X_train": X, "y_train": y, "X_val": X[:10], "y_val": y[:10]}


@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_save_then_load_on_another_backend_gives_the_same_scores(backend, tmp_path,
                                                                 normalization):
    model = FullyConnectedNet([8, 6], input_dim=12, num_classes=4, normalization=normalization,
                              dropout_keep_ratio=0.9, reg=0.1, dtype="float64", seed=0,
                              backend=backend)
    Solver(model, data(), num_epochs=2, batch_size=10, verbose=False, seed=1).train()
    path = xpnet.save_model(tmp_path / "m.npz", model, info={"note": "x"})
    target = other_backend(backend)
    loaded = xpnet.load_model(path, backend=target)
    assert type(loaded) is FullyConnectedNet and loaded.backend is target
    assert loaded.config == model.config
    X = data()["X_val"].astype(np.float64)
    np.testing.assert_allclose(xpnet.to_numpy(loaded.loss(X)), xpnet.to_numpy(model.loss(X)),
                               rtol=1e-12)
    assert set(loaded.buffers) == set(model.buffers)
    _, meta = checkpoint.read(path)
    assert meta["version"] == 2 and meta["kind"] == "model" and meta["info"] == {"note": "x"}


def test_two_layer_net_round_trip(backend, tmp_path):
    model = TwoLayerNet(input_dim=5, hidden_dim=7, num_classes=3, seed=2, backend=backend)
    loaded = xpnet.load_model(xpnet.save_model(tmp_path / "t.npz", model), backend=backend)
    assert type(loaded) is TwoLayerNet and loaded.config == model.config
    for k in model.params:
        np.testing.assert_array_equal(xpnet.to_numpy(loaded.params[k]),
                                      xpnet.to_numpy(model.params[k]))


def test_a_solver_checkpoint_loads_as_a_model_and_resumes(backend, tmp_path):
    model = FullyConnectedNet([8], input_dim=12, num_classes=4, normalization="batchnorm",
                              seed=0, backend=backend)
    solver = Solver(model, data(), update_rule="adam", num_epochs=1, batch_size=10,
                    verbose=False, seed=3,
                    checkpoint_name=str(tmp_path / "ck"))
    solver.train()
    arrays, meta = checkpoint.read(tmp_path / "ck_epoch_1.npz")
    assert meta["kind"] == "solver" and meta["rng"] == solver.random.state()
    assert {"params/W1", "buffers/running_mean1", "best/params/W1", "optim/W1/m"} <= set(arrays)
    loaded = xpnet.load_model(tmp_path / "ck_epoch_1.npz", backend=backend)
    np.testing.assert_array_equal(xpnet.to_numpy(loaded.params["W1"]), arrays["params/W1"])
    model_file = xpnet.save_model(tmp_path / "m.npz", model)
    with pytest.raises(xpnet.CheckpointError, match="not a Solver checkpoint"):
        solver.load_checkpoint(str(model_file))


def saved_solver(backend, tmp_path, **options):
    tmp_path.mkdir(exist_ok=True)
    model = FullyConnectedNet([8], input_dim=12, num_classes=4, seed=0, backend=backend)
    solver = Solver(model, data(), num_epochs=1, batch_size=10, verbose=False, seed=3,
                    checkpoint_name=str(tmp_path / "ck"), **options)
    solver.train()
    return solver, str(tmp_path / "ck_epoch_1.npz")


def fresh_solver(backend, **options):
    model = FullyConnectedNet([8], input_dim=12, num_classes=4, seed=0, backend=backend)
    return Solver(model, data(), num_epochs=1, batch_size=10, verbose=False, **options)


def test_the_header_records_the_update_rule_and_the_stream_kind(backend, tmp_path):
    _, path = saved_solver(backend, tmp_path / "a", update_rule="adam")
    _, meta = checkpoint.read(path)
    assert (meta["solver"]["update_rule"], meta["solver"]["stream"]) == ("adam", "generator")
    _, path = saved_solver(backend, tmp_path / "b", update_rule="sgd", device_random=True)
    _, meta = checkpoint.read(path)
    assert (meta["solver"]["update_rule"], meta["solver"]["stream"]) == ("sgd", "counter")


@pytest.mark.parametrize("saved, loading, message", [
    ({"update_rule": "adam"}, {"update_rule": "sgd_momentum"},
     r"update rule 'adam', this Solver has 'sgd_momentum'.*update_rule='adam'"),
    ({"update_rule": "sgd"}, {"update_rule": lambda w, dw, c: (w - 0.1 * dw, c)},
     r"update rule 'sgd', this Solver has '.*<lambda>'"),
    ({"device_random": True}, {},
     r"counter-based device stream.*this Solver draws from the backend's generator.*"
     r"device_random"),
    ({}, {"device_random": True},
     r"the backend's generator.*this Solver draws from a counter-based device stream"),
])
def test_a_checkpoint_of_another_trajectory_is_refused(backend, tmp_path, saved, loading,
                                                       message):
    _, path = saved_solver(backend, tmp_path, **saved)
    solver = fresh_solver(backend, **loading)
    before = {k: xpnet.to_numpy(v).copy() for k, v in solver.model.params.items()}
    with pytest.raises(xpnet.CheckpointError, match=message):
        solver.load_checkpoint(path)
    assert solver.iteration == 0  # nothing was loaded
    for name, value in solver.model.params.items():
        np.testing.assert_array_equal(xpnet.to_numpy(value), before[name])


def plain_sgd(w, dw, config):
    return w - 0.01 * dw, config


def halving(w, dw, config):
    return 0.5 * w, config


def test_custom_rules_are_told_apart_by_name(backend, tmp_path):
    _, path = saved_solver(backend, tmp_path, update_rule=plain_sgd)
    _, meta = checkpoint.read(path)
    assert meta["solver"]["update_function"].endswith("test_checkpoint_format.plain_sgd")
    fresh_solver(backend, update_rule=plain_sgd).load_checkpoint(path)
    with pytest.raises(xpnet.CheckpointError, match=r"plain_sgd'.*halving"):
        fresh_solver(backend, update_rule=halving).load_checkpoint(path)
    # a file of an earlier release named no function: nothing to compare
    arrays, meta = checkpoint.read(path)
    del meta["solver"]["update_function"], meta["solver"]["stream"]
    save_arrays(tmp_path / "old.npz", arrays, meta)
    fresh_solver(backend, update_rule=halving).load_checkpoint(str(tmp_path / "old.npz"))


def test_a_checkpoint_of_the_same_trajectory_loads(backend, tmp_path):
    solver, path = saved_solver(backend, tmp_path, update_rule="adam", device_random=True)
    again = fresh_solver(backend, update_rule=xpnet.optim.adam, device_random=True)
    again.load_checkpoint(path)  # the built-in rule given as a function is the same rule
    assert again.iteration == solver.iteration and again.random.state() == solver.random.state()


# ---------------------------------------------------------------------------
# Files of the first format, written as xpnet 0.1 wrote them


def write_v1_solver_checkpoint(path, model, iteration=4):
    arrays = {f"params/{k}": xpnet.to_numpy(v) for k, v in model.params.items()}
    arrays.update({f"best_params/{k}": xpnet.to_numpy(v) for k, v in model.params.items()})
    arrays.update({f"optim/{k}/m": np.zeros(v.shape, np.float32) + 0.5
                   for k, v in model.params.items()})
    arrays.update({f"optim/{k}/v": np.ones(v.shape, np.float32)
                   for k, v in model.params.items()})
    for i, _ in enumerate(model.bn_params):
        arrays[f"bn/{i}/running_mean"] = np.full(8, 0.25, np.float32)
        arrays[f"bn/{i}/running_var"] = np.full(8, 2.0, np.float32)
    meta = {"format": "xpnet-solver-checkpoint/1", "model": type(model).__name__,
            "param_shapes": {k: list(v.shape) for k, v in model.params.items()},
            "update_rule": "adam",
            "optim_scalars": {k: {"learning_rate": 1e-3, "t": iteration}
                              for k in model.params},
            "lr_decay": 1.0, "batch_size": 10, "num_epochs": 3, "epoch": 1,
            "iteration": iteration, "best_val_acc": 0.5, "loss_history": [1.0] * iteration,
            "train_acc_history": [0.1, 0.4], "val_acc_history": [0.2, 0.5],
            "rng_state": {"seed": 11, "counter": 9}}
    save_arrays(path, arrays, meta)


def test_version_1_solver_checkpoint_resumes(backend, tmp_path):
    model = FullyConnectedNet([8], input_dim=12, num_classes=4, normalization="batchnorm",
                              seed=0, backend=backend)
    write_v1_solver_checkpoint(tmp_path / "old.npz", model)
    solver = Solver(model, data(), update_rule="adam", num_epochs=3, batch_size=10,
                    verbose=False)
    solver.load_checkpoint(str(tmp_path / "old.npz"))
    assert solver.iteration == 4 and solver.best_val_acc == 0.5
    state = solver.random.state()
    assert (state["seed"], state["counter"], state["kind"]) == (11, 9, "generator")
    np.testing.assert_array_equal(xpnet.to_numpy(model.bn_params[0]["running_mean"]),
                                  np.full(8, 0.25, np.float32))
    np.testing.assert_array_equal(xpnet.to_numpy(solver.optim_configs["W1"]["m"]),
                                  np.full((12, 8), 0.5, np.float32))
    solver.train()  # and it goes on
    assert solver.iteration == solver.num_iterations
    rebuilt = xpnet.load_model(tmp_path / "old.npz", backend=backend)
    assert rebuilt.config["hidden_dims"] == [8] and rebuilt.normalization == "batchnorm"


def test_version_1_best_model_loads(backend, tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"W1": rng.standard_normal((64, 6)).astype(np.float32),
              "b1": np.zeros(6, np.float32), "gamma1": np.ones(6, np.float32),
              "beta1": np.zeros(6, np.float32), "W2": rng.standard_normal((6, 10)),
              "b2": np.zeros(10), "running_mean1": np.full(6, 0.5, np.float32),
              "running_var1": np.full(6, 3.0, np.float32)}
    arrays["W2"] = arrays["W2"].astype(np.float32)
    arrays["b2"] = arrays["b2"].astype(np.float32)
    meta = {"format": "xpnet-model/1", "epoch": 3, "iteration": 12, "val_acc": 0.9,
            "model": "FullyConnectedNet", "hidden_dims": [6], "normalization": "batchnorm",
            "keep_ratio": 1.0, "input_shape": [8, 8], "num_classes": 10}
    save_arrays(tmp_path / "best_model.npz", arrays, meta)
    model = xpnet.load_model(tmp_path / "best_model.npz", backend=backend)
    assert model.config["hidden_dims"] == [6] and model.num_classes == 10
    np.testing.assert_array_equal(xpnet.to_numpy(model.buffers["running_var1"]),
                                  np.full(6, 3.0, np.float32))
    X = rng.standard_normal((3, 8, 8)).astype(np.float32)
    h = (X.reshape(3, 64) @ arrays["W1"] - 0.5) / np.sqrt(3.0 + 1e-5)
    expected = np.maximum(h, 0) @ arrays["W2"]
    np.testing.assert_allclose(xpnet.to_numpy(model.loss(X)), expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------
# Files that cannot be read


def test_unknown_version_names_the_file(tmp_path):
    path = tmp_path / "future.npz"
    save_arrays(path, {"params/W1": np.zeros((2, 2))},
                {"format": "xpnet", "version": 7, "kind": "model", "model": {}})
    with pytest.raises(xpnet.CheckpointError, match=r"future\.npz has format version 7.*upgrade"):
        xpnet.load_model(path)


def test_truncated_file_names_the_file(backend, tmp_path):
    model = FullyConnectedNet([4], input_dim=3, num_classes=2, backend=backend)
    path = xpnet.save_model(tmp_path / "m.npz", model)
    payload = path.read_bytes()
    path.write_bytes(payload[: len(payload) // 2])
    with pytest.raises(xpnet.CheckpointError, match=r"m\.npz is truncated"):
        xpnet.load_model(path)


def test_foreign_npz_and_unknown_class(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.arange(3))
    with pytest.raises(xpnet.CheckpointError, match=r"plain\.npz is not an xpnet checkpoint"):
        xpnet.load_model(tmp_path / "plain.npz")
    save_arrays(tmp_path / "alien.npz", {}, {"format": "xpnet", "version": 2, "kind": "model",
                                             "model": {"class": "mylab.Net", "config": {}}})
    with pytest.raises(xpnet.CheckpointError, match="mylab.Net, which is not defined"):
        xpnet.load_model(tmp_path / "alien.npz")


def test_header_is_plain_json(tmp_path, backend):
    model = FullyConnectedNet([4], input_dim=3, num_classes=2, backend=backend)
    path = xpnet.save_model(tmp_path / "m.npz", model)
    with np.load(path, allow_pickle=False) as f:  # no pickle anywhere
        header = json.loads(f["__meta__.json"].tobytes())
    assert header["model"]["class"] == "xpnet.classifiers.fc_net.FullyConnectedNet"
    assert load_arrays(path)[0]["params/W1"].shape == (3, 4)
