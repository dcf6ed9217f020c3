"""The speed record's training parts: lookahead (EMA of the weights copied back),
test-time augmentation levels 0-2 and the triangular schedule, each against values
computed independently here."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

import xpnet
from xpnet import Solver
from xpnet.ema import Lookahead, record_decay
from xpnet.errors import InputError
from xpnet.nn import GELU, Affine, Conv, Flatten, Sequential, SpatialBatchNorm
from xpnet.schedules import Triangle, get_schedule
from xpnet.training.updates import CourseUpdate
from xpnet.tta import tta_accuracy, tta_scores

# ---------------------------------------------------------------------------
# Lookahead


class FakeModel:
    def __init__(self, backend, values):
        self.params = {"w": backend.asarray(np.array(values, dtype=np.float64))}
        self.buffers = {"running_mean": backend.asarray(np.zeros(2)),
                        "count": backend.asarray(np.array([7]))}

    def load_buffers(self, buffers):
        self.buffers.update(buffers)


def test_lookahead_averages_every_k_steps_and_copies_back(backend):
    """The weights jump to hand-chosen values each step; the expected average is
    the lerp of the values seen at every k-th step, computed in plain Python."""
    model = FakeModel(backend, [0.0, 0.0])
    solver = SimpleNamespace(model=model, backend=backend, iteration=0, num_iterations=9,
                             updater=CourseUpdate(backend, None))
    decays = {t: 0.1 * t for t in range(10)}
    la = Lookahead(every=3, decay=lambda t, total: decays[t])
    rng = np.random.default_rng(0)
    avg = None
    for t in range(1, 10):
        new = rng.standard_normal(2)
        model.params["w"] = backend.asarray(new)
        model.buffers["running_mean"] = backend.asarray(new * 10)
        solver.iteration = t
        la(solver, "iteration")
        if avg is None:
            avg = new.copy()  # the average starts from the weights after the first step
        if t % 3 == 0:
            d = decays[t]
            avg = avg + (1 - d) * (new - avg)
            expected = avg
        else:
            expected = new
        np.testing.assert_allclose(xpnet.to_numpy(model.params["w"]), expected, rtol=1e-14)
        np.testing.assert_allclose(xpnet.to_numpy(model.buffers["running_mean"]),
                                   expected * 10, rtol=1e-14)
    assert la.updates == 3 + 1  # t = 3, 6, 9 and the final copy at t = 9
    # integer buffers are not averaged
    np.testing.assert_array_equal(xpnet.to_numpy(model.buffers["count"]), [7])
    la(solver, "epoch")  # other events do nothing
    assert la.updates == 4


def test_record_decay_and_bad_decays():
    assert record_decay(0, 100) == 0.0
    assert record_decay(100, 100) == pytest.approx(0.95 ** 5)
    assert record_decay(50, 100) == pytest.approx(0.95 ** 5 / 8)
    with pytest.raises(InputError, match="decay"):
        Lookahead(decay=1.5)
    with pytest.raises(InputError, match="every"):
        Lookahead(every=0)


def small_net(backend, seed=0):
    return Sequential(Conv(4, bias=False), SpatialBatchNorm(scale=False), GELU(), Flatten(),
                      Affine(3), input_shape=(2, 4, 4), dtype="float64", seed=seed,
                      backend=backend)


def toy_data(n=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2, 4, 4))
    y = rng.integers(0, 3, n)
    return {"X_train": X, "y_train": y, "X_val": X[:8], "y_val": y[:8]}


def test_lookahead_in_a_solver_ends_with_the_average(backend):
    model = small_net(backend)
    la = Lookahead(every=2, decay=0.5)
    seen = []

    def watch(solver, event):
        la(solver, event)
        if event == "iteration":
            seen.append({k: xpnet.to_numpy(v).copy() for k, v in model.params.items()})

    solver = Solver(model, toy_data(), update_rule="sgd_momentum", batch_size=10,
                    num_epochs=2, optim_config={"learning_rate": 0.05}, verbose=False,
                    seed=0, callback=watch)
    solver.train()
    assert la.updates == solver.num_iterations // 2 + 1
    for name, value in la.average.items():
        if name in model.params:
            np.testing.assert_array_equal(seen[-1][name], xpnet.to_numpy(value))


# ---------------------------------------------------------------------------
# Test-time augmentation


def image_net(backend):
    model = Sequential(Conv(3, size=3), GELU(), Flatten(), Affine(4), input_shape=(2, 5, 6),
                       dtype="float64", seed=1, backend=backend)
    return model


def numpy_views(x):
    """(weight, view) pairs of level 2, built with NumPy's flips and reflect pad."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    up_left, down_right = padded[:, :, :5, :6], padded[:, :, 2:, 2:]
    return [(1 / 4, x), (1 / 4, x[..., ::-1]), (1 / 8, up_left), (1 / 8, up_left[..., ::-1]),
            (1 / 8, down_right), (1 / 8, down_right[..., ::-1])]


