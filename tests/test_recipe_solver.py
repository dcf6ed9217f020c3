"""The recipe's Solver options: parameter groups, augmentations that need the
minibatch's rows, test-time augmentation levels, keep_best, and the speed
record's recipe end to end on a small synthetic set."""

from __future__ import annotations

import numpy as np
import pytest
from one_rank import OneRank

import xpnet
from xpnet import Solver
from xpnet.airbench import (
    MUON_HEAD,
    airbench_muon_solver_options,
    airbench_net,
    airbench_solver_options,
    prepare,
)
from xpnet.augment import AlternatingFlip, Compose, RandomTranslate
from xpnet.ema import Lookahead
from xpnet.errors import InputError
from xpnet.nn import GELU, Affine, Conv, Flatten, Sequential, SpatialBatchNorm
from xpnet.nn.model import Model
from xpnet.recipe import FreezeAfter


class ConstantGradients(Model):
    """params W (2, 3), beta (3,); every loss call returns gradient 1 for each."""

    def __init__(self, backend):
        self.backend = xpnet.get_backend(backend)
        self.dtype = self.backend.dtype("float64")
        self.num_classes = 3
        self.params = {"W": self.backend.asarray(np.zeros((2, 3))),
                       "beta": self.backend.asarray(np.zeros(3))}

    @property
    def config(self):
        return {}

    def loss(self, X, y=None):
        xp = self.backend.xp
        n = X.shape[0]
        if y is None:
            return xp.zeros((n, 3), dtype=self.dtype)
        grads = {k: xp.ones_like(v) for k, v in self.params.items()}
        return xp.asarray(0.0, dtype=self.dtype), grads


def flat_data(n=8):
    X = np.zeros((n, 2))
    y = np.arange(n) % 3
    return {"X_train": X, "y_train": y, "X_val": X, "y_val": y}


def test_solver_param_groups_rates_and_schedules(backend):
    model = ConstantGradients(backend)
    solver = Solver(model, flat_data(), update_rule="sgd",
                    optim_config={"learning_rate": 0.01},
                    param_groups=[{"params": "beta", "learning_rate": 0.64}],
                    lr_schedule=lambda i, total: 0.5, batch_size=4, num_epochs=1,
                    verbose=False, seed=0, keep_best=False)
    solver.train()  # 2 steps at half the rate: W -= 2 * 0.005, beta -= 2 * 0.32
    np.testing.assert_allclose(xpnet.to_numpy(model.params["W"]), -0.01, rtol=1e-12)
    np.testing.assert_allclose(xpnet.to_numpy(model.params["beta"]), -0.64, rtol=1e-12)
    assert solver.optim_configs["beta"]["learning_rate"] == pytest.approx(0.32)
    with pytest.raises(InputError, match="'params'"):
        Solver(model, flat_data(), param_groups=[{"learning_rate": 1.0}], verbose=False)


def small_conv_net(backend, filters: int) -> Sequential:
    """conv (no bias) - batchnorm (no scale) - GELU - affine on (2, 4, 4) inputs, float64."""
    return Sequential(Conv(filters, bias=False), SpatialBatchNorm(scale=False), GELU(),
                      Flatten(), Affine(3), input_shape=(2, 4, 4), dtype="float64", seed=0,
                      backend=backend)


