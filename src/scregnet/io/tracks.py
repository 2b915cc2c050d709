"""bigWig tracks (pyBigWig): atomic writing of per-base or binned signal, interval reading."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from scregnet.errors import InputError
from scregnet.io.atomic import atomic_path


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

    with atomic_path(path) as tmp:
        bw = pyBigWig.open(str(tmp), "w")
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


def runs_from_dense(
    values: np.ndarray, *, skip_zero: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-length encode a per-base signal into bedGraph-like ``starts, ends, values``."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    change = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [values.size]])
    vals = values[starts]
    if skip_zero:
        keep = vals != 0
        starts, ends, vals = starts[keep], ends[keep], vals[keep]
    return starts.astype(np.int64), ends.astype(np.int64), vals


def open_bigwig(path: str | Path) -> Any:
    """Open a bigWig for reading; a missing or invalid file is an :class:`InputError`."""
    import pyBigWig

    path = Path(path)
    if not path.exists():
        msg = "bigWig does not exist"
        raise InputError(msg, path)
    try:
        bw = pyBigWig.open(str(path))
    except (RuntimeError, OSError) as exc:
        msg = "not a readable bigWig file"
        raise InputError(msg, path) from exc
    if bw is None or not bw.isBigWig():
        msg = "not a bigWig file"
        raise InputError(msg, path)
    return bw
