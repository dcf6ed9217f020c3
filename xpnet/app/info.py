"""``xpnet info``: which backends can run here, on which devices, with which libraries.

Library versions come from the installed distributions' metadata, and devices
from each usable backend's Array API inspection namespace
(``xp.__array_namespace_info__().devices()``), so nothing here imports an
array library itself.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from importlib import metadata

from .._fast import describe_fast_paths
from .._version import __version__
from ..backend import BACKEND_NAMES, backend_problem, get_backend
from ..data_utils import BATCHES_DIRNAME, default_data_dir
from ..errors import BackendError

__all__ = ["backend_report", "environment_report", "fast_path_lines", "library_versions"]

#: Distributions reported by ``xpnet info`` (name shown, distribution names to try).
_LIBRARIES = (
    ("numpy", ("numpy",)),
    ("array-api-compat", ("array-api-compat",)),
    ("array-api-strict", ("array-api-strict",)),
    ("torch", ("torch",)),
    ("cupy", ("cupy", "cupy-cuda12x", "cupy-cuda13x", "cupy-cuda11x")),
    ("tqdm", ("tqdm",)),
    ("matplotlib", ("matplotlib",)),
    ("scikit-learn", ("scikit-learn",)),
)


def library_versions() -> dict[str, str | None]:
    """Installed version of each library xpnet can use (None when missing)."""
    versions: dict[str, str | None] = {}
    for shown, dists in _LIBRARIES:
        versions[shown] = None
        for dist in dists:
            try:
                versions[shown] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def _devices(name: str) -> str:
    try:
        backend = get_backend(name)
        info = backend.xp.__array_namespace_info__()
        with warnings.catch_warnings():  # torch warns about device types it probes
            warnings.simplefilter("ignore")
            devices = [str(d) for d in info.devices()]
        return f"devices: {', '.join(devices)}; default {backend.device}"
    except (BackendError, AttributeError, RuntimeError) as err:
        return f"devices unknown ({err})"


def backend_report() -> list[tuple[str, bool, str]]:
    """``(name, usable, detail)`` for every backend: devices, or why it cannot run."""
    rows = []
    for name in BACKEND_NAMES:
        problem = backend_problem(name)
        rows.append((name, problem is None, _devices(name) if problem is None else problem))
    return rows


def fast_path_lines(name: str) -> list[str]:
    """One line per registered fast path of backend ``name`` (none: the references)."""
    rows = describe_fast_paths(name)
    if not rows:
        return [f"  {name:<17} none: every operation runs its Array API reference"]
    return [f"  {name:<17} {op:<19} {tolerance:<34} {summary}"
            for op, tolerance, summary in rows]


def environment_report() -> str:
    """The text ``xpnet info`` prints."""
    lines = [f"xpnet {__version__} on Python {platform.python_version()} "
             f"({sys.platform}, {platform.machine()})", "", "backends:"]
    report = backend_report()
    for name, usable, detail in report:
        lines.append(f"  {name:<17} {'usable' if usable else 'unavailable':<11} {detail}")
    env = os.environ.get("XPNET_BACKEND")
    try:
        default = get_backend(None).name
    except BackendError as err:
        default = f"none ({err})"
    lines += ["", f"default backend: {default} "
                  f"({'XPNET_BACKEND=' + env if env else 'XPNET_BACKEND unset, so auto'})",
              "", "libraries:"]
    for lib, version in library_versions().items():
        lines.append(f"  {lib:<17} {version or 'not installed'}")
    lines += ["", "fast paths (the rest runs the Array API reference; "
                  "xpnet.fast_paths_disabled() turns them off):"]
    for name, usable, _ in report:
        lines += fast_path_lines(name) if usable else []
    data_dir = default_data_dir()
    found = (data_dir / BATCHES_DIRNAME).is_dir()
    lines += ["", f"data folder: {data_dir} (XPNET_DATA_DIR); CIFAR-10 "
                  f"{'found there' if found else 'not there'}"]
    return "\n".join(lines)
