"""Time training epochs of FullyConnectedNet + Adam against plain PyTorch.

    python benchmarks/bench_train.py                       # everything, 49,000 samples
    python benchmarks/bench_train.py --configs a,c --backends numpy --samples 5000 --iters 50
    python benchmarks/bench_train.py --data-dir ~/cifar10 --json out.json

Configurations (CIFAR-shaped inputs, 3x32x32 -> 10 classes, Adam lr 1e-3):

    a  hidden [100]*5,      batch 100, float32
    b  (a) with batchnorm
    c  hidden [1024, 1024], batch 256, float32
    d  (a) in float64

Implementations timed side by side in one process, interleaved block by block
(the order rotates every round): every usable xpnet backend (``numpy``,
``torch``, ``array_api_strict``, ``cupy``, ``torch-cuda``) training through
``Solver`` steps, and the equivalent plain PyTorch loop
(:mod:`torch_reference`) with ``torch.optim.Adam``'s default implementation
and with ``fused=True`` (``foreach`` where fused does not run). The matmul
floor is timed the same way: the forward matmul and both backward matmuls of
every affine layer at the configuration's shapes, so ``6 * N * sum(d_in *
d_out)`` FLOPs per epoch of N samples, in NumPy and in PyTorch.

An epoch is ``49000 // batch`` iterations (``--epoch-samples``). Every timed
block runs ``--iters`` iterations (default: one epoch over the ``--samples``
data set) followed by the bulk fetch of its losses; seconds per epoch are the
median seconds per iteration times the iterations of an epoch, extrapolated
when a block is shorter than an epoch, and the output says so. Peak host
memory (RSS) is measured in a separate process per implementation that builds
the data set and trains a few iterations (``--no-memory`` skips it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(HERE.parent))

import xpnet  # noqa: E402
from xpnet import FullyConnectedNet, Solver  # noqa: E402

EPOCH_SAMPLES = 49_000
INPUT_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
LEARNING_RATE = 1e-3


@dataclasses.dataclass(frozen=True)
class Config:
    key: str
    title: str
    hidden: tuple[int, ...]
    batch: int
    normalization: str | None = None
    dtype: str = "float32"
    weight_scale: float = 5e-2

    @property
    def dims(self) -> list[int]:
        return [math.prod(INPUT_SHAPE), *self.hidden, NUM_CLASSES]

    def matmul_flops_per_sample(self) -> int:
        """Forward + both backward matmuls of every affine layer: 6 * sum(d_in * d_out)."""
        d = self.dims
        return 6 * sum(d[i] * d[i + 1] for i in range(len(d) - 1))

    def needed_matmul_flops_per_sample(self) -> int:
        """Without the gradient of the input (the first layer's dx), which training
        does not need."""
        d = self.dims
        return self.matmul_flops_per_sample() - 2 * d[0] * d[1]


CONFIGS = {
    "a": Config("a", "hidden [100]*5, batch 100, float32", (100,) * 5, 100),
    "b": Config("b", "(a) with batchnorm", (100,) * 5, 100, "batchnorm"),
    "c": Config("c", "hidden [1024, 1024], batch 256, float32", (1024, 1024), 256,
                weight_scale=2e-2),
    "d": Config("d", "(a) in float64: hidden [100]*5, batch 100", (100,) * 5, 100,
                dtype="float64"),
}


# ---------------------------------------------------------------------------
# Machine, threads, memory
# ---------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_threads() -> int | None:
    """Threads NumPy's BLAS uses (threadpoolctl), or None when unknown."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


def set_threads(n: int | None) -> int:
    """Use ``n`` threads in NumPy's BLAS, in xpnet's NumPy kernels and in PyTorch;
    returns the count used."""
    if n is None:
        n = blas_threads() or os.cpu_count() or 1
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n, user_api="blas")
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    # xpnet's NumPy kernels split large updates between threads too (Adam)
    os.environ["XPNET_NUM_THREADS"] = str(n)
    from xpnet._fast.numpy_paths import WORKERS

    WORKERS.threads = n
    return n