def test_tta_levels_are_the_means_of_the_views_logits(backend):
    model = image_net(backend)
    x = np.random.default_rng(2).standard_normal((7, 2, 5, 6))
    logits = [(w, xpnet.to_numpy(model.loss(np.ascontiguousarray(v))))
              for w, v in numpy_views(x)]
    np.testing.assert_allclose(xpnet.to_numpy(tta_scores(model, x, level=0)), logits[0][1],
                               rtol=1e-12)
    np.testing.assert_allclose(xpnet.to_numpy(tta_scores(model, x, level=1)),
                               0.5 * (logits[0][1] + logits[1][1]), rtol=1e-12)
    expected = sum(w * s for w, s in logits)
    np.testing.assert_allclose(xpnet.to_numpy(tta_scores(model, x, level=2, batch_size=3)),
                               expected, rtol=1e-12, atol=1e-14)
    y = np.argmax(expected, axis=1)
    y[:2] = (y[:2] + 1) % 4
    assert tta_accuracy(model, x, y, level=2) == pytest.approx(5 / 7)


def test_tta_refuses_unknown_levels_and_flat_inputs(backend):
    model = image_net(backend)
    with pytest.raises(InputError, match="level"):
        tta_scores(model, np.zeros((1, 2, 5, 6)), level=3)
    flat = Sequential(Affine(2), input_shape=(3,), dtype="float64", backend=backend)
    with pytest.raises(InputError, match="images"):
        tta_scores(flat, np.zeros((2, 3)), level=1)
    tta_scores(flat, np.zeros((2, 3)), level=0)


# ---------------------------------------------------------------------------
# Triangular schedule


def test_triangle_schedule_matches_the_record():
    total = 97
    warm = int(total * 0.23)

    def record(step):  # airbench94's get_lr, rewritten here
        if step < warm:
            frac = step / warm
            return 0.2 * (1 - frac) + 1.0 * frac
        frac = (step - warm) / (total - warm)
        return 1.0 * (1 - frac) + 0.07 * frac

    schedule = get_schedule("triangle")
    assert schedule == Triangle(0.2, 0.23, 0.07)
    for i in range(total):
        assert schedule(i, total) == pytest.approx(record(i), abs=1e-15)
    assert max(schedule(i, total) for i in range(total)) == 1.0
    assert get_schedule("triangle", peak=0.5)(50, 100) == 1.0


def test_triangle_schedule_bad_settings():
    with pytest.raises(InputError, match="peak"):
        Triangle(peak=1.0)
    with pytest.raises(InputError, match="start"):
        Triangle(start=-0.1)
    with pytest.raises(InputError, match="warm-up"):
        get_schedule("triangle", warmup=0.1)
    assert math.isclose(Triangle(peak=0.0)(0, 10), 1.0)
