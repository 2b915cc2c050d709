"""Training and inference loops for :class:`scregnet.impute.model.ScDTL`.

Three phases (each logged per epoch to the loss table):

``pretrain``  the bulk DAE learns to reconstruct clean bulk profiles from corrupted ones
              (``pretrain_epochs`` x ``bulk_steps`` batches). Bulk samples are augmented on the
              fly: random mixtures of two samples, Poisson-resampled at a random depth, then a
              fraction of entries is zeroed.
``adapt``     domain adaptation: the DAE is trained on single cells (masked reconstruction, below)
              plus ``mmd_weight`` x MMD between bulk and single-cell latent codes plus the bulk
              reconstruction loss (so the bulk knowledge is kept, not overwritten).
``fuse``      the whole network (DAE branch, U-Net branch, attention fusion) is trained on the
              single cells' masked reconstruction; the MMD and bulk terms stay on. At most
              ``epochs`` epochs, with early stopping (below).

Objective (self-supervised, noise2self on molecules, as molecular cross-validation scores it):
each cell's counts are split binomially per batch, a fraction ``U(split_min, split_max)`` of its
molecules forming the input and the rest the target. The input is normalised with its own library
(log1p CP10k) and fed as the cell's own channel, with its depth; the neighbour channel (pooled
counts of the cell's neighbours, never containing the cell itself) is fed unchanged. The network
predicts the cell's expected expression (counts per 10k); the loss is the negative binomial
negative log-likelihood (per-gene dispersion, :func:`scregnet.impute.model.nb_nll`) of the target
molecules at the target's depth, over every entry, zeros included. Input and target are
independent draws of the same cell, so the network cannot copy its input: it learns the
expression the cell's molecules were sampled from, which is what fills the zeros.

Early stopping: before training, ``val_fraction`` of every cell's molecules are held out
(binomially) -- removed from every input (own and neighbour channels) and never a target. After
each fusion epoch the negative binomial loss of the held-out molecules given the rest is computed;
training stops after ``patience`` epochs without improvement and the best state is kept. With
``ema_decay`` > 0 the state validated and kept is the running average of the fusion weights
(:func:`_moving_average`), which smooths the step-to-step noise of small batches; epochs without
improvement count only once :func:`averaging_steps` steps (99 at 0.99; about 14 epochs on a few
hundred cells) have passed since the best epoch, and so since the start: until then the average
is still the plain mean of every step, the untrained ones included, and after the best it needs
as long to move away from the best state, so a flat stretch of held-out loss is not yet evidence
that training has stopped helping.

Last step (``gene_scale``): each gene's output scale is fitted on the full counts,
:func:`fit_gene_scale`, so that the expected counts summed over the cells match the observed
ones. The final imputation runs on the full counts. No labels are used anywhere.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import scipy.sparse as sp
import torch
from numpy.typing import NDArray

from scregnet.device import FittingBatch, autocast, grad_scaler
from scregnet.impute.config import TrainConfig
from scregnet.impute.data import TARGET_SUM
from scregnet.impute.model import ScDTL, mmd_rbf, nb_nll

log = logging.getLogger(__name__)


#: the loss table's columns; each row in memory also has ``seconds`` (the epoch's wall time), which
#: the table leaves out so that the same seed writes the same bytes (timings go to the log);
#: ``kept`` is 1 on the fusion epoch whose weights the model keeps (:func:`_train_phase`), else 0
LOSS_COLUMNS = ("phase", "epoch", "loss", "reconstruction", "mmd", "bulk", "validation", "kept")


def log1p_norm(counts: torch.Tensor, library: torch.Tensor) -> torch.Tensor:
    """``log1p(TARGET_SUM * counts / library)``; counts (B, G), library (B, 1) -> (B, G)."""
    return torch.log1p(counts / library.clamp_min(1.0) * TARGET_SUM)


def depth_of(library: torch.Tensor) -> torch.Tensor:
    """``log1p(TARGET_SUM / library)`` (B, 1): the log-normalised value of a single count."""
    return torch.log1p(TARGET_SUM / library.clamp_min(1.0))


def split_targets(
    counts: torch.Tensor, library: torch.Tensor, cfg: TrainConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input (B, G), depth (B, 1), target counts (B, G) and target library (B, 1), on CPU.

    Each cell keeps a fraction ``q ~ U(split_min, split_max)`` of its molecules as input
    (binomial thinning) and the rest is the target. ``library`` (B, 1) is each cell's total over
    all its genes; the genes outside the batch are split in expectation (``q`` of them).
    """
    q = cfg.split_min + (cfg.split_max - cfg.split_min) * torch.rand(
        counts.shape[0], 1, generator=generator
    )
    kept = torch.binomial(counts, q.expand_as(counts), generator=generator)
    target = counts - kept
    rest = (library - counts.sum(dim=1, keepdim=True)).clamp_min(0.0)
    lib_in = (kept.sum(dim=1, keepdim=True) + q * rest).clamp_min(1.0)
    lib_target = (target.sum(dim=1, keepdim=True) + (1 - q) * rest).clamp_min(1.0)
    return log1p_norm(kept, lib_in), depth_of(lib_in), target, lib_target


