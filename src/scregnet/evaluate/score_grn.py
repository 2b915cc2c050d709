"""Score the GRN ranking (``R/grn/grn_edges.tsv``) against simulator truth (``truth/grn_edges.tsv``).

Over the full ranking (every scored TF-target pair; a pair is positive when it is a true edge):
AUROC, AUPRC, BEELINE's AUPRC ratio and EPR, plus how many true edges the ranking covers. The
|Spearman| baseline on the same pairs is computed beside it from the world's observed scRNA
(``<world>/samples/*.rna.h5ad``, log1p of counts per 10k, samples pooled) when those files exist.
When the ranking carries binding evidence (a ``binding_prior`` column: ``scregnet grn --prior``,
whose published score is the rank mean of an expression score and that prior), the baselines
with the same evidence are scored too: the binding prior alone (pairs without binding last) and
the rank mean of |Spearman| with the binding prior (:func:`scregnet.stats.rank_mean`, the
published score's combination with |Spearman| in place of the network).
Held-out-TF figures need retraining and live in ``bench/grn.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from scregnet import keys
from scregnet.errors import InputError
from scregnet.io.tables import read_ranking, read_table
from scregnet.stats import auprc, auprc_ratio, auroc, early_precision_ratio, rank_mean

log = logging.getLogger(__name__)


def ranking_metrics(labels: NDArray[np.int8], scores: NDArray[np.float64]) -> dict[str, float]:
    return {
        "auroc": auroc(labels, scores),
        "auprc": auprc(labels, scores),
        "auprc_ratio": auprc_ratio(labels, scores),
        "epr": early_precision_ratio(labels, scores),
    }


def _spearman_baseline(world: Path, edges: pd.DataFrame) -> NDArray[np.float64] | None:
    """|Spearman| of each scored pair on the world's pooled observed expression, or None.

    The GRN stage's own baseline (:func:`scregnet.stats.abs_spearman`, a TFs x genes
    matrix) on log1p counts per 10k (:func:`scregnet.evaluate.score_impute.log_normalise`).
    """
    from scregnet.evaluate.score_impute import log_normalise
    from scregnet.io.h5ad import read_h5ad
    from scregnet.stats import abs_spearman

    files = sorted((world / "samples").glob("*.rna.h5ad"))
    if not files:
        return None
    frames = []
    for f in files:
        a = read_h5ad(f)
        frames.append(pd.DataFrame(log_normalise(a.X), columns=a.var_names.astype(str)))
    genes = frames[0].columns
    for frame in frames[1:]:
        genes = genes.intersection(frame.columns)
    pooled = np.concatenate([frame[genes].to_numpy() for frame in frames])
    index = {g: i for i, g in enumerate(genes)}
    ok = edges.tf.isin(index) & edges.target.isin(index)
    out = np.zeros(len(edges))
    tf_cols, tf_row = np.unique(edges.tf[ok].map(index).to_numpy(int), return_inverse=True)
    scores = abs_spearman(pooled, tf_cols.tolist())  # (TFs, genes)
    out[ok.to_numpy()] = scores[tf_row, edges.target[ok].map(index).to_numpy(int)]
    return out


def score(truth_dir: Path, results_dir: Path) -> dict[str, Any] | None:
    """GRN metrics, or None when the results have no ``grn/grn_edges.tsv``."""
    truth_dir, results_dir = Path(truth_dir), Path(results_dir)
    edges_path = results_dir / keys.GRN_EDGES
    if not edges_path.exists():
        return None
    truth_path = truth_dir / "grn_edges.tsv"
    if not truth_path.exists():
        msg = "truth has no grn_edges.tsv"
        raise InputError(msg, truth_dir)
    edges = read_ranking(edges_path)
    truth = read_table(truth_path, ("tf", "target"), dtype={"tf": str, "target": str})
    true_pairs = set(zip(truth.tf, truth.target, strict=True))
    labels = np.fromiter(
        ((p in true_pairs) for p in zip(edges.tf, edges.target, strict=True)),
        dtype=np.int8,
        count=len(edges),
    )
    result: dict[str, Any] = {
        "n_scored_pairs": len(edges),
        "n_scored_tfs": int(edges.tf.nunique()),
        "n_true_edges": len(true_pairs),
        "n_true_edges_scored": int(labels.sum()),
    }
    if labels.sum() == 0:
        log.warning("no true edge among the %d scored pairs", len(edges))
        return result
    if "method" in edges.columns and len(edges):
        result["method"] = str(edges.method.iloc[0])
    result.update(ranking_metrics(labels, edges.score.to_numpy(np.float64)))
    spearman = _spearman_baseline(truth_dir.parent, edges)
    if spearman is not None:
        result["spearman_baseline"] = ranking_metrics(labels, spearman)
    if "binding_prior" in edges.columns:
        binding = edges.binding_prior.to_numpy(np.float64)
        # pairs without binding evidence (NaN) rank below every bound pair
        floor = np.nanmin(binding) - 1.0 if np.isfinite(binding).any() else 0.0
        result["binding_prior_baseline"] = ranking_metrics(
            labels, np.where(np.isnan(binding), floor, binding)
        )
        if spearman is not None:
            result["spearman_binding_baseline"] = ranking_metrics(
                labels, rank_mean(spearman, binding)
            )
    return result
