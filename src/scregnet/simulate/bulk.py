"""Bulk training data: accessibility bigWigs and TF ChIP peaks per cell type, and bulk RNA."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from scregnet.io.atomic import atomic_path
from scregnet.io.tracks import write_bigwig_binned
from scregnet.simulate.atac_reads import sample_fragments
from scregnet.simulate.world import World

log = logging.getLogger(__name__)

BIGWIG_BIN = 20  # bp per bigWig bin
CHIP_FALSE_NEGATIVE = 0.10
CHIP_FALSE_POSITIVE = 0.05


def accessibility_track(
    rng: np.random.Generator, world: World, cell_type: int, n_fragments: int, path: Path
) -> Path:
    """Bulk ATAC of one cell type: fragment pileup per 20 bp bin, scaled to 1 M fragments (CPM)."""
    frags = sample_fragments(
        rng,
        world,
        np.array([cell_type]),
        np.array([n_fragments]),
        frip=np.array([0.5]),
        mito=np.array([0.0]),
    )
    chroms = list(world.genome.sequences)
    sizes = world.genome.sizes
    scale = 1e6 / max(len(frags), 1)

    def tracks() -> Iterator[tuple[str, np.ndarray]]:
        for ci, chrom in enumerate(chroms):
            sel = frags.chrom == ci
            size = sizes[chrom]
            diff = np.bincount(frags.start[sel], minlength=size + 1) - np.bincount(
                frags.end[sel], minlength=size + 1
            )
            cover = np.cumsum(diff[:size])
            n_bins = -(-size // BIGWIG_BIN)
            padded = np.zeros(n_bins * BIGWIG_BIN)
            padded[:size] = cover
            binned = padded.reshape(n_bins, BIGWIG_BIN).mean(axis=1) * scale
            yield chrom, np.round(binned, 3)

    return write_bigwig_binned(path, sizes, tracks(), bin_size=BIGWIG_BIN)


def chip_peaks(rng: np.random.Generator, world: World, cell_type: int, tf: int, path: Path) -> int:
    """ChIP-seq peaks (narrowPeak columns in a .bed) of one TF in one cell type.

    True bound sites (summit at the planted motif) minus 10 % missed weak sites, plus 5 % (at least
    3) false positives in other open peaks. Returns the number of peaks written.
    """
    peaks = world.peaks
    tf_name, ct_name = world.tfs[tf], world.cell_types[cell_type]
    bound = np.flatnonzero(world.bound[cell_type, :, tf])
    strength = peaks.strength.to_numpy()
    if bound.size:
        signal = strength[bound] * rng.lognormal(0.0, 0.4, bound.size)
        keep = rng.random(bound.size) > CHIP_FALSE_NEGATIVE * 2 * (signal < np.median(signal))
        bound, signal = bound[keep], signal[keep]
    else:
        signal = np.zeros(0)
    sites = world.motif_sites
    sites = sites[(sites.tf == tf_name) & (sites.peak_id != ".")]
    mid_of = dict(zip(sites.peak_id, (sites.start + sites.end) // 2, strict=True))
    summit = np.array([mid_of[p] for p in peaks.peak_id.to_numpy()[bound]], dtype=np.int64)
    summit = summit + np.round(rng.normal(0, 8, bound.size)).astype(np.int64)
    n_fp = max(3, round(CHIP_FALSE_POSITIVE * bound.size))
    others = np.flatnonzero(world.open[cell_type] & ~world.bound[cell_type, :, tf])
    fp = rng.choice(others, size=min(n_fp, others.size), replace=False)
    fp_summit = peaks.center.to_numpy()[fp] + rng.integers(-100, 100, fp.size)
    fp_signal = strength[fp] * rng.lognormal(-1.0, 0.4, fp.size)
    idx = np.concatenate([bound, fp])
    summit = np.concatenate([summit, fp_summit])
    signal = np.concatenate([signal, fp_signal])
    half = rng.integers(100, 200, idx.size)
    frame = pd.DataFrame(
        {
            "chrom": peaks.chrom.to_numpy()[idx],
            "start": summit - half,
            "end": summit + half,
            "signal": signal,
            "summit": half,
        }
    )
    frame["_chrom_no"] = frame.chrom.str[3:].astype(int)
    frame = frame.sort_values(["_chrom_no", "start"]).reset_index(drop=True)
    p_value = np.round(5 + 20 * frame.signal / (1 + frame.signal), 3)
    cols = zip(
        frame.chrom.tolist(),
        frame.start.tolist(),
        frame.end.tolist(),
        frame.signal.tolist(),
        frame.summit.tolist(),
        p_value.tolist(),
        strict=True,
    )
    lines = [
        f"{chrom}\t{start}\t{end}\t{ct_name}.{tf_name}.peak{i + 1}\t{min(1000, int(100 * sig))}"
        f"\t.\t{sig:.3f}\t{pv:.3f}\t{pv - 1:.3f}\t{summit}"
        for i, (chrom, start, end, sig, summit, pv) in enumerate(cols)
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return len(lines)


def write_bulk_rna(counts: np.ndarray, world: World, path: Path) -> Path:
    """Genes x bulk samples TSV (first column ``gene``), columns ``<cell_type>_rep<k>``."""
    reps = counts.shape[0] // len(world.cell_types)
    columns = [f"{ct}_rep{r + 1}" for ct in world.cell_types for r in range(reps)]
    frame = pd.DataFrame(counts.T, columns=columns)
    frame.insert(0, "gene", world.genes.gene_name.to_numpy())
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)
    return path
