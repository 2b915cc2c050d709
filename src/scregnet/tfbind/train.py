"""Training the scFAN model on bulk data: held-out chromosomes, class balance, early stopping.

The trained model is written as a :mod:`scregnet.tfbind.checkpoint`.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from scregnet.device import autocast, grad_scaler
from scregnet.errors import InputError
from scregnet.io.atomic import atomic_path
from scregnet.io.genome import read_chrom_sizes
from scregnet.stats import auprc, auroc
from scregnet.tfbind.checkpoint import save_checkpoint
from scregnet.tfbind.config import TrainConfig
from scregnet.tfbind.data import (
    BulkData,
    BulkTrack,
    BulkWindows,
    build_index,
    choose_heldout,
    load_bulk,
    read_bulk_sheet,
    reverse_complement,
)
from scregnet.tfbind.model import ModelConfig, ScFAN
from scregnet.tfbind.motifs import Motif

log = logging.getLogger(__name__)


def pos_weights(labels: np.ndarray, *, cap: float) -> torch.Tensor:
    """Per-TF ``negatives / positives`` (capped) for ``BCEWithLogitsLoss``: class-imbalance handling."""
    pos = (labels == 1).sum(axis=0).astype(np.float64)
    neg = (labels == 0).sum(axis=0).astype(np.float64)
    w = np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
    return torch.tensor(np.clip(w, 1.0, cap), dtype=torch.float32)


def masked_bce(logits: torch.Tensor, y: torch.Tensor, pos_weight: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over the assayed (y >= 0) entries only."""
    mask = (y >= 0).float()
    loss = nn.functional.binary_cross_entropy_with_logits(
        logits.float(), y.clamp(min=0), pos_weight=pos_weight, reduction="none"
    )
    return (loss * mask).sum() / mask.sum().clamp(min=1.0)


