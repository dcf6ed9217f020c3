"""Training speed: every implementation in its own process, alternated, several rounds.

    python benchmarks/bench_train.py                              # (a)-(d) and cnn, 4 rounds
    python benchmarks/bench_train.py --workloads fc-a --rounds 6 --threads 2
    python benchmarks/bench_train.py --workloads cnn --samples 10000 --json cnn.json
    python benchmarks/bench_train.py --workloads convnet --epochs 0 --rounds 3

Workloads (CIFAR-shaped inputs 3x32x32 -> 10 classes, Adam lr 1e-3, synthetic
N(0, 1) data unless ``--data-dir`` points at CIFAR-10):

    fc-a  FullyConnectedNet hidden [100]*5, batch 100, float32
    fc-b  (a) with batchnorm
    fc-c  hidden [1024, 1024], batch 256, float32
    fc-d  (a) in float64
    cnn   ThreeLayerConvNet, 32 7x7 filters, hidden 100, batch 50
    convnet  the --preset convnet network (width 16, conv-BN-ReLU x 6, 3 pools, global
          average, affine), SGD Nesterov lr 0.05, batch 128; with --epochs 0 only the
          step (an epoch is minutes)

For each workload, each implementation (``--impls``; see benchmarks/worker.py)
runs in a fresh process per round: xpnet's real ``Solver.train()`` for one
epoch (accuracy checks included) and its steady-state step, the same network
in plain PyTorch eager with default / foreach / fused Adam and the same
checks, and the matmul floor. Reported: min and median seconds per epoch and
milliseconds per step, peak RSS, and ratios to PyTorch (default and fused Adam)
and to the floor, best-to-best and median-to-median; the machine's load
average at the start; everything with the same ``--threads``.
"""

from __future__ import annotations

import argparse
import json
import sys

from harness import Job, machine, report, run_rounds

DEFAULT_IMPLS = {
    "fc": ["xpnet-numpy", "xpnet-torch", "torch", "torch-foreach", "torch-fused",
           "torch-fused-malloc", "floor-numpy"],
    "cnn": ["xpnet-numpy", "xpnet-torch", "torch", "torch-fused"],
    "convnet": ["xpnet-numpy", "xpnet-torch", "torch", "torch-cl"],
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="fc-a,fc-b,fc-c,fc-d,cnn")
    p.add_argument("--impls", help="comma-separated (default: per workload, see the code)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--samples", type=int, default=49_000, help="samples per epoch")
    p.add_argument("--epochs", type=int, default=1, help="whole epochs timed per process")
    p.add_argument("--data-dir")
    p.add_argument("--json", help="write every measurement and the summary here")
    args = p.parse_args()
    extra = ["--samples", str(args.samples), "--epochs", str(args.epochs)]
    if args.data_dir:
        extra += ["--data-dir", args.data_dir]
    jobs = []
    for workload in args.workloads.split(","):
        impls = (args.impls.split(",") if args.impls
                 else DEFAULT_IMPLS.get(workload, DEFAULT_IMPLS["fc"]))
        jobs += [Job(workload, impl, extra) for impl in impls]
    info = machine()
    print(f"{info.get('cpu')}, {args.threads} threads, load average at start "
          f"{info['load_average_at_start']}; numpy {info['numpy']}, torch {info['torch']}; "
          f"{args.rounds} rounds, each implementation in its own process", flush=True)
    results = run_rounds(jobs, args.rounds, args.threads)
    out = {"machine": info, "args": vars(args), "results": results}
    metrics = (("epoch_s", "s/epoch"), ("step_ms", "ms/step"))
    for metric, unit in metrics[0 if args.epochs else 1:]:
        text, summary = report(results, metric, ["torch", "torch-fused", "floor-numpy"], unit)
        print(f"\n{metric} ({unit}); ratio columns: this / baseline, best-to-best / "
              "median-to-median\n" + text, flush=True)
        out[f"summary_{metric}"] = summary
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