def test_solver_muon_for_filters_and_nesterov_for_the_rest(backend):
    model = small_conv_net(backend, 4)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((24, 2, 4, 4)), rng.integers(0, 3, 24)
    solver = Solver(model, {"X_train": X, "y_train": y, "X_val": X, "y_val": y},
                    update_rule="sgd_momentum",
                    optim_config={"learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
                    param_groups=[{"params": lambda name, w: w.ndim == 4,
                                   "update_rule": "muon", "learning_rate": 0.1,
                                   "momentum": 0.6, "ns_steps": 3}],
                    batch_size=8, num_epochs=2, verbose=False, seed=0)
    before = xpnet.to_numpy(model.params["0.W"]).copy()
    solver.train()
    assert "momentum_buffer" in solver.optim_configs["0.W"]
    assert "velocity" in solver.optim_configs["4.W"]
    assert not np.array_equal(xpnet.to_numpy(model.params["0.W"]), before)
    assert np.isfinite(solver.loss_history).all()


class Recorder:
    """An augmentation that needs the rows: checks them against the training set."""

    uses_indices = True

    def __init__(self, X):
        self.X, self.calls = X, []

    def __call__(self, x, stream, *, indices, epoch, num_samples):
        idx = xpnet.to_numpy(indices)
        np.testing.assert_array_equal(xpnet.to_numpy(x), self.X[idx])
        self.calls.append((epoch, num_samples, len(idx)))
        return x


def test_indexed_augmentation_gets_the_rows_the_epoch_and_the_size(backend):
    model = ConstantGradients(backend)
    data = flat_data(12)
    data["X_train"] = np.arange(24.0).reshape(12, 2)
    aug = Recorder(data["X_train"])
    Solver(model, data, batch_size=4, num_epochs=2, augment=aug, verbose=False,
           seed=1).train()
    assert aug.calls == [(0, 12, 4)] * 3 + [(1, 12, 4)] * 3


def test_check_accuracy_with_test_time_augmentation_levels(backend):
    model = Sequential(Conv(3), GELU(), Flatten(), Affine(4), input_shape=(2, 5, 6),
                       dtype="float64", seed=1, backend=backend)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 2, 5, 6))
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    views = [(1 / 4, x), (1 / 4, x[..., ::-1])] + [
        (1 / 8, v) for s in (padded[:, :, :5, :6], padded[:, :, 2:, 2:]) for v in (s, s[..., ::-1])]
    scores = {0: xpnet.to_numpy(model.loss(x)),
              2: sum(w * xpnet.to_numpy(model.loss(np.ascontiguousarray(v))) for w, v in views)}
    y = np.argmax(scores[2], axis=1)
    y[0] = (y[0] + 1) % 4
    data = {"X_train": x, "y_train": y, "X_val": x, "y_val": y}
    for level in (0, 2):
        solver = Solver(model, data, test_time_augment=level, verbose=False, seed=0)
        expected = np.mean(np.argmax(scores[level], axis=1) == y)
        assert solver.check_accuracy(x, y) == pytest.approx(expected)
    with pytest.raises(InputError, match="test_time_augment"):
        Solver(model, data, test_time_augment=3, verbose=False)


def test_keep_best_false_ends_with_the_last_step(backend):
    model = Sequential(Flatten(), Affine(3), input_shape=(2,), dtype="float64", seed=0,
                       backend=backend)
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((20, 2)), rng.integers(0, 3, 20)
    last = {}

    def watch(solver, event):
        if event == "iteration":
            last.update({k: xpnet.to_numpy(v).copy() for k, v in model.params.items()})

    solver = Solver(model, {"X_train": X, "y_train": y, "X_val": X[:5], "y_val": y[:5]},
                    update_rule="sgd", optim_config={"learning_rate": 0.5}, batch_size=5,
                    num_epochs=3, verbose=False, seed=0, callback=watch, keep_best=False)
    solver.train()
    for name, value in last.items():
        np.testing.assert_array_equal(xpnet.to_numpy(model.params[name]), value)


