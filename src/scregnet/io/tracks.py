"""bigWig tracks (pyBigWig): atomic writing of per-base or binned signal, interval reading."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from scregnet.errors import InputError
from scregnet.io.atomic import atomic_path
from scregnet.io.quiet import quiet_stderr


@contextlib.contextmanager
def _bigwig_target(path: str | Path) -> Iterator[str]:
    """A scratch file for libBigWig, copied to ``path`` (atomically) when the block succeeds.

    libBigWig aborts the whole process when a write fails while it closes a file (a full disk),
    so it writes in the system's temporary folder and Python copies the result into place, where
    a failure is an ordinary error naming ``path``.
    """
    with atomic_path(path) as tmp, tempfile.TemporaryDirectory(prefix="scregnet-bigwig.") as d:
        scratch = Path(d) / "track.bw"
        yield str(scratch)
        try:
            shutil.copyfile(scratch, tmp)
        except OSError as exc:
            msg = f"cannot write ({exc.strerror})"
            raise InputError(msg, path) from exc


def write_bigwig(
    path: str | Path,
    chrom_sizes: dict[str, int],
    tracks: Iterable[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
) -> Path:
    """Write a bigWig from ``(chrom, starts, ends, values)`` runs, chromosome by chromosome.

    ``chrom_sizes`` sets the header order; ``tracks`` must follow that order with sorted,
    non-overlapping intervals. Zero-valued runs may be omitted.
    """
    import pyBigWig

    with _bigwig_target(path) as target:
        bw = pyBigWig.open(target, "w")
        try:
            bw.addHeader(list(chrom_sizes.items()), maxZooms=10)
            for chrom, starts, ends, values in tracks:
                if len(starts) == 0:
                    continue
                bw.addEntries(
                    [chrom] * len(starts),
                    np.asarray(starts, dtype=np.int64).tolist(),
                    ends=np.asarray(ends, dtype=np.int64).tolist(),
                    values=np.asarray(values, dtype=np.float64).tolist(),
                )
        finally:
            bw.close()
    return Path(path)


def write_bigwig_binned(
    path: str | Path,
    chrom_sizes: dict[str, int],
    tracks: Iterable[tuple[str, np.ndarray]],
    *,
    bin_size: int,
) -> Path:
    """Write a bigWig of fixed-width bins (``fixedStep``): ``(chrom, values)`` per chromosome.

    ``values[i]`` covers ``[i * bin_size, (i + 1) * bin_size)`` (the last bin is clipped to the
    chromosome end); chromosomes must follow ``chrom_sizes`` order. Much faster and smaller than
    ``write_bigwig`` for dense genome-wide signal.
    """
    import pyBigWig

    with _bigwig_target(path) as target:
        bw = pyBigWig.open(target, "w")
        try:
            bw.addHeader(list(chrom_sizes.items()), maxZooms=10)
            for chrom, values in tracks:
                size = chrom_sizes[chrom]
                n_full = size // bin_size
                vals = np.asarray(values, dtype=np.float64)
                if vals.size != -(-size // bin_size):
                    msg = f"{chrom}: expected {-(-size // bin_size)} bins of {bin_size} bp, got {vals.size}"
                    raise ValueError(msg)
                if n_full:
                    bw.addEntries(chrom, 0, values=vals[:n_full], span=bin_size, step=bin_size)
                if vals.size > n_full:  # a last, partial bin
                    bw.addEntries(
                        [chrom], [n_full * bin_size], ends=[size], values=[float(vals[-1])]
                    )
        finally:
            bw.close()
    return Path(path)


def open_bigwig(path: str | Path) -> Any:
    """Open a bigWig for reading; a missing or invalid file is an :class:`InputError`."""
    import pyBigWig

    path = Path(path)
    if not path.exists():
        msg = "bigWig does not exist"
        raise InputError(msg, path)
    try:
        with quiet_stderr():  # libBigWig prints its own errors
            bw = pyBigWig.open(str(path))
    except (RuntimeError, OSError) as exc:
        msg = "not a readable bigWig file"
        raise InputError(msg, path) from exc
    if bw is None or not bw.isBigWig():
        msg = "not a bigWig file"
        raise InputError(msg, path)
    return bw
