"""``impute(adata, *, bulk=None, ...)``: scDTL-style imputation of an AnnData of raw counts.

The result keeps ``X`` untouched and adds ``layers['imputed']``: log1p(counts per 10k) (see
:mod:`scregnet.impute.data` for the normalisation) with the model's output for the modelled genes
(``var['imputed'] == True``: detected genes, shared with the bulk matrix when one is given, the
``n_top_genes`` most variable) and the observed log-normalised values for the others.
``uns['scregnet_impute']`` records what was done.

What the values mean. The network predicts each cell's expected expression (the mean of a
negative binomial count model, trained on the cells' own molecules, see
:mod:`scregnet.impute.train`); every layer is computed from that one prediction for the modelled
genes:

- ``imputed`` (the headline layer): log1p of the expected expression in counts per 10k, for
  every entry (observed non-zeros included: the model denoises them too).
- ``imputed_expected``: the expected log-normalised value of a count drawn at the cell's own
  depth from that expression, ``E[log1p(TARGET_SUM * N / library)]``, ``N ~ Poisson(expected
  counts)`` (:func:`scregnet.stats.expected_log1p`): genes the cell would rarely detect
  stay near 0, which keeps co-expression (what the GRN stage reads,
  :data:`scregnet.grn.data.DEFAULT_LAYERS`).
- ``imputed_detected``: the same expectation given that the count is non-zero (the value the
  entry takes when detected at the cell's depth).
- ``baseline_fill_rule`` (a baseline, not the model): the earlier post-hoc fill rule with no
  network, :func:`fill_rule_values`.

docs/benchmarks.md scores the headline by molecular cross-validation on real counts
(CellBench) against MAGIC, kNN smoothing, scVI and no imputation.
:func:`write_outputs` writes the h5ad, the
checkpoint (``.model.pt``) and the per-epoch loss table (``.loss.tsv``) together, atomically.
"""

from __future__ import annotations

import csv
import inspect
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from scregnet import keys
from scregnet.errors import InputError
from scregnet.impute import data
from scregnet.impute.config import (
    DEVICE,
    MIN_TRAINING_CELLS,
    N_TOP_GENES,
    NEIGHBOUR_CANDIDATES,
    PSEUDOBULK_MIN_LOCAL_GAIN,
    ImputeConfig,
    TrainConfig,
)
from scregnet.impute.train import LOSS_COLUMNS, kept_epoch
from scregnet.stats import expected_log1p

if TYPE_CHECKING:
    import anndata as ad
    import torch

    from scregnet.impute.model import ScDTL

log = logging.getLogger(__name__)

#: the checkpoint (:mod:`scregnet.checkpoint` format) kind and layout; version 4: negative
#: binomial output (per-gene dispersion log_theta) with the fitted per-gene output scale
#: (log_gene_scale)
CHECKPOINT_KIND = "scregnet.impute"
CHECKPOINT_VERSION = 4
#: random-walk steps on the kNN graph behind the fill rule's detection probability, and the
#: power of that probability weighing each zero's fill value
DETECTION_STEPS = 3
EVIDENCE_POWER = 0.5
#: a dense layer above this many entries (1 GB of float32) is stored as CSR instead
DENSE_LIMIT = 250_000_000
#: cells used to order genes for the U-Net (a random subset of larger data sets)
GENE_ORDER_CELLS = 5000


@dataclass
class ImputeResult:
    """What :func:`impute` returns: the annotated copy, the model and its training record."""

    adata: ad.AnnData
    model: ScDTL
    genes: list[str]
    config: dict[str, Any]
    losses: list[dict[str, object]] = field(default_factory=list)
    trained: bool = True


