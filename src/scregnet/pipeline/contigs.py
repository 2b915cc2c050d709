"""Which contigs TF-binding prediction covers, and in which shards.

The same rule as ``workflows/scregnet.nf`` (``isMinorContig``, ``skippedContigs``,
``predictionShards``); ``tests/python/test_nextflow_shards.py`` runs the Groovy functions and
compares them with these. Minor contigs (unplaced, unlocalised, alternate, fix-patch, decoy, HLA
and EBV sequences of GRCh38/hg38, GRCm39/mm39 and Ensembl naming) are short, repeat the primary
assembly or carry no gene regulation a GRN can use; the mitochondrial genome
(:data:`scregnet.io.genome.MITOCHONDRIAL`) has no peaks, as ``scregnet fragments`` leaves it out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from scregnet.errors import InputError
from scregnet.io.genome import MITOCHONDRIAL

_MINOR = (
    re.compile(r"(?i).*(_alt|_random|_fix|_decoy|_hap\d+)$"),
    re.compile(r"(?i)^(chr)?Un([_-].*)?$"),
    re.compile(r"(?i)^(chr)?EBV$"),
    re.compile(r"^HLA-.*"),
    re.compile(r"^(GL|KI|JH|KN|KQ|KV|KZ|ML|MU)\d+(\.\d+)?$"),
    re.compile(r"(?i)^hs3\d+d\d+$|.*decoy.*"),
)
_SAFE = re.compile(r"[!-~]+")


def is_minor_contig(name: str) -> bool:
    """Whether prediction skips ``name`` by rule: a minor or a mitochondrial contig."""
    return name in MITOCHONDRIAL or any(p.fullmatch(name) for p in _MINOR)


def check_contig_names(contigs: Sequence[tuple[str, int]], fai: Path) -> None:
    """Refuse contig names that cannot be passed safely on a command line (a quote, a comma or
    white space)."""
    bad = [c for c, _ in contigs if not _SAFE.fullmatch(c) or "'" in c or "," in c]
    if bad:
        msg = (
            f"contig name(s) {' '.join(bad)} contain a quote, a comma or white space; "
            "rename them in the FASTA"
        )
        raise InputError(msg, fai)


def skipped_contigs(contigs: Sequence[tuple[str, int]], skip: Sequence[str]) -> list[str]:
    """The contigs left out of prediction (``skip`` and the minor ones), in ``.fai`` order."""
    return [c for c, _ in contigs if c in skip or is_minor_contig(c)]


def prediction_shards(
    contigs: Sequence[tuple[str, int]], skip: Sequence[str], n: int
) -> list[tuple[str, list[str]]]:
    """``(shard id, contig names)``: the kept contigs dealt into at most ``n`` groups of balanced
    total length (longest first, each to the lightest group, ties to the first); each shard keeps
    its contigs in ``.fai`` order; empty groups are dropped."""
    kept = [
        (name, int(length), i)
        for i, (name, length) in enumerate(
            (c, n_) for c, n_ in contigs if c not in skip and not is_minor_contig(c)
        )
    ]
    groups: list[list[tuple[str, int, int]]] = [[] for _ in range(max(1, min(n, len(kept))))]
    totals = [0] * len(groups)
    for contig in sorted(kept, key=lambda c: (-c[1], c[2])):
        lightest = min(range(len(groups)), key=lambda g: (totals[g], g))
        totals[lightest] += contig[1]
        groups[lightest].append(contig)
    filled = [g for g in groups if g]
    return [
        (f"shard{k + 1}", [c[0] for c in sorted(g, key=lambda c: c[2])])
        for k, g in enumerate(filled)
    ]
