"""``weight_decay`` is decoupled weight decay for every built-in rule, in every path.

``w -= learning_rate * weight_decay * w`` before the rule's step: ``sgd``,
``rmsprop`` and ``adagrad`` used to ignore it silently while the captured step
applied it to every rule. Each rule is compared with a hand-written NumPy float64
implementation: the course's rule call, the Solver's in-place twin, and whole
trainings through the Solver (parameter by parameter, on the flat buffers, fused
where the library fuses, and the capturable step).
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import Solver, optim
from xpnet._ops import capture, rule_defaults

LR, WD = 0.05, 0.1
CONFIGS = {
    "sgd": {},
    "sgd_momentum": {"momentum": 0.8},
    "sgd_nesterov": {"momentum": 0.8, "nesterov": True},
    "rmsprop": {"decay_rate": 0.9, "epsilon": 1e-8},
    "adam": {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
    "adagrad": {"epsilon": 1e-8},
}


def rule_name(case):
    return "sgd_momentum" if case == "sgd_nesterov" else case


class NumpyRule:
    """The rule in float64 NumPy, written out from its formula (not from xpnet)."""

    def __init__(self, case, shape):
        self.case, self.c = case, CONFIGS[case]
        self.s1, self.s2, self.t = np.zeros(shape), np.zeros(shape), 0

    def step(self, w, g, lr, wd):
        c = self.c
        w = w - lr * wd * w  # decoupled, before the step
        if self.case == "sgd":
            return w - lr * g
        if self.case in ("sgd_momentum", "sgd_nesterov"):
            self.s1 = c["momentum"] * self.s1 - lr * g
            if self.case == "sgd_nesterov":
                return w + c["momentum"] * self.s1 - lr * g
            return w + self.s1
        if self.case == "rmsprop":
            self.s1 = c["decay_rate"] * self.s1 + (1 - c["decay_rate"]) * g**2
            return w - lr * g / (np.sqrt(self.s1) + c["epsilon"])
        if self.case == "adagrad":
            self.s1 = self.s1 + g**2
            return w - lr * g / (np.sqrt(self.s1) + c["epsilon"])
        self.t += 1
        self.s1 = c["beta1"] * self.s1 + (1 - c["beta1"]) * g
        self.s2 = c["beta2"] * self.s2 + (1 - c["beta2"]) * g**2
        m_hat = self.s1 / (1 - c["beta1"] ** self.t)
        v_hat = self.s2 / (1 - c["beta2"] ** self.t)
        return w - lr * m_hat / (np.sqrt(v_hat) + c["epsilon"])


def config_of(case, wd=WD):
    config = {"learning_rate": LR, **CONFIGS[case]}
    if wd:
        config["weight_decay"] = wd
    return config


def test_the_state_keys_have_one_definition():
    assert optim.STATE_KEYS == {optim.UPDATE_RULES[n]: k
                                for n, k in rule_defaults.RULE_STATE.items()}
    for name in capture.CAPTURABLE_RULES:
        update = capture.CapturableUpdate(np, name, np.float64, "cpu", {"learning_rate": 0.1})
        assert update.state_keys == rule_defaults.RULE_STATE[name]
    assert not hasattr(capture, "_STATE")  # no second table


@pytest.mark.parametrize("case", list(CONFIGS))
def test_the_rule_and_its_in_place_twin_decay_the_weights(case, backend):
    rng = np.random.default_rng(7)
    w0 = rng.standard_normal((4, 5))
    grads = rng.standard_normal((3, 4, 5))
    rule = optim.UPDATE_RULES[rule_name(case)]
    expected, ref = [], NumpyRule(case, w0.shape)
    w = w0
    for g in grads:
        w = ref.step(w, g, LR, WD)
        expected.append(w)
    # the course's rule: new arrays, config carried from call to call
    w, config = backend.asarray(w0), config_of(case)
    for g, want in zip(grads, expected, strict=True):
        w, config = rule(w, backend.asarray(g), config)
        np.testing.assert_allclose(xpnet.to_numpy(w), want, rtol=1e-12, atol=1e-15)
    # the Solver's in-place twin
    w, config = backend.asarray(w0.copy()), config_of(case)
    update = optim.inplace_update(rule)
    for g, want in zip(grads, expected, strict=True):
        config = update(w, backend.asarray(g), config)
        np.testing.assert_allclose(xpnet.to_numpy(w), want, rtol=1e-12, atol=1e-15)
    # the captured step's update
    w, state = backend.asarray(w0.copy()), {}
    step = capture.CapturableUpdate(backend.xp, rule_name(case), w.dtype, backend.device,
                                    config_of(case))
    for g, want in zip(grads, expected, strict=True):
        step.begin_step()
        step.update(w, backend.asarray(g), state)
        np.testing.assert_allclose(xpnet.to_numpy(w), want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", list(CONFIGS))
def test_without_weight_decay_the_rule_is_the_courses(case, backend):
    rng = np.random.default_rng(8)
    w0, g = rng.standard_normal((2, 6))
    next_w, _ = optim.UPDATE_RULES[rule_name(case)](backend.asarray(w0), backend.asarray(g),
                                                    config_of(case, wd=0))
    want = NumpyRule(case, w0.shape).step(w0, g, LR, 0.0)
    np.testing.assert_allclose(xpnet.to_numpy(next_w), want, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------
# Through the Solver


TARGETS = {"W1": (3, 4), "b1": (4,), "W2": (4, 2)}


class Quadratic:
    """``loss = 0.5 * sum((p - target)**2)`` over its parameters: the gradient of
    each is ``p - target``, whatever the batch, so the trajectory is the rule's."""

    num_classes = 2

    def __init__(self, backend, seed=0):
        rng = np.random.default_rng(seed)
        self.backend = backend
        self.dtype = backend.xp.float64
        self.start = {k: rng.standard_normal(s) for k, s in TARGETS.items()}
        self.targets = {k: rng.standard_normal(s) for k, s in TARGETS.items()}
        self.params = {k: backend.asarray(v) for k, v in self.start.items()}
        self._targets = {k: backend.asarray(v) for k, v in self.targets.items()}

    def loss(self, X, y=None):
        xp = self.backend.xp
        if y is None:
            return xp.zeros((X.shape[0], 2), dtype=self.dtype, device=self.backend.device)
        grads = {k: self.params[k] - self._targets[k] for k in self.params}
        loss = sum(0.5 * xp.sum(g * g) for g in grads.values())
        return loss, grads


