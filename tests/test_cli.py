"""The ``xpnet`` command: train / resume / info / gradcheck, and every kind of bad input.

Training runs use scikit-learn's digits (a few hundred images) or a tiny
synthetic CIFAR-10 folder; nothing here touches the internet. The backend is
the suite's (``--backend`` / ``$XPNET_BACKEND``). Only the Ctrl-C test starts a
subprocess: ``tests/faults.py interrupt:6`` runs the command so that it sends
itself a real SIGINT after iteration 6 (the package has no hook for it), and
the resumed run must end with the same weights, bit for bit, as an
uninterrupted one.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet import files as files_module
from xpnet.app import cli, gradcheck
from xpnet.app.devices import device_label
from xpnet.app.train import resolve_options

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[1]
HOST = xpnet.get_backend("numpy", "cpu")  # where saved models are read back, whatever the env
FAULTS = Path(__file__).resolve().parent / "faults.py"  # the command, with a fault injected
# 240 training digits in batches of 60: 4 iterations per epoch.
TINY = ["--dataset", "digits", "--num-train", "240", "--num-val", "60", "--num-test", "60",
        "--hidden", "24", "--batch-size", "60", "-q"]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("xpnet: error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def no_temp_files(folder: Path) -> bool:
    return not [p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".part"))]


@pytest.fixture
def backend_env(backend, monkeypatch):
    """The CLI takes the suite's backend and device from $XPNET_BACKEND and $XPNET_DEVICE,
    as a user's shell would."""
    monkeypatch.setenv("XPNET_BACKEND", backend.name)
    monkeypatch.setenv("XPNET_DEVICE", device_label(backend))
    return backend.name


def write_synthetic_cifar(parent: Path, n_train: int = 20, n_test: int = 5) -> Path:
    """A CIFAR-10 batches folder in the official layout with random images."""
    rng = np.random.default_rng(0)
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    per_batch = n_train // 5
    for name, n in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)),
                    ("test_batch", n_test)]:
        batch = {"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in rng.integers(0, 10, size=n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return parent


# ---------------------------------------------------------------------------
# Training and the run folder


def test_train_on_digits_writes_a_complete_run_folder(backend_env, tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", *TINY, "--epochs", "3", "--seed", "3",
                             "--run-dir", run)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines if ln.startswith("epoch")] == [
        "epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "loss" in lines[1] and "val acc" in lines[1]
    assert lines[-1].startswith("test accuracy") and "s per epoch" in lines[-1]
    assert err == ""

    config = json.loads((run / "config.json").read_text())
    assert config["backend"] == backend_env and config["device"] == os.environ["XPNET_DEVICE"]
    assert config["args"]["hidden"] == [24] and config["args"]["epochs"] == 3
    assert config["args"]["seed"] == 3 and config["args"]["preset"] == "default"
    assert config["data"]["name"] == "digits" and config["data"]["num_train"] == 240

    history = json.loads((run / "history.json").read_text())
    assert history["status"] == "complete"
    assert len(history["loss_history"]) == 3 * 4
    assert len(history["train_acc_history"]) == len(history["val_acc_history"]) == 1 + 3
    assert history["best_val_acc"] == max(history["val_acc_history"]) > 0.5  # chance: 0.1
    assert 0.0 <= history["test_acc"] <= 1.0 and history["seconds_per_epoch"] > 0
    assert f"test accuracy {history['test_acc']:.4f}" in lines[-1]

    model = load_npz(run / "best_model.npz")
    assert model["params/W1"].shape == (64, 24) and model["params/W2"].shape == (24, 10)
    assert model["params/gamma1"].shape == model["buffers/running_mean1"].shape == (24,)
    state = load_npz(run / "checkpoint_epoch_3.npz")
    assert "params/W1" in state
    assert not (run / "checkpoint_epoch_2.npz").exists()  # only the latest is kept

    import matplotlib.image

    for name in ("curves.png", "first_layer_weights.png"):
        image = matplotlib.image.imread(run / name)
        assert image.ndim == 3 and image.shape[0] > 100
    assert no_temp_files(run)


def test_offline_falls_back_to_digits_with_one_line(backend_env, tmp_path, capsys):
    code, out, err = run_cli(capsys, "train", *TINY[2:], "--epochs", "1", "--no-download",
                             "--data-dir", tmp_path / "empty", "--run-dir", tmp_path / "run")
    assert code == 0
    assert len(err.strip().splitlines()) == 1
    assert "CIFAR-10 is not available" in err and "digits" in err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"]["name"] == "digits"


def test_synthetic_cifar_run(backend_env, tmp_path, capsys):
    parent = write_synthetic_cifar(tmp_path / "data")
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--dataset", "cifar10", "--data-dir", parent,
                             "--num-train", "15", "--num-val", "5", "--num-test", "5",
                             "--hidden", "6", "--batch-size", "5", "--epochs", "1",
                             "--run-dir", run, "-q")
    assert code == 0, err
    assert "cifar10 15/5/5" in out
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["name"] == "cifar10"
    assert config["data"]["path"] == str((parent / "cifar-10-batches-py").resolve())
    assert load_npz(run / "best_model.npz")["params/W1"].shape == (3072, 6)
    assert (run / "first_layer_weights.png").stat().st_size > 0


