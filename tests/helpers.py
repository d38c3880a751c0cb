"""Helpers shared by the file-writing tests."""

import numpy as np


def listing(path):
    """Sorted names in a directory, hidden files included."""
    return sorted(p.name for p in path.iterdir())


def raw(path):
    """Every array of an .npz file, loaded without pickles."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
