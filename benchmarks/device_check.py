"""The device check: one command that turns a GPU into verified figures, within a budget.

    python benchmarks/device_prepare.py                               # here, once
    python3 benchmarks/device_check.py --out DIR [--budget-s 540]     # on the GPU machine
    python benchmarks/device_check.py --out DIR --dry-run             # the same on the CPU

Parts, in order, each time-boxed (a part that runs out of time is stopped and
the rest is reported as not run):

1. the environment: GPU, driver, Python, NumPy, CuPy and torch versions, ``xpnet info``;
2. a quick subset of the test suite on CuPy and on torch-CUDA;
3. ``xpnet gradcheck`` on both;
4. the GPU training benchmarks (``bench_train.py``, xpnet on CuPy and torch-CUDA
   against PyTorch eager on CUDA);
5. a short CIFAR-10 training of ``--preset convnet`` and ``--preset resnet`` on
   CuPy and on torch-CUDA: test accuracy and seconds;
6. the rest of the test suite on both, with whatever time is left.

``report.json`` and ``report.md`` (a table per part) are rewritten in DIR after
every part, so they exist even when a part fails or the budget runs out; the
output of every part goes to ``log.txt`` there. ``--dry-run`` runs the same
pipeline on the CPU (NumPy and torch-CPU, tiny sizes): nox runs it, so the
script cannot rot before a GPU comes. The wheels in ``.whl/`` (from
``device_prepare.py``) are installed with ``--no-index --target`` where
array-api-compat is missing, and ``.devdata/`` CIFAR-10 is written out in the
background while the first parts run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: seconds each kind of part may take at most, per target (the rest of the tests: what is
#: left); the GPU's add up to about 500 of the default 540 s budget
BOXES = {"environment": 30, "tests-quick": 75, "gradcheck": 40, "bench": 100, "train": 35}
#: the dry run checks the pipeline, not the speed: generous boxes on a busy CPU
DRY_BOXES = {"environment": 60, "tests-quick": 120, "gradcheck": 120, "bench": 150,
             "train": 120}
QUICK_TESTS = ["tests/test_backend.py", "tests/test_layers.py", "tests/test_fast_registry.py",
               "tests/test_conv_layers.py", "tests/test_solver.py", "tests/test_capturable.py"]
DRY_QUICK_TESTS = ["tests/test_backend.py"]
SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|errors?)")


@dataclass
class Target:
    """A backend and device that the check runs on."""

    backend: str
    device: str | None

    @property
    def label(self) -> str:
        return f"{self.backend}-{self.device}" if self.device else self.backend

    def options(self) -> list[str]:
        return ["--backend", self.backend] + (["--device", self.device] if self.device else [])


@dataclass
class Part:
    """One step of the check and what came of it."""

    name: str
    status: str = "not run"  # ok, failed, timed out, not run, skipped
    seconds: float = 0.0
    summary: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    tail: str = ""


class Report:
    """The parts so far, written as report.json, report.md and log.txt after each one."""

    def __init__(self, out: Path, budget_s: float, dry_run: bool) -> None:
        self.out = out
        self.start = time.monotonic()
        self.budget_s = budget_s
        self.dry_run = dry_run
        self.boxes = DRY_BOXES if dry_run else BOXES
        self.parts: list[Part] = []
        self.log = (out / "log.txt").open("w", encoding="utf-8")

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def add(self, part: Part) -> Part:
        self.parts.append(part)
        self.write()
        return part

    def write(self) -> None:
        meta = {"budget_s": self.budget_s, "dry_run": self.dry_run,
                "elapsed_s": round(time.monotonic() - self.start, 1)}
        data = {"meta": meta, "parts": [asdict(p) for p in self.parts]}
        _write_atomic(self.out / "report.json", json.dumps(data, indent=2))
        _write_atomic(self.out / "report.md", markdown(self.parts, meta))


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value).replace("|", "/")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def markdown(parts: list[Part], meta: dict[str, Any]) -> str:
    """The report as Markdown: one table of parts, then one table of figures per part."""
    lines = [f"# Device check ({'dry run, CPU' if meta['dry_run'] else 'GPU'})", "",
             f"Budget {meta['budget_s']:.0f} s, elapsed {meta['elapsed_s']:.0f} s.", "",
             "| part | status | seconds | summary |", "|---|---|---|---|"]
    lines += [f"| {p.name} | {p.status} | {p.seconds:.1f} | {_cell(p.summary)} |"
              for p in parts]
    for p in parts:
        if p.figures:
            lines += ["", f"## {p.name}", "", "| what | value |", "|---|---|"]
            lines += [f"| {k} | {_cell(v)} |" for k, v in p.figures.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Running commands
# ---------------------------------------------------------------------------

def child_env(site: Path | None) -> dict[str, str]:
    """The environment of every command: xpnet from this tree, the carried wheels."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    paths = [str(ROOT)] + ([str(site)] if site else []) + [env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def run_command(report: Report, name: str, command: list[str], box_s: float,
                env: dict[str, str]) -> tuple[Part, str]:
    """Run ``command`` within ``box_s`` seconds (less if the budget ends sooner)."""
    part = Part(name)
    timeout = min(box_s, report.left())
    if report.left() < 5:
        part.summary = "no time left in the budget"
        return report.add(part), ""
    report.log.write(f"\n===== {name}: {' '.join(command)}\n")
    report.log.flush()
    start = time.monotonic()
    try:
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        output = proc.stdout + proc.stderr
        part.status = "ok" if proc.returncode == 0 else "failed"
        if proc.returncode:
            part.summary = f"exit {proc.returncode}"
    except subprocess.TimeoutExpired as err:
        output = _text(err.stdout) + _text(err.stderr)
        part.status = "timed out"
        part.summary = f"stopped after {timeout:.0f} s"
    part.seconds = round(time.monotonic() - start, 1)
    report.log.write(output)
    report.log.flush()
    part.tail = output[-2000:]
    return part, output


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def pytest_counts(output: str) -> str:
    """'12 passed, 1 failed' from pytest's closing line ('' when there is none)."""
    lines = [ln for ln in output.splitlines() if SUMMARY.search(ln) and " in " in ln]
    if not lines:
        return ""
    return ", ".join(f"{n} {what}" for n, what in SUMMARY.findall(lines[-1]))


