"""Settings of the TF-binding stage: the one definition of every default of ``tfbind train`` and
``tfbind predict`` (the CLI reads its defaults from here). Free of heavy imports, so ``--help``
stays instant."""

from __future__ import annotations

from dataclasses import dataclass, field

from scregnet.io.genome import MITOCHONDRIAL

#: chromosomes left out of training and prediction unless asked for (mitochondria)
DEFAULT_EXCLUDE = MITOCHONDRIAL
#: the scFAN paper's convolution blocks: filters and dropout per block
PAPER_FILTERS = (160, 240, 240)
PAPER_DROPOUT = (0.2, 0.2, 0.5)


@dataclass
class TrainConfig:
    """Training settings (every field is a ``tfbind train`` flag)."""

    window: int = 1000
    bin_size: int = 200
    step: int = 200
    test_chroms: list[str] | None = None
    val_chroms: list[str] | None = None
    exclude_chroms: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    negative_ratio: float = 3.0
    max_pos_weight: float = 20.0
    epochs: int = 20
    patience: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    filters: tuple[int, ...] = PAPER_FILTERS
    dropout: tuple[float, ...] = PAPER_DROPOUT
    hidden: int = 919
    use_accessibility: bool = True
    rc_augment: bool = True
    jitter: int = 50
    motifs: str | None = None
    #: first-block filters start as the TFs' motifs (chosen on the real ChIP-seq benchmark's tuning
    #: split, docs/benchmarks.md)
    motif_init: bool = True
    motif_tracks: bool = True
    context: bool = True
    motif_centre: int = 300
    sequence_warmup: int = 0
    seed: int = 0


@dataclass
class PredictConfig:
    """Settings of ``tfbind predict`` (each a flag)."""

    batch_size: int = 256
    rc_average: bool = True
    n_neighbors: int = 15
    threshold: float = 0.5
    motif_p_value: float = 5e-5
    chromvar_iterations: int = 50
    seed: int = 0
