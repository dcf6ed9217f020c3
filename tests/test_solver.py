"""The Solver: memorising a small set, histories, decay, checkpoints, resume, divergence."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import xpnet
from xpnet import FullyConnectedNet, Solver, TrainingDivergedError
from xpnet.files import load_arrays

# every test here runs with the registered fast paths and with the references only
pytestmark = pytest.mark.usefixtures("fast_paths")


def random_cifar(n, seed=0, classes=10):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3, 32, 32)).astype(np.float32)
    y = rng.integers(classes, size=n)
    return X, y


def small_data(n_train=60, n_val=20, d=12, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, d)) * 3
    y = rng.integers(classes, size=n_train + n_val)
    X = (centers[y] + rng.standard_normal((n_train + n_val, d))).astype(np.float32)
    return {"X_train": X[:n_train], "y_train": y[:n_train],
            "X_val": X[n_train:], "y_val": y[n_train:]}


def test_three_layer_net_memorises_50_cifar_shaped_examples(backend):
    X, y = random_cifar(50)
    data = {"X_train": X, "y_train": y, "X_val": X[:10], "y_val": y[:10]}
    model = FullyConnectedNet([100, 100], weight_scale=5e-2, seed=0, backend=backend)
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                    batch_size=25, num_epochs=15, print_every=1000, verbose=False, seed=0)
    solver.train()
    assert solver.train_acc_history[-1] == 1.0
    assert solver.loss_history[-1] < 0.05 * solver.loss_history[0]


def test_histories_best_params_and_decay(backend):
    data = small_data()
    model = FullyConnectedNet([16], input_dim=12, num_classes=4, seed=1, backend=backend)
    solver = Solver(model, data, update_rule="sgd_momentum",
                    optim_config={"learning_rate": 0.05}, lr_decay=0.5, batch_size=20,
                    num_epochs=3, verbose=False, seed=1)
    solver.train()
    assert solver.iterations_per_epoch == 3
    assert len(solver.loss_history) == 9
    assert all(isinstance(v, float) for v in solver.loss_history)
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 4  # start + 3 epochs
    assert solver.best_val_acc == max(solver.val_acc_history)
    for config in solver.optim_configs.values():
        assert config["learning_rate"] == pytest.approx(0.05 * 0.5**3)
    assert backend.owns(solver.X_train) and backend.owns(solver.y_val)


def bn_net_accuracy(params, buffers, X, y, eps=1e-5):
    """Validation accuracy of a one-hidden-layer batchnorm net in test mode, in NumPy:
    affine, batchnorm with the running statistics, ReLU, affine."""
    h = X.astype(np.float64) @ params["W1"] + params["b1"]
    h = params["gamma1"] * (h - buffers["running_mean1"]) / np.sqrt(
        buffers["running_var1"] + eps) + params["beta1"]
    scores = np.maximum(h, 0) @ params["W2"] + params["b2"]
    return float(np.mean(np.argmax(scores, axis=1) == y))


def test_train_ends_with_the_best_epochs_params_and_buffers(backend):
    data = small_data()
    model = FullyConnectedNet([16], input_dim=12, num_classes=4, normalization="batchnorm",
                              seed=1, backend=backend)
    garbage = np.random.default_rng(5)
    epochs = {}  # the state seen at every accuracy check

    def spoil_the_last_epoch(s, event):
        if event == "epoch":
            epochs[len(s.val_acc_history) - 1] = (params_of(model), buffers_of(model))
        elif s.epoch == s.num_epochs - 1:  # every step of the last epoch starts from noise
            for name, value in model.params.items():
                noise = 10 * garbage.standard_normal(tuple(value.shape))
                model.params[name] = backend.asarray(noise.astype(np.float32))

    solver = Solver(model, data, update_rule="sgd_momentum",
                    optim_config={"learning_rate": 0.05}, batch_size=20, num_epochs=4,
                    num_val_samples=None, verbose=False, seed=1, callback=spoil_the_last_epoch)
    solver.train()
    best = int(np.argmax(solver.val_acc_history))
    assert solver.val_acc_history[-1] < solver.best_val_acc == solver.val_acc_history[best]
    best_params, best_buffers = epochs[best]
    # the best epoch's running statistics differ from the last epoch's
    assert any(not np.array_equal(best_buffers[k], v) for k, v in epochs[4][1].items())
    for name, value in best_params.items():
        np.testing.assert_array_equal(params_of(model)[name], value, err_msg=name)
    for name, value in best_buffers.items():
        np.testing.assert_array_equal(buffers_of(model)[name], value, err_msg=name)
    X_val, y_val = data["X_val"], data["y_val"]
    assert bn_net_accuracy(best_params, best_buffers, X_val, y_val) == solver.best_val_acc
    assert solver.check_accuracy(X_val, y_val) == solver.best_val_acc


class Quadratic:
    """``loss = 0.5 * sum((p - target)**2)``: each gradient is ``p - target`` whatever
    the batch, so the trajectory is the update rule's alone."""

    num_classes = 2

    def __init__(self, backend):
        rng = np.random.default_rng(3)
        self.backend = backend
        self.start = {"W": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
        self.target = {"W": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
        self.params = {k: backend.asarray(v) for k, v in self.start.items()}

    def loss(self, X, y=None):
        xp = self.backend.xp
        if y is None:
            return xp.zeros((X.shape[0], 2), dtype=xp.float64, device=self.backend.device)
        grads = {k: v - self.backend.asarray(self.target[k]) for k, v in self.params.items()}
        return sum(0.5 * xp.sum(g * g) for g in grads.values()), grads


def test_a_rule_assigned_after_init_is_the_one_used(backend):
    model = Quadratic(backend)
    X, y = np.zeros((20, 1)), np.zeros(20, dtype=np.int64)
    solver = Solver(model, {"X_train": X, "y_train": y, "X_val": X, "y_val": y},
                    update_rule="sgd", optim_config={"learning_rate": 0.1}, batch_size=10,
                    verbose=False, seed=0)
    solver.update_rule = lambda w, dw, config: (w - 0.5 * dw, config)  # the course's way
    for _ in range(3):
        solver._step()
    for k, start in model.start.items():  # p - target halves every step
        expected = model.target[k] + (start - model.target[k]) * 0.5**3
        np.testing.assert_allclose(xpnet.to_numpy(model.params[k]), expected, rtol=1e-12)
    now = params_of(model)
    solver.update_rule = xpnet.optim.sgd_momentum  # a built-in rule: updated in place
    assert solver._inplace_update is not None
    for _ in range(2):
        solver._step()
    for k, p in now.items():  # v1 = -lr g1, p1 = p + v1; v2 = 0.9 v1 - lr g2, p2 = p1 + v2
        v1 = -0.1 * (p - model.target[k])
        p1 = p + v1
        p2 = p1 + (0.9 * v1 - 0.1 * (p1 - model.target[k]))
        np.testing.assert_allclose(xpnet.to_numpy(model.params[k]), p2, rtol=1e-12)


def test_verbose_output_follows_cs231n(backend, capsys):
    data = small_data()
    model = FullyConnectedNet([8], input_dim=12, num_classes=4, seed=1, backend=backend)
    Solver(model, data, num_epochs=1, batch_size=20, print_every=2, seed=0).train()
    out = capsys.readouterr().out
    assert "(Iteration 1 / 3) loss:" in out and "(Iteration 3 / 3) loss:" in out
    assert "(Epoch 0 / 1) train acc:" in out and "(Epoch 1 / 1) train acc:" in out


class FixedScores:
    """A model whose predictions are known: class = first feature."""

    num_classes = 3

    def __init__(self, backend):
        self.backend = backend
        self.params = {"W": backend.asarray(np.zeros((1, 1)))}

    def loss(self, X, y=None):
        xp = self.backend.xp
        labels = xp.astype(X[:, 0], xp.int64)
        return xp.astype(labels[:, None] == xp.arange(3)[None, :], xp.float64)


def test_check_accuracy_hand_computed(backend):
    X = np.array([[0.0], [1.0], [2.0], [1.0], [0.0]])
    y = np.array([0, 1, 1, 1, 2])  # predictions 0,1,2,1,0 -> 3 of 5 right
    data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    solver = Solver(FixedScores(backend), data, verbose=False)
    assert solver.check_accuracy(X, y, batch_size=2) == pytest.approx(0.6)


def run(backend, data, tmp_path, num_epochs=3, checkpoint=True, **kwargs):
    model = FullyConnectedNet([16], input_dim=12, num_classes=4, dropout_keep_ratio=0.8,
                              normalization="batchnorm", seed=4, backend=backend)
    model.dropout_param.pop("seed")  # fresh masks every step, from the backend's stream
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-2},
                    lr_decay=0.9, batch_size=20, num_epochs=num_epochs, verbose=False,
                    checkpoint_name=str(tmp_path / "ck") if checkpoint else None, seed=7,
                    **kwargs)
    return model, solver


