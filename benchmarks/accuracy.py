"""Accuracy benchmark: ``xpnet train`` with each preset on the real CIFAR-10.

Targets (NumPy backend):

* ``default``: at least 50% validation accuracy in under 10 minutes on a
  2-core CPU (wall time of the whole command: loading, training, plots);
* ``best``: at least 57% accuracy on the 10000 test images (any time);
* ``convnet``: at least 70% on the test images within 30 minutes (goal 80%);
* ``cnn``: ThreeLayerConvNet, reported (no target);
* ``airbench-cpu``: the speed record's recipe sized for a 2-core CPU: at least 85%
  on the test images within 30 minutes (goal 90%);
* ``airbench``: the record's net and recipe, for a GPU (``--backend torch --device
  cuda`` or ``--backend cupy``): 94% mean test accuracy (the record: 94.01% in 3.83 s
  on an A100). Not in the default list: on a CPU it takes hours.

Each preset runs as its own ``python -m xpnet train`` process, so the
time is what a user waits for. Results are printed and written as JSON.

    python benchmarks/accuracy.py --data-dir /work/data_cifar10
    python benchmarks/accuracy.py --data-dir ~/data --presets default --threads 2

This is a benchmark, not a test: it needs CIFAR-10 and takes minutes to hours.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TARGETS = {
    "default": {"metric": "best_val_acc", "at_least": 0.50, "minutes_under": 10.0},
    "best": {"metric": "test_acc", "at_least": 0.57, "minutes_under": None},
    "convnet": {"metric": "test_acc", "at_least": 0.70, "minutes_under": 30.0},
    "cnn": {"metric": "test_acc", "at_least": 0.0, "minutes_under": None},
    "airbench-cpu": {"metric": "test_acc", "at_least": 0.85, "minutes_under": 30.0},
    "airbench": {"metric": "test_acc", "at_least": 0.94, "minutes_under": None, "gpu": True},
}
#: what runs without --presets: everything sized for a CPU
DEFAULT_PRESETS = [name for name, target in TARGETS.items() if not target.get("gpu")]


def run_preset(preset: str, data_dir: str, runs_root: Path, backend: str, seed: int,
               threads: int | None, extra: list[str]) -> dict:
    """Train one preset in a subprocess and summarize its run folder."""
    run_dir = runs_root / f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    command = [sys.executable, "-m", "xpnet", "train", "--preset", preset,
               "--dataset", "cifar10", "--data-dir", data_dir, "--backend", backend,
               "--seed", str(seed), "--run-dir", str(run_dir), "--quiet", *extra]
    env = dict(os.environ)
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, check=False)
    minutes = (time.perf_counter() - start) / 60
    result = {"preset": preset, "command": command, "returncode": proc.returncode,
              "minutes": round(minutes, 2), "run_dir": str(run_dir)}
    if proc.returncode != 0:
        return result
    history = json.loads((run_dir / "history.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    target = TARGETS[preset]
    value = history[target["metric"]]
    met = value >= target["at_least"] and (target["minutes_under"] is None
                                           or minutes < target["minutes_under"])
    result.update({
        "best_val_acc": history["best_val_acc"],
        "final_val_acc": history["val_acc_history"][-1],
        "test_acc": history["test_acc"],
        "epochs": history["epoch"],
        "seconds_per_epoch": round(history["seconds_per_epoch"], 1),
        "options": config["args"],
        "target": target,
        "target_met": met,
    })
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("XPNET_DATA_DIR"),
                        help="CIFAR-10 location (default $XPNET_DATA_DIR)")
    parser.add_argument("--presets", nargs="+", default=DEFAULT_PRESETS, choices=list(TARGETS),
                        help=f"default: {' '.join(DEFAULT_PRESETS)} (airbench needs a GPU)")
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads for the runs (default: the library's choice)")
    parser.add_argument("--runs-root", default="runs/benchmark", type=Path)
    parser.add_argument("--out", default="runs/benchmark/accuracy.json", type=Path,
                        help="where to write the results (JSON)")
    args, extra = parser.parse_known_args(argv)
    if not args.data_dir:
        parser.error("pass --data-dir (or set XPNET_DATA_DIR) to the real CIFAR-10")
    results = {}
    for preset in args.presets:
        results[preset] = run_preset(preset, args.data_dir, args.runs_root, args.backend,
                                     args.seed, args.threads, extra)
        r = results[preset]
        if r["returncode"] != 0:
            print(f"{preset}: FAILED (exit {r['returncode']})", flush=True)
            continue
        print(f"{preset}: best val {r['best_val_acc']:.4f}, test {r['test_acc']:.4f}, "
              f"{r['minutes']:.1f} min ({r['seconds_per_epoch']} s/epoch, {r['epochs']} "
              f"epochs); target {'met' if r['target_met'] else 'MISSED'}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(),
                                                "platform": sys.platform},
                                    "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}")
    ok = all(r.get("target_met") for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
