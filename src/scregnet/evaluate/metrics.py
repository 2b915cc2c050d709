"""The metrics every stage is scored with.

- Ranking: AUROC, AUPRC (average precision, the step-wise area; scikit-learn's definition),
  AUPRC ratio and early precision ratio (EPR) as defined by BEELINE (Pratapa et al. 2020).
- Imputation: RMSE, L1 and Pearson on exactly the masked entries.
- Clustering: ARI and NMI.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray


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


def edge_labels(
    scored: Iterable[tuple[str, str]], true_edges: Iterable[tuple[str, str]]
) -> NDArray[np.int8]:
    """0/1 labels for scored ``(tf, target)`` pairs given the set of true edges."""
    truth = set(true_edges)
    return np.fromiter(((pair in truth) for pair in scored), dtype=np.int8)


@dataclass(frozen=True)
class MaskedScores:
    rmse: float
    l1: float
    pearson: float

    def as_dict(self) -> dict[str, float]:
        return {"rmse": self.rmse, "l1": self.l1, "pearson": self.pearson}


def mask_nonzeros(
    counts: ArrayLike | sp.spmatrix, fraction: float, rng: np.random.Generator
) -> tuple[NDArray[np.float64], tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """Zero ``fraction`` of the non-zero entries at random.

    Returns the masked dense matrix and the ``(rows, cols)`` of exactly the entries that were zeroed.
    """
    if not 0 < fraction < 1:
        msg = f"fraction must be in (0, 1), got {fraction}"
        raise ValueError(msg)
    if isinstance(counts, sp.spmatrix | sp.sparray):
        dense = np.asarray(counts.toarray(), dtype=np.float64)
    else:
        dense = np.array(counts, dtype=np.float64, copy=True)
    rows, cols = np.nonzero(dense)
    n = round(fraction * rows.size)
    pick = rng.choice(rows.size, size=n, replace=False)
    pick.sort()
    r, c = rows[pick], cols[pick]
    dense[r, c] = 0.0
    return dense, (r, c)


def masked_recovery(
    truth: ArrayLike,
    imputed: ArrayLike,
    entries: tuple[Sequence[int] | NDArray[np.intp], Sequence[int] | NDArray[np.intp]],
) -> MaskedScores:
    """RMSE, L1 (mean absolute error) and Pearson between truth and imputation on the masked entries.

    Both matrices must be on the same scale (e.g. both log1p of library-size-normalised counts).
    """
    t = np.asarray(truth, dtype=np.float64)
    m = np.asarray(imputed, dtype=np.float64)
    if t.shape != m.shape:
        msg = f"truth and imputed shapes differ: {t.shape} vs {m.shape}"
        raise ValueError(msg)
    rows, cols = (np.asarray(a, dtype=np.intp) for a in entries)
    a, b = t[rows, cols], m[rows, cols]
    diff = a - b
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        r = float("nan")
    else:
        r = float(np.corrcoef(a, b)[0, 1])
    return MaskedScores(
        rmse=float(np.sqrt(np.mean(diff**2))), l1=float(np.mean(np.abs(diff))), pearson=r
    )


def adjusted_rand(labels_true: ArrayLike, labels_pred: ArrayLike) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(np.asarray(labels_true), np.asarray(labels_pred)))


def normalized_mutual_info(labels_true: ArrayLike, labels_pred: ArrayLike) -> float:
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(np.asarray(labels_true), np.asarray(labels_pred)))