@torch.no_grad()
def dataset_logits(
    model: nn.Module,
    dataset: Dataset[Any],
    *,
    device: torch.device,
    batch_size: int = 256,
    rc_average: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Uncalibrated logits and labels of every item of a labelled dataset (eval mode, strand-averaged)."""
    model.eval()
    logits, labels = [], []
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        x = x.to(device)
        with autocast(device):
            logit = model(x).float()
            if rc_average:
                logit = (logit + model(reverse_complement(x)).float()) / 2
        logits.append(logit.float().cpu().numpy())
        labels.append(y.numpy())
    return np.concatenate(logits), np.concatenate(labels)


@torch.no_grad()
def predict_dataset(
    model: nn.Module,
    dataset: Dataset[Any],
    *,
    device: torch.device,
    batch_size: int = 256,
    rc_average: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities and labels of every item of a labelled dataset."""
    logits, labels = dataset_logits(
        model, dataset, device=device, batch_size=batch_size, rc_average=rc_average
    )
    t = torch.from_numpy(logits)
    if isinstance(model, ScFAN):
        t = model.calibrate(t.to(model.calib_scale.device)).cpu()
    return torch.sigmoid(t).numpy(), labels


def fit_calibration(
    logits: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    tfs: Sequence[str],
    *,
    min_positives: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-TF Platt scaling ``sigmoid(a * logit + b)`` fitted on held-out windows.

    ``weights`` (the bins each window stands for) make the fit reflect every bin of the held-out
    chromosomes rather than the training sample's class balance, undoing both the oversampling
    of positives and any positive-class weight in the loss. A TF with fewer than
    ``min_positives`` assayed positives, or whose fit is not increasing, keeps ``a = 1, b = 0``.
    """
    from sklearn.linear_model import LogisticRegression

    scale = np.ones(len(tfs), dtype=np.float32)
    bias = np.zeros(len(tfs), dtype=np.float32)
    for k, tf in enumerate(tfs):
        keep = labels[:, k] >= 0
        y = labels[keep, k]
        if y.sum() < min_positives or (y == 0).sum() < min_positives:
            log.warning("calibration: %s has too few held-out positives; left uncalibrated", tf)
            continue
        lr = LogisticRegression(C=1e4, max_iter=1000)
        lr.fit(logits[keep, k][:, None], y, sample_weight=weights[keep])
        a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        if a <= 0:
            log.warning(
                "calibration: %s's logits do not rank its held-out windows; left uncalibrated", tf
            )
            continue
        scale[k], bias[k] = a, b
    return scale, bias


def per_tf_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    tfs: Sequence[str],
    *,
    weights: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """AUROC/AUPRC per TF over the assayed entries; TFs without both classes are left out.

    With ``weights`` (bins per window, :class:`~scregnet.tfbind.data.WindowIndex`) also
    ``auroc_all_bins``/``auprc_all_bins``: the same metrics estimated over every bin of the
    windows' chromosomes (the scFAN protocol), not just over the sampled windows.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    out: dict[str, dict[str, float]] = {}
    for k, tf in enumerate(tfs):
        keep = labels[:, k] >= 0
        y = labels[keep, k]
        if y.size == 0 or y.min() == y.max():
            continue
        out[tf] = {
            "auroc": auroc(y, probs[keep, k]),
            "auprc": auprc(y, probs[keep, k]),
            "positives": float(y.sum()),
            "n": float(y.size),
        }
        if weights is not None:
            w = weights[keep]
            out[tf]["auroc_all_bins"] = float(roc_auc_score(y, probs[keep, k], sample_weight=w))
            out[tf]["auprc_all_bins"] = float(
                average_precision_score(y, probs[keep, k], sample_weight=w)
            )
    return out


def mean_metric(metrics: dict[str, dict[str, float]], key: str) -> float:
    values = [m[key] for m in metrics.values() if not math.isnan(m[key])]
    return float(np.mean(values)) if values else float("nan")


def fit(
    model: nn.Module,
    train_set: Dataset[Any],
    val_set: Dataset[Any] | None,
    *,
    pos_weight: torch.Tensor,
    config: TrainConfig,
    device: torch.device,
    generator: torch.Generator,
    state: Path | None = None,
) -> dict[str, Any]:
    """Adam + masked BCE with early stopping on validation loss; restores the best weights.

    During the first ``config.sequence_warmup`` epochs the accessibility channel is zeroed, so the
    network has to learn sequence features before it can lean on accessibility; early stopping
    starts counting after the warm-up.

    With ``state``, the whole training state (weights, optimiser, random generators, early-stopping
    bookkeeping) is written there after every epoch, and training continues from it when it exists
    and was written for the same configuration and data: a task killed mid-training (a reclaimed
    spot VM) loses at most one epoch, and ends with the same weights as an uninterrupted run.
    """
    model.to(device)
    pos_weight = pos_weight.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    scaler = grad_scaler(device)
    loader = DataLoader(
        train_set, batch_size=config.batch_size, shuffle=True, generator=generator, drop_last=False
    )
    warmup = config.sequence_warmup if config.use_accessibility else 0
    key = _state_key(config, len(train_set), None if val_set is None else len(val_set))  # type: ignore[arg-type]
    run = _TrainingState(model, optimiser, scaler, generator)
    progress = run.resume(state, key, device) if state is not None else None
    if progress is None:
        progress = _Progress()
    for epoch in range(progress.epoch + 1, config.epochs + 1):
        if progress.stopped:
            break
        t0 = time.perf_counter()
        train_loss, seen = _train_epoch(
            run,
            loader,
            pos_weight,
            device=device,
            rc_augment=config.rc_augment,
            zero_accessibility=epoch <= warmup,
        )
        progress.n_seen += seen
        progress.t_train += time.perf_counter() - t0
        val_loss = (
            _loss(model, val_set, pos_weight, device, config.batch_size) if val_set else train_loss
        )
        progress.history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        log.info(
            "epoch %d/%d%s: train loss %.4f, validation loss %.4f (%.1f s)",
            epoch,
            config.epochs,
            " (sequence-only warm-up)" if epoch <= warmup else "",
            train_loss,
            val_loss,
            time.perf_counter() - t0,
        )
        if not (epoch <= warmup and epoch < config.epochs):
            progress.update(model, epoch, val_loss, config.patience)
        progress.epoch = epoch
        if state is not None:
            run.save(state, key, progress)
        if progress.stopped:
            log.info("early stopping after epoch %d (best epoch %d)", epoch, progress.best_epoch)
            break
    if progress.best_state is not None:
        model.load_state_dict(progress.best_state)
    return {
        "history": progress.history,
        "best_epoch": progress.best_epoch,
        "best_val_loss": progress.best_loss,
        "train_windows_per_s": progress.n_seen / progress.t_train
        if progress.t_train > 0
        else float("nan"),
    }


@dataclass
class _Progress:
    """The early-stopping bookkeeping of :func:`fit` (saved with the training state)."""

    best_loss: float = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch: int = 0
    stale: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    n_seen: int = 0
    t_train: float = 0.0
    #: the last epoch trained (0: none)
    epoch: int = 0
    stopped: bool = False

    def update(self, model: nn.Module, epoch: int, val_loss: float, patience: int) -> None:
        """Keep ``model``'s weights when ``val_loss`` improves, else count towards stopping."""
        if val_loss < self.best_loss - 1e-4:
            self.best_loss, self.best_epoch, self.stale = val_loss, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.stale += 1
            self.stopped = self.stale >= patience


@dataclass
class _TrainingState:
    """What :func:`fit` trains with, and its per-epoch state file."""

    model: nn.Module
    optimiser: torch.optim.Optimizer
    scaler: Any
    generator: torch.Generator

    def resume(self, path: Path, key: str, device: torch.device) -> _Progress | None:
        """Restore the state saved at ``path`` for ``key``; None when there is none."""
        saved = _read_state(path, key, device)
        if saved is None:
            return None
        self.model.load_state_dict(saved["model"])
        self.optimiser.load_state_dict(saved["optimiser"])
        self.scaler.load_state_dict(saved["scaler"])
        self.generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        if saved["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        log.info("resuming training after epoch %d from %s", saved["epoch"], path)
        return _Progress(**{f.name: saved[f.name] for f in fields(_Progress)})

    def save(self, path: Path, key: str, progress: _Progress) -> None:
        _write_state(
            path,
            {
                "key": key,
                "model": self.model.state_dict(),
                "optimiser": self.optimiser.state_dict(),
                "scaler": self.scaler.state_dict(),
                "generator": self.generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                **{f.name: getattr(progress, f.name) for f in fields(_Progress)},
            },
        )


def _train_epoch(
    run: _TrainingState,
    loader: DataLoader[Any],
    pos_weight: torch.Tensor,
    *,
    device: torch.device,
    rc_augment: bool,
    zero_accessibility: bool,
) -> tuple[float, int]:
    """One pass over ``loader`` (accessibility channels zeroed when asked, random strand flips
    with ``rc_augment``); returns the mean batch loss and the number of windows seen."""
    model, optimiser, scaler, generator = run.model, run.optimiser, run.scaler, run.generator
    model.train()
    total, batches, seen = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        if zero_accessibility and x.shape[1] > 4:
            x = x.clone()
            x[:, 4:] = 0.0
        if rc_augment:
            flip = torch.rand(x.shape[0], generator=generator) < 0.5
            if flip.any():
                x = x.clone()
                x[flip.to(device)] = reverse_complement(x[flip.to(device)])
        optimiser.zero_grad(set_to_none=True)
        with autocast(device):
            logits = model(x)
        loss = masked_bce(logits, y, pos_weight)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        total += float(loss.detach())
        batches += 1
        seen += x.shape[0]
    return total / max(batches, 1), seen


def _state_key(config: TrainConfig, n_train: int, n_val: int | None) -> str:
    """What a saved training state must have been written for: the configuration and data sizes."""
    return repr((sorted(asdict(config).items()), n_train, n_val))


def _read_state(path: Path, key: str, device: torch.device) -> dict[str, Any] | None:
    """The training state at ``path`` when it exists and was written for ``key``, else None."""
    import pickle

    if not path.exists():
        return None
    try:
        saved: dict[str, Any] = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        log.warning("ignoring unreadable training state %s (%s): starting over", path, err)
        return None
    if saved.get("key") != key:
        log.warning("ignoring training state %s: written for another configuration or data", path)
        return None
    return saved


def _write_state(path: Path, payload: dict[str, Any]) -> None:
    """Write a training state atomically (a kill mid-write leaves the previous epoch's)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)


@torch.no_grad()
def _loss(
    model: nn.Module,
    dataset: Dataset[Any],
    pos_weight: torch.Tensor,
    device: torch.device,
    batch_size: int,
) -> float:
    model.eval()
    total, n = 0.0, 0
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        x, y = x.to(device), y.to(device)
        with autocast(device):
            logits = model(x)
        total += float(masked_bce(logits, y, pos_weight)) * x.shape[0]
        n += x.shape[0]
    return total / max(n, 1)


def train(
    fasta: str | Path,
    bulk_sheet: str | Path,
    out: str | Path,
    *,
    config: TrainConfig,
    device: str = "auto",
    state: str | Path | None = None,
) -> dict[str, Any]:
    """Train on the bulk sheet's tracks and ChIP peaks; write the checkpoint atomically to ``out``.

    ``device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (:func:`scregnet.device.resolve_device`);
    ``config.seed`` seeds every generator.

    ``state``: a file for the per-epoch training state (see :func:`fit`), resumed from when it
    exists, removed once the checkpoint is written.

    Returns the held-out metrics (per-TF AUROC/AUPRC on the test chromosomes' windows), as the
    checkpoint holds them, and the training and prediction speeds (windows/s), which it does not.
    """
    from scregnet.device import resolve_device
    from scregnet.seed import seed_everything

    t_start = time.perf_counter()
    fasta = Path(fasta)
    torch_device = resolve_device(device)
    rng = seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    if config.bin_size < 1 or config.window < config.bin_size or config.step < 1:
        msg = f"need 1 <= bin size <= window and step >= 1, got bin {config.bin_size}, window {config.window}, step {config.step}"
        raise InputError(msg)
    tracks, sizes, data, chroms, (train_chroms, val, test) = _bulk_data(fasta, bulk_sheet, config)
    train_idx, val_idx, test_idx = _window_indices(
        data, config, [train_chroms, val, test], rng, bulk_sheet
    )
    inputs = _motif_inputs(data, config, chroms, [t.cell_type for t in tracks])

    def dataset(idx: Any, jitter: int = 0) -> BulkWindows:
        return BulkWindows(
            data,
            idx,
            window=config.window,
            bin_size=config.bin_size,
            use_accessibility=config.use_accessibility,
            jitter=jitter,
            context=inputs.context,
        )

    model_config, model = _new_model(config, len(data.tfs), inputs)
    weights = pos_weights(train_idx.labels, cap=config.max_pos_weight)
    result = fit(
        model,
        dataset(train_idx, config.jitter),
        dataset(val_idx),
        pos_weight=weights,
        config=config,
        device=torch_device,
        generator=generator,
        state=None if state is None else Path(state),
    )
    _calibrate(model, dataset(val_idx), val_idx.weights, data.tfs, val, device=torch_device)
    metrics, predict_rate = _test_metrics(
        model, dataset(test_idx), test_idx.weights, data.tfs, test, device=torch_device
    )
    log.info(
        "speed: training %.0f windows/s, prediction %.0f windows/s",
        result["train_windows_per_s"],
        predict_rate,
    )
    metrics |= {
        "best_epoch": result["best_epoch"],
        "history": result["history"],
        "n_windows": {"train": len(train_idx), "val": len(val_idx), "test": len(test_idx)},
    }
    save_checkpoint(
        out,
        model=model,
        model_config=model_config,
        config=config,
        tfs=data.tfs,
        chrom_sizes=sizes,
        test_chroms=test,
        val_chroms=val,
        cell_types=[t.cell_type for t in tracks],
        metrics=metrics,
        motifs=inputs.motifs,
        motif_tfs=inputs.motif_tfs,
        context=inputs.context,
    )
    log.info("wrote %s (%.1f s)", out, time.perf_counter() - t_start)
    if state is not None:
        Path(state).unlink(missing_ok=True)
    return {
        **metrics,
        "train_windows_per_s": result["train_windows_per_s"],
        "predict_windows_per_s": predict_rate,
    }


def _bulk_data(
    fasta: Path, bulk_sheet: str | Path, config: TrainConfig
) -> tuple[
    list[BulkTrack], dict[str, int], BulkData, list[str], tuple[list[str], list[str], list[str]]
]:
    """The bulk sheet's tracks, the genome's chromosome sizes, the bulk data on the chromosomes
    not excluded, those chromosomes, and the train, validation and test chromosomes."""
    tracks = read_bulk_sheet(bulk_sheet)
    sizes = read_chrom_sizes(fasta)
    excluded = set(config.exclude_chroms)
    chroms = [c for c in sizes if c not in excluded]
    test, val = choose_heldout(chroms, test=config.test_chroms, val=config.val_chroms, fasta=fasta)
    train_chroms = [c for c in chroms if c not in set(test) | set(val)]
    log.info(
        "chromosomes: train %s; validation %s; test %s",
        ",".join(train_chroms),
        ",".join(val),
        ",".join(test),
    )
    data = load_bulk(fasta, tracks, chroms=chroms)
    log.info(
        "bulk sheet %s: %d cell type(s), %d TF(s): %s",
        bulk_sheet,
        len(tracks),
        len(data.tfs),
        ", ".join(data.tfs),
    )
    return tracks, sizes, data, chroms, (train_chroms, val, test)


def _window_indices(
    data: BulkData,
    config: TrainConfig,
    splits: list[list[str]],
    rng: np.random.Generator,
    bulk_sheet: str | Path,
) -> list[Any]:
    """The window indices of the train, validation and test chromosomes (in that order);
    InputError when no training bin is positive."""
    train_idx, val_idx, test_idx = (
        build_index(
            data,
            cs,
            window=config.window,
            bin_size=config.bin_size,
            step=config.step,
            negative_ratio=config.negative_ratio,
            rng=rng,
        )
        for cs in splits
    )
    pos = train_idx.positives()
    if pos.sum() == 0:
        msg = "no ChIP peak covers half of any training bin: nothing to learn (check the BEDs' chromosomes)"
        raise InputError(msg, bulk_sheet)
    log.info(
        "windows: %d train, %d validation, %d test; training positives per TF: %s",
        len(train_idx),
        len(val_idx),
        len(test_idx),
        ", ".join(f"{tf}={n}" for tf, n in zip(data.tfs, pos, strict=True)),
    )
    return [train_idx, val_idx, test_idx]


@dataclass
class _MotifInputs:
    """The motif-derived model inputs: motifs of the TFs that have one, and the context."""

    motif_tfs: list[str]
    motifs: list[Motif]
    #: each motif's TF as an index into the model's TFs
    motif_idx: list[int]
    #: motif-scan input tracks wanted and possible
    tracks: bool
    #: (cell types x TFs) motif-accessibility AUC - 0.5, or None without context
    context: np.ndarray | None


def _motif_inputs(
    data: BulkData, config: TrainConfig, chroms: list[str], cell_types: list[str]
) -> _MotifInputs:
    found = _load_motifs(config, data.tfs)
    motif_tfs = [tf for tf in data.tfs if tf in found]
    motif_list = [found[tf] for tf in motif_tfs]
    motif_idx = [data.tfs.index(tf) for tf in motif_tfs]
    use_tracks = config.motif_tracks and bool(motif_list)
    use_context = config.context and config.use_accessibility and bool(motif_list)
    if (config.motif_tracks or config.context) and not motif_list:
        log.warning("no motif for any TF: training without motif tracks and context")
    context = None
    if use_context:
        context = bulk_context(data, motif_list, motif_idx, chroms, bin_size=config.bin_size)
        log.info(
            "context (motif-accessibility AUC - 0.5) per cell type: %s",
            "; ".join(
                f"{cell_type}: "
                + " ".join(f"{tf}={context[k, data.tfs.index(tf)]:+.2f}" for tf in motif_tfs)
                for k, cell_type in enumerate(cell_types)
            ),
        )
    return _MotifInputs(motif_tfs, motif_list, motif_idx, use_tracks, context)


def _new_model(config: TrainConfig, n_tfs: int, inputs: _MotifInputs) -> tuple[ModelConfig, ScFAN]:
    """The untrained network, with its motif tracks and motif-initialised filters when asked."""
    motifs, tracks = inputs.motifs, inputs.tracks
    model_config = ModelConfig(
        n_tfs=n_tfs,
        window=config.window,
        use_accessibility=config.use_accessibility,
        filters=config.filters,
        dropout=config.dropout,
        hidden=config.hidden,
        n_motifs=len(motifs) if tracks else 0,
        motif_width=max((m.counts.shape[1] for m in motifs), default=0) if tracks else 0,
        motif_tf=tuple(inputs.motif_idx) if tracks else (),
        motif_centre=config.motif_centre,
        use_context=inputs.context is not None,
    )
    model = ScFAN(model_config)
    if tracks:
        model.set_motifs([torch.from_numpy(m.log_odds()) for m in motifs])
    if config.motif_init:
        _init_from_motifs(model, motifs)
    return model_config, model


def _calibrate(
    model: ScFAN,
    val_set: BulkWindows,
    weights: np.ndarray,
    tfs: Sequence[str],
    val_chroms: list[str],
    *,
    device: torch.device,
) -> None:
    """Fit the per-TF calibration on the validation chromosomes (weighted to stand for all their
    bins) and set it in ``model``."""
    val_logits, val_labels = dataset_logits(model, val_set, device=device)
    scale, bias = fit_calibration(val_logits, val_labels, weights, tfs)
    model.calib_scale.copy_(torch.from_numpy(scale))
    model.calib_bias.copy_(torch.from_numpy(bias))
    log.info(
        "calibration (validation %s): scale %s; bias %s",
        ",".join(val_chroms),
        " ".join(f"{v:.2f}" for v in scale),
        " ".join(f"{v:.2f}" for v in bias),
    )


def _test_metrics(
    model: ScFAN,
    test_set: BulkWindows,
    weights: np.ndarray,
    tfs: Sequence[str],
    test_chroms: list[str],
    *,
    device: torch.device,
) -> tuple[dict[str, Any], float]:
    """Per-TF and mean AUROC/AUPRC on the test chromosomes' windows, and the prediction speed
    (windows/s; for the log only: the checkpoint holds no timing, so the same seed gives the
    same bytes)."""
    t0 = time.perf_counter()
    probs, labels = predict_dataset(model, test_set, device=device, batch_size=256)
    predict_rate = len(test_set) / max(time.perf_counter() - t0, 1e-9)
    test_metrics = per_tf_metrics(probs, labels, tfs, weights=weights)
    log.info(
        "held-out chromosomes %s: mean AUROC %.3f, mean AUPRC %.3f over %d TF(s)",
        ",".join(test_chroms),
        mean_metric(test_metrics, "auroc"),
        mean_metric(test_metrics, "auprc"),
        len(test_metrics),
    )
    metrics = {
        "test": test_metrics,
        "test_mean_auroc": mean_metric(test_metrics, "auroc"),
        "test_mean_auprc": mean_metric(test_metrics, "auprc"),
        "test_mean_auroc_all_bins": mean_metric(test_metrics, "auroc_all_bins"),
        "test_mean_auprc_all_bins": mean_metric(test_metrics, "auprc_all_bins"),
    }
    return metrics, predict_rate


def _load_motifs(config: TrainConfig, tfs: Sequence[str]) -> dict[str, Motif]:
    """The TFs' motifs: from ``config.motifs`` (InputError when none is named like a TF), else
    pyjaspar's bundled JASPAR by TF name; none are needed when no motif feature is asked for."""
    from scregnet.tfbind.motifs import jaspar_motifs, motifs_for_tfs, read_motifs

    if not (config.motif_tracks or config.context or config.motif_init):
        return {}
    if config.motifs is None:
        return jaspar_motifs(tfs)
    motifs = read_motifs(config.motifs)
    if not {m.name.upper() for m in motifs} & {tf.upper() for tf in tfs}:
        msg = f"no motif in the file is named like one of the TFs ({', '.join(list(tfs)[:6])})"
        raise InputError(msg, config.motifs)
    return motifs_for_tfs(motifs, tfs)


def bulk_context(
    data: BulkData,
    motifs: Sequence[Motif],
    motif_tf: Sequence[int],
    chroms: Sequence[str],
    *,
    bin_size: int,
) -> np.ndarray:
    """``(n_tracks, n_tfs)`` activity context of each bulk cell type (:mod:`.context`)."""
    from scregnet.io.genome import open_fasta
    from scregnet.tfbind.context import (
        bulk_regions,
        motif_auc,
        region_scores,
        tf_context,
        top_matches,
    )
    from scregnet.tfbind.motifs import MotifScanner

    regions, access = bulk_regions(
        [t.accessibility_bw for t in data.tracks],
        data.track_means,
        data.chrom_sizes,
        chroms,
        bin_size=bin_size,
    )
    if len(regions) < 20:
        msg = f"only {len(regions)} accessible regions in the bulk tracks: too few for the context (use --no-context)"
        raise InputError(msg, data.tracks[0].accessibility_bw)
    fasta = open_fasta(data.fasta)
    try:
        scores = region_scores(MotifScanner(list(motifs)), fasta, regions)
    finally:
        fasta.close()
    return tf_context(motif_auc(access, top_matches(scores)), motif_tf, len(data.tfs))


def _init_from_motifs(model: ScFAN, motifs: Sequence[Motif]) -> None:
    """First-block filters from the TFs' PFMs (``--motif-init``)."""
    if not motifs:
        msg = "--motif-init needs motifs for the TFs (none found)"
        raise InputError(msg)
    used = model.init_motif_filters([torch.from_numpy(m.log_odds()) for m in motifs])
    fitted = len(used) // 2
    log.info(
        "initialised %d of %d first-block filters from %d motif(s) (both strands)%s",
        len(used),
        model.config.filters[0],
        fitted,
        f"; {len(motifs) - fitted} motif(s) did not fit" if fitted < len(motifs) else "",
    )
