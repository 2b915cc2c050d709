"""The scFAN network: three convolution blocks over one-hot DNA (+ accessibility), multi-task sigmoid head.

Maths only (``nn.Module``); data, training and prediction live in their own modules.
Paper configuration (scFAN, Fu et al., Sci Adv 2020): 160/240/240 filters of width 8, batch norm,
ReLU, max-pool, dropout 0.2/0.2/0.5, a dense layer of 919 units and one sigmoid output per TF.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from scregnet.tfbind.config import PAPER_DROPOUT, PAPER_FILTERS


@dataclass
class ModelConfig:
    """Architecture of :class:`ScFAN`; stored in every checkpoint."""

    n_tfs: int
    window: int = 1000
    use_accessibility: bool = True
    filters: tuple[int, ...] = PAPER_FILTERS
    kernel: int = 8
    #: width of the first block's filters (0 = ``kernel``); wider filters hold whole motifs
    first_kernel: int = 0
    pool: int = 4
    dropout: tuple[float, ...] = PAPER_DROPOUT
    hidden: int = 919
    #: fixed motif-scan channels computed in the network from the DNA (our extension; 0 = none)
    n_motifs: int = 0
    motif_width: int = 0
    #: the TF (output index) of each motif
    motif_tf: tuple[int, ...] = ()
    #: central stretch (bp) whose best motif match feeds the per-TF motif x accessibility path
    motif_centre: int = 300
    #: one constant input channel per TF with its sample-level activity context (our extension)
    use_context: bool = False

    def __post_init__(self) -> None:
        self.filters = tuple(int(f) for f in self.filters)
        self.dropout = tuple(float(d) for d in self.dropout)
        self.motif_tf = tuple(int(t) for t in self.motif_tf)
        if len(self.motif_tf) != self.n_motifs or any(
            not 0 <= t < self.n_tfs for t in self.motif_tf
        ):
            msg = f"need one TF index in [0, {self.n_tfs}) per motif, got {self.motif_tf} for {self.n_motifs} motif(s)"
            raise ValueError(msg)
        if self.n_motifs and self.motif_width < 1:
            msg = "motif_width must be >= 1 with motifs"
            raise ValueError(msg)
        if len(self.filters) != len(self.dropout):
            msg = f"filters ({len(self.filters)}) and dropout ({len(self.dropout)}) need one entry per block"
            raise ValueError(msg)
        if self.n_tfs < 1 or self.window < self.kernel:
            msg = f"need n_tfs >= 1 and window >= kernel, got {self.n_tfs} and {self.window}"
            raise ValueError(msg)

    @property
    def in_channels(self) -> int:
        """Input channels: 4 DNA (A, C, G, T), 1 accessibility when used, then one constant
        context channel per TF when used."""
        return 4 + int(self.use_accessibility) + (self.n_tfs if self.use_context else 0)

    @property
    def trunk_channels(self) -> int:
        """Channels of the convolution trunk: DNA, accessibility and the motif-scan tracks."""
        return 4 + int(self.use_accessibility) + self.n_motifs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def block_kernel(config: ModelConfig, block: int) -> int:
    """The filter width of convolution block ``block`` (the first may be wider)."""
    return config.first_kernel if block == 0 and config.first_kernel > 0 else config.kernel


def trunk_length(config: ModelConfig) -> int:
    """Positions left after the convolution blocks (each: a valid convolution, then a max-pool
    with ceil mode); below 1 the window is too short for the blocks."""
    length = config.window
    for block in range(len(config.filters)):
        length = -(-(length - block_kernel(config, block) + 1) // config.pool)
        if length < 1:
            return length
    return length


def base_rate_tfs(tfs: Sequence[str], calib_scale: Sequence[float]) -> list[str]:
    """The TFs whose calibration slope is 0 (:func:`scregnet.tfbind.train.fit_calibration`):
    their binding probability is a constant, their base rate on the validation chromosomes,
    whatever the sequence, accessibility and context."""
    return [str(tf) for tf, a in zip(tfs, calib_scale, strict=True) if float(a) == 0.0]


class ScFAN(nn.Module):
    """Multi-task CNN: ``(batch, channels, window)`` -> ``(batch, n_tfs)`` logits.

    Sigmoid is applied by the loss (``BCEWithLogitsLoss``) and at prediction, so ``forward``
    always returns logits.
    """

    calib_scale: torch.Tensor
    calib_bias: torch.Tensor
    motif_weight: torch.Tensor
    motif_max: torch.Tensor

    #: the context input (AUC - 0.5, about -0.3..0.3) is multiplied by this before its weight
    CONTEXT_SCALE = 10.0

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        blocks: list[nn.Module] = []
        channels, length = config.trunk_channels, trunk_length(config)
        if length < 1:
            msg = f"window {config.window} is too short for {len(config.filters)} blocks of kernel {config.kernel} and pool {config.pool}"
            raise ValueError(msg)
        for i, (n_filters, p_drop) in enumerate(zip(config.filters, config.dropout, strict=True)):
            # (batch, channels, length) -> (batch, n_filters, ceil((length - kernel + 1) / pool))
            blocks += [
                nn.Conv1d(channels, n_filters, kernel_size=block_kernel(config, i)),
                nn.BatchNorm1d(n_filters),
                nn.ReLU(),
                nn.MaxPool1d(config.pool, ceil_mode=True),
                nn.Dropout(p_drop),
            ]
            channels = n_filters
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
        # motif-scan tracks: fixed log-odds filters (set by :meth:`set_motifs`, kept in the state)
        self.register_buffer("motif_weight", torch.zeros(config.n_motifs, 4, config.motif_width))
        self.register_buffer("motif_max", torch.zeros(config.n_motifs))
        # per-TF motif x accessibility path on the best central match (zero at the start)
        n_feat = 3 if config.use_accessibility else 1
        self.motif_path = nn.Parameter(torch.zeros(config.n_tfs, n_feat))
        # shared weight of the sample-level activity context (zero at the start)
        self.context_weight = nn.Parameter(torch.zeros(1))

    def set_motifs(self, log_odds: list[torch.Tensor]) -> None:
        """Load the motifs' ``(4, length)`` log2-odds matrices (one per ``config.motif_tf``)."""
        if len(log_odds) != self.config.n_motifs:
            msg = f"expected {self.config.n_motifs} motif(s), got {len(log_odds)}"
            raise ValueError(msg)
        with torch.no_grad():
            self.motif_weight.zero_()
            for i, lo in enumerate(log_odds):
                lo = lo.float()
                if lo.shape[1] > self.config.motif_width:
                    msg = f"motif {i} is {lo.shape[1]} bp, wider than motif_width {self.config.motif_width}"
                    raise ValueError(msg)
                self.motif_weight[i, :, : lo.shape[1]] = lo
                self.motif_max[i] = lo.max(dim=0).values.sum()

    def motif_scores(self, dna: torch.Tensor) -> torch.Tensor:
        """``(batch, n_motifs, length)`` log2 likelihood ratio of the best strand's match at each
        position relative to the consensus (0 = consensus), floored at -16."""
        w = self.motif_weight.to(dna.dtype)
        width = w.shape[2]
        pad = (width // 2, width - 1 - width // 2)
        x = nn.functional.pad(dna, pad)
        fwd = nn.functional.conv1d(x, w)
        rev = nn.functional.conv1d(x, w.flip(dims=(1, 2)))
        best = torch.maximum(fwd, rev) - self.motif_max.to(dna.dtype)[None, :, None]
        return best.clamp(min=-16.0)

    def split_input(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """DNA ``(b, 4, L)``, accessibility ``(b, 1, L)`` or None, context ``(b, n_tfs)`` or None."""
        c = self.config
        acc = x[:, 4:5] if c.use_accessibility else None
        ctx = x[:, 4 + int(c.use_accessibility) :].mean(dim=2) if c.use_context else None
        return x[:, :4], acc, ctx

    def base_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits without the context term (``(batch, n_tfs)``): trunk + motif path.

        Reads only the DNA and accessibility channels; context channels, if present, are ignored
        (so they need not be built at all).
        """
        c = self.config
        dna = x[:, :4]
        acc = x[:, 4:5] if c.use_accessibility else None
        parts = [dna] if acc is None else [dna, acc]
        if c.n_motifs:
            scores = self.motif_scores(dna)
            parts.append(torch.exp2(scores))  # likelihood-ratio tracks, 1 at the consensus
        logits = self.head(self.features(torch.cat(parts, dim=1)))
        if c.n_motifs:
            mid, half = dna.shape[2] // 2, max(c.motif_centre // 2, 1)
            lo, hi = max(mid - half, 0), min(mid + half, dna.shape[2])
            z = scores[:, :, lo:hi].amax(dim=2) / 4.0  # (batch, motifs) in [-4, 0]
            feats = [z]
            if acc is not None:
                a = acc[:, 0, lo:hi].mean(dim=1, keepdim=True).expand_as(z)
                feats += [a, nn.functional.relu(z + 3.0) * a]
            f = torch.stack(feats, dim=2)  # (batch, motifs, n_feat)
            idx = torch.as_tensor(c.motif_tf, dtype=torch.long, device=x.device)
            per_motif = (f * self.motif_path[idx].to(f.dtype)[None]).sum(dim=2)
            logits = logits.index_add(1, idx, per_motif.to(logits.dtype))
        return logits

    def context_logits(self, context: torch.Tensor) -> torch.Tensor:
        """The additive context term ``weight * CONTEXT_SCALE * context`` (``(batch, n_tfs)``)."""
        return self.context_weight * self.CONTEXT_SCALE * context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.base_logits(x)
        if self.config.use_context:
            _, _, ctx = self.split_input(x)
            assert ctx is not None
            logits = logits + self.context_logits(ctx).to(logits.dtype)
        return logits

    def calibrate(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated logits: the per-TF Platt scaling fitted on the validation chromosomes."""
        return logits.float() * self.calib_scale + self.calib_bias

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
        k = int(conv.kernel_size[0])
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
