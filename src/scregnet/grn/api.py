"""Scoring every TF x candidate target, streamed, and the ``scregnet grn train|score|merge`` API."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from scregnet.errors import InputError
from scregnet.grn.config import (
    NEGATIVE_RATIO,
    PRIOR_THRESHOLD,
    PRIOR_WINDOW,
    SCORE_BATCH_SIZE,
    usable_neighbours,
)
from scregnet.grn.edges import EdgeScores, write_outputs

if TYPE_CHECKING:
    import torch

    from scregnet.grn.config import GRNConfig, TrainConfig
    from scregnet.grn.data import ExpressionViews
    from scregnet.grn.images import ImageBuilder
    from scregnet.grn.model import DeepMCL
    from scregnet.grn.trained import TrainedGRN

log = logging.getLogger(__name__)


def readout_name(selection: dict[str, Any], n_pair_features: int) -> str:
    """In words, which read-out of the trained model produces its scores.

    ``selection``: :attr:`scregnet.grn.train.TrainResult.selection`; ``n_pair_features``: the
    model's feature width (0: DeepMCL as published).
    """
    from scregnet.grn.config import N_PAIR_FEATURES

    if n_pair_features == 0:
        return "DeepMCL network (published architecture)"
    inputs = "pair features" if n_pair_features == N_PAIR_FEATURES else "pair and label features"
    if selection.get("mode") != "held-out selection":
        return f"DeepMCL network + |Spearman| skip trained together ({inputs})"
    skip = {
        "spearman": "|Spearman|",
        "metacell": "|metacell r|",
        "prior": "target prior (ties broken by |Pearson r|)",
        "prior_x_rho": "target prior x |Spearman|",
        "sim_prior": "similarity-weighted target prior (ties broken by |Pearson r|)",
        "sim_prior_x_rho": "similarity-weighted target prior x |Spearman|",
        "loglinear": "log-linear target prior x |r| x similarity-weighted prior",
        "logistic": f"logistic regression on {inputs}",
    }[selection["skip"]]
    if selection.get("tf_degree"):
        from scregnet.grn.label_features import DEGREE_COVARIATES, GENE_STATISTICS

        covariates = ", ".join(
            GENE_STATISTICS[c] for c in DEGREE_COVARIATES[selection["tf_degree"]]
        )
        skip += f", plus the TF's predicted out-degree (from its {covariates})"
    if selection.get("network"):
        return f"{skip} + DeepMCL network (gated, {inputs})"
    if selection.get("network_trained") is False:
        return f"{skip} (read-out alone, network not trained)"
    return f"{skip} (network gate 0)"


def iter_scores(
    model: DeepMCL,
    builder: ImageBuilder,
    tfs: Sequence[int],
    *,
    targets: Sequence[int] | None = None,
    batch_size: int = SCORE_BATCH_SIZE,
) -> Iterator[tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64], NDArray[np.float32]]]:
    """Yield ``(tf, target, score, view_weights)`` batches for every TF x target (self excluded);
    scores are float64 probabilities (in float32 those near 1 tie pairs that the logits order).

    Only one batch of primary images exists at a time; neighbour images are embedded once per gene.
    A model whose network's gate is 0 (not kept, or not trained: ``TrainConfig.network`` False)
    scores by its skip read-out of the pair features alone: the same logit, no image built, and
    uniform view weights, since no view weighs in such a score. A batch that runs out of device
    memory is retried at half the size (:class:`~scregnet.device.FittingBatch`).
    """
    import torch

    from scregnet.device import FittingBatch
    from scregnet.grn.train import neighbour_embeddings, network_off

    model.eval()
    cand = np.arange(builder.n_genes) if targets is None else np.asarray(targets, dtype=np.intp)
    neigh = (
        None
        if network_off(model)
        else neighbour_embeddings(
            model, builder, genes=np.concatenate([cand, np.asarray(tfs, dtype=np.intp)])
        )
    )
    fit = FittingBatch(batch_size, "grn score")
    with torch.no_grad():
        for t in tfs:
            tg_all = cand[cand != t]
            yield from fit.over(
                tg_all.size,
                functools.partial(_score_batch, model, builder, neigh, int(t), tg_all),
            )


def _score_batch(
    model: DeepMCL,
    builder: ImageBuilder,
    neigh: torch.Tensor | None,
    tf: int,
    targets: NDArray[np.intp],
    part: slice,
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64], NDArray[np.float32]]:
    """One batch of :func:`iter_scores`: TF ``tf`` against ``targets[part]``."""
    import torch

    from scregnet.device import autocast
    from scregnet.grn.train import forward_pairs, readout_logit

    device = builder.device
    tg = torch.as_tensor(targets[part], device=device)
    a = torch.full_like(tg, tf)
    if neigh is None:
        logit = readout_logit(model, builder, a, tg)
        n_views = len(builder.views)
        weights = torch.full((tg.shape[0], n_views), 1.0 / n_views)
    else:
        with autocast(device):
            out = forward_pairs(model, builder, a, tg, neigh)
        logit, weights = out.logit, out.view_weights
    return (
        np.full(tg.shape[0], tf, dtype=np.intp),
        tg.cpu().numpy().astype(np.intp),
        torch.sigmoid(logit.double()).cpu().numpy(),
        weights.float().cpu().numpy(),
    )


def score_all(
    model: DeepMCL,
    builder: ImageBuilder,
    genes: list[str],
    views: list[str],
    tfs: Sequence[int],
    *,
    targets: Sequence[int] | None = None,
    batch_size: int = SCORE_BATCH_SIZE,
) -> EdgeScores:
    """Collect :func:`iter_scores` into compact arrays (scores only, never the images)."""
    from tqdm import tqdm

    start = time.perf_counter()
    parts = list(
        tqdm(
            iter_scores(model, builder, tfs, targets=targets, batch_size=batch_size),
            desc="scoring",
            unit="batch",
            disable=not log.isEnabledFor(logging.INFO) or None,
        )
    )
    elapsed = time.perf_counter() - start
    if not parts:
        msg = "nothing to score: no TF has a candidate target"
        raise InputError(msg)
    tf, target, score, weights = (np.concatenate(p) for p in zip(*parts, strict=True))
    log.info(
        "scored %d pairs of %d TFs in %.1f s (%.0f pairs/s)",
        score.size,
        len(tfs),
        elapsed,
        score.size / max(elapsed, 1e-9),
    )
    return EdgeScores(
        genes=genes,
        views=views,
        tf=tf,
        target=target,
        score=score.astype(np.float64),
        view_weights=weights.astype(np.float32),
        info={"score_seconds": elapsed, "pairs_per_second": score.size / max(elapsed, 1e-9)},
    )


def resolve_tfs(
    names: Sequence[str], genes: Sequence[str], *, source: str | None = None
) -> list[int]:
    """Gene indices of the TFs that are genes of the expression data. Those absent are logged
    (a TF database lists TFs that a data set lacks or names otherwise); none present is an
    :class:`InputError` naming ``source``."""
    from scregnet.grn.data import case_hint

    index = {g: i for i, g in enumerate(genes)}
    absent = [t for t in names if t not in index]
    listed = f"{', '.join(absent[:20])}{' ...' if len(absent) > 20 else ''}"
    hint = case_hint(absent, genes)
    if len(absent) == len(names):
        msg = f"none of the {len(absent)} TF(s) is a gene of the expression data: {listed}{hint}"
        raise InputError(msg, source)
    if absent:
        log.warning(
            "%s: %d of %d TF(s) are not genes of the expression data and are not scored: %s%s",
            source,
            len(absent),
            len(names),
            listed,
            hint,
        )
    return sorted({index[t] for t in names if t in index})


def tfs_file(spec: str | None) -> Path | None:
    """The file ``--tfs`` names, or ``None`` when it is a list of names (or not given)."""
    if not spec:
        return None
    try:
        return Path(spec) if Path(spec).is_file() else None
    except OSError:  # e.g. a long comma-separated list is too long for a file name
        return None


def read_tf_list(spec: str) -> list[str]:
    """``--tfs``: a file with one TF per line, or a comma-separated list (a single name without a
    comma is a TF unless it looks like a file name)."""
    path = tfs_file(spec)
    if path is not None:
        from scregnet.io.text import read_text

        names = [ln.split("\t")[0].strip() for ln in read_text(path).splitlines()]
        names = [n for n in names if n and not n.startswith("#")]
        if not names:
            msg = "TF list is empty"
            raise InputError(msg, path)
        return names
    names = [n.strip() for n in spec.split(",") if n.strip()]
    looks_like_file = "/" in spec or spec.endswith((".txt", ".tsv", ".csv"))
    if not names or (len(names) == 1 and looks_like_file):
        msg = "TF list file does not exist"
        raise InputError(msg, spec)
    return names


def train_grn(
    rna: Sequence[str | Path],
    *,
    out: str | Path,
    labels: str | Path | None = None,
    prior: str | Path | Sequence[str | Path] | None = None,
    gtf: str | Path | None = None,
    layer: str | None = None,
    device: str = "auto",
    seed: int = 0,
    threads: int = 1,
    model_config: GRNConfig | None = None,
    train_config: TrainConfig | None = None,
    prior_window: int = PRIOR_WINDOW,
    prior_threshold: float = PRIOR_THRESHOLD,
    negative_ratio: float = NEGATIVE_RATIO,
    data: ExpressionViews | None = None,
) -> TrainedGRN:
    """Read views, build labels, train with held-out model selection, write the model to ``out``
    (:mod:`scregnet.grn.trained`) and return it."""
    from scregnet.device import resolve_device, torch_threads
    from scregnet.grn.config import GRNConfig, TrainConfig
    from scregnet.grn.data import PairLabels, label_pairs, read_views
    from scregnet.grn.images import ImageBuilder
    from scregnet.grn.train import fit
    from scregnet.grn.trained import TrainedGRN, save
    from scregnet.io.atomic import atomic_paths, check_writable_dir
    from scregnet.seed import seed_everything

    if (labels is None) == (prior is None):
        msg = "give exactly one of --labels or --prior"
        raise InputError(msg)
    if prior is not None and gtf is None:
        msg = "--prior needs --gtf (gene TSSs)"
        raise InputError(msg)
    check_writable_dir(Path(out).parent)
    start = time.perf_counter()
    rng = seed_everything(seed)
    dev = resolve_device(device)
    model_config = model_config or GRNConfig()
    train_config = train_config or TrainConfig()
    if data is None:
        data = read_views(rna, layer=layer)
    genes = data.genes
    k = usable_neighbours(model_config.n_neighbours, len(genes))
    if k != model_config.n_neighbours:
        # the network is built for as many neighbour images as the builder makes
        log.warning(
            "--neighbours %d: only %d other genes per gene; using %d neighbour images",
            model_config.n_neighbours,
            len(genes) - 1,
            k,
        )
        model_config = replace(model_config, n_neighbours=k)

    frame, source, binding = _label_frame(
        labels,
        prior,
        gtf,
        genes,
        prior_window=prior_window,
        prior_threshold=prior_threshold,
        negative_ratio=negative_ratio,
        rng=rng,
    )
    tf_idx, tg_idx, y = label_pairs(frame, genes, source=source)
    pairs = PairLabels(tf_idx, tg_idx, y)
    with torch_threads(threads):
        builder = ImageBuilder.for_model(data, model_config, device=dev, seed=seed)
        result = fit(builder, pairs, model_config=model_config, config=train_config, rng=rng)
    trained = TrainedGRN(
        model=result.model,
        genes=list(genes),
        views=list(data.views),
        labels=pairs,
        # the layer actually read, so that scoring reads the same one (or refuses files without it)
        layer=data.layer if data.layer is not None else layer,
        seed=seed,
        supervision="labels" if binding is None else "prior",
        prior_tfs=[] if binding is None else list(binding[0]),
        prior_window=prior_window,
        method=readout_name(result.selection, model_config.n_pair_features),
        record={
            "best_epoch": result.best_epoch,
            "history": result.history,
            "val_tfs": [genes[i] for i in result.val_tfs],
            "n_train_pairs": len(pairs),
            "selection": result.selection,
        },
    )
    with atomic_paths(Path(out)) as (tmp,):
        save(trained, tmp)
    log.info("published score: %s", trained.method)
    log.info("wrote the trained model to %s in %.1f s", out, time.perf_counter() - start)
    return trained


def score_grn(
    model: str | Path,
    rna: Sequence[str | Path],
    *,
    out: str | Path,
    attention_out: str | Path | None = None,
    prior: str | Path | Sequence[str | Path] | None = None,
    gtf: str | Path | None = None,
    tfs: Sequence[str] | None = None,
    shard: tuple[int, int] | None = None,
    device: str = "auto",
    threads: int = 1,
    score_batch_size: int = SCORE_BATCH_SIZE,
    data: ExpressionViews | None = None,
) -> EdgeScores:
    """Score every TF (``tfs``, default the labelled ones) x gene with the model ``train_grn``
    wrote, on the views it was trained on.

    Without ``shard``: the ranked edges (with ``--prior``, the rank mean with the binding) and
    the attention. With ``shard = (k, n)``: the k-th of n groups of the TFs, unranked
    (:mod:`scregnet.grn.shards`), for :func:`merge_grn`.
    """
    from scregnet.device import resolve_device, torch_threads
    from scregnet.grn.data import read_views
    from scregnet.grn.images import ImageBuilder
    from scregnet.grn.readout import use_labels
    from scregnet.grn.shards import shard_tfs, tf_digest, write_shard
    from scregnet.grn.trained import digest, load
    from scregnet.io.atomic import check_writable_dir

    for target in (out, attention_out):
        if target is not None:
            check_writable_dir(Path(target).parent)
    start = time.perf_counter()
    model_digest = digest(model) if shard is not None else ""
    trained = load(model)
    if shard is not None and digest(model) != model_digest:  # the shard names what it scored with
        msg = "the model file changed while it was read; score again once it is written"
        raise InputError(msg, model)
    if trained.supervision == "prior" and (prior is None or gtf is None):
        msg = (
            "this model was trained on binding priors: its published score combines them, so "
            "give the same --prior files and --gtf"
        )
        raise InputError(msg, model)
    if trained.supervision == "labels" and prior is not None:
        msg = "this model was trained on --labels: its score takes no --prior"
        raise InputError(msg, model)
    if data is None:
        data = read_views(rna, layer=trained.layer)
    trained.check_views(data, rna[0] if rna else None)
    genes = data.genes
    score_tfs = resolve_tfs(tfs, genes, source="--tfs") if tfs else trained.label_tfs
    every_tf = tf_digest(score_tfs, genes)
    if shard is not None:
        score_tfs = shard_tfs(score_tfs, *shard)
    _warn_unexpressed(data, score_tfs)
    binding = _binding(trained, prior, gtf, genes) if prior is not None else None
    dev = resolve_device(device)
    with torch_threads(threads):
        if score_tfs:
            builder = ImageBuilder.for_model(
                data, trained.model.config, device=dev, seed=trained.seed
            )
            use_labels(builder, trained.labels)
            scores = score_all(
                trained.model.to(dev),
                builder,
                genes,
                data.views,
                score_tfs,
                batch_size=score_batch_size,
            )
        else:
            log.info("shard %d/%d has no TF to score", *(shard or (0, 0)))
            scores = EdgeScores.empty(genes, data.views)
    scores.method = trained.method
    scores.info.update(trained.record)
    if binding is not None:
        scores.attach_binding(*binding)
    if shard is not None:
        write_shard(scores, out, shard=shard, model=model_digest, tfs=every_tf)
    else:
        finish(scores, out, attention_out)
    log.info("GRN scoring finished in %.1f s", time.perf_counter() - start)
    return scores


def _warn_unexpressed(data: ExpressionViews, tfs: Sequence[int]) -> None:
    """A warning naming the TFs to score whose expression is the same in every cell of every
    view (most often: no cell expresses them): their pairs carry no expression evidence, so they
    rank by what the read-out knows without it (or tie)."""
    silent = [data.genes[t] for t in tfs if not any(np.ptp(e[:, t]) > 0 for e in data.expr)]
    if silent:
        log.warning(
            "%d TF(s) to score have the same expression in every cell (most often none): %s; "
            "their pairs carry no expression evidence",
            len(silent),
            ", ".join(silent[:20]) + (" ..." if len(silent) > 20 else ""),
        )


def merge_grn(
    shards: Sequence[str | Path], *, out: str | Path, attention_out: str | Path | None = None
) -> EdgeScores:
    """The ranked edges (and attention) of every shard ``score_grn`` wrote for one model."""
    from scregnet.grn.shards import read_shards

    scores = read_shards(shards)
    finish(scores, out, attention_out)
    return scores


def finish(scores: EdgeScores, out: str | Path, attention_out: str | Path | None = None) -> None:
    """The published score (the rank mean with the binding, where there is one), ranked, written."""
    log.info("published score: %s", scores.method)
    if scores.binding is not None:
        scores.combine_with_binding()
    write_outputs(scores, out, attention_out)


def _binding(
    trained: TrainedGRN,
    prior: str | Path | Sequence[str | Path],
    gtf: str | Path | None,
    genes: Sequence[str],
) -> tuple[list[str], NDArray[np.float32]]:
    """The binding prior's TFs and ``(tfs, genes)`` matrix, as at training (its TSS window);
    an :class:`InputError` when its TFs are not those the model was trained on."""
    from scregnet.grn.priors import combined_prior
    from scregnet.io.gtf import read_tss

    assert gtf is not None
    priors = [prior] if isinstance(prior, str | Path) else list(prior)
    tfs, matrix = combined_prior(
        priors, read_tss(gtf), genes, window=trained.prior_window, tss_path=gtf
    )
    if list(tfs) != trained.prior_tfs:
        msg = (
            f"the binding priors have the TFs {', '.join(tfs[:10])}{' ...' if len(tfs) > 10 else ''} "
            "where the model was trained on others: give the priors it was trained on"
        )
        raise InputError(msg, priors[0])
    return list(tfs), matrix


def _label_frame(
    labels: str | Path | None,
    prior: str | Path | Sequence[str | Path] | None,
    gtf: str | Path | None,
    genes: Sequence[str],
    *,
    prior_window: int,
    prior_threshold: float,
    negative_ratio: float,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, str | Path, tuple[list[str], NDArray[np.float32]] | None]:
    """The training pairs (``tf target label``) from ``labels`` or from the binding ``prior``
    near TSSs, the file they came from, and the prior's TFs and (genes x TFs) binding (None with
    ``labels``)."""
    from scregnet.grn.data import read_labels

    if labels is not None:
        return read_labels(labels), labels, None
    from scregnet.grn.priors import combined_prior, prior_labels
    from scregnet.io.gtf import read_tss

    assert prior is not None and gtf is not None
    priors = [prior] if isinstance(prior, str | Path) else list(prior)
    prior_tfs, matrix = combined_prior(
        priors, read_tss(gtf), genes, window=prior_window, tss_path=gtf
    )
    frame = prior_labels(
        prior_tfs,
        matrix,
        genes,
        threshold=prior_threshold,
        negative_ratio=negative_ratio,
        rng=rng,
    )
    if frame.empty:
        msg = (
            f"no TF is bound (probability >= {prior_threshold}) within {prior_window} bp of any TSS"
        )
        raise InputError(msg, priors[0])
    return frame, priors[0], (prior_tfs, matrix)
