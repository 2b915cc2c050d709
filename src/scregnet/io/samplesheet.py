"""The samplesheet (CSV): one row per sample, shared by ``scregnet run`` and Nextflow's ``--input``.

Columns: ``sample`` (unique id), ``bam`` (CB-tagged, coordinate-sorted, indexed) or ``fragments``
(bgzip + tabix), optional ``rna`` (counts .h5ad), optional ``view``. Relative paths are resolved
against the samplesheet's own directory.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from scregnet.errors import InputError

REQUIRED = ("sample",)
KNOWN = ("sample", "bam", "fragments", "rna", "view")
_SAMPLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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
    path = Path(value)
    return path if path.is_absolute() else (base / path)


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
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            msg = f"missing column(s): {', '.join(missing)} (header: {','.join(header) or 'empty'})"
            raise InputError(msg, path)
        if "bam" not in header and "fragments" not in header:
            msg = "needs a 'bam' or a 'fragments' column"
            raise InputError(msg, path)
        rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    if not rows:
        msg = "samplesheet has no samples"
        raise InputError(msg, path)
    base = path.parent
    seen: set[str] = set()
    samples: list[Sample] = []
    for i, row in enumerate(rows, start=2):
        sid = row.get("sample", "")
        if not _SAMPLE_ID.match(sid):
            msg = f"row {i}: sample id {sid!r} must be non-empty letters, digits, '_', '.', '-'"
            raise InputError(msg, path)
        if sid in seen:
            msg = f"row {i}: duplicate sample id {sid!r}"
            raise InputError(msg, path)
        seen.add(sid)
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
            _check_file(rna, sheet=path, row=i, column="rna", suffixes=(".h5ad",))
        samples.append(Sample(sid, bam, fragments, rna, row.get("view", "") or sid))
    return samples
