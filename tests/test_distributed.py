"""Data-parallel training on the CPU: two and three ranks (gloo on 127.0.0.1) against one
process.

Every run starts real processes through torchrun's launcher
(:func:`xpnet.distributed.launch.run_local`) with a timeout on every wait; a test
that fails or times out kills its whole process group. The expected values come
from a single-process Solver run here, never from the distributed code itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch.distributed")
import torch.distributed as dist  # noqa: E402

import xpnet  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from distributed_worker import case  # noqa: E402
from one_rank import OneRank

from xpnet.solver import Solver  # noqa: E402

pytestmark = pytest.mark.skipif(not dist.is_gloo_available(), reason="torch has no gloo")

ROOT = Path(__file__).resolve().parents[1]
WORKER = str(Path(__file__).with_name("distributed_worker.py"))
LAUNCH = ("import sys; from xpnet.distributed.launch import run_local; "
          "sys.exit(run_local(int(sys.argv[1]), sys.argv[2:], entry=()))")


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own session; on a timeout (or any failure to wait) the whole
    session is killed, so no rank outlives the test."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        raise
    finally:
        try:  # ranks the launcher left behind, if any
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def ranks(n: int, out: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The worker as ``n`` ranks; fails the test with the ranks' output if they fail."""
    done = _run([sys.executable, "-c", LAUNCH, str(n), WORKER, str(out), *args], timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def single(backend, normalization=None, epochs=2, **kwargs):
    solver = case(backend.name, normalization, epochs=epochs, **kwargs)
    solver.train()
    return solver


def assert_same_params(solver, path: Path) -> None:
    got = np.load(path)
    for name, value in solver.model.params.items():  # float32 rounding, a few steps
        np.testing.assert_allclose(got[name], xpnet.to_numpy(value), rtol=2e-5, atol=2e-6,
                                   err_msg=name)


def seen(out: Path, rank: int) -> dict:
    return json.loads(Path(f"{out}.rank{rank}.json").read_text())


def test_three_ranks_with_sync_batchnorm_follow_one_process(tmp_path, backend):
    out = tmp_path / "bn.npz"
    # 25 = 9 + 8 + 8: unequal slices, weighted in the gradients and the statistics
    ranks(3, out, "--backend", backend.name, "--normalization", "batchnorm", "--sync-batchnorm",
          "--batch-size", "25", "--then-plain")
    reference = single(backend, "batchnorm", batch_size=25)
    assert_same_params(reference, out)
    np.testing.assert_allclose(seen(out, 2)["loss_history"], reference.loss_history, rtol=1e-5)
    # then plain batchnorm: each rank's slice statistics (as DDP), another trajectory,
    # still one model on every rank
    plain = [json.loads(Path(f"{out}.plain.rank{r}.json").read_text()) for r in range(3)]
    assert plain[0]["loss_history"][0] != pytest.approx(reference.loss_history[0], rel=1e-4)
    assert plain[1] == plain[0] and plain[2] == plain[0]


def test_two_ranks_follow_one_process_rank_0_alone_writes_and_3_ranks_resume(tmp_path, backend):
    first = tmp_path / "first.npz"
    ranks(2, first, "--backend", backend.name, "--epochs", "1", "--checkpoint",
          str(tmp_path / "ck{rank}"))
    written = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ck"))
    assert written == ["ck0_epoch_1.npz"]  # rank 1 wrote no checkpoint
    reference = single(backend, epochs=1)  # no batchnorm: the single-process trajectory
    assert_same_params(reference, first)
    for rank in (0, 1):  # every rank records the global batch's loss
        np.testing.assert_allclose(seen(first, rank)["loss_history"], reference.loss_history,
                                   rtol=1e-5)
        assert seen(first, rank)["val"] == reference.val_acc_history  # sharded, reduced
    resumed = tmp_path / "resumed.npz"
    ranks(3, resumed, "--backend", backend.name, "--epochs", "2", "--resume",
          str(tmp_path / "ck0_epoch_1.npz"))
    reference = single(backend, epochs=2)  # one process, both epochs
    assert_same_params(reference, resumed)


def test_a_killed_rank_ends_the_others_with_one_line_naming_it(tmp_path):
    began = time.monotonic()
    done = _run([sys.executable, "-c", LAUNCH, "2", WORKER, str(tmp_path / "k.npz"),
                 "--kill-rank", "1", "--timeout", "20"], timeout=60)
    assert done.returncode != 0
    assert time.monotonic() - began < 40
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("xpnet: error")]
    assert lines == ["xpnet: error: rank 1 of 2 died (SIGKILL); the other ranks were "
                     "stopped"], done.stderr
    assert not (tmp_path / "k.npz").exists()


