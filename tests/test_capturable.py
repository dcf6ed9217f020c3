"""The capture-ready step and data kept on the host (the CPU-testable half of the GPU issue).

- the counter-based device stream gives the same integers and uniforms on every
  backend, restores from its state, and is uniform;
- a capturable Solver (device scalars, device stream, loss buffer) follows the
  ordinary step's trajectory on the same stream, for every built-in rule, and
  resumes bit for bit;
- a training set kept on the host, moved batch by batch, gives the resident
  trajectory.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xpnet
from xpnet import FullyConnectedNet, Solver
from xpnet._ops.counter_random import CounterStream
from xpnet.augment import RandomCropFlip
from xpnet.nn import (
    Affine,
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    ReLU,
    Sequential,
    SpatialBatchNorm,
)


def other_backends():
    return [b for b in xpnet.available_backends() if b != "cupy"]


def test_counter_stream_is_the_same_on_every_backend(backend):
    draws = {}
    for name in {backend.name, *other_backends()}:
        stream = CounterStream(xpnet.get_backend(name), seed=11)
        draws[name] = [xpnet.to_numpy(stream.integers(49000, 50)),
                       xpnet.to_numpy(stream.uniform((7, 3), "float32")),
                       xpnet.to_numpy(stream.uniform((9,), "float64"))]
    reference = draws[backend.name]
    for name, values in draws.items():
        for a, b in zip(values, reference, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_counter_stream_state_and_uniformity(backend):
    stream = CounterStream(backend, seed=3)
    stream.integers(10, 5)
    state = stream.state()
    ahead = xpnet.to_numpy(stream.uniform((4,), "float64"))
    again = CounterStream(backend, seed=99)
    again.set_state(state)
    np.testing.assert_array_equal(xpnet.to_numpy(again.uniform((4,), "float64")), ahead)
    u = xpnet.to_numpy(stream.uniform((100_000,), "float32"))
    assert 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    counts = np.bincount(xpnet.to_numpy(stream.integers(10, 100_000)), minlength=10)
    chi2 = ((counts - 10_000) ** 2 / 10_000).sum()
    assert chi2 < 30  # 9 degrees of freedom: p < 0.001 above ~27.9
    z = xpnet.to_numpy(stream.normal((50_000,), dtype="float64"))
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02


def data(n=80, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3, 4, 4)).astype(np.float32)
    y = rng.integers(4, size=n)
    return {"X_train": X, "y_train": y, "X_val": X[:20], "y_val": y[:20]}


def make(backend, rule, config, dtype="float32", **solver_options):
    model = FullyConnectedNet([10, 8], input_dim=48, num_classes=4, dropout_keep_ratio=0.8,
                              dtype=dtype, seed=1, backend=backend)
    model.dropout_param.pop("seed")  # masks from the Solver's stream
    return Solver(model, data(), update_rule=rule, optim_config=dict(config), lr_decay=0.8,
                  batch_size=20, num_epochs=3, verbose=False, seed=5, **solver_options)


RULES = [
    ("sgd", {"learning_rate": 0.05}),
    ("sgd_momentum", {"learning_rate": 0.05, "nesterov": True, "weight_decay": 1e-3}),
    ("rmsprop", {"learning_rate": 1e-3}),
    ("adam", {"learning_rate": 1e-2, "weight_decay": 1e-3}),
    ("adagrad", {"learning_rate": 1e-2}),
]


@pytest.mark.parametrize("rule, config", RULES, ids=[r for r, _ in RULES])
def test_the_capturable_step_follows_the_ordinary_one(backend, rule, config):
    ordinary = make(backend, rule, config, device_random=True)
    captured = make(backend, rule, config, capturable=True)
    assert captured.capturable and captured.capture_problem is None
    with xpnet.fast_paths_disabled():  # the capturable step runs the references
        ordinary.train()
    captured.train()
    np.testing.assert_allclose(captured.loss_history, ordinary.loss_history, rtol=1e-5)
    assert captured.val_acc_history == ordinary.val_acc_history
    for name, value in ordinary.model.params.items():
        np.testing.assert_allclose(xpnet.to_numpy(captured.model.params[name]),
                                   xpnet.to_numpy(value), rtol=1e-5, atol=1e-6, err_msg=name)


def test_device_random_runs_are_the_same_on_every_backend(backend):
    runs = {}
    start = make(xpnet.get_backend("numpy"), "sgd", {}, dtype="float64").model.params
    for name in {backend.name, *other_backends()}:
        solver = make(xpnet.get_backend(name), "adam", {"learning_rate": 1e-2},
                      dtype="float64", device_random=True)
        for key, value in start.items():  # the same initial weights everywhere
            solver.model.params[key] = solver.backend.asarray(xpnet.to_numpy(value))
        with xpnet.fast_paths_disabled():
            solver.train()
        runs[name] = solver.loss_history
    for name, losses in runs.items():
        np.testing.assert_allclose(losses, runs[backend.name], rtol=1e-9, err_msg=name)


def test_capturable_resume_is_bit_exact(backend, tmp_path):
    straight = make(backend, "adam", {"learning_rate": 1e-2}, capturable=True,
                    checkpoint_name=str(tmp_path / "ck"))
    straight.train()
    resumed = make(backend, "adam", {"learning_rate": 1e-2}, capturable=True)
    resumed.load_checkpoint(str(tmp_path / "ck_epoch_1.npz"))
    resumed.train()
    assert resumed.loss_history == straight.loss_history
    for name, value in straight.model.params.items():
        np.testing.assert_array_equal(xpnet.to_numpy(resumed.model.params[name]),
                                      xpnet.to_numpy(value), err_msg=name)


def test_steps_without_flushes_lose_no_loss(backend):
    solver = make(backend, "sgd", {"learning_rate": 0.05}, capturable=True)
    steps = 3 * solver.losses.buffer.capacity + 2
    for _ in range(steps):
        solver._step()
    assert len(solver.loss_history) == steps


@pytest.mark.parametrize("options, reason", [
    ({"update_rule": lambda w, dw, c: (w, c)}, "is not one of the built-in rules"),
    ({"lr_schedule": "cosine"}, "per-iteration lr_schedule"),
    ({"data_on_device": False}, "training set stays on the host"),
])
def test_what_cannot_be_captured_falls_back_with_a_reason(backend, options, reason):
    model = FullyConnectedNet([5], input_dim=48, num_classes=4, seed=1, backend=backend)
    with pytest.warns(UserWarning, match=f"the step runs uncaptured: .*{reason}"):
        solver = Solver(model, data(), optim_config={"learning_rate": 0.1}, verbose=False,
                        capturable=True, **options)
    assert not solver.capturable
    solver.train()  # and it trains the ordinary way


@pytest.mark.parametrize("augment", [False, True])
def test_data_kept_on_the_host_gives_the_resident_trajectory(backend, augment):
    runs = []
    for on_device in (True, False):
        solver = make(backend, "adam", {"learning_rate": 1e-2}, data_on_device=on_device,
                      augment=RandomCropFlip(1) if augment else None)
        assert solver.data_on_device is on_device
        assert isinstance(solver.X_train, np.ndarray) or on_device
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            solver.train()
        runs.append(solver)
    resident, streamed = runs
    assert streamed.loss_history == resident.loss_history
    assert streamed.train_acc_history == resident.train_acc_history
    for name, value in resident.model.params.items():
        np.testing.assert_array_equal(xpnet.to_numpy(streamed.model.params[name]),
                                      xpnet.to_numpy(value), err_msg=name)


def step_state(solver):
    """Every array a capturable step writes: parameters, the rule's state and device
    scalars, batchnorm running statistics, the loss buffer and the stream's counter."""
    arrays = {f"params/{k}": v for k, v in solver.model.params.items()}
    for name, config in solver.optim_configs.items():
        arrays.update({f"optim/{name}/{k}": v for k, v in config.items()
                       if solver.backend.owns(v)})
    arrays.update({f"buffers/{k}": v for k, v in solver.model.buffers.items()})
    capture, losses = solver.updater.capture, solver.losses.buffer
    arrays.update({"lr": capture.lr, "t": capture.t, "losses": losses.values,
                   "loss_position": losses.position, "counter": solver.random.counter})
    return arrays


