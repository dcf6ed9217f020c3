"""Run every benchmark measurement in a fresh process of its own, alternated, in rounds.

Two libraries' thread pools in one process (NumPy's BLAS threads and torch's
OpenMP threads) compete for the same cores and handicap whichever runs second,
so each measurement here is a new ``python benchmarks/worker.py ...`` process
with the same thread count for everyone. Implementations alternate within a
round (the order reverses every other round), and several rounds give a
minimum and a median per implementation; ratios are reported best-to-best and
median-to-median.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKER = HERE / "worker.py"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "XPNET_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass
class Job:
    """One implementation of one workload: the worker's arguments."""

    workload: str
    impl: str
    args: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.workload}:{self.impl}"


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in THREAD_VARIABLES:
        env[var] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent),
                                         env.get("PYTHONPATH", "")])
    return env


def run_one(job: Job, threads: int, timeout: float) -> dict[str, Any]:
    """Run one measurement in a new process; its last stdout line is a JSON object."""
    command = [sys.executable, str(WORKER), "--workload", job.workload, "--impl", job.impl,
               "--threads", str(threads), *job.args]
    start = time.perf_counter()
    proc = subprocess.run(command, env=child_env(threads), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit {proc.returncode}"}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - start
    return result


def run_rounds(jobs: Sequence[Job], rounds: int, threads: int, timeout: float = 3600.0,
               progress: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Every job once per round, alternated (reversed order every other round)."""
    results: dict[str, list[dict[str, Any]]] = {job.label: [] for job in jobs}
    for r in range(rounds):
        order = list(jobs) if r % 2 == 0 else list(reversed(jobs))
        for job in order:
            result = run_one(job, threads, timeout)
            results[job.label].append(result)
            if progress:
                shown = result.get("error") or ", ".join(
                    f"{k} {v:.4g}" for k, v in result.items()
                    if isinstance(v, float) and k in ("epoch_s", "step_ms", "fwd_bwd_ms"))
                print(f"  round {r + 1}/{rounds} {job.label}: {shown}", file=sys.stderr,
                      flush=True)
    return results


def summarize(values: Sequence[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "n": len(values)}


def machine() -> dict[str, Any]:
    """What the figures were measured on, and how busy it was at the start."""
    info: dict[str, Any] = {"python": platform.python_version(),
                            "machine": platform.machine(), "cpus": os.cpu_count(),
                            "load_average_at_start": os.getloadavg()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for lib in ("numpy", "torch"):
        try:
            from importlib.metadata import version

            info[lib] = version(lib)
        except Exception:  # not installed
            info[lib] = None
    return info


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def report(results: dict[str, list[dict[str, Any]]], metric: str, baselines: Sequence[str],
           unit: str) -> tuple[str, dict[str, Any]]:
    """A table of ``metric`` per job (min, median, peak RSS) with ratios to each baseline
    implementation of the same workload, best-to-best and median-to-median."""
    summary: dict[str, Any] = {}
    for label, runs in results.items():
        good = [r for r in runs if metric in r]
        if not good:
            summary[label] = {"error": next((r["error"] for r in runs if r.get("error")),
                                            f"no {metric}")}
            continue
        summary[label] = {metric: summarize([r[metric] for r in good]),
                          "peak_rss_mb": max(r.get("peak_rss_mb", 0) for r in good),
                          **{k: v for k, v in good[-1].items()
                             if k in ("note", "extrapolated", "method", "iterations")}}
    header = ["workload:impl", f"min {unit}", f"median {unit}", "peak RSS MB"]
    header += [f"vs {b} (best/median)" for b in baselines]
    rows = [header]
    for label, s in summary.items():
        if "error" in s:
            rows.append([label, "error", s["error"][:60], "", *[""] * len(baselines)])
            continue
        workload = label.split(":", 1)[0]
        cells = [label, f"{s[metric]['min']:.4g}", f"{s[metric]['median']:.4g}",
                 f"{s['peak_rss_mb']:.0f}"]
        for b in baselines:
            base = summary.get(f"{workload}:{b}")
            if base is None or "error" in base:
                cells.append("-")
                continue
            best = s[metric]["min"] / base[metric]["min"]
            median = s[metric]["median"] / base[metric]["median"]
            s.setdefault("ratios", {})[b] = {"best_to_best": best, "median_to_median": median}
            cells.append(f"{best:.2f} / {median:.2f}")
        rows.append(cells)
    return table(rows), summary
