"""Prediction internals of :mod:`scregnet.tfbind.api`: the clustered ATAC and fragment inputs,
per-cluster pseudobulk windows through the CNN (a shard's per-peak arrays), and the cell-level
matrices from all peaks' predictions (neighbourhoods, contexts, bound-peak deviation, mean
binding, scFAN's activity, the chromVAR-style baseline).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from numpy.typing import NDArray

from scregnet import keys
from scregnet.device import FittingBatch, autocast
from scregnet.errors import InputError
from scregnet.io.genome import check_same_lengths
from scregnet.io.h5ad import check_unique_names
from scregnet.tfbind.checkpoint import LoadedModel
from scregnet.tfbind.config import PredictConfig
from scregnet.tfbind.context import motif_auc, tf_context, top_matches
from scregnet.tfbind.data import WindowReader, normalise_signal, one_hot, reverse_complement
from scregnet.tfbind.model import ScFAN
from scregnet.tfbind.motifs import Motif, MotifScanner, chromvar_deviations

if TYPE_CHECKING:
    import anndata as ad

log = logging.getLogger(__name__)

#: fragments read from the top of the file to estimate the mean fragment length
FRAGMENT_LENGTH_SAMPLE = 100_000


# --------------------------------------------------------------------------------------------
# inputs


def check_atac(adata: ad.AnnData, path: str | Path, *, need_lsi: bool = True) -> None:
    """The clustered ATAC contract: var chrom/start/end, obs cluster, obsm X_lsi; unique peak
    names (a peak's predictions are found by its name)."""
    missing = [f"var['{c}']" for c in ("chrom", "start", "end") if c not in adata.var]
    if keys.CLUSTER not in adata.obs:
        missing.append(f"obs[{keys.CLUSTER!r}]")
    if need_lsi and keys.LSI not in adata.obsm:
        missing.append(f"obsm[{keys.LSI!r}]")
    if missing:
        msg = f"clustered ATAC file lacks {', '.join(missing)} (run `scregnet cluster` first)"
        raise InputError(msg, path)
    if adata.n_obs == 0 or adata.n_vars == 0:
        msg = f"clustered ATAC file is empty ({adata.n_obs} cells x {adata.n_vars} peaks)"
        raise InputError(msg, path)
    check_unique_names(adata.var_names, path, what="peak name")


def peak_table(adata: ad.AnnData) -> pd.DataFrame:
    peaks = pd.DataFrame(
        {
            "chrom": adata.var["chrom"].astype(str).to_numpy(),
            "start": adata.var["start"].to_numpy(np.int64),
            "end": adata.var["end"].to_numpy(np.int64),
        },
        index=pd.Index(adata.var_names.astype(str), name="peak_id"),
    )
    return peaks


def check_counted_genome(
    adata: ad.AnnData, chrom_sizes: dict[str, int], *, atac: Path, fasta: Path
) -> None:
    """The genome the cells were counted against (its chromosome lengths, which ``scregnet count``
    keeps with the tiles) must be the FASTA's assembly; data counted without tiles carry no
    lengths and are checked by their peaks' bounds alone (:func:`check_peaks`)."""
    meta = adata.uns.get(keys.TILES)
    if not meta or "chrom_sizes" not in meta:
        return
    counted = dict(zip(map(str, meta["chroms"]), map(int, meta["chrom_sizes"]), strict=True))
    check_same_lengths(
        counted,
        chrom_sizes,
        what="genome the cells were counted against",
        ref_what=f"FASTA {fasta.name}",
        path=atac,
    )


def check_peaks(
    peaks: pd.DataFrame, chrom_sizes: dict[str, int], *, atac: Path, fasta: Path
) -> None:
    """Peak chromosomes must be in the FASTA and every peak inside its chromosome."""
    unknown = sorted(set(peaks["chrom"]) - set(chrom_sizes))
    if unknown:
        msg = (
            f"chromosome names differ between the peaks and the FASTA {fasta.name}: "
            f"{', '.join(unknown[:5])} not in the FASTA (it has {', '.join(list(chrom_sizes)[:5])})"
        )
        raise InputError(msg, atac)
    sizes = peaks["chrom"].map(chrom_sizes).to_numpy(np.int64)
    bad = np.flatnonzero(
        (peaks["end"].to_numpy() > sizes)
        | (peaks["start"].to_numpy() < 0)
        | (peaks["end"].to_numpy() <= peaks["start"].to_numpy())
    )
    if bad.size:
        i = int(bad[0])
        msg = (
            f"{bad.size} peak(s) lie outside the chromosome bounds of {fasta.name} "
            f"(e.g. {peaks.chrom.iloc[i]}:{peaks.start.iloc[i]}-{peaks.end.iloc[i]}, "
            f"{peaks.chrom.iloc[i]} is {sizes[i]} bp)"
        )
        raise InputError(msg, atac)


def mean_fragment_length(fragments: Path) -> float:
    """Mean fragment length over the first :data:`FRAGMENT_LENGTH_SAMPLE` fragments of the file."""
    from scregnet.io.fragments import fragment_fields

    total, n = 0, 0
    try:
        for f in fragment_fields(fragments, 3):
            total += int(f[2]) - int(f[1])
            n += 1
            if n >= FRAGMENT_LENGTH_SAMPLE:
                break
    except (ValueError, IndexError) as exc:
        msg = f"not a readable fragments file ({type(exc).__name__})"
        raise InputError(msg, fragments) from exc
    if n == 0:
        msg = "fragments file has no fragments"
        raise InputError(msg, fragments)
    return total / n


def open_fragments(fragments: Path, chrom_sizes: dict[str, int], fasta: Path) -> Any:
    """The tabix-indexed fragments file, open; its chromosomes must be named as in the FASTA."""
    import pysam

    from scregnet.io.fragments import check_tabix
    from scregnet.io.genome import check_shared_chromosomes

    if not fragments.exists():
        msg = "fragments file does not exist"
        raise InputError(msg, fragments)
    index = check_tabix(fragments)
    try:
        tabix = pysam.TabixFile(str(fragments), index=str(index))
    except (OSError, ValueError) as exc:
        msg = f"cannot open the tabix-indexed fragments file ({exc})"
        raise InputError(msg, fragments) from exc
    try:
        check_shared_chromosomes(
            list(tabix.contigs),
            chrom_sizes,
            what="fragments",
            ref_what=f"FASTA {fasta.name}",
            path=fragments,
        )
    except InputError:
        tabix.close()
        raise
    return tabix


def _fetch(tabix: Any, chrom: str) -> Iterator[str]:
    """The lines of ``chrom``; a failed read (e.g. an index made for another file) is an
    :class:`InputError` naming the fragments file."""
    from scregnet.io.quiet import quiet_htslib

    try:
        with quiet_htslib():
            yield from tabix.fetch(chrom)
    except (OSError, ValueError) as exc:
        msg = (
            f"reading {chrom} through the tabix index failed ({exc}); the index may be from "
            "another file: re-index with `tabix -f -p bed`"
        )
        raise InputError(msg, os.fsdecode(tabix.filename)) from exc


def cluster_fragments(
    tabix: Any,
    chrom: str,
    barcode_cluster: dict[str, int],
    n_clusters: int,
) -> list[tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """Sorted fragment starts and ends of each cluster on one chromosome."""
    starts: list[list[int]] = [[] for _ in range(n_clusters)]
    ends: list[list[int]] = [[] for _ in range(n_clusters)]
    if chrom not in tabix.contigs:
        return [(np.zeros(0, np.int64), np.zeros(0, np.int64)) for _ in range(n_clusters)]
    for line in _fetch(tabix, chrom):
        f = line.split("\t", 4)
        g = barcode_cluster.get(f[3])
        if g is None:
            continue
        starts[g].append(int(f[1]))
        ends[g].append(int(f[2]))
    return [
        (np.sort(np.asarray(s, dtype=np.int64)), np.sort(np.asarray(e, dtype=np.int64)))
        for s, e in zip(starts, ends, strict=True)
    ]


def coverage(
    starts: NDArray[np.int64], ends: NDArray[np.int64], positions: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Fragments covering each position (half-open fragments; sorted ``starts`` and ``ends``)."""
    return (
        np.searchsorted(starts, positions, side="right")
        - np.searchsorted(ends, positions, side="right")
    ).astype(np.float64)


# --------------------------------------------------------------------------------------------
# shard prediction


def cluster_index(adata: ad.AnnData) -> tuple[list[str], dict[str, int]]:
    """The clusters in natural order and each barcode's cluster index."""
    clusters = sorted(adata.obs[keys.CLUSTER].astype(str).unique(), key=_cluster_key)
    cell_cluster = adata.obs[keys.CLUSTER].astype(str).map({c: i for i, c in enumerate(clusters)})
    barcode_cluster = dict(
        zip(adata.obs_names.astype(str), cell_cluster.to_numpy(int), strict=True)
    )
    return clusters, barcode_cluster


def chrom_mask(
    peaks: pd.DataFrame, chroms: Sequence[str] | None, sizes: dict[str, int], fasta: Path
) -> NDArray[np.bool_]:
    """The peaks on ``chroms`` (all when None); InputError for a chromosome not in the FASTA."""
    if chroms is None:
        return np.ones(len(peaks), dtype=bool)
    absent = [c for c in chroms if c not in sizes]
    if absent:
        msg = (
            f"--chrom {', '.join(absent)} not in the FASTA (it has {', '.join(list(sizes)[:5])}...)"
        )
        raise InputError(msg, fasta)
    return peaks["chrom"].isin(list(chroms)).to_numpy()


@dataclass
class PeakArrays:
    """What :func:`.api.predict_peaks` fills in per peak (``n_c`` clusters, ``n_p`` peaks, ``n_t`` TFs)."""

    #: (n_c, n_p, n_t) base logits
    logits: NDArray[np.float32]
    #: (n_c, n_p) cluster accessibility at the peak centre bin
    access: NDArray[np.float32]
    #: (n_p, n_t) best motif match's likelihood ratio, and whether it passes the p-value
    pwm_ratio: NDArray[np.float32]
    match: NDArray[np.bool_]
    #: (n_p, the model's motifs) context motif scores
    ctx_scores: NDArray[np.float64]
    #: (n_p,) GC fraction of the peak
    gc: NDArray[np.float64]

    @classmethod
    def empty(cls, n_c: int, n_p: int, loaded: LoadedModel, model: ScFAN) -> PeakArrays:
        n_t = len(loaded.tfs)
        n_ctx = len(loaded.motifs()) if model.config.use_context else 0
        return cls(
            logits=np.zeros((n_c, n_p, n_t), dtype=np.float32),
            access=np.zeros((n_c, n_p), dtype=np.float32),
            pwm_ratio=np.zeros((n_p, n_t), dtype=np.float32),
            match=np.zeros((n_p, n_t), dtype=bool),
            ctx_scores=np.zeros((n_p, n_ctx), dtype=np.float64),
            gc=np.zeros(n_p, dtype=np.float64),
        )


@dataclass
class Scanners:
    """The motif scanners of one shard: the baseline's (TFs with a motif) and the context's."""

    #: the baseline PWMs' scanner (None: no TF has a motif) and their TFs' columns
    baseline: MotifScanner | None
    motif_cols: NDArray[np.int64]
    #: the model's own motifs (None without context): per-peak context scores
    context: MotifScanner | None

    @classmethod
    def build(
        cls, loaded: LoadedModel, motifs: dict[str, Motif], model: ScFAN, config: PredictConfig
    ) -> Scanners:
        tfs = loaded.tfs
        tf_with_motif = [tf for tf in tfs if tf in motifs]
        baseline = (
            MotifScanner([motifs[tf] for tf in tf_with_motif], p_value=config.motif_p_value)
            if tf_with_motif
            else None
        )
        context = MotifScanner(loaded.motifs()) if model.config.use_context else None
        cols = np.asarray([tfs.index(tf) for tf in tf_with_motif], dtype=np.int64)
        return cls(baseline, cols, context)


def _scan_peaks(
    pseqs: list[str], batch: NDArray[np.intp], scanners: Scanners, out: PeakArrays
) -> None:
    """GC, motif baseline scores and context motif scores of a batch of peak sequences."""
    widths = np.array([len(s) for s in pseqs], dtype=np.int64)
    onehot = np.zeros((len(batch), 4, int(widths.max())), dtype=np.float32)
    for j, s in enumerate(pseqs):
        onehot[j, :, : widths[j]] = one_hot(s)
    acgt = onehot.sum(axis=(1, 2))
    out.gc[batch] = np.where(acgt > 0, onehot[:, 1:3].sum(axis=(1, 2)) / np.maximum(acgt, 1), 0.5)
    scanner = scanners.baseline
    if scanner is not None:
        scores = scanner.max_scores(onehot, widths)
        cols = scanners.motif_cols
        out.pwm_ratio[np.ix_(batch, cols)] = scanner.likelihood_ratio(scores)
        out.match[np.ix_(batch, cols)] = scores >= scanner.threshold[None, :]
    if scanners.context is not None:
        out.ctx_scores[batch] = scanners.context.max_scores(onehot, widths)


@dataclass
class ClusterWindows:
    """Model inputs of peak-centred windows: sequence plus each cluster's pseudobulk coverage."""

    reader: WindowReader
    sizes: dict[str, int]
    loaded: LoadedModel
    #: genome-wide mean coverage per cluster (the signal normaliser)
    cluster_mean: NDArray[np.float64]

    def predict(
        self,
        model: ScFAN,
        chrom: str,
        lows: NDArray[np.int64],
        batch: NDArray[np.intp],
        frags: list[tuple[NDArray[np.int64], NDArray[np.int64]]],
        out: PeakArrays,
        device: torch.device,
        config: PredictConfig,
    ) -> int:
        """Base logits and centre accessibility of the windows starting at ``lows`` for every
        cluster, written to ``out`` at rows ``batch``; returns the number of windows."""
        window = self.loaded.window
        bin_half = self.loaded.bin_size // 2
        seqs = np.stack([self.reader.sequence(chrom, int(lo)) for lo in lows])
        positions = lows[:, None] + np.arange(window, dtype=np.int64)[None, :]
        inside = (positions >= 0) & (positions < self.sizes[chrom])
        use_acc = model.config.use_accessibility
        for g in range(len(frags)):
            cov = coverage(frags[g][0], frags[g][1], positions.ravel()).reshape(positions.shape)
            acc = normalise_signal(np.where(inside, cov, 0.0), float(self.cluster_mean[g]))
            centre = acc[:, window // 2 - bin_half : window // 2 + bin_half].mean(axis=1)
            out.access[g, batch] = centre
            x = seqs if not use_acc else np.concatenate([seqs, acc[:, None, :]], axis=1)
            out.logits[g, batch] = _base_logits(model, x, device, config.rc_average)
        return len(frags) * len(batch)


def predict_batches(
    peaks: pd.DataFrame,
    fa: Any,
    fragments_on: Callable[[str], list[tuple[NDArray[np.int64], NDArray[np.int64]]]],
    scanners: Scanners,
    reader: ClusterWindows,
    model: ScFAN,
    out: PeakArrays,
    *,
    device: torch.device,
    config: PredictConfig,
) -> tuple[int, float]:
    """Fill ``out`` chromosome by chromosome in batches of peaks (``fragments_on(chrom)``: each
    cluster's fragments there); returns the windows predicted and the seconds the model took."""
    n_windows, t_model = 0, 0.0
    chrom_codes = peaks["chrom"].to_numpy()
    pstarts = peaks["start"].to_numpy(np.int64)
    pends = peaks["end"].to_numpy(np.int64)
    lows = (pstarts + pends) // 2 - reader.loaded.window // 2

    def run(
        chrom: str,
        rows: NDArray[np.intp],
        frags: list[tuple[NDArray[np.int64], NDArray[np.int64]]],
        part: slice,
    ) -> tuple[int, float]:
        batch = rows[part]
        pseqs = [fa.fetch(chrom, int(pstarts[i]), int(pends[i])) for i in batch]
        _scan_peaks(pseqs, batch, scanners, out)
        t0 = time.perf_counter()
        n = reader.predict(model, chrom, lows[batch], batch, frags, out, device, config)
        return n, time.perf_counter() - t0

    fit = FittingBatch(config.batch_size, "tfbind predict")
    for chrom in dict.fromkeys(chrom_codes):
        rows = np.flatnonzero(chrom_codes == chrom)
        frags = fragments_on(str(chrom))
        for n, seconds in fit.over(rows.size, functools.partial(run, str(chrom), rows, frags)):
            n_windows += n
            t_model += seconds
    return n_windows, t_model


def shard_anndata(
    peaks: pd.DataFrame,
    peaks_all: pd.DataFrame,
    clusters: list[str],
    chroms: Sequence[str] | None,
    sizes: dict[str, int],
    loaded: LoadedModel,
    model: ScFAN,
    motifs: dict[str, Motif],
    out: PeakArrays,
) -> ad.AnnData:
    """The shard AnnData of :func:`.api.predict_peaks`."""
    import anndata as ad

    tfs = loaded.tfs
    # baseline: the best match's likelihood ratio (2 ** log2-odds, relative to the consensus's)
    # times the cluster's accessibility at the peak, i.e. odds(motif) x accessibility
    pwm_binding = out.pwm_ratio[None, :, :] * out.access[:, :, None]
    shard = ad.AnnData(obs=peaks.copy(), var=pd.DataFrame(index=pd.Index(tfs, name="tf")))
    shard.obs["gc"] = out.gc
    shard.uns[keys.TFBIND_SHARD] = {
        "clusters": np.asarray(clusters, dtype=object),
        "logit": out.logits,
        "context_scores": out.ctx_scores,
        "pwm_binding": pwm_binding.astype(np.float32),
        "motif_match": out.match,
        "accessibility": out.access,
        "has_motif": np.asarray([tf in motifs for tf in tfs]),
        "chroms": np.asarray(
            list(chroms) if chroms is not None else sorted(set(peaks_all["chrom"])), dtype=object
        ),
        "chrom_sizes": {k: int(v) for k, v in sizes.items()},
        "window": int(loaded.window),
        "test_chroms": np.asarray(loaded.test_chroms, dtype=object),
        "val_chroms": np.asarray(loaded.val_chroms, dtype=object),
        "n_peaks_total": len(peaks_all),
        "calib_scale": model.calib_scale.detach().cpu().numpy().astype(np.float64),
        "calib_bias": model.calib_bias.detach().cpu().numpy().astype(np.float64),
        "use_context": bool(model.config.use_context),
        "context_slope": float(model.context_weight.detach().cpu()) * ScFAN.CONTEXT_SCALE,
        "context_motif_tf": np.asarray(loaded.motif_tf_index(), dtype=np.int64),
        # the checkpoint's content digest: shards of one result must come from one model
        "model": str(loaded.checkpoint.get("digest", "")),
    }
    dropped = list(loaded.checkpoint.get("metrics", {}).get("dropped_tfs", {}))
    if dropped:
        # bulk-sheet TFs that training left out (too few ChIP positives): named in the results
        shard.uns[keys.TFBIND_SHARD]["dropped_tfs"] = np.asarray(dropped, dtype=object)
    return shard


def cells_digest(adata: ad.AnnData) -> str:
    """Which cells and clusters a prediction used: the first 16 hex digits of the SHA-256 of the
    ATAC file's barcodes and cluster labels, in file order."""
    import hashlib

    h = hashlib.sha256()
    for barcode, cluster in zip(
        adata.obs_names.astype(str), adata.obs[keys.CLUSTER].astype(str), strict=True
    ):
        h.update(f"{barcode}\t{cluster}\n".encode())
    return h.hexdigest()[:16]


def _cluster_key(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (10**9, name)


def cluster_fragment_counts(adata: ad.AnnData, clusters: list[str]) -> NDArray[np.float64]:
    """Fragments per cluster from ``obs['n_fragments']`` (else reads in peaks from X)."""
    if "n_fragments" in adata.obs:
        per_cell = adata.obs["n_fragments"].to_numpy(np.float64)
    else:
        per_cell = np.asarray(adata.X.sum(axis=1)).ravel().astype(np.float64)
    frame = pd.Series(per_cell).groupby(adata.obs[keys.CLUSTER].astype(str).to_numpy()).sum()
    return frame.reindex(clusters).fillna(0).to_numpy(np.float64)


@torch.no_grad()
def _base_logits(
    model: torch.nn.Module, x: NDArray[np.float32], device: torch.device, rc: bool
) -> NDArray[np.float32]:
    """Uncalibrated logits without the context term (strand-averaged with ``rc``).

    :meth:`ScFAN.base_logits` reads only the DNA and accessibility channels, so no context
    channels are built here; :func:`.api.finalize` adds the context term of each cluster and cell,
    then the calibration, once all peaks are known.
    """
    assert isinstance(model, ScFAN)
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    with autocast(device):
        logit = model.base_logits(xt).float()
        if rc:
            logit = (logit + model.base_logits(reverse_complement(xt)).float()) / 2
    return logit.cpu().numpy().astype(np.float32)


def binding_probability(
    logit: NDArray[np.floating],
    context: NDArray[np.floating] | None,
    u: dict[str, Any],
) -> NDArray[np.float32]:
    """Calibrated probability from base logits ``(..., n_tfs)`` and a context ``(..., n_tfs)``."""
    z = np.asarray(logit, dtype=np.float64)
    if context is not None and bool(u["use_context"]):
        z = z + float(u["context_slope"]) * np.asarray(context, dtype=np.float64)
    z = np.asarray(u["calib_scale"]) * z + np.asarray(u["calib_bias"])
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


# --------------------------------------------------------------------------------------------
# the cell-level matrices


def knn_weights(lsi: NDArray[np.float64], k: int) -> sp.csr_matrix:
    """Row-normalised graph of each cell and its ``k`` nearest neighbours in LSI space."""
    from sklearn.neighbors import NearestNeighbors

    n = lsi.shape[0]
    k_eff = min(k + 1, n)
    nn = NearestNeighbors(n_neighbors=k_eff).fit(lsi)
    _, idx = nn.kneighbors(lsi)
    idx[:, 0] = np.arange(n)  # the cell itself, even with duplicate coordinates
    rows = np.repeat(np.arange(n), k_eff)
    w = sp.csr_matrix((np.full(rows.size, 1.0 / k_eff), (rows, idx.ravel())), shape=(n, n))
    w.sum_duplicates()
    return w


def mean_binding_probability(
    pooled: sp.csr_matrix,
    logit: NDArray[np.floating],
    mix: NDArray[np.float64],
    cell_ctx: NDArray[np.floating] | None,
    u: dict[str, Any],
    *,
    chunk: int = 128,
) -> NDArray[np.float64]:
    """Mean binding probability over the peaks the cell's neighbourhood
    reads (``pooled`` > 0), each peak's base logit mixed over the neighbourhood's clusters and
    the cell's own context added (``(cells, tfs)``). Cells are processed ``chunk`` at a time so
    memory stays bounded by a chunk's accessible (cell, peak) pairs."""
    acc = sp.csr_matrix(pooled)
    acc.eliminate_zeros()
    n_cells, n_tfs = acc.shape[0], logit.shape[2]
    total = np.zeros((n_cells, n_tfs))
    for lo in range(0, n_cells, chunk):
        block = acc[lo : lo + chunk]
        n_block = block.shape[0]
        rows = np.repeat(np.arange(n_block), np.diff(block.indptr))
        cols = block.indices
        for g in range(logit.shape[0]):
            weight = mix[lo + rows, g]
            sel = np.flatnonzero(weight > 0)
            if sel.size == 0:
                continue
            ctx = None if cell_ctx is None else cell_ctx[lo + rows[sel]]
            prob = binding_probability(logit[g][cols[sel]], ctx, u).astype(np.float64)
            gather = sp.csr_matrix(
                (weight[sel], (rows[sel], np.arange(sel.size))), shape=(n_block, sel.size)
            )
            total[lo : lo + n_block] += gather @ prob
    n_open = np.diff(acc.indptr).astype(np.float64)[:, None]
    return np.where(n_open > 0, total / np.maximum(n_open, 1.0), 0.0)


def scfan_activity(
    counts: sp.csr_matrix,
    binding: NDArray[np.floating],
    cell_cluster: NDArray[np.int64],
    *,
    top: int = 2,
    exclude: Sequence[int] = (),
) -> NDArray[np.float64]:
    """scFAN's cell activity ``(cells, tfs)``: the fraction of each cell's accessible peaks
    (count > 0) in which the TF is among the ``top`` TFs of highest binding probability in the
    cell's cluster (``binding`` is clusters x peaks x TFs; ties broken by TF order). A cell with
    no accessible peak scores 0. The TFs of ``exclude`` (a constant probability, no binding
    information) take no part in the ranking and score 0."""
    x = sp.csr_matrix(counts)
    open_ = sp.csr_matrix((np.ones(x.nnz), x.indices, x.indptr), shape=x.shape)
    open_.data[x.data <= 0] = 0.0
    open_.eliminate_zeros()
    n_cells, n_tfs = x.shape[0], binding.shape[2]
    ranked = np.setdiff1d(np.arange(n_tfs), np.asarray(exclude, dtype=np.intp))
    k = min(top, ranked.size)
    out = np.zeros((n_cells, n_tfs))
    for g in range(binding.shape[0]):
        cells = np.flatnonzero(cell_cluster == g)
        if cells.size == 0 or k == 0:
            continue
        # (peaks, tfs) indicator of the cluster's top-k TFs per peak
        order = ranked[np.argsort(-binding[g][:, ranked], axis=1, kind="stable")[:, :k]]
        top_k = np.zeros(binding.shape[1:], dtype=np.float64)
        np.put_along_axis(top_k, order, 1.0, axis=1)
        out[cells] = np.asarray(open_[cells] @ top_k)
    n_open = np.diff(open_.indptr).astype(np.float64)[:, None]
    return np.where(n_open > 0, out / np.maximum(n_open, 1.0), 0.0)


def neighbourhoods(
    adata: ad.AnnData, counts: sp.csr_matrix, clusters: list[str], n_neighbors: int
) -> tuple[sp.csr_matrix, NDArray[np.int64], sp.csr_matrix, NDArray[np.float64]]:
    """Each cell's LSI neighbourhood (itself + ``n_neighbors`` nearest): (cells, peaks) its reads
    averaged, the cells' cluster indices and one-hot (cells, clusters) matrix, and (cells,
    clusters) the neighbourhood's cluster composition."""
    lsi = np.asarray(adata.obsm[keys.LSI], dtype=np.float64)
    w = knn_weights(lsi, n_neighbors)
    pooled = sp.csr_matrix(w @ counts.astype(np.float64))
    cell_cluster = (
        adata.obs[keys.CLUSTER]
        .astype(str)
        .map({c: i for i, c in enumerate(clusters)})
        .to_numpy(int)
    )
    onehot_cluster = sp.csr_matrix(
        (np.ones(adata.n_obs), (np.arange(adata.n_obs), cell_cluster)),
        shape=(adata.n_obs, len(clusters)),
    )
    mix = np.asarray((w @ onehot_cluster).todense())
    return pooled, cell_cluster, onehot_cluster, mix


def chromvar_baseline(
    counts: sp.csr_matrix,
    match: NDArray[np.bool_],
    gc: NDArray[np.float64],
    has_motif: NDArray[np.bool_],
    config: PredictConfig,
) -> NDArray[np.float64]:
    """(cells x TFs) chromVAR-style motif deviation z-scores (NaN for TFs without a motif)."""
    rng = np.random.default_rng(config.seed)
    chromvar = np.full((counts.shape[0], has_motif.size), np.nan)
    if has_motif.any():
        _, z = chromvar_deviations(
            counts, match[:, has_motif], gc, n_iterations=config.chromvar_iterations, rng=rng
        )
        chromvar[:, has_motif] = z
    return chromvar


def shard_order(
    shard: ad.AnnData,
    atac: ad.AnnData,
    peaks_all: pd.DataFrame,
    atac_path: Path,
    skipped_chroms: Sequence[str],
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """The shard's peaks as positions in the ATAC file's peaks, sorted, and the shard rows in
    that order; InputError when the shards come from another ATAC file's cells or clusters, do
    not cover the file's peaks (outside ``skipped_chroms``), name others or hold none."""
    u = shard.uns[keys.TFBIND_SHARD]
    if "cells" in u and str(u["cells"]) != cells_digest(atac):
        msg = (
            "the shards were predicted from another ATAC file's cells or clusters "
            "(give the clustered file they were predicted from)"
        )
        raise InputError(msg, atac_path)
    covered = {str(c) for c in u["chroms"]}
    left_out = peaks_all["chrom"].isin(set(skipped_chroms) - covered)
    if left_out.any():
        log.info(
            "%d peak(s) on skipped chromosome(s) get no binding prediction", int(left_out.sum())
        )
    missing_chroms = sorted(set(peaks_all["chrom"]) - covered - set(skipped_chroms))
    if missing_chroms:
        msg = f"no shard covers the peaks on chromosome(s) {', '.join(missing_chroms[:6])}"
        raise InputError(msg, atac_path)
    if int(u["n_peaks_total"]) != len(peaks_all):
        msg = f"shards were predicted from {u['n_peaks_total']} peaks, this ATAC file has {len(peaks_all)}"
        raise InputError(msg, atac_path)
    pos = peaks_all.index.get_indexer(shard.obs_names)
    if (pos < 0).any():
        msg = "shards name peaks that are not in this ATAC file"
        raise InputError(msg, atac_path)
    if pos.size == 0:
        # the activities are read from the predicted peaks: with none there is nothing to report
        skipped = sorted(set(peaks_all["chrom"]) - covered)
        msg = (
            f"all {len(peaks_all)} peaks lie on chromosome(s) left out of prediction "
            f"({', '.join(skipped[:6])}): no TF binding to predict for this sample"
        )
        raise InputError(msg, atac_path)
    order = np.argsort(pos, kind="stable")  # shard rows in the ATAC file's peak order
    return pos[order], order


def tf_contexts(
    u: dict[str, Any],
    peaks_all: pd.DataFrame,
    pos: NDArray[np.intp],
    order: NDArray[np.intp],
    *,
    n_tfs: int,
    counts: sp.csr_matrix,
    pooled: sp.csr_matrix,
    onehot_cluster: sp.csr_matrix,
) -> tuple[NDArray[np.floating[Any]] | None, NDArray[np.floating[Any]] | None]:
    """The sample-level TF-activity contexts (our extension, :mod:`.context`), (clusters x TFs)
    from each cluster's pseudobulk and (cells x TFs) from each cell's neighbourhood's pooled
    reads, on reads per bp of each peak; both None when the model has no context."""
    if not bool(u.get("use_context", False)):
        return None, None
    lengths = (peaks_all["end"] - peaks_all["start"]).to_numpy(np.float64)[pos]
    per_bp = sp.diags(1.0 / np.maximum(lengths, 1.0))
    cmatch = top_matches(np.asarray(u["context_scores"], dtype=np.float64)[order])
    motif_tf = np.asarray(u["context_motif_tf"], dtype=np.int64)
    cluster_reads = sp.csr_matrix(onehot_cluster.T @ counts.astype(np.float64)) @ per_bp
    cluster_ctx = tf_context(motif_auc(cluster_reads, cmatch), motif_tf, n_tfs)
    cell_ctx = tf_context(motif_auc(sp.csr_matrix(pooled @ per_bp), cmatch), motif_tf, n_tfs)
    return cluster_ctx, cell_ctx


def bound_peak_deviation(
    counts: sp.csr_matrix,
    pooled: sp.csr_matrix,
    binding: NDArray[np.floating[Any]],
    mix: NDArray[np.float64],
) -> NDArray[np.float64]:
    """(cells x TFs) reads in the peaks the model predicts bound, relative to the expectation from
    the cell's depth and each peak's share of all reads (chromVAR's deviation with predicted
    binding as a soft annotation); each cluster's binding weighted by the neighbourhood ``mix``."""
    depth = np.asarray(pooled.sum(axis=1)).ravel()
    peak_total = np.asarray(counts.sum(axis=0)).ravel().astype(np.float64)
    frac = peak_total / max(peak_total.sum(), 1.0)
    n_cells, n_tfs = pooled.shape[0], binding.shape[2]
    observed = np.zeros((n_cells, n_tfs))
    expected = np.zeros((n_cells, n_tfs))
    for g in range(binding.shape[0]):
        p_g = binding[g].astype(np.float64)  # (peaks, tfs)
        observed += mix[:, [g]] * np.asarray(pooled @ p_g)
        expected += mix[:, [g]] * depth[:, None] * (frac @ p_g)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, (observed - expected) / expected, 0.0)
