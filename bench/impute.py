"""Imputation benchmark: scDTL vs no imputation, MAGIC and kNN smoothing (prints markdown tables).

Protocol (SCIENCE.md section 2), identical for every method:

- masking: ``scregnet.evaluate.metrics.mask_nonzeros`` zeroes 10 / 20 / 40 % of the non-zero raw
  counts (seed ``--seed``); every method runs on the SAME masked matrix;
- scale: log1p(counts per 10k) with the size factors (library sizes) of the *masked* data, the
  only ones a method can know; truth = the original counts on that same scale;
- scores: RMSE, L1 and Pearson on exactly the zeroed entries; on the simulator also against the
  true (pre-dropout) expression (log1p CP10k of the truth matrix) on those entries
  (``true_pearson``) and on all entries (``true_all_pearson``);
- clustering: the same procedure for every method (``score_impute.cluster_labels``: top 30 PCs of
  the method's output, k-means with k = number of reference labels, n_init 10). Simulator: each
  method's output for the unmasked counts against the true cell types. The real counts have no
  labels, so there the reference is that procedure on the unmasked, un-imputed counts and each
  method is clustered on its output for the 20 %-masked counts (robustness to dropout).

A reference row, "gene non-zero mean at cell depth", predicts ``log1p(mean non-zero count of the
gene x 1e4 / library of the cell)``: no cell-specific information except the library size. It shows
how much of the masked-entry Pearson comes from knowing that the masked entries were non-zero and
from the cells' depths, which smoothing methods do not model.

Usage::

    python bench/impute.py                   # everything (tens of minutes on 2 CPU cores)
    python bench/impute.py --datasets celltypist --fractions 0.2 --no-ablation
    python bench/impute.py --speed           # cells/s and peak memory at 5,000 x 2,000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scregnet.evaluate.metrics import mask_nonzeros, masked_recovery
from scregnet.evaluate.score_impute import cluster_labels, clustering_scores
from scregnet.impute import data
from scregnet.impute.api import impute

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
log = logging.getLogger("bench.impute")

Method = Callable[[sp.csr_matrix, int], np.ndarray]
#: (genes, bulk matrix) of the data set being benchmarked, for the scDTL runs
CONTEXT: dict[str, Any] = {}


# ---------------------------------------------------------------- data sets
Loaded = tuple[sp.csr_matrix, list[str], np.ndarray | None, np.ndarray | None, pd.DataFrame | None]


def load_celltypist(n_genes: int = 2000) -> Loaded:
    frame = pd.read_csv(DATA / "celltypist_counts" / "sample_cell_by_gene.csv.gz", index_col=0)
    counts = sp.csr_matrix(np.rint(frame.to_numpy(dtype=np.float64)).astype(np.float32))
    genes = list(frame.columns.astype(str))
    keep = data.select_variable_genes(counts, genes, n_genes)
    idx = pd.Index(genes).get_indexer(keep)
    return sp.csr_matrix(counts[:, idx]), keep, None, None, None


def load_simulator(preset: str = "small") -> Loaded:
    from scregnet.simulate import simulate  # type: ignore[attr-defined]

    world = Path(tempfile.mkdtemp(prefix="bench_impute_")) / "world"
    simulate(world, preset=preset, seed=0)
    sheet = pd.read_csv(world / "samplesheet.csv")
    sample = str(sheet["sample"].iloc[0])
    adata = ad.read_h5ad((world / str(sheet["rna"].iloc[0])).resolve())
    truth = ad.read_h5ad(world / "truth" / "expression" / f"{sample}.h5ad")
    types = pd.read_csv(world / "truth" / "cell_types.tsv", sep="\t", dtype=str)
    types = types[types["sample"] == sample].set_index("barcode")["cell_type"]
    labels = types.reindex(adata.obs_names).to_numpy()
    counts = data.get_counts(adata)
    true = truth[adata.obs_names, adata.var_names].X
    true = np.asarray(true.toarray() if sp.issparse(true) else true, dtype=np.float64)
    bulk = pd.read_csv(world / "bulk" / "bulk_rna.tsv", sep="\t", index_col=0)
    return counts, list(adata.var_names), labels, true, bulk


# ---------------------------------------------------------------- methods
def m_none(counts: sp.csr_matrix, seed: int) -> np.ndarray:
    return data.normalize_log1p(counts)


def m_knn(counts: sp.csr_matrix, seed: int, k: int = 10) -> np.ndarray:
    """One-step kNN smoothing (Wagner et al. 2017): sum raw counts over each cell's k neighbours."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    logn = data.normalize_log1p(counts)
    pcs = PCA(n_components=min(30, logn.shape[0] - 1), random_state=seed).fit_transform(logn)
    _, nbrs = NearestNeighbors(n_neighbors=k + 1).fit(pcs).kneighbors(pcs)
    dense = counts.toarray().astype(np.float64)
    smoothed = dense[nbrs].sum(axis=1)
    return data.normalize_log1p(smoothed)


