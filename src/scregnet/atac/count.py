"""Fragments -> cells x peaks and cells x tiles count matrices, per-cell QC, cell calling.

One streaming pass over the fragments file (blocks of text parsed by a compiled kernel, one
chromosome at a time): each piece of a chromosome goes through one compiled loop
(:func:`scregnet.atac.count_kernels.count_chunk`) that emits ``(barcode, feature)`` pairs
against the sorted peaks and the tiles and adds every fragment to its barcode's QC sums. After
the pass, cells are called (``min_fragments`` or the knee of the barcode-rank curve, optionally
within a barcode whitelist) and the pairs of called cells become CSR matrices (a counting sort,
duplicates summed, column indices sorted). Memory is one block of text, the int32 pairs (8
bytes per count; pairs of barcodes outside a ``barcodes`` whitelist are dropped as they are
read) and a few arrays per barcode: it grows with the counts, not with the size of the input
file.

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
* ``uns['count']``: the fragments path, strategy, cell-calling rule and threshold;
* ``uns['fragment_lengths']``: the number of fragments of each length in bp (0-999; the last bin,
  1000, holds every longer one) over every fragment counted, all barcodes (the report's figure).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
import pandas as pd

from scregnet import keys
from scregnet.atac.count_kernels import count_chunk
from scregnet.atac.options import Strategy
from scregnet.atac.qc import QC_COLUMNS, knee_threshold, qc_table, tss_sites
from scregnet.choices import check_choice
from scregnet.errors import InputError
from scregnet.io.fragments import FragmentReader
from scregnet.io.genome import MITOCHONDRIAL

if TYPE_CHECKING:
    import anndata as ad

    from scregnet.io.fragments import BarcodeTable, FragmentChunk

log = logging.getLogger(__name__)

#: the strategies in the order of :func:`~scregnet.atac.count_kernels.count_chunk`'s codes
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)


@dataclass
class PeakIndex:
    """One chromosome's peaks sorted by (start, end), as :func:`count_chunk` reads them.

    ``max_end`` is the running maximum of the ends, so overlapping peaks are handled exactly;
    ``ids`` are the peaks' columns in the matrix.
    """

    start: np.ndarray
    end: np.ndarray
    max_end: np.ndarray
    ids: np.ndarray

    @classmethod
    def build(cls, start: np.ndarray, end: np.ndarray, ids: np.ndarray) -> PeakIndex:
        order = np.lexsort((end, start))
        s = np.ascontiguousarray(start[order], dtype=np.int64)
        e = np.ascontiguousarray(end[order], dtype=np.int64)
        max_end = np.maximum.accumulate(e) if e.size else e
        return cls(s, e, max_end, np.ascontiguousarray(ids[order], dtype=np.int32))


_NO_PEAKS = PeakIndex(
    np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32)
)


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
    meta = adata.uns[keys.TILES]
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
    """Growing int32 (barcode, feature) pair lists, and the reusable buffers the kernel fills."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.buf_rows = np.zeros(0, dtype=np.int32)
        self.buf_cols = np.zeros(0, dtype=np.int32)

    def reserve(self, n: int) -> None:
        if self.buf_rows.size < n:
            self.buf_rows = np.empty(n, dtype=np.int32)
            self.buf_cols = np.empty(n, dtype=np.int32)

    def keep(self, n: int) -> None:
        """Store (copies of) the first ``n`` pairs of the buffers."""
        if n:
            self.rows.append(self.buf_rows[:n].copy())
            self.cols.append(self.buf_cols[:n].copy())

    def matrix(self, row_of_barcode: np.ndarray, n_rows: int, n_cols: int) -> object:
        """CSR int32 (sorted indices, duplicates summed) of the pairs of rows ``row_of >= 0``."""
        import scipy.sparse as sp

        from scregnet.atac.count_kernels import csr_from_pairs

        rows = np.concatenate(self.rows) if self.rows else np.zeros(0, dtype=np.int32)
        cols = np.concatenate(self.cols) if self.cols else np.zeros(0, dtype=np.int32)
        self.rows, self.cols = [], []
        indptr, indices, data = csr_from_pairs(rows, cols, row_of_barcode, n_rows)
        del rows, cols
        if max(int(indptr[-1]), n_cols) < np.iinfo(np.int32).max:
            indptr = indptr.astype(np.int32)
        return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))


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
    exclude_chroms: tuple[str, ...] = MITOCHONDRIAL,
    threads: int = 1,
    peaks_path: str | Path = "peaks",
    tss_path: str | Path = "TSS table",
) -> CountResult:
    """Count ``fragments`` into cells x peaks (``X``) and cells x tiles (``obsm['tiles']``).

    ``peaks`` comes from :func:`scregnet.io.bed.read_bed`; ``tss`` from
    :func:`scregnet.io.gtf.read_tss` (without it ``tss_enrichment`` is NaN; with no chromosome
    of the genome, an :class:`InputError` naming ``tss_path``).
    """
    from scregnet.io.genome import check_shared_chromosomes

    check_choice("strategy", strategy, Strategy)
    began = time.perf_counter()
    fragments = Path(fragments)
    var = prepare_peaks(peaks, chrom_sizes, path=peaks_path)
    if tss is not None:
        # TSS on no chromosome of the genome would give every cell a TSS enrichment of 0
        check_shared_chromosomes(
            tss["chrom"], chrom_sizes, what="GTF's genes", ref_what="genome index", path=tss_path
        )
    exclude = set(exclude_chroms)
    peak_index = _peak_index(var)
    tiles = Tiles.build(chrom_sizes, tile_size, exclude) if tile_size else None
    sites = tss_sites(tss) if tss is not None else {}
    reader = FragmentReader(fragments, threads=threads, genome=chrom_sizes, exclude=exclude)
    counter = _Counter(peak_index, tiles, sites, STRATEGIES.index(strategy), barcodes)
    skipped = counter.read(reader, exclude)
    names = reader.barcodes.names
    table = qc_table(counter.sums, names, with_tss=tss is not None)
    log.info(
        "read %s: %d fragments, %d barcodes, %d chromosome(s) (%d fragments on excluded ones) in %.1f s",
        fragments,
        reader.n_lines,
        len(names),
        len(reader.chromosomes),
        skipped,
        time.perf_counter() - began,
    )
    threshold, cell_ids = _call_cells(table, names, barcodes, min_fragments, fragments)
    uns = {
        "fragments": str(fragments),
        "strategy": strategy,
        "min_fragments": int(threshold),
        "cell_calling": "knee" if min_fragments == "knee" else "min_fragments",
        "exclude_chroms": list(exclude_chroms),
    }
    adata = _to_anndata(counter, table, names, cell_ids, var, tiles, uns)
    if adata.X.nnz == 0:
        n_excluded = int(var["chrom"].isin(exclude).sum())
        why = (
            f"{n_excluded} of them lie on excluded chromosomes"
            if n_excluded
            else "peaks of another genome or region?"
        )
        msg = (
            f"no fragment of the {adata.n_obs} cells overlaps any of its {adata.n_vars} peaks "
            f"({why})"
        )
        raise InputError(msg, peaks_path)
    log.info(
        "called %d cells (>= %d fragments%s); peak matrix %d x %d (%d nonzero)%s; %.1f s",
        adata.n_obs,
        threshold,
        ", whitelist" if barcodes is not None else "",
        adata.n_obs,
        adata.n_vars,
        adata.X.nnz,
        f", tile matrix {tiles.total} tiles of {tiles.size} bp" if tiles else "",
        time.perf_counter() - began,
    )
    return CountResult(adata, table, threshold)


