"""scATAC fragments (nucleosome ladder, TSS-centred open chromatin) and paired-end BAM writing.

Fragments are Tn5 insertion pairs ``[start, end)`` in the 10x convention. Reads are written so that
the standard shifts recover them exactly: the left read starts at ``start - 4`` and the right read
ends at ``end + 5`` (the fragment tools' +4 / -5 Tn5 shift).

The BAM is built as SAM text with vectorised numpy/string operations, already in coordinate order,
and converted by pysam's bundled samtools (``view -b --no-PG``) and indexed (``index``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pysam

from scregnet import __version__
from scregnet.simulate.world import World

log = logging.getLogger(__name__)

# fragment-length mixture: (weight in peaks, weight in background, mean, sd)
NFR_MEDIAN, NFR_SDLOG = 70.0, 0.35
NUCLEOSOMAL = ((200.0, 22.0), (390.0, 30.0), (580.0, 40.0))  # mono, di, tri
PEAK_MIX = (0.62, 0.28, 0.08, 0.02)  # NFR, mono, di, tri in open chromatin
BACKGROUND_MIX = (0.20, 0.50, 0.22, 0.08)
MIN_FRAGMENT, MAX_FRAGMENT = 30, 1_000
PEAK_SPREAD = 6.0  # insertion sd = peak width / PEAK_SPREAD
CLOSED_LEAK = 0.02  # relative accessibility of a closed peak
DUPLICATE_RATE = 0.25  # mean extra PCR copies per fragment (Poisson)
LOW_MAPQ_RATE = 0.04
NO_BARCODE_RATE = 0.01
IMPROPER_RATE = 0.005
SECONDARY_RATE = 0.005


@dataclass
class Fragments:
    """Fragments of many barcodes: chromosome index, 0-based half-open interval and barcode index."""

    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray
    barcode: np.ndarray

    def __len__(self) -> int:
        return int(self.chrom.size)


def fragment_lengths(rng: np.random.Generator, n: int, mix: tuple[float, ...]) -> np.ndarray:
    """Lengths from the nucleosome-free / mono / di / tri-nucleosome mixture."""
    comp = rng.choice(4, size=n, p=np.array(mix) / sum(mix))
    out = np.empty(n)
    nfr = comp == 0
    out[nfr] = np.clip(
        rng.lognormal(np.log(NFR_MEDIAN), NFR_SDLOG, int(nfr.sum())), MIN_FRAGMENT, 146
    )
    for k, (mu, sd) in enumerate(NUCLEOSOMAL, start=1):
        sel = comp == k
        out[sel] = rng.normal(mu, sd, int(sel.sum()))
    return np.clip(np.round(out), MIN_FRAGMENT, MAX_FRAGMENT).astype(np.int64)


def peak_weights(world: World) -> np.ndarray:
    """(n_cell_types, n_peaks) probability of a peak fragment landing in each peak."""
    strength = world.peaks.strength.to_numpy()
    w = strength[None, :] * np.where(world.open, 1.0, CLOSED_LEAK)
    return w / w.sum(axis=1, keepdims=True)


_Part = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # chrom index, start, end, barcode


def sample_fragments(
    rng: np.random.Generator,
    world: World,
    cell_type: np.ndarray,
    n_fragments: np.ndarray,
    frip: np.ndarray,
    mito: np.ndarray,
) -> Fragments:
    """Fragments of every barcode ``i`` (``cell_type[i]`` < 0: no cell, background only).

    Each barcode's fragments split into peaks (fraction ``frip``), chrM (``mito``) and background.
    """
    chroms = list(world.genome.sequences)
    chrom_no = {c: i for i, c in enumerate(chroms)}
    n_peak = rng.binomial(n_fragments, np.where(cell_type >= 0, frip, frip * 0.3))
    n_mito = rng.binomial(n_fragments - n_peak, mito)
    n_bg = n_fragments - n_peak - n_mito
    parts = _peak_fragments(rng, world, chrom_no, cell_type, n_peak)
    parts.append(_background_fragments(rng, world, chrom_no, n_bg))
    parts.append(_mito_fragments(rng, world, chrom_no, n_mito))

    chrom = np.concatenate([p[0] for p in parts]).astype(np.int64)
    start = np.concatenate([p[1] for p in parts])
    end = np.concatenate([p[2] for p in parts])
    barcode = np.concatenate([p[3] for p in parts]).astype(np.int64)
    all_sizes = np.array([world.genome.sequences[c].size for c in chroms], dtype=np.int64)
    ok = (start >= 4) & (end + 5 <= all_sizes[chrom])  # room for the reads around the fragment
    return Fragments(chrom[ok], start[ok], end[ok], barcode[ok])


def _peak_fragments(
    rng: np.random.Generator,
    world: World,
    chrom_no: dict[str, int],
    cell_type: np.ndarray,
    n_peak: np.ndarray,
) -> list[_Part]:
    """Open chromatin: ``n_peak[i]`` fragments around the peak centres of barcode ``i``'s type."""
    weights = peak_weights(world)
    peaks = world.peaks
    p_chrom = peaks.chrom.map(chrom_no).to_numpy()
    p_center = peaks.center.to_numpy()
    p_sd = (peaks.end - peaks.start).to_numpy() / PEAK_SPREAD
    parts: list[_Part] = []
    for k in np.unique(cell_type):
        cells = np.flatnonzero(cell_type == k)
        total = int(n_peak[cells].sum())
        if total == 0:
            continue
        w = weights[k] if k >= 0 else weights.mean(axis=0)
        idx = rng.choice(w.size, size=total, p=w)
        owner = np.repeat(cells, n_peak[cells])
        length = fragment_lengths(rng, total, PEAK_MIX)
        anchor = p_center[idx] + rng.normal(0.0, 1.0, total) * p_sd[idx]
        nfr = length < 147
        start = np.where(nfr, anchor - length / 2, 0.0)
        # nucleosomal fragments: one end in the open site, the rest extends outwards
        outward = np.where(anchor >= p_center[idx], 1, -1)
        flip = rng.random(total) < 0.15
        outward = np.where(flip, -outward, outward)
        start = np.where(nfr, start, np.where(outward > 0, anchor, anchor - length))
        start = np.round(start).astype(np.int64)
        parts.append((p_chrom[idx], start, start + length, owner))
    return parts


