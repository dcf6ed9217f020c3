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


# ---------------------------------------------------------------------------
# One object per (library, canonical device)
# ---------------------------------------------------------------------------

def test_one_object_per_library_and_device_however_spelled(backend):
    """Every spelling of the backend's own device gives the object backend_of gives."""
    spellings = {
        "numpy": [None, "cpu", "CPU"],
        "torch": [None, "cpu"],
        "array_api_strict": [None, "cpu"],
        "cupy": [None, 0, "cuda", "cuda:0"],
    }[backend.name]
    if backend.name == "torch":
        import torch

        spellings.append(torch.device("cpu"))
    if backend.name == "array_api_strict":
        spellings.append(backend.xp.asarray(0).device)
    if not backend.on_host:  # a GPU backend under test: its device, spelled as given
        spellings = [backend.device]
    own = xpnet.backend_of(backend.asarray(np.zeros(2)))
    for spelled in spellings:
        assert get_backend(backend.name, spelled) is own, spelled
    assert get_backend(backend.name, backend.device) is own


def test_torch_cpu_spellings_and_tensors_share_one_backend():
    torch = pytest.importorskip("torch")
    by_name = get_backend("torch")
    assert get_backend("torch", "cpu") is by_name
    assert get_backend("pytorch", torch.device("cpu")) is by_name
    assert xpnet.backend_of(torch.zeros(1)) is by_name


def test_cuda_device_spellings_name_one_index():
    from xpnet.backend.cupy_adapter import _device_index

    for spelled, index in [(None, 0), ("cuda", 0), ("cuda:0", 0), ("CUDA:2", 2), (1, 1),
                           ("gpu:3", 3)]:
        assert _device_index(spelled) == index, spelled
    torch = pytest.importorskip("torch")
    assert _device_index(torch.device("cuda", 1)) == 1
    with pytest.raises(BackendError, match="CuPy arrays live on a CUDA device"):
        _device_index("cpu")


def test_torch_cuda_without_a_gpu_says_why():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        assert get_backend("torch", "cuda") is get_backend("torch", "cuda:0")
        assert get_backend("torch", "cuda:0") is get_backend("torch", torch.device("cuda", 0))
        assert xpnet.backend_of(torch.zeros(1, device="cuda")) is get_backend("torch", "cuda")
        return
    with pytest.raises(BackendError, match=r"torch cannot use device 'cuda'.*is_available"):
        get_backend("torch", "cuda")


def test_host_only_backends_refuse_a_gpu_device():
    with pytest.raises(BackendError, match="numpy backend runs on the CPU only"):
        get_backend("numpy", "cuda:0")


def test_device_default_from_the_environment(monkeypatch):
    monkeypatch.setenv("XPNET_DEVICE", "cuda")
    # host-only libraries ignore it; only an explicit device is refused
    assert get_backend("numpy") is xpnet.backend_of(np.zeros(1))
    with pytest.raises(BackendError, match="CPU only, got device 'cuda'"):
        get_backend("numpy", "cuda")
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("XPNET_DEVICE", "cpu")
    assert get_backend("torch") is xpnet.backend_of(torch.zeros(1))
    if not torch.cuda.is_available():
        monkeypatch.setenv("XPNET_DEVICE", "cuda")
        with pytest.raises(BackendError, match="torch cannot use device 'cuda'"):
            get_backend("torch")


def test_a_stream_saved_on_another_library_goes_on_with_a_warning():
    pytest.importorskip("torch")
    saved = get_backend("torch").new_stream(3)
    saved.uniform((4,))
    state = saved.state()
    stream = get_backend("numpy").new_stream(0)
    with pytest.warns(UserWarning, match="saved on torch"):
        stream.set_state(state)
    assert (stream.seed, stream.counter) == (3, 1)
    u = stream.uniform((3,), dtype="float64")  # a new generator: (seed 3, segment 2)
    np.testing.assert_array_equal(u, get_backend("numpy").draw(
        get_backend("numpy").make_generator(xpnet.backend.random.derive_seed(3, 2)),
        "uniform", (3,), "float64"))


def test_auto_prefers_cupy_then_torch_on_cuda_then_numpy(monkeypatch):
    import xpnet.backend as xb
    from xpnet.backend import torch_adapter

    def pretend(cupy_ok, torch_cuda_ok):
        real = xb.backend_problem
        monkeypatch.setattr(xb, "backend_problem",
                            lambda name: (None if cupy_ok else "no GPU") if name == "cupy"
                            else real(name))
        monkeypatch.setattr(torch_adapter, "torch_cuda_problem",
                            lambda: None if torch_cuda_ok else "no CUDA")

    pytest.importorskip("torch")
    pretend(True, True)
    assert xb._auto() == ("cupy", None)
    pretend(False, True)
    assert xb._auto() == ("torch", "cuda")
    pretend(False, False)
    assert xb._auto() == ("numpy", None)


def test_strict_devices_are_distinct_backends():
    pytest.importorskip("array_api_strict")
    xp = get_backend("array_api_strict").xp
    other = [d for d in xp.__array_namespace_info__().devices() if d != xp.asarray(0).device]
    if not other:
        pytest.skip("this array_api_strict has one device")
    far = get_backend("array_api_strict", other[0])
    assert far is not get_backend("array_api_strict")
    assert far is get_backend("array_api_strict", str(other[0]).split("'")[1])
    x = far.asarray(np.ones(3))
    assert xpnet.backend_of(x) is far
    np.testing.assert_array_equal(xpnet.to_numpy(x), np.ones(3))


