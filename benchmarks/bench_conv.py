"""One convolution layer, forward and backward: xpnet's fast layer against PyTorch.

    python benchmarks/bench_conv.py                      # every config, 5 rounds, 2 threads
    python benchmarks/bench_conv.py --workloads conv-big --rounds 3
    python benchmarks/bench_conv.py --workloads convnet --rounds 3   # the preset's layers

Configs (float32): ``conv-course`` x (100, 3, 31, 31), 25 3x3 filters, stride 2,
pad 1 (the course's timing cell); ``conv-cnn`` x (50, 3, 32, 32), 32 7x7
filters, pad 3 (ThreeLayerConvNet's layer); ``conv-big`` x (128, 64, 32, 32),
64 3x3 filters, pad 1; ``convnet`` stands for the ``--preset convnet`` network's
layers at batch 128 (``conv-c3``: 3->16 at 32x32, ``conv-c16``: 16->16 at 32x32,
``conv-c32``: 32->32 at 16x16, ``conv-c64``: 64->64 at 8x8). Implementations:
``xpnet-numpy`` (``conv_forward_fast``, which picks im2col or one product per tap),
``xpnet-numpy-im2col``,
``xpnet-numpy-strides``, ``xpnet-numpy-winograd`` (3x3 stride-1 configs only),
``xpnet-torch`` (torch's own kernels, a registered fast path) and ``torch``
(``torch.nn.functional.conv2d`` with autograd), each in its own process per
round. Reported: min and median milliseconds of one forward + backward pass,
peak RSS (the im2col column matrix included), and the ratio to PyTorch.
"""

from __future__ import annotations

import argparse
import json
import sys

from harness import Job, machine, report, run_rounds

IMPLS = ["xpnet-numpy", "xpnet-numpy-im2col", "xpnet-numpy-strides", "xpnet-numpy-winograd",
         "xpnet-torch", "torch"]
#: the convnet preset's layers alone: ``--workloads convnet``
CONVNET_LAYERS = "conv-c3,conv-c16,conv-c32,conv-c64"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="conv-course,conv-cnn,conv-big")
    p.add_argument("--impls", default=",".join(IMPLS))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json")
    args = p.parse_args()
    workloads = args.workloads.replace("convnet", CONVNET_LAYERS).split(",")
    jobs = [Job(w, i, ["--blocks", "7"]) for w in workloads for i in args.impls.split(",")
            if not (i.endswith("winograd") and w in ("conv-course", "conv-cnn"))]
    info = machine()
    print(f"{info.get('cpu')}, {args.threads} threads, load average at start "
          f"{info['load_average_at_start']}; numpy {info['numpy']}, torch {info['torch']}",
          flush=True)
    results = run_rounds(jobs, args.rounds, args.threads)
    text, summary = report(results, "fwd_bwd_ms", ["torch"], "ms")
    print("\nforward + backward (ms); ratio: this / torch, best-to-best / median-to-median\n"
          + text, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "args": vars(args), "results": results,
                       "summary": summary}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
