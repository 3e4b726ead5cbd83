"""Writes that a crash or a kill cannot tear: one way for every file this package writes.

The data goes to a hidden temporary file beside the target (the same file system, so the
final rename is atomic), is synced to disk, then published under the target's name: a reader
sees the old file or the new one, never a part. Publishing replaces the target (``replace``,
the default: checkpoints, caches, reports) or never does (``replace=False``: predict's photos
and videos without ``--overwrite``), so a file that another run published meanwhile is kept
and this write fails with :class:`FileExistsError` instead of silently replacing it.

The temporary name ``.<stem>.<host>~<space>-<pid>-<8 hex>.partial<suffix>`` says who writes
it: the host name, and ``space``, 8 hex digits of a hash of the host name, the kernel's boot id
and the pid namespace, inside which alone the pid means anything. A later run removes such a
file at once only when it was written in its own host, boot and pid namespace by a process
that is gone; any other (another container, another node over NFS, a name from before the
host was recorded) only once it has not been modified for :data:`STALE_AFTER_SECONDS` (a
writer that is alive keeps writing, so its file stays young). The file is created with mode
0o666, which the umask trims as for any new file (``tempfile.mkstemp`` would give 0600).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

#: A temporary file not written in this host, boot and pid namespace is removed only after
#: this long without a change: a day, far beyond any pause of a live writer (a video writer
#: writes every few frames; a photo is written in one go).
STALE_AFTER_SECONDS = 24 * 3600

PARTIAL_NAME = re.compile(
    r"\.(?P<stem>.+)\.(?:(?P<host>[A-Za-z0-9-]{1,32})~(?P<space>[0-9a-f]{8})-)?"
    r"(?P<pid>[0-9]+)-[0-9a-f]{8}\.partial(?:\.[A-Za-z0-9]+)?"
)
_RENAME_NOREPLACE = 1  # linux/fs.h
_AT_FDCWD = -100
# renameat2's answers where the file system (NFS, some FUSE) or the kernel lacks the flag.
_NO_RENAMEAT2 = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}
# link's answers where the file system has no hard links (FAT, exFAT, some FUSE and SMB).
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}


class TemporaryFileVanished(FileNotFoundError):
    """The temporary file was removed by someone else before it could be published."""


class TargetExists(FileExistsError):
    """Publishing without replacing found the target there (another process wrote it while
    this one was writing); the target was kept. Not any FileExistsError: ``mkdir`` over a file
    raises that too."""


def is_partial(name: str) -> bool:
    return PARTIAL_NAME.fullmatch(name) is not None


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux: pids are host-wide
        return ""


@functools.cache
def host_name() -> str:
    """The host name as it may appear in a file name (letters, digits, '-'; 32 at most)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def process_space() -> str:
    """8 hex digits naming where this process's pid means something: host, boot, pid namespace.
    Not cached: a child forked into a new pid namespace (unshare) has another."""
    key = "\0".join((socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), _pid_namespace()))
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def partial_path(final: Path) -> Path:
    """Where ``final`` is written before it is published: hidden, in the same folder (a rename
    within one file system), named after this host, namespace and process."""
    owner = f"{host_name()}~{process_space()}-{os.getpid()}"
    return final.with_name(f".{final.stem}.{owner}-{secrets.token_hex(4)}.partial{final.suffix}")


def create_exclusive(path: Path) -> int:
    """A new file for writing, with the mode the umask gives any new file."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", *, replace: bool = True, **open_args: Any) -> Iterator[IO[Any]]:
    """A file object whose content is published as ``path`` only when the block ends without
    an exception; on any exception (KeyboardInterrupt too) the temporary file is removed and
    ``path`` is untouched. ``mode`` is "wb" or "w" ("w" takes ``open``'s encoding etc.).
    ``replace=False``: an existing ``path`` is kept and :class:`TargetExists` raised."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write writes a new file: mode 'wb' or 'w', got {mode!r}")
    with atomic_path(path, replace=replace) as temporary:
        with open(temporary, mode, **open_args) as stream:
            yield stream


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, replace: bool = True) -> Iterator[Path]:
    """For writers that only take a file name (``np.lib.format.open_memmap``, ONNX's ``save``,
    FFmpeg): the temporary file's path, created empty; it is synced and published as ``path``
    when the block ends without an exception (see :func:`publish`), removed otherwise."""
    target = Path(path)
    temporary = partial_path(target)
    os.close(create_exclusive(temporary))
    try:
        yield temporary
        _sync(temporary, target)
        publish(temporary, target, replace=replace)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _vanished(temporary: Path, target: Path) -> TemporaryFileVanished:
    return TemporaryFileVanished(
        errno.ENOENT,
        f"its temporary file {temporary.name} vanished before it was published (another process removed it, "
        f"e.g. a clean-up by a run on another host or container); nothing was written under {target.name}",
        str(temporary),
    )