def test_namespace_of_refuses_one_library_on_two_devices():
    torch = pytest.importorskip("torch")
    cpu, meta = torch.zeros(2), torch.zeros(2, device="meta")
    with pytest.raises(xpnet.BackendMismatchError, match="different devices"):
        xpnet.backend.namespace_of(cpu, meta, caller="affine_forward")
    with pytest.raises(xpnet.BackendMismatchError, match="different devices"):
        xpnet.layers.affine_forward(cpu.reshape(1, 2), meta.reshape(2, 1), torch.zeros(1))


def test_a_parameter_assigned_on_another_device_is_moved():
    pytest.importorskip("array_api_strict")
    be = get_backend("array_api_strict")
    xp = be.xp
    other = [d for d in xp.__array_namespace_info__().devices() if d != be.device]
    if not other:
        pytest.skip("this array_api_strict has one device")
    model = xpnet.classifiers.fc_net.TwoLayerNet(input_dim=4, hidden_dim=3, num_classes=2,
                                                 backend=be, dtype="float64")
    expected = xpnet.to_numpy(model.params["W1"]) * 2
    model.params["W1"] = get_backend("array_api_strict", other[0]).asarray(expected)
    scores = model.loss(be.asarray(np.ones((2, 4))))
    assert model.params["W1"].device == be.device and scores.device == be.device
    np.testing.assert_array_equal(xpnet.to_numpy(model.params["W1"]), expected)


# ---------------------------------------------------------------------------
# Random streams
# ---------------------------------------------------------------------------

def _dropout_model(backend):
    return xpnet.classifiers.fc_net.FullyConnectedNet(
        [20, 20], input_dim=12, num_classes=3, dropout_keep_ratio=0.5, backend=backend,
        dtype="float64", seed=0)


def _toy_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 12))
    y = rng.integers(0, 3, 60)
    return {"X_train": X, "y_train": y, "X_val": X[:20], "y_val": y[:20]}


def test_seeded_solvers_with_dropout_repeat_on_a_backend_spelled_with_its_device(backend):
    """Dropout masks come from the Solver's stream, whatever spelling built the model's
    backend (on torch, get_backend('torch', 'cpu') used to lose the Solver's seed)."""
    spelled = get_backend(backend.name, backend.device)

    def losses(seed):
        solver = xpnet.Solver(_dropout_model(spelled), _toy_data(), update_rule="sgd",
                              optim_config={"learning_rate": 1e-2}, batch_size=10,
                              num_epochs=2, verbose=False, seed=seed)
        solver.train()
        return solver.loss_history

    first = losses(11)
    # unseeded draws in between must not change a seeded run
    spelled.random_uniform((5,))
    assert losses(11) == first
    assert losses(12) != first


@pytest.mark.parametrize("kind", ["generator", "counter"])
def test_streams_have_one_interface_and_one_generator(backend, kind, monkeypatch):
    from xpnet._ops.counter_random import CounterStream

    made = []
    real = type(backend).make_generator
    monkeypatch.setattr(type(backend), "make_generator",
                        lambda self, seed: made.append(seed) or real(self, seed))
    stream = backend.new_stream(4) if kind == "generator" else CounterStream(backend, 4)
    for _ in range(20):
        stream.uniform((3,), dtype="float64")
        stream.normal((2, 2), dtype="float64")
        stream.integers(10, 4)
    perm = np.sort(xpnet.to_numpy(stream.permutation(50)))
    np.testing.assert_array_equal(perm, np.arange(50))
    assert len(made) == (1 if kind == "generator" else 0)
    assert stream.state()["kind"] == kind


def test_stream_state_is_json_and_resumes_the_sequence(backend):
    import json

    stream = backend.new_stream(9)
    stream.normal((7,), dtype="float64")
    state = json.loads(json.dumps(stream.state()))
    after = [xpnet.to_numpy(stream.uniform((5,), dtype="float64")) for _ in range(3)]
    resumed = backend.new_stream(123)
    resumed.set_state(state)
    for expected in after:
        np.testing.assert_array_equal(xpnet.to_numpy(resumed.uniform((5,), dtype="float64")),
                                      expected)


def test_a_stream_refuses_the_state_of_another_kind(backend):
    from xpnet._ops.counter_random import CounterStream

    counter = CounterStream(backend, 1)
    with pytest.raises(xpnet.errors.InputError, match="kind 'counter'"):
        backend.new_stream(1).set_state(counter.state())
    with pytest.raises(xpnet.errors.InputError, match="kind 'generator'"):
        counter.set_state(backend.new_stream(1).state())


def test_tf32_is_a_cuda_option(backend):
    backend.set_tf32(False)  # off is always possible
    if backend.on_host:
        with pytest.raises(BackendError, match="TF32 is a CUDA feature"):
            backend.set_tf32(True)
    elif backend.name == "torch":
        import torch

        backend.set_tf32(True)
        assert torch.backends.cuda.matmul.allow_tf32
        backend.set_tf32(False)
        assert not torch.backends.cuda.matmul.allow_tf32
