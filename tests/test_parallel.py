"""Worker processes: they leave with their parent, however it ends, and Ctrl-C is the
parent's alone (one line, no tracebacks from the workers)."""

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow

_RUN = ("from gradsim import GridSpec, NetSpec, simulate\n"
        "print('running', flush=True)\n"
        "simulate(NetSpec(depth=30, width=64), GridSpec(points=128), nets=100000, seed=0, "
        "workers=2, keep=False)\n")


def _stat(pid):
    """The fields of ``/proc/PID/stat`` after the command name, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(pid):
    """Live child processes of ``pid`` (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        fields = _stat(d)
        if fields and int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(d))
    return out


def _signal_masks(pid):
    """The ``SigBlk``, ``SigIgn`` and ``SigCgt`` lines of ``/proc/PID/status``."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            return [ln.strip() for ln in fh if ln.startswith(("SigBlk", "SigIgn", "SigCgt"))]
    except OSError:
        return []


def _alive(pids):
    return [p for p in pids if (_stat(p) or ["Z"])[0] != "Z"]


def _start(settle=1.0):
    proc = subprocess.Popen([sys.executable, "-c", _RUN], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout.readline() == "running\n"
    deadline = time.time() + 60
    while len(_children(proc.pid)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(settle)  # the workers are computing (or, with 0, still starting)
    kids = _children(proc.pid)
    assert len(kids) >= 2, kids
    return proc, kids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_when_their_parent_is_killed():
    proc, kids = _start()
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    deadline = time.time() + 10
    while _alive(kids) and time.time() < deadline:
        time.sleep(0.05)
    left = _alive(kids)
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"workers still running 10 s after the parent died: {left}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("settle", [1.0, 0.1, 0.3], ids=["computing", "starting", "importing"])
def test_ctrl_c_reaches_the_group_and_only_the_parent_reports_it(settle):
    """Also while the workers are still importing (before their initializer runs): they
    are spawned with Ctrl-C blocked, so only the parent reports it."""
    proc, kids = _start(settle)
    masks = _signal_masks(proc.pid)  # in the message if Ctrl-C does not end the run
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # leave no run behind to load later tests
        proc.communicate()
        pytest.fail(f"Ctrl-C did not end the run within 60 s; parent's masks {masks}")
    assert proc.returncode != 0
    assert "SpawnProcess" not in err and err.count("KeyboardInterrupt") <= 1, err
    deadline = time.time() + 10
    while _alive(kids) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(kids)
