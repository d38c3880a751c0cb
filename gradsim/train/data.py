"""Real data that ships offline: scikit-learn's bundled handwritten digits.

scikit-learn is an optional extra (``pip install -e ".[digits]"``); without it
:func:`load_digits` raises an ``ImportError`` that says how to install it.  The digits
are 1797 images of 8 x 8 pixels with values 0..16 and labels 0..9.  We scale pixels to
``[0, 1]`` (divide by 16) and then, for training, standardise each pixel with the
training set's mean and standard deviation (pixels that are constant there are left
centred).  The train/test split is fixed: a stratified split drawn from
``numpy.random.SeedSequence(split_seed)``, so it depends only on the seed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..util import check_int, check_real

__all__ = ["Digits", "load_digits", "digit_images", "split_digits", "carve_validation"]

_HINT = ("the digits data set needs scikit-learn, an optional extra: "
         "pip install -e \".[digits]\" (or pip install scikit-learn)")


def _sklearn_digits():
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError as err:  # pragma: no cover - exercised without the extra
        raise ImportError(_HINT) from err
    d = _load()
    return np.asarray(d.images, dtype=np.float64) / 16.0, np.asarray(d.target, dtype=np.int64)


def digit_images():
    """All 1797 digit images, shape ``(1797, 8, 8)``, pixels in ``[0, 1]``, and labels.

    Returns
    -------
    images : ndarray, shape (1797, 8, 8)
    labels : ndarray of int, shape (1797,)
    """
    return _sklearn_digits()


@dataclasses.dataclass(frozen=True)
class Digits:
    """A fixed train/test split of the digits, flattened to 64 standardised features.

    Attributes
    ----------
    x_train, x_test : ndarray, shape (n, 64)
    y_train, y_test : ndarray of int, shape (n,)
    mean, std : ndarray, shape (64,)
        The training set's per-pixel statistics used to standardise both sets.
    split_seed : int
    test_fraction : float
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    split_seed: int
    test_fraction: float

    @property
    def classes(self):
        """Number of classes (10)."""
        return 10


def split_digits(images, labels, test_fraction=0.2, split_seed=0):
    """Stratified train/test split and standardisation of flattened images.

    Parameters
    ----------
    images : ndarray, shape (n, h, w) or (n, features)
    labels : ndarray of int, shape (n,)
    test_fraction : float
        In ``(0, 0.9]``; each class contributes ``round(test_fraction * count)`` test
        examples.
    split_seed : int

    Returns
    -------
    Digits
    """
    test_fraction = check_real("test_fraction", test_fraction, 0.0, 0.9, lo_open=True)
    split_seed = check_int("split_seed", split_seed, 0, 2**63 - 1)
    x = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    y = np.asarray(labels)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("images and labels must have the same length >= 2")
    rng = np.random.default_rng(np.random.SeedSequence(split_seed))
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        take = int(round(test_fraction * len(idx)))
        test[rng.permutation(idx)[:take]] = True
    tr, te = np.flatnonzero(~test), np.flatnonzero(test)
    mean = x[tr].mean(axis=0)
    std = x[tr].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return Digits((x[tr] - mean) / std, y[tr], (x[te] - mean) / std, y[te], mean, std,
                  split_seed, test_fraction)


def load_digits(test_fraction=0.2, split_seed=0):
    """The digits, split and standardised (see the module docstring).

    Parameters
    ----------
    test_fraction : float
    split_seed : int

    Returns
    -------
    Digits

    Raises
    ------
    ImportError
        When scikit-learn is not installed (the message says how to install it).
    """
    images, labels = _sklearn_digits()
    return split_digits(images, labels, test_fraction, split_seed)


def carve_validation(data, fraction=0.2, seed=0):
    """A stratified validation split carved from the training set; the test set untouched.

    Parameters
    ----------
    data : Digits
    fraction : float
        In ``(0, 0.9]``; each class gives ``round(fraction * count)`` of its training
        examples to validation.
    seed : int
        The split is drawn from ``numpy.random.SeedSequence(seed, spawn_key=(2,))``.

    Returns
    -------
    Digits
        Training part as ``x_train, y_train`` and the validation part as ``x_test,
        y_test`` (what :func:`gradsim.train.train` evaluates each epoch), with ``data``'s
        standardisation (from the whole training set: the validation images' pixels are
        in it, their labels are not).
    """
    fraction = check_real("fraction", fraction, 0.0, 0.9, lo_open=True)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
    y = np.asarray(data.y_train)
    val = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        val[rng.permutation(idx)[:int(round(fraction * len(idx)))]] = True
    if val.all() or not val.any():
        raise ValueError(f"fraction {fraction} leaves an empty training or validation part")
    tr, va = np.flatnonzero(~val), np.flatnonzero(val)
    return Digits(data.x_train[tr], y[tr], data.x_train[va], y[va], data.mean, data.std,
                  data.split_seed, data.test_fraction)