def m_depth_reference(counts: sp.csr_matrix, seed: int) -> np.ndarray:
    """log1p(mean non-zero count of each gene x 1e4 / the cell's library): a depth-only reference."""
    csr = sp.csr_matrix(counts)
    detected = np.asarray((csr > 0).sum(axis=0), dtype=np.float64).ravel()
    total = np.asarray(csr.sum(axis=0), dtype=np.float64).ravel()
    mean_nz = np.where(detected > 0, total / np.maximum(detected, 1), 0.0)
    lib = data.library_sizes(csr)
    lib = np.where(lib > 0, lib, 1.0)
    return np.log1p(mean_nz[None, :] * data.TARGET_SUM / lib[:, None])


def m_magic(counts: sp.csr_matrix, seed: int) -> np.ndarray:
    import magic

    op = magic.MAGIC(random_state=seed, n_jobs=1, verbose=0)
    return np.asarray(op.fit_transform(data.normalize_log1p(counts)), dtype=np.float64)


_FITS: dict[tuple[Any, ...], dict[str, np.ndarray]] = {}


def make_scdtl(epochs: int, threads: int, layer: str = "imputed", **kw: Any) -> Method:
    """scDTL as a method returning ``layer``; one fit serves both layers of the same input."""

    def run(counts: sp.csr_matrix, seed: int) -> np.ndarray:
        key = (epochs, threads, tuple(sorted(kw.items())), seed, hash(counts.data.tobytes()),
               hash(counts.indices.tobytes()), counts.shape)  # fmt: skip
        if key not in _FITS:
            adata = ad.AnnData(counts)
            adata.var_names = CONTEXT["genes"]
            res = impute(
                adata,
                bulk=CONTEXT.get("bulk"),
                epochs=epochs,
                device="cpu",
                seed=seed,
                threads=threads,
                n_top_genes=None,
                **kw,
            )
            _FITS.clear()
            _FITS[key] = {
                name: np.asarray(res.adata.layers[name], dtype=np.float64)
                for name in ("imputed", "imputed_detected", "imputed_expected")
            }
        return _FITS[key][layer]

    return run


