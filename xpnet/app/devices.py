"""The ``--device`` option of ``xpnet train``, ``sweep`` and ``gradcheck``.

A device is given as ``cpu``, ``cuda``, ``cuda:INDEX`` (or what the backend's
library accepts); left out, ``$XPNET_DEVICE`` and then the backend's default
apply (:func:`xpnet.get_backend` reads the variable). :func:`device_label`
is how run folders and sweeps record the device a backend ran on, in a
spelling that :func:`xpnet.get_backend` reads back.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import InputError

__all__ = ["DEVICE_ENV", "DEVICE_HELP", "device_label", "explicit_device", "gpu_worker_device"]

#: The environment variable that gives the device when ``--device`` is left out.
DEVICE_ENV = "XPNET_DEVICE"
DEVICE_HELP = ("cpu, cuda or cuda:INDEX (default: $XPNET_DEVICE, else the backend's: the CPU "
               "for numpy and torch, GPU 0 for cupy)")

_STRICT_DEVICE = re.compile(r"^array_api_strict\.Device\('(.+)'\)$")


def explicit_device(device: str | None) -> str | None:
    """``--device``, else ``$XPNET_DEVICE``, else None (the backend's default)."""
    if device is not None and not str(device).strip():
        raise InputError("--device needs a device, such as cpu, cuda or cuda:1")
    return device if device is not None else (os.environ.get(DEVICE_ENV) or None)


def device_label(backend: Any) -> str:
    """The backend's device as text that ``get_backend(backend.name, label)`` reads back.

    ``cpu``, ``cuda:0`` (torch and CuPy devices alike), ``CPU_DEVICE`` (an
    array-api-strict device by its name).
    """
    device = backend.device
    if hasattr(device, "id") and not isinstance(device, str):  # cupy.cuda.Device
        return f"cuda:{int(device.id)}"
    text = str(device)
    strict = _STRICT_DEVICE.match(text)
    return strict.group(1) if strict else text


def gpu_worker_device(device: str | None) -> str:
    """The device of the trials of a sweep whose workers each see one GPU (``--gpus``).

    Each worker's ``CUDA_VISIBLE_DEVICES`` holds its GPU, which it sees as
    ``cuda:0``: the default is ``cuda``, and ``cpu`` stays allowed.

    Raises
    ------
    InputError
        For another GPU index, which a worker that sees one GPU does not have.
    """
    if device is None:
        return "cuda"
    text = str(device).strip().lower()
    if text in ("cpu", "cuda", "cuda:0"):
        return text
    raise InputError(f"--device {device} does not go with --gpus: each worker sees one GPU "
                     "(its cuda:0); leave --device out, or give --device cuda or cpu")