def _background_fragments(
    rng: np.random.Generator, world: World, chrom_no: dict[str, int], n_bg: np.ndarray
) -> _Part:
    """Background: ``n_bg[i]`` fragments of barcode ``i`` anywhere on the autosomes."""
    auto = world.genome.autosomes
    sizes = np.array([world.genome.sequences[c].size for c in auto], dtype=np.int64)
    total_bg = int(n_bg.sum())
    gpos = rng.integers(0, int(sizes.sum()), total_bg)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    ci = np.searchsorted(offsets, gpos, side="right") - 1
    length = fragment_lengths(rng, total_bg, BACKGROUND_MIX)
    start = gpos - offsets[ci]
    return (
        np.array([chrom_no[auto[c]] for c in range(len(auto))])[ci],
        start,
        start + length,
        np.repeat(np.arange(n_bg.size), n_bg),
    )


def _mito_fragments(
    rng: np.random.Generator, world: World, chrom_no: dict[str, int], n_mito: np.ndarray
) -> _Part:
    """Mitochondrial DNA (not chromatinised: broad lengths): ``n_mito[i]`` of barcode ``i``."""
    total_m = int(n_mito.sum())
    m_len = np.clip(
        np.round(rng.lognormal(np.log(120), 0.6, total_m)), MIN_FRAGMENT, MAX_FRAGMENT
    ).astype(np.int64)
    m_size = world.genome.sequences["chrM"].size
    m_start = rng.integers(0, m_size, total_m)
    return (
        np.full(total_m, chrom_no["chrM"]),
        m_start,
        m_start + m_len,
        np.repeat(np.arange(n_mito.size), n_mito),
    )


