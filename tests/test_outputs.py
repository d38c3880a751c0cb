"""Output locations are checked before any work: a directory where no file can be made is
a one-line ValueError (exit 2 on the command line), even for root, and leaves nothing."""

import os
import sys

import pytest

from gradsim.cli import main
from gradsim.util import TMP_PREFIX, check_output, check_writable_dir

UNWRITABLE = "/proc"  # root may write almost anywhere, but no one can create a file here


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")
def test_unwritable_directory_is_refused_before_any_work():
    with pytest.raises(ValueError, match="out: cannot write in directory '/proc'"):
        check_output(f"{UNWRITABLE}/x.npz")
    with pytest.raises(ValueError, match="out: cannot write in directory '/proc'"):
        check_writable_dir(UNWRITABLE)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")
def test_cli_unwritable_output_exits_2_with_one_line(capsys):
    code = main(["simulate", "--depth", "1", "--width", "3", "--points", "4", "--nets", "2",
                 "--seed", "0", "--out", f"{UNWRITABLE}/x.npz"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot write in directory" in err


def test_probe_leaves_nothing_and_a_file_parent_is_refused(tmp_path):
    assert check_output(tmp_path / "a.npz") == os.fspath(tmp_path / "a.npz")
    assert sorted(os.listdir(tmp_path)) == []  # the probe file is gone
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="does not exist"):
        check_output(tmp_path / "file" / "a.npz")
    with pytest.raises(ValueError, match="is not a directory"):
        check_writable_dir(tmp_path / "file")
    assert sorted(os.listdir(tmp_path)) == ["file"]
    assert not any(n.startswith(TMP_PREFIX) for n in os.listdir(tmp_path))
