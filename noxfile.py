"""The test matrix: ``tests`` and ``notebooks`` sessions per backend environment, lint, docs.

    python3 -m nox                          # everything (the README's test command)
    python3 -m nox -s "tests(numpy)"        # one backend
    python3 -m nox -s "tests(torch)" -- --device cuda    # PyTorch on the GPU
    python3 -m nox -s "tests(torch)" -- -k sweep -x      # any pytest arguments after --
    python3 -m nox -s lint
    python3 -m nox -s docs                  # the site: built strictly, read in Chromium

The environments come from ``xpnet/_backend_list.py``, the one list of
backends that the library and pytest use too: one session per requirement file
in ``backends/`` that it names. A backend that cannot run on this machine (CuPy
without an NVIDIA GPU) skips its session with the reason instead of failing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).parent


def _backend_list() -> dict:
    """``xpnet/_backend_list.py`` read without importing xpnet (not installed here)."""
    scope: dict = {}
    exec((ROOT / "xpnet" / "_backend_list.py").read_text(), scope)  # noqa: S102
    return scope


_BACKENDS = _backend_list()
#: one nox environment per requirement file, in the order of the backend list
ENVIRONMENTS = [Path(f).stem for files, _, _ in _BACKENDS["BACKENDS"].values() for f in files]

nox.options.sessions = ["tests", "notebooks", "device_check", "lint", "docs"]
nox.options.error_on_missing_interpreters = False


def _xpnet_backend(stem: str) -> str:
    """The xpnet backend name a requirements file stands for."""
    return _BACKENDS["backend_of_requirements"](f"{stem}.txt")


def _needs_gpu(stem: str) -> bool:
    return _BACKENDS["BACKENDS"][_xpnet_backend(stem)][1]


def _gpu_problem() -> str | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "no NVIDIA driver (nvidia-smi not found) on this machine"
    result = subprocess.run([smi, "-L"], capture_output=True, text=True, check=False)
    if result.returncode != 0 or "GPU" not in result.stdout:
        return "nvidia-smi lists no GPU on this machine"
    return None


def _install_backend(session: nox.Session, backend: str) -> str:
    """Install ``backends/{backend}.txt``, or skip when it cannot run here; the xpnet name."""
    name = _xpnet_backend(backend)
    if _needs_gpu(backend):
        problem = _gpu_problem()
        if problem:
            session.skip(f"{backend}: {problem}; {name} needs a CUDA GPU")
    session.install("-r", f"backends/{backend}.txt")
    return name


@nox.session
@nox.parametrize("backend", ENVIRONMENTS, ids=ENVIRONMENTS)
def tests(session: nox.Session, backend: str) -> None:
    """Run the whole suite on one backend; arguments after ``--`` go to pytest.

    ``--device cuda`` (or ``cuda:1``) there tests the backend on a GPU: pytest's
    ``backend`` fixture asks ``xpnet.get_backend(name, device)`` and skips with the
    reason where that device cannot run.
    """
    name = _install_backend(session, backend)
    session.install("-e", ".[test,sweep]")
    session.run("pytest", "-q", f"--backend={name}", *session.posargs,
                env={"XPNET_BACKEND": name})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests, benchmarks and this file."""
    session.install("ruff")
    paths = [p for p in ("xpnet", "tests", "benchmarks", "noxfile.py") if (ROOT / p).exists()]
    session.run("ruff", "check", *paths)


# ---------------------------------------------------------------------------
# Notebooks: run every notebook top to bottom, in small mode, on one backend.

_NOTEBOOK_KERNEL = "xpnet-notebooks"

_EXECUTE_NOTEBOOKS = """
import sys
import time

import nbformat
from nbclient import NotebookClient

kernel, paths = sys.argv[1], sys.argv[2:]
failed = []
for path in paths:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=600, kernel_name=kernel,
                       resources={"metadata": {"path": "notebooks"}}).execute()
        status = "ok"
    except Exception as err:  # a failing cell, a timeout or a dead kernel
        failed.append(path)
        status = "FAILED"
        print(err, file=sys.stderr, flush=True)
    print(f"{path}: {status} in {time.perf_counter() - start:.1f} s", flush=True)
if failed:
    sys.exit(f"{len(failed)} notebook(s) failed: {', '.join(failed)}")
"""


