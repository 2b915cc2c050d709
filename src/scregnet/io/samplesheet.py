"""The samplesheet (CSV): one row per sample, shared by ``scregnet run`` and Nextflow's ``--input``.

Columns: ``sample`` (unique id), ``bam`` (CB-tagged, coordinate-sorted, indexed) or ``fragments``
(bgzip + tabix), optional ``rna`` (counts: .h5ad, or a Cell Ranger feature-barcode matrix .h5),
optional ``view``. Relative paths are resolved against the samplesheet's own directory.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scregnet.errors import InputError
from scregnet.io.rna import RNA_SUFFIXES
from scregnet.io.text import read_text

log = logging.getLogger(__name__)

REQUIRED = ("sample",)
KNOWN = ("sample", "bam", "fragments", "rna", "view")
_SAMPLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: names the pipeline gives its own files and folders beside per-sample ones (compared ignoring
#: case): a sample named so would share a path with them ("all" names the pooled steps)
RESERVED_IDS = frozenset({"all", "shards", "model.pt"})


def check_sample_id(sid: str) -> str | None:
    """Why ``sid`` cannot be a sample id, or ``None`` when it can."""
    if not _SAMPLE_ID.match(sid):
        return "must be non-empty letters, digits, '_', '.', '-' and start with a letter or digit"
    if sid.casefold() in RESERVED_IDS:
        reserved = ", ".join(sorted(RESERVED_IDS))
        return f"is a name the pipeline gives its own files (reserved: {reserved})"
    return None


def _prefix_clash(ids: list[str]) -> tuple[str, str] | None:
    """Two ids where one is the other plus '.' and more (ignoring case), or ``None``.

    Every per-sample output is named ``<id>.<suffix>`` or ``<id>/``, so sample ``a.chr1``'s files
    could be sample ``a``'s (e.g. its chr1 shard ``a.chr1.tfbind.h5ad``).
    """
    folded = sorted((sid.casefold(), sid) for sid in ids)
    for i, (key, sid) in enumerate(folded):  # ids extending ``key`` sort right after it
        for other_key, other in folded[i + 1 :]:
            if not other_key.startswith(key):
                break
            if other_key.startswith(key + "."):
                return sid, other
    return None


@dataclass(frozen=True)
class Sample:
    sample: str
    bam: Path | None
    fragments: Path | None
    rna: Path | None
    view: str


def _resolve(value: str, base: Path) -> Path | None:
    value = value.strip()
    if not value:
        return None
    # absolute and normalised (symlinks kept: an index sits beside the name given)
    return Path(os.path.abspath(base / value))


def _check_file(
    path: Path, *, sheet: Path, row: int, column: str, suffixes: tuple[str, ...]
) -> None:
    if not path.name.endswith(suffixes):
        msg = f"row {row}: column '{column}' must end with {' or '.join(suffixes)}, got {path.name}"
        raise InputError(msg, sheet)
    if not path.exists():
        msg = f"row {row}: {column} file {path} does not exist"
        raise InputError(msg, sheet)


def read_samplesheet(path: str | Path) -> list[Sample]:
    """Read and validate a samplesheet; every problem is one :class:`InputError` naming the row."""
    path = Path(path)
    if not path.exists():
        msg = "samplesheet does not exist"
        raise InputError(msg, path)
    rows = _read_rows(path)
    if not rows:
        msg = "samplesheet has no samples"
        raise InputError(msg, path)
    seen: dict[str, str] = {}
    samples: list[Sample] = []
    for i, row in enumerate(rows, start=2):
        sid = _check_id(row.get("sample", ""), i, seen, path)
        samples.append(_sample_files(row, sid, i, path))
    clash = _prefix_clash([s.sample for s in samples])
    if clash is not None:
        short, long = clash
        msg = (
            f"sample id {long!r} is sample id {short!r} followed by '.': their files could share "
            f"a path ({long}.<suffix> is also {short}.<...>); rename one"
        )
        raise InputError(msg, path)
    _check_distinct_data(samples, path)
    return samples


def _check_distinct_data(samples: list[Sample], path: Path) -> None:
    """Two samples reading one BAM or fragments file would be the same cells under two names
    (a row copied and not edited): refused, naming both samples and the file."""
    owner: dict[Path, str] = {}
    for s in samples:
        for column, data in (("bam", s.bam), ("fragments", s.fragments)):
            if data is None:
                continue
            if data in owner:
                msg = (
                    f"samples {owner[data]!r} and {s.sample!r} read the same {column} file "
                    f"{data}: each sample needs its own"
                )
                raise InputError(msg, path)
            owner[data] = s.sample


def _read_rows(path: Path) -> list[dict[str, str]]:
    """The sheet's rows (keys and values stripped), after checking its header and field counts."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            msg = f"missing column(s): {', '.join(missing)} (header: {','.join(header) or 'empty'})"
            raise InputError(msg, path)
        _check_unknown_columns(header, path)
        if "bam" not in header and "fragments" not in header:
            msg = "needs a 'bam' or a 'fragments' column"
            raise InputError(msg, path)
        duplicated = sorted({h for h in header if header.count(h) > 1})
        if duplicated:
            msg = f"column(s) {', '.join(duplicated)} appear twice in the header"
            raise InputError(msg, path)
        rows = []
        for r in reader:
            if None in r:
                msg = f"row {reader.line_num}: {len(header) + len(r[None])} fields but the header has {len(header)}"
                raise InputError(msg, path)
            short = [k for k, v in r.items() if v is None]
            if short:
                n = len(header) - len(short)
                msg = f"row {reader.line_num}: {n} fields but the header has {len(header)}"
                raise InputError(msg, path)
            rows.append({(k or "").strip(): (v or "").strip() for k, v in r.items()})
    except csv.Error as exc:
        msg = f"not a readable CSV (line {reader.line_num}: {exc})"
        raise InputError(msg, path) from exc
    return rows


