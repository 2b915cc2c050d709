"""Per-cluster pseudobulk Tn5 insertion tracks (CPM-normalised bigWig).

Every fragment of a clustered cell contributes its two Tn5 insertion sites (``start`` and
``end - 1``) to its cluster. Insertions are counted in bins of ``bin_size`` bp and scaled to
counts per million insertions of that cluster: ``value = n * 1e6 / total_insertions(cluster)``.
Bins without insertions are left out of the bigWig (they read back as no data / 0).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from scregnet.errors import InputError
from scregnet.io.atomic import atomic_dir
from scregnet.io.fragments import FragmentReader, check_cells_found
from scregnet.io.genome import MITOCHONDRIAL
from scregnet.io.outputs import safe_names
from scregnet.io.tracks import write_bigwig

log = logging.getLogger(__name__)


def insertion_counts(
    fragments: str | Path,
    groups: pd.Series,
    chrom_sizes: dict[str, int],
    *,
    bin_size: int = 1,
    exclude_chroms: tuple[str, ...] = MITOCHONDRIAL,
    threads: int = 1,
) -> tuple[list[str], dict[str, list[tuple[str, np.ndarray, np.ndarray]]], np.ndarray]:
    """Per group: per chromosome (bin index, insertion count) arrays; and insertions per group.

    ``groups`` maps barcode -> group label (cells absent from it are ignored). InputError when
    every fragment of the grouped cells lies on an excluded chromosome.
    """
    labels = sorted(pd.unique(groups.astype(str)).tolist())
    code_of = {g: i for i, g in enumerate(labels)}
    barcode_group = {str(b): code_of[str(g)] for b, g in groups.items()}
    exclude = set(exclude_chroms)
    reader = FragmentReader(fragments, threads=threads, genome=chrom_sizes, exclude=exclude)
    lookup = np.zeros(0, dtype=np.int64)
    per_group: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {g: [] for g in labels}
    totals = np.zeros(len(labels), dtype=np.int64)
    pending: list[tuple[np.ndarray, np.ndarray]] = []
    current: str | None = None

    def flush() -> None:
        if current is None or not pending:
            return
        group = np.concatenate([p[0] for p in pending])
        bins = np.concatenate([p[1] for p in pending])
        pending.clear()
        n_bins = (chrom_sizes[current] + bin_size - 1) // bin_size
        # one key per (group, bin): sort-free counting via bincount when small, unique otherwise
        key = group.astype(np.int64) * n_bins + bins
        uniq, counts = np.unique(key, return_counts=True)
        g_of, b_of = np.divmod(uniq, n_bins)
        cuts = np.searchsorted(g_of, np.arange(len(labels) + 1))
        for gi, label in enumerate(labels):
            a, b = cuts[gi], cuts[gi + 1]
            if b > a:
                per_group[label].append((current, b_of[a:b], counts[a:b]))

    # fragments of the grouped cells on excluded chromosomes, and those chromosomes
    n_excluded, excluded_seen = 0, set[str]()
    for chunk in reader:
        if chunk.chrom != current:
            flush()
            current = chunk.chrom
        names = reader.barcodes.names
        if lookup.size < len(names):
            extra = np.array(
                [barcode_group.get(n, -1) for n in names[lookup.size :]], dtype=np.int64
            )
            lookup = np.concatenate([lookup, extra])
        grp = lookup[chunk.barcode]
        keep = grp >= 0
        if chunk.chrom in exclude:
            if keep.any():
                n_excluded += int(keep.sum())
                excluded_seen.add(chunk.chrom)
            continue
        if not keep.any():
            continue
        grp = grp[keep]
        size = chrom_sizes[chunk.chrom]
        sites = np.concatenate([chunk.start[keep], chunk.end[keep] - 1])
        both = np.concatenate([grp, grp])
        inside = (sites >= 0) & (sites < size)
        pending.append((both[inside], sites[inside] // bin_size))
        totals += np.bincount(both[inside], minlength=len(labels))
    flush()
    if n_excluded and not totals.any():
        msg = (
            f"all {n_excluded} fragments of the clustered cells lie on excluded chromosome(s) "
            f"{', '.join(sorted(excluded_seen))} (--exclude-chroms): nothing left for the tracks"
        )
        raise InputError(msg, fragments)
    return labels, per_group, totals


def write_cluster_tracks(
    fragments: str | Path,
    groups: pd.Series,
    chrom_sizes: dict[str, int],
    outdir: str | Path,
    *,
    bin_size: int = 1,
    exclude_chroms: tuple[str, ...] = MITOCHONDRIAL,
    threads: int = 1,
    protect: Sequence[str | Path] = (),
) -> dict[str, Path]:
    """Write ``outdir/<cluster>.bw`` for every group; the directory appears complete or not at all.

    Files in an existing ``outdir`` that this command did not write are kept; ``protect`` (the
    command's inputs, besides ``fragments``) are never replaced.
    """
    began = time.perf_counter()
    labels, per_group, totals = insertion_counts(
        fragments,
        groups,
        chrom_sizes,
        bin_size=bin_size,
        exclude_chroms=exclude_chroms,
        threads=threads,
    )
    check_cells_found(bool(totals.any()), fragments)
    outdir = Path(outdir)
    written: dict[str, Path] = {}
    names = dict(zip(labels, safe_names(list(labels), outdir), strict=True))
    with atomic_dir(outdir, owner="tracks", protect=[fragments, *protect]) as tmp:
        for gi, label in enumerate(labels):
            scale = 1e6 / max(int(totals[gi]), 1)
            order = {c: i for i, c in enumerate(chrom_sizes)}
            runs = sorted(per_group[label], key=lambda r: order[r[0]])

            def entries(
                runs: list[tuple[str, np.ndarray, np.ndarray]] = runs, scale: float = scale
            ) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
                for chrom, bins, counts in runs:
                    starts = bins * bin_size
                    ends = np.minimum(starts + bin_size, chrom_sizes[chrom])
                    yield chrom, starts, ends, counts * scale

            path = tmp / f"{names[label]}.bw"
            write_bigwig(path, chrom_sizes, entries())
            written[label] = outdir / path.name
    log.info(
        "wrote %d cluster tracks to %s (%s insertions, bin %d bp) in %.1f s",
        len(written),
        outdir,
        ", ".join(f"{lab}: {int(t)}" for lab, t in zip(labels, totals, strict=True)),
        bin_size,
        time.perf_counter() - began,
    )
    return written