def expected_trajectory(model, case, steps, lr_decay, per_epoch):
    refs = {k: NumpyRule(case, v.shape) for k, v in model.start.items()}
    params = dict(model.start)
    trajectory = []
    for t in range(steps):
        lr = LR * lr_decay ** (t // per_epoch)
        params = {k: refs[k].step(w, w - model.targets[k], lr, WD) for k, w in params.items()}
        trajectory.append(params)
    return trajectory


@pytest.mark.parametrize("capturable", [False, True], ids=["ordinary", "capturable"])
@pytest.mark.parametrize("case", list(CONFIGS))
def test_the_solver_decays_the_weights_of_every_rule(case, capturable, backend):
    model = Quadratic(backend)
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((20, 3)), rng.integers(2, size=20)
    data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    seen = []

    def record(solver, event):
        if event == "iteration":
            seen.append({k: xpnet.to_numpy(v).copy() for k, v in solver.model.params.items()})

    solver = Solver(model, data, update_rule=rule_name(case), optim_config=config_of(case),
                    lr_decay=0.5, batch_size=10, num_epochs=3, verbose=False, seed=1,
                    callback=record, capturable=capturable)
    assert solver.capturable == capturable
    solver.train()
    expected = expected_trajectory(model, case, 6, 0.5, per_epoch=2)
    assert len(seen) == len(expected) == 6
    for t, (got, want) in enumerate(zip(seen, expected, strict=True)):
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-11, atol=1e-14,
                                       err_msg=f"{name} after step {t + 1}")


@pytest.mark.parametrize("rule", list(optim.UPDATE_RULES))
def test_xpnet_train_passes_weight_decay_to_every_rule(rule):
    from xpnet.app.train import optim_config, resolve_options, validate_options

    options = resolve_options({"update_rule": rule, "weight_decay": 0.01})
    validate_options(options)  # refused for sgd, rmsprop and adagrad before
    assert optim_config(options)["weight_decay"] == 0.01