def sidecar_paths(out: str | Path) -> tuple[Path, Path]:
    """``S.imputed.h5ad`` -> (``S.imputed.model.pt``, ``S.imputed.loss.tsv``)."""
    out = Path(out)
    stem = out.name[: -len(".h5ad")] if out.name.endswith(".h5ad") else out.name
    return out.with_name(f"{stem}.model.pt"), out.with_name(f"{stem}.loss.tsv")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate a checkpoint written by :func:`write_outputs`."""
    from scregnet import checkpoint

    ckpt = checkpoint.load(path, CHECKPOINT_KIND, CHECKPOINT_VERSION)
    if "genes" not in ckpt:
        msg = "imputation checkpoint has no gene list"
        raise InputError(msg, path)
    return ckpt


def _model_from_checkpoint(ckpt: dict[str, Any], path: str | Path | None) -> ScDTL:
    from scregnet import checkpoint
    from scregnet.impute.model import ScDTL

    return checkpoint.restore(lambda: ScDTL(ImputeConfig(**ckpt["config"]["model"])), ckpt, path)


def _check_genes(model_genes: list[str], var_names: pd.Index, path: str | Path | None) -> None:
    missing = [g for g in model_genes if g not in set(var_names)]
    if missing:
        shown = ", ".join(missing[:3])
        msg = (
            f"checkpoint genes do not match the input: {len(missing)} of its {len(model_genes)} "
            f"genes are absent from the single cells (e.g. {shown})"
        )
        raise InputError(msg, path)


@dataclass
class _Fitted:
    """A trained or loaded model and what inference needs: the modelled genes (model input order),
    their columns in the input, their counts and the neighbour pool."""

    model: ScDTL
    genes: list[str]
    cols: NDArray[np.intp]
    counts: sp.csr_matrix
    pool: sp.csr_matrix | None
    config: dict[str, Any]
    losses: list[dict[str, object]] = field(default_factory=list)
    trained: bool = True


def impute(
    adata: ad.AnnData,
    *,
    bulk: pd.DataFrame | str | Path | None = None,
    layer: str | None = None,
    checkpoint: str | Path | None = None,
    n_top_genes: int | None = N_TOP_GENES,
    genes: list[str] | None = None,
    epochs: int = TrainConfig.epochs,
    batch_size: int = TrainConfig.batch_size,
    hidden_dim: int = ImputeConfig.hidden_dim,
    latent_dim: int = ImputeConfig.latent_dim,
    use_bulk: bool | None = None,
    use_unet: bool = ImputeConfig.use_unet,
    use_neighbours: bool = ImputeConfig.use_neighbours,
    n_neighbours: int = ImputeConfig.n_neighbours,
    device: str = DEVICE,
    seed: int = 0,
    threads: int | None = None,
    train_options: dict[str, Any] | None = None,
    model_options: dict[str, Any] | None = None,
    progress: bool = False,
    path: str | Path | None = None,
) -> ImputeResult:
    """Impute dropouts in ``adata`` (raw counts) with the scDTL-style model.

    Parameters
    ----------
    adata
        Cells x genes raw counts in ``X`` (or ``layers[layer]``). Not modified.
    bulk
        Bulk RNA counts (genes x samples DataFrame, or a TSV path, see
        :func:`scregnet.impute.data.read_bulk_tsv`). ``None``: pseudobulk of the cells' own
        k-means clusters is the bulk domain (logged).
    checkpoint
        A checkpoint from an earlier run: skip training and impute with it (its genes must all be
        present in ``adata``).
    n_top_genes
        Model at most this many genes (most variable among the detected, bulk-shared genes).
    genes
        Model exactly these genes (the detected ones among them) instead of choosing them by
        variability; every name must be in ``adata.var_names``.
    use_bulk
        The bulk stage (bulk pretraining and the MMD adaptation): ``None`` runs it on ``bulk``
        when given; without it, on the cells' pseudobulk unless, in the neighbour choice,
        smoothing over more neighbours predicts held-out molecules about as well as the fewest
        or better (:data:`scregnet.impute.config.PSEUDOBULK_MIN_LOCAL_GAIN`: shallow or noisy
        cells, where that stage lowered accuracy). ``True`` always runs it, ``False`` never.
    use_unet, use_neighbours
        Ablations: ``use_unet=False`` drops the U-Net branch; ``use_neighbours=False`` drops the
        neighbour channel (our extension; the paper's single-channel network).
    n_neighbours
        Neighbours pooled into the neighbour channel (found among the cells of ``adata``); 0
        chooses it among :data:`scregnet.impute.config.NEIGHBOUR_CANDIDATES` by the loss of kNN
        smoothing on held-out molecules (:func:`scregnet.impute.data.choose_neighbours`).
    train_options, model_options
        Extra fields of :class:`~scregnet.impute.train.TrainConfig` /
        :class:`~scregnet.impute.model.ImputeConfig`.
    """
    from scregnet.device import resolve_device, torch_threads
    from scregnet.impute.train import predict
    from scregnet.seed import seed_everything

    # a config field that is also a keyword of this function (or set from the data: n_genes)
    # has one place to be given: the keyword
    own = {*inspect.signature(impute).parameters, "n_genes"}
    clash = sorted((set(model_options or {}) | set(train_options or {})) & own)
    if clash:
        msg = f"{', '.join(clash)}: give as impute() keywords, not in model_options/train_options"
        raise ValueError(msg)
    if n_top_genes is not None and n_top_genes < 2:
        msg = f"n_top_genes must be >= 2 (the model needs at least 2 genes), got {n_top_genes}"
        raise ValueError(msg)
    start = time.perf_counter()
    torch_device = resolve_device(device)
    counts_all = data.get_counts(adata, layer=layer, path=path)
    library = data.library_sizes(counts_all)
    log.info(
        "read %d cells x %d genes (%d non-zero counts%s)",
        adata.n_obs,
        adata.n_vars,
        counts_all.nnz,
        f", layer {layer!r}" if layer else "",
    )
    # the one seeding: data preparation draws from ``rng`` only, so the network's initial weights
    # (torch's global generator) depend on the seed alone
    rng = seed_everything(seed)
    with torch_threads(threads):
        if checkpoint is not None:
            fitted = _load_model(checkpoint, adata.var_names, counts_all, library)
        else:
            if adata.n_obs < MIN_TRAINING_CELLS:
                log.warning(
                    "%s: training on %d cells; the model and its neighbour graph are fitted on "
                    "the cells given, and fewer than %d make the imputed values unreliable",
                    path or "the cells",
                    adata.n_obs,
                    MIN_TRAINING_CELLS,
                )
            genes_in, cols, counts, bulk_frame = _training_genes(
                counts_all, adata.var_names, library, rng, bulk, genes, n_top_genes, path
            )
            mcfg, neighbour_losses = _with_neighbours(
                ImputeConfig(
                    n_genes=len(genes_in),
                    hidden_dim=hidden_dim,
                    latent_dim=latent_dim,
                    use_unet=use_unet,
                    use_neighbours=use_neighbours,
                    n_neighbours=n_neighbours,
                    **(model_options or {}),
                ),
                counts,
                seed,
            )
            domain, bulk_source = _bulk_domain(
                bulk_frame,
                genes_in,
                counts,
                library,
                rng,
                use_bulk=use_bulk,
                neighbour_losses=neighbour_losses,
            )
            prepared = _TrainingData(genes_in, cols, counts, domain, bulk_source)
            tcfg = TrainConfig(
                epochs=epochs,
                batch_size=batch_size,
                use_bulk=domain is not None,
                **(train_options or {}),
            )
            fitted = _train_model(
                mcfg, tcfg, prepared, library, device=torch_device, seed=seed, progress=progress
            )
        t_inf = time.perf_counter()
        imputed = predict(
            fitted.model, fitted.counts, library, pool=fitted.pool, device=torch_device
        )
        n_cells = fitted.counts.shape[0]
        log.info("inference: %d cells in %.1f s", n_cells, time.perf_counter() - t_inf)
    out = _annotated(adata, counts_all, library, fitted, imputed)
    out.uns[keys.IMPUTE_UNS] = _record(fitted, layer, seed)
    log.info("imputation finished in %.1f s", time.perf_counter() - start)
    return ImputeResult(
        adata=out,
        model=fitted.model,
        genes=fitted.genes,
        config=fitted.config,
        losses=fitted.losses,
        trained=fitted.trained,
    )


class _TrainingData(NamedTuple):
    """What a new model is trained on: the modelled genes (input order), their columns in the
    input, their counts and the bulk domain (counts, libraries; ``None`` without bulk)."""

    genes: list[str]
    cols: NDArray[np.intp]
    counts: sp.csr_matrix
    bulk: tuple[NDArray[np.floating], NDArray[np.floating]] | None
    bulk_source: str


def _training_genes(
    counts_all: sp.csr_matrix,
    var_names: pd.Index,
    library: NDArray[np.floating],
    rng: np.random.Generator,
    bulk: pd.DataFrame | str | Path | None,
    genes: list[str] | None,
    n_top_genes: int | None,
    path: str | Path | None,
) -> tuple[list[str], NDArray[np.intp], sp.csr_matrix, pd.DataFrame | None]:
    """The genes chosen and ordered, their columns in the input, their counts, and the bulk
    matrix read (``None`` without one)."""
    bulk_frame = data.read_bulk_tsv(bulk) if isinstance(bulk, str | Path) else bulk
    bulk_path = bulk if isinstance(bulk, str | Path) else None
    chosen = _choose_genes(counts_all, var_names, bulk_frame, bulk_path, genes, n_top_genes, path)
    genes, cols, counts = _order_genes(counts_all, var_names, chosen, library, rng)
    log.info("modelling %d genes", len(genes))
    return genes, cols, counts, bulk_frame


def _with_neighbours(
    mcfg: ImputeConfig, counts: sp.csr_matrix, seed: int
) -> tuple[ImputeConfig, dict[int, float] | None]:
    """``mcfg`` with its neighbour count chosen on held-out molecules when it is 0, and every
    candidate count's loss (``None`` when none was chosen: no neighbour channel, or a count
    given)."""
    if not mcfg.use_neighbours or mcfg.n_neighbours > 0:
        return mcfg, None
    k, scores = data.choose_neighbours(counts, NEIGHBOUR_CANDIDATES, n_pcs=mcfg.n_pcs, seed=seed)
    log.info(
        "neighbour channel: %d neighbours, chosen on held-out molecules (kNN smoothing loss %s)",
        k,
        ", ".join(f"k={n} {v:.4f}" for n, v in scores.items()),
    )
    return replace(mcfg, n_neighbours=k), scores


def _record(fitted: _Fitted, layer: str | None, seed: int) -> dict[str, Any]:
    """``uns['scregnet_impute']``: what was done."""
    return {
        "n_genes_modelled": len(fitted.genes),
        "bulk_source": str(fitted.config.get("bulk_source", "checkpoint")),
        "target_sum": data.TARGET_SUM,
        "layer": layer or "X",
        "trained": fitted.trained,
        "seed": seed,
        "epochs": sum(1 for r in fitted.losses if r["phase"] == "fuse"),
        "kept_epoch": kept_epoch(fitted.losses),
        "output": "negative binomial mean (log1p counts per 10k)",
        "gene_scale_fitted": bool(fitted.config.get("train", {}).get("gene_scale", False)),
        "baseline_layers": [keys.FILL_RULE],
    }


def _load_model(
    checkpoint: str | Path,
    var_names: pd.Index,
    counts_all: sp.csr_matrix,
    library: NDArray[np.floating],
) -> _Fitted:
    """The checkpoint's model, on its genes of the input (not trained further)."""
    ckpt = load_checkpoint(checkpoint)
    genes = list(ckpt["genes"])
    _check_genes(genes, var_names, checkpoint)
    model = _model_from_checkpoint(ckpt, checkpoint)
    config: dict[str, Any] = dict(ckpt["config"])
    config["checkpoint"] = str(checkpoint)
    cols = var_names.get_indexer(pd.Index(genes))
    counts = sp.csr_matrix(counts_all[:, cols])
    log.info("loaded checkpoint %s (%d genes); not training", checkpoint, len(genes))
    pool = _neighbour_pool(model.config, counts, library)
    return _Fitted(model, genes, cols, counts, pool, config, trained=False)


