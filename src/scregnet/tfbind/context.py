"""Sample-level TF-activity context: a rank-based motif-accessibility score per (sample, TF).

Our extension of scFAN (not in the paper). One window cannot tell whether a TF is active in the
cell type it comes from, yet binding needs the TF to be active. The model therefore also sees, for
each TF, how much more accessible the regions carrying that TF's motif are than the sample's other
regions: the Mann-Whitney AUC of the regions' accessibility (motif regions vs the rest) minus 0.5.
It is computed from inputs only, the same way in training and prediction:

- training: each bulk cell type's bigWig over *candidate regions*, the merged bins whose signal
  reaches ``region_fold`` x the track's genome-wide mean in at least one bulk track (a peak set
  of the bulk samples);
- prediction: each cluster's pseudobulk (or each cell's pool over its k nearest LSI neighbours)
  over the sample's peaks.

Accessibility is a per-bp density (signal mean, or reads / peak length) and only its ranks within
one sample count, so neither sequencing depth nor bulk-vs-pseudobulk scale changes the score. A
region carries a motif when its best match is among the top ``motif_top`` share of all regions
(per motif), which adapts to motif length and to the region set's size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.stats import rankdata

from scregnet.tfbind.motifs import MotifScanner

log = logging.getLogger(__name__)

#: share of regions counted as carrying a motif (top best-match scores, per motif)
MOTIF_TOP = 0.05
#: bulk candidate regions: bins reaching this multiple of a track's genome-wide mean signal
REGION_FOLD = 2.0


def region_scores(
    scanner: MotifScanner, fasta: Any, regions: Sequence[tuple[str, int, int]], *, chunk: int = 512
) -> NDArray[np.float64]:
    """``(n_regions, n_motifs)`` best log-odds of each motif in each region (both strands)."""
    from scregnet.tfbind.data import one_hot

    out = np.zeros((len(regions), scanner.weight.shape[0]), dtype=np.float64)
    for lo in range(0, len(regions), chunk):
        part = regions[lo : lo + chunk]
        seqs = [fasta.fetch(str(c), int(s), int(e)) for c, s, e in part]
        widths = np.array([len(s) for s in seqs], dtype=np.int64)
        onehot = np.zeros((len(seqs), 4, max(int(widths.max()), 1)), dtype=np.float32)
        for j, s in enumerate(seqs):
            onehot[j, :, : widths[j]] = one_hot(s)
        out[lo : lo + len(part)] = scanner.max_scores(onehot, widths)
    return out


def top_matches(scores: NDArray[np.float64], *, top: float = MOTIF_TOP) -> NDArray[np.bool_]:
    """Regions whose best match is in the top ``top`` share of regions, per motif (ties included)."""
    finite = np.where(np.isfinite(scores), scores, -np.inf)
    thr = np.quantile(np.where(np.isfinite(finite), finite, np.nan), 1.0 - top, axis=0)
    return finite >= np.nan_to_num(thr, nan=np.inf)[None, :]


def motif_auc(
    access: NDArray[np.floating] | sp.spmatrix,
    matches: NDArray[np.bool_],
    *,
    chunk: int = 256,
) -> NDArray[np.float64]:
    """``(n_samples, n_motifs)`` Mann-Whitney AUC - 0.5 of each sample's accessibility, motif
    regions vs the others (0 = no enrichment; ties get average ranks).

    ``access`` is samples x regions (densities; dense or sparse), ``matches`` regions x motifs.
    """
    m = np.asarray(matches, dtype=bool)
    n = m.shape[0]
    n_m = m.sum(axis=0).astype(np.float64)
    n_u = n - n_m
    ok = (n_m > 0) & (n_u > 0)
    mf = m.astype(np.float64)
    n_samples = access.shape[0]
    out = np.zeros((n_samples, m.shape[1]), dtype=np.float64)
    for lo in range(0, n_samples, chunk):
        block = access[lo : lo + chunk]
        dense = (
            np.asarray(block.toarray(), dtype=np.float64)  # type: ignore[union-attr]
            if sp.issparse(block)
            else np.asarray(block, dtype=np.float64)
        )
        ranks = rankdata(dense, axis=1)  # average ranks for ties
        r_sum = ranks @ mf
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = (r_sum - n_m * (n_m + 1) / 2) / (n_m * n_u)
        out[lo : lo + len(dense)] = np.where(ok[None, :], auc - 0.5, 0.0)
    return out


def tf_context(
    motif_ctx: NDArray[np.float64], motif_tf: Sequence[int] | NDArray[np.int64], n_tfs: int
) -> NDArray[np.float32]:
    """Spread per-motif scores ``(n_samples, n_motifs)`` onto ``(n_samples, n_tfs)`` (0 without a motif)."""
    out = np.zeros((motif_ctx.shape[0], n_tfs), dtype=np.float32)
    out[:, np.asarray(motif_tf, dtype=np.int64)] = motif_ctx
    return out


def bulk_regions(
    tracks: Sequence[Path],
    means: Sequence[float],
    chrom_sizes: dict[str, int],
    chroms: Sequence[str],
    *,
    bin_size: int = 200,
    fold: float = REGION_FOLD,
) -> tuple[list[tuple[str, int, int]], NDArray[np.float64]]:
    """Candidate regions of the bulk tracks and each track's mean signal over them.

    Returns the regions (merged ``bin_size`` bins reaching ``fold`` x a track's genome mean in at
    least one track) and ``(n_tracks, n_regions)`` mean signal densities. Each track is read once;
    a region's density is the mean of its bins' densities, so bases without data count as 0 in both
    the selection and the density (as in :func:`scregnet.tfbind.data.bin_means`).
    """
    from scregnet.io.tracks import open_bigwig
    from scregnet.tfbind.data import bin_means

    handles = [open_bigwig(p) for p in tracks]
    regions: list[tuple[str, int, int]] = []
    densities: list[NDArray[np.float64]] = []
    try:
        for chrom in chroms:
            size = chrom_sizes[chrom]
            if size < bin_size:
                continue
            starts = np.arange(0, size - bin_size + 1, bin_size, dtype=np.int64)
            signal = np.stack([bin_means(bw, chrom, starts, bin_size) for bw in handles])
            keep = np.flatnonzero((signal / np.asarray(means)[:, None]).max(axis=0) >= fold)
            if keep.size == 0:
                continue
            first = np.flatnonzero(np.diff(keep, prepend=-2) != 1)  # runs of adjacent bins
            n_bins = np.diff(np.append(first, keep.size))
            densities.append(np.add.reduceat(signal[:, keep], first, axis=1) / n_bins)
            lo = starts[keep[first]]
            regions += [
                (chrom, int(a), int(a) + int(n) * bin_size)
                for a, n in zip(lo.tolist(), n_bins.tolist(), strict=True)
            ]
    finally:
        for bw in handles:
            bw.close()
    access = np.concatenate(densities, axis=1) if densities else np.zeros((len(handles), 0))
    log.info(
        "context: %d candidate regions (bins >= %.1f x a track's mean) over %d track(s)",
        len(regions),
        fold,
        len(handles),
    )
    return regions, access
