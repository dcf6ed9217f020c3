"""The training recipe: augmentation, learning-rate schedules, Nesterov momentum,
decoupled weight decay and test-time flips, each against values derived
independently here."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from xpnet import FullyConnectedNet, Solver, optim
from xpnet.augment import RandomCropFlip
from xpnet.nn import Affine, Flatten, Sequential
from xpnet.schedules import Cosine, OneCycle, get_schedule

# ---------------------------------------------------------------------------
# Augmentation


def images(n=6, c=2, h=5, w=4):
    """Every pixel distinct and nonzero, so a crop's source can be identified."""
    return (np.arange(n * c * h * w, dtype=np.float64).reshape(n, c, h, w) + 1.0)


def find_source(out, x, pad):
    """The (dy, dx, flipped) for which ``out`` is the crop of padded ``x``."""
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    h, w = x.shape[1:]
    found = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            for flipped, candidate in ((False, crop), (True, crop[:, :, ::-1])):
                if np.array_equal(out, candidate):
                    found.append((dy, dx, flipped))
    return found


def test_crops_stay_inside_the_padded_image_and_flips_are_exact_mirrors(backend):
    x = images()
    stream = backend.new_stream(3)
    out = xpnet.to_numpy(RandomCropFlip(pad=2, flip=True)(backend.asarray(x), stream))
    assert out.shape == x.shape
    for i in range(len(x)):
        assert find_source(out[i], x[i], pad=2), f"image {i} is no crop of its padded source"
    # without padding only mirrors are possible, and they are exact
    flips = xpnet.to_numpy(RandomCropFlip(pad=0, flip=True)(backend.asarray(x),
                                                            backend.new_stream(4)))
    for i in range(len(x)):
        assert np.array_equal(flips[i], x[i]) or np.array_equal(flips[i], x[i, :, :, ::-1])


def test_augmentation_covers_every_offset_and_both_orientations(backend):
    x = images(n=400, c=1, h=3, w=3)
    out = xpnet.to_numpy(RandomCropFlip(pad=1, flip=True)(backend.asarray(x),
                                                          backend.new_stream(5)))
    seen = {s for i in range(len(x)) for s in find_source(out[i], x[i], pad=1)}
    assert seen == {(dy, dx, f) for dy in range(3) for dx in range(3) for f in (False, True)}


def test_the_same_seed_gives_the_same_batches(backend):
    x = backend.asarray(images())
    aug = RandomCropFlip(pad=4)
    a = xpnet.to_numpy(aug(x, backend.new_stream(11)))
    b = xpnet.to_numpy(aug(x, backend.new_stream(11)))
    c = xpnet.to_numpy(aug(x, backend.new_stream(12)))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_the_solver_never_modifies_the_data_set(backend):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3, 8, 8)).astype(np.float32)
    y = rng.integers(4, size=40)
    model = Sequential(Flatten(), Affine(4), input_shape=(3, 8, 8), seed=0, backend=backend)
    solver = Solver(model, {"X_train": X, "y_train": y, "X_val": X[:8], "y_val": y[:8]},
                    update_rule="adam", optim_config={"learning_rate": 1e-2}, batch_size=10,
                    num_epochs=2, verbose=False, seed=1, augment=RandomCropFlip(4))
    before = xpnet.to_numpy(solver.X_train).copy()
    solver.train()
    np.testing.assert_array_equal(xpnet.to_numpy(solver.X_train), before)
    np.testing.assert_array_equal(before, X)
    again = Solver(model, {"X_train": X, "y_train": y, "X_val": X[:8], "y_val": y[:8]},
                   update_rule="adam", optim_config={"learning_rate": 1e-2}, batch_size=10,
                   num_epochs=2, verbose=False, seed=1, augment=RandomCropFlip(4))
    model.params = {k: backend.asarray(v) for k, v in
                    Sequential(Flatten(), Affine(4), input_shape=(3, 8, 8), seed=0,
                               backend=backend).params.items()}
    again.train()
    assert again.loss_history == solver.loss_history  # same seed, same run


# ---------------------------------------------------------------------------
# Schedules


def test_cosine_with_warmup_against_the_formula():
    total, warm = 100, 0.1
    schedule = Cosine(warmup=warm, min_factor=0.05)
    for t in range(total):
        if t < 10:
            expected = (t + 1) / 10
        else:
            expected = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (t - 10) / 90))
        assert schedule(t, total) == pytest.approx(expected, rel=1e-12)


def test_one_cycle_is_piecewise_linear():
    schedule = OneCycle(peak=0.25, start_factor=0.2, min_factor=0.0)
    total = 201  # t / (total - 1) runs 0, 0.005, ..., 1
    assert schedule(0, total) == pytest.approx(0.2)
    assert schedule(50, total) == pytest.approx(1.0)  # the peak at a quarter
    assert schedule(25, total) == pytest.approx(0.6)  # half way up
    assert schedule(125, total) == pytest.approx(0.5)  # half way down
    assert schedule(200, total) == pytest.approx(0.0)


