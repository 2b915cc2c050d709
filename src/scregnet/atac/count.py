"""Fragments -> cells x peaks and cells x tiles count matrices, per-cell QC, cell calling.

One streaming pass over the fragments file (pyarrow blocks, one chromosome at a time): each
block is turned into ``(barcode, feature)`` pairs with vectorised binary searches against the
sorted peaks and arithmetic on tiles, and into per-barcode QC sums. After the pass, cells are
called (``min_fragments`` or the knee of the barcode-rank curve, optionally within a barcode
whitelist) and the pairs of called cells become CSR matrices (scipy's linear-time COO -> CSR,
duplicates summed). Memory is one block of text, the int32 pairs (8 bytes per count; pairs of
barcodes outside a ``barcodes`` whitelist are dropped as they are read) and a few arrays per
barcode: it grows with the counts, not with the size of the input file.

Counting strategies (SnapATAC2's ``counting_strategy``):

* ``fragment``: a fragment counts once in every feature it overlaps (half-open intervals).
* ``insertion``: each of the two Tn5 insertions (``start`` and ``end - 1``) counts once in the
  feature containing it (a fragment inside one feature counts 2).
* ``paired-insertion`` (default, SnapATAC2's and ArchR's peak matrix): like ``insertion`` but a
  fragment counts at most once per feature.

Every unique fragment counts once whatever its duplicate count (column 5), as in SnapATAC2.

The AnnData written by ``scregnet count`` (DESIGN.md's ``atac.h5ad``):

* ``X``: cells x peaks, CSR int32; ``var``: ``chrom, start, end`` (+ ``name`` from the BED),
  ``var_names`` ``chrom:start-end`` in the order of the peaks file (duplicates dropped);
* ``obs`` (index: barcode; whitelist order with ``barcodes``, else sorted): ``n_fragments``,
  ``n_reads``, ``duplicate_rate``, ``frip``, ``nucleosome_signal``, ``tss_enrichment``
  (see :mod:`scregnet.atac.qc`);
* ``obsm['tiles']``: cells x tiles, CSR int32, kept in the same file so that cells can never
  get out of step with their tiles; ``uns['tiles']`` holds ``size``, ``chroms``, ``n_tiles``,
  ``chrom_sizes`` and :func:`tile_names` rebuilds the ``chrom:start-end`` column names;
* ``uns['count']``: the fragments path, strategy, cell-calling rule and threshold.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from scregnet.atac.qc import QCAccumulator, TSSIndex, knee_threshold
from scregnet.errors import InputError
from scregnet.io.fragments import FragmentReader

if TYPE_CHECKING:
    import anndata as ad

log = logging.getLogger(__name__)

Strategy = Literal["fragment", "insertion", "paired-insertion"]
STRATEGIES: tuple[Strategy, ...] = ("fragment", "insertion", "paired-insertion")


class IntervalIndex:
    """Intervals of one chromosome sorted by start, for vectorised overlap queries.

    ``ids`` are the caller's feature ids. Overlapping intervals are allowed: the running maximum
    of the ends bounds the candidates, which are then filtered exactly.
    """

    def __init__(self, start: np.ndarray, end: np.ndarray, ids: np.ndarray) -> None:
        order = np.lexsort((end, start))
        self.start = start[order].astype(np.int64)
        self.end = end[order].astype(np.int64)
        self.ids = ids[order].astype(np.int64)
        self.max_end = np.maximum.accumulate(self.end) if self.end.size else self.end
        # disjoint intervals (the usual peak set): a point lies in at most one of them
        self.disjoint = bool(np.all(self.start[1:] >= self.end[:-1]))
        # end of interval i - 1 at position i (position 0: before every interval)
        self._end_before = np.concatenate([[np.iinfo(np.int64).min], self.end])

    def _expand(
        self, lo: np.ndarray, hi: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:  # (query index, sorted-interval index)
        n = np.maximum(hi - lo, 0)
        total = int(n.sum())
        query = np.repeat(np.arange(n.size), n)
        offset = np.arange(total) - np.repeat(np.cumsum(n) - n, n)
        return query, lo[query] + offset

    def overlap(self, s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (query index, feature id) for intervals ``[s, e)`` overlapping a feature."""
        hi = np.searchsorted(self.start, e, side="left")
        lo = np.searchsorted(self.max_end, s, side="right")
        q, k = self._expand(lo, hi)
        keep = self.end[k] > s[q]
        return q[keep], self.ids[k[keep]]

    def contain(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (query index, feature id) for points ``x`` inside a feature."""
        hi = np.searchsorted(self.start, x, side="right")
        lo = np.searchsorted(self.max_end, x, side="right")
        q, k = self._expand(lo, hi)
        keep = self.end[k] > x[q]
        return q[keep], self.ids[k[keep]]

    def disjoint_hits(
        self, s: np.ndarray, e: np.ndarray, strategy: Strategy
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fragment index, feature id) pairs under ``strategy`` and per-fragment peak overlap.

        Only for disjoint intervals (``self.disjoint``), where a point lies in at most one: two
        binary searches per fragment give everything (the same pairs as :func:`feature_hits`).
        """
        a = np.searchsorted(self.start, s, side="right")  # intervals starting <= s
        b = np.searchsorted(self.start, e - 1, side="right")  # intervals starting <= e - 1
        s_in = self._end_before[a] > s  # s inside interval a - 1
        if strategy == "fragment":
            lo = a - s_in  # first interval ending after s; [lo, b) all overlap [s, e)
            n = b - lo
            in_peak = n > 0
            if n.size == 0 or int(n.max()) <= 1:
                q = np.flatnonzero(in_peak)
                return q, self.ids[lo[q]], in_peak
            q, k = self._expand(lo, b)
            return q, self.ids[k], in_peak
        in_peak = s_in | (b > a)  # s inside an interval, or one starts in (s, e - 1]
        e_in = self._end_before[b] > e - 1
        qs = np.flatnonzero(s_in)
        qe = np.flatnonzero(e_in)
        if strategy == "paired-insertion":  # both insertions in the same interval: count once
            same = s_in[qe] & (a[qe] == b[qe])
            qe = qe[~same]
        q = np.concatenate([qs, qe])
        k = np.concatenate([a[qs], b[qe]]) - 1
        return q, self.ids[k], in_peak


def _paired(
    q1: np.ndarray, f1: np.ndarray, q2: np.ndarray, f2: np.ndarray, n_features: int
) -> tuple[np.ndarray, np.ndarray]:
    """Union of two hit lists, counting a (query, feature) pair present in both once."""
    if q1.size == 0 or q2.size == 0:
        return np.concatenate([q1, q2]), np.concatenate([f1, f2])
    key1 = q1 * np.int64(n_features) + f1
    key2 = q2 * np.int64(n_features) + f2
    order = np.argsort(key1, kind="stable")
    sorted1 = key1[order]
    pos = np.searchsorted(sorted1, key2)
    dup = (pos < sorted1.size) & (sorted1[np.minimum(pos, sorted1.size - 1)] == key2)
    return np.concatenate([q1, q2[~dup]]), np.concatenate([f1, f2[~dup]])


def feature_hits(
    index: IntervalIndex | None,
    s: np.ndarray,
    e: np.ndarray,
    strategy: Strategy,
    n_features: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(fragment index, feature id) pairs of one chromosome's fragments under ``strategy``."""
    if index is None or index.start.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    if strategy == "fragment":
        return index.overlap(s, e)
    q1, f1 = index.contain(s)
    q2, f2 = index.contain(e - 1)
    if strategy == "insertion":
        return np.concatenate([q1, q2]), np.concatenate([f1, f2])
    return _paired(q1, f1, q2, f2, n_features)


def tile_hits(
    s: np.ndarray,
    e: np.ndarray,
    tile_size: int,
    offset: int,
    n_tiles_chrom: int,
    strategy: Strategy,
) -> tuple[np.ndarray, np.ndarray]:
    """(fragment index, global tile id) pairs of one chromosome's fragments under ``strategy``."""
    t0 = s // tile_size
    t1 = (e - 1) // tile_size
    idx = np.arange(s.size)
    if strategy == "fragment":
        n = t1 - t0 + 1
        if np.all(n == 1):
            q, t = idx, t0
        else:
            q = np.repeat(idx, n)
            t = t0[q] + (np.arange(q.size) - np.repeat(np.cumsum(n) - n, n))
    elif strategy == "insertion":
        q, t = np.concatenate([idx, idx]), np.concatenate([t0, t1])
    else:
        two = t1 != t0
        q, t = np.concatenate([idx, idx[two]]), np.concatenate([t0, t1[two]])
    if t.size and int(t1.max()) >= n_tiles_chrom:  # fragments hanging over the chromosome end
        keep = t < n_tiles_chrom
        q, t = q[keep], t[keep]
    return q, t + offset


@dataclass
class Tiles:
    """Genome-wide tiling: ``offset[chrom]`` + ``pos // size`` is a tile's column."""

    size: int
    chroms: list[str]
    n_per_chrom: list[int]
    sizes: list[int]

    @classmethod
    def build(cls, chrom_sizes: dict[str, int], size: int, exclude: set[str]) -> Tiles:
        chroms = [c for c in chrom_sizes if c not in exclude]
        return cls(
            size,
            chroms,
            [(chrom_sizes[c] + size - 1) // size for c in chroms],
            [chrom_sizes[c] for c in chroms],
        )

    @property
    def offsets(self) -> dict[str, int]:
        out, total = {}, 0
        for c, n in zip(self.chroms, self.n_per_chrom, strict=True):
            out[c] = total
            total += n
        return out

    @property
    def total(self) -> int:
        return int(sum(self.n_per_chrom))

    def names(self) -> list[str]:
        out: list[str] = []
        for c, n, length in zip(self.chroms, self.n_per_chrom, self.sizes, strict=True):
            starts = np.arange(n, dtype=np.int64) * self.size
            ends = np.minimum(starts + self.size, length)
            out.extend(f"{c}:{a}-{b}" for a, b in zip(starts.tolist(), ends.tolist(), strict=True))
        return out


def tile_names(adata: ad.AnnData) -> list[str]:
    """Column names (``chrom:start-end``) of ``adata.obsm['tiles']`` from ``uns['tiles']``."""
    meta = adata.uns["tiles"]
    return Tiles(
        int(meta["size"]),
        [str(c) for c in meta["chroms"]],
        [int(n) for n in meta["n_tiles"]],
        [int(n) for n in meta["chrom_sizes"]],
    ).names()


@dataclass
class CountResult:
    """The AnnData and the QC table of every barcode seen (``is_cell`` marks the called cells)."""

    adata: ad.AnnData
    qc: pd.DataFrame
    threshold: int


class _Pairs:
    """Growing int32 (barcode, feature) pair lists."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []

    def add(self, rows: np.ndarray, cols: np.ndarray) -> None:
        if rows.size:
            self.rows.append(rows.astype(np.int32, copy=False))
            self.cols.append(cols.astype(np.int32, copy=False))

    def matrix(self, row_of_barcode: np.ndarray, n_rows: int, n_cols: int) -> object:
        import scipy.sparse as sp

        rows = np.concatenate(self.rows) if self.rows else np.zeros(0, dtype=np.int32)
        cols = np.concatenate(self.cols) if self.cols else np.zeros(0, dtype=np.int32)
        self.rows, self.cols = [], []
        mapped = row_of_barcode[rows]
        keep = mapped >= 0
        rows, cols = mapped[keep], cols[keep]
        data = np.ones(rows.size, dtype=np.int32)
        mat = sp.coo_matrix((data, (rows, cols)), shape=(n_rows, n_cols)).tocsr()
        mat.sum_duplicates()
        mat.sort_indices()
        return mat


def prepare_peaks(
    peaks: pd.DataFrame, chrom_sizes: dict[str, int], *, path: str | Path
) -> pd.DataFrame:
    """Peaks with unique ``chrom:start-end`` names, checked against the genome."""
    from scregnet.io.bed import check_within_bounds
    from scregnet.io.genome import check_same_chromosomes

    check_same_chromosomes(
        peaks["chrom"], chrom_sizes, what="peaks", ref_what="genome index", path=path
    )
    check_within_bounds(peaks, chrom_sizes, path=path)
    names = (
        peaks["chrom"].astype(str)
        + ":"
        + peaks["start"].astype(str)
        + "-"
        + peaks["end"].astype(str)
    )
    dup = names.duplicated()
    if dup.any():
        log.warning("%s: %d duplicated peak(s) dropped", path, int(dup.sum()))
    var = pd.DataFrame(
        {
            "chrom": peaks["chrom"].astype(str).to_numpy(),
            "start": peaks["start"].to_numpy(dtype=np.int64),
            "end": peaks["end"].to_numpy(dtype=np.int64),
        },
        index=pd.Index(names.to_numpy(), name="peak"),
    )
    if "name" in peaks.columns:
        var["name"] = peaks["name"].astype(str).to_numpy()
    return var[~dup.to_numpy()]


def count_fragments(
    fragments: str | Path,
    peaks: pd.DataFrame,
    chrom_sizes: dict[str, int],
    *,
    tss: pd.DataFrame | None = None,
    tile_size: int | None = 5000,
    strategy: Strategy = "paired-insertion",
    min_fragments: int | Literal["knee"] = 1000,
    barcodes: list[str] | None = None,
    exclude_chroms: tuple[str, ...] = ("chrM", "M", "MT"),
    threads: int = 1,
    peaks_path: str | Path = "peaks",
) -> CountResult:
    """Count ``fragments`` into cells x peaks (``X``) and cells x tiles (``obsm['tiles']``).

    ``peaks`` comes from :func:`scregnet.io.bed.read_bed`; ``tss`` from
    :func:`scregnet.io.gtf.read_tss` (without it ``tss_enrichment`` is NaN).
    """
    import anndata as ad

    if strategy not in STRATEGIES:
        msg = f"unknown counting strategy {strategy!r} (choose from {', '.join(STRATEGIES)})"
        raise ValueError(msg)
    began = time.perf_counter()
    fragments = Path(fragments)
    var = prepare_peaks(peaks, chrom_sizes, path=peaks_path)
    n_peaks = var.shape[0]
    exclude = set(exclude_chroms)
    peak_index = {
        str(chrom): IntervalIndex(
            group["start"].to_numpy(), group["end"].to_numpy(), group["pos"].to_numpy()
        )
        for chrom, group in var.assign(pos=np.arange(n_peaks)).groupby("chrom", sort=False)
    }
    tiles = Tiles.build(chrom_sizes, tile_size, exclude) if tile_size else None
    tile_offsets = tiles.offsets if tiles else {}
    tss_index = TSSIndex(tss) if tss is not None else None
    reader = FragmentReader(fragments, threads=threads, genome=chrom_sizes, exclude=exclude)
    wanted: set[str] = set(barcodes) if barcodes is not None else set()
    use_whitelist = barcodes is not None
    wanted_mask = np.zeros(0, dtype=bool)
    qc = QCAccumulator()
    peak_pairs, tile_pairs = _Pairs(), _Pairs()
    skipped = 0
    for chunk in reader:
        if chunk.chrom in exclude:
            skipped += len(chunk)
            continue
        s, e, bc = chunk.start, chunk.end, chunk.barcode
        if use_whitelist:
            names_now = reader.barcodes.names
            if wanted_mask.size < len(names_now):
                extra = np.fromiter(
                    (n in wanted for n in names_now[wanted_mask.size :]),
                    dtype=bool,
                    count=len(names_now) - wanted_mask.size,
                )
                wanted_mask = np.concatenate([wanted_mask, extra])
            keep_pairs = wanted_mask[bc]
        else:
            keep_pairs = None
        index = peak_index.get(chunk.chrom)
        if index is not None and index.start.size and index.disjoint:
            q, f, in_peak = index.disjoint_hits(s, e, strategy)
        else:
            q, f = feature_hits(index, s, e, strategy, n_peaks)
            in_peak = np.zeros(s.size, dtype=bool)
            if strategy == "fragment":
                in_peak[q] = True
            elif index is not None and index.start.size:
                in_peak[index.overlap(s, e)[0]] = True
        if keep_pairs is not None:
            q, f = q[keep_pairs[q]], f[keep_pairs[q]]
        peak_pairs.add(bc[q], f)
        if tiles is not None and chunk.chrom in tile_offsets:
            n_chrom = tiles.n_per_chrom[tiles.chroms.index(chunk.chrom)]
            tq, tt = tile_hits(s, e, tiles.size, tile_offsets[chunk.chrom], n_chrom, strategy)
            if keep_pairs is not None:
                tq, tt = tq[keep_pairs[tq]], tt[keep_pairs[tq]]
            tile_pairs.add(bc[tq], tt)
        tss_hits = flank_hits = None
        if tss_index is not None:
            w1, f1 = tss_index.hits(chunk.chrom, s)
            w2, f2 = tss_index.hits(chunk.chrom, e - 1)
            tss_hits, flank_hits = w1 + w2, f1 + f2
        qc.add(bc, chunk.count, e - s, in_peak, tss_hits, flank_hits, len(reader.barcodes))
    names = reader.barcodes.names
    table = qc.table(names, with_tss=tss_index is not None)
    log.info(
        "read %s: %d fragments, %d barcodes, %d chromosome(s) (%d fragments on excluded ones) in %.1f s",
        fragments,
        reader.n_lines,
        len(names),
        len(reader.chromosomes),
        skipped,
        time.perf_counter() - began,
    )

    # --- cell calling -------------------------------------------------------------------------
    candidates = np.ones(len(names), dtype=bool)
    if barcodes is not None:
        candidates = np.fromiter((n in wanted for n in names), dtype=bool, count=len(names))
    n_frag = table["n_fragments"].to_numpy()
    threshold = (
        knee_threshold(n_frag[candidates]) if min_fragments == "knee" else int(min_fragments)
    )
    is_cell = candidates & (n_frag >= threshold) & (n_frag > 0)
    table["is_cell"] = is_cell
    if not is_cell.any():
        best = int(n_frag[candidates].max()) if candidates.any() else 0
        msg = (
            f"no cell passes the filters (minimum {threshold} fragments; the best "
            f"{'whitelisted ' if barcodes is not None else ''}barcode has {best})"
        )
        raise InputError(msg, fragments)
    if barcodes is not None:
        order = {b: i for i, b in enumerate(barcodes)}
        cell_ids = np.array(
            sorted(np.flatnonzero(is_cell).tolist(), key=lambda i: order[names[i]]),
            dtype=np.int64,
        )
    else:
        cell_ids = np.flatnonzero(is_cell)
        cell_ids = cell_ids[np.argsort(np.asarray(names, dtype=object)[cell_ids], kind="stable")]
    row_of = np.full(len(names), -1, dtype=np.int32)
    row_of[cell_ids] = np.arange(cell_ids.size)
    n_cells = int(cell_ids.size)

    x = peak_pairs.matrix(row_of, n_cells, n_peaks)
    obs = table.iloc[cell_ids].drop(columns=["is_cell"]).copy()
    obs.index = pd.Index([names[i] for i in cell_ids], name="barcode")
    adata = ad.AnnData(X=x, obs=obs, var=var)
    adata.uns["count"] = {
        "fragments": str(fragments),
        "strategy": strategy,
        "min_fragments": int(threshold),
        "cell_calling": "knee" if min_fragments == "knee" else "min_fragments",
        "exclude_chroms": list(exclude_chroms),
    }
    if tiles is not None:
        adata.obsm["tiles"] = tile_pairs.matrix(row_of, n_cells, tiles.total)
        adata.uns["tiles"] = {
            "size": int(tiles.size),
            "chroms": list(tiles.chroms),
            "n_tiles": np.asarray(tiles.n_per_chrom, dtype=np.int64),
            "chrom_sizes": np.asarray(tiles.sizes, dtype=np.int64),
        }
    log.info(
        "called %d cells (>= %d fragments%s); peak matrix %d x %d (%d nonzero)%s; %.1f s",
        n_cells,
        threshold,
        ", whitelist" if barcodes is not None else "",
        n_cells,
        n_peaks,
        x.nnz,  # type: ignore[attr-defined]
        f", tile matrix {tiles.total} tiles of {tiles.size} bp" if tiles else "",
        time.perf_counter() - began,
    )
    return CountResult(adata, table, threshold)
