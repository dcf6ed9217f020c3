"""Where one training step of the convnet preset's network goes, layer by layer.

    python benchmarks/profile_layers.py                       # NumPy, 2 threads
    python benchmarks/profile_layers.py --backend torch --repeats 7

Runs the ``convnet`` workload's ``Sequential`` (width 16, batch 128, float32)
on one backend in this process and times each layer's forward and backward
pass separately (the backend synchronized around each), the minimum over
``--repeats`` steps after a warm-up. For the issue's per-layer table; the
whole-step comparison against PyTorch is ``bench_train.py --workloads convnet``
(each implementation in its own process).
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="numpy")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "XPNET_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np

    import xpnet
    from xpnet._ops.allocator import reuse_freed_memory

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from worker import CONVNET_CONFIG, set_threads, xpnet_model

    set_threads(args.threads)
    reuse_freed_memory()  # as the Solver does
    backend = xpnet.get_backend(args.backend)
    model, batch, _ = xpnet_model("convnet", backend)
    rng = np.random.default_rng(0)
    X = backend.asarray(rng.standard_normal((batch, 3, 32, 32), dtype=np.float32))
    params = model.device_params()
    model.set_mode("train")
    layers = model.layers
    fwd = [float("inf")] * len(layers)
    bwd = [float("inf")] * len(layers)
    for rep in range(args.repeats + 2):
        h, caches = X, []
        for i, m in enumerate(layers):
            backend.synchronize()
            start = time.perf_counter()
            h, cache = m.forward(h, params)
            backend.synchronize()
            if rep >= 2:
                fwd[i] = min(fwd[i], time.perf_counter() - start)
            caches.append(cache)
        d = backend.xp.ones_like(h) / h.shape[0]
        for i in range(len(layers) - 1, -1, -1):
            backend.synchronize()
            start = time.perf_counter()
            d, _ = layers[i].backward(d, caches[i], params, need_dx=i > 0)
            backend.synchronize()
            if rep >= 2:
                bwd[i] = min(bwd[i], time.perf_counter() - start)
    print(f"convnet (width {CONVNET_CONFIG['width']}, batch {batch}) on {args.backend}, "
          f"{args.threads} threads; min of {args.repeats} steps, ms")
    print(f"{'#':>2}  {'layer':<28} {'fwd':>7} {'bwd':>7}")
    for i, m in enumerate(layers):
        print(f"{i:>2}  {m.describe():<28} {fwd[i] * 1e3:7.2f} {bwd[i] * 1e3:7.2f}")
    print(f"    {'sum':<28} {sum(fwd) * 1e3:7.1f} {sum(bwd) * 1e3:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
