"""One run per results folder: a lock file in the outdir naming the run that holds it.

The lock is ``<outdir>/.scregnet-run.lock``, held with ``flock`` for as long as the run lasts and
holding the run's pid, host and start time. The kernel drops an ``flock`` when its process dies
(even by ``kill -9``), so a lock file left by a killed run is free and the next run takes it over;
the recorded pid is checked as well (alive, and the same process by its start time), for file
systems whose ``flock`` is not shared between processes. A lock naming another host is taken over
too when the results folder is on a local file system (ext4, xfs, tmpfs, overlay, ...) and its
``flock`` is free: only processes of this machine can hold it there (a container has a host name of
its own). On a network file system such a lock cannot be checked from here and is respected: the
error says which file to remove once that run is over.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scregnet.errors import InputError

log = logging.getLogger(__name__)

LOCK_NAME = ".scregnet-run.lock"

#: lock files this process holds -> how many nested holders
_held: dict[str, int] = {}


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux ``/proc``), None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


#: file systems only this machine's kernel writes: an ``flock`` there is seen by every process
#: that could hold the lock, whatever host name it ran under
LOCAL_FILE_SYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "jfs", "reiserfs", "bcachefs"}
    | {"tmpfs", "ramfs", "overlay", "fuse.fuse-overlayfs"}
)


def _file_system(path: Path) -> str | None:
    """The type of the file system holding ``path`` (the longest mount point above it, from
    ``/proc/self/mounts``); None when unknown."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) > best[0]):
            best = (len(point), fields[2])
    return None if best is None else best[1]


def _alive(pid: int, start: str | None) -> bool:
    """Whether ``pid`` is running and, when ``start`` is known, is the process that started then."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    if start is not None:
        now = _process_start(pid)
        return now is None or now == start
    return True


def describe(holder: dict[str, Any]) -> str:
    """``pid 123 on host h, started 2026-12-02T10:00:00`` for a lock's content."""
    return (
        f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
        f"started {holder.get('start', '?')}"
    )


def _read(fd: int) -> dict[str, Any]:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 4096):
        raw += chunk
    try:
        holder = json.loads(raw.decode() or "{}")
    except (UnicodeDecodeError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _write(fd: int) -> None:
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "start": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "proc_start": _process_start(os.getpid()),
    }
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(me) + "\n").encode())
    os.fsync(fd)


def _refuse(path: Path, holder: dict[str, Any], *, remote: bool) -> InputError:
    msg = f"another scregnet run is using this results folder ({describe(holder)})"
    if remote:
        msg += f"; if that run is over, delete {path}"
    else:
        msg += "; wait for it to finish or stop it"
    return InputError(msg, path.parent)


def _acquire(path: Path) -> int:
    """Open, lock and fill ``path``; an :class:`InputError` naming the holder when it is taken."""
    local = _file_system(path.parent) in LOCAL_FILE_SYSTEMS
    for _ in range(20):
        flocked = False
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            msg = f"cannot create the run lock {path.name} ({exc.strerror})"
            raise InputError(msg, path.parent) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            flocked = True
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                holder = _read(fd)
                os.close(fd)
                raise _refuse(path, holder, remote=False) from None
            # no flock on this file system (ENOLCK, ENOTSUP): the recorded pid alone decides
            log.debug("no flock on %s (%s); relying on the pid it records", path, exc.strerror)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder removed the file between our open and our lock
            os.close(fd)
            continue
        holder = _read(fd)
        if holder:
            pid = holder.get("pid")
            if holder.get("host") != socket.gethostname():
                # its pid means nothing here; its flock does where only this kernel could hold it
                if not (flocked and local):
                    os.close(fd)
                    raise _refuse(path, holder, remote=True)
            elif (
                isinstance(pid, int)
                and pid != os.getpid()
                and _alive(pid, holder.get("proc_start"))
            ):
                os.close(fd)
                raise _refuse(path, holder, remote=False)
            log.warning(
                "taking over the lock of an earlier run that is no longer running (%s)",
                describe(holder),
            )
        _write(fd)
        return fd
    msg = f"could not take the run lock {path.name}: it keeps being replaced"
    raise InputError(msg, path.parent)


@contextlib.contextmanager
def outdir_lock(outdir: Path) -> Iterator[Path]:
    """Hold ``outdir``'s run lock for the block (creating ``outdir``); nested use is allowed."""
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / LOCK_NAME
    key = str(path.resolve())
    if key in _held:
        _held[key] += 1
        try:
            yield path
        finally:
            _held[key] -= 1
        return
    fd = _acquire(path)
    _held[key] = 1
    try:
        yield path
    finally:
        del _held[key]
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # still holding the flock: nobody can take it between the two lines
        os.close(fd)
