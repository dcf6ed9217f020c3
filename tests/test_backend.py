"""Backends: resolution, errors that say what to install, random streams, transfers."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import xpnet
from xpnet.backend import BackendError, get_backend


def test_unknown_backend_names_the_choices():
    with pytest.raises(BackendError, match=r"unknown backend 'jax'.*numpy, cupy, torch"):
        get_backend("jax")


def test_missing_library_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(BackendError, match=r'pip install "xpnet\[torch\]"'):
        get_backend("torch", device="cpu:missing-test")


def test_cupy_without_a_gpu_says_what_is_missing():
    if "cupy" in xpnet.available_backends():
        pytest.skip("this machine has a usable CUDA GPU")
    with pytest.raises(BackendError, match=r"cupy backend cannot be used: .*(cuda12|CUDA)"):
        get_backend("cupy")


def test_auto_and_environment_default(monkeypatch):
    expected = "cupy" if "cupy" in xpnet.available_backends() else "numpy"
    assert get_backend("auto").name == expected
    monkeypatch.setenv("XPNET_BACKEND", "numpy")
    assert get_backend().name == "numpy"
    monkeypatch.setenv("XPNET_BACKEND", "nonsense")
    with pytest.raises(BackendError, match="nonsense"):
        get_backend()


def test_resolves_names_namespaces_and_backends(backend):
    assert get_backend(backend) is backend
    assert get_backend(backend.name) is backend
    assert get_backend(backend.xp) is backend
    assert xpnet.backend_of(backend.asarray(np.zeros(2))) is backend


def test_host_round_trip(backend):
    host = np.arange(12, dtype=np.float32).reshape(3, 4)
    dev = backend.asarray(host)
    assert backend.owns(dev)
    back = xpnet.to_numpy(dev)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, host)
    assert backend.asarray(host, dtype="float64").dtype == backend.xp.float64


def test_seeded_streams_repeat_and_differ(backend):
    backend.seed(5)
    a = xpnet.to_numpy(backend.random_normal((50,), dtype="float64"))
    b = xpnet.to_numpy(backend.random_normal((50,), dtype="float64"))
    state = backend.rng_state()
    c = xpnet.to_numpy(backend.random_uniform((50,), dtype="float64"))
    backend.seed(5)
    np.testing.assert_array_equal(a, xpnet.to_numpy(backend.random_normal((50,),
                                                                           dtype="float64")))
    assert not np.allclose(a, b)
    backend.set_rng_state(state)
    np.testing.assert_array_equal(c, xpnet.to_numpy(backend.random_uniform((50,),
                                                                            dtype="float64")))
    own = xpnet.to_numpy(backend.random_uniform((5,), dtype="float64", seed=3))
    np.testing.assert_array_equal(own, xpnet.to_numpy(backend.random_uniform(
        (5,), dtype="float64", seed=3)))


def test_random_distributions(backend):
    backend.seed(0)
    normal = xpnet.to_numpy(backend.random_normal((200_000,), std=2.0, dtype="float32"))
    assert normal.dtype == np.float32
    assert abs(normal.mean()) < 0.02 and abs(normal.std() - 2.0) < 0.02
    uniform = xpnet.to_numpy(backend.random_uniform((200_000,), dtype="float64"))
    assert uniform.min() >= 0 and uniform.max() < 1 and abs(uniform.mean() - 0.5) < 0.005
    ints = xpnet.to_numpy(backend.random_integers(7, 70_000))
    assert ints.min() == 0 and ints.max() == 6
    assert np.all(np.abs(np.bincount(ints) / 70_000 - 1 / 7) < 0.01)


def test_dtype_specs(backend):
    for spec in ("float32", np.float32, backend.xp.float32):
        assert backend.dtype(spec) == backend.xp.float32
    with pytest.raises(TypeError, match="not a dtype"):
        backend.dtype("float128x")
