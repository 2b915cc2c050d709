"""The scFAN network: three convolution blocks over one-hot DNA (+ accessibility), multi-task sigmoid head.

Maths only (``nn.Module``); data, training and prediction live in their own modules.
Paper configuration (scFAN, Fu et al., Sci Adv 2020): 160/240/240 filters of width 8, batch norm,
ReLU, max-pool, dropout 0.2/0.2/0.5, a dense layer of 919 units and one sigmoid output per TF.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

PAPER_FILTERS = (160, 240, 240)
PAPER_DROPOUT = (0.2, 0.2, 0.5)


@dataclass
class ModelConfig:
    """Architecture of :class:`ScFAN`; stored in every checkpoint."""

    n_tfs: int
    window: int = 1000
    use_accessibility: bool = True
    filters: tuple[int, ...] = PAPER_FILTERS
    kernel: int = 8
    pool: int = 4
    dropout: tuple[float, ...] = PAPER_DROPOUT
    hidden: int = 919

    def __post_init__(self) -> None:
        self.filters = tuple(int(f) for f in self.filters)
        self.dropout = tuple(float(d) for d in self.dropout)
        if len(self.filters) != len(self.dropout):
            msg = f"filters ({len(self.filters)}) and dropout ({len(self.dropout)}) need one entry per block"
            raise ValueError(msg)
        if self.n_tfs < 1 or self.window < self.kernel:
            msg = f"need n_tfs >= 1 and window >= kernel, got {self.n_tfs} and {self.window}"
            raise ValueError(msg)

    @property
    def in_channels(self) -> int:
        """4 DNA channels (A, C, G, T) plus one accessibility channel when used."""
        return 5 if self.use_accessibility else 4

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ScFAN(nn.Module):
    """Multi-task CNN: ``(batch, channels, window)`` -> ``(batch, n_tfs)`` logits.

    Sigmoid is applied by the loss (``BCEWithLogitsLoss``) and by :meth:`predict_proba`, so
    ``forward`` always returns logits.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        blocks: list[nn.Module] = []
        channels, length = config.in_channels, config.window
        for n_filters, p_drop in zip(config.filters, config.dropout, strict=True):
            # (batch, channels, length) -> (batch, n_filters, ceil((length - kernel + 1) / pool))
            blocks += [
                nn.Conv1d(channels, n_filters, kernel_size=config.kernel),
                nn.BatchNorm1d(n_filters),
                nn.ReLU(),
                nn.MaxPool1d(config.pool, ceil_mode=True),
                nn.Dropout(p_drop),
            ]
            length = -(-(length - config.kernel + 1) // config.pool)
            channels = n_filters
            if length < 1:
                msg = f"window {config.window} is too short for {len(config.filters)} blocks of kernel {config.kernel} and pool {config.pool}"
                raise ValueError(msg)
        self.features = nn.Sequential(*blocks)
        # (batch, channels * length) -> (batch, hidden) -> (batch, n_tfs)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * length, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, config.n_tfs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Binding probabilities ``(batch, n_tfs)`` in eval mode."""
        return torch.sigmoid(self(x).float())
