"""The scFAN training loop on bulk windows: class-balanced loss, early stopping on the validation
loss, the resumable per-epoch state, and the held-out metrics and calibration fit.

:func:`scregnet.tfbind.api.train` prepares the data and model and writes the checkpoint.
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
from scregnet.io.atomic import atomic_path
from scregnet.stats import auprc, auroc
from scregnet.tfbind.config import TrainConfig
from scregnet.tfbind.data import (
    reverse_complement,
)
from scregnet.tfbind.model import ScFAN

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


#: The fewest positive bins a TF needs on the training chromosomes and, as many, on the validation
#: chromosomes; ``tfbind train`` drops a TF with fewer. The calibration (Platt scaling) fits a
#: slope and an intercept by logistic regression on the validation windows: with a handful of
#: positives or fewer any slope separates them and the fit is not determined, so the TF would keep
#: its raw, class-weighted sigmoid, which is no probability. With as few training positives the
#: network has nothing to learn the TF's binding from.
MIN_POSITIVES = 5


def fit_calibration(
    logits: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    tfs: Sequence[str],
    *,
    min_positives: int = MIN_POSITIVES,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-TF Platt scaling ``sigmoid(a * logit + b)`` fitted on held-out windows, ``a >= 0``.

    ``weights`` (the bins each window stands for) make the fit reflect every bin of the held-out
    chromosomes rather than the training sample's class balance, undoing both the oversampling
    of positives and any positive-class weight in the loss. The slope is constrained to be
    non-negative: when the unconstrained fit's slope is not positive (the logits do not rank the
    TF's held-out windows) the constrained maximum likelihood is ``a = 0`` and ``b`` the logit of
    the weighted positive rate, so the TF's probability is its base rate on every window
    (:func:`scregnet.tfbind.model.base_rate_tfs`). A TF with fewer than ``min_positives``
    assayed positives or negatives keeps ``a = 1, b = 0`` (training drops the TFs with too few
    positives before this point).
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
            rate = float(np.average(y, weights=weights[keep]))
            log.warning(
                "calibration: %s's logits do not rank its held-out windows (Platt slope %.3g): "
                "its binding probability is its base rate on the validation chromosomes, %.3g, "
                "on every peak, and carries no binding information",
                tf,
                a,
                rate,
            )
            a, b = 0.0, math.log(rate / (1.0 - rate))
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
    inputs: str = "",
) -> dict[str, Any]:
    """Adam + masked BCE with early stopping on validation loss; restores the best weights.

    During the first ``config.sequence_warmup`` epochs the accessibility channel is zeroed, so the
    network has to learn sequence features before it can lean on accessibility; early stopping
    starts counting after the warm-up.

    With ``state``, the whole training state (weights, optimiser, random generators, early-stopping
    bookkeeping) is written there after every epoch, and training continues from it when it exists
    and was written for the same configuration and data (``inputs``: what identifies the data's
    files, see :func:`scregnet.tfbind.api.train`): a task killed mid-training (a reclaimed spot
    VM) loses at most one epoch, and ends with the same weights as an uninterrupted run.
    """
    model.to(device)
    pos_weight = pos_weight.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    scaler = grad_scaler(device)
    loader = DataLoader(
        train_set, batch_size=config.batch_size, shuffle=True, generator=generator, drop_last=False
    )
    warmup = config.sequence_warmup if config.use_accessibility else 0
    key = _state_key(config, len(train_set), None if val_set is None else len(val_set), inputs)  # type: ignore[arg-type]
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


def _state_key(config: TrainConfig, n_train: int, n_val: int | None, inputs: str = "") -> str:
    """What a saved training state must have been written for: the configuration, the data sizes
    and the input files' identity."""
    return repr((sorted(asdict(config).items()), n_train, n_val, inputs))


def check_state_file(path: Path) -> None:
    """A ``--state`` file that exists must be a training state :func:`fit` wrote (it is resumed, or
    replaced when written for other inputs, and removed at the end); any other file, a model
    checkpoint given by mistake among them, is an :class:`InputError`, left as it is."""
    from scregnet.errors import InputError

    if not path.exists():
        return
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types for a file it cannot read
        saved = None
    if not (isinstance(saved, dict) and {"key", "model", "optimiser"} <= set(saved)):
        msg = (
            "exists and is not a training state of `scregnet tfbind train` (it would be "
            "overwritten and removed): give a new --state path, or delete this file"
        )
        raise InputError(msg, path)


def _read_state(path: Path, key: str, device: torch.device) -> dict[str, Any] | None:
    """The training state at ``path`` when it exists and was written for ``key``, else None."""
    from scregnet.errors import first_line

    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises many types for a file it cannot read
        why = f"{type(err).__name__}: {first_line(err)}"
        log.warning("ignoring unreadable training state %s (%s): starting over", path, why)
        return None
    if not isinstance(saved, dict) or saved.get("key") != key:
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
