"""atomic_write: the file system is the oracle (bytes on disk, the folder's listing, modes).
Publishing without replacing and the clean-up of stale temporary files are tried with real
processes: two writers of one name, and a writer in another pid namespace (``unshare``)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lit_colorize import atomic
from lit_colorize.atomic import (
    STALE_AFTER_SECONDS,
    TargetExists,
    TemporaryFileVanished,
    atomic_path,
    atomic_write,
    host_name,
    is_partial,
    is_stale,
    process_space,
    remove_stale_partials,
)
from tests.conftest import REPO_ROOT


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


def test_temporary_name_is_recognisable_and_names_host_namespace_and_pid(tmp_path) -> None:
    with atomic_path(tmp_path / "cache.npy") as temporary:
        assert temporary.parent == tmp_path and is_partial(temporary.name)
        owner = f"{host_name()}~{process_space()}-{os.getpid()}-"
        assert temporary.name.startswith(f".cache.{owner}") and temporary.name.endswith(".partial.npy")
    space = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", SPACE],
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})  # fmt: skip
    if space.returncode == 0:  # another pid namespace, another space
        assert space.stdout.strip() != process_space()


SPACE = "from lit_colorize.atomic import process_space; print(process_space())"


def partial_name(stem: str, pid: int, host: str | None = None, space: str | None = None) -> str:
    return f".{stem}.{host or host_name()}~{space or process_space()}-{pid}-0123abcd.partial.ckpt"


def dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def test_a_killed_writers_temporary_is_removed_later_a_live_ones_kept(tmp_path) -> None:
    pid = dead_pid()
    dead = tmp_path / partial_name("last", pid)
    alive = tmp_path / partial_name("last", os.getppid())  # a process still writing
    nested = tmp_path / "sub" / partial_name("last", pid)
    nested.parent.mkdir()
    for path in (dead, alive, nested):
        path.write_bytes(b"")
    assert remove_stale_partials(tmp_path, recursive=False) == [dead]
    assert alive.exists() and nested.exists()


def test_temporary_files_of_other_hosts_and_namespaces_wait_for_the_age_bound(tmp_path) -> None:
    """A pid of another host, boot or pid namespace means nothing here: such a file (and one
    named as before hosts were recorded) goes only once it has not changed for a day."""
    pid = dead_pid()
    foreign = [partial_name("a", pid, host="node17"), partial_name("b", pid, space="0badf00d"), f".c.{pid}-0123abcd.partial.png"]
    for name in foreign:
        (tmp_path / name).write_bytes(b"x")
    assert all(is_partial(name) for name in foreign)
    assert remove_stale_partials(tmp_path) == []
    old = time.time() - STALE_AFTER_SECONDS - 60
    os.utime(tmp_path / foreign[0], (old, old))
    assert not is_stale(tmp_path / foreign[1]) and is_stale(tmp_path / foreign[1], now=time.time() + STALE_AFTER_SECONDS + 1)
    assert remove_stale_partials(tmp_path) == [tmp_path / foreign[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(foreign[1:])


# A writer that stops with its temporary file in place until told to go on (a line on stdin),
# then publishes: without the package's __init__ (torch), only lit_colorize.atomic is loaded.
PAUSED_WRITER = """
import os, sys, types
from pathlib import Path
package = types.ModuleType("lit_colorize"); package.__path__ = [str(Path(sys.argv[1]) / "lit_colorize")]
sys.modules["lit_colorize"] = package
from lit_colorize.atomic import atomic_write
try:
    with atomic_write(Path(sys.argv[2]), replace=sys.argv[4] == "replace") as stream:
        stream.write(sys.argv[3].encode())
        stream.flush()
        print(os.getpid(), os.readlink("/proc/self/ns/pid"), flush=True)
        sys.stdin.readline()
except FileExistsError as error:  # TargetExists
    print("EXISTS", type(error).__name__, error, flush=True)
    sys.exit(3)
