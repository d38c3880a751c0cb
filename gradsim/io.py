"""Results on disk: ``.npz`` arrays plus JSON metadata, written atomically.

A simulation file holds ``x`` (``(P,)`` for 1-D inputs, else ``(P, d)``), ``grad``
(``(nets, P)`` for 1-D inputs, else ``(nets, P, d)``), ``spec`` and ``grid`` (JSON
text), ``meta`` (JSON: seed, nets, mode, dtype, version) and, when recorded,
``active`` and ``coactive`` (``(nets, n_act_layers)``).  Files are written to a
temporary file beside the target and renamed, so a failure leaves no partial file.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from ._version import __version__
from .grids import GridSpec
from .montecarlo import Simulation
from .spec import NetSpec
from .util import atomic_write, check_output

__all__ = ["save", "load", "write_npz", "check_output", "atomic_write"]

_REQUIRED = ("x", "grad", "spec", "grid", "meta")


def write_npz(path, arrays, compressed=False):
    """Write ``arrays`` to ``path`` atomically: the one ``.npz`` writer of gradsim.

    Every ``.npz`` the project writes (simulations, experiment results, theory grids,
    training histories and checkpoints) goes through here, so every one is replaced only
    on success and an interrupted write leaves no file behind (:func:`atomic_write`).

    Parameters
    ----------
    path : path
    arrays : dict of str -> array_like or str
        A ``str`` value (JSON text, say) is stored as a 0-d unicode array.
    compressed : bool
        Deflate the entries (``numpy.savez_compressed``).

    Returns
    -------
    path
        ``path``, as given.
    """
    data = {k: np.array(v) if isinstance(v, str) else np.asarray(v) for k, v in arrays.items()}
    with atomic_write(path) as fh:
        (np.savez_compressed if compressed else np.savez)(fh, **data)
    return path


def save(path, sim, force=False):
    """Write a :class:`~gradsim.montecarlo.Simulation` with kept gradients to ``path``."""
    if not isinstance(sim, Simulation) or sim.grad is None:
        raise ValueError("sim must be a Simulation with kept gradients (keep=True)")
    check_output(path, force)
    one_d = sim.spec.input_dim == 1
    arrays = {
        "x": sim.x[:, 0] if one_d else sim.x,
        "grad": sim.grad[..., 0] if one_d else sim.grad,
        "spec": sim.spec.to_json(),
        "grid": sim.grid.to_json(),
        "meta": json.dumps({
            "seed": sim.seed, "nets": sim.nets, "mode": sim.mode, "dtype": sim.dtype,
            "sampler": sim.sampler, "version": __version__,
        }, sort_keys=True),
    }
    if sim.activity is not None:
        arrays["active"] = sim.activity[..., 0]
        arrays["coactive"] = sim.activity[..., 1]
    return write_npz(path, arrays)


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
                      meta.get("dtype", "float64"), grad, act,
                      sampler=meta.get("sampler", "explicit"))
