"""Training data for the TF-binding model: bulk sheet, bin labels, window index, streamed windows.

Windows are ``window`` bp (default 1,000) centred on ``bin`` bp bins (default 200). A bin is
labelled 1 for a TF when the TF's ChIP peaks cover more than half of it. The window index holds
only bin coordinates and labels; DNA (pysam) and accessibility (pyBigWig) are read per window, so
nothing is materialised genome-wide.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray

from scregnet.errors import InputError
from scregnet.io.bed import check_within_bounds, read_bed
from scregnet.io.genome import check_same_lengths, open_fasta, read_chrom_sizes
from scregnet.io.tracks import open_bigwig

log = logging.getLogger(__name__)

# A, C, G, T channels; every other byte (N, IUPAC codes) is all-zero
_LUT = np.zeros((256, 4), dtype=np.float32)
for _i, _b in enumerate("ACGT"):
    _LUT[ord(_b), _i] = 1.0
    _LUT[ord(_b.lower()), _i] = 1.0
_NOT_ACGT = np.ones(256, dtype=bool)
_NOT_ACGT[[ord(c) for c in "ACGTacgt"]] = False

#: the scFAN paper's held-out chromosomes (human)
PAPER_TEST_CHROMS = ("chr1", "chr8", "chr21")
PAPER_VAL_CHROMS = ("chr11",)


def one_hot(seq: str) -> NDArray[np.float32]:
    """``(4, len(seq))`` one-hot encoding in A, C, G, T order; N and other codes are all zero."""
    codes = np.frombuffer(seq.encode("ascii"), dtype=np.uint8)
    return np.ascontiguousarray(_LUT[codes].T)


def reverse_complement(x: torch.Tensor) -> torch.Tensor:
    """Reverse complement of ``(batch, 4[+k], length)`` inputs: DNA channels flipped A<->T, C<->G."""
    dna = x[:, :4].flip(dims=(1, 2))
    if x.shape[1] == 4:
        return dna
    return torch.cat([dna, x[:, 4:].flip(dims=(2,))], dim=1)


# --------------------------------------------------------------------------------------------
# bulk sheet


@dataclass
class BulkTrack:
    """One bulk cell type: its accessibility bigWig and the ChIP BED of each assayed TF."""

    cell_type: str
    accessibility_bw: Path
    chip: dict[str, Path] = field(default_factory=dict)


def read_bulk_sheet(path: str | Path) -> list[BulkTrack]:
    """Parse ``tf,chip_bed,accessibility_bw,cell_type`` rows (paths relative to the sheet)."""
    path = Path(path)
    if not path.exists():
        msg = "bulk sheet does not exist"
        raise InputError(msg, path)
    try:
        sheet = pd.read_csv(path, dtype=str, keep_default_na=False, comment="#")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        msg = f"not a readable CSV ({exc})"
        raise InputError(msg, path) from exc
    sheet.columns = [c.strip() for c in sheet.columns]
    need = ["tf", "chip_bed", "accessibility_bw", "cell_type"]
    missing = [c for c in need if c not in sheet.columns]
    if missing:
        msg = f"bulk sheet lacks column(s) {', '.join(missing)} (need {','.join(need)})"
        raise InputError(msg, path)
    if sheet.empty:
        msg = "bulk sheet has no rows"
        raise InputError(msg, path)
    base = path.parent
    tracks: dict[str, BulkTrack] = {}
    for lineno, row in enumerate(sheet.itertuples(index=False), 2):
        tf, bed, bw, cell_type = (str(getattr(row, c)).strip() for c in need)
        where = f"line {lineno}"
        if not tf or not cell_type:
            msg = f"{where}: tf and cell_type must not be empty"
            raise InputError(msg, path)
        if not bed:
            msg = f"{where}: TF {tf} in {cell_type} has no chip_bed"
            raise InputError(msg, path)
        if not bw:
            msg = f"{where}: TF {tf} in {cell_type} has a ChIP BED but no accessibility track (accessibility_bw is empty)"
            raise InputError(msg, path)
        bed_path, bw_path = (base / bed).resolve(), (base / bw).resolve()
        if not bw_path.exists():
            msg = f"{where}: TF {tf} in {cell_type} has a ChIP BED but its accessibility track {bw_path} does not exist"
            raise InputError(msg, path)
        if not bed_path.exists():
            msg = f"{where}: ChIP BED {bed_path} of TF {tf} in {cell_type} does not exist"
            raise InputError(msg, path)
        track = tracks.setdefault(cell_type, BulkTrack(cell_type, bw_path))
        if track.accessibility_bw != bw_path:
            msg = f"{where}: cell type {cell_type} has two accessibility tracks ({track.accessibility_bw.name}, {bw_path.name})"
            raise InputError(msg, path)
        if tf in track.chip:
            msg = f"{where}: TF {tf} appears twice for cell type {cell_type}"
            raise InputError(msg, path)
        track.chip[tf] = bed_path
    return list(tracks.values())


def tf_names(tracks: Sequence[BulkTrack]) -> list[str]:
    """All TFs of the sheet in first-seen order (the model's output order)."""
    return list(dict.fromkeys(tf for t in tracks for tf in t.chip))


# --------------------------------------------------------------------------------------------
# chromosomes


def _natural_key(name: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def choose_heldout(
    chroms: Sequence[str],
    *,
    test: Sequence[str] | None,
    val: Sequence[str] | None,
    fasta: str | Path,
) -> tuple[list[str], list[str]]:
    """Resolve the held-out test and validation chromosomes.

    ``None`` means automatic: the paper's chr1/chr8/chr21 (test) and chr11 (validation) when the
    genome has them all, else the last chromosome (natural order) for validation and the quarter
    before it (at least one) for test. Named chromosomes must exist in the genome.
    """
    present = set(chroms)
    for what, names in (("test", test), ("validation", val)):
        absent = [c for c in names or () if c not in present]
        if absent:
            msg = (
                f"held-out {what} chromosome(s) {', '.join(absent)} are not in the genome "
                f"(it has {', '.join(sorted(chroms, key=_natural_key)[:6])}...)"
            )
            raise InputError(msg, fasta)
    if test is not None and val is not None:
        t, v = list(test), list(val)
    elif all(c in present for c in (*PAPER_TEST_CHROMS, *PAPER_VAL_CHROMS)):
        t = list(test) if test is not None else list(PAPER_TEST_CHROMS)
        v = list(val) if val is not None else list(PAPER_VAL_CHROMS)
    else:
        ordered = sorted(chroms, key=_natural_key)
        if len(ordered) < 3:
            msg = f"need at least 3 chromosomes to hold out test and validation ones, the genome has {len(ordered)}"
            raise InputError(msg, fasta)
        v = list(val) if val is not None else [c for c in ordered if c not in (test or ())][-1:]
        rest = [c for c in ordered if c not in v]
        n_test = max(1, round(len(ordered) / 4))
        t = list(test) if test is not None else rest[-n_test:]
    overlap = set(t) & set(v)
    if overlap:
        msg = f"chromosome(s) {', '.join(sorted(overlap))} are both test and validation"
        raise InputError(msg, fasta)
    if not [c for c in chroms if c not in set(t) | set(v)]:
        msg = "no chromosome is left for training after holding out test and validation ones"
        raise InputError(msg, fasta)
    return t, v


def check_track_chromosomes(
    bw: Any, chrom_sizes: dict[str, int], chroms: Iterable[str], *, bw_path: Path, fasta: Path
) -> None:
    """Every chromosome used must be in the bigWig with the FASTA's length; name the offenders."""
    header: dict[str, int] = bw.chroms()
    missing = [c for c in chroms if c not in header]
    if missing:
        msg = (
            f"chromosome names differ between the FASTA {fasta.name} and this bigWig: "
            f"{', '.join(missing[:5])} {'is' if len(missing) == 1 else 'are'} not in the bigWig "
            f"(it has {', '.join(list(header)[:5])})"
        )
        raise InputError(msg, bw_path)
    check_same_lengths(
        {c: header[c] for c in chroms},
        chrom_sizes,
        what="bigWig",
        ref_what=f"FASTA {fasta.name}",
        path=bw_path,
    )


def track_mean(bw: Any) -> float:
    """Genome-wide mean signal of a bigWig (sum over its header's chromosome lengths)."""
    header = bw.header()
    total = float(sum(bw.chroms().values()))
    mean = float(header.get("sumData", 0.0)) / max(total, 1.0)
    return mean if mean > 0 else 1.0


def normalise_signal(values: NDArray[np.floating], mean: float) -> NDArray[np.float32]:
    """Scale-free accessibility: ``log1p(signal / genome-wide mean)`` (bulk and pseudobulk alike)."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    return np.log1p(np.clip(values, 0, None) / mean).astype(np.float32)


# --------------------------------------------------------------------------------------------
# labels and the window index


def merge_intervals(
    starts: NDArray[np.int64], ends: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Union of intervals as sorted, non-overlapping ``starts, ends``."""
    if len(starts) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(starts, kind="stable")
    s, e = np.asarray(starts)[order], np.asarray(ends)[order]
    run_end = np.maximum.accumulate(e)
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > run_end[:-1]
    first = np.flatnonzero(new)
    last = np.concatenate([first[1:], [len(s)]]) - 1
    return s[first].astype(np.int64), run_end[last].astype(np.int64)


def covered_bases(
    starts: NDArray[np.int64], ends: NDArray[np.int64], x: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Bases of merged intervals lying before each position ``x`` (a cumulative coverage)."""
    x = np.asarray(x, dtype=np.int64)
    if len(starts) == 0:
        return np.zeros_like(x)
    cum = np.concatenate([[0], np.cumsum(ends - starts)])
    k = np.searchsorted(starts, x, side="left")  # intervals starting before x
    j = np.clip(k - 1, 0, None)
    partial = np.clip(np.minimum(x, ends[j]) - starts[j], 0, None)
    return np.where(k > 0, cum[j] + partial, 0)


def bin_labels(
    starts: NDArray[np.int64], ends: NDArray[np.int64], bin_starts: NDArray[np.int64], bin_size: int
) -> NDArray[np.bool_]:
    """1 where the (merged) intervals cover more than half of the bin."""
    s, e = merge_intervals(starts, ends)
    cover = covered_bases(s, e, bin_starts + bin_size) - covered_bases(s, e, bin_starts)
    return cover * 2 > bin_size


@dataclass
class WindowIndex:
    """Bins to train or evaluate on: coordinates, the bulk track each uses, and per-TF labels.

    ``labels`` is ``(n, n_tfs)`` int8 with 1 bound, 0 unbound and -1 when the TF was not assayed
    in that track's cell type (masked out of the loss). ``weights`` is the number of bins of the
    chromosomes each window stands for (the inverse of its sampling probability: 1 for positive
    bins, more for sampled negatives), so that weighted statistics over the index estimate those
    over every bin of its chromosomes (calibration, held-out metrics).
    """

    chroms: list[str]
    chrom_idx: NDArray[np.int32]
    starts: NDArray[np.int64]
    track_idx: NDArray[np.int16]
    labels: NDArray[np.int8]
    weights: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if self.weights.size != self.starts.size:
            self.weights = np.ones(self.starts.size, dtype=np.float64)

    def __len__(self) -> int:
        return int(self.starts.size)

    def positives(self) -> NDArray[np.int64]:
        return (self.labels == 1).sum(axis=0).astype(np.int64)


@dataclass
class BulkData:
    """Everything the window datasets need: genome, tracks, TFs and their normalisation."""

    fasta: Path
    chrom_sizes: dict[str, int]
    tracks: list[BulkTrack]
    tfs: list[str]
    track_means: list[float]
    chip: dict[tuple[int, str], tuple[NDArray[np.int64], NDArray[np.int64], str]]


def drop_tfs(data: BulkData, drop: Iterable[str]) -> BulkData:
    """``data`` without the TFs ``drop``, and without the tracks (cell types) left with no TF;
    the same as loading a bulk sheet without those TFs' rows."""
    gone = set(drop)
    tracks: list[BulkTrack] = []
    means: list[float] = []
    chip: dict[tuple[int, str], tuple[NDArray[np.int64], NDArray[np.int64], str]] = {}
    for ti, track in enumerate(data.tracks):
        kept = {tf: bed for tf, bed in track.chip.items() if tf not in gone}
        if not kept:
            continue
        new = len(tracks)
        tracks.append(BulkTrack(track.cell_type, track.accessibility_bw, kept))
        means.append(data.track_means[ti])
        for (t, key), value in data.chip.items():
            if t == ti and key.split("\t", 1)[0] not in gone:
                chip[(new, key)] = value
    tfs = [tf for tf in data.tfs if tf not in gone]
    return BulkData(data.fasta, data.chrom_sizes, tracks, tfs, means, chip)


def load_bulk(
    fasta: str | Path,
    tracks: list[BulkTrack],
    *,
    chroms: Sequence[str],
) -> BulkData:
    """Open and validate every bulk input against the FASTA: chromosome names, lengths, bounds."""
    fasta = Path(fasta)
    open_fasta(fasta).close()
    sizes = read_chrom_sizes(fasta)
    tfs = tf_names(tracks)
    means: list[float] = []
    chip: dict[tuple[int, str], tuple[NDArray[np.int64], NDArray[np.int64], str]] = {}
    for ti, track in enumerate(tracks):
        bw = open_bigwig(track.accessibility_bw)
        try:
            check_track_chromosomes(bw, sizes, chroms, bw_path=track.accessibility_bw, fasta=fasta)
            means.append(track_mean(bw))
        finally:
            bw.close()
        for tf, bed_path in track.chip.items():
            bed = read_bed(bed_path, allow_empty=True)
            unknown = sorted(set(bed["chrom"]) - set(sizes), key=_natural_key)
            if unknown:
                msg = (
                    f"chromosome names differ between the FASTA {fasta.name} and this ChIP BED: "
                    f"{', '.join(unknown[:5])} not in the FASTA (it has {', '.join(list(sizes)[:5])})"
                )
                raise InputError(msg, bed_path)
            check_within_bounds(bed, sizes, path=bed_path)
            for chrom, group in bed.groupby("chrom", sort=False):
                chip[(ti, f"{tf}\t{chrom}")] = (
                    group["start"].to_numpy(np.int64),
                    group["end"].to_numpy(np.int64),
                    str(bed_path),
                )
            log.debug("%s: %d %s peaks in %s", bed_path.name, len(bed), tf, track.cell_type)
    return BulkData(fasta, sizes, tracks, tfs, means, chip)


def build_index(
    data: BulkData,
    chroms: Sequence[str],
    *,
    window: int,
    bin_size: int,
    step: int,
    negative_ratio: float,
    rng: np.random.Generator,
    max_n_fraction: float = 0.1,
) -> WindowIndex:
    """Positive bins plus sampled negatives on ``chroms`` for every bulk track.

    Negatives (bins with no assayed TF bound) are drawn ``negative_ratio`` per positive: half
    among accessible bins (signal above the track's genome mean: the hard negatives) and half
    uniformly, skipping windows with more than ``max_n_fraction`` N bases.
    """
    fasta = open_fasta(data.fasta)
    rows_chrom, rows_start, rows_track, rows_labels, rows_weight = [], [], [], [], []
    try:
        for ti, track in enumerate(data.tracks):
            bw = open_bigwig(track.accessibility_bw)
            try:
                for ci, chrom in enumerate(chroms):
                    size = data.chrom_sizes[chrom]
                    n_bins = (size - bin_size) // step + 1 if size >= bin_size else 0
                    if n_bins <= 0:
                        continue
                    starts = np.arange(n_bins, dtype=np.int64) * step
                    labels = _bin_labels(data, ti, chrom, starts, bin_size)
                    positive = (labels == 1).any(axis=1)
                    n_pos = int(positive.sum())
                    n_neg = min(int((~positive).sum()), max(round(negative_ratio * n_pos), 16))
                    accessible = np.zeros(n_bins, dtype=bool)
                    if n_neg:
                        signal = bin_means(bw, chrom, starts, bin_size)
                        accessible = signal > data.track_means[ti]
                    picks, weight = _sample_negatives(
                        ~positive,
                        accessible,
                        n_neg,
                        rng=rng,
                        keep=functools.partial(
                            _few_n, fasta, chrom, starts, bin_size, window, size, max_n_fraction
                        ),
                    )
                    chosen = np.sort(np.concatenate([np.flatnonzero(positive), *picks]))
                    rows_chrom.append(np.full(chosen.size, ci, dtype=np.int32))
                    rows_start.append(starts[chosen])
                    rows_track.append(np.full(chosen.size, ti, dtype=np.int16))
                    rows_labels.append(labels[chosen])
                    rows_weight.append(weight[chosen])
            finally:
                bw.close()
    finally:
        fasta.close()
    if not rows_start:
        msg = f"no {bin_size} bp bins fit on chromosome(s) {', '.join(chroms)}"
        raise InputError(msg, data.fasta)
    return WindowIndex(
        list(chroms),
        np.concatenate(rows_chrom),
        np.concatenate(rows_start),
        np.concatenate(rows_track),
        np.concatenate(rows_labels),
        np.concatenate(rows_weight),
    )


def _bin_labels(
    data: BulkData, ti: int, chrom: str, starts: NDArray[np.int64], bin_size: int
) -> NDArray[np.int8]:
    """(bins x TFs) labels of track ``ti``'s bins on ``chrom``: 1 bound, 0 not, -1 not assayed."""
    track = data.tracks[ti]
    labels = np.full((starts.size, len(data.tfs)), -1, dtype=np.int8)
    for k, tf in enumerate(data.tfs):
        if tf not in track.chip:
            continue
        s, e, _ = data.chip.get(
            (ti, f"{tf}\t{chrom}"),
            (np.zeros(0, np.int64), np.zeros(0, np.int64), ""),
        )
        labels[:, k] = bin_labels(s, e, starts, bin_size)
    return labels


def _few_n(
    fasta: Any,
    chrom: str,
    starts: NDArray[np.int64],
    bin_size: int,
    window: int,
    size: int,
    max_n_fraction: float,
    b: int,
) -> bool:
    """Whether the window around bin ``b`` has at most ``max_n_fraction`` N bases."""
    return _n_fraction(fasta, chrom, int(starts[b]), bin_size, window, size) <= max_n_fraction


def _sample_negatives(
    negative: NDArray[np.bool_],
    accessible: NDArray[np.bool_],
    n_neg: int,
    *,
    rng: np.random.Generator,
    keep: Callable[[int], bool],
) -> tuple[list[NDArray[np.intp]], NDArray[np.float64]]:
    """``n_neg`` negative bins: half among the accessible ones (the hard negatives), the rest
    among the others that pass ``keep`` (the N-base filter); returns the picks and each bin's
    weight (the bins of its kind each pick stands for; 1 for positives)."""
    hard = np.flatnonzero(negative & accessible)
    easy = np.flatnonzero(negative & ~accessible)
    n_hard = min(hard.size, n_neg // 2)
    weight = np.ones(negative.size, dtype=np.float64)
    picks = [rng.choice(hard, n_hard, replace=False)] if n_hard else []
    if n_hard:
        weight[hard] = hard.size / n_hard
    n_easy = min(easy.size, 2 * (n_neg - n_hard))
    if n_easy:
        cand = rng.choice(easy, n_easy, replace=False)
        ok = np.asarray([keep(int(b)) for b in cand], dtype=bool)
        kept = cand[ok][: n_neg - n_hard]
        picks.append(kept)
        if kept.size:
            # usable easy bins (estimated from the N-filtered candidates) per pick
            usable = easy.size * ok.mean()
            weight[easy] = max(usable / kept.size, 1.0)
    return picks, weight


def bin_means(
    bw: Any, chrom: str, starts: NDArray[np.int64], bin_size: int, *, chunk: int = 5_000_000
) -> NDArray[np.float64]:
    """Mean bigWig signal over ``[start, start + bin_size)`` of each (sorted) bin, read in chunks."""
    size = int(bw.chroms()[chrom])
    out = np.zeros(starts.size, dtype=np.float64)
    i = 0
    while i < starts.size:
        lo = int(starts[i])
        j = int(np.searchsorted(starts, lo + chunk, side="left"))
        j = max(j, i + 1)
        hi = min(int(starts[j - 1]) + bin_size, size)
        values = np.nan_to_num(np.asarray(bw.values(chrom, lo, hi, numpy=True), dtype=np.float64))
        cum = np.concatenate([[0.0], np.cumsum(values)])
        s = starts[i:j] - lo
        e = np.minimum(s + bin_size, hi - lo)
        out[i:j] = (cum[e] - cum[s]) / bin_size
        i = j
    return out


def _n_fraction(
    fasta: Any, chrom: str, bin_start: int, bin_size: int, window: int, size: int
) -> float:
    lo = bin_start + bin_size // 2 - window // 2
    s, e = max(lo, 0), min(lo + window, size)
    seq = fasta.fetch(chrom, s, e)
    codes = np.frombuffer(seq.encode("ascii"), dtype=np.uint8)
    return (float(_NOT_ACGT[codes].sum()) + (window - (e - s))) / window


class WindowReader:
    """Reads ``(channels, window)`` inputs centred on a position; handles are opened lazily.

    Out-of-chromosome bases are N (all zero) with zero accessibility, so windows near the ends
    keep their size.
    """

    def __init__(self, fasta: Path, chrom_sizes: dict[str, int], window: int) -> None:
        self.fasta_path = Path(fasta)
        self.chrom_sizes = chrom_sizes
        self.window = window
        self._fasta: Any = None

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers open their own handles
        state = self.__dict__.copy()
        state["_fasta"] = None
        return state

    def sequence(self, chrom: str, lo: int) -> NDArray[np.float32]:
        """One-hot DNA ``(4, window)`` of ``[lo, lo + window)``."""
        if self._fasta is None:
            self._fasta = open_fasta(self.fasta_path)
        size = self.chrom_sizes[chrom]
        s, e = max(lo, 0), min(lo + self.window, size)
        out = np.zeros((4, self.window), dtype=np.float32)
        if e > s:
            out[:, s - lo : e - lo] = one_hot(self._fasta.fetch(chrom, s, e))
        return out

    @staticmethod
    def signal(bw: Any, chrom: str, lo: int, window: int, size: int) -> NDArray[np.float64]:
        """Raw bigWig values over ``[lo, lo + window)`` (0 outside the chromosome and where unset)."""
        out = np.zeros(window, dtype=np.float64)
        s, e = max(lo, 0), min(lo + window, size)
        if e > s:
            out[s - lo : e - lo] = np.nan_to_num(bw.values(chrom, s, e, numpy=True), nan=0.0)
        return out


class BulkWindows(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``(x, y)`` pairs for a :class:`WindowIndex`: x is ``(4 [+1] [+n_tfs], window)``, y is
    ``(n_tfs,)`` (-1 = masked). With ``context`` (``(n_tracks, n_tfs)``), each window carries its
    track's context as constant channels after the accessibility.

    ``jitter`` > 0 shifts each window by a random offset in ``[-jitter, jitter]`` bp (augmentation,
    like the paper's 50 bp tiling step); validation and test sets use 0.
    """

    def __init__(
        self,
        data: BulkData,
        index: WindowIndex,
        *,
        window: int,
        bin_size: int,
        use_accessibility: bool = True,
        jitter: int = 0,
        context: NDArray[np.float32] | None = None,
    ) -> None:
        self.data = data
        self.context = context
        self.jitter = jitter
        self.index = index
        self.window = window
        self.bin_size = bin_size
        self.use_accessibility = use_accessibility
        self.reader = WindowReader(data.fasta, data.chrom_sizes, window)
        self._bws: dict[int, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_bws"] = {}
        return state

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.index
        chrom = idx.chroms[int(idx.chrom_idx[i])]
        lo = int(idx.starts[i]) + self.bin_size // 2 - self.window // 2
        if self.jitter:
            # random shift augmentation (training only): the bin moves off-centre by up to jitter bp
            lo += int(torch.randint(-self.jitter, self.jitter + 1, (1,)))
        x = self.reader.sequence(chrom, lo)
        if self.use_accessibility:
            ti = int(idx.track_idx[i])
            bw = self._bws.get(ti)
            if bw is None:
                bw = self._bws[ti] = open_bigwig(self.data.tracks[ti].accessibility_bw)
            raw = WindowReader.signal(bw, chrom, lo, self.window, self.data.chrom_sizes[chrom])
            acc = normalise_signal(raw, self.data.track_means[ti])
            x = np.concatenate([x, acc[None]], axis=0)
        if self.context is not None:
            ctx = self.context[int(idx.track_idx[i])].astype(np.float32)
            x = np.concatenate([x, np.repeat(ctx[:, None], self.window, axis=1)], axis=0)
        return torch.from_numpy(x), torch.from_numpy(idx.labels[i].astype(np.float32))
