"""The same weights give the same results on NumPy and on the backend under test."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import FullyConnectedNet

# every test here runs with the registered fast paths and with the references only
pytestmark = pytest.mark.usefixtures("fast_paths")


@pytest.fixture
def reference(backend):
    """NumPy, or when NumPy is under test, another installed CPU backend."""
    if backend.name != "numpy":
        return xpnet.get_backend("numpy")
    others = [b for b in xpnet.available_backends() if b not in ("numpy", "cupy")]
    if not others:
        pytest.skip("no second backend installed to compare NumPy with")
    return xpnet.get_backend(others[0])


@pytest.mark.parametrize("normalization", [None, "batchnorm", "layernorm"])
def test_same_weights_same_outputs(backend, reference, normalization):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((7, 3, 4, 2))
    y = rng.integers(5, size=7)
    models = [FullyConnectedNet([9, 6], input_dim=24, num_classes=5, reg=0.3,
                                normalization=normalization, dtype="float64", seed=1,
                                backend=be) for be in (reference, backend)]
    for name, value in models[0].params.items():
        models[1].params[name] = backend.asarray(xpnet.to_numpy(value) + 0.01)
        models[0].params[name] = reference.asarray(xpnet.to_numpy(value) + 0.01)
    (loss_a, grads_a), (loss_b, grads_b) = (m.loss(X, y) for m in models)
    assert backend.owns(loss_b) and all(backend.owns(g) for g in grads_b.values())
    assert abs(float(loss_a) - float(loss_b)) <= 1e-10 * abs(float(loss_a))
    for name in grads_a:
        np.testing.assert_allclose(xpnet.to_numpy(grads_b[name]), xpnet.to_numpy(grads_a[name]),
                                   rtol=1e-10, atol=1e-12, err_msg=name)
    scores_a, scores_b = (xpnet.to_numpy(m.loss(X)) for m in models)
    np.testing.assert_allclose(scores_b, scores_a, rtol=1e-10, atol=1e-12)