def _choose_genes(
    counts_all: sp.csr_matrix,
    var_names: pd.Index,
    bulk_frame: pd.DataFrame | None,
    bulk_path: str | Path | None,
    genes: list[str] | None,
    n_top_genes: int | None,
    path: str | Path | None,
) -> list[str]:
    """The genes to model: detected, shared with the bulk matrix, ``genes`` if given (all must
    be in the input) or else the ``n_top_genes`` most variable; at least 2."""
    candidates = list(var_names)
    if bulk_frame is not None:
        candidates = data.intersect_genes(
            candidates, list(bulk_frame.index), path=bulk_path, sc_path=path
        )
        shared_totals = np.asarray(
            counts_all[:, var_names.get_indexer(pd.Index(candidates))].sum(axis=0)
        ).ravel()
        data.check_bulk_samples(bulk_frame.loc[candidates], shared_totals, path=bulk_path)
    if genes is not None:
        missing = [g for g in genes if g not in set(var_names)]
        if missing:
            msg = f"{len(missing)} requested genes are not in the input (e.g. {missing[0]})"
            raise InputError(msg, path)
        wanted = set(genes)
        candidates = [g for g in candidates if g in wanted]
    cand_idx = var_names.get_indexer(pd.Index(candidates))
    chosen = data.select_variable_genes(
        sp.csr_matrix(counts_all[:, cand_idx]),
        candidates,
        None if genes is not None else n_top_genes,
    )
    if len(chosen) < 2:
        msg = f"only {len(chosen)} detected genes to model; need at least 2"
        raise InputError(msg, path)
    return chosen