def _sync(temporary: Path, target: Path) -> None:
    try:
        descriptor = os.open(temporary, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise _vanished(temporary, target) from None
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def publish(temporary: Path, target: Path, replace: bool) -> None:
    """Gives the complete ``temporary`` the name ``target``, atomically. ``replace``: over
    whatever is there (``os.replace``). Otherwise never over an existing file, even one that
    appeared a moment ago: ``renameat2(RENAME_NOREPLACE)``; where the file system lacks that
    flag (NFS), a hard link then the temporary name's removal; where it lacks hard links too,
    the name is claimed with ``O_EXCL`` and replaced (an empty file shows for that instant).
    An existing target raises :class:`TargetExists` and is left as it is."""
    if not temporary.exists():
        raise _vanished(temporary, target)
    if replace:
        os.replace(temporary, target)
        return
    if _renameat2_noreplace(temporary, target):
        return
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise _exists(target) from None
    except OSError as error:
        if error.errno not in _NO_LINKS:
            raise
        _claim_then_replace(temporary, target)
        return
    temporary.unlink()


def _exists(target: Path) -> TargetExists:
    return TargetExists(errno.EEXIST, f"{target} exists (written by another process while this one was being written)", str(target))


@functools.cache
def _libc_renameat2() -> Any:
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not glibc 2.28+ or not Linux
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _renameat2_noreplace(temporary: Path, target: Path) -> bool:
    """True when renamed; False where renameat2 or its flag is not available; FileExistsError."""
    function = _libc_renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(temporary), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.EEXIST:
        raise _exists(target)
    if code in _NO_RENAMEAT2:
        return False
    if code == errno.ENOENT and not temporary.exists():
        raise _vanished(temporary, target)
    raise OSError(code, os.strerror(code), str(target))


def _claim_then_replace(temporary: Path, target: Path) -> None:
    try:
        os.close(create_exclusive(target))
    except FileExistsError:
        raise _exists(target) from None
    try:
        os.replace(temporary, target)
    except BaseException:
        target.unlink(missing_ok=True)  # our empty claim, not a user's file
        raise


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():  # a file of ours before we wrote any: left by an earlier process with this pid
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def is_stale(path: Path, now: float | None = None) -> bool:
    """Whether the temporary file ``path`` was left by a writer that is gone: written in this
    host, boot and pid namespace by a process that no longer exists, or (anyone's) not
    modified for :data:`STALE_AFTER_SECONDS`."""
    match = PARTIAL_NAME.fullmatch(path.name)
    if match is None:
        return False
    ours = match["host"] == host_name() and match["space"] == process_space()
    if ours and not _process_alive(int(match["pid"])):
        return True
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:
        return False
    return age > STALE_AFTER_SECONDS


def remove_stale_partials(folder: Path, recursive: bool = True) -> list[Path]:
    """Removes the temporary files of killed writers under ``folder`` (:func:`is_stale`): a
    process writing into the same folder at the same time, here or on another host or in
    another container, keeps its own. Returns what was removed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for directory, subfolders, names in os.walk(folder, onerror=lambda error: None):
        if not recursive:
            subfolders.clear()
        for name in names:
            path = Path(directory, name)
            if not is_stale(path):
                continue
            try:
                path.unlink()
            except OSError:  # gone meanwhile, or not ours to remove after all (permissions): leave it
                continue
            removed.append(path)
    return removed
