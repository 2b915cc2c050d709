"""The tfbind stage's entry points: training on bulk data, then applying the model to single cells.

- :func:`train`: trains the scFAN model on the bulk sheet's tracks and ChIP peaks (held-out
  chromosomes, class balance, early stopping; the loop is :mod:`.train`), calibrates it on the
  validation chromosomes and writes it as a :mod:`scregnet.tfbind.checkpoint`. A TF of the bulk
  sheet with too few ChIP positives to learn and calibrate is dropped first (a warning; the
  checkpoint's ``metrics['dropped_tfs']`` names it, and so do predictions' logs and ``uns``). A TF
  whose logits do not rank its validation windows gets a calibration slope of 0: its probability
  is its base rate (``uns['tfbind']['base_rate_tfs']`` in predictions, a warning in both logs).
- :func:`predict_peaks` (one shard = some chromosomes): per ATAC cluster, a pseudobulk coverage
  track is built from the fragments of the cluster's cells and fed to the CNN in place of the
  bulk accessibility, one window per peak (centred on the peak); the shard keeps the network's
  base logits (without the context term). Also the PWM x accessibility baseline, motif matches,
  the model's own motif scores and GC content per peak. Shards hold only per-peak quantities,
  so any split by chromosome merges exactly (:func:`merge_shards`).
- :func:`finalize` (all peaks): the TF-activity context (:mod:`.context`) of each cluster (its
  pseudobulk) and of each cell (reads pooled over the cell and its k nearest LSI neighbours)
  over all peaks; cluster binding = calibrated sigmoid of base logit + context term. Cell
  scores (cells x TFs):

  - ``layers['scfan_activity']``: scFAN's activity (Fu et al. 2020): the fraction of the cell's
    accessible peaks (a read in the cell itself) in which the TF is among the two TFs of highest
    predicted binding probability in the cell's cluster;
  - ``X`` = ``layers['bound_peak_deviation']``: the pooled reads' (cell and its neighbours)
    enrichment in predicted-bound peaks over the expectation from depth and peak share (a
    chromVAR-style deviation with predicted binding as the annotation);
  - ``layers['mean_binding']``: mean binding probability over the peaks the cell's
    neighbourhood reads, with the cell's own context (not scFAN's definition);

  ``obsm['tf_context']`` the cells' contexts. The chromVAR-style motif deviations
  (``obsm['chromvar']``) are the cell-level baseline.
- :func:`write_outputs`: per-cluster binding BED and bigWig, then the h5ad.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from scregnet import keys
from scregnet.errors import InputError
from scregnet.io.atomic import atomic_dir
from scregnet.io.genome import open_fasta, read_chrom_sizes
from scregnet.tfbind.checkpoint import LoadedModel, save_checkpoint
from scregnet.tfbind.config import PredictConfig, TrainConfig
from scregnet.tfbind.data import (
    BulkData,
    BulkTrack,
    BulkWindows,
    WindowIndex,
    WindowReader,
    build_index,
    choose_heldout,
    drop_tfs,
    load_bulk,
    read_bulk_sheet,
)
from scregnet.tfbind.model import ModelConfig, ScFAN, base_rate_tfs, trunk_length
from scregnet.tfbind.motifs import Motif
from scregnet.tfbind.predict import (
    ClusterWindows,
    PeakArrays,
    Scanners,
    binding_probability,
    bound_peak_deviation,
    cells_digest,
    check_atac,
    check_counted_genome,
    check_peaks,
    chrom_mask,
    chromvar_baseline,
    cluster_fragment_counts,
    cluster_fragments,
    cluster_index,
    mean_binding_probability,
    mean_fragment_length,
    neighbourhoods,
    open_fragments,
    peak_table,
    predict_batches,
    scfan_activity,
    shard_anndata,
    shard_order,
    tf_contexts,
)
from scregnet.tfbind.train import (
    MIN_POSITIVES,
    check_state_file,
    dataset_logits,
    fit,
    fit_calibration,
    mean_metric,
    per_tf_metrics,
    pos_weights,
    predict_dataset,
)

if TYPE_CHECKING:
    import anndata as ad
    from numpy.typing import NDArray

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# training


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

    ``state``: a file for the per-epoch training state (see :func:`.train.fit`), resumed from when it
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
    _check_geometry(config)
    if state is not None:
        check_state_file(Path(state))
    sizes, data, chroms, (train_chroms, val, test) = _bulk_data(fasta, bulk_sheet, config)
    data, (train_idx, val_idx, test_idx), dropped = _window_indices(
        data, config, [train_chroms, val, test], rng, bulk_sheet
    )
    tracks = data.tracks
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
        inputs=_input_files_identity(fasta, bulk_sheet, data.tracks, config.motifs),
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
    if dropped:
        # the TFs of the bulk sheet left out of the model: prediction names them in its log
        metrics["dropped_tfs"] = dropped
    _save(out, model, model_config, config, data, sizes, (val, test), tracks, metrics, inputs)
    log.info("wrote %s (%.1f s)", out, time.perf_counter() - t_start)
    if state is not None:
        Path(state).unlink(missing_ok=True)
    return {
        **metrics,
        "train_windows_per_s": result["train_windows_per_s"],
        "predict_windows_per_s": predict_rate,
    }


def _input_files_identity(
    fasta: Path, bulk_sheet: str | Path, tracks: Sequence[BulkTrack], motifs: str | None
) -> str:
    """Name, size and modification time of every file training reads: a training state written
    before any of them changed (a rerun after an edit) is not resumed from."""
    files = [fasta, Path(f"{fasta}.fai"), Path(bulk_sheet)]
    for track in tracks:
        files += [Path(track.accessibility_bw), *map(Path, track.chip.values())]
    if motifs:
        files.append(Path(motifs))
    seen = []
    for path in files:
        try:
            st = path.stat()
        except OSError:
            continue
        seen.append(f"{path.name}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(seen)


def _check_geometry(config: TrainConfig) -> None:
    """InputError unless 1 <= bin size <= window, step >= 1, the window is long enough for the
    convolution blocks, each dropout is in [0, 1) and the jitter is under half the window."""
    if config.bin_size < 1 or config.window < config.bin_size or config.step < 1:
        msg = f"need 1 <= bin size <= window and step >= 1, got bin {config.bin_size}, window {config.window}, step {config.step}"
        raise InputError(msg)
    trunk = ModelConfig(
        n_tfs=1, window=config.window, filters=config.filters, dropout=config.dropout
    )
    if trunk_length(trunk) < 1:
        msg = (
            f"window {config.window} is too short for {len(config.filters)} convolution blocks "
            f"(filters {trunk.kernel} wide, pooled by {trunk.pool}): give a longer --window or "
            "fewer --filters"
        )
        raise InputError(msg)
    if not all(0.0 <= p < 1.0 for p in config.dropout):
        msg = f"each --dropout must be in [0, 1), got {','.join(map(str, config.dropout))}"
        raise InputError(msg)
    if not 0 <= config.jitter < config.window / 2:
        msg = f"--jitter must be >= 0 and under half the window ({config.window} bp), got {config.jitter}"
        raise InputError(msg)


def _save(
    out: str | Path,
    model: ScFAN,
    model_config: ModelConfig,
    config: TrainConfig,
    data: BulkData,
    sizes: dict[str, int],
    heldout: tuple[list[str], list[str]],
    tracks: list[BulkTrack],
    metrics: dict[str, Any],
    inputs: _MotifInputs,
) -> None:
    """Write the trained model, its configs, held-out (validation, test) chromosomes, metrics and
    motif inputs as the checkpoint ``out``."""
    val, test = heldout
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


def _bulk_data(
    fasta: Path, bulk_sheet: str | Path, config: TrainConfig
) -> tuple[dict[str, int], BulkData, list[str], tuple[list[str], list[str], list[str]]]:
    """The genome's chromosome sizes, the bulk sheet's data on the chromosomes not excluded,
    those chromosomes, and the train, validation and test chromosomes."""
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
    return sizes, data, chroms, (train_chroms, val, test)


def _window_indices(
    data: BulkData,
    config: TrainConfig,
    splits: list[list[str]],
    rng: np.random.Generator,
    bulk_sheet: str | Path,
) -> tuple[BulkData, list[WindowIndex], dict[str, dict[str, int]]]:
    """The bulk data of the TFs the model can learn, the window indices of the train, validation
    and test chromosomes (in that order), and the TFs dropped with their positive bins.

    A TF with fewer than :data:`~.train.MIN_POSITIVES` positive bins on the training or on the
    validation chromosomes can be neither learned nor calibrated: it is dropped with a warning
    (with the tracks left with no TF), and the indices are built again from the same random state,
    so the model is the one a bulk sheet without its rows gives. InputError when no TF is left.
    """
    state = copy.deepcopy(rng.bit_generator.state)
    indices = _build_indices(data, config, splits, rng)
    train_pos, val_pos = indices[0].positives(), indices[1].positives()
    few = {
        tf: {"train": int(t), "validation": int(v)}
        for tf, t, v in zip(data.tfs, train_pos, val_pos, strict=True)
        if min(t, v) < MIN_POSITIVES
    }
    counts = ", ".join(
        f"{tf} (train {n['train']}, validation {n['validation']})" for tf, n in few.items()
    )
    if len(few) == len(data.tfs):
        msg = (
            f"no TF has {MIN_POSITIVES} positive bins (a ChIP peak over half of the bin) on both the "
            f"training and the validation chromosomes, so none can be learned and calibrated: "
            f"{counts} (check the BEDs' chromosomes and the held-out ones)"
        )
        raise InputError(msg, bulk_sheet)
    if few:
        kept = drop_tfs(data, few)
        lost = sorted({t.cell_type for t in data.tracks} - {t.cell_type for t in kept.tracks})
        log.warning(
            "dropping %d of %d TF(s) with fewer than %d positive bins on the training or the "
            "validation chromosomes, which the model can neither learn nor calibrate: %s; the "
            "model and its predictions have no column for %s%s",
            len(few),
            len(data.tfs),
            MIN_POSITIVES,
            counts,
            "it" if len(few) == 1 else "them",
            f" (cell type(s) left with no TF, not used: {', '.join(lost)})" if lost else "",
        )
        data = kept
        rng.bit_generator.state = state
        indices = _build_indices(data, config, splits, rng)
    log.info(
        "windows: %d train, %d validation, %d test; training positives per TF: %s",
        *(len(idx) for idx in indices),
        ", ".join(f"{tf}={n}" for tf, n in zip(data.tfs, indices[0].positives(), strict=True)),
    )
    return data, indices, few


def _build_indices(
    data: BulkData, config: TrainConfig, splits: list[list[str]], rng: np.random.Generator
) -> list[WindowIndex]:
    """The window indices of ``splits`` (lists of chromosomes), in that order."""
    return [
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
    ]


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
    wanted = [
        name
        for name, on in (
            ("motif tracks", config.motif_tracks),
            ("context", config.context),
            ("motif-initialised filters", config.motif_init),
        )
        if on
    ]
    if wanted and not motif_list:
        log.warning("no motif for any TF: training without %s", ", ".join(wanted))
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
    if config.motif_init and motifs:
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
    used = model.init_motif_filters([torch.from_numpy(m.log_odds()) for m in motifs])
    fitted = len(used) // 2
    log.info(
        "initialised %d of %d first-block filters from %d motif(s) (both strands)%s",
        len(used),
        model.config.filters[0],
        fitted,
        f"; {len(motifs) - fitted} motif(s) did not fit" if fitted < len(motifs) else "",
    )


# --------------------------------------------------------------------------------------------
# prediction: shards, merging, the cell-level matrices, outputs


def predict_peaks(
    adata: ad.AnnData,
    *,
    atac_path: str | Path,
    fragments: str | Path,
    fasta: str | Path,
    loaded: LoadedModel,
    motifs: dict[str, Motif],
    chroms: Sequence[str] | None,
    config: PredictConfig,
    device: str = "auto",
) -> ad.AnnData:
    """Per-peak predictions for the peaks on ``chroms`` (all when ``None``): a shard AnnData.

    ``device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (:func:`scregnet.device.resolve_device`);
    ``config.seed`` seeds every generator.

    The shard has obs = peaks, var = TFs and in ``uns``: ``clusters``, ``logit`` (base logits)
    and ``pwm_binding`` (clusters x peaks x TFs), ``motif_match`` (peaks x TFs), ``context_scores`` (peaks x the model's motifs), ``gc``
    (peaks), and the model's calibration, context weight and metadata.
    """
    from scregnet.device import resolve_device
    from scregnet.io.fragments import check_cells_found, has_barcode
    from scregnet.seed import seed_everything

    t_start = time.perf_counter()
    atac_path, fragments, fasta = Path(atac_path), Path(fragments), Path(fasta)
    seed_everything(config.seed)
    torch_device = resolve_device(device)
    check_atac(adata, atac_path, need_lsi=False)
    sizes = read_chrom_sizes(fasta)
    check_counted_genome(adata, sizes, atac=atac_path, fasta=fasta)
    peaks_all = peak_table(adata)
    check_peaks(peaks_all, sizes, atac=atac_path, fasta=fasta)
    peaks = peaks_all.loc[chrom_mask(peaks_all, chroms, sizes, fasta)]
    clusters, barcode_cluster = cluster_index(adata)
    tabix = open_fragments(fragments, sizes, fasta)
    check_cells_found(has_barcode(fragments, barcode_cluster), fragments)
    # genome-wide mean coverage of each cluster (the pseudobulk analogue of a bigWig's mean)
    n_frag = cluster_fragment_counts(adata, clusters)
    frag_len = mean_fragment_length(fragments)
    cluster_mean = np.maximum(n_frag * frag_len / float(sum(sizes.values())), 1e-12)
    log.info(
        "%s: %d cells in %d clusters; %d peaks on %s; mean fragment length %.0f bp",
        atac_path.name,
        adata.n_obs,
        len(clusters),
        len(peaks),
        ",".join(chroms) if chroms else "all chromosomes",
        frag_len,
    )
    model = loaded.model.to(torch_device).eval()
    out = PeakArrays.empty(len(clusters), len(peaks), loaded, model)
    scanners = Scanners.build(loaded, motifs, model, config)
    reader = ClusterWindows(WindowReader(fasta, sizes, loaded.window), sizes, loaded, cluster_mean)
    fa = open_fasta(fasta)
    try:
        n_windows, t_model = predict_batches(
            peaks,
            fa,
            lambda chrom: cluster_fragments(tabix, chrom, barcode_cluster, len(clusters)),
            scanners,
            reader,
            model,
            out,
            device=torch_device,
            config=config,
        )
    finally:
        fa.close()
        tabix.close()
    rate = n_windows / t_model if t_model > 0 else float("nan")
    log.info(
        "predicted %d windows (%d peaks x %d clusters) in %.1f s (%.0f windows/s)",
        n_windows,
        len(peaks),
        len(clusters),
        time.perf_counter() - t_start,
        rate,
    )
    shard = shard_anndata(peaks, peaks_all, clusters, chroms, sizes, loaded, model, motifs, out)
    shard.uns[keys.TFBIND_SHARD]["cells"] = cells_digest(adata)
    return shard


def merge_shards(shards: Sequence[ad.AnnData], *, names: Sequence[str] | None = None) -> ad.AnnData:
    """Concatenate shards (disjoint peaks, same TFs and clusters) into one shard."""
    import anndata as ad

    if not shards:
        msg = "no shards to merge"
        raise InputError(msg)
    names = list(names or [f"shard {i + 1}" for i in range(len(shards))])
    for s, name in zip(shards, names, strict=True):
        if keys.TFBIND_SHARD not in s.uns:
            msg = "not a tfbind shard (written by `scregnet tfbind predict --chrom ...`)"
            raise InputError(msg, name)
    first = shards[0].uns[keys.TFBIND_SHARD]
    for s, name in zip(shards[1:], names[1:], strict=True):
        other = s.uns[keys.TFBIND_SHARD]
        if list(s.var_names) != list(shards[0].var_names):
            msg = f"shard has other TFs than {names[0]}"
            raise InputError(msg, name)
        if list(other["clusters"]) != list(first["clusters"]):
            msg = f"shard has other clusters than {names[0]} (made from another ATAC file?)"
            raise InputError(msg, name)
        if str(other.get("model")) != str(first.get("model")):
            msg = (
                f"shard was predicted with another model than {names[0]} (the model was "
                "retrained between them?): predict every shard with one model"
            )
            raise InputError(msg, name)
        if str(other.get("cells")) != str(first.get("cells")):
            msg = f"shard was predicted from other cells or clusters than {names[0]} (another sample?)"
            raise InputError(msg, name)
        if int(other["n_peaks_total"]) != int(first["n_peaks_total"]):
            msg = f"shard comes from an ATAC file with another peak set than {names[0]}"
            raise InputError(msg, name)
    seen: dict[str, str] = {}
    for s, name in zip(shards, names, strict=True):
        for c in s.uns[keys.TFBIND_SHARD]["chroms"]:
            if c in seen:
                msg = f"chromosome {c} is in two shards ({seen[c]} and this one)"
                raise InputError(msg, name)
            seen[str(c)] = name
    if len(shards) == 1:
        return shards[0]
    obs = pd.concat([s.obs for s in shards])
    merged = ad.AnnData(obs=obs, var=shards[0].var.copy())
    u: dict[str, Any] = dict(first)
    for key in ("logit", "pwm_binding", "accessibility"):
        u[key] = np.concatenate([s.uns[keys.TFBIND_SHARD][key] for s in shards], axis=1)
    for key in ("motif_match", "context_scores"):
        u[key] = np.concatenate([s.uns[keys.TFBIND_SHARD][key] for s in shards], axis=0)
    u["chroms"] = np.asarray(list(seen), dtype=object)
    merged.uns[keys.TFBIND_SHARD] = u
    return merged


def finalize(
    adata: ad.AnnData,
    shard: ad.AnnData,
    *,
    atac_path: str | Path,
    config: PredictConfig,
    skipped_chroms: Sequence[str] = (),
) -> ad.AnnData:
    """Cells x TFs activity and the chromVAR-style baseline from all peaks' predictions.

    ``skipped_chroms``: chromosomes left out of prediction on purpose (a pipeline's minor contigs);
    their peaks get no prediction and do not count in the activity. Any other chromosome with
    peaks must be covered by the shards.
    """
    import anndata as ad

    atac_path = Path(atac_path)
    check_atac(adata, atac_path, need_lsi=True)
    u = shard.uns[keys.TFBIND_SHARD]
    dropped = [str(tf) for tf in u.get("dropped_tfs", [])]
    if dropped:
        log.warning(
            "the model has no TF(s) %s: `tfbind train` dropped them (too few ChIP positives to "
            "learn and calibrate), so the results have no column for them",
            ", ".join(dropped),
        )
    constant = base_rate_tfs(shard.var_names, u["calib_scale"])
    if constant:
        log.warning(
            "the model's binding probability of TF(s) %s is a constant, the base rate of the "
            "validation chromosomes (in training its logits did not rank held-out windows): "
            "their binding and activity carry no binding information",
            ", ".join(constant),
        )
    peaks_all = peak_table(adata)
    pos, order = shard_order(shard, adata, peaks_all, atac_path, skipped_chroms)
    logit = np.asarray(u["logit"])[:, order]
    clusters = [str(c) for c in u["clusters"]]
    tfs = list(shard.var_names)
    counts = sp.csr_matrix(adata.X)[:, pos]
    pooled, cell_cluster, onehot_cluster, mix = neighbourhoods(
        adata, counts, clusters, config.n_neighbors
    )
    cluster_ctx, cell_ctx = tf_contexts(
        u,
        peaks_all,
        pos,
        order,
        n_tfs=len(tfs),
        counts=counts,
        pooled=pooled,
        onehot_cluster=onehot_cluster,
    )
    binding = binding_probability(
        logit, None if cluster_ctx is None else cluster_ctx[:, None, :], u
    )  # (clusters, peaks, tfs)
    activity = bound_peak_deviation(counts, pooled, binding, mix)
    mean_binding = mean_binding_probability(pooled, logit, mix, cell_ctx, u)
    scfan = scfan_activity(
        counts, binding, cell_cluster, exclude=[tfs.index(tf) for tf in constant]
    )
    has_motif = np.asarray(u["has_motif"], dtype=bool)
    chromvar = chromvar_baseline(
        counts,
        np.asarray(u["motif_match"])[order],
        shard.obs["gc"].to_numpy(np.float64)[order],
        has_motif,
        config,
    )
    out = ad.AnnData(
        X=activity.astype(np.float32),
        obs=adata.obs.copy(),
        var=pd.DataFrame({"has_motif": has_motif}, index=pd.Index(tfs, name="tf")),
    )
    out.obsm[keys.CHROMVAR] = chromvar.astype(np.float32)
    out.layers[keys.SCFAN_ACTIVITY] = scfan.astype(np.float32)
    out.layers["bound_peak_deviation"] = activity.astype(np.float32)
    out.layers["mean_binding"] = mean_binding.astype(np.float32)
    if cell_ctx is not None and cluster_ctx is not None:
        out.obsm["tf_context"] = cell_ctx.astype(np.float32)
        out.uns["tfbind_cluster_context"] = cluster_ctx.astype(np.float32)
    if keys.UMAP in adata.obsm:
        out.obsm[keys.UMAP] = np.asarray(adata.obsm[keys.UMAP])
    out.uns[keys.TFBIND_UNS] = _tfbind_uns(
        u, clusters, peaks_all.iloc[pos], binding, order, config, constant
    )
    log.info(
        "activity: %d cells x %d TFs; chromVAR baseline for %d TF(s)",
        *activity.shape,
        int(has_motif.sum()),
    )
    return out


def _tfbind_uns(
    u: dict[str, Any],
    clusters: list[str],
    peaks: pd.DataFrame,
    binding: NDArray[np.floating[Any]],
    order: NDArray[np.intp],
    config: PredictConfig,
    constant: Sequence[str],
) -> dict[str, Any]:
    """The result's ``uns`` entry: clusters, peaks, (clusters x peaks x TFs) binding and PWM
    baseline in the peaks' order, the model's held-out chromosomes and window, the options, the
    TFs training dropped (``dropped_tfs``) and those whose probability is a constant
    (``base_rate_tfs``)."""
    return {
        "clusters": np.asarray(clusters, dtype=object),
        "peaks": peaks.copy(),
        "binding": binding.astype(np.float32),
        "pwm_binding": np.asarray(u["pwm_binding"])[:, order].astype(np.float32),
        "test_chroms": np.asarray(u["test_chroms"], dtype=object),
        "val_chroms": np.asarray(u["val_chroms"], dtype=object),
        "window": int(u["window"]),
        "n_neighbors": int(config.n_neighbors),
        "threshold": float(config.threshold),
        "X": "bound_peak_deviation",
        **(
            {"dropped_tfs": np.asarray(u["dropped_tfs"], dtype=object)}
            if "dropped_tfs" in u
            else {}
        ),
        **({keys.BASE_RATE_TFS: np.asarray(constant, dtype=object)} if constant else {}),
    }


def write_outputs(
    result: ad.AnnData,
    out: Path,
    tracks_dir: Path,
    *,
    chrom_sizes: dict[str, int],
    protect: Sequence[str | Path] = (),
) -> None:
    """Per-cluster ``<cluster>.binding.bed`` (peaks x TFs at or above the threshold, score 0-1000)
    and ``<cluster>.binding.bw`` (max binding probability over TFs per peak), then the h5ad.

    The track directory and the h5ad appear together or not at all; files in an existing track
    directory that this command did not write are kept, and ``protect`` (the inputs) never replaced.
    Cluster labels become file names made safe (``T/NK`` -> ``T_NK``).
    """
    from scregnet.io.h5ad import write_h5ad
    from scregnet.io.outputs import safe_names
    from scregnet.io.tracks import write_bigwig

    u = result.uns[keys.TFBIND_UNS]
    peaks: pd.DataFrame = u["peaks"]
    binding = np.asarray(u["binding"])
    tfs = list(result.var_names)
    order = np.lexsort(
        (peaks["start"].to_numpy(), peaks["chrom"].map(list(chrom_sizes).index).to_numpy())
    )
    names = safe_names([str(c) for c in u["clusters"]], tracks_dir)
    with atomic_dir(tracks_dir, owner="tfbind", protect=protect) as tmp:
        for g, cluster in enumerate(names):
            prob = binding[g][order]
            sub = peaks.iloc[order]
            hit_p, hit_t = np.nonzero(prob >= u["threshold"])
            bed = pd.DataFrame(
                {
                    "chrom": sub["chrom"].to_numpy()[hit_p],
                    "start": sub["start"].to_numpy()[hit_p],
                    "end": sub["end"].to_numpy()[hit_p],
                    "name": np.asarray(tfs, dtype=object)[hit_t],
                    "score": np.round(prob[hit_p, hit_t] * 1000).astype(int),
                    "strand": ".",
                }
            )
            bed.to_csv(tmp / f"{cluster}.binding.bed", sep="\t", header=False, index=False)
            best = prob.max(axis=1) if prob.size else np.zeros(0)

            def runs(best: NDArray[Any] = best, sub: pd.DataFrame = sub) -> Any:
                for chrom in chrom_sizes:
                    rows = np.flatnonzero(sub["chrom"].to_numpy() == chrom)
                    if rows.size == 0:
                        continue
                    s = sub["start"].to_numpy()[rows].copy()
                    e = sub["end"].to_numpy()[rows]
                    prev_end = np.maximum.accumulate(e)
                    s[1:] = np.maximum(s[1:], prev_end[:-1])  # overlapping peaks: later one clipped
                    ok = e > s
                    yield chrom, s[ok], e[ok], best[rows][ok]

            write_bigwig(tmp / f"{cluster}.binding.bw", chrom_sizes, runs())
        write_h5ad(result, out)
    log.info("wrote %s and %d cluster track(s) in %s", out, len(u["clusters"]), tracks_dir)
