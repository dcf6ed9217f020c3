"""Prepare the tree for the device check: the wheels the GPU machine lacks, and CIFAR-10.

    python benchmarks/device_prepare.py          # writes .whl/ and .devdata/ (both ignored)

The GPU machine has Python 3.12, NumPy, CuPy, PyTorch, pytest, Pillow and tqdm
but no package registry and no array-api-compat or array-api-strict. This
downloads those two (pure-Python wheels, the versions installed here) for
Python 3.12 into ``.whl/``, and copies the compact CIFAR-10 of
``../shared/data/cifar10/`` (35 MB, all 60,000 images) with its builder into
``.devdata/``; ``benchmarks/device_check.py`` installs the wheels with
``--no-index --target`` and writes the data set out on the device. Then, with
the device tool::

    run(command="PYTHONUNBUFFERED=1 python3 benchmarks/device_check.py --out $OUT",
        carry=[".whl", ".devdata"], timeout_s=600)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / ".whl"
DATA = ROOT / ".devdata"
SHARED_CIFAR = ROOT.parent / "shared" / "data" / "cifar10"
#: what the device lacks, as distribution names
MISSING_ON_DEVICE = ("array-api-compat", "array-api-strict")
#: the carried folders' limit (the device tool's) less a margin for the tree itself
CARRY_LIMIT_BYTES = 60 * 2**20


def download_wheels(python_version: str) -> list[Path]:
    """The wheels of :data:`MISSING_ON_DEVICE`, at the versions installed here."""
    WHEELS.mkdir(exist_ok=True)
    for old in WHEELS.glob("*.whl"):
        old.unlink()
    specs = [f"{name}=={importlib.metadata.version(name)}" for name in MISSING_ON_DEVICE]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "--python-version", python_version,
                    "--implementation", "py", "-d", str(WHEELS), *specs], check=True)
    return sorted(WHEELS.glob("*.whl"))


def copy_cifar(source: Path) -> list[Path]:
    """The compact CIFAR-10 and its builder, copied into ``.devdata/``."""
    files = [source / "cifar10-rebuilt.npz", source / "build.py"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"device_prepare: {', '.join(missing)} not found; pass --cifar DIR")
    DATA.mkdir(exist_ok=True)
    return [Path(shutil.copy2(f, DATA / f.name)) for f in files]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python-version", default="3.12", help="the device's Python (3.12)")
    p.add_argument("--cifar", type=Path, default=SHARED_CIFAR,
                   help="folder holding cifar10-rebuilt.npz and build.py")
    p.add_argument("--no-data", action="store_true", help="wheels only")
    args = p.parse_args()
    files = download_wheels(args.python_version)
    if not args.no_data:
        files += copy_cifar(args.cifar)
    total = sum(f.stat().st_size for f in files)
    for f in files:
        print(f"{f.relative_to(ROOT)}  {f.stat().st_size / 2**20:.1f} MiB")
    print(f"{total / 2**20:.1f} MiB to carry (limit {CARRY_LIMIT_BYTES / 2**20:.0f} MiB with "
          "the tree)")
    if total > CARRY_LIMIT_BYTES:
        print("device_prepare: too much to carry; use --no-data", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
