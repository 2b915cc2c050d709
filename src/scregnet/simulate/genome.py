"""The random genome (FASTA + .fai) and its genes (GTF)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scregnet.io.atomic import atomic_path, atomic_paths

CHRM_LENGTH = 16_569  # the human mitochondrial genome's length
BACKGROUND_GC = 0.40
PROMOTER_GC = 0.60  # CpG-island-like promoters
PROMOTER_GC_HALFWIDTH = 500
_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


@dataclass
class Genome:
    """Chromosome sequences as ASCII ``uint8`` arrays (upper case), autosomes first, chrM last."""

    sequences: dict[str, np.ndarray]

    @property
    def sizes(self) -> dict[str, int]:
        return {name: int(seq.size) for name, seq in self.sequences.items()}

    @property
    def autosomes(self) -> list[str]:
        return [c for c in self.sequences if c != "chrM"]


def random_sequence(rng: np.random.Generator, n: int, gc: float) -> np.ndarray:
    """``n`` i.i.d. bases with GC fraction ``gc`` (ASCII codes)."""
    p = np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])
    return _BASES[rng.choice(4, size=n, p=p)]


def random_genome(rng: np.random.Generator, n_chromosomes: int, length: int) -> Genome:
    """Autosomes ``chr1..chrN`` of ``length`` bp with ~40 % GC, plus a 16,569 bp chrM (44 % GC)."""
    seqs = {
        f"chr{i}": random_sequence(rng, length, BACKGROUND_GC) for i in range(1, n_chromosomes + 1)
    }
    seqs["chrM"] = random_sequence(rng, CHRM_LENGTH, 0.44)
    return Genome(seqs)


def place_genes(
    rng: np.random.Generator,
    genome: Genome,
    names: list[str],
    *,
    min_spacing: int = 5_000,
    margin: int = 10_000,
) -> pd.DataFrame:
    """Spread genes over the autosomes with TSSs at least ``min_spacing`` apart.

    Returns one row per gene: ``gene_id, gene_name, chrom, start, end, strand, tss`` (0-based,
    half-open ``start/end``; ``tss`` 0-based) plus ``exons`` (list of (start, end)), sorted by position.
    """
    chroms = genome.autosomes
    n = len(names)
    per_chrom = np.full(len(chroms), n // len(chroms))
    per_chrom[: n % len(chroms)] += 1
    rows = []
    for chrom, k in zip(chroms, per_chrom, strict=True):
        length = genome.sequences[chrom].size
        free = length - 2 * margin - k * min_spacing
        if free <= 0:
            msg = f"{k} genes do not fit on {chrom} ({length} bp)"
            raise ValueError(msg)
        extra = rng.dirichlet(np.ones(k + 1))[:k] * free
        tss = margin + np.cumsum(min_spacing + extra).astype(np.int64) - min_spacing // 2
        for t in tss:
            strand = "+" if rng.random() < 0.5 else "-"
            glen = int(np.clip(rng.lognormal(np.log(8_000), 0.7), 1_500, 60_000))
            if strand == "+":
                start, end = int(t), min(int(t) + glen, length - 1)
            else:
                start, end = max(int(t) + 1 - glen, 1), int(t) + 1
            n_exons = int(rng.integers(2, 6))
            rows.append((chrom, start, end, strand, int(t), _exons(rng, start, end, n_exons)))
    order = rng.permutation(n)  # which name goes where
    frame = pd.DataFrame(rows, columns=["chrom", "start", "end", "strand", "tss", "exons"])
    frame.insert(0, "gene_name", [names[i] for i in order])
    frame.insert(0, "gene_id", [f"SIMG{i + 1:05d}" for i in range(n)])
    return frame


def _exons(rng: np.random.Generator, start: int, end: int, n: int) -> list[tuple[int, int]]:
    """``n`` non-overlapping exons covering the transcript's first and last base."""
    span = end - start
    sizes = rng.integers(80, 400, size=n)
    sizes = np.minimum(sizes, max(span // (2 * n), 20))
    inner = (
        np.sort(rng.choice(np.arange(1, max(span - sizes.max(), 2)), size=n - 2, replace=False))
        if n > 2
        else np.array([], dtype=np.int64)
    )
    starts = np.concatenate([[start], start + inner, [end - sizes[-1]]])
    exons = [(int(s), int(min(s + z, end))) for s, z in zip(starts, sizes, strict=True)]
    merged: list[tuple[int, int]] = []
    for s, e in exons:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def enrich_promoter_gc(rng: np.random.Generator, genome: Genome, genes: pd.DataFrame) -> None:
    """Give each promoter (TSS +- 500 bp) a CpG-island-like 60 % GC content, in place."""
    for chrom, tss in zip(genes.chrom, genes.tss, strict=True):
        seq = genome.sequences[chrom]
        lo, hi = max(tss - PROMOTER_GC_HALFWIDTH, 0), min(tss + PROMOTER_GC_HALFWIDTH, seq.size)
        seq[lo:hi] = random_sequence(rng, hi - lo, PROMOTER_GC)


def write_fasta(genome: Genome, path: str | Path, *, width: int = 60) -> Path:
    """Write the genome as FASTA (``width`` bases per line) with its ``.fai`` index beside it."""
    path = Path(path)
    fai_rows = []
    offset = 0
    with atomic_paths(path, str(path) + ".fai") as (tmp, tmp_fai):
        with open(tmp, "wb") as handle:
            for name, seq in genome.sequences.items():
                header = f">{name}\n".encode()
                handle.write(header)
                offset += len(header)
                n = seq.size
                full = n // width
                body = seq[: full * width].reshape(full, width)
                body = np.concatenate([body, np.full((full, 1), ord("\n"), dtype=np.uint8)], axis=1)
                handle.write(body.tobytes())
                tail = seq[full * width :]
                if tail.size:
                    handle.write(tail.tobytes() + b"\n")
                fai_rows.append(f"{name}\t{n}\t{offset}\t{width}\t{width + 1}\n")
                offset += full * (width + 1) + (tail.size + 1 if tail.size else 0)
        Path(tmp_fai).write_text("".join(fai_rows))
    return path


def _records(frame: pd.DataFrame) -> list[Any]:
    """Rows as attribute-access records (typed ``Any`` for the type checker)."""
    return list(frame.itertuples(index=False))


def write_gtf(genes: pd.DataFrame, path: str | Path) -> Path:
    """Write genes as GTF (1-based closed coordinates): gene, transcript and exon records."""
    lines = ["#!genome-build scregnet-simulated", "#!annotation-source scregnet simulate"]
    order = genes.assign(_chrom_no=genes.chrom.str[3:].astype(int)).sort_values(
        ["_chrom_no", "start"]
    )
    for g in _records(order):
        gid, name, tid = g.gene_id, g.gene_name, f"{g.gene_id}.T1"
        base = f'gene_id "{gid}"; gene_name "{name}"; gene_biotype "protein_coding";'
        tattr = f'{base} transcript_id "{tid}"; transcript_name "{name}-201";'
        lines.append(f"{g.chrom}\tscregnet\tgene\t{g.start + 1}\t{g.end}\t.\t{g.strand}\t.\t{base}")
        lines.append(
            f"{g.chrom}\tscregnet\ttranscript\t{g.start + 1}\t{g.end}\t.\t{g.strand}\t.\t{tattr}"
        )
        exons = g.exons if g.strand == "+" else g.exons[::-1]
        for k, (s, e) in enumerate(exons, 1):
            lines.append(
                f'{g.chrom}\tscregnet\texon\t{s + 1}\t{e}\t.\t{g.strand}\t.\t{tattr} exon_number "{k}";'
            )
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return Path(path)
