import os
import stat

import pytest

from trainers.checkpoint import atomic_write_text


def test_atomic_write_replaces_whole_file_with_normal_permissions(tmp_path):
    target = tmp_path / "table.csv"
    atomic_write_text(target, "a,b\n1,2\n")
    atomic_write_text(target, "a,b\n3,4\n")
    assert target.read_text() == "a,b\n3,4\n"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]   # no temp file left


def test_failed_write_leaves_the_old_file(tmp_path):
    from trainers.checkpoint import atomic_write

    target = tmp_path / "dense.pt"
    atomic_write_text(target, "old")

    def broken(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_an_error_summary_is_one_line_and_survives_an_empty_message():
    """The storage and checkpoint messages took ``str(exc).splitlines()[0]``, an IndexError for
    an exception without a message."""
    from trainers.errors import error_summary

    assert error_summary(ZeroDivisionError()) == "ZeroDivisionError"
    assert error_summary(ValueError("first\nsecond")) == "ValueError: first"
    assert error_summary(ValueError("x" * 500), limit=10) == "ValueError: " + "x" * 10
