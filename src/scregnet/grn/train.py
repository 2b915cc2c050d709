"""Training the DeepMCL-style model on labelled TF-target pairs, with held-out-TF model selection.

Every validation split holds out whole TFs, since the model must score TFs it never saw. With
pair features (our extension), :func:`fit` chooses on held-out training TFs with the
standard-error rule (:mod:`scregnet.grn.readout`: the simpler choice wins unless the other beats
it by more than a number of standard errors over validation TFs): the skip read-out of the
features (:func:`scregnet.grn.readout.choose_skip`), then whether the network adds to it (gate > 0
at its best epoch, by pooled AUPRC) or not (gate 0). The model is thus never knowingly worse on
held-out TFs than the best fixed ranking it starts from, and uses the network only where it
validated.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from scregnet.choices import check_choice
from scregnet.errors import InputError
from scregnet.grn.config import Sampling, TrainConfig
from scregnet.grn.data import PairLabels
from scregnet.grn.readout import (
    GAIN_TOLERANCE,
    SE_MULTIPLE,
    SkipChoice,
    auprc_gain_se,
    choose_skip,
    feature_matrix,
    inner_tf_folds,
    skip_weights,
    use_labels,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    import torch

    from scregnet.grn.config import GRNConfig
    from scregnet.grn.images import ImageBuilder
    from scregnet.grn.model import DeepMCL, HeadOutput

log = logging.getLogger(__name__)

MIN_VAL_POSITIVES = 20
#: the network is kept only if it also raises the held-out AUPRC by this fraction of the read-out's
#: own: a network that changes nothing (gains of 1e-4 with a bootstrap SE of 0 pass the SE rule)
#: would still replace the read-out refitted on every training TF by one fitted on the split's
MIN_NETWORK_GAIN = 0.01


@dataclass
class TrainResult:
    model: DeepMCL
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    train_tfs: list[int] = field(default_factory=list)
    val_tfs: list[int] = field(default_factory=list)
    #: what the held-out model selection measured and chose (see :func:`fit`)
    selection: dict[str, Any] = field(default_factory=dict)


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

    from scregnet.device import FittingBatch, autocast

    wanted = np.arange(builder.n_genes) if genes is None else np.unique(genes)

    def embed(part: slice) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(wanted[part], device=builder.device)
        with autocast(builder.device):
            return idx, model.encode(builder.neighbour(idx)).float()

    was_training = model.training
    model.eval()
    bank: torch.Tensor | None = None
    with torch.no_grad():
        for idx, emb in FittingBatch(chunk, "neighbour images").over(wanted.size, embed):
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
        builder.features(a, b, model.config.n_pair_features).to(primary.dtype)
        if model.skip is not None
        else None,
    )


def _epoch_pairs(
    labels: PairLabels, cap: int, rng: np.random.Generator, sampling: Sampling = "balanced"
) -> NDArray[np.intp]:
    """Pairs for one epoch. ``balanced``: the majority class subsampled to ``cap / 2`` and the
    minority class drawn (with replacement when needed) to the same size. ``natural``: at most
    ``cap`` pairs drawn without replacement, at the labels' positive rate."""
    check_choice("sampling", sampling, Sampling)
    if sampling == "natural":
        return rng.permutation(len(labels))[:cap]
    pos = np.flatnonzero(labels.label == 1)
    neg = np.flatnonzero(labels.label == 0)
    n = min(max(pos.size, neg.size), cap // 2)
    picked = np.concatenate([rng.choice(c, size=n, replace=c.size < n) for c in (pos, neg)])
    return rng.permutation(picked)


def network_off(model: DeepMCL) -> bool:
    """Whether the model's score is its skip read-out alone (pair features, gate at 0)."""
    return model.skip is not None and model.gate is not None and float(model.gate.detach()) == 0.0


def readout_logit(
    model: DeepMCL, builder: ImageBuilder, a: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """The skip read-out's logit of the pairs ``(a, b)`` from their features alone, no image
    built: the model's logit when its gate is 0. In float64: a fixed read-out's tie-breaking
    term (1e-4 of a standardised feature) must survive logits in the tens, as with labels for a
    few TFs, whose standardised prior has a small scale."""
    if model.skip is None:
        msg = "the read-out needs a model with pair features"
        raise ValueError(msg)
    features = builder.features(a, b, model.config.n_pair_features).double()
    weight, bias = model.skip.weight.double(), model.skip.bias.double()
    return (features @ weight.T + bias).squeeze(-1)


def predict_pairs(
    model: DeepMCL, builder: ImageBuilder, labels: PairLabels, *, batch_size: int = 512
) -> NDArray[np.float64]:
    """P(edge) for labelled pairs (evaluation mode, all cells), in float64: probabilities near 1
    in float32 tie pairs that the logits order.

    With the network's gate at 0 the logit is the skip read-out of the features alone (exactly),
    so no image is built.
    """
    import torch

    from scregnet.device import autocast

    if network_off(model):
        with torch.no_grad():
            logit = readout_logit(
                model,
                builder,
                torch.as_tensor(labels.tf, device=builder.device),
                torch.as_tensor(labels.target, device=builder.device),
            )
        return torch.sigmoid(logit).cpu().numpy()
    bank = neighbour_embeddings(model, builder, genes=np.concatenate([labels.tf, labels.target]))
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            a = torch.as_tensor(labels.tf[start : start + batch_size], device=builder.device)
            b = torch.as_tensor(labels.target[start : start + batch_size], device=builder.device)
            with autocast(builder.device):
                logit = forward_pairs(model, builder, a, b, bank).logit
            out.append(torch.sigmoid(logit.double()).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _set_skip(model: DeepMCL, w: NDArray[np.float64], b: float) -> None:
    """Fix the skip read-out to ``w, b`` (frozen: only the network and its gate train) and close
    the gate."""
    import torch

    assert model.skip is not None and model.gate is not None
    with torch.no_grad():
        model.skip.weight.copy_(torch.as_tensor(w, dtype=model.skip.weight.dtype).view(1, -1))
        model.skip.bias.fill_(b)
        model.gate.zero_()
    model.skip.requires_grad_(False)


def new_network(
    model_config: GRNConfig,
    builder: ImageBuilder,
    init_network: Mapping[str, torch.Tensor] | None = None,
) -> DeepMCL:
    """A fresh model on the builder's device; with ``init_network`` (the state of a model
    trained on another data set, same :class:`GRNConfig`), its network starts from those
    weights (the skip read-out and the gate are set per fit, so they are not taken)."""
    from scregnet.grn.model import DeepMCL

    model = DeepMCL(model_config).to(builder.device)
    if init_network is not None:
        own = model.state_dict()
        per_fit = ("skip.", "gate")  # set by each fit: never transferred
        taken = {k: v for k, v in init_network.items() if not k.startswith(per_fit)}
        wrong = sorted(k for k, v in taken.items() if k not in own or own[k].shape != v.shape)
        missing = sorted(k for k in own if k not in taken and not k.startswith(per_fit))
        if wrong or missing:
            msg = (
                "the initial network does not fit this model's configuration "
                f"(mismatched: {', '.join(wrong + missing)[:200]})"
            )
            raise InputError(msg)
        model.load_state_dict(taken, strict=False)
    return model


def _train_epochs(
    model: DeepMCL,
    builder: ImageBuilder,
    train: PairLabels,
    val: PairLabels | None,
    *,
    epochs: int,
    config: TrainConfig,
    rng: np.random.Generator,
    patience: int | None,
) -> tuple[list[dict[str, float]], list[NDArray[np.float64]], int, dict[str, Any]]:
    """Train ``model`` in place for up to ``epochs`` epochs.

    Returns the per-epoch history, the validation predictions before training (index 0) and after
    each epoch, the epoch of the best validation AUPRC (>= 1; the last epoch without validation)
    and that epoch's state. Stops after ``patience`` epochs without improvement (None: never).
    """
    import torch

    from scregnet.device import grad_scaler
    from scregnet.stats import auprc

    device = builder.device
    optimiser = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.lr,
        weight_decay=config.weight_decay,
    )
    scaler = grad_scaler(device, enabled=config.amp)
    generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
    history: list[dict[str, float]] = []
    preds = [predict_pairs(model, builder, val)] if val is not None else []
    best_score, best_epoch, best_state, stale = -np.inf, 0, copy.deepcopy(model.state_dict()), 0
    needed = np.concatenate([train.tf, train.target])
    for epoch in range(1, epochs + 1):
        bank = neighbour_embeddings(model, builder, genes=needed)
        order = _epoch_pairs(train, config.max_pairs_per_epoch, rng, config.sampling)
        loss = _train_epoch(
            model, builder, train, order, bank, config, optimiser, scaler, generator
        )
        record = {"epoch": float(epoch), "loss": loss}
        if val is not None:
            preds.append(predict_pairs(model, builder, val))
            score = auprc(val.label, preds[-1])
            record["val_auprc"] = score
        else:
            score = float(epoch)  # no validation TFs: keep the last epoch
        history.append(record)
        log.debug("epoch %d: %s", epoch, record)
        if score > best_score:
            best_score, best_epoch, best_state, stale = (
                score,
                epoch,
                copy.deepcopy(model.state_dict()),
                0,
            )
        else:
            stale += 1
            if patience is not None and stale >= patience:
                break
    return history, preds, best_epoch, best_state


def _train_epoch(
    model: DeepMCL,
    builder: ImageBuilder,
    train: PairLabels,
    order: NDArray[np.intp],
    bank: torch.Tensor,
    config: TrainConfig,
    optimiser: torch.optim.Optimizer,
    scaler: Any,
    generator: torch.Generator,
) -> float:
    """One pass over the training pairs ``order`` in batches (a batch of fewer than 2 pairs is
    skipped); returns the mean batch loss (classification plus weighted contrastive)."""
    import torch

    from scregnet.device import autocast
    from scregnet.grn.model import contrastive_loss

    device = builder.device
    model.train()
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
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                out.logit.float(),
                y,
                pos_weight=torch.tensor(config.pos_weight, device=device),
            )
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
    return total / max(n_batches, 1)


def _fit_plain(
    builder: ImageBuilder,
    labels: PairLabels,
    *,
    model_config: GRNConfig,
    config: TrainConfig,
    rng: np.random.Generator,
    init_network: Mapping[str, torch.Tensor] | None = None,
) -> TrainResult:
    """No held-out selection of the read-out: one TF-aware validation split (when
    ``val_fraction`` gives one) picks the epoch; the skip, if any, starts as |Spearman| and trains
    with the network. This is how DeepMCL as published (no pair features) always trains."""

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
    model = new_network(model_config, builder, init_network)
    use_labels(builder, train)
    history, _, best_epoch, best_state = _train_epochs(
        model,
        builder,
        train,
        val if len(val) else None,
        epochs=config.epochs,
        config=config,
        rng=rng,
        patience=config.patience,
    )
    model.load_state_dict(best_state)
    model.eval()
    use_labels(builder, labels)
    return TrainResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        train_tfs=train_tfs,
        val_tfs=val_tfs,
        selection={"mode": "fixed" if not val_tfs else "early stopping"},
    )


