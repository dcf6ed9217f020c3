"""The test matrix: one ``tests`` session per file in ``backends/``, plus lint.

    python3 -m nox                          # everything (the README's test command)
    python3 -m nox -s "tests(numpy)"        # one backend
    python3 -m nox -s lint

A backend that cannot run on this machine (CuPy without an NVIDIA GPU) skips
its session with the reason instead of failing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).parent
BACKEND_FILES = sorted((ROOT / "backends").glob("*.txt"))

nox.options.sessions = ["tests", "lint"]
nox.options.error_on_missing_interpreters = False


def _xpnet_backend(stem: str) -> str:
    """The xpnet backend name a requirements file stands for."""
    if stem.startswith("cupy"):
        return "cupy"
    return stem.replace("-", "_")


def _gpu_problem() -> str | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "no NVIDIA driver (nvidia-smi not found) on this machine"
    result = subprocess.run([smi, "-L"], capture_output=True, text=True, check=False)
    if result.returncode != 0 or "GPU" not in result.stdout:
        return "nvidia-smi lists no GPU on this machine"
    return None


@nox.session
@nox.parametrize("backend", [f.stem for f in BACKEND_FILES], ids=[f.stem for f in BACKEND_FILES])
def tests(session: nox.Session, backend: str) -> None:
    """Run the whole suite on one backend."""
    name = _xpnet_backend(backend)
    if name == "cupy":
        problem = _gpu_problem()
        if problem:
            session.skip(f"{backend}: {problem}; CuPy tests need a CUDA GPU")
    session.install("-r", f"backends/{backend}.txt")
    session.install("-e", ".[test]")
    session.run("pytest", "-q", f"--backend={name}", *session.posargs,
                env={"XPNET_BACKEND": name})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests, benchmarks and this file."""
    session.install("ruff")
    session.run("ruff", "check", "xpnet", "tests", "benchmarks", "noxfile.py")
