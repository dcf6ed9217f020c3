"""The fast-path registry: every operation with library-specific code.

Each operation (:mod:`xpnet._fast.ops`) is an Array API reference
(:mod:`xpnet._fast.reference`) plus, per library, fast paths that declare
what they support and how far they may differ from the reference
(:mod:`xpnet._fast.numpy_paths`, :mod:`~xpnet._fast.torch_paths`,
:mod:`~xpnet._fast.cupy_paths`). A fast path without a registry entry and its
test does not exist: ``tests/test_fast_registry.py`` walks them all.

``with xpnet.fast_paths_disabled():`` runs only the references.
"""

from __future__ import annotations

from .ops import OPERATIONS
from .registry import (
    EXACT,
    LIBRARY_MODULES,
    FastPath,
    Operation,
    Tolerance,
    fast_paths_disabled,
    fast_paths_enabled,
    fast_paths_for,
    rtol,
)

__all__ = [
    "EXACT",
    "LIBRARY_MODULES",
    "OPERATIONS",
    "FastPath",
    "Operation",
    "Tolerance",
    "describe_fast_paths",
    "fast_paths_disabled",
    "fast_paths_enabled",
    "fast_paths_for",
    "rtol",
]


def describe_fast_paths(library: str) -> list[tuple[str, str, str]]:
    """``(operation, tolerance, summary)`` for each fast path of ``library``
    (loading its module, so only for libraries that are installed)."""
    rows = []
    for name, paths in sorted(fast_paths_for(library).items()):
        for path in paths:
            rows.append((name, str(path.tolerance), path.summary))
    return rows