"""


def start_writer(target: Path, content: str, mode: str = "keep", prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    """A real writer process, paused inside its write: returns once its temporary file exists."""
    writer = subprocess.Popen([*prefix, sys.executable, "-c", PAUSED_WRITER, str(REPO_ROOT), str(target), content, mode],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    ready = writer.stdout.readline()
    assert ready, f"the writer did not start: {writer.communicate()}"
    return writer


def finish(writer: subprocess.Popen) -> tuple[int, str]:
    out, _ = writer.communicate("go\n", timeout=60)
    return writer.returncode, out


def test_two_processes_publishing_one_name_the_later_one_fails_and_keeps_the_first(tmp_path) -> None:
    """Run A starts first and is held inside its write; run B writes the same name and ends;
    then A publishes. Before: A's os.replace silently replaced B's file."""
    target = tmp_path / "photo_colorized_T0.8.png"
    slow = start_writer(target, "A")
    fast = start_writer(target, "B")
    assert finish(fast)[0] == 0 and target.read_text() == "B"
    status, out = finish(slow)
    assert status == 3 and "EXISTS TargetExists" in out and str(target) in out
    assert target.read_text() == "B"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # A's temporary file is gone
    replacing = start_writer(target, "C", mode="replace")  # --overwrite
    assert finish(replacing)[0] == 0 and target.read_text() == "C"


@pytest.mark.parametrize("missing", ["renameat2", "renameat2 and hard links"])
def test_publishing_without_replacing_falls_back_where_the_file_system_lacks_a_feature(tmp_path, monkeypatch, missing) -> None:
    """NFS has no RENAME_NOREPLACE (a hard link then an unlink), FAT no hard links either
    (the name claimed with O_EXCL): an existing file is kept all the same."""
    monkeypatch.setattr(atomic, "_libc_renameat2", lambda: None)
    if missing == "renameat2 and hard links":
        def no_links(source, target):
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "out.png"
    with atomic_write(target, replace=False) as stream:
        stream.write(b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(TargetExists, match="exists"):
        with atomic_write(target, replace=False) as stream:
            stream.write(b"second")
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_a_temporary_file_that_vanished_is_named_as_such(tmp_path) -> None:
    with pytest.raises(TemporaryFileVanished, match=r"vanished before it was published .*nothing was written under out\.mp4"):
        with atomic_path(tmp_path / "out.mp4", replace=False) as temporary:
            temporary.unlink()  # as another run's clean-up did
    assert list(tmp_path.iterdir()) == []


# A pid namespace of its own whose writer's pid is ``sys.argv[1]``: pids there are given out in
# order from 1, so short-lived processes use up those below it; then the writer starts.
NAMESPACED = """
target=$1; shift
while :; do /bin/true & p=$!; wait $p; [ "$p" -ge $((target - 1)) ] && break; done
"$@"; true
"""


def pid_free_here(start: int = 300) -> int:
    """A pid no process has in this namespace (low pids are rarely given out again)."""
    return next(pid for pid in range(start, start + 10000) if not os.path.exists(f"/proc/{pid}"))


@pytest.mark.slow
def test_a_writer_in_another_pid_namespace_keeps_its_temporary_file(tmp_path) -> None:
    """A live writer under ``unshare --pid`` (a container; a node of a cluster is the same case)
    has a pid that does not exist here. Before: a run here removed its temporary file as a
    dead process's, and the writer lost its output at the end."""
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, text=True)
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip(f"cannot make a pid namespace here: {probe.stderr.strip()}")
    pid = pid_free_here()
    target = tmp_path / "clip_colorized_T0.8.png"
    prefix = ("unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", NAMESPACED, "sh", str(pid))
    writer = start_writer(target, "live", prefix=prefix)
    try:
        (temporary,) = [p for p in tmp_path.iterdir() if is_partial(p.name)]
        assert f"-{pid}-" in temporary.name and not os.path.exists(f"/proc/{pid}")  # that pid is dead here
        assert remove_stale_partials(tmp_path) == []
        assert temporary.exists()
    finally:
        status, out = finish(writer)
    assert status == 0, out
    assert target.read_text() == "live"


def test_atomic_write_refuses_modes_that_would_not_replace(tmp_path) -> None:
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "ab"):
            pass
    assert list(tmp_path.iterdir()) == []