def test_presets_give_defaults_that_options_override():
    best = resolve_options({"preset": "best", "hidden": [64], "seed": 1})
    assert best["hidden"] == [64] and best["seed"] == 1
    assert best["keep_ratio"] < 1 and best["lr_decay"] < 1
    assert best["epochs"] > resolve_options({})["epochs"]
    default = resolve_options({"lr_decay": None})
    assert default["hidden"] == [512, 256] and default["normalization"] == "batchnorm"
    assert isinstance(default["seed"], int)


def test_resume_a_finished_run_with_more_epochs(backend_env, tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", *TINY, "--epochs", "1", "--seed", "0",
                   "--run-dir", run)[0] == 0
    code, out, err = run_cli(capsys, "train", "--resume", run, "--epochs", "2", "-q")
    assert code == 0, err
    assert "resuming" in out and "epoch 2/2" in out
    history = json.loads((run / "history.json").read_text())
    assert len(history["loss_history"]) == 2 * 4 and len(history["val_acc_history"]) == 3


# ---------------------------------------------------------------------------
# Ctrl-C and resume


def test_sigint_then_resume_gives_the_same_weights_bit_for_bit(backend_env, tmp_path, capsys):
    # CIFAR-shaped; dropout draws on the random stream and batchnorm keeps running stats.
    data = write_synthetic_cifar(tmp_path / "data", n_train=100)
    options = ["--dataset", "cifar10", "--data-dir", data, "--num-train", "80", "--num-val",
               "20", "--num-test", "5", "--hidden", "24", "16", "--batch-size", "20",
               "--epochs", "3", "--seed", "7", "--keep-ratio", "0.8", "--lr-decay", "0.8",
               "-q"]
    straight = tmp_path / "straight"
    assert run_cli(capsys, "train", *options, "--run-dir", straight)[0] == 0

    broken = tmp_path / "broken"
    env = dict(os.environ)  # the suite's backend and device, from backend_env
    proc = subprocess.run([sys.executable, str(FAULTS), "interrupt:6", "train",
                           *map(str, options), "--run-dir", str(broken)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "interrupted at iteration 6/12" in proc.stderr.strip().splitlines()[-1]
    assert f"--resume {broken}" in proc.stderr
    assert json.loads((broken / "history.json").read_text())["status"] == "interrupted"
    assert (broken / "checkpoint_interrupted.npz").is_file()
    assert not (broken / "checkpoint_epoch_2.npz").exists()

    code, out, err = run_cli(capsys, "train", "--resume", broken, "-q")
    assert code == 0, err
    assert "resuming" in out and "iteration 6/12" in out
    for name in ("best_model.npz", "checkpoint_epoch_3.npz"):
        a, b = load_npz(straight / name), load_npz(broken / name)
        assert sorted(a) == sorted(b)
        for key in a:
            if key != "__meta__.json":
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}: {key}")
    h1 = json.loads((straight / "history.json").read_text())
    h2 = json.loads((broken / "history.json").read_text())
    for key in ("loss_history", "train_acc_history", "val_acc_history", "test_acc"):
        assert h1[key] == h2[key]
    assert not (broken / "checkpoint_interrupted.npz").exists()


def test_the_package_has_no_test_hooks():
    """Faults are injected from outside (tests/faults.py): no environment variable of the
    shipped package interrupts or kills anything for a test."""
    hooks = re.compile(r"XPNET_\w*(?:TEST|INTERRUPT|KILL)\w*")
    found = {path.relative_to(ROOT).as_posix(): sorted(set(hooks.findall(path.read_text())))
             for path in sorted((ROOT / "xpnet").rglob("*.py"))}
    assert {k: v for k, v in found.items() if v} == {}


# ---------------------------------------------------------------------------
# Bad input: one line, exit status 2, nothing half-written


def test_unknown_option_is_one_line(capsys):
    code, _, err = run_cli(capsys, "train", "--bogus", "3")
    assert_one_line_error(code, err, "unrecognized arguments: --bogus")
    code, _, err = run_cli(capsys, "train", "--normalization", "groupnorm")
    assert_one_line_error(code, err, "groupnorm")


@pytest.mark.parametrize("option, value, needle", [
    ("--keep-ratio", "1.5", "--keep-ratio"),
    ("--lr", "-1", "--lr"),
    ("--epochs", "0", "--epochs"),
    ("--backend", "nonesuch", "unknown backend"),
])
def test_bad_option_values(tmp_path, capsys, option, value, needle):
    code, _, err = run_cli(capsys, "train", *TINY, option, value, "--run-dir", tmp_path / "run")
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "run").exists()


