"""One edge score from two kinds of evidence: co-expression (the network) and binding (the prior).

With ``--prior`` the network learns, from expression alone, which pairs look like the pairs the
predicted binding labels positive; the binding itself (TF t bound near gene g's TSS in these very
cells) is separate evidence that the network's score does not carry for the pair being scored. The
published edge score is therefore the mean of the two scores' fractional ranks over all scored pairs
(rank averaging, the "wisdom of crowds" aggregation of DREAM5, Marbach et al. 2012): calibration-
free, so neither score's scale matters, and an edge must rank well on both to rank at the top.
Pairs of TFs without binding evidence (scored through ``--tfs`` only) keep their expression rank.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.stats import rankdata


def fractional_rank(values: NDArray[np.floating]) -> NDArray[np.float64]:
    """Ranks scaled to (0, 1], ties sharing their mean rank."""
    if values.size == 0:
        return np.zeros(0, dtype=np.float64)
    return np.asarray(rankdata(values, method="average"), dtype=np.float64) / values.size


def rank_mean(
    expression: NDArray[np.floating], binding: NDArray[np.floating]
) -> NDArray[np.float32]:
    """Mean fractional rank of ``expression`` and ``binding`` per pair (``binding`` NaN = no evidence).

    Where ``binding`` is NaN the pair's score is its expression rank alone; the binding ranks are
    taken over the pairs that have binding evidence.
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
    return out.astype(np.float32)
