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

    calib_scale: torch.Tensor
    calib_bias: torch.Tensor

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
        # per-TF logit calibration (``scale * logit + bias``), fitted after training; identity before
        self.register_buffer("calib_scale", torch.ones(config.n_tfs))
        self.register_buffer("calib_bias", torch.zeros(config.n_tfs))
        # (batch, channels * length) -> (batch, hidden) -> (batch, n_tfs)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * length, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, config.n_tfs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def calibrate(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated logits: the per-TF Platt scaling fitted on the validation chromosomes."""
        return logits.float() * self.calib_scale + self.calib_bias

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Calibrated binding probabilities ``(batch, n_tfs)`` in eval mode."""
        return torch.sigmoid(self.calibrate(self(x)))

    @torch.no_grad()
    def init_motif_filters(
        self, log_odds: list[torch.Tensor], *, bn_shift: float = -2.0
    ) -> list[int]:
        """Initialise first-block filters from motifs (still trainable); returns the filters used.

        Each ``(4, length)`` log-odds matrix fills two filters, the motif and its reverse
        complement: its most informative ``kernel``-wide stretch (the whole motif, centred, when it
        is shorter). The accessibility input weight of these filters is 0 and the following batch
        norm's shift is ``bn_shift``, so that at the start only strong matches pass the ReLU.
        Motifs beyond the first block's filters (two per motif) are left out.
        """
        conv = self.features[0]
        bn = self.features[1]
        assert isinstance(conv, nn.Conv1d) and isinstance(bn, nn.BatchNorm1d)
        assert conv.bias is not None
        k = self.config.kernel
        n_fit = min(len(log_odds), conv.out_channels // 2)
        used: list[int] = []
        for i, lo in enumerate(log_odds[:n_fit]):
            lo = lo.float()
            length = lo.shape[1]
            w = torch.zeros(4, k)
            if length >= k:
                info = lo.clamp(min=0).sum(dim=0)  # per-column information proxy
                sums = torch.stack([info[j : j + k].sum() for j in range(length - k + 1)])
                j = int(torch.argmax(sums))
                w = lo[:, j : j + k]
            else:
                off = (k - length) // 2
                w[:, off : off + length] = lo
            for f, mat in ((2 * i, w), (2 * i + 1, w.flip(dims=(0, 1)))):
                conv.weight[f].zero_()
                conv.weight[f, :4] = mat
                conv.bias[f] = 0.0
                bn.bias[f] = bn_shift
                used.append(f)
        return used