def expected_counts(imputed: torch.Tensor, library: torch.Tensor) -> torch.Tensor:
    """Expected counts (B, G) at ``library`` (B, 1) from log1p expected counts per 10k (B, G)."""
    return torch.expm1(imputed.float()).clamp_min(0.0) * (library / TARGET_SUM)


class BulkSampler:
    """Augmented bulk profiles: random mixtures of two samples, Poisson-resampled at random depth."""

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


class CellData:
    """Single-cell counts, library sizes and neighbour pooling, served as dense batches.

    ``counts`` (cells x model genes, CSR), ``library`` (cells,) totals over all genes, ``pool``
    (cells x cells) neighbour pooling matrix or ``None`` (no neighbour channel). Only one batch is
    dense at a time.
    """

    def __init__(
        self,
        counts: sp.csr_matrix,
        library: NDArray[np.floating],
        pool: sp.csr_matrix | None,
    ) -> None:
        self.counts = sp.csr_matrix(counts, dtype=np.float32)
        self.library = np.asarray(library, dtype=np.float64)
        self.pool = pool
        self.n_cells = counts.shape[0]

    def own(self, idx: NDArray[np.intp] | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw counts (B, G) and libraries (B, 1) of the cells ``idx``."""
        x = torch.from_numpy(np.asarray(self.counts[idx].toarray(), dtype=np.float32))
        lib = torch.from_numpy(np.asarray(self.library[idx], dtype=np.float32).reshape(-1, 1))
        return x, lib

    def neighbours(self, idx: NDArray[np.intp] | slice) -> torch.Tensor | None:
        """Log-normalised pooled neighbour profiles (B, G), or None without a pool."""
        if self.pool is None:
            return None
        rows = self.pool[idx]
        pooled = torch.from_numpy(np.asarray((rows @ self.counts).toarray(), dtype=np.float32))
        lib = torch.from_numpy(np.asarray(rows @ self.library, dtype=np.float32).reshape(-1, 1))
        return log1p_norm(pooled, lib)


def hold_out(
    counts: sp.csr_matrix, fraction: float, generator: torch.Generator
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split every count binomially: (training counts, held-out counts), summing to ``counts``."""
    csr = sp.csr_matrix(counts, dtype=np.float32)
    csr.sort_indices()
    values = torch.from_numpy(np.asarray(csr.data, dtype=np.float32))
    held_vals = torch.binomial(values, torch.full_like(values, fraction), generator=generator)
    train, held = csr.copy(), csr.copy()
    held.data = held_vals.numpy().astype(np.float32)
    train.data = (values - held_vals).numpy().astype(np.float32)
    train.eliminate_zeros()
    held.eliminate_zeros()
    return train, held


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[NDArray[np.int64]]:
    order = torch.randperm(n, generator=generator).numpy()
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if idx.size >= 2:
            yield idx


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

    def row(
        self, phase: str, epoch: int, seconds: float, validation: float = float("nan")
    ) -> dict[str, object]:
        k = max(1, self.n)
        return {
            "phase": phase,
            "epoch": epoch,
            "loss": self.loss / k,
            "reconstruction": self.recon / k,
            "mmd": self.mmd / k,
            "bulk": self.bulk / k,
            "validation": validation,
            "kept": 0,
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


class _Validator:
    """The training objective on held-out molecules: mean negative binomial loss per entry of
    the held-out counts given the training counts (the held-out library is the held-out part of
    the cell's modelled genes plus ``fraction`` of its other genes)."""

    def __init__(
        self,
        cells: CellData,
        held: sp.csr_matrix,
        full_library: NDArray[np.floating],
        fraction: float,
        max_cells: int,
        generator: torch.Generator,
    ) -> None:
        rows = np.flatnonzero(np.diff(held.indptr) > 0)
        if rows.size > max_cells:
            pick = torch.randperm(rows.size, generator=generator)[:max_cells].numpy()
            rows = np.sort(rows[pick])
        self.rows = rows
        self.cells = cells
        self.held = held
        modelled = (
            np.asarray(cells.counts.sum(axis=1)).ravel() + np.asarray(held.sum(axis=1)).ravel()
        )
        rest = np.maximum(np.asarray(full_library, dtype=np.float64) - modelled, 0.0)
        self.held_library = np.asarray(held.sum(axis=1)).ravel() + fraction * rest

    def __bool__(self) -> bool:
        return self.rows.size > 0

    @torch.no_grad()
    def __call__(self, model: ScDTL, device: torch.device, batch_size: int) -> float:
        model.eval()
        total, n = 0.0, 0
        for start in range(0, self.rows.size, batch_size):
            idx = self.rows[start : start + batch_size]
            counts, lib = self.cells.own(idx)
            nbr = self.cells.neighbours(idx)
            with autocast(device):
                pred = model(
                    log1p_norm(counts, lib).to(device),
                    depth_of(lib).to(device),
                    None if nbr is None else nbr.to(device),
                ).imputed
            held = torch.from_numpy(np.asarray(self.held[idx].toarray(), dtype=np.float32))
            lib_held = torch.from_numpy(
                np.asarray(self.held_library[idx], dtype=np.float32).reshape(-1, 1)
            )
            mean = expected_counts(pred, lib_held.to(device))
            err = nb_nll(held.to(device), mean, model.log_theta.float())
            total += float(err.sum())
            n += err.numel()
        return total / max(1, n)


def fit(
    model: ScDTL,
    counts: sp.csr_matrix,
    library: NDArray[np.floating],
    bulk: tuple[NDArray[np.floating], NDArray[np.floating]] | None,
    cfg: TrainConfig,
    *,
    pool: sp.csr_matrix | None,
    device: torch.device,
    seed: int,
    progress: bool = False,
) -> list[dict[str, object]]:
    """Train ``model`` in place on single-cell ``counts`` (cells x model genes); return the loss rows.

    ``library`` holds each cell's total count over all genes; ``pool`` is the neighbour pooling
    matrix (:func:`scregnet.impute.data.neighbour_pool`; required when the model uses the
    neighbour channel). ``bulk`` = (raw counts, samples x model genes; library of each sample over
    all its genes) is required when ``cfg.use_bulk``.
    """
    from tqdm.auto import tqdm

    if model.config.use_neighbours and pool is None:
        msg = "the model uses the neighbour channel: pass pool"
        raise ValueError(msg)
    gen = torch.Generator().manual_seed(seed)
    cells, validate = _training_cells(model, counts, library, cfg, pool, gen)
    model.to(device)
    sampler = None
    if cfg.use_bulk:
        if bulk is None:
            msg = "use_bulk needs bulk counts"
            raise ValueError(msg)
        sampler = BulkSampler(bulk[0], bulk[1], gen)
    trainer = _Trainer(model, cfg, device, sampler)
    bar = tqdm(total=0, disable=not progress, unit="epoch", desc="impute")
    rows: list[dict[str, object]] = []
    # phase 1: bulk DAE pretraining
    if sampler is not None and cfg.pretrain_epochs > 0:
        rows += _pretrain(trainer, sampler, bar)
    # phases 2 and 3: adaptation (DAE only) then fusion (whole network, early stopping)
    for phase, n_epochs in (("adapt", cfg.adapt_epochs), ("fuse", cfg.epochs)):
        rows += _train_phase(trainer, phase, n_epochs, cells, validate, gen, bar)
    bar.close()
    if cfg.gene_scale:
        fit_gene_scale(model, counts, library, pool=pool, device=device)
    return rows


#: the range a fitted per-gene output scale is clipped to
GENE_SCALE_RANGE = (0.1, 10.0)
#: cells whose predictions are summed in float64 at a time (bounds the float64 copy)
GENE_SCALE_BLOCK = 4096


@torch.no_grad()
def fit_gene_scale(
    model: ScDTL,
    counts: sp.csr_matrix,
    library: NDArray[np.floating],
    *,
    pool: sp.csr_matrix | None,
    device: torch.device,
) -> NDArray[np.float64]:
    """Fit each gene's output scale, the last step of training; return the scales.

    With the network fixed, the maximum-likelihood multiplier ``s`` of a gene's expected counts
    under a Poisson model of all cells' full counts is (observed total) / (expected total), so
    that over the cells the model's expected counts add up to the observed ones. It is clipped to
    :data:`GENE_SCALE_RANGE` and folded into ``model.log_gene_scale``, so a checkpoint carries it.
    """
    pred = predict(model, counts, library, pool=pool, device=device)
    scale_to_counts = np.asarray(library, dtype=np.float64) / TARGET_SUM
    expected = np.zeros(pred.shape[1])
    for start in range(0, pred.shape[0], GENE_SCALE_BLOCK):
        rows = slice(start, start + GENE_SCALE_BLOCK)
        expected += (np.expm1(pred[rows].astype(np.float64)) * scale_to_counts[rows, None]).sum(0)
    observed = np.asarray(counts.sum(axis=0), dtype=np.float64).ravel()
    scale = np.clip(observed / np.maximum(expected, 1e-12), *GENE_SCALE_RANGE)
    model.log_gene_scale += torch.as_tensor(np.log(scale), dtype=model.log_gene_scale.dtype).to(
        model.log_gene_scale.device
    )
    lo, mid, hi = np.quantile(scale, [0.05, 0.5, 0.95])
    log.info("per-gene output scale: median %.3f, 5-95%% %.3f-%.3f", mid, lo, hi)
    return scale


def _training_cells(
    model: ScDTL,
    counts: sp.csr_matrix,
    library: NDArray[np.floating],
    cfg: TrainConfig,
    pool: sp.csr_matrix | None,
    gen: torch.Generator,
) -> tuple[CellData, _Validator]:
    """Hold out ``cfg.val_fraction`` of the molecules; the training cells and the validator of
    the held-out part. Initialises the model's output bias on the training part."""
    train_counts, held = hold_out(counts, cfg.val_fraction, gen)
    # the training part's library: the modelled genes' training counts plus (1 - val_fraction)
    # of the cell's other genes
    full_lib = np.asarray(library, dtype=np.float64)
    rest = np.maximum(full_lib - np.asarray(counts.sum(axis=1)).ravel(), 0.0)
    train_lib = np.asarray(train_counts.sum(axis=1)).ravel() + (1 - cfg.val_fraction) * rest
    cells = CellData(train_counts, train_lib, pool if model.config.use_neighbours else None)
    validate = _Validator(cells, held, library, cfg.val_fraction, cfg.val_max_cells, gen)
    log.info(
        "held out %d of %d molecules (%.1f %%) for early stopping",
        int(held.sum()),
        int(counts.sum()),
        100 * float(held.sum()) / max(1.0, float(counts.sum())),
    )
    init_output_bias(model, train_counts, train_lib)
    return cells, validate


class _Trainer:
    """The model, its settings and device, one optimisation step (scaled for mixed precision,
    gradients clipped) and the bulk terms of the loss."""

    def __init__(
        self, model: ScDTL, cfg: TrainConfig, device: torch.device, sampler: BulkSampler | None
    ) -> None:
        self.model, self.cfg, self.device, self.sampler = model, cfg, device, sampler
        self.scaler = grad_scaler(device)
        #: running average of the weights, updated after every step while set
        self.ema: torch.optim.swa_utils.AveragedModel | None = None

    def optimiser(self, params: Iterator[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def step(self, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.scaler.step(opt)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def bulk_loss(self, clean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(latent codes, reconstruction loss) of the DAE on corrupted ``clean`` bulk profiles."""
        assert self.sampler is not None
        noisy = self.sampler.corrupt(clean, self.cfg.bulk_corruption)
        with autocast(self.device):
            z_bulk, recon = self.model.dae(noisy.to(self.device))
        loss = torch.nn.functional.mse_loss(
            torch.nn.functional.softplus(recon.float()), clean.to(self.device)
        )
        return z_bulk, loss

    def bulk_terms(self, z_sc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(MMD between bulk and single-cell codes, bulk reconstruction loss); zeros without bulk."""
        if self.sampler is None:
            zero = torch.zeros((), device=self.device)
            return zero, zero
        z_bulk, bulk_loss = self.bulk_loss(self.sampler.sample(z_sc.shape[0]))
        return mmd_rbf(z_bulk.float(), z_sc.float()), bulk_loss


def _pretrain(trainer: _Trainer, sampler: BulkSampler, bar: Any) -> list[dict[str, object]]:
    """Phase 1: the bulk DAE learns to reconstruct clean bulk profiles from corrupted ones."""
    cfg, rows = trainer.cfg, []
    opt = trainer.optimiser(trainer.model.dae.parameters())
    trainer.model.train()
    for epoch in range(1, cfg.pretrain_epochs + 1):
        t0, acc = time.perf_counter(), _Step()
        for _ in range(cfg.bulk_steps):
            _, loss = trainer.bulk_loss(sampler.sample(cfg.batch_size))
            trainer.step(opt, loss)
            acc.add(loss.item(), 0.0, 0.0, loss.item())
        rows.append(acc.row("pretrain", epoch, time.perf_counter() - t0))
        bar.update()
    log.info("bulk pretraining: %d epochs, final loss %.4f", cfg.pretrain_epochs, rows[-1]["loss"])
    return rows


def _train_phase(
    trainer: _Trainer,
    phase: str,
    n_epochs: int,
    cells: CellData,
    validate: _Validator,
    gen: torch.Generator,
    bar: Any,
) -> list[dict[str, object]]:
    """``adapt`` (the DAE) or ``fuse`` (the whole network; early stopping on the held-out
    molecules, the best state kept) for at most ``n_epochs`` epochs; the loss rows."""
    model, cfg, device = trainer.model, trainer.cfg, trainer.device
    opt = trainer.optimiser(model.dae.parameters() if phase == "adapt" else model.parameters())
    rows: list[dict[str, object]] = []
    best, best_epoch, best_steps, stale = float("inf"), 0, 0, 0
    best_state: dict[str, torch.Tensor] | None = None
    if phase == "fuse" and cfg.ema_decay > 0:
        trainer.ema = torch.optim.swa_utils.AveragedModel(
            model, avg_fn=_moving_average(cfg.ema_decay), use_buffers=True
        )
    # the weights validated and kept: their running average when there is one
    kept = model if trainer.ema is None else cast(ScDTL, trainer.ema.module)
    warm_up = averaging_steps(cfg.ema_decay) if trainer.ema is not None else 0
    steps = 0
    for epoch in range(1, n_epochs + 1):
        model.train()
        t0 = time.perf_counter()
        acc = _train_epoch(trainer, phase, opt, cells, gen)
        steps += acc.n
        val = float("nan")
        if phase == "fuse" and validate:
            val = validate(kept, device, max(cfg.batch_size, 256))
            if best_epoch == 0 or val < best - 1e-4 * abs(best):
                best, best_epoch, best_steps, stale = val, epoch, steps, 0
                best_state = copy.deepcopy(kept.state_dict())
            elif steps - best_steps >= warm_up:  # also >= warm_up steps since the start
                stale += 1
        rows.append(acc.row(phase, epoch, time.perf_counter() - t0, val))
        bar.update()
        log.debug("%s epoch %d: %s", phase, epoch, rows[-1])
        if phase == "fuse" and stale >= cfg.patience:
            log.info("early stopping after fusion epoch %d", epoch)
            break
    if n_epochs:
        log.info("%s: %d epochs, final loss %.4f", phase, rows[-1]["epoch"], rows[-1]["loss"])
    if phase == "fuse" and rows:
        kept_at = best_epoch if best_state is not None else rows[-1]["epoch"]
        for row in rows:
            row["kept"] = int(row["epoch"] == kept_at)
    if trainer.ema is not None and best_state is None:  # nothing validated: the last average
        model.load_state_dict(kept.state_dict())
        log.info("kept the running average of the fusion weights (nothing held out)")
    elif best_state is not None:
        model.load_state_dict(best_state)
        log.info("kept the state of fusion epoch %d (held-out loss %.4f)", best_epoch, best)
    trainer.ema = None
    return rows


def kept_epoch(rows: list[dict[str, object]]) -> int:
    """The fusion epoch whose weights the model keeps (the lowest held-out loss, or the last
    epoch when nothing is held out); 0 for rows without one (a model loaded, not trained)."""
    return next((cast(int, r["epoch"]) for r in rows if r.get("kept")), 0)


def averaging_steps(decay: float) -> int:
    """Steps until the running average of the weights (:func:`_moving_average`) is exponential:
    before, it is the plain mean of every step's weights since the start, the first ones included,
    and its held-out loss can rise for a while as training goes well. Early stopping counts an
    epoch without improvement only once this many steps have passed since the best epoch (the
    time the average needs to move away from the best state), and so since the start."""
    return math.ceil(decay / (1.0 - decay) - 1e-9) if decay > 0 else 0  # n / (n + 1) >= decay


def _moving_average(decay: float) -> Any:
    """The weight-averaging update: after ``n`` updates the old average keeps the weight
    ``min(decay, n / (n + 1))``, i.e. the plain mean of every step's weights until that reaches
    ``decay``, an exponential moving average after."""

    def update(average: torch.Tensor, current: torch.Tensor, n: torch.Tensor | int) -> torch.Tensor:
        keep = min(decay, float(n) / (float(n) + 1.0))
        return keep * average + (1.0 - keep) * current

    return update


def _train_epoch(
    trainer: _Trainer,
    phase: str,
    opt: torch.optim.Optimizer,
    cells: CellData,
    gen: torch.Generator,
) -> _Step:
    """One pass over the cells in random batches: the masked reconstruction (negative binomial)
    plus the weighted MMD and bulk terms; the accumulated losses."""
    model, cfg, device = trainer.model, trainer.cfg, trainer.device
    acc = _Step()
    for idx in _batches(cells.n_cells, cfg.batch_size, gen):
        x_in, depth, target, lib_target = (
            t.to(device) for t in split_targets(*cells.own(idx), cfg, gen)
        )
        with autocast(device):
            if phase == "adapt":
                z, recon = model.dae(x_in)
                pred = torch.nn.functional.softplus(recon.float())
            else:
                nbr = cells.neighbours(idx)
                out = model(x_in, depth, None if nbr is None else nbr.to(device))
                z, pred = out.latent, out.imputed
        mean = expected_counts(pred, lib_target)
        recon_loss = nb_nll(target, mean, model.log_theta.float()).mean()
        mmd, bulk_loss = trainer.bulk_terms(z)
        loss = recon_loss + cfg.mmd_weight * mmd + cfg.bulk_weight * bulk_loss
        trainer.step(opt, loss)
        acc.add(loss.item(), recon_loss.item(), mmd.item(), bulk_loss.item())
    return acc


@torch.no_grad()
def predict(
    model: ScDTL,
    counts: sp.csr_matrix,
    library: NDArray[np.floating],
    *,
    pool: sp.csr_matrix | None,
    device: torch.device,
    batch_size: int = 1024,
) -> NDArray[np.float32]:
    """Imputed log1p(counts per 10k) for every cell, computed in batches; (cells, G) float32.

    Only one batch is dense at a time, so memory is the output plus a few ``batch_size`` x G
    blocks; a batch that runs out of device memory is retried at half the size.
    """
    if model.config.use_neighbours and pool is None:
        msg = "the model uses the neighbour channel: pass pool"
        raise ValueError(msg)
    cells = CellData(counts, library, pool if model.config.use_neighbours else None)
    model.to(device)
    model.eval()
    out = np.empty((cells.n_cells, counts.shape[1]), dtype=np.float32)

    def run(idx: slice) -> tuple[slice, NDArray[np.float32]]:
        counts_b, lib = cells.own(idx)
        nbr = cells.neighbours(idx)
        with autocast(device):
            pred = model(
                log1p_norm(counts_b, lib).to(device),
                depth_of(lib).to(device),
                None if nbr is None else nbr.to(device),
            ).imputed
        return idx, pred.float().cpu().numpy()

    for idx, values in FittingBatch(batch_size, "impute").over(cells.n_cells, run):
        out[idx] = values
    return out
