"""Small shared utilities: validators, JSON data classes, dtypes, the memory guard,
atomic writes and output-path checks.

Every module validates through :func:`check_int`, :func:`check_real` and
:func:`check_choice`, so bad input always gets the same kind of message: a
``ValueError`` naming the parameter and its allowed range.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import secrets
import stat
from numbers import Integral, Real

import numpy as np

__all__ = ["MAX_SIZE", "check_int", "check_real", "check_choice", "check_bool", "check_rng",
           "JsonData", "DTYPES",
           "get_dtype", "available_memory", "check_memory", "atomic_write", "check_output",
           "check_writable_dir", "TMP_PREFIX", "TMP_PATTERN", "remove_temporaries",
           "locked"]

#: Upper bound on any single size (depth, width, input dimension, points).
MAX_SIZE = 1_000_000
#: Prefix of the temporary files :func:`atomic_write` creates beside its target.
TMP_PREFIX = ".gradsim-"
#: The whole name of such a file: the prefix, 12 lowercase hex digits, ``.tmp``.
TMP_PATTERN = re.compile(re.escape(TMP_PREFIX) + r"[0-9a-f]{12}\.tmp")


def check_int(name, value, lo=1, hi=MAX_SIZE):
    """Return ``value`` as an int in ``[lo, hi]`` or raise a ValueError naming it."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    if not isinstance(value, Integral):
        if isinstance(value, Real) and math.isfinite(value) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value}")
    return value


def check_real(name, value, lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False):
    """Return ``value`` as a finite float in the stated range or raise a ValueError."""
    lb = "(" if lo_open else "["
    rb = ")" if hi_open else "]"
    allowed = f"a finite number in {lb}{lo}, {hi}{rb}"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    value = float(value)
    bad = (
        not math.isfinite(value)
        or value < lo
        or value > hi
        or (lo_open and value == lo)
        or (hi_open and value == hi)
    )
    if bad:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value


def check_choice(name, value, choices):
    """Return ``value`` if it is one of ``choices`` or raise a ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_bool(name, value):
    """Return ``value`` if it is a bool (numpy's too) or raise a ValueError naming it."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def check_rng(rng, name="rng"):
    """Return ``rng`` if it is a ``numpy.random.Generator`` or raise a ValueError naming it."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{name} must be a numpy.random.Generator (for network i of a run "
                         f"seeded s: gradsim.network_rng(s, i)), got {type(rng).__name__}")
    return rng


class JsonData:
    """Mixin for frozen dataclasses that round-trip through JSON.

    ``_label`` names the object in error messages.
    """

    _label = "data"

    def replace(self, **changes):
        """Return a copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """Plain-dict form (JSON types only)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Build from :meth:`to_dict` output, rejecting unknown keys."""
        if not isinstance(data, dict):
            raise ValueError(f"{cls._label} must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"{cls._label} has unknown keys: {', '.join(unknown)}")
        return cls(**data)

    def to_json(self):
        """JSON text (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """Inverse of :meth:`to_json`; malformed text raises ValueError."""
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{cls._label} is not valid JSON: {exc}") from None
        return cls.from_dict(data)


DTYPES = {"float64": np.float64, "float32": np.float32}


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


#: Memory requests this small are never refused (:func:`check_memory`).
SMALL_BYTES = 16 * 2**20


def check_memory(nbytes, what, fraction=0.8):
    """Raise ValueError if ``nbytes`` exceeds ``fraction`` of the available memory.

    ``what`` names the parameters responsible, for the message.  Requests of at most
    :data:`SMALL_BYTES` pass without reading the available memory (a per-network check
    would otherwise cost more than a small network's arithmetic).
    """
    if nbytes <= SMALL_BYTES:
        return
    limit = fraction * available_memory()
    if nbytes > limit:
        raise ValueError(
            f"{what} would need about {nbytes / 2**30:.3g} GiB of memory, more than the "
            f"{limit / 2**30:.3g} GiB available; reduce it"
        )


@contextlib.contextmanager
def atomic_write(path):
    """Yield a binary file handle whose contents replace ``path`` only on success.

    The data go to a temporary file ``.gradsim-<random>.tmp`` beside ``path``, flushed and
    synced, then renamed over it; on any error (or Ctrl-C) the temporary file is removed.
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(parent, f"{TMP_PREFIX}{secrets.token_hex(6)}.tmp")
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


def _probe_directory(parent):
    """Create and remove a temporary file in ``parent``: the one reliable test that files
    can be written there (``os.access`` says yes to root on ``/proc``, say)."""
    probe = os.path.join(parent, f"{TMP_PREFIX}{secrets.token_hex(6)}.tmp")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise ValueError(f"out: cannot write in directory {parent!r}: "
                         f"{exc.strerror or exc}") from None
    with contextlib.suppress(OSError):
        os.unlink(probe)


def check_writable_dir(path):
    """Fail early if files cannot be created in directory ``path`` (ValueError naming it)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ValueError(f"out: {path!r} is not a directory")
    _probe_directory(os.path.abspath(path))
    return path


@contextlib.contextmanager
def locked(directory, lock, what):
    """Hold the lock file ``directory/lock`` exclusively while the block runs.

    The kernel releases it if the process dies, so a killed run never leaves a stale lock.
    A second holder gets a ValueError: ``out: DIR is in use by another gradsim WHAT``.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(os.path.join(directory, lock), os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"out: {directory} is in use by another gradsim {what}") from None
        yield
    finally:
        os.close(fd)


def remove_temporaries(directory):
    """Delete the temporary files an interrupted :func:`atomic_write` left in ``directory``.

    Only regular files whose whole name matches :data:`TMP_PATTERN`; nothing else, and not
    in subdirectories.  Call it only where no other run is writing (under a lock).

    Returns
    -------
    list of str
        The names removed (sorted); empty if ``directory`` does not exist.
    """
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    gone = []
    for name in names:
        path = os.path.join(directory, name)
        if TMP_PATTERN.fullmatch(name):
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISREG(os.lstat(path).st_mode):
                    os.unlink(path)
                    gone.append(name)
    return gone


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
    _probe_directory(parent)
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
