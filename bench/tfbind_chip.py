"""Real-sequence TF-binding benchmark: ENCODE-DREAM ChIP-seq summits on hg19 22q11.

The data (``encode_chr22/`` of the shared test data): the real hg19 sequence of
chr22:16.05-22.0 Mb and every chr22 ChIP-seq peak of the ENCODE-DREAM challenge. Per TF:

- positives: windows centred on the TF's conservative summits, pooled over cell types (summits
  closer than half a window merged, the strongest kept);
- negatives: genomic windows from the same region with no peak (conservative or relaxed, any cell
  type) of the TF, GC-matched to the positives of the same block (``ratio`` per positive);
- a second, separate negative set: one dinucleotide shuffle of each positive.

Windows must be real bases only and outside the blacklists. The region is cut into contiguous
blocks holding equal numbers of conservative summits (all TFs and cell types); a window belongs to the block of its centre and windows whose
extended span crosses a block boundary are dropped, so no training window overlaps a held-out one.

Scores: the multi-task scFAN trunk (sequence only), the best PWM for the TF (log-odds maximum over
the window, both strands; the motif chosen on the training blocks), a logistic regression on
reverse-complement-collapsed 6-mer counts, and GC content.
"""

from __future__ import annotations

import gzip
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from numpy.typing import NDArray

from scregnet.errors import InputError
from scregnet.stats import auprc, auroc
from scregnet.tfbind.data import merge_intervals, one_hot
from scregnet.tfbind.motifs import Motif, MotifScanner, read_motifs
from tfbind_sequences import dinucleotide_shuffle

log = logging.getLogger(__name__)

FASTA = "hg19_chr22_1-22Mb.fa.gz"
PEAKS = "encode_dream_chip_chr22.narrowPeak.tsv.gz"
BLACKLISTS = ("blacklist.bed.gz", "wgEncodeDacMapabilityConsensusExcludable.bed.gz")
HOCOMOCO = "HOCOMOCOv9.meme"
JASPAR = ("motifs/JASPAR2022_vertebrates.pfm", "motifs/JASPAR2022_vertebrates.motif2factors.txt")
#: the sequenced, gap-free stretches of the FASTA (0-based, half-open)
REAL_SEGMENTS = ((16_050_000, 16_697_850), (16_847_850, 20_509_431), (20_609_431, 22_000_000))

# A, C, G, T = 0..3, anything else 4
_CODE = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate("ACGT"):
    _CODE[ord(_b)] = _i
    _CODE[ord(_b.lower())] = _i


@dataclass
class Region:
    """Sequence codes (0-3 = ACGT, 4 = other), peaks and blacklist of the benchmark region."""

    codes: NDArray[np.uint8]
    peaks: pd.DataFrame
    black_starts: NDArray[np.int64]
    black_ends: NDArray[np.int64]


def read_region(folder: Path) -> Region:
    """Read the FASTA (one record), the narrowPeak table and the blacklists of ``encode_chr22``."""
    fasta = folder / FASTA
    if not fasta.exists():
        msg = "FASTA of the encode_chr22 benchmark does not exist"
        raise InputError(msg, fasta)
    with gzip.open(fasta, "rb") as handle:
        lines = handle.read().split(b"\n")
    if not lines[0].startswith(b">"):
        msg = "not a FASTA file (no '>' header)"
        raise InputError(msg, fasta)
    seq = b"".join(line.strip() for line in lines[1:] if not line.startswith(b">"))
    codes = _CODE[np.frombuffer(seq, dtype=np.uint8)]
    table = pd.read_csv(folder / PEAKS, sep="\t", header=None)
    if table.shape[1] != 11:
        msg = f"expected 10 narrowPeak columns + a source column, got {table.shape[1]} columns"
        raise InputError(msg, folder / PEAKS)
    parts = table[10].str.split(".", expand=True)
    peaks = pd.DataFrame(
        {
            "start": table[1].to_numpy(np.int64),
            "end": table[2].to_numpy(np.int64),
            "summit": (table[1] + table[9]).to_numpy(np.int64),
            "signal": table[6].to_numpy(np.float64),
            "cell": parts[1].to_numpy(),
            "tf": parts[2].to_numpy(),
            "conservative": (parts[3] == "conservative").to_numpy(),
        }
    )
    peaks = peaks[table[0].to_numpy() == "chr22"].reset_index(drop=True)
    starts, ends = [], []
    for name in BLACKLISTS:
        bed = pd.read_csv(folder / name, sep="\t", header=None, usecols=[0, 1, 2])
        bed = bed[bed[0] == "chr22"]
        starts.append(bed[1].to_numpy(np.int64))
        ends.append(bed[2].to_numpy(np.int64))
    bs, be = merge_intervals(np.concatenate(starts), np.concatenate(ends))
    return Region(codes, peaks, bs, be)


