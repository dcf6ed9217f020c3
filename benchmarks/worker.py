"""One benchmark measurement, in this process only; prints one JSON line.

Started by :mod:`harness` as a fresh process per measurement (never import
two array libraries' thread pools into one timing). Workloads:

``fc-a`` ... ``fc-d``
    FullyConnectedNet + Adam on CIFAR-shaped data (see :data:`FC_CONFIGS`).
``cnn``
    ThreeLayerConvNet (32 7x7 filters, hidden 100) + Adam, batch 50.
``convnet``
    The ``--preset convnet`` network (width 16: 3->16->16, pool, 32, 32, pool, 64,
    64, pool, global average, affine; conv-BN-ReLU) + SGD Nesterov, batch 128.
``conv-course``, ``conv-cnn``, ``conv-big``, ``conv-c3`` ... ``conv-c64``
    One convolution's forward and backward pass (see :data:`CONV_CONFIGS`).

Implementations: ``xpnet-numpy``, ``xpnet-torch``, ``xpnet-strict`` (xpnet's
Solver on that backend), ``torch`` / ``torch-foreach`` / ``torch-fused``
(plain PyTorch eager with that Adam; ``torch-fused-malloc``: with the glibc
malloc setting that xpnet's Solver makes, see ``xpnet/_ops/allocator.py``),
``floor-numpy`` / ``floor-torch`` (the
matmuls of one FC iteration, nothing else); for the conv workloads
``xpnet-numpy[-im2col|-strides|-winograd]``, ``xpnet-torch[-...]`` and ``torch``
(``conv2d`` with autograd); for ``convnet`` also ``torch-cl`` (channels_last).

Training workloads report ``epoch_s`` (one whole epoch through the real
``Solver.train()``, accuracy checks included, or the PyTorch loop with the
same checks) and ``step_ms`` (steady-state milliseconds per iteration, the
median of blocks after a warm-up of at least ``--warmup-seconds``); conv
workloads report ``fwd_bwd_ms``. All report ``peak_rss_mb`` (VmHWM of this process).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from typing import Any

import numpy as np

INPUT_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
LEARNING_RATE = 1e-3

#: name: (hidden sizes, batch, normalization, dtype, weight scale)
FC_CONFIGS = {
    "fc-a": ((100,) * 5, 100, None, "float32", 5e-2),
    "fc-b": ((100,) * 5, 100, "batchnorm", "float32", 5e-2),
    "fc-c": ((1024, 1024), 256, None, "float32", 2e-2),
    "fc-d": ((100,) * 5, 100, None, "float64", 5e-2),
}
CNN_CONFIG = {"num_filters": 32, "filter_size": 7, "hidden": 100, "batch": 50,
              "weight_scale": 1e-3}
#: name: (x shape, w shape, stride, pad)
CONV_CONFIGS = {
    "conv-course": ((100, 3, 31, 31), (25, 3, 3, 3), 2, 1),  # the course's timing cell
    "conv-cnn": ((50, 3, 32, 32), (32, 3, 7, 7), 1, 3),  # ThreeLayerConvNet's layer
    "conv-big": ((128, 64, 32, 32), (64, 64, 3, 3), 1, 1),
    # the convnet preset's layers (width 16, batch 128): the first, then one per stage
    "conv-c3": ((128, 3, 32, 32), (16, 3, 3, 3), 1, 1),
    "conv-c16": ((128, 16, 32, 32), (16, 16, 3, 3), 1, 1),
    "conv-c32": ((128, 32, 16, 16), (32, 32, 3, 3), 1, 1),
    "conv-c64": ((128, 64, 8, 8), (64, 64, 3, 3), 1, 1),
}
#: the convnet preset's network and optimizer: width 16, batch 128, SGD Nesterov
CONVNET_CONFIG = {"width": 16, "batch": 128, "learning_rate": 0.05, "momentum": 0.9}
#: training workloads that are not FC_CONFIGS
CONV_TRAINING = ("cnn", "convnet")


def peak_rss_mb() -> float:
    """VmHWM of this process (ru_maxrss can report the parent's peak after exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def set_threads(n: int) -> None:
    """Same thread count everywhere (the environment sets BLAS/OpenMP already)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def make_data(n: int, dtype: str, data_dir: str | None) -> dict[str, np.ndarray]:
    """CIFAR-shaped training data on the host: synthetic N(0, 1), or real CIFAR-10."""
    if data_dir:
        from xpnet.data_utils import get_CIFAR10_data

        raw = get_CIFAR10_data(num_training=n, num_validation=1000, num_test=1,
                               root=data_dir, download=False)
        data = {k: raw[k] for k in ("X_train", "y_train", "X_val", "y_val")}
    else:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((n + 1000, *INPUT_SHAPE), dtype=np.float32)
        y = rng.integers(NUM_CLASSES, size=n + 1000, dtype=np.int64)
        data = {"X_train": X[:n], "y_train": y[:n], "X_val": X[n:], "y_val": y[n:]}
    for key in ("X_train", "X_val"):
        data[key] = data[key].astype(dtype, copy=False)
    return data


def warm_up(step, args: argparse.Namespace) -> None:
    """``args.warmup`` untimed iterations, then more until ``args.warmup_seconds`` have
    passed: a fresh process runs its first second or so of steps up to 1.4x slower
    (measured: 490 FC steps 2.1 s first, 1.45 s after), which a count of iterations
    alone does not cover."""
    start = time.perf_counter()
    step(args.warmup)
    while time.perf_counter() - start < args.warmup_seconds:
        step(max(args.block, 1))


def blocks(step, per_block: int, count: int) -> float:
    """Median milliseconds per iteration over ``count`` blocks of ``per_block``."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        step(per_block)
        times.append((time.perf_counter() - start) / per_block * 1e3)
    return statistics.median(times)


# ---------------------------------------------------------------------------
# Training workloads


def xpnet_backend(impl: str):
    import xpnet

    name, device = {"xpnet-numpy": ("numpy", None), "xpnet-torch": ("torch", None),
                    "xpnet-strict": ("array_api_strict", None), "xpnet-cupy": ("cupy", None),
                    "xpnet-torch-cuda": ("torch", "cuda")}[impl]
    return xpnet.get_backend(name, device)


def xpnet_model(workload: str, backend):
    import xpnet

    if workload == "convnet":
        from xpnet.app.models import convnet
        from xpnet.nn import Sequential

        c = CONVNET_CONFIG
        return Sequential(*convnet(c["width"], NUM_CLASSES), input_shape=INPUT_SHAPE,
                          dtype="float32", seed=0, backend=backend), c["batch"], "float32"
    if workload == "cnn":
        c = CNN_CONFIG
        return xpnet.ThreeLayerConvNet(num_filters=c["num_filters"],
                                       filter_size=c["filter_size"], hidden_dim=c["hidden"],
                                       weight_scale=c["weight_scale"], seed=0,
                                       backend=backend), c["batch"], "float32"
    hidden, batch, norm, dtype, scale = FC_CONFIGS[workload]
    return xpnet.FullyConnectedNet(list(hidden), normalization=norm, weight_scale=scale,
                                   dtype=dtype, seed=0, backend=backend), batch, dtype


def xpnet_training(workload: str, impl: str, args: argparse.Namespace) -> dict[str, Any]:
    import xpnet

    backend = xpnet_backend(impl)
    model, batch, dtype = xpnet_model(workload, backend)
    data = make_data(args.samples, dtype, args.data_dir)

    rule, config = "adam", {"learning_rate": LEARNING_RATE}
    if workload == "convnet":
        rule = "sgd_momentum"
        config = {"learning_rate": CONVNET_CONFIG["learning_rate"],
                  "momentum": CONVNET_CONFIG["momentum"], "nesterov": True}

    def solver_for(m, epochs=1):
        return xpnet.Solver(m, data, update_rule=rule, optim_config=dict(config),
                            batch_size=batch,
                            num_epochs=epochs, num_train_samples=1000, print_every=10**9,
                            verbose=False, seed=0)

    # the steady-state step: a warm-up, then blocks of iterations
    solver = solver_for(model, epochs=10**6)

    def step(k: int) -> None:
        for _ in range(k):
            solver._step()
        solver._flush_losses()
        backend.synchronize()

    warm_up(step, args)
    step_ms = blocks(step, args.block, args.blocks)
    result = {"step_ms": step_ms}
    if args.epochs:
        fresh, _, _ = xpnet_model(workload, backend)
        timed = solver_for(fresh, epochs=args.epochs)
        start = time.perf_counter()
        timed.train()
        backend.synchronize()
        result["epoch_s"] = (time.perf_counter() - start) / args.epochs
        result["iterations"] = timed.num_iterations
        result["final_loss"] = timed.loss_history[-1]
    return result


def torch_training(workload: str, impl: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from torch_reference import TorchTrainer, build_cnn, fused_adam_kind

    device = torch.device("cpu")
    if impl.startswith("torch-cuda"):  # torch-cuda, torch-cuda-fused: PyTorch eager on a GPU
        device = torch.device("cuda")
        impl = "torch" + impl.removeprefix("torch-cuda")
    if impl.endswith("-malloc"):  # with the host-memory setting xpnet's Solver makes
        from xpnet._ops.allocator import reuse_freed_memory

        reuse_freed_memory()
        impl = impl.removesuffix("-malloc")
    channels_last = impl.endswith("-cl")  # torch-cl: the convnet in channels_last
    impl = impl.removesuffix("-cl")
    adam = {"torch": "default", "torch-foreach": "foreach", "torch-fused": "fused"}[impl]
    if adam == "fused":
        adam = fused_adam_kind(device, torch.float32)
    if workload == "convnet":
        from torch_reference import build_convnet

        c = CONVNET_CONFIG
        dtype, batch = torch.float32, c["batch"]
        data = make_data(args.samples, "float32", args.data_dir)

        def new_trainer():
            net = build_convnet(INPUT_SHAPE[0], c["width"], NUM_CLASSES, dtype, device,
                                channels_last=channels_last)
            trainer = TorchTrainer(data["X_train"], data["y_train"], None, None, 0.0, batch,
                                   dtype, device, net=net)
            trainer.opt = torch.optim.SGD(net.parameters(), lr=c["learning_rate"],
                                          momentum=c["momentum"], nesterov=True)
            return trainer
    elif workload == "cnn":
        c = CNN_CONFIG
        dtype, batch = torch.float32, c["batch"]
        data = make_data(args.samples, "float32", args.data_dir)

        def new_trainer():
            net = build_cnn(INPUT_SHAPE, c["num_filters"], c["filter_size"], c["hidden"],
                            NUM_CLASSES, c["weight_scale"], dtype, device)
            return TorchTrainer(data["X_train"], data["y_train"], None, None, 0.0, batch,
                                dtype, device, adam=adam, learning_rate=LEARNING_RATE, net=net)
    else:
        hidden, batch, norm, dtype_name, scale = FC_CONFIGS[workload]
        dtype = getattr(torch, dtype_name)
        data = make_data(args.samples, dtype_name, args.data_dir)
        dims = [math.prod(INPUT_SHAPE), *hidden, NUM_CLASSES]

        def new_trainer():
            return TorchTrainer(data["X_train"], data["y_train"], dims, norm, scale, batch,
                                dtype, device, adam=adam, learning_rate=LEARNING_RATE)

    trainer = new_trainer()

    def step(k: int) -> None:
        for _ in range(k):
            trainer.step()
        trainer.flush()

    warm_up(step, args)
    note = ("torch.optim.SGD(nesterov)" + (", channels_last" if channels_last else "")
            if workload == "convnet" else f"torch.optim.Adam({adam})")
    result: dict[str, Any] = {"step_ms": blocks(step, args.block, args.blocks), "note": note}
    if args.epochs:
        fresh = new_trainer()
        iterations = max(args.samples // batch, 1) * args.epochs
        start = time.perf_counter()
        # the Solver's checks: 1000 training samples and the validation set, at the start
        # and after every epoch
        fresh.accuracy(data["X_train"], data["y_train"], 1000)
        fresh.accuracy(data["X_val"], data["y_val"])
        for _epoch in range(args.epochs):
            for _ in range(iterations // args.epochs):
                fresh.step()
            fresh.flush()
            fresh.accuracy(data["X_train"], data["y_train"], 1000)
            fresh.accuracy(data["X_val"], data["y_val"])
        result["epoch_s"] = (time.perf_counter() - start) / args.epochs
        result["iterations"] = iterations
        result["final_loss"] = fresh.losses[-1]
    return result


def floor_training(workload: str, impl: str, args: argparse.Namespace) -> dict[str, Any]:
    """The affine layers' matmuls only: x @ W, dout @ W.T (not for the first layer, which
    needs no input gradient) and x.T @ dout."""
    hidden, batch, _, dtype, _ = FC_CONFIGS[workload]
    dims = [math.prod(INPUT_SHAPE), *hidden, NUM_CLASSES]
    rng = np.random.default_rng(1)
    host = [(rng.standard_normal((batch, a)).astype(dtype),
             rng.standard_normal((a, b)).astype(dtype),
             rng.standard_normal((batch, b)).astype(dtype))
            for a, b in zip(dims, dims[1:], strict=False)]
    if impl == "floor-torch":
        import torch

        arrays = [tuple(torch.as_tensor(a) for a in t) for t in host]
    else:
        arrays = host

    def step(k: int) -> None:
        for _ in range(k):
            for i, (x, w, g) in enumerate(arrays):
                x @ w
                if i:
                    g @ w.T
                x.T @ g

    warm_up(step, args)
    step_ms = blocks(step, args.block, args.blocks)
    iterations = max(args.samples // batch, 1)
    return {"step_ms": step_ms, "epoch_s": step_ms * iterations / 1e3, "extrapolated": True,
            "note": "matmuls only, extrapolated to an epoch"}


# ---------------------------------------------------------------------------
# Convolution workloads


def conv_layer(workload: str, impl: str, args: argparse.Namespace) -> dict[str, Any]:
    xs, ws, stride, pad = CONV_CONFIGS[workload]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs, dtype=np.float32)
    w = rng.standard_normal(ws, dtype=np.float32)
    b = np.zeros(ws[0], np.float32)
    result: dict[str, Any] = {}
    if impl == "torch":
        import torch

        xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))

        def step() -> None:
            out = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=pad)
            out.backward(torch.ones_like(out))
            xt.grad = wt.grad = bt.grad = None
    else:
        from xpnet import fast_layers

        name, _, method = impl.partition("-")[2].partition("-")
        backend = xpnet_backend(f"xpnet-{name}")
        xd, wd, bd = (backend.asarray(a) for a in (x, w, b))
        forward = {"": fast_layers.conv_forward_fast, "im2col": fast_layers.conv_forward_im2col,
                   "strides": fast_layers.conv_forward_strides,
                   "winograd": fast_layers.conv_forward_winograd}[method]
        result["method"] = forward(xd, wd, bd, {"stride": stride, "pad": pad})[1]["method"]

        def step() -> None:
            out, cache = forward(xd, wd, bd, {"stride": stride, "pad": pad})
            fast_layers.conv_backward_fast(backend.xp.ones_like(out), cache)
            backend.synchronize()

    for _ in range(max(args.warmup // 10, 1)):
        step()
    times = []
    for _ in range(args.blocks):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    result["fwd_bwd_ms"] = statistics.median(times)
    result["fwd_bwd_ms_min"] = min(times)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", required=True)
    p.add_argument("--impl", required=True)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--samples", type=int, default=49_000, help="samples per epoch")
    p.add_argument("--epochs", type=int, default=1, help="whole epochs to time (0: none)")
    p.add_argument("--warmup", type=int, default=20, help="untimed iterations first")
    p.add_argument("--warmup-seconds", type=float, default=3.0,
                   help="...and untimed blocks until this much time has passed")
    p.add_argument("--block", type=int, default=20, help="iterations per timed block")
    p.add_argument("--blocks", type=int, default=5, help="timed blocks (median)")
    p.add_argument("--data-dir", help="real CIFAR-10 instead of synthetic data")
    args = p.parse_args()
    if args.impl.startswith("torch") or args.impl in ("xpnet-torch", "floor-torch"):
        import torch  # noqa: F401  (imported before set_threads so it gets the count too)
    set_threads(args.threads)
    if args.workload in CONV_CONFIGS:
        result = conv_layer(args.workload, args.impl, args)
    elif args.impl.startswith("xpnet"):
        result = xpnet_training(args.workload, args.impl, args)
    elif args.impl.startswith("floor"):
        result = floor_training(args.workload, args.impl, args)
    else:
        result = torch_training(args.workload, args.impl, args)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