def _order_genes(
    counts_all: sp.csr_matrix,
    var_names: pd.Index,
    chosen: list[str],
    library: NDArray[np.floating],
    rng: np.random.Generator,
) -> tuple[list[str], NDArray[np.intp], sp.csr_matrix]:
    """``chosen`` in the U-Net's input order (neighbours co-vary; ordered on at most
    :data:`GENE_ORDER_CELLS` random cells), their columns in the input and their counts."""
    cols = var_names.get_indexer(pd.Index(chosen))
    counts = sp.csr_matrix(counts_all[:, cols])
    sub = rng.choice(counts.shape[0], size=min(GENE_ORDER_CELLS, counts.shape[0]), replace=False)
    sub.sort()
    order = data.gene_order(data.normalize_log1p(counts[sub], library[sub]))
    return [chosen[i] for i in order], cols[order], sp.csr_matrix(counts[:, order])


def _bulk_domain(
    bulk_frame: pd.DataFrame | None,
    genes: list[str],
    counts: sp.csr_matrix,
    library: NDArray[np.floating],
    rng: np.random.Generator,
    *,
    use_bulk: bool | None,
    neighbour_losses: dict[int, float] | None,
) -> tuple[tuple[NDArray[np.floating], NDArray[np.floating]] | None, str]:
    """(bulk counts (samples x ``genes``), each sample's library) and its source: the bulk
    matrix, or else the pseudobulk of k-means clusters of the cells; ``None`` and why without
    a bulk stage (``use_bulk`` False; or ``use_bulk`` None, no bulk matrix and
    ``neighbour_losses``, the neighbour choice's losses, giving the fewest neighbours a
    :func:`data.local_smoothing_gain` below :data:`PSEUDOBULK_MIN_LOCAL_GAIN`). Keys of
    :data:`scregnet.keys.BULK_SOURCES`."""
    if use_bulk is False:
        return None, "none"
    if bulk_frame is not None:
        bulk_lib = bulk_frame.sum(axis=0).to_numpy(dtype=np.float64)
        counts_bulk = bulk_frame.loc[genes].to_numpy(dtype=np.float64).T
        log.info("bulk domain: %d bulk samples", counts_bulk.shape[0])
        return (counts_bulk, bulk_lib), "bulk"
    gain = data.local_smoothing_gain(neighbour_losses) if neighbour_losses else None
    if use_bulk is None and gain is not None and gain < PSEUDOBULK_MIN_LOCAL_GAIN:
        log.info(
            "no bulk matrix given and smoothing over more neighbours predicts held-out molecules "
            "about as well or better (the fewest gain %.2f %%, under %.2f %%: shallow or noisy "
            "cells): no pseudobulk stage",
            100 * gain,
            100 * PSEUDOBULK_MIN_LOCAL_GAIN,
        )
        return None, "shallow_cells"
    pb = data.cluster_pseudobulk(counts, library, rng=rng)
    log.info(
        "no bulk matrix given: using pseudobulk of %d k-means clusters of the "
        "cells (%d pseudobulk samples) as the bulk domain",
        pb.n_clusters,
        pb.counts.shape[0],
    )
    return (pb.counts, pb.library), "pseudobulk"


