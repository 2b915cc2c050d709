"""Score TF-binding outputs (``tfbind/<sample>.tfbind.h5ad``) against the simulator's truth.

Binding: every (cluster, peak) pair is labelled with the truth of the cluster's majority true cell
type at the truth peak it overlaps most (no overlap: unbound); per TF, AUROC and AUPRC of the
model's probability and of the PWM x accessibility baseline, over peaks on the model's held-out
test chromosomes (all peaks when none of them carries peaks). Reported values are means over TFs
with both classes.

Cell-level activity: k-means (k = number of true cell types, 10 restarts, seed 0) on the
standardised cells x TFs matrix (``X``: the pooled-read deviation in predicted-bound peaks),
ARI against the true cell types; the same for scFAN's activity (``layers['scfan_activity']``: the
fraction of a cell's accessible peaks where the TF is among the top-2 predicted), for the mean
binding probability over the cell's neighbourhood's accessible peaks (``layers['mean_binding']``)
and for the chromVAR-style deviations. Means over samples.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from scregnet import keys
from scregnet.errors import InputError
from scregnet.evaluate.metrics import adjusted_rand
from scregnet.io.h5ad import read_h5ad
from scregnet.io.outputs import sample_files
from scregnet.io.tables import read_table
from scregnet.stats import auprc, auroc

log = logging.getLogger(__name__)


def _read_truth(truth_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    binding_path = truth_dir / "tf_binding.tsv.gz"
    types_path = truth_dir / "cell_types.tsv"
    for p in (binding_path, types_path):
        if not p.exists():
            msg = "truth file does not exist"
            raise InputError(msg, p)
    binding = read_table(binding_path, ("peak_id", "chrom", "start", "end", "cell_type"))
    types = read_table(types_path, ("barcode", "cell_type"), dtype=str)
    return binding, types


def match_peaks(peaks: pd.DataFrame, truth_peaks: pd.DataFrame) -> NDArray[np.int64]:
    """Index into ``truth_peaks`` of the truth peak overlapping each peak most (-1: none)."""
    out = np.full(len(peaks), -1, dtype=np.int64)
    for chrom, group in peaks.groupby("chrom", sort=False):
        t = truth_peaks[truth_peaks["chrom"] == chrom]
        if t.empty:
            continue
        order = np.argsort(t["start"].to_numpy())
        ts, te = t["start"].to_numpy()[order], t["end"].to_numpy()[order]
        tidx = t.index.to_numpy()[order]
        max_len = int((te - ts).max())
        rows = np.flatnonzero((peaks["chrom"] == chrom).to_numpy())
        for r, s, e in zip(rows, group["start"].to_numpy(), group["end"].to_numpy(), strict=True):
            lo = np.searchsorted(ts, s - max_len, side="left")
            hi = np.searchsorted(ts, e, side="left")
            if hi <= lo:
                continue
            overlap = np.minimum(te[lo:hi], e) - np.maximum(ts[lo:hi], s)
            best = int(np.argmax(overlap))
            if overlap[best] > 0:
                out[r] = int(tidx[lo + best])
    return out


def cluster_ari(matrix: NDArray[np.floating], labels: NDArray[Any]) -> float:
    """ARI of k-means (k = number of true labels) on the column-standardised matrix."""
    from sklearn.cluster import KMeans

    x = np.asarray(matrix, dtype=np.float64)
    x = x[:, np.isfinite(x).all(axis=0)]
    if x.shape[1] == 0 or len(set(labels)) < 2:
        return float("nan")
    sd = x.std(axis=0)
    x = (x[:, sd > 0] - x[:, sd > 0].mean(axis=0)) / sd[sd > 0]
    if x.shape[1] == 0:
        return 0.0
    k = len(set(labels))
    pred = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(x)
    return adjusted_rand(labels, pred)


@dataclass(frozen=True)
class _Truth:
    """The truth tables a sample is scored against."""

    types: pd.DataFrame
    peaks: pd.DataFrame
    tfs: list[str]
    lookup: pd.DataFrame


@dataclass
class _Pooled:
    """Per TF, the labels and scores of every (cluster, peak) pair pooled over samples."""

    ys: dict[str, list[NDArray[np.int8]]] = field(default_factory=dict)
    model: dict[str, list[NDArray[np.float64]]] = field(default_factory=dict)
    pwm: dict[str, list[NDArray[np.float64]]] = field(default_factory=dict)


def _load_truth(truth_dir: Path) -> _Truth:
    """Read the truth binding and cell types; index binding by (peak, cell type)."""
    truth, types = _read_truth(truth_dir)
    truth = truth.reset_index(drop=True)
    truth_peaks = truth.drop_duplicates("peak_id")[["peak_id", "chrom", "start", "end"]]
    truth_peaks = truth_peaks.set_index("peak_id")
    truth_tfs = [
        c
        for c in truth.columns
        if c not in {"peak_id", "chrom", "start", "end", "cell_type", "view"}
    ]
    lookup = truth.set_index(["peak_id", "cell_type"])
    return _Truth(types=types, peaks=truth_peaks, tfs=truth_tfs, lookup=lookup)


def _cell_types(result: Any, types: pd.DataFrame, sample: str) -> pd.Series:
    """The true cell type of each cell of ``result`` (NaN where its barcode is not in truth)."""
    st = types[types["sample"] == sample] if "sample" in types.columns else types
    return pd.Series(result.obs_names.astype(str), index=result.obs_names).map(
        dict(zip(st["barcode"], st["cell_type"], strict=False))
    )


def _scored_rows(peaks: pd.DataFrame, test_chroms: Any) -> NDArray[np.intp]:
    """Rows of the peaks on the held-out test chromosomes (all rows when none is there)."""
    test = {str(c) for c in test_chroms}
    on_test = peaks["chrom"].isin(test).to_numpy()
    if on_test.any():
        return np.flatnonzero(on_test)
    return np.arange(len(peaks))


def _pool_binding(
    result: Any, cell_type: pd.Series, known: pd.Series, truth: _Truth, pooled: _Pooled
) -> set[str]:
    """Label each (cluster, scored peak) pair of one sample and pool it; the chromosomes used."""
    u = result.uns[keys.TFBIND_UNS]
    clusters = [str(c) for c in u["clusters"]]
    majority = (
        pd.DataFrame(
            {
                "cluster": result.obs[keys.CLUSTER].astype(str).to_numpy()[known],
                "type": np.asarray(cell_type[known]),
            }
        )
        .groupby("cluster")["type"]
        .agg(lambda s: s.value_counts().index[0])
    )
    peaks: pd.DataFrame = u["peaks"]
    rows = _scored_rows(peaks, u["test_chroms"])
    matched = match_peaks(
        peaks.iloc[rows].reset_index(drop=True),
        truth.peaks.reset_index().rename(columns={"index": "peak_id"}),
    )
    truth_ids = truth.peaks.index.to_numpy()
    binding = np.asarray(u["binding"])
    pwm = np.asarray(u["pwm_binding"])
    tfs = [tf for tf in result.var_names if tf in truth.tfs]
    for g, cluster in enumerate(clusters):
        if cluster not in majority.index:
            continue
        ctype = majority[cluster]
        labels = np.zeros((rows.size, len(tfs)), dtype=np.int8)
        hit = np.flatnonzero(matched >= 0)
        pairs = [(truth_ids[matched[i]], ctype) for i in hit]
        present = [k in truth.lookup.index for k in pairs]
        if any(present):
            sel = [k for k, ok in zip(pairs, present, strict=True) if ok]
            vals = truth.lookup.loc[sel, tfs].to_numpy(np.int8)
            labels[hit[np.asarray(present)]] = vals
        for j, tf in enumerate(tfs):
            k = list(result.var_names).index(tf)
            pooled.ys.setdefault(tf, []).append(labels[:, j])
            pooled.model.setdefault(tf, []).append(binding[g, rows, k].astype(np.float64))
            pooled.pwm.setdefault(tf, []).append(pwm[g, rows, k].astype(np.float64))
    return set(peaks["chrom"].to_numpy()[rows])


def _activity_aris(result: Any, cell_type: pd.Series, known: pd.Series) -> dict[str, Any]:
    """One sample's cell-level ARIs: activity, mean binding, scFAN activity and chromVAR."""
    true_labels = np.asarray(cell_type[known])
    cells = known.to_numpy()
    ari = cluster_ari(np.asarray(result.X)[cells], true_labels)
    cv = cluster_ari(np.asarray(result.obsm[keys.CHROMVAR])[cells], true_labels)
    mb = (
        cluster_ari(np.asarray(result.layers["mean_binding"])[cells], true_labels)
        if "mean_binding" in result.layers
        else float("nan")
    )
    sa = (
        cluster_ari(np.asarray(result.layers[keys.SCFAN_ACTIVITY])[cells], true_labels)
        if keys.SCFAN_ACTIVITY in result.layers
        else float("nan")
    )
    return {
        "ari": ari,
        "ari_mean_binding": mb,
        "ari_scfan_activity": sa,
        "chromvar_ari": cv,
        "n_cells": int(known.sum()),
    }


