"""Molecular cross-validation of imputation on real counts (Batson, Royer & Webber 2019).

Each cell's molecules are split binomially (:func:`scregnet.stats.split_molecules`): a training
part ``X`` (each molecule kept with probability ``fraction``) and a held-out part
``Y = counts - X``. A method imputes from ``X`` only; its output is scored against ``Y`` in
normalised log space, ``log1p(TARGET_SUM * Y / L_Y)`` with ``L_Y`` the held-out library of the cell
(:func:`mcv_loss`). Masking entries cannot be won by knowing depth, because every entry of ``Y``
is scored, zeros included.

Depth correction (the paper's ``convert_expectations``, here for the log transform): the training
and held-out parts are sampled at different depths (``fraction`` and ``1 - fraction`` of the
cell), so the same expression has a different expected log value in each. A method's output is
converted to the held-out depth before scoring, by its kind:

- ``"log"``: the output is an estimate of ``E[log1p(TARGET_SUM * X / L_X)]`` at the training
  depth (observed, smoothed or diffused log values). Per cell it is inverted through
  ``h(lam) = E[log1p(c * Poisson(lam))]``, ``c = TARGET_SUM / L_X``, to a Poisson mean ``lam``,
  rescaled by ``L_Y / L_X``, and mapped forward with ``c = TARGET_SUM / L_Y``.
- ``"mean"``: the output is ``log1p`` of an expected expression in counts per 10k (a denoised
  mean: kNN-pooled counts, scVI's normalised expression, a count-likelihood model's mean); the
  prediction is ``E[log1p(TARGET_SUM * Poisson(m * L_Y / TARGET_SUM) / L_Y)]``, ``m =
  expm1(output)``.

Both are the expected value of the held-out entry under Poisson sampling of the predicted
expression, which is the quantity the squared loss on ``Y`` is minimised by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from scregnet.stats import TARGET_SUM, expected_held_out_log, expected_log1p, held_out_log

Kind = Literal["log", "mean"]


def _grid(max_lam: float) -> NDArray[np.float64]:
    return np.concatenate([[0.0], np.geomspace(1e-6, max(1.0, max_lam) * 1.05, 1000)])


def depth_corrected(
    values: ArrayLike,
    *,
    train_library: ArrayLike,
    held_library: ArrayLike,
    kind: Kind = "log",
) -> NDArray[np.float64]:
    """The expected held-out log value of each entry given a method's output (see module doc)."""
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim != 2:
        msg = f"values must be cells x genes, got shape {vals.shape}"
        raise ValueError(msg)
    lib_x = np.maximum(np.asarray(train_library, dtype=np.float64).ravel(), 1.0)
    lib_y = np.maximum(np.asarray(held_library, dtype=np.float64).ravel(), 1.0)
    if lib_x.size != vals.shape[0] or lib_y.size != vals.shape[0]:
        msg = "one training and one held-out library per cell are needed"
        raise ValueError(msg)
    if kind not in ("log", "mean"):
        msg = f"kind must be 'log' or 'mean', got {kind!r}"
        raise ValueError(msg)
    vals = np.maximum(vals, 0.0)
    if kind == "mean":
        return expected_held_out_log(np.expm1(vals), lib_y)
    cp10k = np.empty_like(vals)
    for i in range(vals.shape[0]):
        c_x = TARGET_SUM / lib_x[i]
        # the training-depth Poisson mean whose expected log value is the output
        grid = _grid(float(np.expm1(vals[i].max())) / c_x * 2.0 + 1.0)
        cp10k[i] = np.interp(vals[i], expected_log1p(grid, c_x), grid) * c_x
    return expected_held_out_log(cp10k, lib_y)


@dataclass(frozen=True)
class McvScore:
    """Squared error against the held-out part: overall, and per gene and per cell (means)."""

    mse: float
    per_gene: NDArray[np.float64]
    per_cell: NDArray[np.float64]

    def summary(self) -> dict[str, float]:
        return {
            "mse": self.mse,
            "gene_median": float(np.median(self.per_gene)),
            "cell_median": float(np.median(self.per_cell)),
        }


def mcv_loss(
    values: ArrayLike,
    held: sp.spmatrix,
    *,
    train_library: ArrayLike,
    held_library: ArrayLike,
    kind: Kind = "log",
) -> McvScore:
    """MCV loss of a method's output ``values`` (cells x genes) against the held-out counts.

    ``held`` holds the held-out counts of the same cells and genes; the libraries are each cell's
    totals over all its genes in the training and held-out parts.
    """
    vals = np.asarray(values, dtype=np.float64)
    if vals.shape != held.shape:
        msg = f"values {vals.shape} and held-out counts {held.shape} differ in shape"
        raise ValueError(msg)
    if not np.isfinite(vals).all():
        msg = "values contain NaN or infinite entries"
        raise ValueError(msg)
    pred = depth_corrected(vals, train_library=train_library, held_library=held_library, kind=kind)
    err = (pred - held_out_log(held, held_library)) ** 2
    return McvScore(mse=float(err.mean()), per_gene=err.mean(axis=0), per_cell=err.mean(axis=1))


def pseudobulk_spearman(
    values: ArrayLike, groups: ArrayLike, bulk: dict[str, ArrayLike]
) -> dict[str, float]:
    """Per group: Spearman over genes between the mean of ``expm1(values)`` and the bulk profile.

    ``values`` are log1p(counts per 10k) (cells x genes); ``bulk`` maps a group to its bulk
    profile over the same genes (any per-sample normalisation: Spearman is rank-based).
    """
    from scipy.stats import spearmanr

    vals = np.expm1(np.maximum(np.asarray(values, dtype=np.float64), 0.0))
    grp = np.asarray(groups)
    out: dict[str, float] = {}
    for name, profile in bulk.items():
        members = grp == name
        if not members.any():
            continue
        pseudo = vals[members].mean(axis=0)
        rho = spearmanr(pseudo, np.asarray(profile, dtype=np.float64)).statistic
        out[name] = float(rho)
    return out


def mixture_spearman(
    values: ArrayLike,
    groups: ArrayLike,
    pools: list[tuple[dict[str, float], ArrayLike]],
    library: ArrayLike | None = None,
) -> list[float]:
    """Per pool of known make-up: Spearman over genes between the pool's profile and the mix.

    ``pools`` holds, per pool, its make-up (group -> number or share of cells) and its profile
    over the same genes as ``values`` (log1p counts per 10k, cells x genes). The mix is what the
    imputed cells say the pool holds: per group, the mean over its cells of the expected counts
    (``expm1(values) * library / TARGET_SUM``; with no ``library`` every cell counts the same),
    summed over the groups weighted by the make-up. A pool needing a group absent from
    ``groups`` is skipped; the result has one value per pool scored, in order.
    """
    from scipy.stats import spearmanr

    vals = np.expm1(np.maximum(np.asarray(values, dtype=np.float64), 0.0))
    if library is not None:
        vals = vals * (np.asarray(library, dtype=np.float64).reshape(-1, 1) / TARGET_SUM)
    grp = np.asarray(groups)
    pseudo = {name: vals[grp == name].mean(axis=0) for name in np.unique(grp)}
    out: list[float] = []
    for make_up, profile in pools:
        parts = {name: float(w) for name, w in make_up.items() if w}
        if not parts or any(name not in pseudo for name in parts):
            continue
        mix = sum(w * pseudo[name] for name, w in parts.items())
        out.append(float(spearmanr(mix, np.asarray(profile, dtype=np.float64)).statistic))
    return out
