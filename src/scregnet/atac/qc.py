"""Per-barcode ATAC quality metrics and cell calling.

Definitions (all per barcode, over fragments on chromosomes that are not excluded):

* ``n_fragments``: unique fragments (lines of the fragments file).
* ``duplicate_rate``: ``1 - n_fragments / n_reads`` where ``n_reads`` sums column 5.
* ``frip``: fraction of fragments overlapping at least one peak.
* ``nucleosome_signal``: mono-nucleosome fragments (147 <= length < 294) over nucleosome-free
  ones (length < 147), the latter floored at 1 (Signac's ratio without infinities).
* ``tss_enrichment`` (ArchR): Tn5 insertions (both fragment ends) within +-50 bp of a TSS per bp,
  over insertions in the two 100 bp flanks 1,901-2,000 bp away per bp, times 2, with the flank
  density floored at 0.2 (ArchR's ``minNorm``): ``2 * (w / 101) / max(f / 100, 0.2)``. Each
  insertion counts once per TSS whose window it falls in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TSS_WINDOW = 50
FLANK_INNER, FLANK_OUTER = 1901, 2000
NFR_MAX, MONO_MAX = 147, 294
MIN_FLANK_DENSITY = 0.2

# columns of the per-barcode QC sums (:func:`scregnet.atac.count_kernels.count_chunk`)
QC_FRAGMENTS, QC_READS, QC_IN_PEAKS, QC_NFR, QC_MONO, QC_TSS, QC_FLANK = range(7)
QC_COLUMNS = 8  # padded to 64 bytes per barcode


def qc_table(sums: np.ndarray, names: list[str], *, with_tss: bool) -> pd.DataFrame:
    """QC metrics for every barcode seen, indexed by barcode name.

    ``sums``: per barcode id (rows, at least ``len(names)``) the ``QC_*`` columns, as
    :func:`~scregnet.atac.count_kernels.count_chunk` accumulates them.
    """
    k = len(names)
    frags = sums[:k, QC_FRAGMENTS].copy()
    reads = sums[:k, QC_READS].copy()
    in_peaks = sums[:k, QC_IN_PEAKS]
    nfr, mono = sums[:k, QC_NFR], sums[:k, QC_MONO]
    tss, flank = sums[:k, QC_TSS], sums[:k, QC_FLANK]
    with np.errstate(divide="ignore", invalid="ignore"):
        frame = pd.DataFrame(
            {
                "n_fragments": frags,
                "n_reads": reads,
                "duplicate_rate": np.where(reads > 0, 1.0 - frags / np.maximum(reads, 1), 0.0),
                "frip": np.where(frags > 0, in_peaks / np.maximum(frags, 1), 0.0),
                "nucleosome_signal": mono / np.maximum(nfr, 1),
                "tss_enrichment": (
                    2.0
                    * (tss / (2 * TSS_WINDOW + 1))
                    / np.maximum(flank / (FLANK_OUTER - FLANK_INNER + 1), MIN_FLANK_DENSITY)
                    if with_tss
                    else np.full(k, np.nan)
                ),
            },
            index=pd.Index(names, name="barcode"),
        )
    return frame


def tss_sites(tss: pd.DataFrame) -> dict[str, np.ndarray]:
    """Sorted distinct TSS positions (int64) per chromosome of a :func:`~scregnet.io.gtf.read_tss` table."""
    return {
        str(chrom): np.unique(group["tss"].to_numpy(dtype=np.int64))
        for chrom, group in tss.groupby("chrom", sort=False)
    }


def knee_threshold(n_fragments: np.ndarray, *, floor: int = 1) -> int:
    """Minimum fragments of a cell at the cliff of the barcode-rank curve.

    The cliff separates the cells' plateau from the background barcodes' tail; it is placed at
    Otsu's split of log10(fragments) over barcodes with at least ``floor`` fragments (the split
    maximising the between-group variance), and the threshold is the smallest count above it.
    """
    values = np.sort(np.log10(n_fragments[n_fragments >= max(floor, 1)].astype(np.float64)))
    if values.size < 2 or values[0] == values[-1]:
        return round(float(10 ** values[0])) if values.size else max(floor, 1)
    n = values.size
    csum = np.cumsum(values)
    k = np.arange(1, n)  # split after the k smallest values
    low_mean = csum[:-1] / k
    high_mean = (csum[-1] - csum[:-1]) / (n - k)
    between = k * (n - k) * (low_mean - high_mean) ** 2
    between[values[1:] == values[:-1]] = -1.0  # only split between distinct values
    cut = int(np.argmax(between))
    return round(float(10 ** values[cut + 1]))