def _train_model(
    mcfg: ImputeConfig,
    tcfg: TrainConfig,
    prepared: _TrainingData,
    library: NDArray[np.floating],
    *,
    device: torch.device,
    seed: int,
    progress: bool,
) -> _Fitted:
    """A new model of ``mcfg`` trained by :func:`scregnet.impute.train.fit`, with its record."""
    from scregnet import __version__
    from scregnet.impute.model import ScDTL
    from scregnet.impute.train import fit

    genes, cols, counts, bulk, bulk_source = prepared
    pool = _neighbour_pool(mcfg, counts, library)
    model = ScDTL(mcfg)
    losses = fit(
        model,
        counts,
        library,
        bulk,
        tcfg,
        pool=pool,
        device=device,
        seed=seed,
        progress=progress,
    )
    config = {
        "model": mcfg.as_dict(),
        "train": tcfg.as_dict(),
        "bulk_source": bulk_source,
        "target_sum": data.TARGET_SUM,
        "seed": seed,
        "version": __version__,
    }
    return _Fitted(model, genes, cols, counts, pool, config, losses)


def _annotated(
    adata: ad.AnnData,
    counts_all: sp.csr_matrix,
    library: NDArray[np.floating],
    fitted: _Fitted,
    imputed: NDArray[np.float32],
) -> ad.AnnData:
    """A copy of ``adata`` with the imputed layers, the fill-rule baseline and ``var['imputed']``."""
    cols = fitted.cols
    out = adata.copy()
    observed = data.normalize_log1p_sparse(counts_all, library)  # shared by the layers
    expected, detected = expected_layers(imputed, library)
    out.layers[keys.IMPUTED] = _assemble_layer(observed, imputed, cols)
    out.layers[keys.IMPUTED_EXPECTED] = _assemble_layer(observed, expected, cols)
    del expected
    out.layers[keys.IMPUTED_DETECTED] = _assemble_layer(observed, detected, cols)
    del detected
    fill = fill_rule_values(fitted.counts, library, fitted.pool)
    out.layers[keys.FILL_RULE] = _assemble_layer(observed, fill, cols)
    del fill
    out.var[keys.IMPUTED] = np.isin(np.arange(adata.n_vars), cols)
    return out