def _per_tf_scores(pooled: _Pooled) -> dict[str, dict[str, float]]:
    """AUROC/AUPRC of the model and the PWM baseline per TF with both classes."""
    per_tf: dict[str, dict[str, float]] = {}
    for tf, parts in pooled.ys.items():
        y = np.concatenate(parts)
        if y.min() == y.max():
            continue
        s_model, s_pwm = np.concatenate(pooled.model[tf]), np.concatenate(pooled.pwm[tf])
        per_tf[tf] = {
            "auroc": auroc(y, s_model),
            "auprc": auprc(y, s_model),
            "pwm_auroc": auroc(y, s_pwm),
            "pwm_auprc": auprc(y, s_pwm),
            "positives": int(y.sum()),
            "n": int(y.size),
        }
    return per_tf


def _nanmean(values: list[float]) -> float:
    """Mean of the finite values (NaN when there are none)."""
    vals = [v for v in values if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def _summary(
    per_tf: dict[str, dict[str, float]], per_sample: dict[str, Any], chroms_used: set[str]
) -> dict[str, Any]:
    """The section: means over TFs and samples, with the per-TF and per-sample parts."""

    def mean(key: str) -> float:
        return _nanmean([v[key] for v in per_tf.values()])

    def over_samples(key: str) -> float:
        return _nanmean([v[key] for v in per_sample.values()])

    return {
        "auroc": mean("auroc"),
        "auprc": mean("auprc"),
        "ari": over_samples("ari"),
        "ari_mean_binding": over_samples("ari_mean_binding"),
        "ari_scfan_activity": over_samples("ari_scfan_activity"),
        "pwm_baseline": {"auroc": mean("pwm_auroc"), "auprc": mean("pwm_auprc")},
        "chromvar_baseline": {"ari": over_samples("chromvar_ari")},
        "chromosomes": sorted(chroms_used),
        "n_tfs": len(per_tf),
        "per_tf": per_tf,
        "per_sample": per_sample,
    }


def score(truth_dir: Path, results_dir: Path) -> dict[str, Any] | None:
    """The ``tfbind`` section of ``evaluation.json`` (``None`` when there are no tfbind outputs)."""
    folder, suffix = keys.SAMPLE_RESULTS["tfbind"]
    files = sample_files(Path(results_dir) / folder, suffix)
    if not files:
        return None
    truth = _load_truth(Path(truth_dir))
    pooled = _Pooled()
    chroms_used: set[str] = set()
    per_sample: dict[str, Any] = {}
    for sample, path in files.items():
        result = read_h5ad(path)
        if keys.TFBIND_UNS not in result.uns:
            log.warning("%s: not a merged tfbind result (a shard?); skipped", path.name)
            continue
        cell_type = _cell_types(result, truth.types, sample)
        known = cell_type.notna()
        if known.sum() == 0:
            log.warning("%s: no cell barcode is in the truth cell types; skipped", path.name)
            continue
        chroms_used |= _pool_binding(result, cell_type, known, truth, pooled)
        per_sample[sample] = _activity_aris(result, cell_type, known)
    return _summary(_per_tf_scores(pooled), per_sample, chroms_used)
