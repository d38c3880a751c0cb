"""Results on disk: ``.npz`` arrays plus JSON metadata, written atomically.

A simulation file holds ``x`` (``(P,)`` for 1-D inputs, else ``(P, d)``), ``grad``
(``(nets, P)`` for 1-D inputs, else ``(nets, P, d)``), ``spec`` and ``grid`` (JSON
text), ``meta`` (JSON: seed, nets, mode, dtype, version) and, when recorded,
``active`` and ``coactive`` (``(nets, n_act_layers)``).  Files are written to a
temporary file beside the target and renamed, so a failure leaves no partial file.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile

import numpy as np

from .grids import GridSpec
from .montecarlo import Simulation
from .spec import NetSpec

__all__ = ["save", "load", "check_output", "atomic_write"]

_REQUIRED = ("x", "grad", "spec", "grid", "meta")


def check_output(path, force=False, suffix=".npz"):
    """Fail early, before any work, if ``path`` cannot be written.

    Raises ValueError if the suffix is wrong, the directory is missing or not
    writable, the path is a directory, or the file exists and ``force`` is false.
    """
    path = os.fspath(path)
    if suffix and not path.endswith(suffix):
        raise ValueError(f"out must be a file name ending in {suffix}, got {path!r}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"out: directory {parent!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"out: directory {parent!r} is not writable")
    if os.path.isdir(path):
        raise ValueError(f"out: {path!r} is a directory")
    try:
        name_max = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # pragma: no cover - exotic platforms
        name_max = 255
    if len(os.fsencode(os.path.basename(path))) > name_max:
        raise ValueError(f"out: file name longer than {name_max} bytes")
    if os.path.exists(path) and not force:
        raise ValueError(f"out: {path!r} exists; use --force (force=True) to overwrite it")
    return path


@contextlib.contextmanager
def atomic_write(path):
    """Yield a binary file handle whose contents replace ``path`` only on success."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(parent, f".gradsim-{secrets.token_hex(6)}.tmp")
    # os.open with mode 0o666 honours the umask, as a plain open() would
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save(path, sim, force=False):
    """Write a :class:`~gradsim.montecarlo.Simulation` with kept gradients to ``path``."""
    from . import __version__

    if not isinstance(sim, Simulation) or sim.grad is None:
        raise ValueError("sim must be a Simulation with kept gradients (keep=True)")
    check_output(path, force)
    one_d = sim.spec.input_dim == 1
    arrays = {
        "x": sim.x[:, 0] if one_d else sim.x,
        "grad": sim.grad[..., 0] if one_d else sim.grad,
        "spec": np.array(sim.spec.to_json()),
        "grid": np.array(sim.grid.to_json()),
        "meta": np.array(json.dumps({
            "seed": sim.seed, "nets": sim.nets, "mode": sim.mode, "dtype": sim.dtype,
            "version": __version__,
        }, sort_keys=True)),
    }
    if sim.activity is not None:
        arrays["active"] = sim.activity[..., 0]
        arrays["coactive"] = sim.activity[..., 1]
    with atomic_write(path) as fh:
        np.savez(fh, **arrays)
    return path


def _text(data, key):
    value = data[key]
    if value.ndim != 0 or value.dtype.kind != "U":
        raise ValueError(f"entry {key!r} is not JSON text")
    return str(value)


def load(path):
    """Read a file written by :func:`save` (or ``gradsim simulate``).

    Returns
    -------
    Simulation
        With ``x`` of shape ``(P, d)`` and ``grad`` of shape ``(nets, P, d)``.

    Raises
    ------
    ValueError
        If the file is missing, not an ``.npz``, or not a gradsim simulation.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            missing = [k for k in _REQUIRED if k not in data.files]
            if missing:
                raise ValueError(f"missing entries {', '.join(missing)}")
            spec = NetSpec.from_json(_text(data, "spec"))
            grid = GridSpec.from_json(_text(data, "grid"))
            meta = json.loads(_text(data, "meta"))
            x, grad = data["x"], data["grad"]
            act = (np.stack([data["active"], data["coactive"]], axis=-1)
                   if "active" in data.files and "coactive" in data.files else None)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile,
            json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a readable gradsim .npz file: {exc}") from None
    p, d = grid.points, spec.input_dim
    if x.dtype.kind != "f" or grad.dtype.kind != "f" or (act is not None and act.dtype.kind != "f"):
        raise ValueError(f"{path} is not a readable gradsim .npz file: arrays are not floats")
    if x.ndim == 1:
        x, grad = x[:, None], grad[..., None]
    if (x.shape != (p, d) or grad.ndim != 3 or grad.shape[1:] != (p, d)
            or not isinstance(meta, dict) or meta.get("nets") != grad.shape[0]
            or (act is not None and act.shape != (grad.shape[0], spec.n_act_layers, 2))):
        raise ValueError(f"{path} is not a readable gradsim .npz file: inconsistent shapes")
    return Simulation(spec, grid, x, meta.get("seed"), meta["nets"], meta.get("mode", "forward"),
                      meta.get("dtype", "float64"), grad, act)