def _neighbour_pool(
    mcfg: ImputeConfig, counts: sp.csr_matrix, library: NDArray[np.floating]
) -> sp.csr_matrix | None:
    """The neighbour pooling matrix for the model's input cells (None without that channel)."""
    if not mcfg.use_neighbours:
        return None
    t0 = time.perf_counter()
    nbrs = data.neighbour_graph(counts, library, k=mcfg.n_neighbours, n_pcs=mcfg.n_pcs)
    log.info(
        "neighbour channel: %d nearest neighbours per cell (%d PCs) in %.1f s",
        nbrs.shape[1],
        mcfg.n_pcs,
        time.perf_counter() - t0,
    )
    return data.neighbour_pool(nbrs)


def expected_layers(
    imputed: NDArray[np.float32], library: NDArray[np.floating]
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The expected-value and detected-value layers from the headline values (cells x genes).

    ``imputed`` is log1p of the expected expression in counts per 10k; at a cell's library ``L``
    the expected count is ``lam = expm1(imputed) * L / TARGET_SUM``. Expected layer:
    ``E[log1p(TARGET_SUM * N / L)]``, ``N ~ Poisson(lam)``; detected layer: the same given
    ``N > 0`` (expected / (1 - exp(-lam)), ``log1p(TARGET_SUM / L)`` as ``lam -> 0``).
    """
    lib = np.maximum(np.asarray(library, dtype=np.float64), 1.0)
    expected = np.empty(imputed.shape, dtype=np.float32)
    detected = np.empty(imputed.shape, dtype=np.float32)
    step = 4096
    for start in range(0, imputed.shape[0], step):
        rows = slice(start, start + step)
        scale = data.TARGET_SUM / lib[rows]
        lam = np.expm1(np.asarray(imputed[rows], dtype=np.float64)) / scale[:, None]
        exp_log = expected_log1p(lam, scale)
        p_detect = -np.expm1(-lam)
        single = np.broadcast_to(np.log1p(scale)[:, None], lam.shape)
        cond = np.where(p_detect > 1e-6, exp_log / np.maximum(p_detect, 1e-12), single)
        expected[rows] = exp_log
        detected[rows] = np.maximum(cond, exp_log)
    return expected, detected


def fill_rule_values(
    counts: sp.csr_matrix,
    library: NDArray[np.floating],
    pool: sp.csr_matrix | None,
) -> NDArray[np.float32]:
    """The ``baseline_fill_rule`` layer: a post-hoc fill rule with no network.

    Observed non-zeros keep their log-normalised values; each zero gets the gene's mean
    non-zero count at the cell's depth, ``log1p(mean * TARGET_SUM / library)``, x ``sqrt(p)``,
    ``p`` the probability that the cell detects the gene (:func:`detection_probability`). This
    was the earlier headline with a per-gene mean in place of the network's value; kept as a
    baseline.
    """
    csr = sp.csr_matrix(counts)
    n_detected = np.asarray((csr > 0).sum(axis=0), dtype=np.float64).ravel()
    total = np.asarray(csr.sum(axis=0), dtype=np.float64).ravel()
    mean_nz = np.where(n_detected > 0, total / np.maximum(n_detected, 1.0), 0.0)
    lib = np.maximum(np.asarray(library, dtype=np.float64), 1.0)
    values = np.log1p(mean_nz[None, :] * data.TARGET_SUM / lib[:, None]).astype(np.float32)
    observed = data.normalize_log1p_sparse(csr, lib)
    rows = np.repeat(np.arange(observed.shape[0]), np.diff(observed.indptr))
    values[rows, observed.indices] = observed.data
    return evidence_weighted_values(values, csr, pool)


def detection_probability(
    counts: sp.csr_matrix, pool: sp.csr_matrix | None, *, steps: int = DETECTION_STEPS
) -> NDArray[np.float32]:
    """P(detected) for every cell and gene: detection averaged over the neighbour graph.

    Step 1 is the fraction of the cell's neighbours detecting the gene; each further step
    averages that fraction over the neighbours again (a random walk of ``steps`` steps on the kNN
    graph, as MAGIC diffuses), which steadies the estimate from 15 neighbours. Without a
    neighbour pool: the fraction of all cells detecting the gene, the same for every cell.
    """
    detected = sp.csr_matrix((sp.csr_matrix(counts) > 0).astype(np.float32))
    if pool is None:
        rate = np.asarray(detected.mean(axis=0), dtype=np.float32).ravel()
        return np.tile(rate, (detected.shape[0], 1))
    k = np.maximum(np.asarray(pool.sum(axis=1), dtype=np.float32).ravel(), 1.0)
    prob = np.asarray((pool @ detected).toarray() / k[:, None], dtype=np.float32)
    if steps > 1:
        walk = sp.csr_matrix(sp.diags(1.0 / k) @ pool, dtype=np.float32)
        for _ in range(steps - 1):
            prob = np.asarray(walk @ prob, dtype=np.float32)
    return prob


def evidence_weighted_values(
    imputed: NDArray[np.float32],
    counts: sp.csr_matrix,
    pool: sp.csr_matrix | None,
    *,
    steps: int = DETECTION_STEPS,
    power: float = EVIDENCE_POWER,
) -> NDArray[np.float32]:
    """Observed non-zeros as ``imputed``, each zero ``p ** power x imputed`` (the fill rule).

    ``imputed`` (cells x genes, log1p CP10k at each cell's own library) is a value for an entry
    had it been detected; ``p`` is :func:`detection_probability` (``steps`` random-walk steps).
    ``power`` 1 gives the expected log value, 0 the value-if-detected everywhere.
    """
    prob = detection_probability(counts, pool, steps=steps)  # becomes the output, in place
    if power != 1.0:
        np.power(prob, power, out=prob)
    prob *= imputed
    csr = sp.csr_matrix(counts)
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    seen = csr.data > 0
    prob[rows[seen], csr.indices[seen]] = imputed[rows[seen], csr.indices[seen]]
    return prob


def _assemble_layer(
    observed: sp.csr_matrix,
    imputed: NDArray[np.float32],
    cols: NDArray[np.intp],
) -> NDArray[np.float32] | sp.csr_matrix:
    """``observed`` (log-normalised counts, all genes) everywhere, ``imputed`` in columns ``cols``."""
    n, g = observed.shape
    if cols.size == g or n * g <= DENSE_LIMIT:
        layer = observed.toarray()
        layer[:, cols] = imputed
        return layer
    keep = np.ones(g, dtype=np.float32)
    keep[cols] = 0.0
    others = observed @ sp.diags(keep)
    scatter = sp.csr_matrix(
        (np.ones(cols.size, dtype=np.float32), (np.arange(cols.size), cols)), shape=(cols.size, g)
    )
    return sp.csr_matrix(others + sp.csr_matrix(imputed) @ scatter, dtype=np.float32)


def save_checkpoint(result: ImputeResult, path: str | Path) -> None:
    from scregnet import checkpoint

    checkpoint.save(
        path,
        CHECKPOINT_KIND,
        CHECKPOINT_VERSION,
        result.config,
        result.model.state_dict(),
        genes=list(result.genes),
    )


def write_loss_table(rows: list[dict[str, object]], path: str | Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=list(LOSS_COLUMNS), delimiter="\t", extrasaction="ignore"
        )
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )


def write_outputs(result: ImputeResult, out: str | Path) -> list[Path]:
    """Write ``out`` (h5ad) and, for a trained model, the checkpoint and loss table beside it.

    All files appear together or not at all.
    """
    from scregnet.io.atomic import atomic_paths
    from scregnet.io.h5ad import write_h5ad_file

    out = Path(out)
    model_path, loss_path = sidecar_paths(out)
    targets = [out, model_path, loss_path] if result.trained else [out]
    with atomic_paths(*targets) as temps:
        write_h5ad_file(result.adata, temps[0])
        if result.trained:
            save_checkpoint(result, temps[1])
            write_loss_table(result.losses, temps[2])
    for target in targets:
        log.info("wrote %s", target)
    return targets
