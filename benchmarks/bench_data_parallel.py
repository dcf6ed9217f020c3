"""Data-parallel cost on one machine: R ranks x 1 thread against 1 process x R threads.

    python benchmarks/bench_data_parallel.py                    # convnet and fc, 2 ranks
    python benchmarks/bench_data_parallel.py --workloads fc --rounds 3 --steps 30

For each workload, alternated for ``--rounds`` rounds, each run in fresh processes:

``single``  one process, BLAS/OpenMP with R threads, the Solver's ordinary step;
``ranks``   R ranks (torchrun's launcher, gloo on 127.0.0.1), 1 thread each, the same
            global batch: the Solver's data-parallel step.

Reported (min and median over rounds): milliseconds per step; for the ranks the time
rank 0 spends in the gradients' all-reduce per step (waiting for the slower rank
included) and its share of the step, and the time of the same all-reduce alone
(the buffer reduced 50 times with nothing else running: the transfer's own cost).
Synthetic CIFAR-shaped data (3x32x32, 10 classes), NumPy backend.

Workloads: ``convnet`` is ``--preset convnet`` (width 16, SGD Nesterov, batch 128,
73k parameters); ``fc`` is ``--preset default`` (FullyConnectedNet [512, 256] with
batchnorm, Adam, batch 200, 1.7M parameters).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"convnet": "convnet", "fc": "default"}


def _threads_env(n: int) -> dict[str, str]:
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    return {**os.environ, **{k: str(n) for k in names}, "PYTHONPATH": str(ROOT)}


def worker(workload: str, steps: int, warmup: int, distributed: bool) -> None:
    import numpy as np

    import xpnet
    import xpnet.distributed
    from xpnet.app.models import build_model
    from xpnet.app.train import optim_config, resolve_options
    from xpnet.solver import Solver

    options = resolve_options({"preset": PRESETS[workload], "seed": 0})
    batch = options["batch_size"]
    backend = xpnet.get_backend("numpy")
    comm = xpnet.distributed.init() if distributed else None
    rng = np.random.default_rng(0)
    n = batch * 4
    X = rng.standard_normal((n, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, n)
    model = build_model(options, (3, 32, 32), 10, backend)
    solver = Solver(model, {"X_train": X, "y_train": y, "X_val": X[:10], "y_val": y[:10]},
                    update_rule=options["update_rule"], optim_config=optim_config(options),
                    batch_size=batch, num_epochs=1, verbose=False, seed=0,
                    communicator=comm)
    with solver.random.active():
        for _ in range(warmup):
            solver._step()
        if comm is not None:
            comm.barrier()
            solver.parallel.reduce_seconds = 0.0
        began = time.perf_counter()
        for _ in range(steps):
            solver._step()
        solver._flush_losses()
        seconds = time.perf_counter() - began
    result = {"ms_step": 1e3 * seconds / steps, "params": model.num_params()}
    if comm is not None:
        result["allreduce_ms_step"] = 1e3 * solver.parallel.reduce_seconds / steps
        buffers = solver.parallel._buffers
        comm.barrier()
        began = time.perf_counter()
        for _ in range(50):
            comm.all_reduce(buffers)
        result["allreduce_alone_ms"] = 1e3 * (time.perf_counter() - began) / 50
        result["allreduce_bytes"] = int(sum(b.nbytes for b in buffers))
    if comm is None or comm.is_root:
        print("RESULT " + json.dumps(result), flush=True)
    if comm is not None:
        comm.close()


def _run(cmd: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200, cwd=ROOT)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", nargs="+", default=["convnet", "fc"], choices=sorted(PRESETS))
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--worker", choices=sorted(PRESETS), help=argparse.SUPPRESS)
    p.add_argument("--distributed", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(a.worker, a.steps, a.warmup, a.distributed)
        return
    me = [sys.executable, str(Path(__file__).resolve())]
    report = {"load_average": os.getloadavg(), "ranks": a.ranks, "workloads": {}}
    for workload in a.workloads:
        runs: dict[str, list[dict]] = {"single": [], "ranks": []}
        for _ in range(a.rounds):
            args = ["--worker", workload, "--steps", str(a.steps), "--warmup", str(a.warmup)]
            runs["single"].append(_run([*me, *args], _threads_env(a.ranks)))
            runs["ranks"].append(_run([sys.executable, "-m", "torch.distributed.run",
                                       "--standalone", "--nproc-per-node", str(a.ranks),
                                       me[1], *args, "--distributed"], _threads_env(1)))
        summary = {}
        for kind, results in runs.items():
            for key in results[0]:
                values = [r[key] for r in results]
                summary[f"{kind}_{key}"] = {"min": min(values),
                                            "median": statistics.median(values)}
        summary["allreduce_share"] = {
            k: summary["ranks_allreduce_ms_step"][k] / summary["ranks_ms_step"][k]
            for k in ("min", "median")}
        report["workloads"][workload] = summary
        s = summary
        print(f"{workload}: {s['single_params']['min']} parameters, all-reduce "
              f"{s['ranks_allreduce_bytes']['min'] / 2**20:.2f} MiB per step\n"
              f"  1 process x {a.ranks} threads: {s['single_ms_step']['min']:.1f} ms/step "
              f"(median {s['single_ms_step']['median']:.1f})\n"
              f"  {a.ranks} ranks x 1 thread:    {s['ranks_ms_step']['min']:.1f} ms/step "
              f"(median {s['ranks_ms_step']['median']:.1f}); all-reduce "
              f"{s['ranks_allreduce_ms_step']['min']:.2f} ms/step (median "
              f"{s['ranks_allreduce_ms_step']['median']:.2f}), "
              f"{100 * s['allreduce_share']['min']:.1f}% of the step "
              f"(median {100 * s['allreduce_share']['median']:.1f}%); the all-reduce alone "
              f"{s['ranks_allreduce_alone_ms']['min']:.2f} ms", flush=True)
    print(f"load average at the start: {report['load_average']}")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