# ---------------------------------------------------------------------------
# The parts
# ---------------------------------------------------------------------------

def environment(report: Report, env: dict[str, str]) -> None:
    """Versions of everything, the GPU and ``xpnet info``."""
    probe = ("import json, platform, numpy\n"
             "out = {'python': platform.python_version(), 'numpy': numpy.__version__}\n"
             "try:\n import cupy; out['cupy'] = cupy.__version__\n"
             " out['cuda_runtime'] = cupy.cuda.runtime.runtimeGetVersion()\n"
             "except Exception as e: out['cupy'] = f'unavailable ({e.__class__.__name__})'\n"
             "try:\n import torch; out['torch'] = torch.__version__\n"
             " out['torch_cuda'] = torch.version.cuda\n"
             " out['gpu'] = torch.cuda.get_device_name(0) if torch.cuda.is_available() "
             "else 'none'\n"
             "except Exception as e: out['torch'] = f'unavailable ({e.__class__.__name__})'\n"
             "import array_api_compat; out['array_api_compat'] = array_api_compat.__version__\n"
             "print(json.dumps(out))")
    part, output = run_command(report, "environment", [sys.executable, "-c", probe],
                               report.boxes["environment"], env)
    if part.status == "ok":
        part.figures = json.loads(output.strip().splitlines()[-1])
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                          "--format=csv,noheader"], capture_output=True, text=True,
                         check=False) if _has("nvidia-smi") else None
    part.figures["nvidia-smi"] = smi.stdout.strip() if smi and smi.returncode == 0 else "none"
    part.figures["machine"] = f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs"
    info, text = run_command(report, "xpnet info", [sys.executable, "-m", "xpnet", "info"],
                             60, env)
    info.summary = info.summary or "; ".join(
        " ".join(ln.split()[:2]) for ln in text.splitlines()
        if " usable " in ln or " unavailable " in ln)
    report.add(part)
    report.add(info)


