"""Reading tab-separated tables (truth tables, GRN rankings, loss tables): every problem with a
file is one :class:`InputError` naming it."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from scregnet.errors import InputError
from scregnet.io.text import reading


def read_table(path: Path, columns: Sequence[str] = (), **options: Any) -> pd.DataFrame:
    """The table ``path`` (gzip-compressed when its name ends in ``.gz``) with at least ``columns``.

    ``options`` go to :func:`pandas.read_csv`. An unreadable, empty, truncated, malformed or
    non-UTF-8 file, or a missing column, is an :class:`InputError` naming ``path``.
    """
    try:
        with reading(path):
            frame = pd.read_csv(path, sep="\t", **options)
    except pd.errors.EmptyDataError as exc:
        msg = "file is empty"
        raise InputError(msg, path) from exc
    except (OSError, EOFError, zlib.error) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        msg = f"cannot read ({why or type(exc).__name__})"
        raise InputError(msg, path) from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        msg = f"missing column(s) {', '.join(missing)}"
        raise InputError(msg, path)
    return frame


def check_numbers(frame: pd.DataFrame, column: str, path: Path) -> None:
    """An :class:`InputError` naming ``path`` when a value of ``column`` is missing, NaN or not a
    number (the message gives its data row, 1 being the row below the header)."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna().to_numpy().nonzero()[0]
    if bad.size:
        row = int(bad[0])
        value = frame[column].iloc[row]
        what = "is missing or NaN" if pd.isna(value) else f"is not a number ({str(value)!r})"
        msg = f"{column} on data row {row + 1} {what}"
        raise InputError(msg, path)


def read_ranking(path: Path, columns: Sequence[str] = ("tf", "target", "score")) -> pd.DataFrame:
    """A GRN ranking (``grn_edges.tsv``) with at least ``columns``; every score is a number, and
    an uncompressed file cut inside its last row is refused (:func:`check_last_row`)."""
    frame = read_table(path, columns, dtype={"tf": str, "target": str})
    check_last_row(path, len(frame.columns), len(frame))
    check_numbers(frame, "score", path)
    return frame


def check_last_row(path: Path, n_columns: int, n_rows: int) -> None:
    """An :class:`InputError` when ``path`` (uncompressed) does not end with a line break and its
    last line has fewer fields than the header: a copy or a write cut short. Compressed files are
    checked by the decompressor (a cut stream is an error)."""
    if str(path).endswith(".gz") or n_rows == 0:
        return
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - 65536))
        tail = handle.read()
    if tail.endswith(b"\n"):
        return
    fields = tail.rsplit(b"\n", 1)[-1].count(b"\t") + 1
    if fields < n_columns:
        msg = (
            f"data row {n_rows} has {fields} field(s), the header {n_columns}, and the file ends "
            "inside it (cut short?)"
        )
        raise InputError(msg, path)
