"""Training and inference loops for :class:`scregnet.impute.model.ScDTL`.

Three phases (each logged per epoch to the loss table):

``pretrain``  the bulk DAE learns to reconstruct clean bulk profiles from corrupted ones. Bulk
              samples are augmented on the fly: random mixtures of two samples (Dirichlet weights),
              Poisson-resampled at a random depth, then a fraction of entries is zeroed.
``adapt``     domain adaptation: the DAE is trained on single cells (masked reconstruction, below)
              plus ``mmd_weight`` x MMD between bulk and single-cell latent codes plus the bulk
              reconstruction loss (so the bulk knowledge is kept, not overwritten).
``fuse``      the whole network (DAE branch, U-Net branch, attention fusion) is trained on the
              single cells' masked reconstruction; the MMD and bulk terms stay on.

Masked reconstruction (self-supervised; the same protocol as the evaluation): for each cell a
fraction ``U(mask_min, mask_max)`` of its non-zero counts is zeroed, the masked counts are
normalised (library size of the masked cell) and fed in; the loss is the mean squared error
against the unmasked counts on the same scale, weighting zeroed non-zeros 1, kept non-zeros
``observed_weight`` and observed zeros ``zero_weight`` (zeros are partly dropout, so they are
trusted less). No labels are used anywhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
import torch
from numpy.typing import NDArray

from scregnet.device import autocast, grad_scaler
from scregnet.impute.data import TARGET_SUM
from scregnet.impute.model import ScDTL, mmd_rbf

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Optimisation settings (saved in the checkpoint beside the architecture)."""

    epochs: int = 20
    pretrain_epochs: int | None = None  # default: epochs
    adapt_epochs: int | None = None  # default: max(1, epochs // 3)
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-5
    mask_min: float = 0.1
    mask_max: float = 0.5
    observed_weight: float = 0.5
    zero_weight: float = 0.1
    bulk_corruption: float = 0.3
    mmd_weight: float = 0.25
    bulk_weight: float = 0.1
    use_bulk: bool = True
    bulk_steps: int = 8  # bulk pretraining steps (batches of augmented profiles) per epoch

    def __post_init__(self) -> None:
        if self.epochs < 1:
            msg = f"epochs must be >= 1, got {self.epochs}"
            raise ValueError(msg)
        if self.batch_size < 2:
            msg = f"batch size must be >= 2, got {self.batch_size}"
            raise ValueError(msg)
        if not 0 <= self.mask_min <= self.mask_max < 1:
            msg = "need 0 <= mask_min <= mask_max < 1"
            raise ValueError(msg)

    @property
    def n_pretrain(self) -> int:
        return self.epochs if self.pretrain_epochs is None else self.pretrain_epochs

    @property
    def n_adapt(self) -> int:
        return max(1, self.epochs // 3) if self.adapt_epochs is None else self.adapt_epochs

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


LOSS_COLUMNS = ("phase", "epoch", "loss", "reconstruction", "mmd", "bulk", "seconds")


def log1p_norm(counts: torch.Tensor, library: torch.Tensor) -> torch.Tensor:
    """``log1p(TARGET_SUM * counts / library)``; counts (B, G), library (B, 1) -> (B, G)."""
    return torch.log1p(counts / library.clamp_min(1.0) * TARGET_SUM)


def mask_counts(
    counts: torch.Tensor, low: float, high: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero a per-cell random fraction in ``[low, high]`` of non-zero counts.

    (B, G) -> masked counts (B, G), boolean mask of the zeroed entries (B, G).
    """
    rate = low + (high - low) * torch.rand(counts.shape[0], 1, generator=generator)
    drop = (torch.rand(counts.shape, generator=generator) < rate) & (counts > 0)
    return counts.masked_fill(drop, 0.0), drop


def masked_targets(
    counts: torch.Tensor, library: torch.Tensor, cfg: TrainConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input, target and per-entry loss weight for a batch of raw counts (all (B, G), on CPU).

    ``library`` (B, 1) is each cell's total count over all its genes (not only the model's); the
    masked cell's library loses the zeroed counts, and both input and target use it.
    """
    masked, drop = mask_counts(counts, cfg.mask_min, cfg.mask_max, generator)
    lib = (library - (counts - masked).sum(dim=1, keepdim=True)).clamp_min(1.0)
    x_in = torch.log1p(masked / lib * TARGET_SUM)
    target = torch.log1p(counts / lib * TARGET_SUM)
    weight = torch.full_like(counts, cfg.zero_weight)
    weight[counts > 0] = cfg.observed_weight
    weight[drop] = 1.0
    return x_in, target, weight


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return (weight * (pred.float() - target) ** 2).sum() / weight.sum().clamp_min(1e-8)


class BulkSampler:
    """Augmented bulk profiles: Dirichlet mixtures of two samples, Poisson-resampled at random depth."""

    def __init__(
        self,
        bulk_counts: NDArray[np.floating],
        bulk_library: NDArray[np.floating],
        generator: torch.Generator,
    ) -> None:
        props = torch.as_tensor(np.asarray(bulk_counts, dtype=np.float64))
        lib = torch.as_tensor(np.asarray(bulk_library, dtype=np.float64)).reshape(-1, 1)
        self.props = (props / lib.clamp_min(1.0)).float()  # (S, G), fractions of the full library
        self.generator = generator

    def sample(self, n: int) -> torch.Tensor:
        """(n, G) log1p-normalised augmented bulk profiles."""
        s = self.props.shape[0]
        i = torch.randint(s, (n,), generator=self.generator)
        j = torch.randint(s, (n,), generator=self.generator)
        w = torch.rand(n, 1, generator=self.generator)
        mix = w * self.props[i] + (1 - w) * self.props[j]  # (n, G)
        depth = torch.exp(
            torch.empty(n, 1).uniform_(np.log(2e4), np.log(2e6), generator=self.generator)
        )
        counts = torch.poisson(mix * depth, generator=self.generator)
        return log1p_norm(counts, depth)

    def corrupt(self, clean: torch.Tensor, rate: float) -> torch.Tensor:
        keep = torch.rand(clean.shape, generator=self.generator) >= rate
        return clean * keep


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[NDArray[np.int64]]:
    order = torch.randperm(n, generator=generator).numpy()
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if idx.size >= 2:
            yield idx


def _dense(
    counts: sp.csr_matrix, library: NDArray[np.floating], idx: NDArray[np.int64] | slice
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the sparse counts as a dense (B, G) tensor and their libraries as (B, 1)."""
    x = torch.from_numpy(np.asarray(counts[idx].toarray(), dtype=np.float32))
    lib = torch.from_numpy(np.asarray(library[idx], dtype=np.float32).reshape(-1, 1))
    return x, lib


@dataclass
class _Step:
    loss: float = 0.0
    recon: float = 0.0
    mmd: float = 0.0
    bulk: float = 0.0
    n: int = 0

    def add(self, loss: float, recon: float, mmd: float, bulk: float) -> None:
        self.loss += loss
        self.recon += recon
        self.mmd += mmd
        self.bulk += bulk
        self.n += 1

    def row(self, phase: str, epoch: int, seconds: float) -> dict[str, object]:
        k = max(1, self.n)
        return {
            "phase": phase,
            "epoch": epoch,
            "loss": self.loss / k,
            "reconstruction": self.recon / k,
            "mmd": self.mmd / k,
            "bulk": self.bulk / k,
            "seconds": seconds,
        }


def init_output_bias(model: ScDTL, counts: sp.csr_matrix, library: NDArray[np.floating]) -> None:
    """Start the output at each gene's mean log-normalised expression (softplus^-1 of it).

    A data-dependent initialisation: the untrained network then already predicts the gene means,
    and training only has to learn each cell's deviation from them.
    """
    from scregnet.impute.data import normalize_log1p_sparse

    mean = np.asarray(normalize_log1p_sparse(counts, library).mean(axis=0)).ravel()
    mean_t = torch.as_tensor(np.clip(mean, 1e-3, None), dtype=torch.float32)
    last = model.dae.decoder[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.bias.copy_(torch.log(torch.expm1(mean_t)))


def fit(
    model: ScDTL,
    counts: sp.csr_matrix,
    library: NDArray[np.floating],
    bulk: tuple[NDArray[np.floating], NDArray[np.floating]] | None,
    cfg: TrainConfig,
    *,
    device: torch.device,
    seed: int,
    progress: bool = False,
) -> list[dict[str, object]]:
    """Train ``model`` in place on single-cell ``counts`` (cells x model genes); return the loss rows.

    ``library`` holds each cell's total count over all genes. ``bulk`` = (raw counts, samples x
    model genes; library of each sample over all its genes) is required when ``cfg.use_bulk``.
    """
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    init_output_bias(model, counts, library)
    model.to(device)
    rows: list[dict[str, object]] = []
    sampler = None
    if cfg.use_bulk:
        if bulk is None:
            msg = "use_bulk needs bulk counts"
            raise ValueError(msg)
        sampler = BulkSampler(bulk[0], bulk[1], gen)
    scaler = grad_scaler(device)
    n_cells = counts.shape[0]

    def optimiser(params: Iterator[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        scaler.step(opt)
        scaler.update()

    def bulk_terms(z_sc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if sampler is None:
            zero = torch.zeros((), device=device)
            return zero, zero
        clean = sampler.sample(z_sc.shape[0])
        noisy = sampler.corrupt(clean, cfg.bulk_corruption)
        with autocast(device):
            z_bulk, recon_bulk = model.dae(noisy.to(device))
        bulk_loss = torch.nn.functional.mse_loss(
            torch.nn.functional.softplus(recon_bulk.float()), clean.to(device)
        )
        return mmd_rbf(z_bulk.float(), z_sc.float()), bulk_loss

    bar = tqdm(total=0, disable=not progress, unit="epoch", desc="impute")

    # phase 1: bulk DAE pretraining
    if sampler is not None and cfg.n_pretrain > 0:
        opt = optimiser(model.dae.parameters())
        model.train()
        for epoch in range(1, cfg.n_pretrain + 1):
            t0, acc = time.perf_counter(), _Step()
            for _ in range(cfg.bulk_steps):
                clean = sampler.sample(cfg.batch_size)
                noisy = sampler.corrupt(clean, cfg.bulk_corruption)
                with autocast(device):
                    _, recon = model.dae(noisy.to(device))
                loss = torch.nn.functional.mse_loss(
                    torch.nn.functional.softplus(recon.float()), clean.to(device)
                )
                step(opt, loss)
                acc.add(loss.item(), 0.0, 0.0, loss.item())
            rows.append(acc.row("pretrain", epoch, time.perf_counter() - t0))
            bar.update()
        log.info("bulk pretraining: %d epochs, final loss %.4f", cfg.n_pretrain, rows[-1]["loss"])

    # phases 2 and 3: adaptation (DAE only) then fusion (whole network)
    for phase, n_epochs in (("adapt", cfg.n_adapt), ("fuse", cfg.epochs)):
        params = model.dae.parameters() if phase == "adapt" else model.parameters()
        opt = optimiser(params)
        model.train()
        for epoch in range(1, n_epochs + 1):
            t0, acc = time.perf_counter(), _Step()
            for idx in _batches(n_cells, cfg.batch_size, gen):
                x_in, target, weight = masked_targets(*_dense(counts, library, idx), cfg, gen)
                x_in, target, weight = x_in.to(device), target.to(device), weight.to(device)
                with autocast(device):
                    if phase == "adapt":
                        z, recon = model.dae(x_in)
                        pred = torch.nn.functional.softplus(recon.float())
                    else:
                        out = model(x_in)
                        z, pred = out.latent, out.imputed
                recon_loss = weighted_mse(pred, target, weight)
                mmd, bulk_loss = bulk_terms(z)
                loss = recon_loss + cfg.mmd_weight * mmd + cfg.bulk_weight * bulk_loss
                step(opt, loss)
                acc.add(loss.item(), recon_loss.item(), mmd.item(), bulk_loss.item())
            rows.append(acc.row(phase, epoch, time.perf_counter() - t0))
            bar.update()
            log.debug("%s epoch %d: %s", phase, epoch, rows[-1])
        if n_epochs:
            log.info("%s: %d epochs, final loss %.4f", phase, n_epochs, rows[-1]["loss"])
    bar.close()
    return rows


@torch.no_grad()
def predict(
    model: ScDTL,
    counts: sp.csr_matrix,
    library: NDArray[np.floating],
    *,
    device: torch.device,
    batch_size: int = 1024,
) -> NDArray[np.float32]:
    """Imputed log1p(counts per 10k) for every cell, computed in batches; (cells, G) float32.

    Only one batch is dense at a time, so memory is the output plus ``batch_size`` x G.
    """
    model.to(device)
    model.eval()
    n = counts.shape[0]
    out = np.empty((n, counts.shape[1]), dtype=np.float32)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        x = log1p_norm(*_dense(counts, library, slice(start, stop)))
        with autocast(device):
            pred = model(x.to(device)).imputed
        out[start:stop] = pred.float().cpu().numpy()
    return out