def test_data_folder_without_batches(backend_env, tmp_path, capsys):
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "data_batch_1").write_bytes(b"not all of it")
    code, _, err = run_cli(capsys, "train", "--dataset", "cifar10", "--data-dir",
                           tmp_path / "data", "--run-dir", tmp_path / "run")
    assert_one_line_error(code, err, "missing data_batch_2")
    code, _, err = run_cli(capsys, "train", "--dataset", "cifar10", "--no-download",
                           "--data-dir", tmp_path / "nothing", "--run-dir", tmp_path / "run")
    assert_one_line_error(code, err, "CIFAR-10 not found")
    assert not (tmp_path / "run").exists()


def test_unwritable_run_folder(backend_env, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    code, _, err = run_cli(capsys, "train", *TINY, "--epochs", "1",
                           "--run-dir", blocker / "run")
    assert_one_line_error(code, err, "cannot create run folder")
    assert blocker.read_text() == "in the way"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_existing_run_folder_is_not_overwritten(backend_env, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "train", *TINY, "--run-dir", run)
    assert_one_line_error(code, err, "already holds files", "--resume")
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]


def test_resume_with_another_architecture(backend_env, tmp_path, capsys):
    run, other = tmp_path / "run", tmp_path / "other"
    assert run_cli(capsys, "train", *TINY, "--epochs", "1", "--run-dir", run)[0] == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    code, _, err = run_cli(capsys, "train", "--resume", run, "--hidden", "32", "-q")
    assert_one_line_error(code, err, "--hidden 32", "--hidden 24")

    # A checkpoint of another architecture in the folder: refused by the Solver.
    assert run_cli(capsys, "train", *[a if a != "24" else "12" for a in TINY], "--epochs", "1",
                   "--run-dir", other)[0] == 0
    (run / "checkpoint_epoch_1.npz").write_bytes((other / "checkpoint_epoch_1.npz").read_bytes())
    code, _, err = run_cli(capsys, "train", "--resume", run, "--epochs", "2", "-q")
    assert_one_line_error(code, err, "cannot resume", "architecture")
    for name, payload in before.items():
        if name != "checkpoint_epoch_1.npz":
            assert (run / name).read_bytes() == payload, name


