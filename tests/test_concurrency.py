"""Two trainings in one process do not disturb each other (what a sweep needs).

Each Solver owns its random stream and the NumPy fast paths keep their scratch
buffers per thread, so two Solvers trained at the same time in two threads end
exactly where each ends when trained alone.
"""

from __future__ import annotations

import threading

import numpy as np

import xpnet
from xpnet import FullyConnectedNet, Solver


def data(seed):
    rng = np.random.default_rng(seed)
    # large enough that the NumPy Adam fast path works in chunks (and threads)
    X = rng.standard_normal((120, 3, 16, 16)).astype(np.float32)
    y = rng.integers(5, size=120)
    return {"X_train": X, "y_train": y, "X_val": X[:30], "y_val": y[:30]}


def make(backend, seed):
    model = FullyConnectedNet([300, 40], input_dim=768, num_classes=5, dropout_keep_ratio=0.8,
                              normalization="batchnorm", seed=seed, backend=backend)
    model.dropout_param.pop("seed")  # masks from the Solver's stream
    return Solver(model, data(seed), update_rule="adam", num_epochs=3, batch_size=20,
                  verbose=False, seed=100 + seed)


def result(solver):
    return ({k: xpnet.to_numpy(v).copy() for k, v in solver.model.params.items()},
            list(solver.loss_history), list(solver.val_acc_history))


def test_two_solvers_in_two_threads_match_solo_runs(backend):
    alone = []
    for seed in (1, 2):
        solver = make(backend, seed)
        solver.train()
        alone.append(result(solver))

    solvers = [make(backend, 1), make(backend, 2)]
    start = threading.Barrier(2)
    errors = []

    def train(solver):
        try:
            start.wait()
            solver.train()
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=train, args=(s,)) for s in solvers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for solver, (params, losses, val) in zip(solvers, alone, strict=True):
        got_params, got_losses, got_val = result(solver)
        for name in params:
            np.testing.assert_array_equal(got_params[name], params[name], err_msg=name)
        assert got_losses == losses and got_val == val


def test_solvers_in_one_thread_have_their_own_streams(backend):
    a1 = make(backend, 1)
    a1.train()
    b = make(backend, 2)
    a2 = make(backend, 1)
    b.train()  # draws from b's stream only
    a2.train()
    assert a2.loss_history == a1.loss_history
    backend.random_uniform((5,))  # the backend's default stream moves; the Solvers' do not
    assert a2.random.state() == a1.random.state()


def test_a_growing_thread_pool_is_never_shut_down_under_a_submitting_thread(monkeypatch):
    """Two trainings split their Adam steps between the NumPy fast paths' threads.
    One got the shared pool and is about to submit to it when the other, with a
    larger parameter, needs more threads: the pool must not be shut down under the
    first (it was: "cannot schedule new futures after shutdown")."""
    from xpnet._fast import numpy_paths

    workers = numpy_paths._Workers()
    workers.parallel_min = 2  # n elements are split between min(threads, n) threads
    workers.threads = 2
    first_submitting, second_done = threading.Event(), threading.Event()

    class PausingPool(numpy_paths.ThreadPoolExecutor):
        """Holds the first thread's first submit until the second thread is done."""

        def submit(self, fn, /, *args, **kwargs):
            if threading.current_thread().name == "first" and not first_submitting.is_set():
                first_submitting.set()
                assert second_done.wait(30), "the second split never finished"
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(numpy_paths, "ThreadPoolExecutor", PausingPool)
    covered = {"first": np.zeros(8), "second": np.zeros(8)}
    errors = []

    def split(name):
        def body(start, stop):
            covered[name][start:stop] += 1

        try:
            workers.run_split(8, body)
        except BaseException as err:  # reported below
            errors.append(err)

    first = threading.Thread(target=split, args=("first",), name="first")
    first.start()
    assert first_submitting.wait(30)  # the first holds its pool of one helper
    workers.threads = 4  # the second splits between 4 threads: a larger pool
    split("second")
    second_done.set()
    first.join(30)
    assert not first.is_alive()
    assert not errors, errors
    np.testing.assert_array_equal(covered["first"], np.ones(8))  # every chunk ran once
    np.testing.assert_array_equal(covered["second"], np.ones(8))
    workers._pool.shutdown()
