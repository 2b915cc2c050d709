"""Binding rules beyond "planted motif x TF active x peak open" (a preset's :class:`Realism`).

- The given motif file differs from what is planted: perturbed PFMs, a variant form per TF
  (dimer or changed core) planted at ``variant_share`` of the sites, some TFs left out.
- A planted site in an open peak of a cell type where its TF is active is bound only if it is not
  under a positioned nucleosome, its flanks are not AT-rich, and, for cofactor-dependent TFs, the
  cofactor's motif lies within ``cofactor_window`` bp of it.
- Which TFs open their motif peaks in a cell type (``opener``) differs from which TFs are active
  there (``active``) for ``decoupled_share`` of the (cell type, non-ubiquitous TF) pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scregnet.simulate.genome import Genome, random_sequence
from scregnet.simulate.motifs import Motif, perturbed, sample_instance, variant
from scregnet.simulate.presets import UBIQUITOUS_TFS, Realism

#: JASPAR TFs outside every preset whose motifs serve as cofactor motifs
COFACTOR_TFS = ("NFYA", "TEAD1", "MEF2A", "POU2F2")
NUCLEOSOME = 147  # bp wrapped by a nucleosome
FLANK = 30  # bp of AT-rich flank on each side of a site
AT_RICH_GC = 0.2
FAR_GAP = (30, 60)  # bp: a cofactor motif this far away does not help
_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


@dataclass
class Motifs:
    """The motifs of a realistic world: planted forms, the database given to the pipeline."""

    given: list[Motif]  # the file the pipeline gets (perturbed; some TFs missing)
    variants: list[Motif]  # one per TF, in ``tfs`` order; never given
    cofactors: list[Motif]  # motifs of :data:`COFACTOR_TFS`
    cofactor_of: np.ndarray  # (n_tfs,) index into ``cofactors``, -1: binds without one


def realistic_motifs(
    rng: np.random.Generator,
    realism: Realism,
    tfs: list[str],
    planted: list[Motif],
    cofactors: list[Motif],
) -> Motifs:
    """Perturbed given motifs (minus ``tfs_without_motif`` TFs), variants and cofactor choices."""
    lineage = np.array([j for j, t in enumerate(tfs) if t not in UBIQUITOUS_TFS], dtype=np.int64)
    n_missing = min(realism.tfs_without_motif, lineage.size)
    missing = set(rng.choice(lineage, size=n_missing, replace=False).tolist())
    given = [
        perturbed(m, rng, concentration=realism.motif_concentration)
        for j, m in enumerate(planted)
        if j not in missing
    ]
    variants = [variant(m, rng) for m in planted]
    cofactor_of = np.full(len(tfs), -1, dtype=np.int64)
    n_dep = round(realism.cofactor_tf_share * lineage.size)
    dependent = rng.choice(lineage, size=n_dep, replace=False)
    cofactor_of[dependent] = np.arange(n_dep) % len(cofactors)
    return Motifs(given, variants, cofactors, cofactor_of)


def opening_tfs(
    rng: np.random.Generator, realism: Realism, active: np.ndarray, tfs: list[str]
) -> np.ndarray:
    """``(n_cell_types, n_tfs)``: the TFs whose motif peaks open in each cell type (``active``
    with ``decoupled_share`` of the non-ubiquitous pairs flipped)."""
    opener = active.copy()
    lineage = [j for j, t in enumerate(tfs) if t not in UBIQUITOUS_TFS]
    flip = rng.random((active.shape[0], len(lineage))) < realism.decoupled_share
    opener[:, lineage] ^= flip
    return opener


def nucleosome_sequence(rng: np.random.Generator, n: int = NUCLEOSOME) -> np.ndarray:
    """A positioning sequence: A/T at phases 0-2 and G/C at phases 5-7 of every 10 bp, else 40 % GC."""
    seq = random_sequence(rng, n, 0.4)
    phase = np.arange(n) % 10
    at = phase < 3
    gc = (phase >= 5) & (phase < 8)
    seq[at] = _BASES[np.where(rng.random(int(at.sum())) < 0.5, 0, 3)]
    seq[gc] = _BASES[np.where(rng.random(int(gc.sum())) < 0.5, 1, 2)]
    return seq


def _gap(a: tuple[int, int], b: tuple[int, int]) -> int:
    """Bases between two half-open spans (negative: they overlap)."""
    return max(b[0] - a[1], a[0] - b[1])


SiteRow = tuple[str, int, int, str, str, str]  # chrom, start, end, strand, tf, peak_id
_RuleRow = tuple[str, str, str, str, int, bool, bool, bool]  # one row of the site-rules frame
_RULE_COLUMNS = [
    "peak_id",
    "tf",
    "form",
    "cofactor",
    "cofactor_gap",
    "nucleosome",
    "at_rich_flank",
    "bindable",
]


@dataclass
class _PeakSites:
    """One peak's drawn sites: centres, forms, sampled instances, spans and flank states."""

    mids: np.ndarray
    is_variant: np.ndarray
    insts: list[tuple[np.ndarray, str]]
    spans: list[tuple[int, int]]
    at_rich: np.ndarray
    wrapped: list[tuple[int, int]]  # spans under a positioned nucleosome