# ---------------------------------------------------------------- protocol
def masked_table(
    name: str,
    counts: sp.csr_matrix,
    true: np.ndarray | None,
    methods: dict[str, Method],
    fractions: list[float],
    seed: int,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    orig = counts.toarray().astype(np.float64)
    true_norm = data.normalize_log1p(true).astype(np.float64) if true is not None else None
    for frac in fractions:
        masked, entries = mask_nonzeros(counts, frac, np.random.default_rng(seed))
        lib = masked.sum(axis=1)
        truth = data.normalize_log1p(orig, lib).astype(np.float64)
        masked_csr = sp.csr_matrix(masked.astype(np.float32))
        for method, fn in methods.items():
            t0 = time.perf_counter()
            out = fn(masked_csr, seed)
            secs = time.perf_counter() - t0
            row: dict[str, Any] = {"data": name, "mask": frac, "method": method, "seconds": secs}
            row.update(masked_recovery(truth, out, entries).as_dict())
            if true_norm is not None:
                t = masked_recovery(true_norm, out, entries).as_dict()
                row.update({f"true_{k}": v for k, v in t.items()})
                everywhere = np.nonzero(np.ones_like(out, dtype=bool))
                row["true_all_pearson"] = masked_recovery(true_norm, out, everywhere).pearson
            rows.append(row)
            log.info(
                "%s", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
            )
    return rows


def clustering_table(
    name: str,
    counts: sp.csr_matrix,
    labels: np.ndarray | None,
    methods: dict[str, Method],
    seed: int,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if labels is not None:
        ok = pd.notna(labels)
        for method, fn in methods.items():
            out = fn(counts, seed)
            rows.append(
                {"data": name, "method": method, "input": "unmasked"}
                | clustering_scores(out[ok], labels[ok], seed=seed)
            )
            log.info("%s", rows[-1])
        return rows
    n_clusters = int(np.clip(counts.shape[0] // 50, 2, 12))
    reference = cluster_labels(data.normalize_log1p(counts), n_clusters, seed=seed)
    masked, _ = mask_nonzeros(counts, 0.2, np.random.default_rng(seed + 1))
    masked_csr = sp.csr_matrix(masked.astype(np.float32))
    for method, fn in methods.items():
        out = fn(masked_csr, seed)
        rows.append(
            {"data": name, "method": method, "input": "20% masked vs unmasked k-means"}
            | clustering_scores(out, reference, seed=seed)
        )
        log.info("%s", rows[-1])
    return rows


def speed(
    epochs: int,
    threads: int,
    n_cells: int = 5000,
    n_genes: int = 2000,
    model_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Training and inference cells/s at ``n_cells`` x ``n_genes`` (cells resampled from real data).

    Wall-clock figures (per phase, from the loss table) and CPU-time figures (this process, all
    threads) are both reported: on a shared machine the CPU time is the steadier comparison.
    """
    from scregnet.device import resolve_device
    from scregnet.impute.train import predict

    counts, _, _, _, _ = load_celltypist(n_genes)
    rng = np.random.default_rng(0)
    pick = rng.integers(0, counts.shape[0], size=n_cells)
    base = counts[pick].toarray()
    thinned = rng.binomial(base.astype(np.int64), rng.uniform(0.5, 1.0, size=(n_cells, 1)))
    adata = ad.AnnData(sp.csr_matrix(thinned.astype(np.float32)))
    adata.var_names = [f"g{i}" for i in range(counts.shape[1])]
    t0, c0 = time.perf_counter(), time.process_time()
    res = impute(
        adata,
        epochs=epochs,
        device="cpu",
        seed=0,
        threads=threads,
        n_top_genes=None,
        model_options=model_options,
    )
    total, total_cpu = time.perf_counter() - t0, time.process_time() - c0

    def mean_s(phase: str) -> float:
        return float(np.mean([float(r["seconds"]) for r in res.losses if r["phase"] == phase]))  # type: ignore[arg-type]

    genes = res.genes
    x = sp.csr_matrix(adata[:, genes].X)
    lib = data.library_sizes(adata.X)
    t1 = time.perf_counter()
    nbrs = data.neighbour_graph(
        x, lib, k=res.model.config.n_neighbours, n_pcs=res.model.config.n_pcs
    )
    graph_s = time.perf_counter() - t1
    t2, c2 = time.perf_counter(), time.process_time()
    predict(res.model, x, lib, pool=data.neighbour_pool(nbrs), device=resolve_device("cpu"))
    infer, infer_cpu = time.perf_counter() - t2, time.process_time() - c2
    return {
        "cells": n_cells,
        "genes": n_genes,
        "threads": threads,
        "fusion_epochs_run": sum(1 for r in res.losses if r["phase"] == "fuse"),
        "train_cells_per_s_fuse": n_cells / mean_s("fuse"),
        "train_cells_per_s_adapt": n_cells / mean_s("adapt"),
        "pretrain_epoch_s": mean_s("pretrain"),
        "neighbour_graph_s": graph_s,
        "infer_cells_per_s": n_cells / infer,
        "infer_cells_per_cpu_s": n_cells / infer_cpu,
        "total_fit_s": total,
        "total_fit_cpu_s": total_cpu,
        "model_parameters": sum(p.numel() for p in res.model.parameters()),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "load_avg_1min": os.getloadavg()[0],
    }


def markdown(rows: list[dict[str, Any]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            cells.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="simulator,celltypist")
    parser.add_argument("--fractions", default="0.1,0.2,0.4")
    parser.add_argument("--epochs", type=int, default=20, help="most fusion epochs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ablation", action="store_true")
    parser.add_argument("--no-clustering", action="store_true")
    parser.add_argument("--speed", action="store_true", help="only the speed benchmark")
    parser.add_argument(
        "--model-options",
        type=json.loads,
        default=None,
        help="speed only: ImputeConfig fields as JSON, e.g. '{\"fusion_channels\": 8}'",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write all rows as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    if args.speed:
        result = speed(args.epochs, args.threads, model_options=args.model_options)
        print(markdown([result], list(result)))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
        return 0
    scdtl = make_scdtl(args.epochs, args.threads)
    base: dict[str, Method] = {
        "none": m_none,
        "kNN smoothing": m_knn,
        "MAGIC": m_magic,
        "scDTL": scdtl,
        "scDTL (detected layer)": make_scdtl(args.epochs, args.threads, layer="imputed_detected"),
        "scDTL (expected layer)": make_scdtl(args.epochs, args.threads, layer="imputed_expected"),
    }
    reference: dict[str, Method] = {"gene non-zero mean at cell depth": m_depth_reference}
    ablations: dict[str, Method] = {
        "scDTL, no bulk transfer": make_scdtl(args.epochs, args.threads, use_bulk=False),
        "scDTL, no U-Net": make_scdtl(args.epochs, args.threads, use_unet=False),
        "scDTL, no neighbour channel": make_scdtl(args.epochs, args.threads, use_neighbours=False),
    }
    fractions = [float(f) for f in args.fractions.split(",")]
    masked_rows: list[dict[str, Any]] = []
    cluster_rows: list[dict[str, Any]] = []
    for name in args.datasets.split(","):
        loader = {"celltypist": load_celltypist, "simulator": load_simulator}[name]
        counts, genes, labels, true, bulk = loader()
        CONTEXT.update(genes=genes, bulk=bulk)
        log.info("%s: %d cells x %d genes", name, *counts.shape)
        if not args.no_clustering:
            cluster_rows += clustering_table(name, counts, labels, base, args.seed)
        masked_rows += masked_table(name, counts, true, base | reference, fractions, args.seed)
        if not args.no_ablation:
            mid = [0.2] if 0.2 in fractions else fractions[:1]
            masked_rows += masked_table(name, counts, true, ablations, mid, args.seed)
        log.info("load average: %s", os.getloadavg())
    cols = ["data", "mask", "method", "rmse", "l1", "pearson"]
    if any("true_pearson" in r for r in masked_rows):
        cols += ["true_pearson", "true_all_pearson"]
    print("\n### Masked recovery\n")
    print(markdown(masked_rows, [*cols, "seconds"]))
    if cluster_rows:
        print("\n### Clustering\n")
        print(markdown(cluster_rows, ["data", "method", "input", "ari", "nmi"]))
    if args.json:
        args.json.write_text(
            json.dumps({"masked": masked_rows, "clustering": cluster_rows}, indent=2, default=float)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
