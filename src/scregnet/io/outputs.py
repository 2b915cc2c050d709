"""Up-front checks that a command's outputs cannot destroy its inputs, and clear write errors.

Every subcommand calls :func:`check_paths` with the files it reads and the files and folders it
writes, before doing any work. Paths are compared after resolving symlinks (and by inode when both
exist, so hard links count too); an input's index files (``.bai``, ``.tbi``, ``.fai``, ``.csi``)
count as inputs. Output folders are written by :func:`scregnet.io.atomic.atomic_dir`, which keeps
the files in them that the command did not write.

:func:`write_error` turns an ``OSError`` met while writing (disk full, permission denied, read-only
file system) into an :class:`InputError` naming the path and the reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from scregnet.errors import InputError

#: index files that sit beside an input and are read with it
SIDECARS = (".bai", ".tbi", ".csi", ".fai", ".gzi", ".crai")

#: errno values that mean "this location cannot be written", not a bug
WRITE_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.EFBIG,
        errno.EIO,
        errno.ENAMETOOLONG,
        errno.ENOTDIR,
        errno.EISDIR,
    }
)

PathLike = str | Path
MaybePaths = PathLike | None | Iterable[PathLike | None]


def _flatten(items: Iterable[MaybePaths]) -> list[Path]:
    out: list[Path] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, str | Path):
            out.append(Path(item))
        else:
            out.extend(Path(p) for p in item if p is not None)
    return out


def _key(path: Path) -> tuple[str, tuple[int, int] | None]:
    """The resolved path, and (device, inode) when the file exists."""
    resolved = os.path.realpath(path)
    try:
        st = os.stat(resolved)
    except OSError:
        return resolved, None
    return resolved, (st.st_dev, st.st_ino)


def _same(a: tuple[str, tuple[int, int] | None], b: tuple[str, tuple[int, int] | None]) -> bool:
    if a[1] is not None and b[1] is not None:
        return a[1] == b[1]
    return os.path.normcase(a[0]) == os.path.normcase(b[0])


def _with_sidecars(inputs: list[Path]) -> list[tuple[Path, Path]]:
    """(input as given, file read) pairs, the file read being the input or one of its indexes."""
    pairs = [(p, p) for p in inputs]
    for p in inputs:
        if not p.name or p.is_dir():
            continue
        for suffix in SIDECARS:
            for side in (Path(str(p) + suffix), p.with_suffix(suffix)):
                if side != p and side.is_file():
                    pairs.append((p, side))
    return pairs


def sample_files(folder: Path, suffix: str) -> dict[str, Path]:
    """``sample -> path`` of the files ``<folder>/<sample><suffix>`` (a stage's results,
    :data:`scregnet.keys.SAMPLE_RESULTS`), in name order; empty when the folder is absent."""
    return {p.name[: -len(suffix)]: p for p in sorted(Path(folder).glob(f"*{suffix}"))}


def check_output_file(path: str | Path) -> None:
    """Refuse an output path that exists and is not a regular file (a device such as /dev/null, a
    named pipe, a socket): outputs are written whole to a temporary file that then takes the
    path's place, which would replace the device or pipe with a file."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # absent (or unreachable: the write names the problem)
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = "a named pipe" if stat.S_ISFIFO(mode) else "a device or socket"
        msg = (
            f"output is {kind}, not a regular file: scregnet writes each output whole and "
            "would replace it; give a file path"
        )
        raise InputError(msg, path)


def check_paths(
    *,
    inputs: Iterable[MaybePaths] = (),
    outputs: Iterable[MaybePaths] = (),
    outdirs: Iterable[MaybePaths] = (),
    distinct: Iterable[MaybePaths] = (),
) -> None:
    """Refuse, before any work, outputs that would replace an input or each other.

    ``inputs`` are files (or folders) the command reads, ``outputs`` files it writes and
    ``outdirs`` folders it writes into; ``distinct`` are further inputs that must be different
    files (e.g. shards to merge). Raises :class:`InputError` naming the path when: an output is
    the same file as an input (or one of its index files) or as another output; a ``distinct``
    input is given twice; an output file is an existing folder, a device or a pipe, or an output
    folder an existing file; an output folder is an input folder.
    """
    unique = _flatten(distinct)
    ins = [*_flatten(inputs), *unique]
    outs = _flatten(outputs)
    dirs = _flatten(outdirs)
    seen: list[tuple[Path, tuple[str, tuple[int, int] | None]]] = []
    for path in unique:
        key = _key(path)
        for other, other_key in seen:
            if _same(key, other_key):
                msg = f"given twice (also as {other})" if str(other) != str(path) else "given twice"
                raise InputError(msg, path)
        seen.append((path, key))
    read = [(given, _key(file)) for given, file in _with_sidecars(ins)]
    written: list[tuple[Path, tuple[str, tuple[int, int] | None]]] = []
    for path in outs:
        if path.is_dir():
            msg = "output file is an existing folder"
            raise InputError(msg, path)
        check_output_file(path)
    for path in dirs:
        if path.exists() and not path.is_dir():
            msg = "output folder is an existing file"
            raise InputError(msg, path)
    for path in [*outs, *dirs]:
        key = _key(path)
        for given, in_key in read:
            if _same(key, in_key):
                what = "" if in_key[0] == os.path.realpath(given) else f" (index of {given})"
                msg = f"output is the same file as input {given}{what}; choose another output path"
                raise InputError(msg, path)
        for other, other_key in written:
            if _same(key, other_key):
                msg = f"two outputs would be written to the same path (also {other})"
                raise InputError(msg, path)
        written.append((path, key))


