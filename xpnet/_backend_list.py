"""The one list of backends, shared by the library, pytest and nox.

Plain data with no imports: ``noxfile.py`` reads this file without importing
xpnet (nox runs before xpnet's dependencies are installed), and
:mod:`xpnet.backend` and ``tests/conftest.py`` import it.

Each entry: the backend's name, the requirement files in ``backends/`` that
install it (one nox environment each), whether it needs an NVIDIA GPU, and
the extra of ``pyproject.toml`` that installs it.
"""

from __future__ import annotations

#: name -> (requirement files in backends/, needs an NVIDIA GPU, pip extra)
BACKENDS: dict[str, tuple[tuple[str, ...], bool, str]] = {
    "numpy": (("numpy.txt",), False, ""),
    "array_api_strict": (("array-api-strict.txt",), False, "strict"),
    "torch": (("torch.txt",), False, "torch"),
    "cupy": (("cupy-cuda12x.txt", "cupy-cuda13x.txt"), True, "cuda12"),
}

#: The names in a fixed order (the reference first).
BACKEND_NAMES: tuple[str, ...] = ("numpy", "cupy", "torch", "array_api_strict")


def backend_of_requirements(filename: str) -> str:
    """The backend a file in ``backends/`` installs ('cupy-cuda12x.txt' -> 'cupy')."""
    for name, (files, _, _) in BACKENDS.items():
        if filename in files:
            return name
    raise KeyError(f"backends/{filename} is not listed in xpnet/_backend_list.py")
