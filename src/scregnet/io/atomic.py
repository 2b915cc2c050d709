"""Atomic outputs: write beside the target under a temporary name, rename only on success.

A process killed half-way (``kill -9``, out of memory, an exception) therefore never leaves a
partial file under the final name, and a rerun simply starts again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from scregnet.errors import InputError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _check_parent(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"cannot create output directory ({exc.strerror})"
            raise InputError(msg, parent) from exc
    if not os.access(parent, os.W_OK):
        msg = "output directory is not writable"
        raise InputError(msg, parent)


def make_parent(path: str | Path) -> Path:
    """Create ``path``'s directory when missing; an :class:`InputError` when impossible or read-only."""
    path = Path(path)
    _check_parent(path)
    return path.parent if str(path.parent) else Path(".")


def temp_path_for(path: str | Path) -> Path:
    """A fresh temporary path in the same directory as ``path`` (same filesystem: rename is atomic)."""
    path = Path(path)
    _check_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give outputs the usual permissions
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` when the block exits cleanly.

    The temporary file keeps the target's suffixes (``x.h5ad`` -> ``.x.h5ad.<rand>.part.h5ad``)
    so that libraries that dispatch on extensions still work.
    """
    path = Path(path)
    tmp = temp_path_for(path)
    suffixed = tmp.with_name(tmp.name + "".join(path.suffixes))
    tmp.rename(suffixed)
    try:
        yield suffixed
        os.replace(suffixed, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            suffixed.unlink()
        raise


@contextlib.contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[list[Path]]:
    """Several outputs that appear together or not at all (e.g. a file and its index)."""
    targets = [Path(p) for p in paths]
    temps: list[Path] = []
    try:
        for target in targets:
            tmp = temp_path_for(target)
            suffixed = tmp.with_name(tmp.name + "".join(target.suffixes))
            tmp.rename(suffixed)
            temps.append(suffixed)
        yield temps
        for tmp, target in zip(temps, targets, strict=True):
            os.replace(tmp, target)
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a whole directory under a temporary name; it takes the final name on success.

    An existing directory at ``path`` is replaced only once the new one is complete.
    """
    path = Path(path)
    _check_parent(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_writable_dir(path: str | Path) -> Path:
    """Fail early, with one clear line, when an output directory cannot be created or written."""
    path = Path(path)
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        msg = "output location is not a writable directory"
        raise InputError(msg, path)
    return path