def block_bounds(n_blocks: int, summits: NDArray[np.int64]) -> NDArray[np.int64]:
    """Coordinates cutting the region into ``n_blocks`` contiguous blocks holding equal numbers of
    ``summits`` (``n_blocks + 1`` values: region start, the inner cuts, region end)."""
    s = np.sort(summits)
    cuts = [REAL_SEGMENTS[0][0]]
    for k in range(1, n_blocks):
        i = round(s.size * k / n_blocks)
        cuts.append(int((s[i - 1] + s[i]) // 2))
    cuts.append(REAL_SEGMENTS[-1][1])
    return np.asarray(cuts, dtype=np.int64)


def _overlaps(
    starts: NDArray[np.int64], ends: NDArray[np.int64], lo: NDArray[np.int64], hi: NDArray[np.int64]
) -> NDArray[np.bool_]:
    """Whether each ``[lo, hi)`` overlaps any of the sorted, merged intervals."""
    if starts.size == 0:
        return np.zeros(lo.size, dtype=bool)
    k = np.searchsorted(starts, hi, side="left") - 1  # last interval starting before hi
    return (k >= 0) & (ends[np.clip(k, 0, None)] > lo)


@dataclass
class WindowSet:
    """Every window of the benchmark and, per TF and block, its positives and matched negatives."""

    tfs: list[str]
    centres: NDArray[np.int64]
    block: NDArray[np.int64]
    gc: NDArray[np.float64]
    #: ``(n_windows, n_tfs)`` int8: 1 a summit of the TF within ``window // 4`` of the centre,
    #: -1 a peak of the TF overlaps but no summit is that close (masked), 0 no peak of the TF
    labels: NDArray[np.int8]
    #: per TF: window ids of its merged summits and of its GC-matched negatives
    positives: dict[str, NDArray[np.int64]]
    negatives: dict[str, NDArray[np.int64]]
    #: per TF: the cell types whose peaks make up each positive (for per-experiment scores)
    cells: dict[str, list[frozenset[str]]]
    window: int
    margin: int
    n_blocks: int
    bounds: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))


def _valid(
    region: Region, centres: NDArray[np.int64], half: int, bounds: NDArray[np.int64]
) -> NDArray[np.bool_]:
    """Windows ``[c - half, c + half)`` of real bases, off the blacklist, inside one block."""
    lo, hi = centres - half, centres + half
    ok = (lo >= 0) & (hi <= region.codes.size)
    bad = np.concatenate([[0], np.cumsum(region.codes >= 4)])
    ok &= bad[np.clip(hi, 0, bad.size - 1)] - bad[np.clip(lo, 0, bad.size - 1)] == 0
    ok &= ~_overlaps(region.black_starts, region.black_ends, lo, hi)
    inner = bounds[1:-1]
    if inner.size:
        j = np.searchsorted(inner, centres)
        left = np.where(j > 0, inner[np.clip(j - 1, 0, None)], -(10**12))
        right = np.where(j < inner.size, inner[np.clip(j, 0, inner.size - 1)], 10**12)
        ok &= (lo >= left) & (hi <= right)
    return ok


def _gc(region: Region, centres: NDArray[np.int64], half: int) -> NDArray[np.float64]:
    gc = np.concatenate([[0], np.cumsum((region.codes == 1) | (region.codes == 2))])
    return (gc[centres + half] - gc[centres - half]) / (2 * half)


def merge_summits(
    summits: NDArray[np.int64], signal: NDArray[np.float64], distance: int
) -> tuple[NDArray[np.int64], list[NDArray[np.int64]]]:
    """Greedy merge of summits closer than ``distance`` to a cluster's first one; keeps each
    cluster's strongest summit. Returns the kept summits and each cluster's member indices."""
    order = np.argsort(summits, kind="stable")
    kept: list[int] = []
    members: list[NDArray[np.int64]] = []
    i = 0
    while i < order.size:
        j = i
        while j + 1 < order.size and summits[order[j + 1]] - summits[order[i]] < distance:
            j += 1
        group = order[i : j + 1]
        kept.append(int(group[np.argmax(signal[group])]))
        members.append(group)
        i = j + 1
    return summits[np.asarray(kept, dtype=np.int64)], members


