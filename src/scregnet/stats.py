"""Statistics shared by the stages and the scorer.

- Ranking: AUROC, AUPRC (average precision, the step-wise area; scikit-learn's definition),
  AUPRC ratio and early precision ratio (EPR) as defined by BEELINE (Pratapa et al. 2020).
- Association: |Spearman| between TFs and genes in one matrix product.
- Rank aggregation: the mean fractional rank of an expression score and a binding score
  (:func:`rank_mean`), the GRN stage's published edge score with ``--prior`` and the scorer's
  same-evidence baseline.
- Counts: the normalisation constant (counts per ``TARGET_SUM``) and the expected log-normalised
  value of a Poisson count (:func:`expected_log1p`), shared by imputation and its scorer.

Stages and ``scregnet.evaluate`` both import from here; this module imports neither.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata


def _binary(y_true: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.int8], NDArray[np.float64]]:
    y = np.asarray(y_true).astype(np.int8).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        msg = f"labels and scores differ in length ({y.size} vs {s.size})"
        raise ValueError(msg)
    if np.isnan(s).any():
        msg = "scores contain NaN"
        raise ValueError(msg)
    if not np.isin(y, (0, 1)).all():
        msg = "labels must be 0/1"
        raise ValueError(msg)
    return y, s


def auroc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y, s = _binary(y_true, scores)
    if y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, s))


def auprc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the precision-recall curve as average precision (ties form one step)."""
    from sklearn.metrics import average_precision_score

    y, s = _binary(y_true, scores)
    if y.max() == 0:
        return float("nan")
    return float(average_precision_score(y, s))


def auprc_ratio(y_true: ArrayLike, scores: ArrayLike) -> float:
    """BEELINE's AUPRC ratio: AUPRC divided by the density (the AUPRC of a random ranking)."""
    y, s = _binary(y_true, scores)
    density = y.mean()
    if density == 0:
        return float("nan")
    return auprc(y, s) / float(density)


def early_precision_ratio(y_true: ArrayLike, scores: ArrayLike, *, k: int | None = None) -> float:
    """BEELINE's early precision ratio.

    Early precision is the fraction of true edges among the top-``k`` predictions, ``k`` being the
    number of true edges. As in BEELINE, ties are handled by taking every prediction whose score is
    at least the ``k``-th highest score (so tied edges enter or leave together), and only edges with a
    non-zero score count as predicted. The ratio divides by the density (precision of a random
    ranking).
    """
    y, s = _binary(y_true, scores)
    n_true = int(y.sum())
    if n_true == 0:
        return float("nan")
    k = n_true if k is None else k
    density = n_true / y.size
    order = np.sort(s)[::-1]
    kth = order[min(k, order.size) - 1]
    selected = (s >= kth) & (s != 0)
    if not selected.any():
        return 0.0
    early_precision = y[selected].mean()
    return float(early_precision / density)


def abs_spearman(expr: NDArray[np.floating], tfs: Sequence[int]) -> NDArray[np.float64]:
    """|Spearman| between each TF and each gene: ``(cells, genes)`` -> ``(TFs, genes)``."""
    ranks = rankdata(np.asarray(expr, dtype=np.float64), axis=0)
    ranks -= ranks.mean(axis=0)
    norm = np.linalg.norm(ranks, axis=0)
    norm[norm == 0] = 1.0
    z = ranks / norm
    scores = np.abs(z[:, list(tfs)].T @ z)
    scores[np.arange(len(tfs)), list(tfs)] = 0.0
    return np.clip(scores, 0.0, 1.0)


def fractional_rank(values: NDArray[np.floating]) -> NDArray[np.float64]:
    """Ranks scaled to (0, 1], ties sharing their mean rank."""
    if values.size == 0:
        return np.zeros(0, dtype=np.float64)
    return np.asarray(rankdata(values, method="average"), dtype=np.float64) / values.size


def rank_mean(
    expression: NDArray[np.floating], binding: NDArray[np.floating]
) -> NDArray[np.float64]:
    """Mean fractional rank of ``expression`` and ``binding`` per pair (``binding`` NaN = no evidence).

    Rank averaging (the "wisdom of crowds" aggregation of DREAM5, Marbach et al. 2012) is
    calibration-free: neither score's scale matters, and a pair must rank well on both to rank at
    the top. Where ``binding`` is NaN the pair's score is its expression rank alone; the binding
    ranks are taken over the pairs that have binding evidence.
    """
    expression = np.asarray(expression, dtype=np.float64)
    binding = np.asarray(binding, dtype=np.float64)
    if expression.shape != binding.shape:
        msg = f"expression {expression.shape} and binding {binding.shape} scores differ in shape"
        raise ValueError(msg)
    out = fractional_rank(expression)
    known = ~np.isnan(binding)
    if known.any():
        out[known] = 0.5 * (out[known] + fractional_rank(binding[known]))
    return out


