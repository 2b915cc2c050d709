"""Training the DeepMCL-style model on labelled TF-target pairs, with a TF-aware validation split."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from scregnet.errors import InputError

if TYPE_CHECKING:
    import torch

    from scregnet.grn.images import ImageBuilder
    from scregnet.grn.model import DeepMCL, GRNConfig, HeadOutput

log = logging.getLogger(__name__)

MIN_VAL_POSITIVES = 20


@dataclass
class PairLabels:
    """Labelled pairs as gene indices into the expression views' gene list."""

    tf: NDArray[np.intp]
    target: NDArray[np.intp]
    label: NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.tf.size)

    def subset(self, mask: NDArray[np.bool_]) -> PairLabels:
        return PairLabels(self.tf[mask], self.target[mask], self.label[mask])

    @property
    def n_positive(self) -> int:
        return int(self.label.sum())


@dataclass
class TrainConfig:
    epochs: int = 40
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
    sampling: str = "natural"
    amp: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    model: DeepMCL
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    train_tfs: list[int] = field(default_factory=list)
    val_tfs: list[int] = field(default_factory=list)


def tf_aware_split(
    labels: PairLabels, fraction: float, rng: np.random.Generator
) -> tuple[NDArray[np.bool_], list[int], list[int]]:
    """Hold out whole TFs: a mask of training pairs plus the training and validation TF lists.

    Only TFs with at least one positive pair are eligible for validation. No validation split is
    made (everything trains, for a fixed number of epochs) when ``fraction`` is 0 or when the
    held-out TFs would carry fewer than ``MIN_VAL_POSITIVES`` positives (too few to pick an epoch).
    """
    tfs = np.unique(labels.tf)
    with_pos = np.unique(labels.tf[labels.label == 1])
    n_val = min(round(fraction * with_pos.size), with_pos.size - 1)
    everything: tuple[NDArray[np.bool_], list[int], list[int]] = (
        np.ones(len(labels), dtype=bool),
        tfs.tolist(),
        [],
    )
    if fraction <= 0 or n_val <= 0:
        return everything
    val = set(rng.choice(with_pos, size=n_val, replace=False).tolist())
    train_mask = ~np.isin(labels.tf, list(val))
    if int(labels.label[~train_mask].sum()) < MIN_VAL_POSITIVES:
        return everything
    return train_mask, [t for t in tfs.tolist() if t not in val], sorted(val)


def neighbour_embeddings(
    model: DeepMCL,
    builder: ImageBuilder,
    *,
    genes: NDArray[np.intp] | None = None,
    chunk: int = 256,
) -> torch.Tensor:
    """Embeddings of the genes' neighbour images, ``(all genes, views, k + 1, D)``, no gradient.

    Neighbour images depend on one gene only, so they are embedded once per gene (a memory bank
    refreshed every epoch in training, computed once for scoring) instead of once per pair.
    Only ``genes`` (default: all) are computed; other rows stay zero.
    """
    import torch

    from scregnet.device import autocast

    wanted = np.arange(builder.n_genes) if genes is None else np.unique(genes)
    was_training = model.training
    model.eval()
    bank: torch.Tensor | None = None
    with torch.no_grad():
        for start in range(0, wanted.size, chunk):
            idx = torch.as_tensor(wanted[start : start + chunk], device=builder.device)
            with autocast(builder.device):
                emb = model.encode(builder.neighbour(idx)).float()
            if bank is None:
                bank = emb.new_zeros((builder.n_genes, *emb.shape[1:]))
            bank[idx] = emb
    model.train(was_training)
    assert bank is not None
    return bank


def forward_pairs(
    model: DeepMCL,
    builder: ImageBuilder,
    a: torch.Tensor,
    b: torch.Tensor,
    bank: torch.Tensor,
    *,
    cells: list[torch.Tensor] | None = None,
) -> HeadOutput:
    """Primary images -> embeddings, plus the bank's neighbour embeddings -> head outputs."""
    primary = model.encode(builder.primary(a, b, cells))  # (B, V, D)
    return model.head(
        primary,
        bank[a].to(primary.dtype),
        bank[b].to(primary.dtype),
        builder.stats(a, b).to(primary.dtype),
        builder.pair_features(a, b).to(primary.dtype) if model.skip is not None else None,
    )


