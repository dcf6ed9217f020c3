"""The backend under test comes from ``--backend NAME`` or ``$XPNET_BACKEND``, its device
from ``--device DEVICE`` or ``$XPNET_DEVICE`` (default: the backend's own).

    pytest --backend torch --device cuda      # PyTorch on the first GPU
    pytest --backend cupy --device cuda:1

Tests take the ``backend`` fixture (an :class:`xpnet.Backend`) or ``xp`` (its
namespace). A backend or device that cannot run here skips every test that
needs it, with the reason (what to install, or that no GPU is present).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import xpnet
from xpnet._backend_list import BACKEND_NAMES
from xpnet.backend import BackendError


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend", default=None,
        help=f"array backend to test: {', '.join(BACKEND_NAMES)} (default "
             "$XPNET_BACKEND, else numpy)",
    )
    parser.addoption(
        "--device", default=None,
        help="the backend's device: cpu, cuda, cuda:INDEX (default $XPNET_DEVICE, else the "
             "backend's default)",
    )


def backend_name(config: pytest.Config) -> str:
    return config.getoption("--backend") or os.environ.get("XPNET_BACKEND") or "numpy"


def device_name(config: pytest.Config) -> str | None:
    return config.getoption("--device") or os.environ.get("XPNET_DEVICE") or None


def pytest_report_header(config: pytest.Config) -> str:
    name, device = backend_name(config), device_name(config)
    try:
        backend = xpnet.get_backend(name, device)
    except BackendError as err:
        where = f" on {device}" if device else ""
        return f"xpnet backend: {name}{where} (unavailable: {err})"
    return f"xpnet backend: {backend.name} on {backend.device}"


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> xpnet.Backend:
    """The backend under test on its device; skips with the reason when it cannot run."""
    name, device = backend_name(request.config), device_name(request.config)
    try:
        return xpnet.get_backend(name, device)
    except BackendError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def xp(backend):
    return backend.xp


@pytest.fixture
def dev(backend):
    """Move host data to the backend under test: ``dev(np_array)``."""
    return lambda a, dtype=None: backend.asarray(np.asarray(a), dtype=dtype)


@pytest.fixture
def check(backend):
    """``check(actual, expected, rtol=..., atol=...)``: values AND namespace.

    Fails when ``actual`` is not an array of the backend under test (a silent
    fallback to NumPy), then compares values on the host.
    """

    def _check(actual, expected, rtol=1e-7, atol=0.0):
        assert backend.owns(actual), (
            f"result is a {type(actual).__module__}.{type(actual).__name__}, "
            f"not an array of the {backend.name} backend"
        )
        np.testing.assert_allclose(xpnet.to_numpy(actual), np.asarray(expected),
                                   rtol=rtol, atol=atol)

    return _check


@pytest.fixture(params=["fast_paths_on", "fast_paths_off"])
def fast_paths(request):
    """Run a test twice: with the registered fast paths, and with the references only."""
    if request.param == "fast_paths_off":
        with xpnet.fast_paths_disabled():
            yield False
    else:
        yield True
