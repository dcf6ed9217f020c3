"""The Solver's in-place training gives the results of the course's rules.

- the Solver's in-place update rules (``optim.inplace_update``, on the registered
  operations) against the public out-of-place rules, which must leave ``w``
  untouched: bit for bit with fast paths off, within the fast path's declared
  tolerance with them on (``tests/test_fast_registry.py`` checks each fast path
  against its reference over hostile inputs);
- the Solver neither changes arrays it did not make nor the saved best parameters;
- the registered CuPy kernels on a GPU, when there is one.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import FullyConnectedNet, Solver, layers, optim
from xpnet._fast import OPERATIONS, fast_paths_disabled, numpy_paths
from xpnet.backend import backend_problem

RULES = ["sgd", "sgd_momentum", "rmsprop", "adam", "adagrad"]
STATE = {"sgd": (), "sgd_momentum": ("velocity",), "rmsprop": ("cache",),
         "adam": ("m", "v"), "adagrad": ("cache",)}


def host(a):
    return xpnet.to_numpy(a)


def close(actual, expected, tol):
    """Equal within ``tol`` relative to the largest magnitude (exactly equal for 0)."""
    if tol == 0:
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=tol,
                                   atol=tol * float(np.max(np.abs(expected))))


def steps(shape, n, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(dtype)
    return w, [(rng.standard_normal(shape) * 10.0 ** -rng.integers(0, 4)).astype(dtype)
               for _ in range(n)]


def run_public(backend, rule, w, dws, config):
    w = backend.asarray(w.copy())
    for dw in dws:
        w, config = optim.get_update_rule(rule)(w, backend.asarray(dw), config)
    return w, config


def run_inplace(backend, rule, w, dws, config):
    update = optim.inplace_update(optim.get_update_rule(rule))
    w = backend.asarray(w.copy())
    start = w
    for dw in dws:
        config = update(w, backend.asarray(dw), config)
    assert w is start  # updated in place
    return w, config


def other_backends():
    """Usable library backends (NumPy, PyTorch, CuPy) for kernel-specific tests."""
    return [name for name in ("numpy", "torch", "cupy") if backend_problem(name) is None]


# ---------------------------------------------------------------------------
# In-place update rules
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_generic_inplace_rules_equal_the_public_rules_bit_for_bit(backend, rule, dtype):
    w, dws = steps((7, 5), 4, dtype=dtype)
    cfg = {"learning_rate": 3e-3}
    expected, exp_config = run_public(backend, rule, w, dws, dict(cfg))
    with fast_paths_disabled():
        got, config = run_inplace(backend, rule, w, dws, dict(cfg))
    np.testing.assert_array_equal(host(got), host(expected))
    assert set(config) == set(exp_config)
    for key in STATE[rule]:
        np.testing.assert_array_equal(host(config[key]), host(exp_config[key]))
    if rule == "adam":
        assert config["t"] == exp_config["t"] == 4


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_paths_match_the_public_rules(backend, rule, dtype):
    w, dws = steps((300, 7), 5, seed=1, dtype=dtype)
    expected, exp_config = run_public(backend, rule, w, dws, {})
    got, config = run_inplace(backend, rule, w, dws, {})
    paths = OPERATIONS[f"{rule}_"].fast_paths(backend.name)
    path = paths[0] if paths else None
    exact = path is None or path.tolerance.exact
    # five steps compound the declared per-step tolerance
    tol = 0 if exact else 5 * path.tolerance.rtol_for(dtype)
    close(host(got), host(expected), tol)
    for key in STATE[rule]:
        close(host(config[key]), host(exp_config[key]), tol)


def test_public_rules_leave_w_and_state_untouched(backend):
    w, (dw,) = steps((4, 3), 1)
    for rule in RULES:
        w_dev = backend.asarray(w.copy())
        _, config = optim.get_update_rule(rule)(w_dev, backend.asarray(dw), {})
        old_state = {k: config[k] for k in STATE[rule]}
        old_values = {k: host(v).copy() for k, v in old_state.items()}
        optim.get_update_rule(rule)(w_dev, backend.asarray(dw), config)
        np.testing.assert_array_equal(host(w_dev), w)
        for key, value in old_state.items():  # new state arrays, the old ones unchanged
            np.testing.assert_array_equal(host(value), old_values[key])


def test_inplace_update_is_only_for_built_in_rules(backend):
    assert optim.inplace_update(lambda w, dw, c: (w, c)) is None
    update = optim.inplace_update(optim.adam)
    with pytest.raises(ValueError, match="dw has shape"):
        update(backend.asarray(np.zeros((2, 3), np.float32)),
               backend.asarray(np.zeros((3, 2), np.float32)), {})


def test_numpy_adam_split_between_threads_is_bit_identical(monkeypatch):
    if backend_problem("numpy"):
        pytest.skip("needs NumPy")
    be = xpnet.get_backend("numpy")
    w, dws = steps((1000, 70), 3, seed=2)
    monkeypatch.setattr(numpy_paths.WORKERS, "threads", 1)
    a, _ = run_inplace(be, "adam", w, dws, {})
    monkeypatch.setattr(numpy_paths.WORKERS, "threads", 3)
    monkeypatch.setattr(numpy_paths.WORKERS, "parallel_min", 1 << 12)
    b, _ = run_inplace(be, "adam", w, dws, {})
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------

def test_batchnorm_backward_closed_form_matches_the_graph(backend):
    rng = np.random.default_rng(4)
    x = backend.asarray(rng.normal(1.0, 2.0, (50, 8)))
    gamma = backend.asarray(rng.normal(size=8))
    beta = backend.asarray(rng.normal(size=8))
    dout = backend.asarray(rng.normal(size=(50, 8)))
    _, cache = layers.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    for a, b in zip(layers.batchnorm_backward_alt(dout, cache),
                    layers.batchnorm_backward(dout, cache), strict=True):
        np.testing.assert_allclose(host(a), host(b), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------
# CuPy's compiled kernels (their sources run on the host in test_fast_registry)
# ---------------------------------------------------------------------------

def test_cupy_kernels_on_the_gpu():
    problem = backend_problem("cupy")
    if problem:
        pytest.skip(f"the compiled CuPy kernels need a GPU: {problem}")
    be = xpnet.get_backend("cupy")
    for rule in RULES:
        w, dws = steps((300, 7), 4, seed=7)
        expected, _ = run_public(be, rule, w, dws, {})
        got, _ = run_inplace(be, rule, w, dws, {})
        np.testing.assert_allclose(host(got), host(expected), rtol=2e-6, atol=1e-7)
    rng = np.random.default_rng(8)
    x = be.asarray(rng.standard_normal((64, 16)).astype(np.float32))
    dout = be.asarray(rng.standard_normal((64, 16)).astype(np.float32))
    assert OPERATIONS["relu_backward"].select(dout, x) is not None
    np.testing.assert_array_equal(host(layers.relu_backward(dout, x)),
                                  np.where(host(x) > 0, host(dout), 0))


# ---------------------------------------------------------------------------
# The Solver's in-place training
# ---------------------------------------------------------------------------

def _data(n=60, d=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(classes, size=n)
    return {"X_train": X, "y_train": y, "X_val": X[:20], "y_val": y[:20]}


@pytest.mark.parametrize("rule", ["adam", "sgd_momentum"])
def test_solver_in_place_training_equals_the_public_rule(backend, rule):
    def train(update_rule):
        # no batchnorm: the biases before it get zero gradients plus rounding noise,
        # which Adam scales up to full steps, so rounding would decide their values
        model = FullyConnectedNet([16, 8], input_dim=12, num_classes=3, seed=0,
                                  backend=backend)
        solver = Solver(model, _data(), update_rule=update_rule, batch_size=10,
                        num_epochs=2, verbose=False, seed=3)
        solver.train()
        return solver

    fast = train(rule)
    plain_rule = optim.get_update_rule(rule)
    plain = train(lambda w, dw, config: plain_rule(w, dw, config))  # not a built-in
    assert fast._inplace_update is not None and plain._inplace_update is None
    exact = rule != "adam" or backend.name not in ("numpy", "torch", "cupy")
    for name in fast.model.params:
        a, b = host(fast.model.params[name]), host(plain.model.params[name])
        if exact:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fast.loss_history, plain.loss_history, rtol=1e-5)


def test_solver_never_changes_arrays_it_did_not_make(backend):
    model = FullyConnectedNet([16], input_dim=12, num_classes=3, seed=0, backend=backend)
    initial = dict(model.params)
    initial_host = {k: host(v).copy() for k, v in initial.items()}
    solver = Solver(model, _data(), update_rule="adam", batch_size=10, num_epochs=2,
                    verbose=False, seed=1)
    solver.train()
    for name, value in initial.items():  # the user's references to the initial weights
        np.testing.assert_array_equal(host(value), initial_host[name])
    # train() ends with the best parameters; training on must not change the saved ones
    best_arrays = dict(solver.best_params)
    best_host = {k: host(v).copy() for k, v in best_arrays.items()}
    final = dict(model.params)
    solver.num_epochs = 4
    solver.train()
    for name in best_arrays:
        np.testing.assert_array_equal(host(best_arrays[name]), best_host[name])
        np.testing.assert_array_equal(host(final[name]), best_host[name])


def test_solver_copies_arrays_given_in_optim_config(backend):
    model = FullyConnectedNet([4], input_dim=12, num_classes=3, seed=0, backend=backend)
    velocity = backend.asarray(np.zeros((12, 4), np.float32))
    solver = Solver(model, _data(), update_rule="sgd_momentum", batch_size=10,
                    optim_config={"velocity": velocity}, verbose=False)
    assert solver.optim_configs["W1"]["velocity"] is not velocity
    assert solver.optim_configs["W1"]["velocity"] is not solver.optim_configs["W2"]["velocity"]


def test_solver_follows_a_rule_assigned_after_construction(backend):
    model = FullyConnectedNet([4], input_dim=12, num_classes=3, seed=0, backend=backend)
    solver = Solver(model, _data(), update_rule="adam", batch_size=10, verbose=False)
    calls = []

    def rule(w, dw, config):
        calls.append(config)
        return w, config

    solver.update_rule = rule
    before = {k: host(v).copy() for k, v in model.params.items()}
    solver._step()
    assert len(calls) == len(model.params)
    for name, value in model.params.items():
        np.testing.assert_array_equal(host(value), before[name])


def test_affine_forward_with_a_bias_of_another_float_dtype(backend):
    # the bias is added in place only where that cannot change the result's dtype
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    b = rng.standard_normal(2)
    out, _ = layers.affine_forward(backend.asarray(x, dtype="float32"),
                                   backend.asarray(w, dtype="float32"),
                                   backend.asarray(b, dtype="float64"))
    assert out.dtype == backend.dtype("float64")
    np.testing.assert_allclose(host(out), x.astype(np.float32) @ w.astype(np.float32) + b,
                               rtol=1e-6)