def _peak_index(var: pd.DataFrame) -> dict[str, PeakIndex]:
    """Per chromosome, its peaks sorted for the kernel (ids: the peaks' rows in ``var``)."""
    return {
        str(chrom): PeakIndex.build(
            group["start"].to_numpy(), group["end"].to_numpy(), group["pos"].to_numpy()
        )
        for chrom, group in var.assign(pos=np.arange(var.shape[0])).groupby("chrom", sort=False)
    }


class _Counter:
    """The streaming pass: per-barcode QC sums and the kept (barcode, feature) pairs."""

    def __init__(
        self,
        peak_index: dict[str, PeakIndex],
        tiles: Tiles | None,
        sites: dict[str, np.ndarray],
        code: int,
        barcodes: list[str] | None,
    ) -> None:
        self.peak_index, self.tiles, self.sites, self.code = peak_index, tiles, sites, code
        self.tile_offsets = tiles.offsets if tiles else {}
        self.tile_counts = dict(zip(tiles.chroms, tiles.n_per_chrom, strict=True)) if tiles else {}
        self.no_sites = np.zeros(0, dtype=np.int64)
        self.whitelist = barcodes is not None
        self.wanted: set[str] = set(barcodes) if barcodes is not None else set()
        self.keep = np.zeros(0, dtype=np.uint8)  # per barcode id: 1 = count its pairs
        self.sums = np.zeros((0, QC_COLUMNS), dtype=np.int64)
        self.peak_pairs, self.tile_pairs = _Pairs(), _Pairs()
        self.fill = np.zeros(2, dtype=np.int64)
        self.lengths = np.zeros(keys.MAX_FRAGMENT_LENGTH_BIN + 1, dtype=np.int64)

    def read(self, reader: FragmentReader, exclude: set[str]) -> int:
        """Count every chunk off the ``exclude`` chromosomes; the number of fragments skipped.

        The QC sums end with a row for every barcode of the file, including barcodes seen only
        on excluded chromosomes. No fragment off them is an :class:`InputError`.
        """
        skipped = 0
        for chunk in reader:
            if chunk.chrom in exclude:
                skipped += len(chunk)
                continue
            self.grow(reader.barcodes)
            self.add(chunk)
        self.grow(reader.barcodes)
        if skipped and skipped == reader.n_lines:
            msg = (
                f"no fragment left to count: all {skipped} lie on excluded chromosomes "
                f"({', '.join(reader.chromosomes)}; see --exclude-chroms)"
            )
            raise InputError(msg, reader.path)
        return skipped

    def grow(self, table: BarcodeTable) -> None:
        """Make room in the QC sums (and whitelist flags) for every barcode seen so far."""
        n_barcodes = len(table)
        if self.sums.shape[0] < n_barcodes:
            grown = np.zeros((max(n_barcodes, 2 * self.sums.shape[0], 1024), QC_COLUMNS), np.int64)
            grown[: self.sums.shape[0]] = self.sums
            self.sums = grown
        if self.whitelist and self.keep.size < n_barcodes:
            new = table.names[self.keep.size :]
            self.keep = np.concatenate(
                [self.keep, np.fromiter((n in self.wanted for n in new), np.uint8, len(new))]
            )

    def add(self, chunk: FragmentChunk) -> None:
        """Count one chunk, running the kernel again while a fragment overflows the buffers."""
        index = self.peak_index.get(chunk.chrom, _NO_PEAKS)
        tiles, peak_pairs, tile_pairs, fill = (
            self.tiles,
            self.peak_pairs,
            self.tile_pairs,
            self.fill,
        )
        n = len(chunk)
        self.lengths += np.bincount(
            np.minimum(chunk.end - chunk.start, keys.MAX_FRAGMENT_LENGTH_BIN),
            minlength=keys.MAX_FRAGMENT_LENGTH_BIN + 1,
        )
        peak_pairs.reserve(2 * n + 64)
        tile_pairs.reserve(2 * n + 64)
        done = 0
        while True:
            fill[:] = 0
            done = count_chunk(
                chunk.start, chunk.end, chunk.barcode, chunk.count, done,
                index.start, index.end, index.max_end, index.ids, self.code,
                tiles.size if tiles is not None and chunk.chrom in self.tile_offsets else 0,
                self.tile_offsets.get(chunk.chrom, 0), self.tile_counts.get(chunk.chrom, 0),
                self.sites.get(chunk.chrom, self.no_sites), self.keep,
                peak_pairs.buf_rows, peak_pairs.buf_cols,
                tile_pairs.buf_rows, tile_pairs.buf_cols, fill, self.sums,
            )  # fmt: skip
            peak_pairs.keep(int(fill[0]))
            tile_pairs.keep(int(fill[1]))
            if done >= n:
                break
            # a fragment with more pairs than the buffers hold (long fragments, many peaks)
            peak_pairs.reserve(2 * peak_pairs.buf_rows.size)
            tile_pairs.reserve(2 * tile_pairs.buf_rows.size + 2 * (n - done))