def addresses(arrays):
    return {k: v.data_ptr() for k, v in arrays.items() if hasattr(v, "data_ptr")}


def capture_model(kind, backend):
    if kind == "fc":
        model = FullyConnectedNet([10, 8], input_dim=48, num_classes=4, dropout_keep_ratio=0.8,
                                  normalization="batchnorm", seed=1, backend=backend)
        model.dropout_param.pop("seed")  # masks from the Solver's stream
        return model
    return Sequential(Conv(4), SpatialBatchNorm(), ReLU(), Dropout(0.8), Flatten(),
                      Affine(8), BatchNorm(), ReLU(), Affine(4), input_shape=(3, 4, 4),
                      seed=1, backend=backend)


@pytest.mark.parametrize("kind", ["fc", "sequential"])
@pytest.mark.parametrize("rule", ["sgd_momentum", "adam"])
def test_the_capturable_step_rebinds_nothing(backend, rule, kind):
    model = capture_model(kind, backend)
    solver = Solver(model, data(), update_rule=rule, optim_config={"learning_rate": 1e-2},
                    lr_decay=0.8, batch_size=20, num_epochs=2, verbose=False, seed=5,
                    capturable=True)
    assert solver.capturable
    solver._step()  # the first step makes the state (its own copies, zeros, statistics)
    before = step_state(solver)
    values = {k: xpnet.to_numpy(v).copy() for k, v in before.items()}
    pointers = addresses(before)
    for _ in range(3):
        solver._step()
    after = step_state(solver)
    assert after.keys() == before.keys()
    state_arrays = 1 if rule == "sgd_momentum" else 2  # velocity; m and v
    assert sum(k.startswith("optim/") for k in before) == state_arrays * len(model.params)
    assert sum(k.startswith("buffers/") for k in before) == 4  # two batchnorm layers
    first_w = next(k for k in before if k.startswith("params/") and "W" in k)
    last_var = [k for k in before if k.startswith("buffers/") and "running_var" in k][-1]
    for key, value in after.items():
        assert value is before[key], f"{key} was rebound"
    assert addresses(after) == pointers
    # and the step did write them
    state = "velocity" if rule == "sgd_momentum" else "m"
    for key in (first_w, last_var, "counter", "loss_position",
                f"optim/{first_w[len('params/'):]}/{state}"):
        assert not np.array_equal(xpnet.to_numpy(after[key]), values[key]), key
    assert len(solver.loss_history) == 4
    solver.train()  # epoch ends, accuracy checks, decay and the best state restored
    after_training = step_state(solver)
    for key, value in after_training.items():
        assert value is before[key], f"{key} was rebound by train()"
    assert addresses(after_training) == pointers



def test_a_custom_rule_assigned_later_ends_the_capture_with_a_warning(backend):
    solver = make(backend, "sgd", {"learning_rate": 0.05}, capturable=True)
    calls = []

    def halve(w, dw, config):
        calls.append(1)
        return w * 0.5, config

    with pytest.warns(UserWarning, match="runs uncaptured from now on"):
        solver.update_rule = halve
    assert not solver.capturable
    before = {k: xpnet.to_numpy(v).copy() for k, v in solver.model.params.items()}
    solver._step()
    assert len(calls) == len(before)
    for name, value in before.items():
        np.testing.assert_array_equal(xpnet.to_numpy(solver.model.params[name]), value * 0.5)