def test_the_record_recipe_runs_end_to_end(backend):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((48, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 48)
    model = airbench_net((4, 8, 8), gelu="tanh", seed=0, backend=backend)
    prepare(model, X)
    options = airbench_solver_options(batch_size=16, epochs=2, whiten_bias_epochs=1,
                                      tta_level=1)
    solver = Solver(model, {"X_train": X, "y_train": y, "X_val": X[:16], "y_val": y[:16]},
                    verbose=False, seed=0, num_train_samples=16, **options)
    solver.train()
    assert model.frozen == ["0.W", "0.b"]  # the whitening bias froze after epoch 1
    assert np.isfinite(solver.loss_history).all() and len(solver.loss_history) == 6
    lookahead = options["after_step"].__self__
    assert lookahead.updates == 6 // 5 + 1


def test_after_step_lookahead_is_what_the_last_check_sees(backend):
    model = small_conv_net(backend, 3)
    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((20, 2, 4, 4)), rng.integers(0, 3, 20)
    la = Lookahead(every=2, decay=0.5)
    checked = []

    def at_checks(solver, event):
        if event == "epoch":
            checked.append({k: xpnet.to_numpy(v).copy() for k, v in model.params.items()})

    solver = Solver(model, {"X_train": X, "y_train": y, "X_val": X, "y_val": y},
                    update_rule="sgd_momentum", optim_config={"learning_rate": 0.1},
                    batch_size=5, num_epochs=2, verbose=False, seed=0, keep_best=False,
                    after_step=la.after_step, callback=at_checks)
    solver.train()
    assert la.updates == 8 // 2 + 1
    for name, value in checked[-1].items():  # the final check saw the average
        np.testing.assert_array_equal(value, xpnet.to_numpy(la.average[name]))
        np.testing.assert_array_equal(xpnet.to_numpy(model.params[name]), value)


def test_the_muon_record_recipe_runs_end_to_end(backend):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((32, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    model = airbench_net((4, 8, 8), gelu="tanh", seed=0, backend=backend, **MUON_HEAD)
    prepare(model, X)
    options = airbench_muon_solver_options(batch_size=16, epochs=2, whiten_bias_epochs=1,
                                           tta_level=0)
    solver = Solver(model, {"X_train": X, "y_train": y, "X_val": X[:16], "y_val": y[:16]},
                    verbose=False, seed=0, num_train_samples=16, **options)
    solver.train()
    assert np.isfinite(solver.loss_history).all()
    assert "momentum_buffer" in solver.optim_configs["2.W"]
    assert "velocity" in solver.optim_configs["4.beta"] and "velocity" in solver.optim_configs[
        "25.W"]
    # Muon normalizes every trained filter bank to Frobenius norm sqrt(F) before its step
    w = xpnet.to_numpy(model.params["9.W"])
    assert 0.5 * np.sqrt(w.shape[0]) < np.linalg.norm(w) < 1.5 * np.sqrt(w.shape[0])


def test_resuming_after_a_freeze_follows_the_same_trajectory(backend, tmp_path):
    rng = np.random.default_rng(8)
    X = rng.standard_normal((24, 2, 4, 4))
    y = rng.integers(0, 3, 24)
    data = {"X_train": X, "y_train": y, "X_val": X[:8], "y_val": y[:8]}

    def run(epochs, checkpoint=None, resume=None):
        model = Sequential(Conv(3), SpatialBatchNorm(scale=False), GELU(), Flatten(),
                           Affine(3), input_shape=(2, 4, 4), dtype="float64", seed=0,
                           backend=backend)
        solver = Solver(model, data, update_rule="sgd_momentum",
                        optim_config={"learning_rate": 0.05}, batch_size=8,
                        num_epochs=epochs, verbose=False, seed=0, keep_best=False,
                        callback=FreezeAfter("0.b", 1), checkpoint_name=checkpoint)
        if resume is not None:
            solver.load_checkpoint(resume)
            assert model.frozen == ["0.b"]
        solver.train()
        return model

    whole = run(3)
    run(2, checkpoint=str(tmp_path / "run"))
    resumed = run(3, resume=str(tmp_path / "run_epoch_2.npz"))
    assert resumed.frozen == whole.frozen == ["0.b"]
    for name, value in whole.params.items():
        np.testing.assert_array_equal(xpnet.to_numpy(resumed.params[name]),
                                      xpnet.to_numpy(value))


def test_data_parallel_step_gives_alternating_flips_their_rows(backend):
    rng = np.random.default_rng(9)
    X, y = rng.standard_normal((16, 2, 4, 4)), rng.integers(0, 3, 16)
    data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    finals = []
    for comm in (None, OneRank()):
        model = Sequential(Conv(3), GELU(), Flatten(), Affine(3), input_shape=(2, 4, 4),
                           dtype="float64", seed=0, backend=backend)
        Solver(model, data, update_rule="sgd", optim_config={"learning_rate": 0.1},
               batch_size=4, num_epochs=2, verbose=False, seed=0, keep_best=False,
               augment=Compose(AlternatingFlip(), RandomTranslate(1)),
               communicator=comm).train()
        finals.append({k: xpnet.to_numpy(v) for k, v in model.params.items()})
    for name, value in finals[0].items():
        np.testing.assert_array_equal(finals[1][name], value)
