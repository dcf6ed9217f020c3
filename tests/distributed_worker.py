"""One rank of a data-parallel test run (started by torch.distributed.run).

    python -m torch.distributed.run --nproc-per-node N tests/distributed_worker.py OUT.npz \
        [--normalization batchnorm] [--sync-batchnorm] [--resume CKPT] [--epochs K] \
        [--checkpoint NAME_WITH_{rank}] [--hang-rank R] [--kill-rank R] [--timeout S]

Trains the small model of :func:`case` with a Solver given ``xpnet.distributed.init()``;
rank 0 writes the final parameters (and the checkpoint) to OUT; every rank writes
``OUT.rank{r}.json`` with what it saw.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

import numpy as np

import xpnet
import xpnet.distributed
from xpnet.classifiers.fc_net import FullyConnectedNet
from xpnet.distributed.launch import record_error
from xpnet.solver import Solver


def data(seed: int = 0, n: int = 96, d: int = 12, classes: int = 5) -> dict:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, classes, n)
    return {"X_train": X, "y_train": y, "X_val": X[:40], "y_val": y[:40]}


def case(backend: str, normalization: str | None, communicator=None, sync=False, epochs=2,
         batch_size=24, checkpoint=None, update_rule="sgd_momentum"):
    model = FullyConnectedNet([16, 16], input_dim=12, num_classes=5, normalization=normalization,
                              reg=1e-3, weight_scale=0.1, seed=3, dtype="float32",
                              backend=xpnet.get_backend(backend))
    return Solver(model, data(), update_rule=update_rule, optim_config={"learning_rate": 1e-2},
                  batch_size=batch_size, num_epochs=epochs, num_train_samples=50,
                  verbose=False, seed=7, checkpoint_name=checkpoint,
                  communicator=communicator, sync_batchnorm=sync)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--backend", default="numpy")
    p.add_argument("--normalization", default=None)
    p.add_argument("--sync-batchnorm", action="store_true")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=24)
    p.add_argument("--resume", default=None)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--hang-rank", type=int, default=None)
    p.add_argument("--kill-rank", type=int, default=None)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--then-plain", action="store_true",
                   help="then train again with plain batchnorm into OUT.plain.*")
    a = p.parse_args()
    comm = xpnet.distributed.init(timeout=a.timeout)
    solver = case(a.backend, a.normalization, comm, a.sync_batchnorm, a.epochs,
                  checkpoint=a.checkpoint and a.checkpoint.format(rank=comm.rank),
                  batch_size=a.batch_size)
    if a.resume:
        solver.load_checkpoint(a.resume)
    def fault(s, event):  # after the second step
        if s.iteration == 2 and comm.rank == a.hang_rank:
            time.sleep(600)
        if s.iteration == 2 and comm.rank == a.kill_rank:
            os.kill(os.getpid(), signal.SIGKILL)

    solver.callback = fault
    try:
        solver.train()
    except xpnet.distributed.DistributedError as error:
        record_error(f"xpnet: error: {error}")  # as the command does
        with open(f"{a.out}.rank{comm.rank}.json", "w") as f:
            json.dump({"error": str(error), "time": time.time()}, f)
        sys.exit(3)
    if comm.is_root:
        np.savez(a.out, **{k: xpnet.to_numpy(v) for k, v in solver.model.params.items()})
    with open(f"{a.out}.rank{comm.rank}.json", "w") as f:
        json.dump({"loss_history": solver.loss_history, "val": solver.val_acc_history}, f)
    if a.then_plain:  # the same run, each rank normalizing with its slice's statistics
        plain = case(a.backend, "batchnorm", comm, False, a.epochs, batch_size=a.batch_size)
        plain.train()
        with open(f"{a.out}.plain.rank{comm.rank}.json", "w") as f:
            json.dump({"loss_history": plain.loss_history,
                       "params": {k: xpnet.to_numpy(v).tolist()
                                  for k, v in plain.model.params.items()}}, f)
    comm.close()


if __name__ == "__main__":
    main()
