"""Small shared helpers: backends, dtypes and the memory guard."""

from __future__ import annotations

import importlib
import os

import numpy as np

__all__ = ["BACKENDS", "DTYPES", "get_backend", "get_dtype", "available_memory", "check_memory"]

#: Backend name -> module of kernels; numba is imported on first use, so commands that
#: need no kernels (``gradsim theory --model paper``, ``--help``) start quickly.
BACKENDS = {"numba": "gradsim.kernels", "numpy": "gradsim.reference"}
DTYPES = {"float64": np.float64, "float32": np.float32}


def get_backend(name):
    """Kernel module for ``name`` in :data:`BACKENDS`."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r}")
    return importlib.import_module(BACKENDS[name])


def get_dtype(dtype):
    """``numpy.float64`` or ``numpy.float32`` from a name or dtype; anything else is an error."""
    for name, value in DTYPES.items():
        if dtype is value or dtype == name:
            return value
        if not isinstance(dtype, str) and np.dtype(value) == dtype:
            return value
    raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")


def available_memory():
    """Bytes of memory available now (``MemAvailable``), or physical memory if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - exotic platforms
        return 2**40


def check_memory(nbytes, what, fraction=0.8):
    """Raise ValueError if ``nbytes`` exceeds ``fraction`` of the available memory.

    ``what`` names the parameters responsible, for the message.
    """
    limit = fraction * available_memory()
    if nbytes > limit:
        raise ValueError(
            f"{what} would need about {nbytes / 2**30:.3g} GiB of memory, more than the "
            f"{limit / 2**30:.3g} GiB available; reduce it"
        )
