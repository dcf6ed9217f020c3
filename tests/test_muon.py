"""Muon: Newton-Schulz orthogonalization and the update rule, against NumPy's SVD.

Each Newton-Schulz iteration ``X <- a X + (b A + c A^2) X``, ``A = X X^T``, maps every
singular value s of X to ``a s + b s^3 + c s^5`` and keeps the singular vectors, so
the expected result is ``P diag(p^k(s / |G|_F)) Q^T`` from ``G = P diag(s) Q^T``:
computed here from the SVD, independently of the matrix iteration.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from xpnet import optim
from xpnet._ops.muon import QUINTIC, newton_schulz
from xpnet.errors import InputError


def ns_by_svd(G, steps, coefficients=QUINTIC):
    a, b, c = coefficients
    P, s, Qt = np.linalg.svd(G, full_matrices=False)
    s = s / np.sqrt(np.sum(G * G))
    for _ in range(steps):
        s = a * s + b * s ** 3 + c * s ** 5
    return (P * s) @ Qt


@pytest.mark.parametrize("shape", [(6, 10), (10, 6), (5, 5)])
@pytest.mark.parametrize("steps", [1, 3, 5])
def test_newton_schulz_acts_on_the_singular_values(backend, shape, steps):
    G = np.random.default_rng(0).standard_normal(shape)
    got = xpnet.to_numpy(newton_schulz(backend.asarray(G), steps))
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, ns_by_svd(G, steps), rtol=2e-4, atol=2e-5)


def test_quintic_output_is_nearly_orthogonal(backend):
    G = np.random.default_rng(1).standard_normal((16, 48))
    U = xpnet.to_numpy(newton_schulz(backend.asarray(G), 5)).astype(np.float64)
    s = np.linalg.svd(U, compute_uv=False)
    assert 0.6 < s.min() and s.max() < 1.25, s  # scattered around 1, by design
    # with the singular vectors of G: U is a positive-definite stretch of U V^T
    P, _, Qt = np.linalg.svd(G, full_matrices=False)
    stretch = P.T @ U @ Qt.T
    np.testing.assert_allclose(stretch, np.diag(np.diag(stretch)), atol=2e-5)


@pytest.mark.parametrize("shape", [(8, 20), (20, 8)])
def test_cubic_newton_schulz_converges_to_an_orthogonal_factor(backend, shape):
    G = np.random.default_rng(2).standard_normal(shape)
    U = xpnet.to_numpy(newton_schulz(backend.asarray(G), 40, (1.5, -0.5, 0.0))).astype(float)
    gram = U @ U.T if shape[0] < shape[1] else U.T @ U
    np.testing.assert_allclose(gram, np.eye(min(shape)), atol=1e-5)
    P, _, Qt = np.linalg.svd(G, full_matrices=False)
    np.testing.assert_allclose(U, P @ Qt, atol=1e-5)


def test_newton_schulz_of_zero_is_zero_and_bad_input(backend):
    np.testing.assert_array_equal(xpnet.to_numpy(newton_schulz(backend.asarray(
        np.zeros((3, 4))), 3)), np.zeros((3, 4)))
    with pytest.raises(InputError, match="matrix"):
        newton_schulz(backend.asarray(np.ones((2, 2, 2))))
    with pytest.raises(InputError, match="steps"):
        newton_schulz(backend.asarray(np.ones((2, 2))), -1)


def muon_reference(w, grads, lr, mu, steps, nesterov=True, normalize=False, decay=0.0):
    """The rule in float64 NumPy, written from its definition."""
    buf = np.zeros_like(w)
    for g in grads:
        buf = mu * buf + g
        d = g + mu * buf if nesterov else buf
        w = w - lr * decay * w
        if normalize:
            w = w * math.sqrt(w.shape[0]) / np.sqrt(np.sum(w * w))
        w = w - lr * ns_by_svd(d.reshape(w.shape[0], -1), steps).reshape(w.shape)
    return w, buf


@pytest.mark.parametrize("nesterov, normalize, decay", [(True, False, 0.0), (False, True, 0.0),
                                                        (True, True, 0.1)])
def test_muon_rule_against_numpy(backend, nesterov, normalize, decay):
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((4, 3, 3, 3))
    grads = [rng.standard_normal(w0.shape) for _ in range(3)]
    config = {"learning_rate": 0.24, "momentum": 0.6, "ns_steps": 3, "nesterov": nesterov,
              "normalize": normalize, "weight_decay": decay}
    w = backend.asarray(w0)
    for g in grads:
        w, config = optim.muon(w, backend.asarray(g), config)
    expected, buf = muon_reference(w0, grads, 0.24, 0.6, 3, nesterov, normalize, decay)
    assert xpnet.to_numpy(w).dtype == np.float64  # the update is cast back to w's dtype
    np.testing.assert_allclose(xpnet.to_numpy(w), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(xpnet.to_numpy(config["momentum_buffer"]), buf, rtol=1e-12)


def test_muon_defaults_by_name_and_refuses_vectors(backend):
    assert optim.get_update_rule("muon") is optim.muon
    w = backend.asarray(np.ones((3, 2)))
    _, config = optim.muon(w, backend.asarray(np.ones((3, 2))))
    assert config["learning_rate"] == 0.02 and config["momentum"] == 0.95
    assert config["ns_steps"] == 5 and config["nesterov"] is True
    with pytest.raises(InputError, match="another update rule"):
        optim.muon(backend.asarray(np.ones(3)), backend.asarray(np.ones(3)))
    with pytest.raises(InputError, match="shape"):
        optim.muon(w, backend.asarray(np.ones((2, 3))))
