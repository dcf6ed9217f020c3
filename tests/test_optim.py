"""Update rules against the formulas of DESIGN.md, recomputed here in NumPy
float64 over several successive steps, and against the CS231n notebook values.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import optim

F64 = "float64"


def _linspace(lo, hi):
    return np.linspace(lo, hi, num=20).reshape(4, 5)


# ---------------------------------------------------------------------------
# Independent references: one step each, NumPy float64
# ---------------------------------------------------------------------------

def ref_sgd(w, dw, s, lr=1e-2):
    return w - lr * dw, s


def ref_sgd_momentum(w, dw, s, lr=1e-2, momentum=0.9):
    v = momentum * s.get("velocity", 0.0) - lr * dw
    return w + v, {"velocity": v}


def ref_rmsprop(w, dw, s, lr=1e-2, decay_rate=0.99, epsilon=1e-8):
    cache = decay_rate * s.get("cache", 0.0) + (1 - decay_rate) * dw**2
    return w - lr * dw / (np.sqrt(cache) + epsilon), {"cache": cache}


def ref_adam(w, dw, s, lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8):
    t = s.get("t", 0) + 1  # incremented BEFORE the bias-corrected update
    m = beta1 * s.get("m", 0.0) + (1 - beta1) * dw
    v = beta2 * s.get("v", 0.0) + (1 - beta2) * dw**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return w - lr * m_hat / (np.sqrt(v_hat) + epsilon), {"m": m, "v": v, "t": t}


def ref_adagrad(w, dw, s, lr=1e-2, epsilon=1e-8):
    cache = s.get("cache", 0.0) + dw**2
    return w - lr * dw / (np.sqrt(cache) + epsilon), {"cache": cache}


RULES = {
    "sgd": (optim.sgd, ref_sgd, {"learning_rate": 0.05}),
    "sgd_momentum": (optim.sgd_momentum, ref_sgd_momentum,
                     {"learning_rate": 0.05, "momentum": 0.8}),
    "rmsprop": (optim.rmsprop, ref_rmsprop,
                {"learning_rate": 0.02, "decay_rate": 0.9, "epsilon": 1e-6}),
    "adam": (optim.adam, ref_adam,
             {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.95, "epsilon": 1e-6}),
    "adagrad": (optim.adagrad, ref_adagrad, {"learning_rate": 0.1, "epsilon": 1e-6}),
}


def _hyper(name):
    """The reference's keyword names for a config's hyperparameters."""
    return {("lr" if k == "learning_rate" else k): v for k, v in RULES[name][2].items()}


def _check_state(check, config, state):
    for key, value in state.items():
        if key == "t":
            assert config["t"] == value
        else:
            check(config[key], value, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(RULES))
def test_three_steps_with_custom_config(name, dev, check):
    rule, ref, hyper = RULES[name]
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 4))
    config = dict(hyper)
    state = {}
    w_dev = dev(w.copy(), F64)  # on NumPy, dev() may return the same array
    for _ in range(3):  # the state carries from step to step
        dw = rng.normal(size=(3, 4))
        w_dev, config = rule(w_dev, dev(dw, F64), config)
        w, state = ref(w, dw, state, **_hyper(name))
        check(w_dev, w, rtol=1e-12, atol=1e-15)
        _check_state(check, config, state)
    for key, value in hyper.items():  # hyperparameters are kept as given
        assert config[key] == value


DEFAULTS = {
    "sgd": {"learning_rate": 1e-2},
    "sgd_momentum": {"learning_rate": 1e-2, "momentum": 0.9},
    "rmsprop": {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8},
    "adam": {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
    "adagrad": {"learning_rate": 1e-2, "epsilon": 1e-8},
}


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize("empty", ["None", "{}"])
def test_defaults_are_filled_in(name, empty, dev, check):
    rule, ref, _ = RULES[name]
    rng = np.random.default_rng(1)
    w, dw1, dw2 = rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    w1_dev, config = rule(dev(w.copy(), F64), dev(dw1, F64), None if empty == "None" else {})
    for key, value in DEFAULTS[name].items():
        assert config[key] == value, key
    w1, state = ref(w, dw1, {})  # the reference's keyword defaults are DESIGN.md's
    check(w1_dev, w1, rtol=1e-12, atol=1e-15)
    _check_state(check, config, state)
    w2_dev, config = rule(w1_dev, dev(dw2, F64), config)
    w2, state = ref(w1, dw2, state)
    check(w2_dev, w2, rtol=1e-12, atol=1e-15)
    _check_state(check, config, state)


def test_sgd_hand_computed(dev, check):
    w = np.array([[1.0, -2.0], [0.5, 0.0]])
    dw = np.array([[10.0, 20.0], [-30.0, 0.0]])
    next_w, _ = optim.sgd(dev(w, F64), dev(dw, F64))
    # w - 0.01 * dw
    check(next_w, [[0.9, -2.2], [0.8, 0.0]], rtol=1e-12)


def test_adam_first_step_moves_by_learning_rate(dev, check):
    # with t incremented first, step 1 has m_hat = dw and v_hat = dw**2, so every
    # weight moves by lr * sign(dw) (up to epsilon); with t = 0 it would divide by zero
    w = np.array([1.0, 2.0, 3.0])
    dw = np.array([0.5, -4.0, 100.0])
    next_w, config = optim.adam(dev(w, F64), dev(dw, F64), {"learning_rate": 0.1})
    assert config["t"] == 1
    check(next_w, [0.9, 2.1, 2.9], rtol=1e-7)
    check(config["m"], [0.05, -0.4, 10.0], rtol=1e-12)
    check(config["v"], [0.00025, 0.016, 10.0], rtol=1e-12)


# ---------------------------------------------------------------------------
# CS231n notebook values (N, D = 4, 5; w and dw from linspace), printed to 8 decimals
# ---------------------------------------------------------------------------

W = _linspace(-0.4, 0.6)
DW = _linspace(-0.6, 0.4)
W.flags.writeable = DW.flags.writeable = False  # a rule may update its (copied) w in place


def test_sgd_momentum_cs231n_notebook(dev, check):
    config = {"learning_rate": 1e-3, "velocity": dev(_linspace(0.6, 0.9), F64)}
    next_w, config = optim.sgd_momentum(dev(W.copy(), F64), dev(DW.copy(), F64), config)
    check(next_w, [[0.1406, 0.20738947, 0.27417895, 0.34096842, 0.40775789],
                   [0.47454737, 0.54133684, 0.60812632, 0.67491579, 0.74170526],
                   [0.80849474, 0.87528421, 0.94207368, 1.00886316, 1.07565263],
                   [1.14244211, 1.20923158, 1.27602105, 1.34281053, 1.4096]], rtol=0, atol=1e-8)
    check(config["velocity"],
          [[0.5406, 0.55475789, 0.56891579, 0.58307368, 0.59723158],
           [0.61138947, 0.62554737, 0.63970526, 0.65386316, 0.66802105],
           [0.68217895, 0.69633684, 0.71049474, 0.72465263, 0.73881053],
           [0.75296842, 0.76712632, 0.78128421, 0.79544211, 0.8096]], rtol=0, atol=1e-8)


def test_rmsprop_cs231n_notebook(dev, check):
    config = {"learning_rate": 1e-2, "cache": dev(_linspace(0.6, 0.9), F64)}
    next_w, config = optim.rmsprop(dev(W.copy(), F64), dev(DW.copy(), F64), config)
    check(next_w, [[-0.39223849, -0.34037513, -0.28849239, -0.23659121, -0.18467247],
                   [-0.132737, -0.08078555, -0.02881884, 0.02316247, 0.07515774],
                   [0.12716641, 0.17918792, 0.23122175, 0.28326742, 0.33532447],
                   [0.38739248, 0.43947102, 0.49155973, 0.54365823, 0.59576619]],
          rtol=0, atol=1e-8)
    check(config["cache"], [[0.5976, 0.6126277, 0.6277108, 0.64284931, 0.65804321],
                            [0.67329252, 0.68859723, 0.70395734, 0.71937285, 0.73484377],
                            [0.75037008, 0.7659518, 0.78158892, 0.79728144, 0.81302936],
                            [0.82883269, 0.84469141, 0.86060554, 0.87657507, 0.8926]],
          rtol=0, atol=1e-8)


def test_adam_cs231n_notebook(dev, check):
    config = {"learning_rate": 1e-2, "m": dev(_linspace(0.6, 0.9), F64),
              "v": dev(_linspace(0.7, 0.5), F64), "t": 5}
    next_w, config = optim.adam(dev(W.copy(), F64), dev(DW.copy(), F64), config)
    assert config["t"] == 6
    check(next_w, [[-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
                   [-0.1380274, -0.08544591, -0.03286534, 0.01971428, 0.0722929],
                   [0.1248705, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
                   [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459]],
          rtol=0, atol=1e-8)
    check(config["v"], [[0.69966, 0.68908382, 0.67851319, 0.66794809, 0.65738853],
                        [0.64683452, 0.63628604, 0.6257431, 0.61520571, 0.60467385],
                        [0.59414753, 0.58362676, 0.57311152, 0.56260183, 0.55209767],
                        [0.54159906, 0.53110598, 0.52061845, 0.51013645, 0.49966]],
          rtol=0, atol=1e-8)
    check(config["m"], [[0.48, 0.49947368, 0.51894737, 0.53842105, 0.55789474],
                        [0.57736842, 0.59684211, 0.61631579, 0.63578947, 0.65526316],
                        [0.67473684, 0.69421053, 0.71368421, 0.73315789, 0.75263158],
                        [0.77210526, 0.79157895, 0.81105263, 0.83052632, 0.85]],
          rtol=0, atol=1e-8)


@pytest.mark.parametrize("name", sorted(RULES))
def test_float32_stays_float32(name, dev, backend):
    rule = RULES[name][0]
    w, dw = dev(np.ones((2, 3)), "float32"), dev(np.full((2, 3), 0.5), "float32")
    next_w, _ = rule(w, dw, None)
    assert backend.owns(next_w)
    assert next_w.dtype == backend.dtype("float32")
    assert np.all(xpnet.to_numpy(next_w) < 1.0)  # a step against the gradient


@pytest.mark.parametrize("name", sorted(RULES))
def test_get_update_rule(name):
    assert optim.get_update_rule(name) is RULES[name][0]
    assert optim.get_update_rule(RULES[name][0]) is RULES[name][0]