def _has(program: str) -> bool:
    from shutil import which

    return which(program) is not None


def tests(report: Report, env: dict[str, str], target: Target, paths: list[str],
          name: str, box_s: float, deselect: list[str] | None = None) -> None:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               *target.options(), *paths]
    for path in deselect or []:
        command += ["--deselect", path] if "::" in path else ["--ignore", path]
    part, output = run_command(report, name, command, box_s, env)
    part.summary = pytest_counts(output) or part.summary
    report.add(part)


def gradcheck(report: Report, env: dict[str, str], target: Target) -> None:
    part, output = run_command(report, f"gradcheck {target.label}",
                               [sys.executable, "-m", "xpnet", "gradcheck", *target.options()],
                               report.boxes["gradcheck"], env)
    last = [ln for ln in output.splitlines() if ln.strip()]
    part.summary = part.summary or (last[-1][:120] if last else "")
    report.add(part)


def bench(report: Report, env: dict[str, str], impls: list[str], workloads: str,
          samples: int, rounds: int, baseline: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        part, _ = run_command(
            report, "bench_train",
            [sys.executable, "benchmarks/bench_train.py", "--workloads", workloads,
             "--impls", ",".join(impls), "--rounds", str(rounds), "--samples", str(samples),
             "--json", str(out)], report.boxes["bench"], env)
        if out.exists():
            part.figures = bench_figures(json.loads(out.read_text()), baseline)
    report.add(part)


def bench_figures(data: dict[str, Any], baseline: str = "torch-cuda") -> dict[str, Any]:
    """min / median of every workload and implementation, and its ratio to ``baseline``
    (PyTorch eager on the same device), best-to-best."""
    figures = {}
    for metric, unit in (("step_ms", "ms/step"), ("epoch_s", "s/epoch")):
        summary = data.get(f"summary_{metric}", {})
        for label, s in summary.items():
            if "error" in s:
                figures[f"{label} {unit}"] = f"error: {str(s['error'])[:80]}"
                continue
            text = f"min {s[metric]['min']:.4g}, median {s[metric]['median']:.4g}"
            base = summary.get(f"{label.split(':', 1)[0]}:{baseline}")
            if base and "error" not in base and not label.endswith(f":{baseline}"):
                text += f"; {s[metric]['min'] / base[metric]['min']:.2f}x {baseline}"
            figures[f"{label} {unit}"] = text
    return figures


def train(report: Report, env: dict[str, str], target: Target, preset: str,
          extra: list[str], runs: Path) -> None:
    run_dir = runs / f"{preset}-{target.label}"
    part, output = run_command(
        report, f"train {preset} {target.label}",
        [sys.executable, "-m", "xpnet", "train", "--preset", preset, *target.options(),
         "--run-dir", str(run_dir), "--no-download", *extra],
        report.boxes["train"], env)
    result = run_dir / "result.json"
    if result.exists():
        values = json.loads(result.read_text())
        keep = ("test_acc", "best_val_acc", "epochs", "seconds", "seconds_per_epoch")
        part.figures = {k: values.get(k) for k in keep if k in values}
        part.summary = part.summary or (f"test acc {values.get('test_acc')}, "
                                        f"{values.get('seconds', 0):.1f} s")
    elif part.status == "ok":
        part.status, part.summary = "failed", "no result.json"
        part.tail = output[-2000:]
    report.add(part)


# ---------------------------------------------------------------------------
# Set-up on the device: wheels and data
# ---------------------------------------------------------------------------

def install_wheels() -> Path | None:
    """Install ``.whl/*.whl`` into a folder of its own where array-api-compat is missing."""
    wheels = sorted((ROOT / ".whl").glob("*.whl"))
    try:
        import array_api_compat  # noqa: F401

        return None
    except ImportError:
        pass
    if not wheels:
        raise SystemExit("device_check: array-api-compat is missing and .whl/ holds no "
                         "wheels; run benchmarks/device_prepare.py and carry .whl")
    site = Path(tempfile.gettempdir()) / "xpnet-device-site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    "--no-compile", "--upgrade", "--target", str(site), *map(str, wheels)],
                   check=True)
    return site