def params_of(model):
    return {k: xpnet.to_numpy(v).copy() for k, v in model.params.items()}


def buffers_of(model):
    return {k: xpnet.to_numpy(v).copy() for k, v in model.buffers.items()}


def test_resume_from_epoch_checkpoint_gives_the_same_weights(backend, tmp_path):
    data = small_data()
    model, solver = run(backend, data, tmp_path)
    solver.train()
    expected = params_of(model)
    assert sorted(p.name for p in tmp_path.glob("ck_epoch_*.npz")) == [
        "ck_epoch_1.npz", "ck_epoch_2.npz", "ck_epoch_3.npz"]

    model2, solver2 = run(backend, data, tmp_path / "x", checkpoint=False)
    solver2.random.reseed(999)  # the checkpoint must restore the random stream
    solver2.load_checkpoint(str(tmp_path / "ck_epoch_1.npz"))
    solver2.train()
    for name, value in params_of(model2).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)
    assert solver2.loss_history == solver.loss_history
    assert solver2.val_acc_history == solver.val_acc_history


def test_ctrl_c_saves_a_checkpoint_and_resume_matches(backend, tmp_path):
    data = small_data()
    model, solver = run(backend, data, tmp_path / "a", checkpoint=False)
    solver.train()
    expected = params_of(model)

    (tmp_path / "b").mkdir()

    def interrupt_at_4(s, event):
        if event == "iteration" and s.iteration == 4:
            os.kill(os.getpid(), signal.SIGINT)

    model_i, solver_i = run(backend, data, tmp_path / "b", callback=interrupt_at_4)
    with pytest.raises(KeyboardInterrupt):
        solver_i.train()
    path = tmp_path / "b" / "ck_interrupted.npz"
    _, meta = load_arrays(path)
    assert meta["solver"]["iteration"] == 4  # saved between steps, never in the middle of one

    model_r, solver_r = run(backend, data, tmp_path / "c", checkpoint=False)
    solver_r.load_checkpoint(str(path))
    solver_r.train()
    for name, value in params_of(model_r).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(backend, tmp_path):
    data = small_data()
    calls = {"n": 0}

    def poisoned_sgd(w, dw, config):
        calls["n"] += 1
        if calls["n"] == 2 * 7:  # the 7th step's update (2 parameters) returns inf
            return w * float("inf"), config
        return w - 1e-2 * dw, config

    model = FullyConnectedNet([], input_dim=12, num_classes=4, seed=0, backend=backend)
    solver = Solver(model, data, update_rule=poisoned_sgd, batch_size=20, num_epochs=4,
                    checkpoint_name=str(tmp_path / "ck"), print_every=100, verbose=False)
    with pytest.raises(TrainingDivergedError, match=r"iteration 8.*lower the learning rate"):
        solver.train()
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == ["ck_epoch_1.npz", "ck_epoch_2.npz"]
    arrays, meta = load_arrays(tmp_path / "ck_epoch_2.npz")
    assert meta["solver"]["iteration"] == 6 and all(np.isfinite(a).all() for a in arrays.values())
    assert all(np.isfinite(v).all() for v in params_of(model).values())


def test_checkpoint_for_another_architecture_is_refused(backend, tmp_path):
    data = small_data()
    model, solver = run(backend, data, tmp_path, num_epochs=1)
    solver.train()
    other = FullyConnectedNet([32], input_dim=12, num_classes=4, seed=0, backend=backend)
    solver2 = Solver(other, data, update_rule="adam", verbose=False)
    with pytest.raises(ValueError, match="same architecture"):
        solver2.load_checkpoint(str(tmp_path / "ck_epoch_1.npz"))