def _epoch_pairs(
    labels: PairLabels, cap: int, rng: np.random.Generator, sampling: str = "balanced"
) -> NDArray[np.intp]:
    """Pairs for one epoch. ``balanced``: the majority class subsampled to ``cap / 2`` and the
    minority class drawn (with replacement when needed) to the same size. ``natural``: at most
    ``cap`` pairs drawn without replacement, at the labels' positive rate."""
    if sampling == "natural":
        return rng.permutation(len(labels))[:cap]
    if sampling != "balanced":
        msg = f"unknown sampling {sampling!r} (balanced or natural)"
        raise ValueError(msg)
    pos = np.flatnonzero(labels.label == 1)
    neg = np.flatnonzero(labels.label == 0)
    n = min(max(pos.size, neg.size), cap // 2)
    picked = np.concatenate([rng.choice(c, size=n, replace=c.size < n) for c in (pos, neg)])
    return rng.permutation(picked)


def predict_pairs(
    model: DeepMCL, builder: ImageBuilder, labels: PairLabels, *, batch_size: int = 512
) -> NDArray[np.float64]:
    """P(edge) for labelled pairs (evaluation mode, all cells)."""
    import torch

    from scregnet.device import autocast

    bank = neighbour_embeddings(model, builder, genes=np.concatenate([labels.tf, labels.target]))
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            a = torch.as_tensor(labels.tf[start : start + batch_size], device=builder.device)
            b = torch.as_tensor(labels.target[start : start + batch_size], device=builder.device)
            with autocast(builder.device):
                logit = forward_pairs(model, builder, a, b, bank).logit
            out.append(torch.sigmoid(logit.float()).cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def fit(
    builder: ImageBuilder,
    labels: PairLabels,
    *,
    model_config: GRNConfig,
    config: TrainConfig,
    rng: np.random.Generator,
) -> TrainResult:
    """Train on ``labels``; early-stops on validation TFs' AUPRC when a TF-aware split is possible."""
    import torch

    from scregnet.device import autocast, grad_scaler
    from scregnet.evaluate.metrics import auprc
    from scregnet.grn.model import DeepMCL, contrastive_loss

    if labels.n_positive == 0 or labels.n_positive == len(labels):
        msg = "training labels need both positive and negative pairs"
        raise InputError(msg)
    device = builder.device
    train_mask, train_tfs, val_tfs = tf_aware_split(labels, config.val_fraction, rng)
    train, val = labels.subset(train_mask), labels.subset(~train_mask)
    log.info(
        "training on %d pairs (%d positive) of %d TFs; validating on %d pairs of %d held-out TFs",
        len(train),
        train.n_positive,
        len(train_tfs),
        len(val),
        len(val_tfs),
    )
    model = DeepMCL(model_config).to(device)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scaler = grad_scaler(device, enabled=config.amp)
    generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
    result = TrainResult(model=model, train_tfs=train_tfs, val_tfs=val_tfs)
    best_score, best_state, stale = -np.inf, copy.deepcopy(model.state_dict()), 0
    needed = np.concatenate([train.tf, train.target])
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        bank = neighbour_embeddings(model, builder, genes=needed)
        model.train()
        order = _epoch_pairs(train, config.max_pairs_per_epoch, rng, config.sampling)
        total, n_batches = 0.0, 0
        for s in range(0, order.size, config.batch_size):
            idx = order[s : s + config.batch_size]
            if idx.size < 2:
                continue
            a = torch.as_tensor(train.tf[idx], device=device)
            b = torch.as_tensor(train.target[idx], device=device)
            y = torch.as_tensor(train.label[idx], device=device, dtype=torch.float32)
            cells = (
                builder.sample_cells(config.cell_fraction, generator)
                if config.cell_fraction < 1
                else None
            )
            with autocast(device, enabled=config.amp):
                out = forward_pairs(model, builder, a, b, bank, cells=cells)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(out.logit.float(), y)
                if config.contrastive_weight > 0:
                    loss = loss + config.contrastive_weight * contrastive_loss(
                        out.embedding, y, margin=config.margin
                    )
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            total += float(loss.detach())
            n_batches += 1
        record = {"epoch": float(epoch), "loss": total / max(n_batches, 1)}
        if len(val):
            score = auprc(val.label, predict_pairs(model, builder, val))
            record["val_auprc"] = score
        else:
            score = float(epoch)  # no validation TFs: keep the last epoch
        result.history.append(record)
        log.debug("epoch %d: %s", epoch, record)
        if score > best_score:
            best_score, best_state, stale = score, copy.deepcopy(model.state_dict()), 0
            result.best_epoch = epoch
        else:
            stale += 1
            if stale >= config.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    log.info(
        "trained %d epoch(s) in %.1f s; best epoch %d (%s %.4f)",
        len(result.history),
        time.perf_counter() - start,
        result.best_epoch,
        "validation AUPRC" if val_tfs else "last epoch",
        best_score,
    )
    return result
