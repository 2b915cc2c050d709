"""Gene annotation (GTF): one TSS per gene."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pandas as pd

from scregnet.errors import InputError
from scregnet.io.text import reading

_ATTR = re.compile(r'(\S+) "([^"]*)"')


def read_tss(path: str | Path) -> pd.DataFrame:
    """Genes and their TSS from a GTF: ``gene_id, gene_name, chrom, tss, strand``.

    Uses ``gene`` records when present, else the outermost transcript start per gene
    (5' end: ``start`` on ``+``, ``end`` on ``-``). ``tss`` is 0-based.
    """
    path = Path(path)
    if not path.exists():
        msg = "GTF does not exist"
        raise InputError(msg, path)
    opener = gzip.open if path.name.endswith(".gz") else open
    records: list[tuple[str, str, str, int, str, str]] = []
    with reading(path), opener(path, "rt") as handle:
        for number, line in enumerate(handle, start=1):
            if line.startswith("#") or not line.strip():
                continue
            f = line.rstrip("\r\n").split("\t")
            if len(f) < 9:
                msg = f"line {number}: GTF lines need 9 tab-separated fields, found {len(f)}"
                raise InputError(msg, path)
            if f[2] not in {"gene", "transcript"}:
                continue
            attrs = dict(_ATTR.findall(f[8]))
            gid = attrs.get("gene_id")
            if gid is None:
                continue
            bad = next((c for c in (f[3], f[4]) if not c.strip().isdigit()), None)
            if bad is not None:
                which = "start" if bad is f[3] else "end"
                msg = f"line {number}: {which} {bad!r} is not a whole number"
                raise InputError(msg, path)
            start0, end = int(f[3]) - 1, int(f[4])
            tss = start0 if f[6] != "-" else end - 1
            records.append((gid, attrs.get("gene_name") or gid, f[0], tss, f[6], f[2]))
    if not records:
        msg = "GTF has no gene or transcript records"
        raise InputError(msg, path)
    frame = pd.DataFrame(
        records, columns=["gene_id", "gene_name", "chrom", "tss", "strand", "feature"]
    )
    if (frame.feature == "gene").any():
        frame = frame[frame.feature == "gene"]
    else:  # outermost transcript 5' end
        plus = (
            frame[frame.strand != "-"]
            .groupby("gene_id", sort=False)
            .agg(
                gene_name=("gene_name", "first"),
                chrom=("chrom", "first"),
                tss=("tss", "min"),
                strand=("strand", "first"),
            )
        )
        minus = (
            frame[frame.strand == "-"]
            .groupby("gene_id", sort=False)
            .agg(
                gene_name=("gene_name", "first"),
                chrom=("chrom", "first"),
                tss=("tss", "max"),
                strand=("strand", "first"),
            )
        )
        frame = pd.concat([plus, minus]).reset_index()
    return frame.loc[:, ["gene_id", "gene_name", "chrom", "tss", "strand"]].reset_index(drop=True)
