"""Capturing the step as a CUDA graph: the control flow, driven on the CPU.

PyTorch's CUDA graphs cannot run here; :class:`FakeGraphs` stands in for them:
its capture records the step without running it and its replay runs the recorded
step and writes the result into the static array that capture returned, as a
replayed graph rewrites its output. What these tests prove: warm-up, one capture,
replays after it, a failed capture falling back with one warning, and (on the
Solver) the same trajectory as the uncaptured capture-ready step.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xpnet
from xpnet.backend.graphs import GraphAPI, GraphedStep


class FakeGraphs(GraphAPI):
    def __init__(self, xp, fail: str | None = None):
        self.xp, self.fail = xp, fail
        self.events: list[str] = []
        self.static = None

    def warm_up(self, step):
        self.events.append("warm-up")
        return step()

    def capture(self, step):
        self.events.append("capture")
        if self.fail:
            raise RuntimeError(self.fail)
        self.static = self.xp.zeros(())
        return step, self.static

    def replay(self, graph):
        self.events.append("replay")
        self.static[...] = graph()


def test_warm_up_then_one_capture_then_replays():
    api = FakeGraphs(np)
    counter = {"n": 0}

    def step():
        counter["n"] += 1
        return np.asarray(float(counter["n"]))

    graphed = GraphedStep(step, api, warmup=2)
    results = [float(graphed()) for _ in range(5)]
    assert api.events == ["warm-up", "warm-up", "capture", "replay", "replay", "replay"]
    assert results == [1.0, 2.0, 3.0, 4.0, 5.0]  # the capture itself runs nothing
    assert graphed.captured and graphed.problem is None


def test_a_capture_that_fails_warns_once_and_runs_eagerly():
    api = FakeGraphs(np, fail="operation not permitted when stream is capturing")
    calls = []
    graphed = GraphedStep(lambda: calls.append(1) or np.asarray(0.0), api, warmup=1)
    with pytest.warns(UserWarning, match="could not be captured.*not permitted"):
        graphed()
        graphed()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graphed()
    assert len(calls) == 3 and not graphed.captured
    assert api.events == ["warm-up", "capture"]


def test_only_torch_on_cuda_offers_graphs(backend):
    api = backend.graph_api()
    if backend.name == "torch" and backend.device.type == "cuda":
        assert api is not None
    else:
        assert api is None


def _solver(backend, **options):
    model = xpnet.FullyConnectedNet([10, 8], input_dim=12, num_classes=3,
                                    normalization="batchnorm", dropout_keep_ratio=0.8,
                                    seed=1, backend=backend)
    model.dropout_param.pop("seed", None)  # masks from the Solver's stream
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 12)).astype(np.float32), rng.integers(3, size=60)
    data = {"X_train": X, "y_train": y, "X_val": X[:20], "y_val": y[:20]}
    return xpnet.Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-2},
                        lr_decay=0.9, batch_size=10, num_epochs=3, verbose=False, seed=3,
                        capturable=True, **options)


@pytest.fixture
def fake_graphs(backend, monkeypatch):
    """Every capturable Solver made in the test gets a FakeGraphs (the list)."""
    made = []

    def graph_api(self):
        made.append(FakeGraphs(self.xp))
        return made[-1]

    monkeypatch.setattr(type(backend), "graph_api", graph_api)
    return made


def test_a_graphed_solver_follows_the_eager_capturable_one(backend, fake_graphs):
    eager = _solver(backend)
    fake_graphs.clear()  # (eager's graph API is not used below)
    eager._graph = None
    eager.train()
    graphed = _solver(backend)
    graphed.train()
    api = fake_graphs[-1]
    steps = graphed.num_iterations
    assert api.events == ["warm-up"] * 3 + ["capture"] + ["replay"] * (steps - 3)
    assert graphed.loss_history == eager.loss_history
    for name, value in eager.model.params.items():
        np.testing.assert_array_equal(xpnet.to_numpy(graphed.model.params[name]),
                                      xpnet.to_numpy(value), err_msg=name)


def test_loading_a_checkpoint_captures_the_step_again(backend, fake_graphs, tmp_path):
    solver = _solver(backend, checkpoint_name=str(tmp_path / "run"))
    solver.num_epochs = 1
    solver.train()
    path = str(tmp_path / "run_epoch_1.npz")
    resumed = _solver(backend)
    resumed.load_checkpoint(path)
    resumed.train()
    assert fake_graphs[-1].events[:4] == ["warm-up"] * 3 + ["capture"]
    assert resumed.iteration == resumed.num_iterations
