"""Weak labels from predicted TF binding: TF t bound within ``window`` bp of gene g's TSS -> t -> g.

The reader is deliberately tolerant of how a ``tfbind.h5ad`` stores per-peak x TF binding
probabilities. It accepts, in this order:

1. peaks as observations: ``obs`` has ``chrom``, ``start``, ``end`` columns (or obs names like
   ``chr1:100-600``), ``var_names`` are TFs, probabilities in ``X`` and/or layers (one layer per
   cluster is fine: the maximum over them is used);
2. cells (or clusters) as observations with ``var_names`` = TFs and, in ``uns``, a peak table
   (a DataFrame or a mapping with ``chrom``, ``start``, ``end``) plus an array of shape
   ``(peaks, TFs)``, ``(TFs, peaks)`` or ``(clusters, peaks, TFs)`` (or a mapping cluster -> such
   arrays), anywhere under ``uns`` or in ``varm`` (``(TFs, peaks)``). TF names come from
   ``uns['tfs']`` / ``uns['tf_names']`` when present, else ``var_names``.

A peak's binding probability for a TF is the maximum over clusters; a TF-gene prior is the maximum
over peaks whose centre lies within ``window`` bp of the gene's TSS.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from scregnet import keys
from scregnet.errors import InputError
from scregnet.grn.config import NEGATIVE_RATIO, PRIOR_THRESHOLD, PRIOR_WINDOW
from scregnet.grn.data import case_hint

log = logging.getLogger(__name__)

_REGION = re.compile(r"^(.+?)[:_-](\d+)[-_](\d+)$")


@dataclass
class Binding:
    """Per-peak x TF binding probabilities."""

    peaks: pd.DataFrame  # chrom, start, end
    tfs: list[str]
    prob: NDArray[np.float32]  # (peaks, TFs)


def _peak_table(obj: Any) -> pd.DataFrame | None:
    if isinstance(obj, pd.DataFrame):
        cols = {c.lower(): c for c in obj.columns}
        if {"chrom", "start", "end"} <= set(cols):
            return pd.DataFrame(
                {
                    "chrom": obj[cols["chrom"]].astype(str).to_numpy(),
                    "start": obj[cols["start"]].to_numpy(np.int64),
                    "end": obj[cols["end"]].to_numpy(np.int64),
                }
            )
        return None
    if isinstance(obj, Mapping) and {"chrom", "start", "end"} <= set(obj):
        try:
            return _peak_table(
                pd.DataFrame({k: np.asarray(obj[k]) for k in ("chrom", "start", "end")})
            )
        except ValueError:
            return None
    return None


def _walk(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    yield prefix, obj
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _walk(value, f"{prefix}/{key}")


def _parse_names(names: Sequence[str]) -> pd.DataFrame | None:
    parsed = [_REGION.match(str(n)) for n in names]
    if not parsed or not all(parsed):
        return None
    return pd.DataFrame(
        {
            "chrom": [m.group(1) for m in parsed if m],
            "start": [int(m.group(2)) for m in parsed if m],
            "end": [int(m.group(3)) for m in parsed if m],
        }
    )


def _as_peaks_by_tfs(array: Any, n_peaks: int, n_tfs: int) -> NDArray[np.float32] | None:
    """Orient an array (or a mapping of arrays, e.g. per cluster) as (peaks, TFs), max elsewhere."""
    if isinstance(array, Mapping):
        parts = [_as_peaks_by_tfs(v, n_peaks, n_tfs) for v in array.values()]
        found = [p for p in parts if p is not None]
        return np.maximum.reduce(found) if found else None
    if hasattr(array, "toarray"):
        array = array.toarray()
    if not isinstance(array, np.ndarray) or array.ndim not in (2, 3):
        return None
    if not np.issubdtype(array.dtype, np.number):
        return None
    shape = array.shape
    if n_tfs not in shape:
        return None
    # TFs: the last axis of that size (layouts end in TFs); peaks: the last other axis of its size
    tf_axis = max(i for i in range(array.ndim) if shape[i] == n_tfs)
    peak_axes = [i for i in range(array.ndim) if shape[i] == n_peaks and i != tf_axis]
    if not peak_axes:
        return None
    peak_axis = peak_axes[-1]
    other = [i for i in range(array.ndim) if i not in (peak_axis, tf_axis)]
    moved = np.moveaxis(np.asarray(array, dtype=np.float32), [peak_axis, tf_axis], [-2, -1])
    return moved.max(axis=tuple(range(len(other)))) if other else moved


def read_binding(path: str | Path) -> Binding:
    """Per-peak x TF binding probabilities from a ``tfbind.h5ad`` (see the module doc)."""
    from scregnet.io.h5ad import read_h5ad

    path = Path(path)
    adata = read_h5ad(path, what="obs name")  # cells, or peaks
    obs = adata.obs
    peaks = _peak_table(obs) if len(obs.columns) else None
    if peaks is None and adata.n_obs:
        peaks = _parse_names(list(adata.obs_names))
    if peaks is not None:
        tfs = [str(t) for t in adata.var_names]
        mats = [] if adata.X is None else [_as_peaks_by_tfs(adata.X, len(peaks), len(tfs))]
        mats += [_as_peaks_by_tfs(adata.layers[k], len(peaks), len(tfs)) for k in adata.layers]
        found = [m for m in mats if m is not None]
        if not found:
            msg = "peaks are the observations but no peak x TF probabilities were found"
            raise InputError(msg, path)
        prob = np.maximum.reduce(found)
    else:
        uns = dict(adata.uns)
        for key in ("tfs", "tf_names"):
            if key in uns:
                tfs = [str(t) for t in np.asarray(uns[key]).ravel()]
                break
        else:
            tfs = [str(t) for t in adata.var_names]
        tables = [(k, t) for k, v in _walk(uns) if (t := _peak_table(v)) is not None]
        if not tables:
            msg = "no peak table (chrom, start, end) found in obs or uns: is this a tfbind.h5ad?"
            raise InputError(msg, path)
        _, peaks = tables[0]
        arrays = [(k, v) for k, v in _walk(uns) if not isinstance(v, Mapping)]
        arrays += [(f"varm/{k}", adata.varm[k]) for k in adata.varm]
        # the model's probabilities, never a baseline's (e.g. tfbind's ``pwm_binding``)
        named = [v for k, v in arrays if k.rsplit("/", 1)[-1] in ("binding", "probability")]
        candidates = named or [
            v for k, v in arrays if not any(w in k.lower() for w in ("pwm", "baseline", "chromvar"))
        ]
        found = [
            m for c in candidates if (m := _as_peaks_by_tfs(c, len(peaks), len(tfs))) is not None
        ]
        if not found:
            msg = f"no (peaks x TFs) = ({len(peaks)} x {len(tfs)}) binding probability array found"
            raise InputError(msg, path)
        prob = np.maximum.reduce(found)
    if not np.isfinite(prob).all():
        msg = "binding probabilities contain NaN or infinite values"
        raise InputError(msg, path)
    meta = adata.uns.get(keys.TFBIND_UNS)
    constant = (
        {str(t) for t in meta.get(keys.BASE_RATE_TFS, [])} if isinstance(meta, Mapping) else set()
    )
    if constant & set(tfs):
        # a constant probability (the model did not learn the TF) is no binding evidence: the
        # TF's pairs keep their expression score and give no training labels
        log.warning(
            "%s: TF(s) %s have a constant binding probability (their base rate): used as no "
            "binding evidence",
            path,
            ", ".join(t for t in tfs if t in constant),
        )
        kept = [i for i, t in enumerate(tfs) if t not in constant]
        tfs, prob = [tfs[i] for i in kept], prob[:, kept]
    if prob.size and (prob.min() < 0 or prob.max() > 1):
        log.info("binding values outside [0, 1]: taken as logits (sigmoid applied)")
        prob = 1.0 / (1.0 + np.exp(-prob))
    log.info("read binding of %d TFs at %d peaks from %s", len(tfs), len(peaks), path)
    return Binding(peaks=peaks.reset_index(drop=True), tfs=tfs, prob=prob.astype(np.float32))


def tss_prior(
    binding: Binding, tss: pd.DataFrame, genes: Sequence[str], *, window: int = PRIOR_WINDOW
) -> tuple[list[str], NDArray[np.float32]]:
    """Max binding probability of each TF within ``window`` bp of each gene's TSS.

    ``tss`` is :func:`scregnet.io.gtf.read_tss` output; genes are matched by ``gene_name`` and then
    ``gene_id``. Returns the TFs present in ``genes`` and a ``(those TFs, genes)`` matrix (0 where
    no peak is near or the gene has no TSS).
    """
    index = {g: i for i, g in enumerate(genes)}
    by_name = tss.drop_duplicates("gene_name").set_index("gene_name")
    by_id = tss.drop_duplicates("gene_id").set_index("gene_id")
    rows = []
    for g in genes:
        if g in by_name.index:
            r = by_name.loc[g]
        elif g in by_id.index:
            r = by_id.loc[g]
        else:
            continue
        rows.append((index[g], str(r["chrom"]), int(r["tss"])))
    tf_cols = [i for i, t in enumerate(binding.tfs) if t in index]
    tfs = [binding.tfs[i] for i in tf_cols]
    prior = np.zeros((len(tfs), len(genes)), dtype=np.float32)
    if not rows or not tfs:
        return tfs, prior
    centre = ((binding.peaks.start.to_numpy() + binding.peaks.end.to_numpy()) // 2).astype(np.int64)
    chrom = binding.peaks.chrom.astype(str).to_numpy()
    prob = binding.prob[:, tf_cols]
    genes_df = pd.DataFrame(rows, columns=["gene", "chrom", "tss"])
    for c, group in genes_df.groupby("chrom", sort=False):
        on = np.flatnonzero(chrom == c)
        if on.size == 0:
            continue
        order = on[np.argsort(centre[on], kind="stable")]
        pos = centre[order]
        lo = np.searchsorted(pos, group.tss.to_numpy() - window, side="left")
        hi = np.searchsorted(pos, group.tss.to_numpy() + window, side="right")
        sorted_prob = prob[order]
        for g, a, b in zip(group.gene.to_numpy(), lo, hi, strict=True):
            if b > a:
                prior[:, g] = sorted_prob[a:b].max(axis=0)
    return tfs, prior


def combined_prior(
    paths: Sequence[str | Path],
    tss: pd.DataFrame,
    genes: Sequence[str],
    *,
    window: int = PRIOR_WINDOW,
    tss_path: str | Path = "TSS table",
) -> tuple[list[str], NDArray[np.float32]]:
    """:func:`tss_prior` over several tfbind files (e.g. one per sample): the maximum per TF-gene.

    TFs of any file that are not genes of the expression data are reported and left out. A TSS
    table (``tss_path``) with none of ``genes`` (by name or ID), or on no chromosome of a file's
    peaks (a GTF of another naming style), is an :class:`InputError` naming it; one with fewer
    than half of ``genes`` is logged.
    """
    from scregnet.io.genome import check_shared_chromosomes

    known = set(tss["gene_name"].astype(str)) | set(tss["gene_id"].astype(str))
    found = sum(g in known for g in genes)
    if found == 0:
        msg = (
            f"no gene of the expression data is in the GTF by gene_name or gene_id (e.g. "
            f"{', '.join(list(genes)[:3])} vs {', '.join(tss['gene_name'].astype(str)[:3])})"
        )
        raise InputError(msg, tss_path)
    if found < len(genes) / 2:
        log.warning(
            "%s: only %d of %d genes of the expression data are in it (by gene_name or gene_id); "
            "the others get no binding prior",
            tss_path,
            found,
            len(genes),
        )
    merged: dict[str, NDArray[np.float32]] = {}
    unmatched: set[str] = set()
    for path in paths:
        binding = read_binding(path)
        check_shared_chromosomes(
            tss["chrom"],
            set(binding.peaks["chrom"].astype(str)),
            what="GTF's genes",
            ref_what=f"binding peaks of {Path(path).name}",
            path=tss_path,
        )
        tfs, matrix = tss_prior(binding, tss, genes, window=window)
        present = set(tfs)
        absent = [t for t in binding.tfs if t not in present]
        if absent:
            log.warning(
                "%s: %d TF(s) absent from the expression data: %s%s",
                path,
                len(absent),
                ", ".join(absent[:20]),
                case_hint(absent, genes),
            )
            unmatched.update(absent)
        for tf, row in zip(tfs, matrix, strict=True):
            merged[tf] = np.maximum(merged[tf], row) if tf in merged else row
    if not merged:
        msg = "no TF of the prior with binding evidence is a gene of the expression data"
        raise InputError(msg + case_hint(sorted(unmatched), genes), paths[0] if paths else None)
    names = sorted(merged)
    return names, np.stack([merged[t] for t in names])


def prior_labels(
    tfs: Sequence[str],
    prior: NDArray[np.float32],
    genes: Sequence[str],
    *,
    threshold: float = PRIOR_THRESHOLD,
    negative_ratio: float = NEGATIVE_RATIO,
    max_positive_fraction: float = 0.5,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Positive pairs (prior >= threshold) and, per TF, ``negative_ratio`` x as many sampled negatives.

    Negatives are drawn from the TF's genes with prior below ``threshold / 2`` (clearly unbound);
    when too few genes are that clearly unbound (dense peaks, a poorly calibrated model), from the
    genes with the lowest prior that are not positives. A TF whose prior passes the threshold for more
    than ``max_positive_fraction`` of the genes carries little information at that threshold: only
    its top ``max_positive_fraction`` genes by prior are kept as positives (logged).
    Returns ``tf, target, label``; TFs without any positive are left out.
    """
    records: list[tuple[str, str, int]] = []
    n_genes = len(genes)
    cap = max(1, int(max_positive_fraction * n_genes))
    for i, tf in enumerate(tfs):
        row = prior[i]
        g_tf = genes.index(tf) if tf in genes else -1
        pos = np.flatnonzero(row >= threshold)
        pos = pos[pos != g_tf]
        if pos.size == 0:
            continue
        if pos.size > cap:
            log.warning(
                "%s: prior >= %.2f for %d of %d genes; keeping the top %d by prior as positives",
                tf,
                threshold,
                pos.size,
                n_genes,
                cap,
            )
            pos = np.sort(pos[np.argsort(-row[pos], kind="stable")[:cap]])
        n_neg = max(1, round(negative_ratio * pos.size))
        pool = np.flatnonzero(row < threshold / 2)
        pool = pool[pool != g_tf]
        if pool.size < n_neg:
            others = np.setdiff1d(np.arange(n_genes), np.append(pos, g_tf))
            pool = np.sort(
                others[np.argsort(row[others], kind="stable")[: min(others.size, 2 * n_neg)]]
            )
        n_neg = min(pool.size, n_neg)
        neg = rng.choice(pool, size=n_neg, replace=False) if n_neg else pool[:0]
        records += [(tf, genes[int(j)], 1) for j in pos]
        records += [(tf, genes[int(j)], 0) for j in np.sort(neg)]
    frame = pd.DataFrame(records, columns=["tf", "target", "label"])
    frame["label"] = frame["label"].astype(np.int8)
    log.info(
        "prior labels: %d positive and %d negative pairs for %d TFs (threshold %.2f)",
        int((frame.label == 1).sum()),
        int((frame.label == 0).sum()),
        frame.tf.nunique(),
        threshold,
    )
    return frame
