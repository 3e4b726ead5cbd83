"""atomic_write: the file system is the oracle (bytes on disk, the folder's listing, modes)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from lit_colorize.atomic import atomic_path, atomic_write, is_partial, remove_stale_partials


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield 0o027
    os.umask(previous)


def test_success_writes_exactly_the_bytes_and_leaves_nothing_else(tmp_path) -> None:
    target = tmp_path / "model.ckpt"
    target.write_bytes(b"old")
    with atomic_write(target) as stream:
        stream.write(b"new \x00 bytes")
    assert target.read_bytes() == b"new \x00 bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]


def test_text_mode(tmp_path) -> None:
    target = tmp_path / "finished.json"
    with atomic_write(target, "w", encoding="utf-8") as stream:
        stream.write("{\"ü\": 1}\n")
    assert target.read_bytes() == "{\"ü\": 1}\n".encode()


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failure_mid_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, error) -> None:
    target = tmp_path / "last.ckpt"
    old = os.urandom(4096)
    target.write_bytes(old)
    with pytest.raises(type(error)):
        with atomic_write(target) as stream:
            stream.write(b"half of the new file")
            stream.flush()
            seen = [p.name for p in tmp_path.iterdir() if p.name != "last.ckpt"]
            raise error
    assert len(seen) == 1 and is_partial(seen[0]) and seen[0].endswith(".partial.ckpt")  # it was there, beside
    assert target.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_failure_without_a_previous_file_leaves_no_file(tmp_path) -> None:
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "out.onnx") as temporary:
            temporary.write_bytes(b"part")
            raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_mode_is_what_the_umask_gives_a_new_file(tmp_path, umask_027) -> None:
    target = tmp_path / "photo.png"
    with atomic_write(target) as stream:
        stream.write(b"x")
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask_027 == 0o640


def test_temporary_name_is_recognisable_and_carries_the_pid(tmp_path) -> None:
    with atomic_path(tmp_path / "cache.npy") as temporary:
        assert temporary.parent == tmp_path and is_partial(temporary.name)
        assert temporary.name.startswith(f".cache.{os.getpid()}-") and temporary.name.endswith(".partial.npy")


def test_a_killed_writers_temporary_is_removed_later_a_live_ones_kept(tmp_path) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    dead = tmp_path / f".last.{finished.pid}-0123abcd.partial.ckpt"
    alive = tmp_path / f".last.{os.getppid()}-0123abcd.partial.ckpt"  # a process still writing
    nested = tmp_path / "sub" / f".last.{finished.pid}-0123abcd.partial.ckpt"
    nested.parent.mkdir()
    for path in (dead, alive, nested):
        path.write_bytes(b"")
    assert remove_stale_partials(tmp_path, recursive=False) == [dead]
    assert alive.exists() and nested.exists()


def test_atomic_write_refuses_modes_that_would_not_replace(tmp_path) -> None:
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "ab"):
            pass
    assert list(tmp_path.iterdir()) == []