def test_resume_something_that_is_not_a_run(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--resume", tmp_path / "nowhere")
    assert_one_line_error(code, err, "cannot resume", "does not exist")
    code, _, err = run_cli(capsys, "train", "--resume", tmp_path, "--run-dir", tmp_path / "x")
    assert_one_line_error(code, err, "--resume")


def test_disk_full_mid_save_keeps_previous_files(backend_env, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    real_savez = np.savez

    def savez_until_full(handle, **arrays):
        meta = json.loads(arrays["__meta__.json"].tobytes())
        if meta.get("kind") == "solver" and meta["solver"]["epoch"] == 2:
            handle.write(b"PK\x03\x04 half a zip")  # the disk fills up half way
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_savez(handle, **arrays)

    monkeypatch.setattr(files_module.np, "savez", savez_until_full)
    code, out, err = run_cli(capsys, "train", *TINY, "--epochs", "3", "--run-dir", run)
    assert_one_line_error(code, err, "No space left on device")
    assert "epoch 1/3" in out and "epoch 2/3" not in out
    assert no_temp_files(run)
    assert not (run / "checkpoint_epoch_2.npz").exists()
    state = load_npz(run / "checkpoint_epoch_1.npz")
    assert state["params/W1"].shape == (64, 24)
    assert load_npz(run / "best_model.npz")["params/W1"].shape == (64, 24)
    assert json.loads((run / "history.json").read_text())["epoch"] == 1
    assert json.loads((run / "config.json").read_text())["args"]["epochs"] == 3


def test_the_one_json_writer_is_atomic_and_the_reader_forgiving(tmp_path):
    path = tmp_path / "state.json"
    files_module.write_json(path, {"a": [1, 2], "b": None})
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": null\n}\n'
    with pytest.raises(TypeError):
        files_module.write_json(path, {"a": object()})  # not JSON: the old file stays
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": None} and no_temp_files(tmp_path)
    assert files_module.read_json_object(path) == {"a": [1, 2], "b": None}
    (tmp_path / "half.json").write_text('{"a": [1, ')
    (tmp_path / "list.json").write_text("[1, 2]")
    for name in ("missing.json", "half.json", "list.json"):
        assert files_module.read_json_object(tmp_path / name) == {}


# ---------------------------------------------------------------------------
# --device and $XPNET_DEVICE


def _cuda_problem(name: str) -> str | None:
    """Why ``name`` cannot run on CUDA here (None: it can)."""
    try:
        xpnet.get_backend(name, "cuda")
    except xpnet.errors.BackendError as err:
        return str(err)
    return None


@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_train_on_the_cpu_device_records_it(name, tmp_path, capsys, monkeypatch):
    if name == "torch":
        pytest.importorskip("torch")
    monkeypatch.delenv("XPNET_DEVICE", raising=False)
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", *TINY, "--epochs", "1", "--seed", "1",
                             "--backend", name, "--device", "cpu", "--run-dir", run)
    assert code == 0, err
    assert f"{name} backend on cpu" in out
    config = json.loads((run / "config.json").read_text())
    result = json.loads((run / "result.json").read_text())
    assert (config["backend"], config["device"], config["args"]["device"]) == (name, "cpu", "cpu")
    assert (result["backend"], result["device"]) == (name, "cpu")

    code, out, err = run_cli(capsys, "train", "--resume", run, "--epochs", "2", "-q")
    assert code == 0 and f"{name} backend on cpu" in out, err


def test_a_resumed_run_keeps_its_device_on_its_backend(monkeypatch):
    from xpnet.app.train import _resumed_device

    monkeypatch.delenv("XPNET_DEVICE", raising=False)
    saved = {"backend": "torch", "device": "cuda:1"}
    assert _resumed_device({}, "torch", saved) == "cuda:1"  # where it ran
    assert _resumed_device({}, "numpy", saved) is None  # another backend: its default
    assert _resumed_device({"device": "cpu"}, "torch", saved) == "cpu"  # --device
    assert _resumed_device({}, "torch", {"backend": "torch"}) is None  # a run of xpnet 0.2
    monkeypatch.setenv("XPNET_DEVICE", "cuda:0")
    assert _resumed_device({}, "torch", saved) == "cuda:0"
    assert _resumed_device({"device": "cpu"}, "torch", saved) == "cpu"


@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_cuda_device_without_a_gpu_is_one_line(name, tmp_path, capsys, monkeypatch):
    if name == "torch":
        pytest.importorskip("torch")
    if _cuda_problem(name) is None:
        pytest.skip(f"{name} can use CUDA here")
    monkeypatch.delenv("XPNET_DEVICE", raising=False)
    needle = "runs on the CPU only" if name == "numpy" else "torch cannot use device 'cuda'"
    for command in (["train", *TINY, "--run-dir", tmp_path / "run"], ["gradcheck"]):
        code, _, err = run_cli(capsys, *command, "--backend", name, "--device", "cuda")
        assert_one_line_error(code, err, needle)
    assert not (tmp_path / "run").exists()


def test_xpnet_device_is_the_default_device(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XPNET_DEVICE", "cuda:7")  # no machine here has eight GPUs for numpy
    code, _, err = run_cli(capsys, "train", *TINY, "--backend", "numpy", "--run-dir",
                           tmp_path / "run")
    assert_one_line_error(code, err, "runs on the CPU only", "'cuda:7'")
    code, _, err = run_cli(capsys, "gradcheck", "--backend", "numpy")
    assert_one_line_error(code, err, "'cuda:7'")
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv("XPNET_DEVICE", "cpu")  # recorded as the run's device; --device wins
    code, out, err = run_cli(capsys, "train", *TINY, "--epochs", "1", "--backend", "numpy",
                             "--run-dir", tmp_path / "run")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["args"]["device"] == "cpu"
    code, _, err = run_cli(capsys, "train", *TINY, "--backend", "numpy", "--device", "cuda:7",
                           "--run-dir", tmp_path / "other")
    assert_one_line_error(code, err, "'cuda:7'")


# ---------------------------------------------------------------------------
# info and gradcheck


def test_info_lists_backends_and_versions(capsys):
    code, out, _ = run_cli(capsys, "info")
    assert code == 0
    for name in xpnet.backend.BACKEND_NAMES:
        assert name in out
    assert re.search(rf"^\s+numpy\s+{re.escape(np.__version__)}$", out, re.MULTILINE)
    usable = [line.split()[0] for line in out.splitlines() if " usable " in line]
    assert usable == xpnet.available_backends()


def test_help(capsys):
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0 and "--resume" in out and "--preset" in out and "--device" in out
    for command in ("sweep", "gradcheck"):
        code, out, _ = run_cli(capsys, command, "--help")
        assert code == 0 and "--device" in out and "XPNET_DEVICE" in out, command
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and all(c in out for c in ("train", "info", "gradcheck"))


def test_gradcheck_passes_on_the_backend(backend, capsys):
    label = device_label(backend)
    code, out, _ = run_cli(capsys, "gradcheck", "--backend", backend.name, "--device", label)
    assert code == 0, out
    assert out.splitlines()[0] == f"gradient checks on the {backend.name} backend on {label} " \
                                  "(float64)"
    rows = {line.split()[0]: line for line in out.splitlines()[3:-1]}
    assert sorted(rows) == sorted(gradcheck.CHECK_NAMES)
    assert all(line.rstrip().endswith("pass") for line in rows.values())
    assert out.strip().splitlines()[-1] == f"all {len(gradcheck.CHECK_NAMES)} checks passed"


def test_gradcheck_fails_on_a_broken_backward(monkeypatch, capsys):
    real = xpnet.layers.relu_backward
    monkeypatch.setattr(xpnet.layers, "relu_backward", lambda dout, cache: 1.5 * real(dout,
                                                                                     cache))
    code, out, _ = run_cli(capsys, "gradcheck", "--backend", "numpy")
    assert code == 1
    rows = {line.split()[0]: line for line in out.splitlines()[3:-1]}
    assert "FAIL" in rows["relu"] and rows["affine"].rstrip().endswith("pass")
    assert "FAILED: relu" in out.strip().splitlines()[-1]


# ---------------------------------------------------------------------------
# --model cnn


def test_train_cnn_on_digits_with_its_preset(backend_env, tmp_path, capsys):
    run = tmp_path / "cnn"
    code, out, err = run_cli(capsys, "train", "--model", "cnn", "--dataset", "digits",
                             "--num-train", "200", "--num-val", "50", "--num-test", "50",
                             "--filters", "6", "--filter-size", "3", "--hidden", "20",
                             "--epochs", "2", "--seed", "1", "--run-dir", run, "-q")
    assert code == 0, err
    assert "ThreeLayerConvNet (6 filters 3x3, hidden 20)" in out
    config = json.loads((run / "config.json").read_text())
    assert config["args"]["model"] == "cnn" and config["args"]["preset"] == "cnn"
    assert config["model"]["class"].endswith("ThreeLayerConvNet")
    assert config["data"]["image_shape"] == [1, 8, 8]  # digits keep their image shape
    model = xpnet.load_model(run / "best_model.npz", backend=HOST)
    assert type(model).__name__ == "ThreeLayerConvNet"
    assert tuple(model.params["W1"].shape) == (6, 1, 3, 3)
    assert (run / "first_layer_weights.png").stat().st_size > 0
    code, out, err = run_cli(capsys, "train", "--resume", run, "--epochs", "3", "-q")
    assert code == 0 and "epoch 3/3" in out, err


def test_model_options_must_fit_the_model(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--filters", "8", "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, "--filters does not apply to --model fc")
    code, _, err = run_cli(capsys, "train", "--model", "cnn", "--preset", "best",
                           "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, "--preset best is for --model fc")
    code, _, err = run_cli(capsys, "train", "--model", "cnn", "--hidden", "10", "20",
                           "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, "--model cnn takes 1 --hidden size")
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------
# Composed models and the recipe


def test_convnet_with_the_recipe_writes_result_json(backend_env, tmp_path, capsys):
    run = tmp_path / "convnet"
    code, out, err = run_cli(capsys, "train", "--model", "convnet", "--width", "4",
                             "--dataset", "digits", "--num-train", "120", "--num-val", "40",
                             "--num-test", "40", "--batch-size", "40", "--epochs", "2",
                             "--seed", "2", "--run-dir", run, "-q")
    assert code == 0, err
    assert "nesterov" in out and "augmented" in out and "schedule onecycle" in out
    result = json.loads((run / "result.json").read_text())
    assert set(result) >= {"test_acc", "best_val_acc", "epochs", "seconds",
                           "seconds_per_epoch", "backend", "model", "params_count"}
    assert result["model"] == "convnet" and result["epochs"] == 2
    assert result["backend"] == backend_env and result["params_count"] > 0
    model = xpnet.load_model(run / "best_model.npz", backend=HOST)
    assert type(model).__name__ == "Sequential" and model.num_params() == result["params_count"]
    assert (run / "first_layer_weights.png").stat().st_size > 0


@pytest.mark.parametrize("args, needle", [
    (["--model", "transformer"], "invalid choice: 'transformer'"),
    (["--schedule", "linear"], "invalid choice: 'linear'"),
    (["--nesterov"], "--nesterov needs --update-rule sgd_momentum, not adam"),
    (["--weight-decay", "-0.1"], "--weight-decay must be a number >= 0"),
    (["--label-smoothing", "1.5"], "--label-smoothing must lie in [0, 1)"),
    (["--model", "convnet", "--hidden", "10"], "--hidden does not apply to --model convnet"),
])
def test_recipe_options_are_checked(tmp_path, capsys, args, needle):
    code, _, err = run_cli(capsys, "train", *args, "--run-dir", tmp_path / "r")
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "r").exists()
