"""The one normalization core in every layout: batch, layer, spatial batch, group.

Forward against a plain-NumPy float64 reference on the host; both backward
passes (closed form and graph) through :func:`xpnet.testing.check_layer_backward`
(float64 central differences) on the backend under test; and the two
backward passes against each other.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet._ops import normalization
from xpnet.testing import assert_close, check_layer_backward

pytestmark = pytest.mark.usefixtures("fast_paths")

# name: (x shape, work shape, stat axes, param shape, param work shape)
LAYOUTS = {
    "batchnorm": ((6, 4), (6, 4), (0,), (4,), (1, 4)),
    "layernorm": ((5, 6), (5, 6), (1,), (6,), (1, 6)),
    "spatial_batchnorm": ((3, 4, 2, 5), (3, 4, 2, 5), (0, 2, 3), (4,), (1, 4, 1, 1)),
    "groupnorm": ((3, 6, 2, 3), (3, 2, 3, 2, 3), (2, 3, 4), (1, 6, 1, 1), (1, 2, 3, 1, 1)),
}


def numpy_reference(x, gamma, beta, work, axes, param_work, eps=1e-5):
    xw = x.reshape(work)
    mean = xw.mean(axis=axes, keepdims=True)
    var = ((xw - mean) ** 2).mean(axis=axes, keepdims=True)
    out = (xw - mean) / np.sqrt(var + eps) * gamma.reshape(param_work) + beta.reshape(param_work)
    return out.reshape(x.shape)


@pytest.fixture(params=sorted(LAYOUTS))
def layout(request):
    return request.param


def inputs(backend, layout, seed=0):
    shape, work, axes, pshape, pwork = LAYOUTS[layout]
    rng = np.random.default_rng(seed)
    host = [rng.normal(1.0, 2.0, shape), rng.normal(size=pshape), rng.normal(size=pshape)]
    return host, [backend.asarray(a) for a in host]


def test_forward_matches_numpy(backend, layout):
    shape, work, axes, pshape, pwork = LAYOUTS[layout]
    (x, g, b), dev = inputs(backend, layout)
    out, cache, mean, var = normalization.forward(backend.xp, *dev, 1e-5, axes, work, pwork)
    assert_close(out, backend.asarray(numpy_reference(x, g, b, work, axes, pwork)), rtol=1e-12)
    assert tuple(mean.shape) == tuple(1 if i in axes else n for i, n in enumerate(work))


@pytest.mark.parametrize("kind", ["closed", "graph"])
def test_backward_against_numerical_gradients(backend, layout, kind):
    shape, work, axes, pshape, pwork = LAYOUTS[layout]
    _, dev = inputs(backend, layout, seed=1)
    backward = normalization.backward if kind == "closed" else normalization.backward_graph

    def forward(x, g, b):
        out, cache, _, _ = normalization.forward(backend.xp, x, g, b, 1e-5, axes, work, pwork)
        return out, cache

    check_layer_backward(forward, lambda d, c: backward(d, c, "test"), dev,
                         names=["x", "gamma", "beta"])


def test_closed_form_equals_graph(backend, layout):
    shape, work, axes, pshape, pwork = LAYOUTS[layout]
    _, (x, g, b) = inputs(backend, layout, seed=2)
    dout = backend.asarray(np.random.default_rng(3).normal(size=shape))
    _, cache, _, _ = normalization.forward(backend.xp, x, g, b, 1e-5, axes, work, pwork)
    for a, c in zip(normalization.backward(dout, cache, "t"),
                    normalization.backward_graph(dout, cache, "t"), strict=True):
        assert_close(a, c, rtol=1e-9, atol=1e-12)


def test_dout_of_the_wrong_shape_names_the_caller(backend):
    _, (x, g, b) = inputs(backend, "batchnorm")
    _, cache, _, _ = normalization.forward(backend.xp, x, g, b, 1e-5, (0,), (6, 4), (1, 4))
    with pytest.raises(xpnet.InputError, match=r"my_backward: dout must have the shape .*\(6, 4\)"):
        normalization.backward(backend.asarray(np.zeros((4, 6))), cache, "my_backward")