def plant(
    rng: np.random.Generator,
    realism: Realism,
    genome: Genome,
    peaks: pd.DataFrame,
    drivers: list[list[int]],
    planted: list[Motif],
    motifs: Motifs,
    tfs: list[str],
    slot_offsets: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray, list[SiteRow], pd.DataFrame]:
    """Write every peak's sites (with nucleosomes, AT-rich flanks and cofactor motifs) into the genome.

    Returns ``present`` and ``bindable`` (peaks x TFs), the site rows (as in ``motif_sites``) and
    one row per site saying why it can or cannot be bound.
    """
    n_peaks, n_tf = len(peaks), len(tfs)
    present = np.zeros((n_peaks, n_tf), dtype=bool)
    bindable = np.zeros((n_peaks, n_tf), dtype=bool)
    rows: list[SiteRow] = []
    details: list[_RuleRow] = []
    cols = zip(
        peaks.chrom.tolist(),
        peaks.start.tolist(),
        peaks.end.tolist(),
        peaks.center.tolist(),
        peaks.peak_id.tolist(),
        strict=True,
    )
    for i, (chrom, p_start, p_end, center, p_id) in enumerate(cols):
        ts = drivers[i]
        if not len(ts):
            continue
        seq = genome.sequences[chrom]
        sites = _write_sites(rng, realism, seq, center, ts, planted, motifs, slot_offsets)
        cofactor_spans = _write_cofactors(rng, realism, seq, (p_start, p_end), ts, motifs, sites)
        for t, ok, row, detail in _judge_sites(realism, motifs, tfs, ts, sites, cofactor_spans):
            present[i, t] = True
            bindable[i, t] = ok
            rows.append((chrom, *row, p_id))
            details.append((p_id, *detail))
    return present, bindable, rows, pd.DataFrame(details, columns=_RULE_COLUMNS)


