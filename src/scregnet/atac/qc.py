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


class QCAccumulator:
    """Per-barcode QC sums grown chunk by chunk (arrays indexed by barcode id)."""

    def __init__(self) -> None:
        self.size = 0
        self.fragments = np.zeros(0, dtype=np.int64)
        self.reads = np.zeros(0, dtype=np.int64)
        self.in_peaks = np.zeros(0, dtype=np.int64)
        self.nfr = np.zeros(0, dtype=np.int64)
        self.mono = np.zeros(0, dtype=np.int64)
        self.tss = np.zeros(0, dtype=np.int64)
        self.flank = np.zeros(0, dtype=np.int64)

    def _grow(self, n: int) -> None:
        if n <= self.size:
            return
        new = max(n, 2 * self.size, 1024)
        for name in ("fragments", "reads", "in_peaks", "nfr", "mono", "tss", "flank"):
            old = getattr(self, name)
            arr = np.zeros(new, dtype=np.int64)
            arr[: old.size] = old
            setattr(self, name, arr)
        self.size = new

    def add(
        self,
        barcode: np.ndarray,
        count: np.ndarray,
        length: np.ndarray,
        in_peak: np.ndarray,
        tss_hits: np.ndarray | None,
        flank_hits: np.ndarray | None,
        n_barcodes: int,
    ) -> None:
        """Add one chunk: fragment barcodes, column-5 counts, lengths, peak overlap, TSS hits."""
        self._grow(n_barcodes)
        n = self.size
        self.fragments += np.bincount(barcode, minlength=n)
        self.reads += np.bincount(barcode, weights=count, minlength=n).astype(np.int64)
        self.in_peaks += np.bincount(barcode[in_peak], minlength=n)
        self.nfr += np.bincount(barcode[length < NFR_MAX], minlength=n)
        self.mono += np.bincount(barcode[(length >= NFR_MAX) & (length < MONO_MAX)], minlength=n)
        if tss_hits is not None and flank_hits is not None:
            self.tss += np.bincount(barcode, weights=tss_hits, minlength=n).astype(np.int64)
            self.flank += np.bincount(barcode, weights=flank_hits, minlength=n).astype(np.int64)

    def table(self, names: list[str], *, with_tss: bool) -> pd.DataFrame:
        """QC metrics for every barcode seen, indexed by barcode name."""
        k = len(names)
        frags = self.fragments[:k]
        with np.errstate(divide="ignore", invalid="ignore"):
            frame = pd.DataFrame(
                {
                    "n_fragments": frags,
                    "n_reads": self.reads[:k],
                    "duplicate_rate": np.where(
                        self.reads[:k] > 0, 1.0 - frags / np.maximum(self.reads[:k], 1), 0.0
                    ),
                    "frip": np.where(frags > 0, self.in_peaks[:k] / np.maximum(frags, 1), 0.0),
                    "nucleosome_signal": self.mono[:k] / np.maximum(self.nfr[:k], 1),
                    "tss_enrichment": (
                        2.0
                        * (self.tss[:k] / (2 * TSS_WINDOW + 1))
                        / np.maximum(
                            self.flank[:k] / (FLANK_OUTER - FLANK_INNER + 1), MIN_FLANK_DENSITY
                        )
                        if with_tss
                        else np.full(k, np.nan)
                    ),
                },
                index=pd.Index(names, name="barcode"),
            )
        return frame


class TSSIndex:
    """Sorted TSS positions per chromosome; counts insertions near them."""

    def __init__(self, tss: pd.DataFrame) -> None:
        self.by_chrom: dict[str, np.ndarray] = {
            str(chrom): np.unique(group["tss"].to_numpy(dtype=np.int64))
            for chrom, group in tss.groupby("chrom", sort=False)
        }
        # the sites followed by a sentinel past every position
        self._padded = {
            chrom: np.append(sites, np.iinfo(np.int64).max)
            for chrom, sites in self.by_chrom.items()
        }

    def hits(self, chrom: str, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each insertion position: number of TSS windows and of TSS flanks containing it."""
        sites = self.by_chrom.get(chrom)
        if sites is None or sites.size == 0:
            zero = np.zeros(points.size, dtype=np.int64)
            return zero, zero

        def within(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
            # TSS t with lo <= t <= hi
            return np.searchsorted(sites, hi, side="right") - np.searchsorted(sites, lo, "left")

        # most insertions have no TSS within FLANK_OUTER bp: one search finds those that do
        first = np.searchsorted(sites, points - FLANK_OUTER, side="left")
        near = np.flatnonzero(self._padded[chrom][first] <= points + FLANK_OUTER)
        x = points[near]
        window = np.zeros(points.size, dtype=np.int64)
        flank = np.zeros(points.size, dtype=np.int64)
        window[near] = within(x - TSS_WINDOW, x + TSS_WINDOW)
        flank[near] = within(x + FLANK_INNER, x + FLANK_OUTER) + within(
            x - FLANK_OUTER, x - FLANK_INNER
        )
        return window, flank


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