def test_unknown_schedule_lists_the_known_ones():
    with pytest.raises(xpnet.InputError, match="unknown schedule 'linear'.*'cosine'"):
        get_schedule("linear")


def test_the_solver_follows_the_schedule_every_iteration(backend):
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((30, 6)).astype(np.float32), rng.integers(3, size=30)
    model = FullyConnectedNet([5], input_dim=6, num_classes=3, seed=0, backend=backend)
    seen = []
    solver = Solver(model, {"X_train": X, "y_train": y, "X_val": X, "y_val": y},
                    update_rule="sgd_momentum", optim_config={"learning_rate": 0.1},
                    batch_size=10, num_epochs=4, verbose=False, seed=2, lr_decay=0.5,
                    lr_schedule="cosine",
                    callback=lambda s, e: e == "iteration" and seen.append(
                        s.optim_configs["W1"]["learning_rate"]))
    solver.train()
    total = solver.num_iterations
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * t / total)) * 0.5 ** (t // 3)
                for t in range(total)]
    np.testing.assert_allclose(seen, expected, rtol=1e-12)


# ---------------------------------------------------------------------------
# Nesterov and decoupled weight decay


def test_nesterov_momentum_against_the_cs231n_notes_form(backend):
    rng = np.random.default_rng(3)
    w0, v0, dw = rng.standard_normal((3, 4, 5))
    lr, mu, wd = 0.05, 0.9, 0.01
    v = mu * v0 - lr * dw
    expected = w0 * (1 - lr * wd) - mu * v0 + (1 + mu) * v  # x += -mu v_prev + (1 + mu) v
    config = {"learning_rate": lr, "momentum": mu, "nesterov": True, "weight_decay": wd,
              "velocity": backend.asarray(v0)}
    next_w, config = optim.sgd_momentum(backend.asarray(w0), backend.asarray(dw), config)
    np.testing.assert_allclose(xpnet.to_numpy(next_w), expected, rtol=1e-12)
    np.testing.assert_allclose(xpnet.to_numpy(config["velocity"]), v, rtol=1e-12)
    # the Solver's in-place twin gives the same values
    w = backend.asarray(w0.copy())
    update = optim.inplace_update(optim.sgd_momentum)
    update(w, backend.asarray(dw), {"learning_rate": lr, "momentum": mu, "nesterov": True,
                                    "weight_decay": wd, "velocity": backend.asarray(v0)})
    np.testing.assert_allclose(xpnet.to_numpy(w), expected, rtol=1e-12)


def test_adam_with_decoupled_weight_decay(backend):
    rng = np.random.default_rng(4)
    w0, dw = rng.standard_normal((2, 6))
    lr, wd = 1e-2, 0.1
    m = 0.1 * dw
    v = 0.001 * dw**2
    expected = w0 - lr * wd * w0 - lr * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
    next_w, _ = optim.adam(backend.asarray(w0), backend.asarray(dw),
                           {"learning_rate": lr, "weight_decay": wd})
    np.testing.assert_allclose(xpnet.to_numpy(next_w), expected, rtol=1e-10)
    w = backend.asarray(w0.copy())
    optim.inplace_update(optim.adam)(w, backend.asarray(dw),
                                     {"learning_rate": lr, "weight_decay": wd})
    np.testing.assert_allclose(xpnet.to_numpy(w), expected, rtol=1e-6)


def test_without_the_new_keys_the_rules_are_the_courses(backend):
    rng = np.random.default_rng(5)
    w0, v0, dw = rng.standard_normal((3, 4))
    next_w, config = optim.sgd_momentum(backend.asarray(w0), backend.asarray(dw),
                                        {"velocity": backend.asarray(v0)})
    np.testing.assert_allclose(xpnet.to_numpy(next_w), w0 + 0.9 * v0 - 1e-2 * dw, rtol=1e-12)
    assert "nesterov" not in config and "weight_decay" not in config


# ---------------------------------------------------------------------------
# Test-time flips


def test_check_accuracy_averages_each_image_and_its_mirror(backend):
    rng = np.random.default_rng(6)
    X = rng.standard_normal((30, 1, 3, 3))
    y = rng.integers(2, size=30)
    model = Sequential(Flatten(), Affine(2), input_shape=(1, 3, 3), dtype="float64", seed=1,
                       backend=backend)
    W = xpnet.to_numpy(model.params["1.W"])
    b = xpnet.to_numpy(model.params["1.b"])
    flat, mirrored = X.reshape(30, 9), X[:, :, :, ::-1].reshape(30, 9)
    expected = np.mean(np.argmax(flat @ W + mirrored @ W + 2 * b, axis=1) == y)
    plain = np.mean(np.argmax(flat @ W + b, axis=1) == y)
    data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    solver = Solver(model, data, verbose=False, test_time_flip=True)
    assert solver.check_accuracy(X, y) == pytest.approx(expected)
    assert Solver(model, data, verbose=False).check_accuracy(X, y) == pytest.approx(plain)