def start_data(data_dir: Path) -> subprocess.Popen | None:
    """Write the carried CIFAR-10 out in the background (None when there is none)."""
    builder = ROOT / ".devdata" / "build.py"
    if (data_dir / "cifar-10-batches-py" / "test_batch").exists() or not builder.exists():
        return None
    return subprocess.Popen([sys.executable, str(builder), str(data_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_data(builder: subprocess.Popen | None, data_dir: Path, left_s: float) -> bool:
    if builder is not None:
        try:
            builder.wait(timeout=max(left_s, 1))
        except subprocess.TimeoutExpired:
            builder.kill()
    return (data_dir / "cifar-10-batches-py" / "test_batch").exists()


# ---------------------------------------------------------------------------

def plan(dry_run: bool) -> dict[str, Any]:
    """What to run: targets, test paths, benchmark and training sizes."""
    if dry_run:
        return {"targets": [Target("numpy", None), Target("torch", "cpu")],
                "quick": DRY_QUICK_TESTS, "rest": False,
                "bench": (["xpnet-numpy", "torch"], "fc-a", 500, 1, "torch"),
                "train": ["--epochs", "1", "--num-train", "300", "--num-val", "100",
                          "--num-test", "100", "--width", "4", "-q"]}
    return {"targets": [Target("cupy", None), Target("torch", "cuda")],
            "quick": QUICK_TESTS, "rest": True,
            "bench": (["xpnet-cupy", "xpnet-torch-cuda", "torch-cuda", "torch-cuda-fused"],
                      "fc-a,cnn", 49_000, 2, "torch-cuda"),
            "train": ["--epochs", "3", "-q"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for report.json/.md")
    p.add_argument("--budget-s", type=float, default=540.0)
    p.add_argument("--dry-run", action="store_true", help="the pipeline on the CPU, tiny")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="CIFAR-10 (default $XPNET_DATA_DIR, else written from .devdata/)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report = Report(args.out, args.budget_s, args.dry_run)
    env = child_env(install_wheels())
    data_dir = args.data_dir or Path(os.environ.get("XPNET_DATA_DIR") or
                                     Path(tempfile.gettempdir()) / "xpnet-cifar10")
    builder = start_data(data_dir)
    what = plan(args.dry_run)
    targets: list[Target] = what["targets"]

    environment(report, env)
    for t in targets:
        tests(report, env, t, what["quick"], f"tests (quick) {t.label}",
              report.boxes["tests-quick"])
    for t in targets:
        gradcheck(report, env, t)
    bench(report, env, *what["bench"])
    have_data = wait_for_data(builder, data_dir, min(120.0, report.left()))
    train_extra = list(what["train"])
    if have_data:
        env["XPNET_DATA_DIR"] = str(data_dir)
    elif not args.dry_run:
        report.add(Part("CIFAR-10", "failed", summary=f"not found in {data_dir}"))
    with tempfile.TemporaryDirectory() as runs:
        for preset in ("convnet", "resnet"):
            for t in targets:
                train(report, env, t, preset, train_extra, Path(runs))
    if what["rest"]:
        for i, t in enumerate(targets):
            box = report.left() / (len(targets) - i)
            tests(report, env, t, ["tests"], f"tests (the rest) {t.label}", box,
                  deselect=what["quick"])
    else:
        report.add(Part("tests (the rest)", "skipped", summary="dry run"))
    report.write()
    failed = [p.name for p in report.parts if p.status in ("failed", "timed out")]
    print((ROOT / args.out / "report.md").read_text() if not args.out.is_absolute()
          else (args.out / "report.md").read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
