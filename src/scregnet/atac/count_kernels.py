"""Compiled (numba) kernels of ``scregnet count``: one pass over a chromosome's fragments.

:func:`count_chunk` turns a run of position-sorted fragments of one chromosome into
``(barcode, peak)`` and ``(barcode, tile)`` pairs under a counting strategy, and adds each
fragment to its barcode's QC sums (fragments, reads, in-peak fragments, nucleosome-free and
mono-nucleosome fragments, Tn5 insertions in TSS windows and flanks), all in one loop.
:func:`csr_from_pairs` builds a CSR matrix (sorted column indices, duplicates summed) from
the pairs of the called cells with a counting sort.

Because the fragments arrive sorted by start (the reader checks it), the searches for the
first peak / TSS near a fragment's start are pointers that only move forward; the fragment's
other insertion (``end - 1 >= start``) continues from them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from scregnet.atac.qc import (
    FLANK_INNER,
    FLANK_OUTER,
    MONO_MAX,
    NFR_MAX,
    QC_FLANK,
    QC_FRAGMENTS,
    QC_IN_PEAKS,
    QC_MONO,
    QC_NFR,
    QC_READS,
    QC_TSS,
    TSS_WINDOW,
)

FRAGMENT, INSERTION, PAIRED_INSERTION = 0, 1, 2


@njit(cache=True, nogil=True, inline="always")
def _advance(
    values: np.ndarray, j: int, bound: int | np.integer
) -> int:  # pragma: no cover - compiled
    """First index from ``j`` on whose value exceeds ``bound`` (``values`` sorted)."""
    n = values.size
    while j < n and values[j] <= bound:
        j += 1
    return j


@njit(cache=True, nogil=True)
def count_chunk(
    start: np.ndarray,
    end: np.ndarray,
    barcode: np.ndarray,
    count: np.ndarray,
    first: int,
    peak_start: np.ndarray,
    peak_end: np.ndarray,
    peak_max_end: np.ndarray,
    peak_id: np.ndarray,
    strategy: int,
    tile_size: int,
    tile_offset: int,
    n_tiles: int,
    tss: np.ndarray,
    keep: np.ndarray,
    peak_rows: np.ndarray,
    peak_cols: np.ndarray,
    tile_rows: np.ndarray,
    tile_cols: np.ndarray,
    fill: np.ndarray,
    qc: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """Count fragments ``first..`` of one chromosome (``start`` non-decreasing).

    Peaks: sorted by (start, end) with ``peak_max_end`` the running maximum of the ends (so
    overlapping peaks are fine) and ``peak_id`` their feature ids. Tiles: ``tile_size`` (0: no
    tiles), the chromosome's first tile id and tile count. ``tss``: sorted distinct TSS
    positions of the chromosome. ``keep[b] == 0`` drops barcode ``b``'s pairs (an empty
    ``keep`` keeps all); QC counts every barcode. Pairs are appended at ``fill[0]`` (peaks) and
    ``fill[1]`` (tiles). Returns the index of the first fragment not counted: ``start.size``,
    or earlier when a pair buffer is too small for the next fragment (grow it, call again).
    """
    n = start.size
    n_tss = tss.size
    np_fill = fill[0]
    nt_fill = fill[1]
    cap_p = peak_rows.size
    cap_t = tile_rows.size
    filter_keep = keep.size > 0
    # pointers for the fragment start s: peaks starting <= s, peaks whose running max end <= s
    s0 = start[first] if first < n else 0
    ps = int(np.searchsorted(peak_start, s0, side="right"))
    pm = int(np.searchsorted(peak_max_end, s0, side="right"))
    # TSS pointers: first site > s - FLANK_OUTER - 1, > s - FLANK_INNER, > s - WINDOW - 1,
    # > s + WINDOW, > s + FLANK_INNER - 1, > s + FLANK_OUTER
    t1 = int(np.searchsorted(tss, s0 - FLANK_OUTER - 1, side="right"))
    t2 = int(np.searchsorted(tss, s0 - FLANK_INNER, side="right"))
    t3 = int(np.searchsorted(tss, s0 - TSS_WINDOW - 1, side="right"))
    t4 = int(np.searchsorted(tss, s0 + TSS_WINDOW, side="right"))
    t5 = int(np.searchsorted(tss, s0 + FLANK_INNER - 1, side="right"))
    t6 = int(np.searchsorted(tss, s0 + FLANK_OUTER, side="right"))
    i = first
    while i < n:
        s = start[i]
        y = end[i] - 1  # the second insertion
        b = barcode[i]
        ps = _advance(peak_start, ps, s)
        pm = _advance(peak_max_end, pm, s)
        py = _advance(peak_start, ps, y)  # peaks starting <= e - 1, i.e. < e
        pmy = _advance(peak_max_end, pm, y)
        # room for this fragment's pairs
        if strategy == FRAGMENT:
            need_p = py - pm
        else:
            need_p = (ps - pm) + (py - pmy)
        if tile_size > 0:
            lo_tile = s // tile_size
            hi_tile = y // tile_size
            need_t = hi_tile - lo_tile + 1 if strategy == FRAGMENT else 2
        else:
            lo_tile = 0
            hi_tile = -1
            need_t = 0
        if np_fill + need_p > cap_p or nt_fill + need_t > cap_t:
            break
        emit = not filter_keep or keep[b] != 0
        # peaks: k in [pm, py) overlap [s, e) iff peak_end[k] > s
        in_peak = 0
        for k in range(pm, py):
            if peak_end[k] > s:
                in_peak = 1
                break
        if emit:
            if strategy == FRAGMENT:
                for k in range(pm, py):
                    if peak_end[k] > s:
                        peak_rows[np_fill] = b
                        peak_cols[np_fill] = peak_id[k]
                        np_fill += 1
            else:
                for k in range(pm, ps):  # peaks containing s
                    if peak_end[k] > s:
                        peak_rows[np_fill] = b
                        peak_cols[np_fill] = peak_id[k]
                        np_fill += 1
                for k in range(pmy, py):  # peaks containing e - 1
                    if peak_end[k] > y:
                        # paired: a peak holding both insertions counts once
                        if strategy == PAIRED_INSERTION and k < ps and peak_end[k] > s:
                            continue
                        peak_rows[np_fill] = b
                        peak_cols[np_fill] = peak_id[k]
                        np_fill += 1
            if tile_size > 0:
                if strategy == FRAGMENT:
                    for t in range(lo_tile, min(hi_tile + 1, n_tiles)):
                        tile_rows[nt_fill] = b
                        tile_cols[nt_fill] = tile_offset + t
                        nt_fill += 1
                else:
                    if lo_tile < n_tiles:
                        tile_rows[nt_fill] = b
                        tile_cols[nt_fill] = tile_offset + lo_tile
                        nt_fill += 1
                    if hi_tile < n_tiles and (strategy == INSERTION or hi_tile != lo_tile):
                        tile_rows[nt_fill] = b
                        tile_cols[nt_fill] = tile_offset + hi_tile
                        nt_fill += 1
        # QC
        length = y + 1 - s
        qc[b, QC_FRAGMENTS] += 1
        qc[b, QC_READS] += count[i]
        qc[b, QC_IN_PEAKS] += in_peak
        if length < NFR_MAX:
            qc[b, QC_NFR] += 1
        elif length < MONO_MAX:
            qc[b, QC_MONO] += 1
        if n_tss > 0:
            t1 = _advance(tss, t1, s - FLANK_OUTER - 1)
            t6 = _advance(tss, t6, s + FLANK_OUTER)
            u6 = _advance(tss, t6, y + FLANK_OUTER)
            if u6 == t1:  # no TSS within 2 kb of either insertion: the other pointers meet t1
                t2 = t3 = t4 = t5 = t1
            else:
                t2 = _advance(tss, t2, s - FLANK_INNER)
                t3 = _advance(tss, t3, s - TSS_WINDOW - 1)
                t4 = _advance(tss, t4, s + TSS_WINDOW)
                t5 = _advance(tss, t5, s + FLANK_INNER - 1)
                window = t4 - t3
                flank = (t2 - t1) + (t6 - t5)
                u1 = _advance(tss, t1, y - FLANK_OUTER - 1)
                u2 = _advance(tss, t2, y - FLANK_INNER)
                u3 = _advance(tss, t3, y - TSS_WINDOW - 1)
                u4 = _advance(tss, t4, y + TSS_WINDOW)
                u5 = _advance(tss, t5, y + FLANK_INNER - 1)
                window += u4 - u3
                flank += (u2 - u1) + (u6 - u5)
                qc[b, QC_TSS] += window
                qc[b, QC_FLANK] += flank
        i += 1
    fill[0] = np_fill
    fill[1] = nt_fill
    return i


@njit(cache=True, nogil=True)
def csr_from_pairs(
    rows: np.ndarray, cols: np.ndarray, row_of: np.ndarray, n_rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """CSR ``(indptr, indices, data)`` of the pairs ``(row_of[rows], cols)`` with
    ``row_of >= 0`` (others dropped): column indices sorted within rows, duplicate pairs
    summed into ``data`` (int32), no explicit zeros."""
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    m = rows.size
    for j in range(m):
        r = row_of[rows[j]]
        if r >= 0:
            indptr[r + 1] += 1
    for r in range(n_rows):
        indptr[r + 1] += indptr[r]
    placed = np.empty(indptr[n_rows], dtype=np.int32)
    cursor = indptr[:-1].copy()
    for j in range(m):
        r = row_of[rows[j]]
        if r >= 0:
            placed[cursor[r]] = cols[j]
            cursor[r] += 1
    out_ptr = np.zeros(n_rows + 1, dtype=np.int64)
    indices = np.empty(placed.size, dtype=np.int32)
    data = np.empty(placed.size, dtype=np.int32)
    nnz = 0
    for r in range(n_rows):
        a = indptr[r]
        b = indptr[r + 1]
        if b > a:
            seg = placed[a:b]
            for k in range(a + 1, b):
                if placed[k] < placed[k - 1]:
                    seg.sort()
                    break
            prev = seg[0]
            run = 0
            for k in range(seg.size):
                c = seg[k]
                if c != prev:
                    indices[nnz] = prev
                    data[nnz] = run
                    nnz += 1
                    prev = c
                    run = 0
                run += 1
            indices[nnz] = prev
            data[nnz] = run
            nnz += 1
        out_ptr[r + 1] = nnz
    return out_ptr, indices[:nnz].copy(), data[:nnz].copy()