def files_under(
    folder: str | Path, *, suffixes: tuple[str, ...] = (), exclude: tuple[str, ...] = ()
) -> list[Path]:
    """Files in ``folder`` (recursively) ending in one of ``suffixes`` (any when empty), except
    those named in ``exclude``: the inputs of a command that reads a whole folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.name.endswith(suffixes or ("",)) and p.name not in exclude
    )


def protected_keys(inputs: Iterable[MaybePaths]) -> list[tuple[str, tuple[int, int] | None]]:
    """Identity keys of inputs (and their index files) for :func:`is_protected`."""
    return [_key(file) for _, file in _with_sidecars(_flatten(inputs))]


def is_protected(path: Path, keys: list[tuple[str, tuple[int, int] | None]]) -> bool:
    """Whether ``path`` is the same file as one in ``keys``."""
    key = _key(path)
    return any(_same(key, k) for k in keys)


_H5_ERRNO = re.compile(r"errno = (\d+)")


def _reason(exc: BaseException, where: Path) -> str | None:
    """Why writing failed, in words, or ``None`` when the error is not about writing."""
    code = getattr(exc, "errno", None)
    if code is None:  # h5py and others put the C errno in the message
        found = _H5_ERRNO.search(str(exc))
        code = int(found.group(1)) if found else None
    if code in WRITE_ERRNOS:
        return os.strerror(code)
    probe = where if where.is_dir() else where.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return os.strerror(errno.EROFS)
    if st.f_bavail * st.f_frsize < 1 << 20 or (st.f_files and st.f_favail == 0):
        return os.strerror(errno.ENOSPC)
    if not os.access(probe, os.W_OK):
        return os.strerror(errno.EACCES)
    return None


def write_error(exc: BaseException, path: str | Path) -> InputError | None:
    """An :class:`InputError` naming ``path`` (or the file the error names) and why it could not be
    written, or ``None`` when ``exc`` is not a write failure (then it is re-raised as it is)."""
    if isinstance(exc, InputError):
        return None
    if not isinstance(exc, OSError | RuntimeError | ValueError):
        return None
    path = Path(path)
    reason = _reason(exc, path)
    if reason is None:
        return None
    named = getattr(exc, "filename", None)
    if isinstance(named, str) and named and ".part" not in Path(named).name:
        if Path(named) != path and not Path(named).is_relative_to(path):
            return InputError(reason, named)  # another file (an input read on the way)
    # a temporary name is an implementation detail: name the file the user asked for
    return InputError(f"cannot write ({reason})", path)


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Work that writes ``path`` (or temporary files beside it): a write failure becomes an
    :class:`InputError` naming ``path``; any other error passes unchanged."""
    try:
        yield
    except Exception as exc:
        translated = write_error(exc, path)
        if translated is None:
            raise
        raise translated from exc


def os_problem(exc: BaseException) -> str | None:
    """``path: reason`` for an ``OSError`` about a named file (full disk, no permission, ...) that
    reached the command line without being translated; ``None`` for anything else."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    named = exc.filename
    if not named:
        return None
    if exc.errno not in WRITE_ERRNOS | {errno.ENOENT, errno.EEXIST}:
        return None
    return f"{os.fsdecode(named)}: {exc.strerror or os.strerror(exc.errno)}"


def safe_name(label: str) -> str:
    """A file-name-safe version of a cluster label: letters, digits, ``.``, ``_`` and ``-``, not
    starting with ``.`` (no hidden file, no ``..``)."""
    return re.sub(r"^\.", "_", re.sub(r"[^A-Za-z0-9._-]", "_", str(label))) or "_"


def safe_names(labels: Sequence[str], where: str | Path) -> list[str]:
    """:func:`safe_name` of each label; two labels that give one name (ignoring case, as some file
    systems do) are an :class:`InputError` naming them and ``where``."""
    names = [safe_name(label) for label in labels]
    first: dict[str, str] = {}
    for label, name in zip(labels, names, strict=True):
        other = first.setdefault(name.casefold(), str(label))
        if other != str(label):
            msg = (
                f"cluster labels {other!r} and {str(label)!r} give the same file name "
                f"({name}); relabel one"
            )
            raise InputError(msg, where)
    return names