def matched_negatives(
    pos_gc: NDArray[np.float64],
    cand_gc: NDArray[np.float64],
    *,
    ratio: int,
    rng: np.random.Generator,
    width: float = 0.02,
) -> NDArray[np.int64]:
    """Indices into ``cand_gc``: ``ratio`` per positive drawn from its GC bin (``width`` wide),
    without replacement; a bin short of candidates is topped up with the unused candidates of
    nearest GC."""
    used = np.zeros(cand_gc.size, dtype=bool)
    out: list[NDArray[np.int64]] = []
    pos_bin = np.floor(pos_gc / width).astype(np.int64)
    cand_bin = np.floor(cand_gc / width).astype(np.int64)
    for b, n in zip(*np.unique(pos_bin, return_counts=True), strict=True):
        need = int(n) * ratio
        pool = np.flatnonzero((cand_bin == b) & ~used)
        take = rng.choice(pool, min(need, pool.size), replace=False) if pool.size else pool
        used[take] = True
        out.append(take)
        short = need - take.size
        if short > 0:
            free = np.flatnonzero(~used)
            near = free[np.argsort(np.abs(cand_gc[free] - (b + 0.5) * width), kind="stable")]
            extra = near[:short]
            used[extra] = True
            out.append(extra)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def build_windows(
    region: Region,
    *,
    tfs: Sequence[str] | None = None,
    window: int = 200,
    margin: int = 20,
    n_blocks: int = 3,
    ratio: int = 5,
    stride: int = 50,
    min_peaks: int = 50,
    seed: int = 0,
) -> WindowSet:
    """Positive and GC-matched background windows for the TFs with >= ``min_peaks`` merged
    summits (or the given ``tfs``). ``margin`` extra bases each side allow shift augmentation."""
    rng = np.random.default_rng(seed)
    half = window // 2 + margin
    peaks = region.peaks
    in_region = (peaks["summit"] >= REAL_SEGMENTS[0][0]) & (peaks["summit"] < REAL_SEGMENTS[-1][1])
    cons = peaks[in_region & peaks["conservative"]]
    # blocks with equal numbers of (unmerged) conservative summits of every TF
    bounds = block_bounds(n_blocks, cons["summit"].to_numpy())
    names = sorted(cons["tf"].unique()) if tfs is None else list(tfs)
    site = _tf_sites(region, cons, names, half, bounds, window, min_peaks if tfs is None else 0)
    names = [tf for tf in names if tf in site]
    if not names:
        msg = f"no TF has {min_peaks} or more summits in the benchmark region"
        raise InputError(msg)
    # background candidates on a grid
    grid = np.concatenate([np.arange(s + half, e - half, stride) for s, e in REAL_SEGMENTS])
    grid = grid[(grid >= bounds[0]) & (grid < bounds[-1])]
    grid = grid[_valid(region, grid, half, bounds)]
    grid_gc = _gc(region, grid, window // 2)
    grid_block = np.searchsorted(bounds[1:-1], grid, side="right")
    any_peak: dict[str, tuple[NDArray[np.int64], NDArray[np.int64]]] = {}
    for tf in names:
        p = peaks[peaks["tf"] == tf]
        any_peak[tf] = merge_intervals(p["start"].to_numpy(), p["end"].to_numpy())
    centres: list[NDArray[np.int64]] = []
    pos_ids: dict[str, NDArray[np.int64]] = {}
    neg_grid: dict[str, NDArray[np.int64]] = {}
    n = 0
    for tf in names:
        summits, _ = site[tf]
        pos_ids[tf] = np.arange(n, n + summits.size)
        centres.append(summits)
        n += summits.size
        free = ~_overlaps(*any_peak[tf], grid - half, grid + half)
        sblock = np.searchsorted(bounds[1:-1], summits, side="right")
        sgc = _gc(region, summits, window // 2)
        picks = []
        for b in range(n_blocks):
            cand = np.flatnonzero(free & (grid_block == b))
            take = matched_negatives(sgc[sblock == b], grid_gc[cand], ratio=ratio, rng=rng)
            picks.append(cand[take])
        neg_grid[tf] = np.concatenate(picks)
    used = np.unique(np.concatenate(list(neg_grid.values())))
    bg_id = np.full(grid.size, -1, dtype=np.int64)
    bg_id[used] = np.arange(n, n + used.size)
    centres.append(grid[used])
    all_centres = np.concatenate(centres)
    neg_ids = {tf: bg_id[g] for tf, g in neg_grid.items()}
    labels = _window_labels(all_centres, names, site, any_peak, pos_ids, half, window)
    ws = WindowSet(
        tfs=names,
        centres=all_centres,
        block=np.searchsorted(bounds[1:-1], all_centres, side="right"),
        gc=_gc(region, all_centres, window // 2),
        labels=labels,
        positives=pos_ids,
        negatives=neg_ids,
        cells={tf: site[tf][1] for tf in names},
        window=window,
        margin=margin,
        n_blocks=n_blocks,
        bounds=bounds,
    )
    log.info(
        "%d windows: %d positives of %d TF(s), %d background; blocks cut at %s",
        all_centres.size,
        n,
        len(names),
        used.size,
        ", ".join(str(int(b)) for b in bounds),
    )
    return ws


def _tf_sites(
    region: Region,
    cons: pd.DataFrame,
    names: list[str],
    half: int,
    bounds: NDArray[np.int64],
    window: int,
    min_peaks: int,
) -> dict[str, tuple[NDArray[np.int64], list[frozenset[str]]]]:
    """Per TF with at least ``min_peaks`` of them: its conservative summits with valid windows,
    merged within half a window, and the experiments (cells) behind each merged summit."""
    site: dict[str, tuple[NDArray[np.int64], list[frozenset[str]]]] = {}
    for tf in names:
        p = cons[cons["tf"] == tf]
        ok = _valid(region, p["summit"].to_numpy(), half, bounds)
        p = p[ok]
        summits, members = merge_summits(
            p["summit"].to_numpy(), p["signal"].to_numpy(), window // 2
        )
        cells = [frozenset(p["cell"].to_numpy()[m]) for m in members]
        if summits.size < min_peaks:
            continue
        site[tf] = (summits, cells)
    return site


def _window_labels(
    centres: NDArray[np.int64],
    names: list[str],
    site: dict[str, tuple[NDArray[np.int64], list[frozenset[str]]]],
    any_peak: dict[str, tuple[NDArray[np.int64], NDArray[np.int64]]],
    pos_ids: dict[str, NDArray[np.int64]],
    half: int,
    window: int,
) -> NDArray[np.int8]:
    """(windows x TFs) labels: 1 within a quarter window of a summit (and every TF's own
    positives), -1 overlapping any of its peaks otherwise (ambiguous), else 0."""
    labels = np.zeros((centres.size, len(names)), dtype=np.int8)
    near = window // 4
    for k, tf in enumerate(names):
        overl = _overlaps(*any_peak[tf], centres - half, centres + half)
        summits = np.sort(site[tf][0])
        j = np.searchsorted(summits, centres)
        d = np.minimum(
            np.abs(centres - summits[np.clip(j - 1, 0, summits.size - 1)]),
            np.abs(summits[np.clip(j, 0, summits.size - 1)] - centres),
        )
        labels[:, k] = np.where(d <= near, 1, np.where(overl, -1, 0))
        labels[pos_ids[tf], k] = 1
    return labels


def one_hot_windows(region: Region, centres: NDArray[np.int64], half: int) -> NDArray[np.float32]:
    """``(n, 4, 2 * half)`` one-hot of ``[c - half, c + half)`` (all zero at non-ACGT)."""
    idx = centres[:, None] + np.arange(-half, half)[None, :]
    codes = region.codes[idx]
    eye = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), dtype=np.float32)])
    return np.ascontiguousarray(eye[codes].transpose(0, 2, 1))