#: the library size every cell is normalised to before log1p (counts per 10k)
TARGET_SUM = 1e4


#: Poisson means up to this are summed exactly in :func:`expected_log1p`; above it a second-order
#: delta expansion is used (its error there is below 1e-3 on the log scale)
EXACT_MAX = 60.0
_SUPPORT = np.arange(0, 241, dtype=np.float64)  # enough support for Poisson(EXACT_MAX)
_GRID = np.concatenate([[0.0], np.geomspace(1e-6, EXACT_MAX, 800)])


def _grid_pmf() -> NDArray[np.float64]:
    from scipy.stats import poisson

    return np.asarray(poisson.pmf(_SUPPORT[None, :], _GRID[:, None]), dtype=np.float64)


_PMF: list[NDArray[np.float64]] = []  # the grid's Poisson probabilities, computed once


def expected_log1p(
    lam: NDArray[np.floating], scale: NDArray[np.floating] | float
) -> NDArray[np.float64]:
    """``E[log1p(scale * N)]`` for ``N ~ Poisson(lam)``, elementwise.

    ``lam`` is 1D or 2D; ``scale`` a scalar or one value per row of ``lam`` (a cell's
    ``TARGET_SUM / library``: the expected log-normalised value of a count drawn at that depth).
    Exact (interpolated on a fine grid) up to ``EXACT_MAX``, a delta expansion above.
    """
    lam2 = np.atleast_2d(np.asarray(lam, dtype=np.float64))
    scales = np.broadcast_to(np.asarray(scale, dtype=np.float64).reshape(-1), (lam2.shape[0],))
    if not _PMF:
        _PMF.append(_grid_pmf())
    out = np.empty_like(lam2)
    for i in range(lam2.shape[0]):
        c, row = scales[i], np.maximum(lam2[i], 0.0)
        small = row <= EXACT_MAX
        out[i, small] = np.interp(row[small], _GRID, _PMF[0] @ np.log1p(c * _SUPPORT))
        mu = c * row[~small]
        out[i, ~small] = np.log1p(mu) - c * mu / (2.0 * (1.0 + mu) ** 2)
    return out.reshape(np.shape(lam))


def expected_held_out_log(expression: ArrayLike, held_library: ArrayLike) -> NDArray[np.float64]:
    """Expected ``log1p(TARGET_SUM * Y / L_Y)`` of held-out counts ``Y ~ Poisson(expression *
    L_Y / TARGET_SUM)``: ``expression`` in counts per 10k (cells x genes), ``held_library`` one
    ``L_Y`` per cell (at least 1). The molecular cross-validation reading of an expected
    expression."""
    lib = np.maximum(np.asarray(held_library, dtype=np.float64).ravel(), 1.0)
    expr = np.asarray(expression, dtype=np.float64)
    return expected_log1p(expr * (lib / TARGET_SUM)[:, None], TARGET_SUM / lib)


def split_molecules(
    counts: sp.spmatrix | ArrayLike, fraction: float, *, seed: int = 0
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Binomial split of every count: (training part, held-out part), same shape, summing to it."""
    if not 0 < fraction < 1:
        msg = f"fraction must be in (0, 1), got {fraction}"
        raise ValueError(msg)
    # a copy: sum_duplicates sorts the indices in place, and a dtype cast alone would share
    # them with the caller's matrix
    csr = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    csr.sum_duplicates()
    values = np.rint(csr.data)
    if (values < 0).any() or not np.allclose(values, csr.data):
        msg = "counts must be non-negative integers"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    train_vals = rng.binomial(values.astype(np.int64), fraction).astype(np.float64)
    # each part owns its index arrays (eliminate_zeros rewrites them in place)
    train = sp.csr_matrix((train_vals, csr.indices.copy(), csr.indptr.copy()), shape=csr.shape)
    held = sp.csr_matrix(
        (values - train_vals, csr.indices.copy(), csr.indptr.copy()), shape=csr.shape
    )
    train.eliminate_zeros()
    held.eliminate_zeros()
    return train, held


def held_out_log(held: sp.spmatrix, held_library: ArrayLike) -> NDArray[np.float64]:
    """``log1p(TARGET_SUM * Y / L_Y)`` per cell, dense."""
    dense = np.asarray(sp.csr_matrix(held).toarray(), dtype=np.float64)
    lib = np.maximum(np.asarray(held_library, dtype=np.float64).reshape(-1, 1), 1.0)
    return np.log1p(dense / lib * TARGET_SUM)