def _call_cells(
    table: pd.DataFrame,
    names: list[str],
    barcodes: list[str] | None,
    min_fragments: int | Literal["knee"],
    fragments: Path,
) -> tuple[int, np.ndarray]:
    """Mark ``table['is_cell']``; the threshold and the cells' barcode ids in output order."""
    candidates = np.ones(len(names), dtype=bool)
    if barcodes is not None:
        wanted = set(barcodes)
        candidates = np.fromiter((n in wanted for n in names), dtype=bool, count=len(names))
    n_frag = table["n_fragments"].to_numpy()
    threshold = (
        knee_threshold(n_frag[candidates]) if min_fragments == "knee" else int(min_fragments)
    )
    is_cell = candidates & (n_frag >= threshold) & (n_frag > 0)
    table["is_cell"] = is_cell
    if min_fragments == "knee":
        _warn_weak_knee(int((candidates & (n_frag > 0)).sum()), int(is_cell.sum()), threshold)
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
    return threshold, cell_ids


#: fewer barcodes than this make no barcode-rank curve to find a cliff on
KNEE_MIN_BARCODES = 10


def _warn_weak_knee(n_barcodes: int, n_cells: int, threshold: int) -> None:
    """A warning when the knee's cell call rests on no cliff: too few barcodes, or every
    barcode called a cell (no background tail)."""
    if n_barcodes < KNEE_MIN_BARCODES:
        why = f"only {n_barcodes} barcodes, too few for a barcode-rank knee"
    elif n_cells == n_barcodes:
        why = "the barcode-rank curve has no cliff (no background barcodes)"
    else:
        return
    log.warning(
        "--min-fragments knee: %s; called %d of %d barcodes cells at >= %d fragments "
        "(give --min-fragments N to choose)",
        why,
        n_cells,
        n_barcodes,
        threshold,
    )


