"""Settings of the imputation stage: the one definition of every default of ``scregnet impute``
and :func:`scregnet.impute.api.impute` (both read their defaults from here). Free of heavy
imports, so ``--help`` stays instant."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: most genes modelled (the most variable of the detected ones)
N_TOP_GENES = 2000
#: torch device: auto (CUDA when available, else CPU), cpu, cuda or cuda:N
DEVICE = "auto"
#: neighbour counts tried when :attr:`ImputeConfig.n_neighbours` is 0 (chosen per data set by
#: :func:`scregnet.impute.data.choose_neighbours`)
NEIGHBOUR_CANDIDATES = (15, 30, 50, 100)
#: without a bulk matrix, the pseudobulk stage (pretraining and adaptation on the pseudobulk of the
#: cells' clusters) runs only when smoothing over the fewest candidate neighbours predicts held-out
#: molecules better than smoothing over any more, by at least this fraction of its loss
#: (:func:`scregnet.impute.data.local_smoothing_gain`). Where wider smoothing does about as well or
#: better (shallow or noisy cells) the stage raised the loss on every such set measured; chosen on
#: the development split (docs/benchmarks.md, "Shallow cells")
PSEUDOBULK_MIN_LOCAL_GAIN = 0.002

#: training on fewer cells than this logs a warning: the model, its neighbour graph and the
#: neighbour count are all fitted on the cells given, which this few cannot pin down
MIN_TRAINING_CELLS = 50


@dataclass
class ImputeConfig:
    """Architecture of :class:`ScDTL` (saved in checkpoints as a dict)."""

    n_genes: int
    hidden_dim: int = 256
    latent_dim: int = 64
    dropout: float = 0.1
    use_unet: bool = True
    use_attention: bool = True  # False: the branches' features are mixed without attention
    use_neighbours: bool = True
    #: neighbours pooled into the neighbour channel; 0: chosen per data set among
    #: :data:`NEIGHBOUR_CANDIDATES` on held-out molecules (a checkpoint keeps the chosen number)
    n_neighbours: int = 0
    n_pcs: int = 30  # principal components the neighbours are found in
    unet_channels: tuple[int, ...] = (4, 8, 16)
    unet_kernels: tuple[int, ...] = (15, 31, 63)
    unet_patch: int = 8
    fusion_channels: int = 4
    attention_reduction: int = 4
    spatial_kernel: int = 7
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.unet_channels = tuple(int(c) for c in self.unet_channels)
        self.unet_kernels = tuple(int(k) for k in self.unet_kernels)
        if len(self.unet_channels) != len(self.unet_kernels) or not self.unet_channels:
            msg = "unet_channels and unet_kernels must be non-empty and of equal length"
            raise ValueError(msg)
        if min(self.n_genes, self.hidden_dim, self.latent_dim, self.fusion_channels) < 1:
            msg = "n_genes, hidden_dim, latent_dim and fusion_channels must be >= 1"
            raise ValueError(msg)
        if self.n_neighbours < 0 or self.n_pcs < 1:
            msg = (
                f"need n_neighbours >= 0 (0: chosen per data set) and n_pcs >= 1, got "
                f"{self.n_neighbours} and {self.n_pcs}"
            )
            raise ValueError(msg)

    @property
    def in_channels(self) -> int:
        """Input channels per gene: own profile, cell depth (+ neighbour profile)."""
        return 3 if self.use_neighbours else 2

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["unet_channels"] = list(self.unet_channels)
        d["unet_kernels"] = list(self.unet_kernels)
        return d


@dataclass
class TrainConfig:
    """Optimisation settings (saved in the checkpoint beside the architecture)."""

    #: most fusion epochs (early stopping usually ends sooner); with ``batch_size`` chosen by
    #: molecular cross-validation on CellBench (development split seed 1, docs/benchmarks.md)
    epochs: int = 60
    pretrain_epochs: int = 10
    adapt_epochs: int = 2
    bulk_steps: int = 16  # bulk pretraining batches per pretraining epoch
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-5
    split_min: float = 0.5  # fraction of a cell's molecules fed in (the rest is the target)
    split_max: float = 0.9
    bulk_corruption: float = 0.3
    mmd_weight: float = 0.25
    bulk_weight: float = 0.1
    use_bulk: bool = True
    val_fraction: float = 0.1
    patience: int = 3  # fusion epochs without improvement, counted as train.averaging_steps says
    val_max_cells: int = 2000
    ema_decay: float = 0.99  # fusion weights validated and kept as their running average (0: off)
    gene_scale: bool = True  # after training, fit each gene's output scale to its observed counts

    def __post_init__(self) -> None:
        if self.epochs < 1:
            msg = f"epochs must be >= 1, got {self.epochs}"
            raise ValueError(msg)
        if self.batch_size < 2:
            msg = f"batch size must be >= 2, got {self.batch_size}"
            raise ValueError(msg)
        if not 0 < self.split_min <= self.split_max < 1:
            msg = "need 0 < split_min <= split_max < 1"
            raise ValueError(msg)
        if not 0 <= self.ema_decay < 1:
            msg = f"ema_decay must be in [0, 1), got {self.ema_decay}"
            raise ValueError(msg)
        if not 0 <= self.val_fraction < 0.5:
            msg = "need 0 <= val_fraction < 0.5"
            raise ValueError(msg)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
