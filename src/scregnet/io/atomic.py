"""Atomic outputs: write beside the target under a temporary name, rename only on success.

A process killed half-way (``kill -9``, out of memory, an exception) therefore never leaves a
partial file under the final name, and a rerun simply starts again. Output folders keep the files
the command did not write (:func:`atomic_dir`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from scregnet.errors import InputError
from scregnet.io.outputs import check_output_file, write_error

log = logging.getLogger(__name__)


def _check_parent(path: Path) -> None:
    parent = _parent_of(path)
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"cannot create output directory ({exc.strerror})"
            raise InputError(msg, parent) from exc
    if not parent.is_dir():
        msg = "output directory is not a directory"
        raise InputError(msg, parent)
    if not os.access(parent, os.W_OK):
        readonly = os.statvfs(parent).f_flag & os.ST_RDONLY
        why = "read-only file system" if readonly else "permission denied"
        msg = f"output directory is not writable ({why})"
        raise InputError(msg, parent)


def make_parent(path: str | Path) -> Path:
    """Create ``path``'s directory when missing; an :class:`InputError` when impossible or read-only."""
    path = Path(path)
    _check_parent(path)
    return _parent_of(path)


_TEMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _new_temp(target: Path, infix: str, suffix: str, *, folder: bool, made: list[Path]) -> Path:
    """Create a fresh file or folder ``.<target's name>.<infix><8 random characters><suffix>``
    beside ``target``; an :class:`InputError` naming ``target`` when that is impossible.

    Each candidate name goes into ``made`` before it is created, so that a signal raised at any
    point leaves the caller a list that names everything created (its cleanup removes them).
    """
    rng = random.SystemRandom()
    for _ in range(100):
        name = f".{target.name}.{infix}{''.join(rng.choices(_TEMP_CHARS, k=8))}{suffix}"
        tmp = _parent_of(target) / name
        made.append(tmp)
        try:
            if folder:
                os.mkdir(tmp)  # 0o777 less the umask, as outputs are
            else:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            made.pop()
            continue
        except OSError as exc:
            raise InputError(f"cannot write ({exc.strerror})", target) from exc
        return tmp
    msg = "cannot write (no free temporary name beside it)"
    raise InputError(msg, target)