def peak_rss_bytes() -> int:
    """Peak resident set size of this process.

    ``VmHWM`` from /proc where there is one: ``ru_maxrss`` survives ``exec``, so
    in a child process it can report the parent's peak instead of the child's.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # KiB on Linux


def current_rss_bytes() -> int | None:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return None


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def make_data(n: int, dtype: str, data_dir: str | None, seed: int = 0) -> dict[str, np.ndarray]:
    """CIFAR-shaped training data on the host, in the training dtype.

    Synthetic N(0, 1) images with uniform labels, or the real CIFAR-10 with
    ``data_dir``. Casting once here lets every backend share one host copy.
    """
    if data_dir is not None:
        from xpnet.data_utils import get_CIFAR10_data

        raw = get_CIFAR10_data(num_training=n, num_validation=100, num_test=1,
                               root=data_dir, download=False)
        X, y = raw["X_train"], raw["y_train"]
        X_val, y_val = raw["X_val"], raw["y_val"]
    else:
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((n, *INPUT_SHAPE), dtype=np.dtype(dtype))
        y = rng.integers(NUM_CLASSES, size=n, dtype=np.int64)
        X_val, y_val = X[:100], y[:100]
    if X.dtype != np.dtype(dtype):
        X, X_val = X.astype(dtype), X_val.astype(dtype)
    return {"X_train": X, "y_train": y.astype(np.int64),
            "X_val": X_val, "y_val": y_val.astype(np.int64)}


# ---------------------------------------------------------------------------
# Runners: run(k) does k training iterations and returns when they are done
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Runner:
    name: str
    kind: str          # 'xpnet', 'pytorch' or 'floor'
    device: str        # 'cpu' or 'gpu'
    run: Callable[[int], None]
    device_peak: Callable[[], int | None] = lambda: None
    note: str = ""


XPNET_BACKENDS = ("numpy", "torch", "array_api_strict", "cupy", "torch-cuda")


def usable_xpnet_backends() -> list[str]:
    names = [b for b in xpnet.available_backends() if b in XPNET_BACKENDS]
    try:
        import torch

        if torch.cuda.is_available():
            names.append("torch-cuda")
    except ImportError:
        pass
    return names


def xpnet_backend(name: str) -> xpnet.Backend:
    if name == "torch-cuda":
        return xpnet.get_backend("torch", device="cuda")
    return xpnet.get_backend(name)


def xpnet_runner(name: str, cfg: Config, data: dict) -> Runner:
    be = xpnet_backend(name)
    model = FullyConnectedNet(list(cfg.hidden), normalization=cfg.normalization,
                              weight_scale=cfg.weight_scale, dtype=cfg.dtype, seed=0,
                              backend=be)
    solver = Solver(model, data, update_rule="adam",
                    optim_config={"learning_rate": LEARNING_RATE},
                    batch_size=cfg.batch, num_epochs=1, verbose=False, seed=0)

    def run(k: int) -> None:
        for _ in range(k):
            solver._step()  # one Solver iteration: gather, loss/grads, Adam on every param
        solver._flush_losses()  # the bulk fetch train() does at print points / epoch ends
        be.synchronize()

    on_gpu = be.name == "cupy" or (be.name == "torch" and be.device.type == "cuda")
    return Runner(f"xpnet:{name}", "xpnet", "gpu" if on_gpu else "cpu", run,
                  device_peak=_device_peak_fn(be) if on_gpu else (lambda: None))


def _device_peak_fn(be: xpnet.Backend) -> Callable[[], int | None]:
    if be.name == "cupy":
        import cupy

        return lambda: int(cupy.get_default_memory_pool().total_bytes())
    import torch

    return lambda: int(torch.cuda.max_memory_allocated(be.device))


def torch_runners(cfg: Config, data: dict, device: str,
                  only: str | None = None) -> list[Runner]:
    """The default-Adam and fused-Adam loops (or just the one named ``only``)."""
    import torch
    from torch_reference import TorchTrainer, fused_adam_kind

    dev = torch.device(device)
    dtype = getattr(torch, cfg.dtype)
    where = "gpu" if dev.type == "cuda" else "cpu"
    suffix = "" if where == "cpu" else "-cuda"
    fused = fused_adam_kind(dev, dtype)
    runners = []
    for adam, label in (("default", f"pytorch{suffix}"), (fused, f"pytorch{suffix}-{fused}")):
        if only is not None and label != only:
            continue
        trainer = TorchTrainer(data["X_train"], data["y_train"], cfg.dims, cfg.normalization,
                               cfg.weight_scale, cfg.batch, dtype, dev, adam=adam,
                               learning_rate=LEARNING_RATE)

        def run(k: int, trainer: TorchTrainer = trainer) -> None:
            for _ in range(k):
                trainer.step()
            trainer.flush()
            trainer.synchronize()

        peak = (lambda: int(torch.cuda.max_memory_allocated(dev))) if where == "gpu" \
            else (lambda: None)
        runners.append(Runner(label, "pytorch", where, run, peak,
                              note=f"torch.optim.Adam({'' if adam == 'default' else adam})"))
    return runners


def floor_runner(lib: str, cfg: Config) -> Runner:
    """The matmuls of one iteration: x @ W, dout @ W.T and x.T @ dout per layer."""
    d, n = cfg.dims, cfg.batch
    rng = np.random.default_rng(1)
    shapes = [(d[i], d[i + 1]) for i in range(len(d) - 1)]
    host = [(rng.standard_normal((n, a), dtype=np.float32).astype(cfg.dtype),
             rng.standard_normal((a, b), dtype=np.float32).astype(cfg.dtype),
             rng.standard_normal((n, b), dtype=np.float32).astype(cfg.dtype))
            for a, b in shapes]
    def sync() -> None:
        return None

    if lib == "numpy":
        arrays = host
        where = "cpu"
    elif lib == "cupy":
        import cupy

        arrays = [tuple(cupy.asarray(a) for a in t) for t in host]
        where = "gpu"

        def sync() -> None:
            cupy.cuda.get_current_stream().synchronize()
    else:
        import torch

        dev = torch.device("cuda" if lib == "torch-cuda" else "cpu")
        arrays = [tuple(torch.as_tensor(a, device=dev) for a in t) for t in host]
        where = "gpu" if dev.type == "cuda" else "cpu"
        if where == "gpu":
            def sync() -> None:
                torch.cuda.synchronize(dev)

    def run(k: int) -> None:
        for _ in range(k):
            for x, w, g in arrays:
                x @ w
                g @ w.T
                x.T @ g
        sync()

    return Runner(f"floor:{lib}", "floor", where, run)


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

def time_config(cfg: Config, runners: list[Runner], iters: int, warmup: int,
                repeats: int) -> dict[str, dict[str, Any]]:
    """Warm up every runner, then time ``repeats`` rounds of ``iters`` iterations each,
    interleaved (the order rotates each round). Returns per-runner statistics."""
    for r in runners:
        r.run(warmup)
    wall: dict[str, list[float]] = {r.name: [] for r in runners}
    cpu: dict[str, list[float]] = {r.name: [] for r in runners}
    for rep in range(repeats):
        shift = rep % len(runners)
        for r in runners[shift:] + runners[:shift]:
            t0, c0 = time.perf_counter(), time.process_time()
            r.run(iters)
            wall[r.name].append((time.perf_counter() - t0) / iters)
            cpu[r.name].append((time.process_time() - c0) / iters)
    iters_per_epoch = max(EPOCH_SAMPLES // cfg.batch, 1)
    out = {}
    for r in runners:
        med, best = statistics.median(wall[r.name]), min(wall[r.name])
        out[r.name] = {
            "kind": r.kind, "device": r.device, "note": r.note,
            "s_per_iter_median": med, "s_per_iter_min": best,
            "s_per_iter_all": wall[r.name],
            "cpu_s_per_iter_median": statistics.median(cpu[r.name]),
            "s_per_epoch": med * iters_per_epoch,
            "s_per_epoch_min": best * iters_per_epoch,
            "samples_per_s": cfg.batch / med,
            "device_peak_bytes": r.device_peak(),
        }
    return out


# ---------------------------------------------------------------------------
# Peak memory, one process per implementation
# ---------------------------------------------------------------------------

def probe_memory(impl: str, cfg: Config, n: int, data_dir: str | None, threads: int) -> dict:
    """Run in a child process: build the data and the trainer, train a few steps."""
    set_threads(threads)
    data = make_data(n, cfg.dtype, data_dir)
    base = current_rss_bytes()
    if impl.startswith("pytorch"):
        device = "cuda" if "-cuda" in impl else "cpu"
        runner = torch_runners(cfg, data, device, only=impl)[0]
    else:
        runner = xpnet_runner(impl.split(":", 1)[1], cfg, data)
    runner.run(10)
    return {"rss_peak_bytes": peak_rss_bytes(), "rss_after_data_bytes": base,
            "device_peak_bytes": runner.device_peak()}


def measure_memory(impl: str, cfg: Config, args: argparse.Namespace, threads: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_probe", impl,
           "--configs", cfg.key, "--samples", str(args.samples), "--threads", str(threads)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def _mb(b: int | None) -> str:
    return "-" if b is None else f"{b / 2**20:,.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}"


def add_ratios(res: dict[str, dict[str, Any]]) -> None:
    """Ratios of every xpnet row against the PyTorch rows and the floor on its device."""
    for stats in res.values():
        if stats["kind"] != "xpnet":
            continue
        dev = stats["device"]
        refs = {k: v for k, v in res.items() if v["kind"] == "pytorch" and v["device"] == dev}
        floors = {k: v for k, v in res.items() if v["kind"] == "floor" and v["device"] == dev}
        stats["ratio_vs"] = {k: stats["s_per_iter_median"] / v["s_per_iter_median"]
                             for k, v in refs.items()}
        # floor: best against best, the least noisy estimate on a shared machine
        stats["floor_ratio"] = {k: stats["s_per_iter_min"] / v["s_per_iter_min"]
                                for k, v in floors.items()}


def print_table(cfg: Config, res: dict[str, dict[str, Any]], extrapolated: bool,
                iters: int) -> None:
    ipe = max(EPOCH_SAMPLES // cfg.batch, 1)
    flops = cfg.matmul_flops_per_sample() * cfg.batch
    print(f"\n[{cfg.key}] {cfg.title}: epoch = {ipe} iterations x {cfg.batch} "
          f"= {ipe * cfg.batch:,} samples; matmul work {flops * ipe / 1e9:.1f} GFLOP/epoch")
    if extrapolated:
        print(f"    s/epoch extrapolated from blocks of {iters} iterations "
              f"(median s/iteration x {ipe})")
    refs = [k for k, v in res.items() if v["kind"] == "pytorch"]
    floors = [k for k, v in res.items() if v["kind"] == "floor"]
    head = (f"    {'implementation':<24}{'s/epoch':>9}{'min':>9}{'samples/s':>11}"
            f"{'RSS MB':>9}{'dev MB':>8}")
    head += "".join(f"{'/' + k:>{max(len(k) + 2, 9)}}" for k in refs + floors)
    print(head)
    for name, s in res.items():
        line = (f"    {name:<24}{s['s_per_epoch']:>9.3f}{s['s_per_epoch_min']:>9.3f}"
                f"{s['samples_per_s']:>11,.0f}{_mb(s.get('rss_peak_bytes')):>9}"
                f"{_mb(s.get('device_peak_bytes')):>8}")
        for k in refs:
            v = s.get("ratio_vs", {}).get(k)
            line += f"{'-' if v is None else f'{v:.2f}':>{max(len(k) + 2, 9)}}"
        for k in floors:
            v = s.get("floor_ratio", {}).get(k)
            line += f"{'-' if v is None else f'{v:.2f}':>{max(len(k) + 2, 9)}}"
        print(line)
    for name in floors:
        s = res[name]
        print(f"    {name}: {flops / s['s_per_iter_min'] / 1e9:.1f} GFLOP/s at these shapes "
              f"(best block)")
    if floors:
        print(f"    (the floor counts the input layer's dx; xpnet and PyTorch skip it and do "
              f"{cfg.needed_matmul_flops_per_sample() / cfg.matmul_flops_per_sample():.0%} "
              f"of these FLOPs)")


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="a,b,c,d", help="comma list of a,b,c,d")
    p.add_argument("--backends", default=None,
                   help="xpnet backends, comma list (default: every usable one: "
                        + ", ".join(XPNET_BACKENDS) + ")")
    p.add_argument("--no-pytorch", action="store_true", help="skip the plain PyTorch loops")
    p.add_argument("--no-floor", action="store_true", help="skip the matmul floor")
    p.add_argument("--epochs", type=int, default=3,
                   help="timed blocks (rounds) per implementation; the median is reported")
    p.add_argument("--samples", type=int, default=EPOCH_SAMPLES,
                   help="training samples in the data set (shrink for a quick run)")
    p.add_argument("--iters", type=int, default=None,
                   help="iterations per timed block (default: one epoch over --samples)")
    p.add_argument("--warmup", type=int, default=20, help="warm-up iterations")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for NumPy's BLAS and torch (default: NumPy's BLAS count)")
    p.add_argument("--data-dir", default=None, help="real CIFAR-10 (get_CIFAR10_data root)")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the per-implementation peak-RSS processes")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--_probe", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = set_threads(args.threads)
    configs = [CONFIGS[k.strip()] for k in args.configs.split(",") if k.strip()]
    if args._probe:
        print(json.dumps(probe_memory(args._probe, configs[0], args.samples, args.data_dir,
                                      threads)))
        return 0

    usable = usable_xpnet_backends()
    wanted = usable if args.backends is None else [b.strip() for b in args.backends.split(",")]
    skipped = [b for b in wanted if b not in usable]
    backends = [b for b in wanted if b in usable]
    try:
        import torch
        have_torch = True
    except ImportError:
        have_torch = False
    gpu = any(b in ("cupy", "torch-cuda") for b in backends)

    iters_block = args.iters
    extrapolated = True
    machine = {
        "cpu": cpu_model(), "logical_cpus": os.cpu_count(), "threads": threads,
        "python": platform.python_version(), "numpy": np.__version__,
        "torch": torch.__version__ if have_torch else None, "xpnet": xpnet.__version__,
        "platform": platform.platform(),
    }
    print(f"machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs; "
          f"{threads} threads for NumPy BLAS, xpnet NumPy kernels and torch")
    print(f"numpy {machine['numpy']}, torch {machine['torch']}, xpnet {machine['xpnet']}; "
          f"data: {'CIFAR-10 from ' + args.data_dir if args.data_dir else 'synthetic'}, "
          f"{args.samples:,} samples")
    for name in skipped:
        why = xpnet.backend.backend_problem(name.split("-")[0]) if name in XPNET_BACKENDS \
            else "unknown backend"
        print(f"skipped backend {name}: {why or 'no CUDA device for torch'}")
    report: dict[str, Any] = {"machine": machine, "command": " ".join(sys.argv),
                              "samples": args.samples, "epoch_samples": EPOCH_SAMPLES,
                              "configs": {}}
    for cfg in configs:
        data = make_data(args.samples, cfg.dtype, args.data_dir)
        iters = iters_block or max(args.samples // cfg.batch, 1)
        extrapolated = iters != max(EPOCH_SAMPLES // cfg.batch, 1)
        runners = [xpnet_runner(b, cfg, data) for b in backends]
        if have_torch and not args.no_pytorch:
            runners += torch_runners(cfg, data, "cpu")
            if gpu:
                runners += torch_runners(cfg, data, "cuda")
        if not args.no_floor:
            runners.append(floor_runner("numpy", cfg))
            if have_torch:
                runners.append(floor_runner("torch", cfg))
                if gpu:
                    runners.append(floor_runner("torch-cuda", cfg))
            if "cupy" in backends:
                runners.append(floor_runner("cupy", cfg))
        res = time_config(cfg, runners, iters, args.warmup, args.epochs)
        del runners, data
        if not args.no_memory:
            for name, stats in res.items():
                if stats["kind"] == "floor":
                    continue
                mem = measure_memory(name, cfg, args, threads)
                stats["rss_peak_bytes"] = mem.get("rss_peak_bytes")
                stats["rss_after_data_bytes"] = mem.get("rss_after_data_bytes")
                if mem.get("device_peak_bytes") is not None:
                    stats["device_peak_bytes"] = mem["device_peak_bytes"]
                if "error" in mem:
                    stats["memory_error"] = mem["error"]
        add_ratios(res)
        print_table(cfg, res, extrapolated, iters)
        report["configs"][cfg.key] = {
            **dataclasses.asdict(cfg), "dims": cfg.dims, "iters_per_block": iters,
            "iters_per_epoch": max(EPOCH_SAMPLES // cfg.batch, 1), "extrapolated": extrapolated,
            "matmul_flops_per_epoch": cfg.matmul_flops_per_sample() * cfg.batch
            * max(EPOCH_SAMPLES // cfg.batch, 1),
            "needed_matmul_flops_per_epoch": cfg.needed_matmul_flops_per_sample() * cfg.batch
            * max(EPOCH_SAMPLES // cfg.batch, 1),
            "results": res,
        }
    print("\ns/epoch: median over timed blocks (min: best block); ratio columns: xpnet "
          "median / PyTorch median on the same device, and xpnet best / matmul-floor best; "
          "RSS: peak of a separate process that holds the data set and trains 10 steps.")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
