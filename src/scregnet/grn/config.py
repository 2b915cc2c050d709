"""Settings of the GRN stage: the one definition of every default of ``scregnet grn`` (the CLI
reads its defaults from here). Free of heavy imports, so ``--help`` stays instant."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from scregnet.choices import check_choice

#: the head's gene-level label features (:mod:`scregnet.grn.label_features`), in column order
LABEL_FEATURE_NAMES = (
    "prior",
    "log_prior",
    "sim_prior",
    "prior_x_rho",
    "sim_prior_x_rho",
    "log_sim_prior",
    "log_abs_rho",
    "log_abs_r",
    "tf_in_degree",
    "log_tf_in_degree",
    "reciprocal",
    "reciprocal_absent",
    "shared_regulators",
    "log_shared_regulators",
    "tf_degree_mean",
    "tf_degree_stats",
    "target_mean",
    "target_var",
    "target_dropout",
    "tf_mean",
    "tf_var",
    "tf_dropout",
)
N_LABEL_FEATURES = len(LABEL_FEATURE_NAMES)
#: pooled rho, |pooled rho|, metacell r, |metacell r|
N_PAIR_FEATURES = 4
CELLS_PER_METACELL = 100
#: expression bins per axis of a pair image
N_BINS = 32
#: neighbour images per gene
N_NEIGHBOURS = 5
#: with pair features, neighbour images of a gene with its labelled regulators (the training
#: labels' graph, topped up with its most correlated genes) instead of its most correlated genes
#: only (:func:`scregnet.grn.images.label_neighbours`)
LABEL_NEIGHBOURS = True
#: per-view statistics of a pair (:meth:`scregnet.grn.images.ImageBuilder.stats`): Pearson r,
#: |r|, Spearman rho, |rho|
N_STATS = 4
#: binding-prior labels (``--prior``): bp either side of a TSS, binding probability of a
#: positive, sampled negatives per positive
PRIOR_WINDOW = 10_000
PRIOR_THRESHOLD = 0.5
NEGATIVE_RATIO = 3.0
#: pairs per scoring batch
SCORE_BATCH_SIZE = 2048
#: training pairs per epoch (:attr:`TrainConfig.sampling`)
Sampling = Literal["balanced", "natural"]


def usable_neighbours(n_neighbours: int, n_genes: int) -> int:
    """The neighbour images per gene with ``n_genes`` genes: ``n_neighbours``, at most every
    other gene (``n_genes - 1``). The one definition the image builder and the network share."""
    return max(0, min(n_neighbours, n_genes - 1))


@dataclass
class GRNConfig:
    n_bins: int = N_BINS
    n_neighbours: int = N_NEIGHBOURS
    embed_dim: int = 32
    hidden: int = 64
    dropout: float = 0.2
    n_stats: int = N_STATS
    #: width of the head's feature vector (ImageBuilder.features): the 4 expression pair
    #: features, then the label features; 4: expression only; 0: DeepMCL as published
    n_pair_features: int = N_PAIR_FEATURES + N_LABEL_FEATURES
    #: metacell size for the metacell-correlation pair features (0: those features are 0)
    cells_per_metacell: int = CELLS_PER_METACELL
    #: with pair features: neighbour images from the training labels' graph (:data:`LABEL_NEIGHBOURS`)
    label_neighbours: bool = LABEL_NEIGHBOURS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainConfig:
    #: most epochs (``max_pairs_per_epoch`` pairs each): the setting docs/benchmarks.md reports
    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    contrastive_weight: float = 0.5
    margin: float = 1.0
    cell_fraction: float = 0.8
    val_fraction: float = 0.2
    patience: int = 8
    max_pairs_per_epoch: int = 2048
    #: ``natural``: pairs drawn uniformly, so at the labels' own positive rate (better early
    #: precision, see docs/benchmarks.md); ``balanced``: as many positive as negative pairs per
    #: epoch (positives resampled), as DeepMCL trains
    sampling: Sampling = "natural"
    #: weight of a positive pair in the classification loss (class weighting for sparse truths;
    #: 1: unweighted)
    pos_weight: float = 1.0
    amp: bool = True
    #: TF-aware inner folds of the training TFs for the held-out choice of the skip read-out (and
    #: of the network when one ``val_fraction`` split holds too few positives)
    inner_folds: int = 3
    #: train the network on top of the chosen read-out (False, ``scregnet grn --no-network``: the
    #: read-out alone, no network trained; scoring then builds no image)
    network: bool = True
    #: bootstrap resamples of validation TFs for the standard-error rule
    n_bootstrap: int = 200

    def __post_init__(self) -> None:
        check_choice("sampling", self.sampling, Sampling)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