def misspelt_column(column: str, absent: Sequence[str]) -> str | None:
    """The column of ``absent`` (known, not in the header) that ``column`` misspells, or None.

    Both ``scregnet run`` and the Nextflow pipeline apply this rule: reduced to lower-case letters
    and digits, the column is the known one, with or without a final ``s``, or starts or ends
    with it (``RNA``, ``fragment``, ``views``, ``scrna``, ``bam_file``)."""
    norm = re.sub(r"[^a-z0-9]", "", column.lower())
    for known in absent:
        if norm and (
            norm in (known, known + "s", known.removesuffix("s"))
            or norm.startswith(known)
            or norm.endswith(known)
        ):
            return known
    return None


def _check_unknown_columns(header: list[str], path: Path) -> None:
    """A column that misspells one of :data:`KNOWN` the header lacks (:func:`misspelt_column`) is
    refused, naming the column meant; other extra columns (a lab's notes) are logged and ignored."""
    absent = [c for c in KNOWN if c not in header]
    ignored = []
    for column in (h for h in header if h not in KNOWN):
        meant = misspelt_column(column, absent)
        if meant is not None:
            msg = f"unknown column {column!r} (did you mean {meant!r}? columns: {', '.join(KNOWN)})"
            raise InputError(msg, path)
        ignored.append(column)
    if ignored:
        log.warning(
            "%s: column(s) %s ignored (scregnet reads %s)",
            path,
            ", ".join(ignored),
            ", ".join(KNOWN),
        )


def _check_id(sid: str, i: int, seen: dict[str, str], path: Path) -> str:
    """Check row ``i``'s sample id is valid and unique ignoring case; remember it in ``seen``."""
    problem = check_sample_id(sid)
    if problem is not None:
        msg = f"row {i}: sample id {sid!r} {problem}"
        raise InputError(msg, path)
    if sid.casefold() in seen:
        other = seen[sid.casefold()]
        same = (
            "" if other == sid else f" (same as {other!r} ignoring case: their files would collide)"
        )
        msg = f"row {i}: duplicate sample id {sid!r}{same}"
        raise InputError(msg, path)
    seen[sid.casefold()] = sid
    return sid


def _sample_files(row: dict[str, str], sid: str, i: int, path: Path) -> Sample:
    """Row ``i``'s sample with its files resolved against the sheet's folder and checked."""
    base = path.parent
    bam = _resolve(row.get("bam", ""), base)
    fragments = _resolve(row.get("fragments", ""), base)
    rna = _resolve(row.get("rna", ""), base)
    if (bam is None) == (fragments is None):
        msg = f"row {i}: give exactly one of 'bam' or 'fragments' for sample {sid!r}"
        raise InputError(msg, path)
    if bam is not None:
        _check_file(bam, sheet=path, row=i, column="bam", suffixes=(".bam",))
        if not (Path(str(bam) + ".bai").exists() or bam.with_suffix(".bai").exists()):
            msg = f"row {i}: BAM {bam} has no index (.bam.bai); run `samtools index`"
            raise InputError(msg, path)
    if fragments is not None:
        _check_file(
            fragments, sheet=path, row=i, column="fragments", suffixes=(".tsv.gz", ".bed.gz")
        )
        if not Path(str(fragments) + ".tbi").exists():
            msg = f"row {i}: fragments {fragments} has no tabix index (.tbi)"
            raise InputError(msg, path)
    if rna is not None:
        _check_file(rna, sheet=path, row=i, column="rna", suffixes=RNA_SUFFIXES)
    view = row.get("view", "")
    if view and not _SAMPLE_ID.match(view):
        # a view names cells, a command-line value and the GRN's attention_<view> column
        msg = f"row {i}: view {view!r} may contain only letters, digits, '_', '.' and '-'"
        raise InputError(msg, path)
    return Sample(sid, bam, fragments, rna, view or sid)