def _write_sites(
    rng: np.random.Generator,
    realism: Realism,
    seq: np.ndarray,
    center: int,
    ts: list[int],
    planted: list[Motif],
    motifs: Motifs,
    slot_offsets: tuple[int, ...],
) -> _PeakSites:
    """Draw one peak's sites, nucleosomes and AT-rich flanks and write them into ``seq``."""
    k = len(ts)
    mids = int(center) + np.array(slot_offsets[:k]) + rng.integers(-4, 5, k)
    is_variant = rng.random(k) < realism.variant_share
    insts = [
        sample_instance(motifs.variants[t] if v else planted[t], rng)
        for t, v in zip(ts, is_variant.tolist(), strict=True)
    ]
    spans = [
        (int(m) - inst.size // 2, int(m) - inst.size // 2 + inst.size)
        for m, (inst, _) in zip(mids.tolist(), insts, strict=True)
    ]
    nucleosome = rng.random(k) < realism.nucleosome_share
    at_rich = (rng.random(k) < realism.at_rich_share) & ~nucleosome
    wrapped: list[tuple[int, int]] = []
    for j in np.flatnonzero(nucleosome).tolist():
        lo = int(mids[j]) - NUCLEOSOME // 2
        seq[lo : lo + NUCLEOSOME] = nucleosome_sequence(rng)
        wrapped.append((lo, lo + NUCLEOSOME))
    for j in np.flatnonzero(at_rich).tolist():
        lo, hi = spans[j][0] - FLANK, spans[j][1] + FLANK
        seq[lo:hi] = random_sequence(rng, hi - lo, AT_RICH_GC)
    for (inst, _), (s, e) in zip(insts, spans, strict=True):
        seq[s:e] = inst
    return _PeakSites(mids, is_variant, insts, spans, at_rich, wrapped)


def _write_cofactors(
    rng: np.random.Generator,
    realism: Realism,
    seq: np.ndarray,
    peak: tuple[int, int],
    ts: list[int],
    motifs: Motifs,
    sites: _PeakSites,
) -> dict[int, list[tuple[int, int]]]:
    """Write cofactor motifs near the sites, only where they overlap no site and stay in the peak."""
    p_start, p_end = peak
    spans = sites.spans
    taken = list(spans)
    cofactor_spans: dict[int, list[tuple[int, int]]] = {}
    for j, t in enumerate(ts):
        c = int(motifs.cofactor_of[t])
        if c < 0:
            continue
        r = rng.random()
        if r < realism.cofactor_rate:
            gap = int(rng.integers(0, realism.cofactor_window + 1))
        elif r < realism.cofactor_rate + realism.far_cofactor_rate:
            gap = int(rng.integers(FAR_GAP[0], FAR_GAP[1] + 1))
        else:
            continue
        inst, _ = sample_instance(motifs.cofactors[c], rng)
        first = 1 if rng.random() < 0.5 else -1
        for side in (first, -first):
            s = spans[j][1] + gap if side > 0 else spans[j][0] - gap - inst.size
            span = (s, s + inst.size)
            if s >= p_start and span[1] <= p_end and all(_gap(span, o) >= 0 for o in taken):
                seq[s : span[1]] = inst
                taken.append(span)
                cofactor_spans.setdefault(c, []).append(span)
                break
    return cofactor_spans


def _judge_sites(
    realism: Realism,
    motifs: Motifs,
    tfs: list[str],
    ts: list[int],
    sites: _PeakSites,
    cofactor_spans: dict[int, list[tuple[int, int]]],
) -> list[tuple[int, bool, tuple[int, int, str, str], tuple[str, str, str, int, bool, bool, bool]]]:
    """Per site: its TF, whether it can bind, its (start, end, strand, tf) and its rule columns."""
    out = []
    for j, t in enumerate(ts):
        c = int(motifs.cofactor_of[t])
        under = any(lo <= sites.mids[j] < hi for lo, hi in sites.wrapped)
        gaps = [_gap(sites.spans[j], o) for o in cofactor_spans.get(c, [])]
        near = min(gaps) if gaps else -1
        helped = c < 0 or (0 <= near <= realism.cofactor_window)
        ok = helped and not under and not bool(sites.at_rich[j])
        s, e = sites.spans[j]
        form = "variant" if sites.is_variant[j] else "primary"
        cofactor = COFACTOR_TFS[c] if c >= 0 else "."
        detail = (tfs[t], form, cofactor, near, under, bool(sites.at_rich[j]), ok)
        out.append((t, ok, (s, e, sites.insts[j][1], tfs[t]), detail))
    return out