def fit(
    builder: ImageBuilder,
    labels: PairLabels,
    *,
    model_config: GRNConfig,
    config: TrainConfig,
    rng: np.random.Generator,
    init_network: Mapping[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train on ``labels`` with model selection on held-out training TFs.

    With pair features and ``val_fraction > 0`` (our extension, see the module docstring):

    1. *Read-out* (:func:`scregnet.grn.readout.choose_skip`). On ``inner_folds`` TF-aware folds
       of the training TFs, each skip read-out of :data:`scregnet.grn.readout.SKIP_CANDIDATES`
       (the label-feature ones when the model has them) is fitted on the other folds and scores
       the fold's pairs. The fixed ranking (|Spearman|, |metacell r|, target prior,
       similarity-weighted prior, either prior x |rho|) with the best out-of-fold mean per-TF
       AUPRC (:func:`scregnet.grn.readout.per_tf_auprc`) is kept unless
       the best fitted read-out (log-linear, logistic) beats it by more than
       :func:`scregnet.grn.readout.se_multiple` standard errors of the per-TF differences (2,
       or Student's t quantile when the validation TFs are few). A TF out-degree term is added
       to it when it raises the pooled out-of-fold AUPRC by more than ``SE_MULTIPLE`` bootstrap
       SEs (:func:`scregnet.grn.readout.choose_degree_term`). Below
       :data:`scregnet.grn.readout.MIN_SELECTION_TFS` validation TFs nothing is chosen: the
       read-out is the target prior (|Spearman| without label features), with no TF term.
    2. *Network* (:func:`_choose_network`). The network is trained with the gate starting at 0 on
       top of the chosen skip, on a TF-aware split (``val_fraction`` of the TFs held out; when
       those carry fewer than ``MIN_VAL_POSITIVES`` positives, on each of the inner folds
       instead). Its best epoch is kept only if it beats the skip alone (epoch 0: gate 0) by
       more than ``SE_MULTIPLE`` SEs on the held-out TFs and by at least ``MIN_NETWORK_GAIN`` of
       the skip's own AUPRC; otherwise the gate is set to 0 and the model is the skip read-out
       refitted on every training TF.
    3. *Refit or keep* (:func:`_final_model`). A network chosen on one split is kept as trained
       (on the split's training TFs); one chosen on the inner folds is refitted on every
       training TF for the chosen number of epochs.

    With ``config.network`` False the model is step 1's read-out alone, refitted on every training
    TF (:func:`_skip_only`).

    Without pair features (DeepMCL as published) or with ``val_fraction = 0``:
    :func:`_fit_plain` (an :class:`InputError` when ``config.network`` is False).

    ``init_network``: every network trained here starts from these weights (a model of the same
    :class:`GRNConfig` trained on another data set, :func:`new_network`) instead of at random.
    """
    if labels.n_positive == 0 or labels.n_positive == len(labels):
        msg = "training labels need both positive and negative pairs"
        raise InputError(msg)
    if builder.n_neighbours != model_config.n_neighbours:
        msg = (
            f"the images have {builder.n_neighbours} neighbours per gene, the network "
            f"{model_config.n_neighbours}: build the config with usable_neighbours()"
        )
        raise ValueError(msg)
    start = time.perf_counter()
    folds = (
        inner_tf_folds(labels, config.inner_folds, rng)
        if model_config.n_pair_features and config.val_fraction > 0
        else []
    )
    for fold in folds:
        held_in = labels.label[~fold]
        if held_in.min() == held_in.max():
            msg = (
                "the labels give negatives (label 0) for too few TFs to choose a read-out on "
                "held-out TFs: give negatives for more TFs, or list positives only (every other "
                "gene of a listed TF is then its negative)"
            )
            raise InputError(msg)
    if not folds and not config.network:
        msg = (
            "the read-out alone (no network) is chosen on held-out training TFs: it needs pair "
            "features, a validation fraction above 0 and positive labels for at least 2 TFs"
        )
        raise InputError(msg)
    if not folds:
        result = _fit_plain(
            builder,
            labels,
            model_config=model_config,
            config=config,
            rng=rng,
            init_network=init_network,
        )
        log.info(
            "trained %d epoch(s) in %.1f s; kept epoch %d (%s)",
            len(result.history),
            time.perf_counter() - start,
            result.best_epoch,
            result.selection["mode"],
        )
        return result

    boot = np.random.default_rng(int(rng.integers(2**31)))
    width = model_config.n_pair_features
    skip, selection = choose_skip(builder, labels, folds, width, boot, config.n_bootstrap)
    if not config.network:
        return _skip_only(builder, labels, skip, selection, model_config=model_config)
    network = _choose_network(
        builder,
        labels,
        folds,
        skip,
        model_config=model_config,
        config=config,
        rng=rng,
        boot=boot,
        init_network=init_network,
    )
    selection |= network.selection
    result = _final_model(
        builder,
        labels,
        skip,
        network,
        model_config=model_config,
        config=config,
        rng=rng,
        init_network=init_network,
    )
    result.selection = selection
    log.info(
        "trained in %.1f s: skip %s, %s",
        time.perf_counter() - start,
        skip,
        f"network at epoch {network.epoch}" if network.use else "no network contribution",
    )
    return result


def _skip_only(
    builder: ImageBuilder,
    labels: PairLabels,
    skip: SkipChoice,
    selection: dict[str, Any],
    *,
    model_config: GRNConfig,
) -> TrainResult:
    """``network=False``: the chosen read-out alone (gate 0), refitted on every training TF."""
    from scregnet.grn.model import DeepMCL

    use_labels(builder, labels)
    model = DeepMCL(model_config).to(builder.device)
    width = model_config.n_pair_features
    w, b = skip_weights(skip, feature_matrix(builder, labels, width), labels.label)
    _set_skip(model, w, b)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    selection |= {"network": False, "network_trained": False, "network_epoch": 0}
    selection |= {"network_gain": 0.0}
    selection |= {"network_gain_se": float("nan"), "network_splits": 0}
    return TrainResult(model=model, train_tfs=np.unique(labels.tf).tolist(), selection=selection)


@dataclass
class _NetworkChoice:
    """What step 2 of :func:`fit` trained and chose."""

    #: the network's best epoch on the pooled held-out TFs (0: none beyond the gate-0 start)
    epoch: int
    #: whether the network beat the skip alone by the standard-error rule
    use: bool
    #: per split: training history and best state
    histories: list[list[dict[str, float]]]
    states: list[dict[str, torch.Tensor]]
    #: the ``val_fraction`` split's TFs (kept with the network when it was the only split)
    train_tfs: list[int]
    val_tfs: list[int]
    selection: dict[str, Any]


def _choose_network(
    builder: ImageBuilder,
    labels: PairLabels,
    folds: list[NDArray[np.bool_]],
    skip: SkipChoice,
    *,
    model_config: GRNConfig,
    config: TrainConfig,
    rng: np.random.Generator,
    boot: np.random.Generator,
    init_network: Mapping[str, torch.Tensor] | None = None,
) -> _NetworkChoice:
    """Step 2 of :func:`fit`: the network on top of the chosen skip (gate from 0), trained on one
    TF-aware split or on each inner fold, and kept only where it beats gate 0 on held-out TFs."""
    from scregnet.stats import auprc

    train_mask, train_tfs, val_tfs = tf_aware_split(labels, config.val_fraction, rng)
    splits = [~train_mask] if val_tfs else folds
    histories, curves, states = _train_on_splits(
        builder,
        labels,
        splits,
        skip,
        model_config=model_config,
        config=config,
        rng=rng,
        init_network=init_network,
    )
    order = np.concatenate([np.flatnonzero(m) for m in splits])
    n_epochs = min(len(c) for c in curves)  # epoch 0 (gate 0) .. last epoch every split ran
    pooled = [np.concatenate([c[e] for c in curves]) for e in range(n_epochs)]
    y_net, tf_net = labels.label[order], labels.tf[order]
    curve_auprc = [auprc(y_net, p) for p in pooled]
    net_epoch = int(np.argmax(curve_auprc[1:])) + 1 if n_epochs > 1 else 0
    net_gain, net_se = (
        auprc_gain_se(tf_net, y_net, pooled[net_epoch], pooled[0], boot, config.n_bootstrap)
        if net_epoch
        else (0.0, float("inf"))
    )
    use_network = (
        net_epoch > 0
        and net_gain > SE_MULTIPLE * net_se + GAIN_TOLERANCE
        and net_gain > MIN_NETWORK_GAIN * curve_auprc[0]
    )
    log.info(
        "network on %d split(s): held-out AUPRC %.4f at gate 0, %.4f at its best epoch %d "
        "(gain %.4f, SE %.4f): %s",
        len(splits),
        curve_auprc[0],
        curve_auprc[net_epoch],
        net_epoch,
        net_gain,
        net_se,
        "network kept" if use_network else "gate set to 0 (skip read-out only)",
    )
    return _NetworkChoice(
        epoch=net_epoch,
        use=use_network,
        histories=histories,
        states=states,
        train_tfs=train_tfs,
        val_tfs=val_tfs,
        selection={
            "network_splits": len(splits),
            "network_val_auprc": curve_auprc,
            "network_epoch": net_epoch,
            "network_gain": net_gain,
            "network_gain_se": net_se,
            "network": use_network,
        },
    )


def _train_on_splits(
    builder: ImageBuilder,
    labels: PairLabels,
    splits: list[NDArray[np.bool_]],
    skip: SkipChoice,
    *,
    model_config: GRNConfig,
    config: TrainConfig,
    rng: np.random.Generator,
    init_network: Mapping[str, torch.Tensor] | None = None,
) -> tuple[list[list[dict[str, float]]], list[list[NDArray[np.float64]]], list[dict[str, Any]]]:
    """Per validation mask of ``splits``: a fresh network on the skip fitted to the other TFs,
    trained on them (early stopping only with a single split); returns each split's history,
    held-out predictions per epoch (epoch 0: gate 0) and best state."""

    width = model_config.n_pair_features
    histories, curves, states = [], [], []
    for val_mask in splits:
        train, val = labels.subset(~val_mask), labels.subset(val_mask)
        model = new_network(model_config, builder, init_network)
        use_labels(builder, train)
        features = feature_matrix(builder, labels, width)
        w, b = skip_weights(skip, features[~val_mask], train.label)
        _set_skip(model, w, b)
        history, preds, _, best_state = _train_epochs(
            model,
            builder,
            train,
            val,
            epochs=config.epochs,
            config=config,
            rng=rng,
            patience=config.patience if len(splits) == 1 else None,
        )
        histories.append(history)
        curves.append(preds)
        states.append(best_state)
    return histories, curves, states


def _final_model(
    builder: ImageBuilder,
    labels: PairLabels,
    skip: SkipChoice,
    network: _NetworkChoice,
    *,
    model_config: GRNConfig,
    config: TrainConfig,
    rng: np.random.Generator,
    init_network: Mapping[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Step 3 of :func:`fit`: keep the network trained on one split, refit one chosen on the
    inner folds on every training TF, or set the skip read-out on every training TF (gate 0).
    From here on the label features come from every training TF."""

    use_labels(builder, labels)
    features = feature_matrix(builder, labels, model_config.n_pair_features)
    # the refit trains this model; the other branches overwrite every weight from a state
    model = new_network(model_config, builder, init_network)
    history = network.histories[0]
    if network.use and len(network.states) == 1:
        model.load_state_dict(network.states[0])
        kept_train_tfs, kept_val_tfs = network.train_tfs, network.val_tfs
    elif network.use:
        w, b = skip_weights(skip, features, labels.label)
        _set_skip(model, w, b)
        history, _, _, state = _train_epochs(
            model,
            builder,
            labels,
            None,
            epochs=network.epoch,
            config=config,
            rng=rng,
            patience=None,
        )
        model.load_state_dict(state)
        kept_train_tfs, kept_val_tfs = np.unique(labels.tf).tolist(), []
    else:
        # the trained network stays in the model but contributes nothing (gate 0): scoring reads
        # the read-out alone (scregnet.grn.api.iter_scores)
        model.load_state_dict(network.states[0])
        w, b = skip_weights(skip, features, labels.label)
        _set_skip(model, w, b)
        kept_train_tfs, kept_val_tfs = np.unique(labels.tf).tolist(), []
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    return TrainResult(
        model=model,
        history=history,
        best_epoch=network.epoch if network.use else 0,
        train_tfs=kept_train_tfs,
        val_tfs=kept_val_tfs,
    )
