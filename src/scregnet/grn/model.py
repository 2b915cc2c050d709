"""DeepMCL-style network (nn.Modules and their checkpoint): Siamese image encoder, attention,
classifier head.

Shapes: ``B`` pairs, ``V`` views, ``K = k + 1`` neighbour images per gene, ``D`` embedding size.

Our extension (``n_pair_features > 0``): the pair's scalar co-expression features over all views
(:meth:`scregnet.grn.images.ImageBuilder.pair_features`) enter the classifier beside the fused
image embedding and, through a linear skip, the logit itself: ``logit = skip(features) + gate *
classifier(embedding, features)`` with the skip initialised to the |pooled Spearman| feature and
the gate to 0, so the network starts as a correlation ranking and learns what to add.
:func:`scregnet.grn.train.fit` then sets the skip to the read-out chosen on held-out training TFs
and keeps the network's contribution only where it validates there (otherwise the gate stays 0). ``n_pair_features = 0`` is DeepMCL as
published (per-view statistics only, inside the view representation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from scregnet import checkpoint
from scregnet.grn.config import N_BINS, GRNConfig

#: the checkpoint (:mod:`scregnet.checkpoint` format) kind and layout; version 6: the label
#: features of :data:`scregnet.grn.config.LABEL_FEATURE_NAMES` with the TF's in-degree, the
#: reciprocal labels, the shared regulators and the TF's predicted out-degree; the config records
#: whether the neighbour images came from the labels' graph (``label_neighbours``); the file
#: holds what scoring needs besides the weights (:mod:`scregnet.grn.trained`)
CHECKPOINT_KIND = "scregnet.grn"
CHECKPOINT_VERSION = 6


class ImageEncoder(nn.Module):
    """Shallow VGG-like CNN shared by every image (the Siamese branches' common weights)."""

    def __init__(self, embed_dim: int = 32, n_bins: int = N_BINS) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(block(1, 8), block(8, 16), block(16, 32))
        side = n_bins // 8
        self.project = nn.Sequential(nn.Flatten(), nn.Linear(32 * side * side, embed_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # (N, n_bins, n_bins) -> (N, 1, n_bins, n_bins) -> (N, 32, n_bins/8, n_bins/8) -> (N, D)
        return self.project(self.features(images.unsqueeze(1)))


class AttentionPool(nn.Module):
    """Additive attention pooling over a set: ``(..., S, D)`` -> ``(..., D)`` and weights ``(..., S)``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.softmax(self.score(tokens).squeeze(-1), dim=-1)
        return (weights.unsqueeze(-1) * tokens).sum(dim=-2), weights


class HeadOutput(NamedTuple):
    logit: torch.Tensor  # (B,)
    embedding: torch.Tensor  # (B, D) L2-normalised, for the contrastive loss
    view_weights: torch.Tensor  # (B, V)
    neighbour_weights: torch.Tensor  # (B, V, 2K)


class DeepMCL(nn.Module):
    """Pair embedding from primary + neighbour image embeddings, attention over neighbours and views."""

    def __init__(self, config: GRNConfig) -> None:
        super().__init__()
        self.config = config
        d = config.embed_dim
        self.encoder = ImageEncoder(d, config.n_bins)
        k = config.n_neighbours + 1
        # which side (TF / target) and which rank a neighbour image has
        self.side = nn.Parameter(torch.zeros(2, 1, d))
        self.rank = nn.Parameter(torch.zeros(1, k, d))
        self.neighbour_pool = AttentionPool(d, config.hidden)
        self.view_repr = nn.Sequential(
            nn.Linear(2 * d + config.n_stats, config.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(config.hidden, d),
        )
        self.view_pool = AttentionPool(d, config.hidden)
        p = config.n_pair_features
        self.classifier = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(d + p, config.hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, 1),
        )
        self.projection = nn.Linear(d, d)
        self.skip = nn.Linear(p, 1) if p else None
        if self.skip is not None:
            # start as the |pooled Spearman| ranking (feature 1 of ImageBuilder.pair_features)
            # with the network's contribution gated off (ReZero-style gate at 0)
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)
            with torch.no_grad():
                self.skip.weight[0, min(1, p - 1)] = 1.0
        self.gate = nn.Parameter(torch.zeros(())) if p else None

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``(..., n_bins, n_bins)`` images -> ``(..., D)`` embeddings."""
        lead = images.shape[:-2]
        flat = images.reshape(-1, images.shape[-2], images.shape[-1])
        return self.encoder(flat).reshape(*lead, -1)

    def head(
        self,
        primary: torch.Tensor,
        tf_neighbours: torch.Tensor,
        target_neighbours: torch.Tensor,
        stats: torch.Tensor,
        pair: torch.Tensor | None = None,
    ) -> HeadOutput:
        """Combine embeddings into P(TF regulates target).

        ``primary`` (B, V, D); ``tf_neighbours``, ``target_neighbours`` (B, V, K, D);
        ``stats`` (B, V, n_stats); ``pair`` (B, n_pair_features), required when the config has
        pair features.
        """
        # (B, V, K, D) x 2 -> (B, V, 2K, D) with side and rank codes added
        tokens = torch.cat(
            [
                tf_neighbours + self.side[0] + self.rank,
                target_neighbours + self.side[1] + self.rank,
            ],
            dim=2,
        )
        pooled, neighbour_w = self.neighbour_pool(tokens)  # (B, V, D), (B, V, 2K)
        per_view = self.view_repr(torch.cat([primary, pooled, stats], dim=-1))  # (B, V, D)
        fused, view_w = self.view_pool(per_view)  # (B, D), (B, V)
        if self.skip is not None:
            if pair is None:
                msg = "this model needs the pair features"
                raise ValueError(msg)
            assert self.gate is not None
            net = self.classifier(torch.cat([fused, pair], dim=-1)).squeeze(-1)
            logit = self.skip(pair).squeeze(-1) + self.gate * net
        else:
            logit = self.classifier(fused).squeeze(-1)
        embedding = F.normalize(self.projection(fused), dim=-1)
        return HeadOutput(logit, embedding, view_w, neighbour_w)


def contrastive_loss(
    embedding: torch.Tensor, labels: torch.Tensor, *, margin: float = 1.0
) -> torch.Tensor:
    """Siamese contrastive loss (Hadsell et al. 2006) over every pair of examples in a batch.

    Pairs with the same label (two regulating or two non-regulating gene pairs) are pulled
    together (``d^2``); pairs with different labels are pushed at least ``margin`` apart
    (``max(0, margin - d)^2``). ``embedding`` (B, D), ``labels`` (B,) 0/1.
    """
    dist = torch.cdist(embedding.float(), embedding.float())  # (B, B)
    same = (labels.unsqueeze(0) == labels.unsqueeze(1)).float()
    loss = same * dist.pow(2) + (1 - same) * F.relu(margin - dist).pow(2)
    off_diag = 1 - torch.eye(len(labels), device=embedding.device)
    return (loss * off_diag).sum() / off_diag.sum().clamp(min=1)


def save_checkpoint(model: DeepMCL, path: str | Path, **extra: Any) -> Path:
    """Write the network (its :class:`GRNConfig` and weights) and ``extra`` plain data to ``path``."""
    return checkpoint.save(
        path, CHECKPOINT_KIND, CHECKPOINT_VERSION, model.config, model.state_dict(), **extra
    )


def load_checkpoint(path: str | Path) -> tuple[DeepMCL, dict[str, Any]]:
    """The network saved by :func:`save_checkpoint` (in eval mode) and the whole checkpoint."""
    ckpt = checkpoint.load(path, CHECKPOINT_KIND, CHECKPOINT_VERSION)
    return checkpoint.restore(lambda: DeepMCL(GRNConfig(**ckpt["config"])), ckpt, path), ckpt