def _to_anndata(
    counter: _Counter,
    table: pd.DataFrame,
    names: list[str],
    cell_ids: np.ndarray,
    var: pd.DataFrame,
    tiles: Tiles | None,
    uns: dict[str, object],
) -> ad.AnnData:
    """The called cells' peak matrix (and tile matrix) with their QC as ``obs``."""
    import anndata as ad

    row_of = np.full(len(names), -1, dtype=np.int32)
    row_of[cell_ids] = np.arange(cell_ids.size)
    n_cells = int(cell_ids.size)
    x = counter.peak_pairs.matrix(row_of, n_cells, var.shape[0])
    obs = table.iloc[cell_ids].drop(columns=["is_cell"]).copy()
    obs.index = pd.Index([names[i] for i in cell_ids], name="barcode")
    adata = ad.AnnData(X=x, obs=obs, var=var)
    adata.uns["count"] = uns
    adata.uns[keys.FRAGMENT_LENGTHS] = counter.lengths.copy()
    if tiles is not None:
        adata.obsm[keys.TILES] = counter.tile_pairs.matrix(row_of, n_cells, tiles.total)
        adata.uns[keys.TILES] = {
            "size": int(tiles.size),
            "chroms": list(tiles.chroms),
            "n_tiles": np.asarray(tiles.n_per_chrom, dtype=np.int64),
            "chrom_sizes": np.asarray(tiles.sizes, dtype=np.int64),
        }
    return adata
