"""Baseline GRN scorers: |Spearman|, GRNBoost2-style and GENIE3-style on the pooled expression;
the target prior and the label structure from a TF-aware split's training labels.

Each returns a ``(TFs, genes)`` score matrix (self pairs 0). The tree methods follow arboreto's
recipes with scikit-learn directly (arboreto's dask driver is broken with current dask):
GRNBoost2 = gradient boosting with arboreto's ``SGBM_KWARGS`` (learning rate 0.01, subsample 0.9,
max_features 0.1) and importances as scores; GENIE3 = random forest (max_features ``sqrt``).
For each target, the regulators are every TF but the target itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

__all__ = [
    "LABEL_STRUCTURE",
    "LABEL_TRIANGLES",
    "abs_pearson",
    "label_baselines",
    "tree_importances",
]


def tree_importances(
    expr: NDArray[np.floating],
    tfs: Sequence[int],
    *,
    method: Literal["grnboost2", "genie3"],
    seed: int = 0,
    targets: Sequence[int] | None = None,
    n_estimators: int | None = None,
) -> NDArray[np.float64]:
    """Per-target tree-ensemble regression on the TFs; feature importances become edge scores."""
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

    x = np.asarray(expr, dtype=np.float64)
    tfs = list(tfs)
    targets = range(x.shape[1]) if targets is None else targets
    scores = np.zeros((len(tfs), x.shape[1]))
    start = time.perf_counter()
    for g in targets:
        regs = [i for i, t in enumerate(tfs) if t != g]
        if not regs or x[:, g].std() == 0:
            continue
        if method == "grnboost2":
            model: GradientBoostingRegressor | RandomForestRegressor = GradientBoostingRegressor(
                learning_rate=0.01,
                n_estimators=n_estimators or 500,
                max_features=0.1,
                subsample=0.9,
                random_state=seed,
            )
        else:
            model = RandomForestRegressor(
                n_estimators=n_estimators or 500, max_features="sqrt", random_state=seed, n_jobs=1
            )
        model.fit(x[:, [tfs[i] for i in regs]], x[:, g])
        scores[regs, g] = model.feature_importances_
    log.info("%s: %d targets in %.1f s", method, len(list(targets)), time.perf_counter() - start)
    return scores


def abs_pearson(expr: NDArray[np.floating]) -> NDArray[np.float64]:
    """|Pearson| between every pair of genes: ``(cells, genes)`` -> ``(genes, genes)``, diagonal 0."""
    x = np.asarray(expr, dtype=np.float64)
    x = x - x.mean(axis=0)
    norm = np.linalg.norm(x, axis=0)
    norm[norm == 0] = 1.0
    z = x / norm
    out = np.abs(z.T @ z)
    np.fill_diagonal(out, 0.0)
    return np.clip(out, 0.0, 1.0)


#: the name of the label-structure score of :func:`label_baselines`
LABEL_STRUCTURE = "label structure (reciprocal + prior x in-degree x |r|)"
#: the label-structure score with triangles of the label graph closed first
LABEL_TRIANGLES = "label triangles (reciprocal, shared regulators, prior x in-degree x |r|)"


def label_baselines(
    train_tf: NDArray[np.intp],
    train_target: NDArray[np.intp],
    train_label: NDArray[np.int8],
    tf: NDArray[np.intp],
    target: NDArray[np.intp],
    r: NDArray[np.float64],
) -> dict[str, NDArray[np.float64]]:
    """What a supervised user gets for free under a TF-aware split, for pairs ``(tf, target)``.

    ``target prior``: the fraction of the training TFs with a true edge to the target, ties
    broken by ``r`` (the pairs' |correlation|, in [0, 1]); ``target prior x |r|``: that fraction
    times ``r``. :data:`LABEL_STRUCTURE`, a one-line score from the labels' structure: 1 when
    the target is a training TF whose label says it regulates ``tf`` (the reciprocal edge), plus
    the target prior times ``tf``'s own in-degree (the fraction of the training TFs regulating
    it, plus ``1 / n``) times ``r``, so reciprocal pairs come first, the rest in the order of
    the product. :data:`LABEL_TRIANGLES`: the same with the shared regulators between the two
    (of the training TFs regulating ``tf``, the fraction regulating the target) ranked after the
    reciprocal edge and before the product.
    """
    import scipy.sparse as sp

    n_train = max(1, np.unique(train_tf).size)
    n_genes = int(max(train_target.max(initial=0), target.max(initial=0), tf.max(initial=0))) + 1
    pos = train_label == 1
    count = np.bincount(train_target[pos], minlength=n_genes)
    prior = count[target] / n_train
    edges = sp.csr_matrix(
        (np.ones(int(pos.sum())), (train_tf[pos], train_target[pos])), shape=(n_genes, n_genes)
    )
    reciprocal = np.asarray(edges[target, tf]).ravel() > 0
    in_degree = count[tf] / n_train + 1.0 / n_train
    # shared regulators: of the training TFs regulating tf, the fraction that regulate target
    by_column = edges.tocsc()
    regulators = by_column[:, tf]
    both = np.asarray(regulators.multiply(by_column[:, target]).sum(axis=0)).ravel()
    shared = both / np.maximum(np.asarray(regulators.sum(axis=0)).ravel(), 1.0)
    return {
        "target prior": prior + r / (2 * n_train),
        "target prior x |r|": prior * r,
        LABEL_STRUCTURE: reciprocal + prior * in_degree * r,
        # lexicographic: reciprocal, then the shared-regulator fraction (steps of at least
        # 1 / n_train), then the product (< 2) breaking its ties
        LABEL_TRIANGLES: 4.0 * n_train * (2.0 * reciprocal + shared) + prior * in_degree * r,
    }