def random_barcodes(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct 16 bp barcodes with the 10x ``-1`` suffix."""
    letters = np.array(list("ACGT"))
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        for row in letters[rng.integers(0, 4, (n - len(out), 16))]:
            bc = "".join(row) + "-1"
            if bc not in seen:
                seen.add(bc)
                out.append(bc)
    return out


@dataclass
class _Records:
    """BAM records as parallel arrays: left reads, right reads, then secondary alignments."""

    tid: np.ndarray
    pos: np.ndarray  # 0-based
    flag: np.ndarray
    mapq: np.ndarray
    length: np.ndarray
    pnext: np.ndarray  # 0-based
    tlen: np.ndarray
    pair: np.ndarray
    cb: np.ndarray  # barcode index, -1: no tag


def write_bam(
    rng: np.random.Generator,
    world: World,
    fragments: Fragments,
    barcodes: list[str],
    path: Path,
    *,
    sample: str,
    command_line: str,
    threads: int = 1,
    chunk: int = 400_000,
) -> dict[str, int]:
    """Write ``fragments`` as a coordinate-sorted, indexed paired-end BAM with ``CB:Z`` tags.

    Adds PCR duplicates (unflagged, like an aligner's output before duplicate marking), low-MAPQ
    pairs, pairs without a barcode, improper pairs and secondary alignments. ``threads`` > 1 adds
    BGZF compression threads (the bytes written do not depend on it). Returns counts.
    """
    chroms = list(world.genome.sequences)
    sizes = np.array([world.genome.sequences[c].size for c in chroms], dtype=np.int64)
    records, counts = _draw_records(rng, fragments, sizes, world.preset.read_length)
    header = ["@HD\tVN:1.6\tSO:coordinate"]
    header += [f"@SQ\tSN:{c}\tLN:{s}" for c, s in zip(chroms, sizes.tolist(), strict=True)]
    header.append(f"@PG\tID:scregnet\tPN:scregnet\tVN:{__version__}\tCL:{command_line}")
    sam = path.with_suffix(".sam")
    _write_sam(sam, header, records, chroms, barcodes, f"{sample}:", chunk)
    extra = ["-@", str(threads - 1)] if threads > 1 else []
    pysam.view("-b", "-1", "--no-PG", *extra, "-o", str(path), str(sam), catch_stdout=False)
    sam.unlink()
    pysam.index(str(path))
    log.info("wrote %s: %s", path.name, ", ".join(f"{k}={v}" for k, v in counts.items()))
    return counts


def _draw_records(
    rng: np.random.Generator, fragments: Fragments, sizes: np.ndarray, read_len: int
) -> tuple[_Records, dict[str, int]]:
    """The fragments' read pairs with duplicates, low MAPQ, no barcode, improper, secondaries."""
    n = len(fragments)
    # fragments in genome order, so that the records below are nearly sorted already
    by_position = np.argsort((fragments.chrom << 32) | fragments.start, kind="stable")
    copies = 1 + rng.poisson(DUPLICATE_RATE, n)
    src = np.repeat(by_position, copies)
    mapq_frag = np.where(rng.random(n) < LOW_MAPQ_RATE, rng.integers(0, 30, n), 60)
    m = src.size
    tid = fragments.chrom[src]
    left = fragments.start[src] - 4  # 0-based leftmost base of the left read
    right_end = fragments.end[src] + 5  # exclusive end of the right read
    mapq = mapq_frag[src]
    cb = np.where(rng.random(m) < NO_BARCODE_RATE, -1, fragments.barcode[src])
    improper = rng.random(m) < IMPROPER_RATE
    shift = rng.integers(5_000, 50_000, m)
    moved = improper & (right_end + shift <= sizes[tid])
    right_end = np.where(moved, right_end + shift, right_end)
    proper = ~moved
    rlen_l = np.minimum(read_len, right_end - left)
    rlen_r = rlen_l.copy()
    right = right_end - rlen_r
    tlen = right_end - left
    read1_left = rng.random(m) < 0.5
    # flags: paired 1, proper 2, reverse 16, mate reverse 32, first 64, second 128
    base_flag = 1 + 2 * proper
    flag_l = base_flag + 32 + np.where(read1_left, 64, 128)
    flag_r = base_flag + 16 + np.where(read1_left, 128, 64)
    pair_id = np.arange(m)
    # secondary alignments of the left read somewhere else on the same chromosome
    sec = np.flatnonzero(rng.random(m) < SECONDARY_RATE)
    sec_pos = rng.integers(0, np.maximum(sizes[tid[sec]] - read_len, 1))
    records = _Records(
        tid=np.concatenate([tid, tid, tid[sec]]),
        pos=np.concatenate([left, right, sec_pos]),
        flag=np.concatenate([flag_l, flag_r, flag_l[sec] + 256]),
        mapq=np.concatenate([mapq, mapq, np.zeros(sec.size, dtype=np.int64)]),
        length=np.concatenate([rlen_l, rlen_r, rlen_l[sec]]),
        pnext=np.concatenate([right, left, right[sec]]),
        tlen=np.concatenate([tlen, -tlen, np.zeros(sec.size, dtype=np.int64)]),
        pair=np.concatenate([pair_id, pair_id, pair_id[sec]]),
        cb=np.concatenate([cb, cb, cb[sec]]),
    )
    counts = {
        "fragments": n,
        "read_pairs": m,
        "records": int(records.tid.size),
        "duplicate_pairs": int(m - n),
        "low_mapq_pairs": int((mapq < 30).sum()),
        "no_barcode_pairs": int((cb < 0).sum()),
        "improper_pairs": int(moved.sum()),
        "secondary_records": int(sec.size),
    }
    return records, counts


def _write_sam(
    sam: Path,
    header: list[str],
    r: _Records,
    chroms: list[str],
    barcodes: list[str],
    prefix: str,
    chunk: int,
) -> None:
    """Write the records as SAM text in coordinate order, ``chunk`` records at a time."""
    # coordinate order; ties keep left reads, right reads, secondaries, each by pair id
    order = np.argsort((r.tid << 32) | r.pos, kind="stable")
    tags = ["\tCB:Z:" + b for b in barcodes] + [""]  # index -1 -> no tag
    with open(sam, "w") as handle:
        handle.write("\n".join(header) + "\n")
        for lo in range(0, order.size, chunk):
            o = order[lo : lo + chunk]
            handle.write(
                "".join(
                    [
                        f"{prefix}{q}\t{f}\t{chroms[t]}\t{p}\t{mq}\t{ln}M\t=\t{pn}\t{tl}\t*\t*{tags[c]}\n"
                        for q, f, t, p, mq, ln, pn, tl, c in zip(
                            r.pair[o].tolist(),
                            r.flag[o].tolist(),
                            r.tid[o].tolist(),
                            (r.pos[o] + 1).tolist(),  # SAM is 1-based
                            r.mapq[o].tolist(),
                            r.length[o].tolist(),
                            (r.pnext[o] + 1).tolist(),
                            r.tlen[o].tolist(),
                            r.cb[o].tolist(),
                            strict=True,
                        )
                    ]
                )
            )
