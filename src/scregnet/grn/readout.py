"""The skip read-out of the GRN model and how it is chosen on held-out training TFs.

The read-out is the linear part of :class:`scregnet.grn.model.DeepMCL`'s logit (our extension):
a ranking of the pair features (:data:`SKIP_CANDIDATES`: |Spearman|, |metacell r|, the target
prior and its variants, two fitted combinations), plus optionally a TF out-degree term.
:func:`choose_skip` picks it on inner TF-aware folds of the training TFs: the fixed ranking with
the best mean per-TF AUPRC over validation TFs, unless a fitted read-out beats it by more than the
standard-error rule's multiple (:data:`SE_MULTIPLE`, :func:`se_multiple`) of standard errors.
:func:`scregnet.grn.train.fit` then decides whether the network adds to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from scregnet.grn.data import PairLabels
    from scregnet.grn.images import ImageBuilder

log = logging.getLogger(__name__)

#: a more complex choice must gain more than this many standard errors of AUPRC over the
#: held-out TFs. Two, not one: the challenger is the best of several options (an optimistic
#: maximum) and the standard error comes from few TFs; with one, noise-fitted read-outs passed on
#: uninformative labels (the demo world's binding-prior labels: logistic gain 1.6 SE, worse on the
#: true edges than |Spearman|; docs/benchmarks.md ## GRN)
SE_MULTIPLE = 2.0
#: and by more than rounding noise
GAIN_TOLERANCE = 1e-9


#: fewer validation TFs than this choose nothing: the read-out is :data:`DEFAULT_READOUTS`' first
#: available one, with no TF term. On 2-3 TFs a choice among eight read-outs is noise, and the
#: target prior alone scored higher (docs/benchmarks.md ## GRN, few labelled TFs)
MIN_SELECTION_TFS = 4
#: the read-out used below :data:`MIN_SELECTION_TFS`: the target prior, else (no label features)
#: |Spearman|
DEFAULT_READOUTS = ("prior", "spearman")


def se_multiple(n_tfs: int) -> float:
    """How many standard errors a fitted read-out's mean per-TF gain over ``n_tfs`` validation TFs
    must exceed: :data:`SE_MULTIPLE`, or the two-sided 95 % quantile of Student's t with
    ``n_tfs - 1`` degrees of freedom where that is larger (an SE from a few TFs is itself
    uncertain: 12.7 at 2 TFs, 4.3 at 3, 2.8 at 5, 2.2 at 11, 2.0 from 62 on); infinite below 2
    TFs. With labels for a handful of TFs a fitted read-out otherwise passes on the luck of two
    regulators and can rank far below every fixed one (docs/benchmarks.md ## GRN, few labelled
    TFs)."""
    if n_tfs < 2:
        return float("inf")
    from scipy.stats import t

    return max(SE_MULTIPLE, float(t.ppf(0.975, n_tfs - 1)))


def paired_gain(
    better: NDArray[np.float64], base: NDArray[np.float64]
) -> tuple[float, float, bool]:
    """Mean per-TF gain of ``better`` over ``base`` (one AUPRC per validation TF each), its
    standard error, and whether it passes :func:`se_multiple` for that many TFs."""
    diff = better - base
    gain = float(diff.mean())
    se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else float("inf")
    return gain, se, gain > se_multiple(diff.size) * se + GAIN_TOLERANCE


def inner_tf_folds(labels: PairLabels, k: int, rng: np.random.Generator) -> list[NDArray[np.bool_]]:
    """``k`` TF-aware validation masks over ``labels``: the TFs with a positive pair dealt into
    ``k`` folds (every pair of a TF in the same fold); TFs without positives always train.

    Returns no fold when fewer than two TFs have a positive pair (nothing to validate on).
    """
    with_pos = np.unique(labels.tf[labels.label == 1])
    k = min(k, with_pos.size)
    if k < 2:
        return []
    order = rng.permutation(with_pos)
    return [np.isin(labels.tf, order[i::k]) for i in range(k)]


def auprc_gain_se(
    tf: NDArray[np.intp],
    label: NDArray[np.int8],
    better: NDArray[np.float64],
    base: NDArray[np.float64],
    rng: np.random.Generator,
    n_bootstrap: int = 200,
) -> tuple[float, float]:
    """AUPRC(better) - AUPRC(base) on validation pairs, and its standard error over bootstrap
    resamples of the validation TFs (whole TFs drawn with replacement, so the error reflects how
    much the gain varies between regulators, the unit that generalises). With a single
    validation TF, whose resamples would all be equal, its pairs are resampled instead."""
    from scregnet.stats import auprc

    gain = auprc(label, better) - auprc(label, base)
    groups = [np.flatnonzero(tf == t) for t in np.unique(tf)]
    diffs = []
    for _ in range(n_bootstrap):
        if len(groups) > 1:
            idx = np.concatenate([groups[i] for i in rng.integers(len(groups), size=len(groups))])
        else:
            idx = rng.integers(tf.size, size=tf.size)
        if label[idx].max() == 0:
            continue
        diffs.append(auprc(label[idx], better[idx]) - auprc(label[idx], base[idx]))
    se = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else float("inf")
    return float(gain), se


def per_tf_auprc(
    tf: NDArray[np.intp], label: NDArray[np.int8], score: NDArray[np.float64]
) -> NDArray[np.float64]:
    """AUPRC of each TF's own pairs, for the TFs with both positive and negative pairs (in TF
    order). Their mean weighs every regulator equally, where a pooled AUPRC is carried by the
    TFs with the most positives: the unit a read-out must generalise over is the TF."""
    from scregnet.stats import auprc

    order = np.argsort(tf, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(tf[order])) + 1)
    out = [auprc(label[g], score[g]) for g in groups if 0 < int(label[g].sum()) < g.size]
    return np.asarray(out, dtype=np.float64)


def feature_matrix(builder: ImageBuilder, labels: PairLabels, width: int) -> NDArray[np.float64]:
    import torch

    with torch.no_grad():
        return (
            builder.features(
                torch.as_tensor(labels.tf, device=builder.device),
                torch.as_tensor(labels.target, device=builder.device),
                width,
            )
            .double()
            .cpu()
            .numpy()
        )


def use_labels(builder: ImageBuilder, labels: PairLabels) -> None:
    """Label features (scregnet.grn.label_features) from these pairs only, from now on."""
    builder.set_labels(labels.tf, labels.target, labels.label)


#: the read-outs of the pair features that the skip can take, simplest first: |Spearman| alone
#: (the correlation start), |metacell r| alone, the target prior, the similarity-weighted prior
#: (:mod:`scregnet.grn.label_features`), each prior times |Spearman|, and two fitted ones
SKIP_CANDIDATES = (
    "spearman",
    "metacell",
    "prior",
    "prior_x_rho",
    "sim_prior",
    "sim_prior_x_rho",
    "loglinear",
    "logistic",
)
#: the candidates with weights fitted on the labels (the others are fixed rankings)
FITTED_CANDIDATES = ("loglinear", "logistic")
#: the candidates that need the label features
LABEL_CANDIDATES = ("prior", "prior_x_rho", "sim_prior", "sim_prior_x_rho", "loglinear")
#: ``loglinear``: weights tried for the standardised log target prior, log |Pearson r| and log
#: similarity-weighted prior; the combination with the best AUPRC on the training pairs wins
LOGLINEAR_GRID = tuple(
    (u, v, w)
    for u in (0.0, 0.5, 1.0, 2.0)
    for v in (0.0, 0.5, 1.0, 2.0)
    for w in (0.0, 0.5, 1.0)
    if u or v or w
)


#: the weights tried for a TF out-degree label feature (:data:`scregnet.grn.label_features.
#: DEGREE_COVARIATES`), in the standardised feature's units (the fixed read-outs are one
#: standardised feature, so unit scale)
DEGREE_WEIGHTS = (0.25, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class SkipChoice:
    """The chosen skip read-out: a :data:`SKIP_CANDIDATES` name, plus ``degree_weight`` times
    the TF out-degree feature ``degree`` (None: no TF term)."""

    name: str
    degree: str | None = None
    degree_weight: float = 0.0

    def __str__(self) -> str:
        return self.name + (f" + {self.degree_weight} x {self.degree}" if self.degree else "")


def skip_weights(
    skip: SkipChoice, features: NDArray[np.float64], label: NDArray[np.int8]
) -> tuple[NDArray[np.float64], float]:
    """Weights and bias of ``skip`` fitted on labelled pairs (:func:`fit_skip`, then the TF
    term added)."""
    w, b = fit_skip(skip.name, features, label)
    if skip.degree is not None:
        w = w.copy()
        w[_label_column(skip.degree)] += skip.degree_weight
    return w, b


def _label_column(name: str) -> int:
    from scregnet.grn.config import LABEL_FEATURE_NAMES, N_PAIR_FEATURES

    return N_PAIR_FEATURES + LABEL_FEATURE_NAMES.index(name)


def fit_skip(
    name: str, features: NDArray[np.float64], label: NDArray[np.int8]
) -> tuple[NDArray[np.float64], float]:
    """Weights and bias of a skip read-out (:data:`SKIP_CANDIDATES`) fitted on labelled pairs."""
    from sklearn.linear_model import LogisticRegression

    w = np.zeros(features.shape[1])
    if name == "spearman":
        w[1] = 1.0  # ImageBuilder.pair_features: rho, |rho|, metacell r, |metacell r|
        return w, 0.0
    if name == "metacell":
        w[3] = 1.0
        return w, 0.0
    if name == "prior":  # the target prior, ties broken by |Pearson r| (as the baseline)
        w[_label_column("log_prior")] = 1.0
        w[_label_column("log_abs_r")] = 1e-4
        return w, 0.0
    if name == "sim_prior":  # the similarity-weighted prior, ties broken by |Pearson r|
        w[_label_column("sim_prior")] = 1.0
        w[_label_column("log_abs_r")] = 1e-4
        return w, 0.0
    if name in ("prior_x_rho", "sim_prior_x_rho"):
        w[_label_column(name)] = 1.0
        return w, 0.0
    if name == "loglinear":  # a product prior^u |r|^v sim_prior^w, fitted by AUPRC
        from scregnet.stats import auprc

        cols = [_label_column(c) for c in ("log_prior", "log_abs_r", "log_sim_prior")]
        best = max(LOGLINEAR_GRID, key=lambda g: auprc(label, features[:, cols] @ np.asarray(g)))
        w[cols] = best
        return w, 0.0
    if name != "logistic":
        msg = f"unknown skip read-out {name!r}"
        raise ValueError(msg)
    lr = LogisticRegression(C=1.0, max_iter=2000).fit(features, label)
    return lr.coef_[0].astype(np.float64), float(lr.intercept_[0])


def skip_candidates(builder: ImageBuilder, width: int) -> list[str]:
    """The read-outs of :data:`SKIP_CANDIDATES` the features of width ``width`` support."""
    from scregnet.grn.config import N_PAIR_FEATURES

    return [
        n
        for n in SKIP_CANDIDATES
        if (n != "metacell" or builder.zmeta is not None)
        and (n not in LABEL_CANDIDATES or width > N_PAIR_FEATURES)
    ]


def choose_skip(
    builder: ImageBuilder,
    labels: PairLabels,
    folds: list[NDArray[np.bool_]],
    width: int,
    boot: np.random.Generator,
    n_bootstrap: int,
) -> tuple[SkipChoice, dict[str, Any]]:
    """Step 1 of :func:`scregnet.grn.train.fit`: the skip read-out, chosen on the inner folds'
    out-of-fold scores (each fold's label features come from its own training TFs' labels only).

    The read-out is chosen by the mean over validation TFs of each TF's own AUPRC (how well it
    ranks one TF's targets; below :data:`MIN_SELECTION_TFS` validation TFs it is the default,
    :data:`DEFAULT_READOUTS`, with no TF term); then a TF out-degree term (a feature of
    :data:`scregnet.grn.label_features.DEGREE_COVARIATES` x :data:`DEGREE_WEIGHTS`, which ranks
    the TFs against each other) is added when it raises the pooled AUPRC of the validation pairs
    by more than ``SE_MULTIPLE`` bootstrap SEs. Returns the choice and the selection record."""
    from scregnet.grn.config import N_PAIR_FEATURES
    from scregnet.grn.label_features import DEGREE_COVARIATES

    names = skip_candidates(builder, width)
    oof = {n: np.zeros(len(labels)) for n in names}
    degree_names = list(DEGREE_COVARIATES) if width > N_PAIR_FEATURES else []
    oof_degree = {d: np.zeros(len(labels)) for d in degree_names}
    for val_mask in folds:
        use_labels(builder, labels.subset(~val_mask))
        features = feature_matrix(builder, labels, width)
        for n in names:
            w, b = fit_skip(n, features[~val_mask], labels.label[~val_mask])
            oof[n][val_mask] = features[val_mask] @ w + b
        for d in degree_names:
            oof_degree[d][val_mask] = features[val_mask, _label_column(d)]
    in_val = np.logical_or.reduce(folds)
    tf_v, y_v = labels.tf[in_val], labels.label[in_val]
    per_tf = {n: per_tf_auprc(tf_v, y_v, oof[n][in_val]) for n in names}
    skip_auprc = {n: float(v.mean()) for n, v in per_tf.items()}
    # the best read-out without fitted weights, unless a fitted one beats it by SE_MULTIPLE SEs
    base = max((n for n in names if n not in FITTED_CANDIDATES), key=lambda n: skip_auprc[n])
    fitted = [n for n in names if n in FITTED_CANDIDATES]
    challenger = max(fitted, key=lambda n: skip_auprc[n]) if fitted else base
    gain, se, wins = paired_gain(per_tf[challenger], per_tf[base])
    skip_name = challenger if challenger != base and wins else base
    n_val = int(np.unique(tf_v).size)
    if n_val < MIN_SELECTION_TFS:
        skip_name = next(n for n in DEFAULT_READOUTS if n in names)
        degree_names = []
    skip, degree_record = choose_degree_term(
        skip_name,
        oof[skip_name][in_val],
        {d: oof_degree[d][in_val] for d in degree_names},
        tf_v,
        y_v,
        boot,
        n_bootstrap,
    )
    selection: dict[str, Any] = {
        "mode": "held-out selection",
        "skip_tf_auprc": skip_auprc,
        "skip_gain": gain,
        "skip_gain_se": se,
        "skip": skip_name,
        "inner_folds": len(folds),
        "validation_tfs": n_val,
        **degree_record,
    }
    log.info(
        "skip read-out on %d inner TF folds: out-of-fold mean per-TF AUPRC %s; %s gains %.4f "
        "(SE %.4f): using %s%s",
        len(folds),
        ", ".join(f"{n} {v:.4f}" for n, v in skip_auprc.items()),
        challenger,
        gain,
        se,
        skip,
        f" (only {n_val} validation TFs: the default read-out)"
        if n_val < MIN_SELECTION_TFS
        else "",
    )
    return skip, selection


def choose_degree_term(
    skip_name: str,
    score: NDArray[np.float64],
    degree: dict[str, NDArray[np.float64]],
    tf: NDArray[np.intp],
    label: NDArray[np.int8],
    boot: np.random.Generator,
    n_bootstrap: int,
) -> tuple[SkipChoice, dict[str, Any]]:
    """The TF out-degree term for the read-out ``skip_name`` whose out-of-fold scores of the
    validation pairs are ``score``: the feature and weight with the best pooled AUPRC, kept when
    its gain over no term exceeds ``SE_MULTIPLE`` bootstrap SEs (whole TFs resampled)."""
    from scregnet.stats import auprc

    record: dict[str, Any] = {"tf_degree": None, "tf_degree_weight": 0.0, "readout": skip_name}
    if not degree:
        return SkipChoice(skip_name), record
    tried = {
        (d, g): auprc(label, score + g * col) for d, col in degree.items() for g in DEGREE_WEIGHTS
    }
    best_d, best_g = max(tried, key=lambda k: tried[k])
    gain, se = auprc_gain_se(tf, label, score + best_g * degree[best_d], score, boot, n_bootstrap)
    record |= {"tf_degree_gain": gain, "tf_degree_gain_se": se}
    skip = SkipChoice(skip_name)
    if gain > SE_MULTIPLE * se + GAIN_TOLERANCE:
        skip = SkipChoice(skip_name, best_d, best_g)
        record |= {"tf_degree": best_d, "tf_degree_weight": best_g}
    return skip, record | {"readout": str(skip)}
