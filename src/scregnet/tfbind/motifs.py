"""Motif baselines: JASPAR PFMs, PWM log-odds scanning, and chromVAR-style motif deviations.

- ``pwm x accessibility``: the likelihood ratio of a peak's best PWM match (both strands),
  ``2 ** (log2-odds - maximum log2-odds)``, times the pseudobulk accessibility.
- chromVAR-style deviations (Schep et al. 2017): per cell, reads in a motif's peaks minus the
  expected share, over the expectation; bias-corrected with background peak sets matched on GC
  content and mean accessibility, reported as z-scores against those backgrounds.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from numpy.typing import NDArray

from scregnet.errors import InputError
from scregnet.io.text import reading

log = logging.getLogger(__name__)

BACKGROUND = np.full(4, 0.25)


@dataclass
class Motif:
    """A position frequency matrix ``counts`` of shape ``(4, length)`` (rows A, C, G, T)."""

    motif_id: str
    name: str
    counts: NDArray[np.float64]

    def log_odds(
        self, *, pseudocount: float = 0.8, background: NDArray[np.float64] = BACKGROUND
    ) -> NDArray[np.float64]:
        """Log2 odds ``(4, length)`` against ``background`` with a total ``pseudocount`` per column."""
        counts = self.counts + pseudocount * background[:, None]
        freqs = counts / counts.sum(axis=0, keepdims=True)
        return np.log2(freqs / background[:, None])


def _numbers(text: str, number: int, header: str, path: Path) -> list[float]:
    """The numbers of a matrix row (brackets, commas and whitespace separate them); a value that
    is not a finite number is an :class:`InputError` naming the line and the motif."""
    values = []
    for token in re.split(r"[\s,\[\]]+", text.strip()):
        if not token:
            continue
        try:
            value = float(token)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            msg = f"line {number}: {token!r} in motif {header!r} is not a number"
            raise InputError(msg, path)
        values.append(value)
    return values


def _motif(header: str, rows: list[list[float]], letters: bool, path: Path) -> Motif:
    """One motif from its header (``ID [NAME]``) and matrix rows: 4 rows (A, C, G, T; always
    when the rows were lettered) or 4 columns (one row per position)."""
    if not rows:
        msg = f"motif {header!r} has no matrix rows"
        raise InputError(msg, path)
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        msg = f"motif {header!r} has rows of different lengths"
        raise InputError(msg, path)
    mat = np.asarray(rows, dtype=np.float64)
    if len(rows) == 4 and (widths != {4} or letters):
        counts = mat  # JASPAR: one row per base
    elif widths == {4}:
        counts = mat.T  # one row per position
    else:
        msg = f"motif {header!r} is neither 4 rows (A C G T) nor 4 columns"
        raise InputError(msg, path)
    if (counts < 0).any() or (counts.sum(axis=0) <= 0).any():
        msg = f"motif {header!r} has negative counts or an empty column"
        raise InputError(msg, path)
    motif_id, _, rest = header.partition(" ")
    if rest.strip():
        name = rest.strip().split()[0]
    else:
        name = motif_id.rsplit(".", 1)[-1] if "_" in motif_id else motif_id
    return Motif(motif_id, name, counts)


def read_motifs(path: str | Path) -> list[Motif]:
    """Read JASPAR-format PFMs (``>ID NAME`` then rows A, C, G, T, with or without brackets) or
    four-column PFMs (one row per position, as in gimmemotifs' ``.pfm``)."""
    path = Path(path)
    if not path.exists():
        msg = "motif file does not exist"
        raise InputError(msg, path)
    motifs: list[Motif] = []
    header: str | None = None
    rows: list[list[float]] = []
    letters = False
    with reading(path), path.open() as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if text.startswith(">"):
                if header is not None:
                    motifs.append(_motif(header, rows, letters, path))
                header, rows, letters = text[1:].strip().replace("\t", " "), [], False
                continue
            if header is None:
                msg = "motif file must start with a '>' header line"
                raise InputError(msg, path)
            if text[0] in "ACGTacgt" and not text[0].isdigit():
                letters = True
                text = text[1:]
            values = _numbers(text, number, header, path)
            if values:
                rows.append(values)
    if header is not None:
        motifs.append(_motif(header, rows, letters, path))
    if not motifs:
        msg = "motif file has no motifs"
        raise InputError(msg, path)
    log.info("read %d motif(s) from %s", len(motifs), path)
    return motifs


def jaspar_motifs(tfs: Sequence[str], *, tax_group: str = "vertebrates") -> dict[str, Motif]:
    """Look the TFs up in pyjaspar's bundled JASPAR release (offline); unknown TFs are skipped.

    A name can match several profiles (CTCF: an insect one and three human ones): those of
    ``tax_group`` are preferred, and among them the earliest deposited matrix (the lowest base
    ID, e.g. MA0139 for CTCF), the canonical profile.
    """
    from pyjaspar import jaspardb

    db = jaspardb()
    found: dict[str, Motif] = {}
    for tf in tfs:
        with warnings.catch_warnings():  # pyjaspar warns on names it does not know
            warnings.simplefilter("ignore")
            hits = db.fetch_motifs_by_name(tf) or db.fetch_motifs_by_name(tf.upper())
        if not hits:
            continue
        preferred = [h for h in hits if str(getattr(h, "tax_group", "")).lower() == tax_group]
        m = min(preferred or hits, key=lambda h: str(h.matrix_id).split(".")[0])
        counts = np.asarray([m.counts[b] for b in "ACGT"], dtype=np.float64)
        found[tf] = Motif(m.matrix_id, m.name, counts)
    log.info("pyjaspar %s: motifs for %d of %d TF(s)", db.release, len(found), len(tfs))
    return found


def motifs_for_tfs(motifs: Sequence[Motif], tfs: Sequence[str]) -> dict[str, Motif]:
    """Match TFs to motifs by name (case-insensitive; the first motif of a name wins, which is
    logged when a TF has several, e.g. the MA0139.1 and MA0139.2 versions of CTCF)."""
    by_name: dict[str, Motif] = {}
    for m in motifs:
        by_name.setdefault(m.name.upper(), m)
    found = {tf: by_name[tf.upper()] for tf in tfs if tf.upper() in by_name}
    n_motifs = Counter(m.name.upper() for m in motifs)
    several = [f"{tf} ({m.motif_id})" for tf, m in found.items() if n_motifs[tf.upper()] > 1]
    if several:
        log.info(
            "%d TF(s) have several motifs, the first in the file is used: %s",
            len(several),
            ", ".join(several[:10]) + (" ..." if len(several) > 10 else ""),
        )
    missing = [tf for tf in tfs if tf not in found]
    if missing:
        log.warning("no motif for %d TF(s): %s", len(missing), ", ".join(missing[:10]))
    return found


def score_threshold(
    log_odds: NDArray[np.float64], *, p_value: float, background: NDArray[np.float64] = BACKGROUND
) -> float:
    """The smallest score reached with probability <= ``p_value`` under the background.

    Exact distribution of the (0.01-rounded) log-odds score by dynamic programming over positions.
    A motif too short to reach ``p_value`` gets its maximum score (only its best k-mers match).
    """
    scale = 100
    ints = np.round(log_odds * scale).astype(np.int64)
    lo = int(ints.min(axis=0).sum())
    dist = np.ones(1)
    offset = 0
    for col in ints.T:
        cmin = int(col.min())
        width = int(col.max() - cmin) + 1
        kernel = np.zeros(width)
        for b in range(4):
            kernel[int(col[b] - cmin)] += background[b]
        dist = np.convolve(dist, kernel)
        offset += cmin
    assert offset == lo
    tail = np.cumsum(dist[::-1])[::-1]  # P(score >= lo + i)
    ok = np.flatnonzero(tail <= p_value)
    if ok.size == 0:  # a short motif cannot reach the p-value: only its best k-mers match
        return float(lo + dist.size - 1) / scale
    return float(lo + ok[0]) / scale


class MotifScanner:
    """Best log-odds match of several motifs over one-hot sequences, both strands, via conv1d."""

    def __init__(self, motifs: Sequence[Motif], *, p_value: float = 5e-5) -> None:
        if not motifs:
            msg = "need at least one motif"
            raise ValueError(msg)
        mats = [m.log_odds() for m in motifs]
        self.max_len = max(m.shape[1] for m in mats)
        weight = np.zeros((len(mats), 4, self.max_len), dtype=np.float32)
        for i, m in enumerate(mats):
            weight[i, :, : m.shape[1]] = m
        self.weight = torch.from_numpy(weight)
        self.rc_weight = torch.from_numpy(np.ascontiguousarray(weight[:, ::-1, ::-1]))
        self.max_score = np.array([m.max(axis=0).sum() for m in mats])
        self.threshold = np.array([score_threshold(m, p_value=p_value) for m in mats])
        self.lengths = np.array([m.shape[1] for m in mats])

    @torch.no_grad()
    def max_scores(
        self, onehot: NDArray[np.float32], lengths: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """``(n_seqs, n_motifs)`` best log-odds of each motif in each sequence (both strands).

        ``onehot`` is ``(n_seqs, 4, max_width)`` zero-padded on the right; ``lengths`` the true widths.
        """
        x = torch.from_numpy(onehot)
        x = torch.nn.functional.pad(x, (self.max_len - 1, self.max_len - 1))
        fwd = torch.nn.functional.conv1d(x, self.weight)  # (n, motifs, positions)
        rev = torch.nn.functional.conv1d(x, self.rc_weight)
        positions = fwd.shape[2]
        # motif i read forward starts at p - (max_len - 1); it must lie fully inside [0, length)
        start = torch.arange(positions)[None, None, :] - (self.max_len - 1)
        mlen = torch.from_numpy(self.lengths)[None, :, None]
        seqlen = torch.from_numpy(np.asarray(lengths))[:, None, None]
        ok_f = (start >= 0) & (start + mlen <= seqlen)
        # reverse weights are right-aligned: motif occupies [start + max_len - mlen, start + max_len)
        rstart = start + self.max_len - mlen
        ok_r = (rstart >= 0) & (rstart + mlen <= seqlen)
        neg = torch.tensor(-torch.inf)
        best = torch.maximum(
            torch.where(ok_f, fwd, neg).amax(dim=2), torch.where(ok_r, rev, neg).amax(dim=2)
        )
        return best.double().numpy()

    def likelihood_ratio(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        """``2 ** (score - max score)``: the best match's likelihood ratio (motif vs background)
        relative to the consensus's, in (0, 1] (-inf -> 0). Unlike a min-max rescaling it keeps
        the log-odds scale, so a strong match outweighs many weak ones when multiplied by another
        signal such as accessibility."""
        with np.errstate(over="ignore", invalid="ignore"):
            ratio = np.exp2(scores - self.max_score)
        return np.clip(np.nan_to_num(ratio, nan=0.0), 0.0, 1.0)


def background_peaks(
    gc: NDArray[np.float64],
    mean_counts: NDArray[np.float64],
    *,
    n_iterations: int,
    rng: np.random.Generator,
    n_bins: int = 20,
) -> NDArray[np.int64]:
    """``(n_iterations, n_peaks)`` background peak for each peak, matched on GC and accessibility.

    Like chromVAR's ``getBackgroundPeaks``: peaks are placed on a whitened (GC, log mean count)
    plane, cut into quantile bins on each axis, and each peak draws its backgrounds uniformly from
    the peaks of its own bin.
    """
    n = gc.size
    feats = np.column_stack([gc, np.log1p(mean_counts)])
    codes = np.zeros(n, dtype=np.int64)
    for j in range(2):
        edges = np.unique(np.quantile(feats[:, j], np.linspace(0, 1, n_bins + 1)[1:-1]))
        codes = codes * (n_bins + 1) + np.searchsorted(edges, feats[:, j], side="right")
    out = np.empty((n_iterations, n), dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    bounds = np.flatnonzero(np.diff(sorted_codes)) + 1
    for group in np.split(order, bounds):
        draws = rng.integers(0, group.size, size=(n_iterations, group.size))
        out[:, group] = group[draws]
    return out


def chromvar_deviations(
    counts: sp.spmatrix | NDArray[np.floating],
    matches: NDArray[np.bool_],
    gc: NDArray[np.float64],
    *,
    n_iterations: int = 50,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """chromVAR-style bias-corrected deviations and z-scores ``(cells, motifs)``.

    ``counts`` is cells x peaks, ``matches`` peaks x motifs (motif present in the peak).
    """
    x = sp.csr_matrix(counts, dtype=np.float64)
    m = sp.csr_matrix(np.asarray(matches, dtype=np.float64))
    n_cells = x.shape[0]
    peak_total = np.asarray(x.sum(axis=0)).ravel()
    total = peak_total.sum()
    if total <= 0:
        msg = "the count matrix is empty: no reads in peaks"
        raise InputError(msg)
    frac = peak_total / total
    depth = np.asarray(x.sum(axis=1)).ravel()

    def deviation(xm: sp.csr_matrix, fm: NDArray[np.float64]) -> NDArray[np.float64]:
        observed = np.asarray((xm @ m).todense())
        expected = depth[:, None] * (fm @ m.toarray())[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(expected > 0, (observed - expected) / expected, 0.0)

    dev = deviation(x, frac)
    bg = background_peaks(gc, peak_total / max(n_cells, 1), n_iterations=n_iterations, rng=rng)
    bg_dev = np.stack([deviation(x[:, b], frac[b]) for b in bg])  # (iter, cells, motifs)
    mean, sd = bg_dev.mean(axis=0), bg_dev.std(axis=0, ddof=1) if n_iterations > 1 else None
    corrected = dev - mean
    if sd is None:
        return corrected, corrected
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, corrected / sd, 0.0)
    return corrected, z