def test_a_hung_rank_makes_the_others_stop_within_the_timeout(tmp_path):
    out = tmp_path / "h.npz"
    began = time.monotonic()
    done = _run([sys.executable, "-c", LAUNCH, "2", WORKER, str(out), "--hang-rank", "1",
                 "--timeout", "2"], timeout=60)
    assert done.returncode != 0
    assert time.monotonic() - began < 30
    error = seen(out, 0)["error"]
    assert error.startswith("rank 1 of 2 stopped answering"), error
    assert "2 s timeout" in error
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("xpnet: error")]
    assert lines == [f"xpnet: error: {error}"], done.stderr  # the launcher's one line


TINY = ["--dataset", "digits", "--num-train", "240", "--num-val", "60", "--num-test", "60",
        "--hidden", "24", "--batch-size", "60", "--epochs", "2", "--normalization", "batchnorm",
        "--update-rule", "sgd_momentum", "--lr", "0.05", "--seed", "5", "-q"]


def test_xpnet_train_nproc_2_end_to_end_on_digits(tmp_path, backend):
    from xpnet.app.cli import main

    tiny = [*TINY, "--backend", backend.name]
    assert main(["train", *tiny, "--run-dir", str(tmp_path / "one")]) == 0
    done = _run([sys.executable, "-m", "xpnet", "train", "--nproc", "2", "--sync-batchnorm",
                 *tiny, "--run-dir", str(tmp_path / "two")], timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("test accuracy") == 1  # rank 0 alone prints
    one, two = tmp_path / "one", tmp_path / "two"
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    a, b = np.load(one / "best_model.npz"), np.load(two / "best_model.npz")
    for key in a.files:
        if key.startswith("params/"):
            np.testing.assert_allclose(b[key], a[key], rtol=2e-5, atol=2e-6, err_msg=key)
    ra = json.loads((one / "result.json").read_text())
    rb = json.loads((two / "result.json").read_text())
    assert rb["test_acc"] == ra["test_acc"] and rb["best_val_acc"] == ra["best_val_acc"]


def test_ctrl_c_stops_every_rank_after_the_same_step_with_a_checkpoint(tmp_path, backend):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "xpnet", "train", "--nproc", "2", *TINY, "--backend",
           backend.name, "--epochs", "100000", "--run-dir", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not list(run.glob("checkpoint_epoch_*.npz")):
            assert proc.poll() is None and time.monotonic() < deadline, "no epoch ended"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C sends the launcher
        out, err = proc.communicate(timeout=40)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 130, out + err
    assert "xpnet: interrupted at iteration" in err
    assert (run / "checkpoint_interrupted.npz").exists()
    assert json.loads((run / "history.json").read_text())["status"] == "interrupted"
    assert "error" not in err


def test_a_world_of_one_follows_the_ordinary_step_exactly(backend):
    reference = single(backend, "batchnorm")
    solver = case(backend.name, "batchnorm", communicator=OneRank(), sync=True)
    solver.train()
    assert solver.loss_history == reference.loss_history
    assert solver.val_acc_history == reference.val_acc_history
    for name, value in reference.model.params.items():
        np.testing.assert_array_equal(xpnet.to_numpy(solver.model.params[name]),
                                      xpnet.to_numpy(value), err_msg=name)


def test_shards_cover_the_batch_and_bad_settings_are_refused(backend):
    from xpnet.errors import InputError
    from xpnet.training.parallel import shard

    assert [shard(25, r, 3) for r in range(3)] == [(0, 9), (9, 17), (17, 25)]
    assert [shard(4, r, 4) for r in range(4)] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    many = type("Many", (OneRank,), {"world_size": 32})()
    with pytest.raises(InputError, match="global batch"):
        case(backend.name, None, communicator=many)
    model = case(backend.name, None).model
    data = {"X_train": np.zeros((4, 12), np.float32), "y_train": np.zeros(4, np.int64),
            "X_val": np.zeros((2, 12), np.float32), "y_val": np.zeros(2, np.int64)}
    with pytest.raises(InputError, match="capturable"):
        Solver(model, data, update_rule="sgd", batch_size=2, capturable=True,
               communicator=OneRank())
