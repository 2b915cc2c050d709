"""BED intervals (peaks, ChIP peaks): validated reading and atomic writing."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from scregnet.errors import InputError
from scregnet.io.text import reading


def read_bed(path: str | Path, *, min_fields: int = 3, allow_empty: bool = False) -> pd.DataFrame:
    """Read a BED/narrowPeak file (plain or gzipped) into ``chrom, start, end, name?...``.

    Validates that ``end > start >= 0`` on every line and that the file is not empty.
    Columns beyond the third keep their BED names when present (``name``, ``score``, ``strand``).
    """
    path = Path(path)
    if not path.exists():
        msg = "BED file does not exist"
        raise InputError(msg, path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with reading(path), opener(path, "rt") as handle:
            numbered = [
                (lineno, line.rstrip("\n").split("\t"))
                for lineno, line in enumerate(handle, 1)
                if line.strip() and not line.startswith(("#", "track", "browser"))
            ]
    except (OSError, EOFError) as exc:
        msg = f"cannot read BED file ({exc})"
        raise InputError(msg, path) from exc
    linenos = [n for n, _ in numbered]
    rows = [r for _, r in numbered]
    if not rows:
        if allow_empty:
            return pd.DataFrame(
                {
                    "chrom": pd.Series(dtype=str),
                    "start": pd.Series(dtype=np.int64),
                    "end": pd.Series(dtype=np.int64),
                }
            )
        msg = "BED file has no intervals"
        raise InputError(msg, path)
    width = min(len(r) for r in rows)
    if width < min_fields:
        msg = f"BED lines need at least {min_fields} tab-separated fields"
        raise InputError(msg, path)
    names = ["chrom", "start", "end", "name", "score", "strand"][:width]
    names += [f"col{i}" for i in range(len(names), width)]
    frame = pd.DataFrame([r[:width] for r in rows], columns=names)
    for column in ("start", "end"):
        try:
            frame[column] = frame[column].astype(np.int64)
        except (ValueError, OverflowError) as exc:
            i, problem = next(
                (i, p) for i, v in enumerate(frame[column]) if (p := _int64_problem(v))
            )
            msg = f"line {linenos[i]}: {column} {frame[column][i]!r} {problem}"
            raise InputError(msg, path) from exc
    bad = np.flatnonzero(
        (frame["end"].to_numpy() <= frame["start"].to_numpy()) | (frame["start"].to_numpy() < 0)
    )
    if bad.size:
        i = int(bad[0])
        msg = f"line {linenos[i]}: interval {frame.chrom[i]}:{frame.start[i]}-{frame.end[i]} has end <= start or a negative start"
        raise InputError(msg, path)
    return frame


def _int64_problem(text: str) -> str | None:
    """Why ``text`` is not an int64 position, or None when it is one."""
    try:
        value = int(text)
    except ValueError:
        return "is not an integer"
    if not np.iinfo(np.int64).min <= value <= np.iinfo(np.int64).max:
        return "is too large for a position"
    return None


def check_within_bounds(
    frame: pd.DataFrame, chrom_sizes: dict[str, int], *, path: str | Path
) -> None:
    """Every interval must lie inside its chromosome."""
    sizes = frame["chrom"].map(chrom_sizes)
    bad = np.flatnonzero(
        sizes.isna().to_numpy() | (frame["end"].to_numpy() > sizes.fillna(0).to_numpy())
    )
    if bad.size:
        i = int(bad[0])
        msg = (
            f"{bad.size} interval(s) lie outside the chromosome bounds "
            f"(e.g. {frame.chrom.iloc[i]}:{frame.start.iloc[i]}-{frame.end.iloc[i]})"
        )
        raise InputError(msg, path)