@nox.session
@nox.parametrize("backend", ENVIRONMENTS, ids=ENVIRONMENTS)
def notebooks(session: nox.Session, backend: str) -> None:
    """Execute notebooks/*.ipynb with nbclient in small mode; fail on any error.

    ``nox -s "notebooks(numpy)"``; pass notebook paths after ``--`` to run only those.
    Small mode uses CIFAR-10 from $XPNET_DATA_DIR when it is there and a synthetic
    stand-in otherwise; it never downloads.
    """
    name = _install_backend(session, backend)
    session.install("-e", ".[notebooks]")
    # A kernel spec of this venv's Python under a name no user-wide spec can shadow.
    session.run("python", "-m", "ipykernel", "install", "--sys-prefix",
                "--name", _NOTEBOOK_KERNEL, "--display-name", "Python (xpnet nox)", silent=True)
    paths = session.posargs or [str(p.relative_to(ROOT))
                                for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]
    script = Path(session.create_tmp()) / "execute_notebooks.py"
    script.write_text(_EXECUTE_NOTEBOOKS, encoding="utf-8")
    session.run("python", str(script), _NOTEBOOK_KERNEL, *paths,
                env={"XPNET_NOTEBOOK_SMALL": "1", "XPNET_BACKEND": name})


# ---------------------------------------------------------------------------
# The documentation site: built strictly, notebooks executed, then read in a browser.

_DOCS_KERNEL = "xpnet-docs"


@nox.session
def docs(session: nox.Session) -> None:
    """Build the site with ``mkdocs build --strict``, then read it in headless Chromium.

    The build executes the notebooks in small mode on NumPy and fails on any warning: a
    broken link or cross-reference, a public name without a docstring, a public module
    without a reference page. ``tests/docs_check.py`` then opens every page in Chromium,
    follows every internal link and anchor, checks that nothing is fetched from outside
    the site and that every tutorial shows its outputs, and searches
    ``conv_forward_naive`` with the site's search. Without
    Chromium (``.ci/run`` installs it with apt-get) the browser check skips with the
    reason; the build has run. ``nox -s docs -- serve`` serves the site instead.
    """
    session.install("-r", "backends/numpy.txt")
    session.install("-e", ".[docs]", "websocket-client>=1.6")
    session.run("ruff", "check", "docs/hooks", "tests/docs_check.py")  # lint skips docs/
    session.run("python", "-m", "ipykernel", "install", "--sys-prefix",
                "--name", _DOCS_KERNEL, "--display-name", "Python (xpnet docs)", silent=True)
    env = {"XPNET_NOTEBOOK_SMALL": "1", "XPNET_BACKEND": "numpy", "XPNET_DOCS_EXECUTE": "true",
           "XPNET_DOCS_KERNEL": _DOCS_KERNEL, "MPLBACKEND": "Agg", "NO_MKDOCS_2_WARNING": "1"}
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", *session.posargs[1:], env=env)
        return
    site = Path(session.create_tmp()) / "site"
    session.run("mkdocs", "build", "--strict", "--clean", "--site-dir", str(site), env=env)
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome",
                                                "chrome") if shutil.which(n)), None)
    if chromium is None and not os.environ.get("XPNET_CHROMIUM"):
        session.skip("the site is built, but no Chromium is installed to read it "
                     "(apt-get install chromium, or set XPNET_CHROMIUM)")
    session.run("python", "tests/docs_check.py", "--executed-notebooks", str(site))


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Speed against PyTorch, each implementation in its own process (quick setting).

    ``nox -s bench``: the training workloads on 5,000 samples, 2 rounds, and the
    convolution layer, 3 rounds. Arguments after ``--`` go to bench_train.py instead,
    e.g. ``nox -s bench -- --workloads fc-a,cnn --rounds 4`` (see its ``--help``).
    """
    session.install("torch==2.13.0", "array-api-strict>=2.3", "threadpoolctl")
    session.install("-e", ".")
    tmp = Path(session.create_tmp())
    args = session.posargs or ["--samples", "5000", "--rounds", "2"]
    session.run("python", "benchmarks/bench_train.py", *args, "--json",
                str(tmp / "bench_train.json"))
    if not session.posargs:
        session.run("python", "benchmarks/bench_conv.py", "--rounds", "3", "--json",
                    str(tmp / "bench_conv.json"))


@nox.session
def device_check(session: nox.Session) -> None:
    """``benchmarks/device_check.py --dry-run``: the GPU check's whole pipeline on the CPU
    (NumPy and torch-CPU, tiny sizes), so it cannot rot before a GPU comes. On the GPU
    machine, run the script itself (see its docstring)."""
    session.install("-r", "backends/torch.txt")
    session.install("-e", ".[test]")
    out = Path(session.create_tmp()) / "device_check"
    session.run("python", "benchmarks/device_check.py", "--out", str(out), "--dry-run",
                "--budget-s", "1200")
