"""The scorer's own metrics (the ranking metrics, AUROC, AUPRC, AUPRC ratio and EPR, live in
:mod:`scregnet.stats`, shared with the stages).

- Imputation: RMSE, L1 and Pearson on exactly the masked entries.
- Clustering: ARI and NMI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "MaskedScores",
    "adjusted_rand",
    "mask_nonzeros",
    "masked_recovery",
    "normalized_mutual_info",
]


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