def _remove(paths: Sequence[Path]) -> None:
    for tmp in paths:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _parent_of(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


@contextlib.contextmanager
def scratch_dir(path: str | Path, tag: str) -> Iterator[Path]:
    """A temporary folder ``.<name>.<tag>.<random>`` beside ``path`` for work files, removed on
    exit however the block ends (a signal included)."""
    path = Path(path)
    made: list[Path] = []
    try:
        yield _new_temp(path, f"{tag}.", "", folder=True, made=made)
    finally:
        _remove(made)


def _fail(exc: BaseException, target: Path) -> BaseException:
    """The error to raise for ``exc`` met while writing ``target`` (a write failure names it)."""
    return write_error(exc, target) or exc


def _raise(exc: BaseException, translated: BaseException) -> NoReturn:
    if translated is exc:
        raise exc
    raise translated from exc


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` when the block exits cleanly.

    The temporary file keeps the target's suffixes (``x.h5ad`` -> ``.x.h5ad.<rand>.part.h5ad``)
    so that libraries that dispatch on extensions still work. An ``OSError`` while writing (disk
    full, permission denied, read-only file system) becomes an :class:`InputError` naming ``path``;
    nothing is left behind.
    """
    with atomic_paths(path) as temps:
        yield temps[0]


@contextlib.contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[list[Path]]:
    """Several outputs that appear together or not at all (e.g. a file and its index)."""
    targets = [Path(p) for p in paths]
    temps: list[Path] = []
    current = targets[0] if targets else Path(".")
    try:
        for target in targets:
            current = target
            _check_parent(target)
            check_output_file(target)
            suffix = ".part" + "".join(target.suffixes)
            _new_temp(target, "", suffix, folder=False, made=temps)
        current = targets[0] if targets else current
        yield temps
        for tmp, target in zip(temps, targets, strict=True):
            current = target
            os.replace(tmp, target)
    except BaseException as exc:
        translated = _fail(exc, _written(temps, targets) or current)
        _remove(temps)
        _raise(exc, translated)


def _written(temps: list[Path], targets: list[Path]) -> Path | None:
    """The target whose temporary file was written last (the likeliest to have failed)."""
    best: tuple[float, Path] | None = None
    for tmp, target in zip(temps, targets, strict=False):
        try:
            mtime = tmp.stat().st_mtime
        except OSError:
            continue
        if best is None or mtime > best[0]:
            best = (mtime, target)
    return None if best is None else best[1]


def manifest_name(owner: str) -> str:
    """The file listing what command ``owner`` wrote into a folder (replaced by its next run)."""
    return f".scregnet-{owner}.files"


def _own_files(path: Path, owner: str) -> set[str]:
    """Files (relative POSIX paths) an earlier run of ``owner`` wrote into folder ``path``."""
    manifest = path / manifest_name(owner)
    if not manifest.is_file():
        return set()
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return set()
    own = set()
    for line in lines:
        rel = line.strip()
        if rel and not rel.startswith("#") and ".." not in Path(rel).parts:
            own.add(rel)
    return own


def _files_under(root: Path) -> list[str]:
    found = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            found.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(found)


def _merge_into(tmp: Path, path: Path, owner: str, protect: Sequence[str | Path]) -> None:
    """Move the files built in ``tmp`` into the existing folder ``path``.

    Files in ``path`` that no scregnet run wrote there are kept (replaced only when this command
    writes a file of that very name); files an earlier run wrote there (listed in its manifest) and
    this run does not write are removed. Refuses, before moving anything, when a file would replace
    an input or a foreign folder stands where a file goes.
    """
    from scregnet.io.outputs import is_protected, protected_keys

    manifest = manifest_name(owner)
    new = [rel for rel in _files_under(tmp) if rel != manifest]
    old = _own_files(path, owner)
    keys = protected_keys(protect)
    for rel in new:
        dest = path / rel
        for parent in list(Path(rel).parents)[:-1]:
            where = path / parent
            if where.exists() and not where.is_dir() and parent.as_posix() not in old:
                msg = f"a file stands where this command writes the folder {parent}"
                raise InputError(msg, where)
        if dest.is_dir() and not dest.is_symlink():
            msg = "a folder stands where this command writes a file"
            raise InputError(msg, dest)
        if dest.exists() and is_protected(dest, keys):
            msg = "output would replace an input of this command; choose another output folder"
            raise InputError(msg, dest)
        if dest.exists() and rel not in old:
            log.warning(
                "replacing %s, which this command writes (not written by scregnet before)", dest
            )
    (tmp / manifest).write_text("".join(f"{rel}\n" for rel in new), encoding="utf-8")
    for rel in new:
        dest = path / rel
        for parent in reversed(list(Path(rel).parents)[:-1]):
            where = path / parent
            if where.exists() and not where.is_dir():  # an own file of an earlier run
                where.unlink()
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, dest)
    stale_files = [
        rel
        for rel in sorted(old - set(new))
        if (path / rel).is_file() and not is_protected(path / rel, keys)
    ]
    if stale_files:
        shown = ", ".join(stale_files[:5]) + (" ..." if len(stale_files) > 5 else "")
        log.warning(
            "removing %d file(s) from %s that an earlier run of this command wrote and this run "
            "does not: %s",
            len(stale_files),
            path,
            shown,
        )
    for rel in stale_files:
        (path / rel).unlink()
        for parent in Path(rel).parents:
            if parent == Path("."):
                break
            with contextlib.suppress(OSError):
                (path / parent).rmdir()  # only when empty
    os.replace(tmp / manifest, path / manifest)


@contextlib.contextmanager
def atomic_dir(
    path: str | Path, *, owner: str, protect: Sequence[str | Path] = ()
) -> Iterator[Path]:
    """Build a folder's files under a temporary name; they move to ``path`` on success.

    A new folder appears whole. Into an existing folder only this command's files are moved: files
    it did not write stay, files an earlier run of the same command (``owner``) wrote there and
    this run does not write are removed (the folder's ``.scregnet-<owner>.files`` lists them).
    ``protect`` lists the command's inputs, which are never replaced.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        msg = "output folder is an existing file"
        raise InputError(msg, path)
    _check_parent(path)
    made: list[Path] = []
    try:
        tmp = _new_temp(path, "", ".part", folder=True, made=made)
        yield tmp
        if path.exists():
            _merge_into(tmp, path, owner, protect)
        else:
            (tmp / manifest_name(owner)).write_text(
                "".join(f"{rel}\n" for rel in _files_under(tmp)), encoding="utf-8"
            )
            os.replace(tmp, path)
    except BaseException as exc:
        translated = _fail(exc, path)
        if isinstance(translated, InputError) and translated.path is not None:
            inner = Path(translated.path)
            if made and inner.is_relative_to(made[-1]):  # name the file as the user will see it
                translated = InputError(translated.message, path / inner.relative_to(made[-1]))
        _remove(made)
        _raise(exc, translated)
    finally:
        _remove(made)


def check_writable_dir(path: str | Path) -> Path:
    """Fail early, with one clear line, when an output directory cannot be created or written."""
    path = Path(path)
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        msg = f"output location is not a writable directory ({probe} is a file)"
        raise InputError(msg, path)
    if not os.access(probe, os.W_OK):
        readonly = os.statvfs(probe).f_flag & os.ST_RDONLY
        why = "read-only file system" if readonly else "permission denied"
        msg = f"output location is not a writable directory ({why})"
        raise InputError(msg, path)
    return path
