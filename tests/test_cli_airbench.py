"""``xpnet train --preset airbench / airbench-cpu`` and the options they brought
(--param-group, --test-time-augment, --gelu), on a synthetic CIFAR-10 folder."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import xpnet
from xpnet.app import cli
from xpnet.app.devices import device_label
from xpnet.app.presets import PRESETS
from xpnet.app.train import param_groups


def run_cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xpnet: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def backend_env(backend, monkeypatch):
    monkeypatch.setenv("XPNET_BACKEND", backend.name)
    monkeypatch.setenv("XPNET_DEVICE", device_label(backend))
    return backend.name


def write_synthetic_cifar(parent, n_train=20, n_test=5):
    """A CIFAR-10 batches folder in the official layout with random images."""
    rng = np.random.default_rng(0)
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, n in [*((f"data_batch_{i}", n_train // 5) for i in range(1, 6)),
                    ("test_batch", n_test)]:
        batch = {"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in rng.integers(0, 10, size=n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return parent


def test_the_airbench_presets():
    gpu, cpu = PRESETS["airbench"], PRESETS["airbench-cpu"]
    assert gpu["model"] == cpu["model"] == "airbench" and gpu["recipe"] == "airbench"
    assert (gpu["width"], gpu["batch_size"], gpu["epochs"], gpu["gelu"]) == (64, 1024, 10, "none")
    assert gpu["test_time_augment"] == 2 and gpu["label_smoothing"] == 0.2
    assert cpu["gelu"] == "tanh" and cpu["width"] < gpu["width"]
    # the listed rates are the recipe's at each batch size: 1.5 per 1024 images
    assert cpu["learning_rate"] == pytest.approx(1.5 * cpu["batch_size"] / 1024)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["airbench-cpu", "airbench-muon"])
def test_airbench_presets_train_on_synthetic_cifar(backend_env, tmp_path, capsys, preset):
    parent = write_synthetic_cifar(tmp_path / "data", n_train=40, n_test=8)
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--preset", preset, "--dataset",
                             "cifar10", "--data-dir", parent, "--num-train", "32",
                             "--num-val", "8", "--num-test", "8", "--width", "2",
                             "--batch-size", "8", "--epochs", "4", "--seed", "1",
                             "--run-dir", run, "-q")
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert config["args"]["recipe"] == preset.replace("-cpu", "")
    assert config["args"]["model"] == "airbench"
    history = json.loads((run / "history.json").read_text())
    assert history["status"] == "complete" and 0.0 <= history["test_acc"] <= 1.0
    model = xpnet.load_model(run / "best_model.npz", backend="numpy")
    assert "0.W" in model.frozen and "0.W" not in model.params
    w = xpnet.to_numpy(model.buffers["0.W"])
    np.testing.assert_array_equal(w[12:], -w[:12])  # the whitening filters and negatives


def test_airbench_needs_32x32_images(backend_env, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--model", "airbench", "--dataset", "digits",
                           "--epochs", "1", "--run-dir", tmp_path / "run", "-q")
    assert_one_line_error(code, err, "32x32")


def test_param_groups_from_the_command_line():
    groups = param_groups({"param_groups": [["*.beta", "lr=0.64", "weight_decay=0"],
                                            ["*.W", "update_rule=muon", "momentum=0.6"]]})
    assert groups == [{"params": "*.beta", "learning_rate": 0.64, "weight_decay": 0.0},
                      {"params": "*.W", "update_rule": "muon", "momentum": 0.6}]
    assert param_groups({"param_groups": []}) is None


@pytest.mark.parametrize("group, needle", [
    (["*.beta"], "KEY=VALUE"), (["*.beta", "speed=3"], "KEY=VALUE"),
    (["*.beta", "lr=fast"], "number"), (["*.W", "update_rule=newton"], "update_rule")])
def test_bad_param_groups_are_one_line(tmp_path, capsys, group, needle):
    code, _, err = run_cli(capsys, "train", "--dataset", "digits", "--param-group", *group,
                           "--run-dir", tmp_path / "run", "-q")
    assert_one_line_error(code, err, needle)


def test_a_param_group_and_test_time_augmentation_on_digits(backend_env, tmp_path, capsys):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--dataset", "digits", "--num-train", "120",
                           "--num-val", "30", "--num-test", "30", "--hidden", "8",
                           "--batch-size", "30", "--epochs", "1", "--param-group", "b*",
                           "lr=0.01", "--test-time-augment", "1", "--run-dir", run, "-q")
    assert code == 0, err
    args = json.loads((run / "config.json").read_text())["args"]
    assert args["param_groups"] == [["b*", "lr=0.01"]] and args["test_time_augment"] == 1


def test_the_help_lists_the_new_options(capsys):
    assert cli.main(["train", "--help"]) == 0
    text = "".join(capsys.readouterr().out.split())  # (wrapped at any hyphen)
    for flag in ("--param-group", "--test-time-augment", "--gelu", "airbench-cpu"):
        assert flag in text, flag