def _codes_to_str(codes: NDArray[np.uint8]) -> str:
    return np.frombuffer(b"ACGTN", dtype=np.uint8)[codes].tobytes().decode("ascii")


def shuffled_windows(
    region: Region, centres: NDArray[np.int64], half: int, *, seed: int
) -> NDArray[np.float32]:
    """One-hot of one dinucleotide shuffle of each window."""
    rng = np.random.default_rng(seed)
    out = np.zeros((centres.size, 4, 2 * half), dtype=np.float32)
    for i, c in enumerate(centres):
        out[i] = one_hot(
            dinucleotide_shuffle(_codes_to_str(region.codes[c - half : c + half]), rng)
        )
    return out


# --------------------------------------------------------------------------------------------
# baselines


def _canonical_kmers(k: int) -> tuple[NDArray[np.int64], int]:
    """Map of every k-mer code (base 4) to its reverse-complement-collapsed feature index."""
    codes = np.arange(4**k)
    digits = (codes[:, None] // 4 ** np.arange(k - 1, -1, -1)[None, :]) % 4
    rc = ((3 - digits[:, ::-1]) * 4 ** np.arange(k - 1, -1, -1)[None, :]).sum(axis=1)
    canon = np.minimum(codes, rc)
    uniq, index = np.unique(canon, return_inverse=True)
    return index.astype(np.int64), int(uniq.size)


def kmer_counts(onehot: NDArray[np.float32], k: int = 6) -> sp.csr_matrix:
    """``(n, features)`` counts of reverse-complement-collapsed k-mers of one-hot windows."""
    base = onehot.argmax(axis=1).astype(np.int64)  # windows hold ACGT only
    n, length = base.shape
    code = np.zeros((n, length - k + 1), dtype=np.int64)
    for j in range(k):
        code = code * 4 + base[:, j : j + length - k + 1]
    index, n_feat = _canonical_kmers(k)
    rows = np.repeat(np.arange(n), code.shape[1])
    m = sp.csr_matrix(
        (np.ones(rows.size, dtype=np.float32), (rows, index[code.ravel()])), shape=(n, n_feat)
    )
    m.sum_duplicates()
    return m


def fit_kmer(x: sp.csr_matrix, y: NDArray[np.int64], *, c: float) -> Any:
    """L2 logistic regression on log1p k-mer counts (balanced class weights)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
    model.fit(x.log1p(), y)
    return model


def read_meme(path: str | Path, *, sites: float = 100.0) -> list[Motif]:
    """Read a MEME-format motif file (``MOTIF id [name]`` then a ``letter-probability matrix``
    of rows A C G T per position); probabilities become counts out of ``nsites`` (else
    ``sites``)."""
    path = Path(path)
    if not path.exists():
        msg = "motif file does not exist"
        raise InputError(msg, path)
    motifs: list[Motif] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        text = lines[i].strip()
        i += 1
        if not text.startswith("MOTIF"):
            continue
        fields = text.split()
        motif_id = fields[1] if len(fields) > 1 else f"motif{len(motifs) + 1}"
        name = fields[2] if len(fields) > 2 else motif_id
        while i < len(lines) and not lines[i].strip().startswith("letter-probability"):
            i += 1
        if i == len(lines):
            msg = f"motif {motif_id!r} has no letter-probability matrix"
            raise InputError(msg, path)
        header = lines[i]
        i += 1
        width = re.search(r"w=\s*(\d+)", header)
        nsites = re.search(r"nsites=\s*(\d+(?:\.\d+)?)", header)
        n = float(nsites.group(1)) if nsites and float(nsites.group(1)) > 0 else sites
        rows: list[list[float]] = []
        while i < len(lines) and (width is None or len(rows) < int(width.group(1))):
            # a MEME matrix row is 4 numbers; any other line (URL, blank) ends the matrix
            values = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", lines[i])]
            i += 1
            if len(values) == 4:
                rows.append(values)
            elif rows:
                break
        if not rows:
            msg = f"motif {motif_id!r} has no matrix rows"
            raise InputError(msg, path)
        motifs.append(Motif(motif_id, name, np.asarray(rows, dtype=np.float64).T * n))
    if not motifs:
        msg = "motif file has no MOTIF entries"
        raise InputError(msg, path)
    log.info("read %d motif(s) from %s", len(motifs), path)
    return motifs


def candidate_motifs(
    testdata: Path, tfs: Sequence[str]
) -> tuple[list[Motif], dict[str, list[int]]]:
    """JASPAR 2022 vertebrate and HOCOMOCO v9 motifs, and per TF the indices of those named for
    it (a JASPAR name or dimer part, JASPAR's motif-to-factor table, a HOCOMOCO name)."""
    motifs = list(read_motifs(testdata / JASPAR[0]))
    factor = pd.read_csv(testdata / JASPAR[1], sep="\t")
    names: list[set[str]] = []
    by_id: dict[str, set[str]] = {}
    for mid, fac in zip(factor["Motif"], factor["Factor"], strict=True):
        by_id.setdefault(str(mid), set()).add(str(fac).rsplit(".", 1)[-1].upper())
    for m in motifs:
        names.append({p.upper() for p in m.name.split("::")} | by_id.get(m.motif_id, set()))
    for m in read_meme(testdata / "encode_chr22" / HOCOMOCO):
        motifs.append(m)
        names.append({p.upper() for p in m.name.split("+")})
    per_tf = {tf: [i for i, n in enumerate(names) if tf.upper() in n] for tf in tfs}
    return motifs, per_tf


def pwm_scores(motifs: Sequence[Motif], onehot: NDArray[np.float32]) -> NDArray[np.float64]:
    """``(n, motifs)`` best log-odds over each window, both strands."""
    scanner = MotifScanner(motifs)
    lengths = np.full(onehot.shape[0], onehot.shape[2], dtype=np.int64)
    # windows per chunk: the scan holds (chunk, motifs, positions) floats per strand
    step = max(16, 25_000_000 // (len(motifs) * (onehot.shape[2] + scanner.max_len)))
    out = [
        scanner.max_scores(onehot[i : i + step], lengths[i : i + step])
        for i in range(0, onehot.shape[0], step)
    ]
    return np.concatenate(out) if out else np.zeros((0, len(motifs)))


# --------------------------------------------------------------------------------------------
# the network


@dataclass
class NetConfig:
    """The sequence-only scFAN trunk trained on the benchmark windows."""

    filters: tuple[int, ...] = (64, 64, 64)
    kernel: int = 8
    first_kernel: int = 20
    #: first-block filters start as the TFs' best PWMs (chosen on the training blocks)
    motif_init: bool = True
    #: our extension: the TFs' best PWMs also scanned as fixed input tracks, with a per-TF path
    #: from the best match to the TF's logit (:class:`~scregnet.tfbind.model.ScFAN`)
    motif_tracks: bool = False
    pool: int = 4
    hidden: int = 64
    dropout: tuple[float, ...] = (0.1, 0.1, 0.3)
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    jitter: int = 20
    rc_augment: bool = True
    max_pos_weight: float = 10.0
    seed: int = 0


class _Windows(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Windows cut from wider one-hot spans, shifted by up to ``jitter`` bp when training."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, window: int, jitter: int) -> None:
        self.x, self.y, self.window, self.jitter = x, y, window, jitter
        self.mid = (x.shape[2] - window) // 2

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        off = self.mid
        if self.jitter:
            off += int(torch.randint(-self.jitter, self.jitter + 1, (1,)))
        return self.x[i, :, off : off + self.window], self.y[i]


def train_net(
    x: NDArray[np.float32],
    labels: NDArray[np.int8],
    *,
    window: int,
    config: NetConfig,
    init_motifs: Sequence[Motif] = (),
    motif_tf: Sequence[int] = (),
) -> tuple[Any, dict[str, Any]]:
    """Multi-task scFAN trunk (no accessibility input) on ``x`` ``(n, 4, window + 2 margin)``."""
    from scregnet.seed import seed_everything
    from scregnet.tfbind.model import ModelConfig, ScFAN
    from scregnet.tfbind.train import TrainConfig, fit, pos_weights

    seed_everything(config.seed)
    model = ScFAN(
        ModelConfig(
            n_tfs=labels.shape[1],
            window=window,
            use_accessibility=False,
            filters=config.filters,
            kernel=config.kernel,
            first_kernel=config.first_kernel,
            pool=config.pool,
            dropout=config.dropout,
            hidden=config.hidden,
            n_motifs=len(motif_tf) if config.motif_tracks else 0,
            motif_width=max((m.counts.shape[1] for m in init_motifs), default=0)
            if config.motif_tracks
            else 0,
            motif_tf=tuple(motif_tf) if config.motif_tracks else (),
            motif_centre=window,
        )
    )
    if config.motif_tracks:
        model.set_motifs([torch.from_numpy(m.log_odds()) for m in init_motifs])
    if config.motif_init and init_motifs:
        model.init_motif_filters([torch.from_numpy(m.log_odds()) for m in init_motifs])
    margin = (x.shape[2] - window) // 2
    tc = TrainConfig(
        epochs=config.epochs,
        patience=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        rc_augment=config.rc_augment,
        use_accessibility=False,
        seed=config.seed,
    )
    data = _Windows(
        torch.from_numpy(x),
        torch.from_numpy(labels.astype(np.float32)),
        window,
        min(config.jitter, margin),
    )
    result = fit(
        model,
        data,
        None,
        pos_weight=pos_weights(labels, cap=config.max_pos_weight),
        config=tc,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(config.seed),
    )
    return model, result


def net_logits(model: Any, x: NDArray[np.float32], *, window: int) -> NDArray[np.float64]:
    """Strand-averaged logits ``(n, n_tfs)`` of the central ``window`` bp."""
    from scregnet.tfbind.train import dataset_logits

    mid = (x.shape[2] - window) // 2
    xs = torch.from_numpy(np.ascontiguousarray(x[:, :, mid : mid + window]))
    ds = torch.utils.data.TensorDataset(xs, torch.zeros(xs.shape[0], 1))
    logits, _ = dataset_logits(model, ds, device=torch.device("cpu"), batch_size=512)
    return logits.astype(np.float64)


# --------------------------------------------------------------------------------------------
# the benchmark


def _metrics(y: NDArray[np.int64], s: NDArray[np.float64]) -> tuple[float, float]:
    return auprc(y, s), auroc(y, s)


def evaluate(
    region: Region,
    ws: WindowSet,
    motifs: Sequence[Motif],
    motif_ids: dict[str, list[int]],
    *,
    folds: Sequence[tuple[Sequence[int], int]],
    net: NetConfig,
    kmer_c: float = 0.01,
    experiments_min: int = 50,
    seed: int = 0,
) -> dict[str, Any]:
    """Train on each fold's training blocks, score its held-out block; per TF the metrics of each
    held-out block and their positive-weighted mean over blocks."""
    t0 = time.perf_counter()
    feats = _Features.build(region, ws, motifs, motif_ids, seed=seed)
    log.info("features: %.1f s", time.perf_counter() - t0)
    out: dict[str, Any] = {tf: {"blocks": {}} for tf in ws.tfs}
    timing: dict[str, float] = {"train_s": 0.0, "predict_s": 0.0, "windows_trained": 0.0}
    for train_blocks, test_block in folds:
        tr = np.isin(ws.block, list(train_blocks))
        init, init_tf = _init_motifs(ws, motifs, motif_ids, feats, tr)
        t1 = time.perf_counter()
        model, fit_info = train_net(
            feats.x_ext[tr],
            ws.labels[tr],
            window=ws.window,
            config=net,
            init_motifs=init,
            motif_tf=init_tf,
        )
        timing["train_s"] += time.perf_counter() - t1
        timing["windows_trained"] += float(tr.sum()) * len(fit_info["history"])
        t1 = time.perf_counter()
        logits = net_logits(model, feats.x_ext, window=ws.window)
        logits_shuf = net_logits(model, feats.x_shuf, window=ws.window)
        timing["predict_s"] += time.perf_counter() - t1
        for k, tf in enumerate(ws.tfs):
            res = _score_block(
                ws,
                k,
                train_blocks,
                test_block,
                motifs,
                motif_ids,
                feats,
                logits[:, k],
                logits_shuf[:, k],
                kmer_c=kmer_c,
                experiments_min=experiments_min,
            )
            if res is not None:
                out[tf]["blocks"][str(test_block)] = res
    timing["seconds"] = time.perf_counter() - t0
    return {"per_tf": out, "timing": timing}


METRICS = (
    "auprc_model",
    "auprc_pwm",
    "auprc_kmer",
    "auprc_gc",
    "auroc_model",
    "auroc_pwm",
    "auroc_kmer",
    "auroc_gc",
    "shuffle_auprc_model",
    "shuffle_auprc_pwm",
    "shuffle_auprc_kmer",
    "shuffle_auroc_model",
    "shuffle_auroc_pwm",
    "shuffle_auroc_kmer",
)


@dataclass
class _Features:
    """The benchmark's per-window inputs: one-hot windows (with margin), k-mer counts, named PWM
    scores, and the same for dinucleotide shuffles of every positive window."""

    x_ext: NDArray[np.float32]
    x: NDArray[np.float32]
    kmers: sp.csr_matrix
    #: named candidate motifs' scores (windows x motifs), and each motif's column
    pwm_named: NDArray[np.float64]
    col: dict[int, int]
    x_shuf: NDArray[np.float32]
    #: each positive window's row in the shuffled arrays
    shuf_row: dict[int, int]
    pwm_shuf: NDArray[np.float64] | None
    kmers_shuf: sp.csr_matrix
    #: motifs of ``motifs`` that are JASPAR's (the candidates of TFs with none named)
    n_jaspar: int

    @classmethod
    def build(
        cls,
        region: Region,
        ws: WindowSet,
        motifs: Sequence[Motif],
        motif_ids: dict[str, list[int]],
        *,
        seed: int,
    ) -> _Features:
        half = ws.window // 2
        x_ext = one_hot_windows(region, ws.centres, half + ws.margin)
        x = np.ascontiguousarray(x_ext[:, :, ws.margin : ws.margin + ws.window])
        # PWM: named candidates on every window; TFs without any: every JASPAR motif on their
        # windows
        named = sorted({i for ids in motif_ids.values() for i in ids})
        pwm_named = pwm_scores([motifs[i] for i in named], x) if named else np.zeros((len(x), 0))
        all_pos = np.unique(np.concatenate([ws.positives[tf] for tf in ws.tfs]))
        x_shuf = shuffled_windows(region, ws.centres[all_pos], half, seed=seed)
        return cls(
            x_ext=x_ext,
            x=x,
            kmers=kmer_counts(x),
            pwm_named=pwm_named,
            col={m: j for j, m in enumerate(named)},
            x_shuf=x_shuf,
            shuf_row={int(w): i for i, w in enumerate(all_pos)},
            pwm_shuf=pwm_scores([motifs[i] for i in named], x_shuf) if named else None,
            kmers_shuf=kmer_counts(x_shuf),
            n_jaspar=sum(1 for m in motifs if m.motif_id.startswith("MA")),
        )


def _init_motifs(
    ws: WindowSet,
    motifs: Sequence[Motif],
    motif_ids: dict[str, list[int]],
    feats: _Features,
    tr: NDArray[np.bool_],
) -> tuple[list[Motif], list[int]]:
    """Each TF's best named PWM on the training windows ``tr`` (first-layer initialisation) and
    the TFs' indices; TFs with no named motif or fewer than 5 training positives get none."""
    init: list[Motif] = []
    init_tf: list[int] = []
    for k, tf in enumerate(ws.tfs):
        ids = motif_ids.get(tf, [])
        pos, neg = ws.positives[tf], ws.negatives[tf]
        ptr, ntr = pos[tr[pos]], neg[tr[neg]]
        if not ids or ptr.size < 5:
            continue
        y_tr = np.r_[np.ones(ptr.size), np.zeros(ntr.size)].astype(np.int64)
        cand = feats.pwm_named[np.r_[ptr, ntr]][:, [feats.col[i] for i in ids]]
        ap = [auprc(y_tr, cand[:, j]) for j in range(cand.shape[1])]
        init.append(motifs[ids[int(np.argmax(ap))]])
        init_tf.append(k)
    return init, init_tf


def _score_block(
    ws: WindowSet,
    k: int,
    train_blocks: Sequence[int],
    test_block: int,
    motifs: Sequence[Motif],
    motif_ids: dict[str, list[int]],
    feats: _Features,
    logit: NDArray[np.float64],
    logit_shuf: NDArray[np.float64],
    *,
    kmer_c: float,
    experiments_min: int,
) -> dict[str, Any] | None:
    """TF ``k``'s metrics on the held-out block: the network (``logit``), the best PWM and the
    k-mer model chosen/fitted on the training blocks, GC; also against dinucleotide shuffles of
    the held-out positives and per experiment. None when either side has < 5 positives."""
    tf = ws.tfs[k]
    pos, neg = ws.positives[tf], ws.negatives[tf]
    ptr, pte = pos[np.isin(ws.block[pos], list(train_blocks))], pos[ws.block[pos] == test_block]
    ntr, nte = neg[np.isin(ws.block[neg], list(train_blocks))], neg[ws.block[neg] == test_block]
    if pte.size < 5 or ptr.size < 5:
        return None
    y_tr = np.r_[np.ones(ptr.size), np.zeros(ntr.size)].astype(np.int64)
    y_te = np.r_[np.ones(pte.size), np.zeros(nte.size)].astype(np.int64)
    idx_tr, idx_te = np.r_[ptr, ntr], np.r_[pte, nte]
    # best PWM on the training blocks
    ids = motif_ids.get(tf, [])
    srows = np.asarray([feats.shuf_row[int(w)] for w in pte], dtype=np.int64)
    if ids:
        cols = [feats.col[i] for i in ids]
        cand_tr, cand_te = feats.pwm_named[idx_tr][:, cols], feats.pwm_named[idx_te][:, cols]
        assert feats.pwm_shuf is not None
        cand_sh = feats.pwm_shuf[srows][:, cols]
        source = "named"
    else:
        ids = list(range(feats.n_jaspar))
        every = [motifs[i] for i in ids]
        cand_tr, cand_te = pwm_scores(every, feats.x[idx_tr]), pwm_scores(every, feats.x[idx_te])
        cand_sh = pwm_scores(every, feats.x_shuf[srows])
        source = "any JASPAR (none named for the TF)"
    train_ap = [auprc(y_tr, cand_tr[:, j]) for j in range(cand_tr.shape[1])]
    best = int(np.argmax(train_ap))
    # k-mer model on the training blocks' positives and matched negatives
    km = fit_kmer(feats.kmers[idx_tr], y_tr, c=kmer_c)
    kmer_te = km.decision_function(feats.kmers[idx_te].log1p())
    res: dict[str, Any] = {"n_pos": int(pte.size), "n_neg": int(nte.size)}
    res["auprc_model"], res["auroc_model"] = _metrics(y_te, logit[idx_te])
    res["auprc_pwm"], res["auroc_pwm"] = _metrics(y_te, cand_te[:, best])
    res["auprc_kmer"], res["auroc_kmer"] = _metrics(y_te, kmer_te)
    res["auprc_gc"], res["auroc_gc"] = _metrics(y_te, ws.gc[idx_te])
    res["pwm_motif"] = f"{motifs[ids[best]].motif_id} {motifs[ids[best]].name}"
    res["pwm_source"] = source
    # against dinucleotide shuffles of the same held-out positives
    y_sh = np.r_[np.ones(pte.size), np.zeros(pte.size)].astype(np.int64)
    res["shuffle_auprc_model"], res["shuffle_auroc_model"] = _metrics(
        y_sh, np.r_[logit[pte], logit_shuf[srows]]
    )
    res["shuffle_auprc_pwm"], res["shuffle_auroc_pwm"] = _metrics(
        y_sh, np.r_[cand_te[: pte.size, best], cand_sh[:, best]]
    )
    res["shuffle_auprc_kmer"], res["shuffle_auroc_kmer"] = _metrics(
        y_sh,
        np.r_[kmer_te[: pte.size], km.decision_function(feats.kmers_shuf[srows].log1p())],
    )
    res["experiments"] = _per_experiment(
        ws.cells[tf],
        int(pos[0]),
        pte,
        nte.size,
        [logit[idx_te], cand_te[:, best], kmer_te],
        experiments_min=experiments_min,
    )
    return res


def _per_experiment(
    cells: list[frozenset[str]],
    first: int,
    pte: NDArray[np.int64],
    n_neg: int,
    scores: list[NDArray[Any]],
    *,
    experiments_min: int,
) -> dict[str, Any]:
    """AUPRC of the model, PWM and k-mer ``scores`` (held-out positives then negatives) per
    experiment (cell type) with at least ``experiments_min`` summits in the region and 5 held
    out; the negatives are shared."""
    exp: dict[str, Any] = {}
    for cell in sorted({c for cs in cells for c in cs}):
        has = np.asarray([cell in cs for cs in cells])
        if has.sum() < experiments_min:
            continue
        sel = has[pte - first]
        if sel.sum() < 5:
            continue
        y_e = np.r_[np.ones(int(sel.sum())), np.zeros(n_neg)].astype(np.int64)
        keep = np.r_[sel, np.ones(n_neg, dtype=bool)]
        model, pwm, kmer = scores
        exp[cell] = {
            "n_pos": int(sel.sum()),
            "auprc_model": auprc(y_e, model[keep]),
            "auprc_pwm": auprc(y_e, pwm[keep]),
            "auprc_kmer": auprc(y_e, kmer[keep]),
        }
    return exp


def summarise(ws: WindowSet, per_tf: dict[str, Any]) -> dict[str, Any]:
    """Per TF: each metric's mean over held-out blocks weighted by their positives; per
    experiment likewise."""
    tfs: dict[str, Any] = {}
    for tf in ws.tfs:
        blocks = per_tf[tf]["blocks"]
        if not blocks:
            continue
        w = np.asarray([b["n_pos"] for b in blocks.values()], dtype=np.float64)
        entry: dict[str, Any] = {"n_peaks": int(ws.positives[tf].size)}
        for m in METRICS:
            entry[m] = float(np.average([b[m] for b in blocks.values()], weights=w))
        entry["pwm_motif"] = sorted({b["pwm_motif"] for b in blocks.values()})
        entry["pwm_source"] = next(iter(blocks.values()))["pwm_source"]
        exps: dict[str, Any] = {}
        for b in blocks.values():
            for cell, e in b["experiments"].items():
                exps.setdefault(cell, []).append(e)
        entry["experiments"] = {
            cell: {
                "n_pos": int(sum(e["n_pos"] for e in es)),
                **{
                    m: float(np.average([e[m] for e in es], weights=[e["n_pos"] for e in es]))
                    for m in ("auprc_model", "auprc_pwm", "auprc_kmer")
                },
            }
            for cell, es in exps.items()
        }
        entry["blocks"] = blocks
        tfs[tf] = entry
    return tfs


def headline(tfs: dict[str, Any], *, min_peaks: int = 100) -> dict[str, Any]:
    """Means over TFs with >= ``min_peaks`` merged summits, and the issue's bar."""
    sel = {tf: e for tf, e in tfs.items() if e["n_peaks"] >= min_peaks}
    if not sel:
        return {"n_tfs": 0}
    mean = {m: float(np.mean([e[m] for e in sel.values()])) for m in METRICS}
    wins = sum(e["auprc_model"] > e["auprc_pwm"] for e in sel.values())
    return {
        "min_peaks": min_peaks,
        "n_tfs": len(sel),
        "tfs": sorted(sel),
        **{f"mean_{m}": v for m, v in mean.items()},
        "model_beats_pwm": int(wins),
        "bar_pwm_plus_0.05": bool(mean["auprc_model"] >= mean["auprc_pwm"] + 0.05),
        "bar_kmer": bool(mean["auprc_model"] >= mean["auprc_kmer"]),
        "bar_majority": bool(wins > len(sel) / 2),
    }
