"""Imputation on real CellBench counts: molecular cross-validation, bulk agreement, ARI, DE.

Data: ``shared/data/cellbench`` (Tian et al. 2019): single cells of lung adenocarcinoma lines with
genotype-called labels, and RNA of the same lines extracted in bulk (``RNAmix_celseq2`` pure
samples). Protocol, identical for every method:

- MCV (``scregnet.evaluate.mcv``): each cell's counts are split binomially (training fraction
  0.5 and 0.2, split seed ``--seed``); 2,000 HVGs are chosen on the training part; every method
  imputes from the training part of those genes; the loss is the squared error against the
  held-out part in log1p(counts per 10k), with the paper's depth correction, over all entries
  (``mse``) and as the median over genes and over cells.
- On the full counts (same 2,000 HVGs chosen on all counts): (a) bulk agreement, per line the
  Spearman over genes between the pseudobulk of the imputed cells and the sum of that line's
  pure RNAmix samples (genes shared with the bulk; mean over the lines that have bulk), and per
  CellBench cell pool (``cellmix1..5``: 9- and 90-cell pools of H2228/H1975/HCC827 of known
  make-up, summed per pool size and make-up) the Spearman between the pool and the mix of the
  lines' mean expected counts (imputed values at each cell's library) in its proportions (mean
  over the 43 pool groups);
  (b) ARI of k-means (k = number of lines, 3 seeds averaged) and Leiden (resolution 0.3, the
  number of clusters left to the data) against the genotype labels; (c) DE: for each pair of
  lines with bulk, genes with |log2 fold change| > 1 between the pure bulk profiles (CPM + 1) are
  the positives, the absolute difference of the lines' mean imputed values is the score (AUROC;
  mean over pairs).

Deeper cells (``--pool-cells K``): each line's cells dealt at random into disjoint groups of K
and each group's counts summed, K times the depth with 1/K of the cells (a probe for sets deeper
than these, such as CellBench's 10x sets; summing also averages the cells' biology).

Further real sets (``load_cells``): ``sc_celseq2_5cl`` (the three 5-line plates pooled), ``celltypist``
and ``pbmc68k`` (10x UMI counts without bulk or genotypes: MCV only, ``--no-full``).

Methods: none; kNN smoothing (k = 15: each cell's counts summed with its 15 nearest neighbours',
PCA of the log-normalised counts); kNN diffusion (1-3 steps of the 15-neighbour averaging operator
on the log values); MAGIC; scVI's denoised expression (both via ``--external-python``, a separate venv: they
are not project dependencies); "no network" (the fill rule of the earlier headline with the
per-gene non-zero mean at the cell's depth in place of the network, the ``fill_rule`` baseline
layer); scregnet's headline layer ``imputed``.

Usage::

    python bench/impute_mcv.py --sets sc_celseq2,sc_celseq2_5cl_p1,sc_dropseq \
        --external-python /work/venvs/impute-real/bin/python --json mcv.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
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

from labelled_counts import marker_labelled_counts, pbmc68k_counts
from scregnet.evaluate.mcv import (
    mcv_loss,
    mixture_spearman,
    pseudobulk_spearman,
)
from scregnet.evaluate.metrics import adjusted_rand
from scregnet.evaluate.score_impute import cluster_labels, leiden_labels
from scregnet.impute import data
from scregnet.impute.api import fill_rule_values, impute
from scregnet.impute.config import TrainConfig
from scregnet.stats import auroc, split_molecules

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SCREGNET_TESTDATA", REPO.parent / "shared" / "data")) / "cellbench"
BULK_LINES = ("H2228", "H1975", "HCC827")
log = logging.getLogger("bench.impute_mcv")

#: a method: (training counts of the modelled genes, each cell's library over all genes, seed)
#: -> (cells x genes values, kind for the depth correction)
Method = Callable[[sp.csr_matrix, np.ndarray, int], tuple[np.ndarray, str]]
#: the modelled genes' names in the current call (for the bulk matrix of the scregnet variants)
CONTEXT: dict[str, Any] = {}
#: ``--thin`` draws with the split seed plus this, apart from the split's own draw
THIN_SEED_OFFSET = 1000


# ---------------------------------------------------------------- data
def load_cells(name: str) -> tuple[sp.csr_matrix, list[str], np.ndarray]:
    """(cells x genes counts, gene IDs, labels) of a single-cell set: a CellBench set (genotype
    labels), one of :data:`POOLED_SETS`, or one of :data:`UMI_SETS` (MCV only, ``--no-full``)."""
    if name in UMI_SETS:
        return UMI_SETS[name]()
    if name in POOLED_SETS:
        parts = [load_cells(part) for part in POOLED_SETS[name]]
        genes = sorted(set().union(*(p[1] for p in parts)))
        blocks = []
        for x, part_genes, _ in parts:
            # each part's genes placed in the union's columns (a gene a part lacks counts 0)
            cols = pd.Index(genes).get_indexer(part_genes)
            coo = x.tocoo()
            blocks.append(
                sp.csr_matrix((coo.data, (coo.row, cols[coo.col])), (x.shape[0], len(genes)))
            )
        return sp.vstack(blocks, format="csr"), genes, np.concatenate([p[2] for p in parts])
    counts = pd.read_csv(DATA / f"{name}.count.csv.gz", index_col=0)
    meta = pd.read_csv(DATA / f"{name}.metadata.csv.gz", index_col=0)
    col = "cell_line" if "cell_line" in meta.columns else "cell_line_demuxlet"
    labels = meta.reindex(counts.columns)[col].astype(str).to_numpy()
    x = sp.csr_matrix(counts.to_numpy(dtype=np.float32).T)
    return x, list(counts.index), labels


def pool_cells(
    counts: sp.csr_matrix, labels: np.ndarray, k: int, seed: int
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Each line's cells dealt at random into disjoint groups of ``k`` (the remainder dropped),
    each group's counts summed: ``k`` times the depth, one cell per group."""
    rng = np.random.default_rng(seed)
    groups, group_labels = [], []
    for line in np.unique(labels):
        cells = rng.permutation(np.flatnonzero(labels == line))
        n = cells.size // k
        groups += np.split(cells[: n * k], n) if n else []
        group_labels += [line] * n
    rows = np.repeat(np.arange(len(groups)), k)
    cols = np.concatenate(groups) if groups else np.zeros(0, dtype=int)
    member = sp.csr_matrix((np.ones(rows.size), (rows, cols)), (len(groups), counts.shape[0]))
    return sp.csr_matrix(member @ counts, dtype=counts.dtype), np.asarray(group_labels)


def load_celltypist() -> tuple[sp.csr_matrix, list[str], np.ndarray]:
    """celltypist's sample: 559 10x cells, UMI counts (no genotype; labels are placeholders)."""
    counts, genes, _ = marker_labelled_counts(
        DATA.parent / "celltypist_counts" / "sample_cell_by_gene.csv.gz"
    )
    return counts, genes, np.full(counts.shape[0], "cells")


#: further real sets for generality checks: CellBench sets pooled (the three 5-line CEL-seq2
#: plates, 909 cells with plate batch effects) and 10x UMI counts without bulk
POOLED_SETS = {
    "sc_celseq2_5cl": ("sc_celseq2_5cl_p1", "sc_celseq2_5cl_p2", "sc_celseq2_5cl_p3"),
}
UMI_SETS: dict[str, Callable[[], tuple[sp.csr_matrix, list[str], np.ndarray]]] = {
    "celltypist": load_celltypist,
    "pbmc68k": pbmc68k_counts,  # scanpy's pbmc68k_reduced: 700 10x PBMCs x 765 genes
}


def load_bulk() -> pd.DataFrame:
    """Pure single-line RNAmix CEL-seq2 samples summed per line: genes x lines, raw counts."""
    counts = pd.read_csv(DATA / "RNAmix_celseq2.count.csv.gz", index_col=0)
    meta = pd.read_csv(DATA / "RNAmix_celseq2.metadata.csv.gz", index_col=0)
    meta = meta.reindex(counts.columns)
    out = {}
    for line in BULK_LINES:
        pure = meta.index[meta[f"{line}_prop"] == 1]
        out[line] = counts[pure].sum(axis=1)
    return pd.DataFrame(out)


def load_bulk_samples() -> pd.DataFrame:
    """The pure single-line RNAmix CEL-seq2 samples (genes x samples raw counts): the real bulk
    domain for ``scregnet impute --bulk`` (Ensembl IDs, as the cells)."""
    counts = pd.read_csv(DATA / "RNAmix_celseq2.count.csv.gz", index_col=0)
    meta = pd.read_csv(DATA / "RNAmix_celseq2.metadata.csv.gz", index_col=0).reindex(counts.columns)
    pure = (meta[[f"{line}_prop" for line in BULK_LINES]] == 1).any(axis=1).to_numpy()
    return counts.loc[:, pure]


def load_cellmix() -> list[tuple[dict[str, float], pd.Series]]:
    """CellBench cell pools (``cellmix1..4``: 9 cells, ``cellmix5``: 90 cells; CEL-seq2), summed
    per pool size and make-up: [(line -> cells per pool, genes' summed counts)]. Pools flagged
    ``poor_quality`` or ``outliers`` are left out."""
    groups: dict[tuple[int, tuple[int, ...]], pd.Series] = {}
    for i in range(1, 6):
        counts = pd.read_csv(DATA / f"cellmix{i}.count.csv.gz", index_col=0)
        meta = pd.read_csv(DATA / f"cellmix{i}.metadata.csv.gz", index_col=0)
        meta = meta.reindex(counts.columns)
        good = meta["poor_quality"].astype(str) == "NO"
        if "outliers" in meta.columns:
            good &= meta["outliers"].astype(str).str.upper() != "TRUE"
        meta = meta[good & meta[list(BULK_LINES)].notna().all(axis=1)]
        make_up = meta[list(BULK_LINES)].astype(int)
        for key, members in make_up.groupby(list(BULK_LINES)).groups.items():
            size = int(sum(key))
            total = counts[list(members)].sum(axis=1)
            prev = groups.get((size, key))
            groups[(size, key)] = total if prev is None else prev.add(total, fill_value=0)
    return [
        (dict(zip(BULK_LINES, map(float, key), strict=True)), profile)
        for (_, key), profile in sorted(groups.items())
    ]


# ---------------------------------------------------------------- methods
def hvg(counts: sp.csr_matrix, genes: list[str], n_top: int = 2000) -> list[str]:
    """scanpy's highly variable genes (Seurat flavour) on log1p CP10k, in input order."""
    import scanpy as sc

    adata = ad.AnnData(sp.csr_matrix(counts, dtype=np.float32))
    adata.var_names = genes
    sc.pp.filter_genes(adata, min_cells=3)
    sc.pp.normalize_total(adata, target_sum=data.TARGET_SUM)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, n_top_genes=n_top, flavor="seurat")
    return list(adata.var_names[adata.var["highly_variable"].to_numpy()])


def _neighbours(counts: sp.csr_matrix, library: np.ndarray, k: int) -> np.ndarray:
    return data.neighbour_graph(counts, library, k=k, n_pcs=30)


def m_none(counts: sp.csr_matrix, library: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    return data.normalize_log1p(counts, library), "log"


def m_knn(counts: sp.csr_matrix, library: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """kNN smoothing, one step (Wagner et al. 2017): pooled counts of the cell and 15 neighbours."""
    nbrs = _neighbours(counts, library, 15)
    pool = data.neighbour_pool(nbrs) + sp.identity(counts.shape[0], format="csr")
    pooled = pool @ counts
    return data.normalize_log1p(pooled, pool @ library), "mean"


def make_diffusion(steps: int) -> Method:
    def run(counts: sp.csr_matrix, library: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
        nbrs = _neighbours(counts, library, 15)
        pool = data.neighbour_pool(nbrs) + sp.identity(counts.shape[0], format="csr")
        walk = sp.diags(1.0 / np.asarray(pool.sum(axis=1)).ravel()) @ pool
        values = data.normalize_log1p(counts, library).astype(np.float64)
        for _ in range(steps):
            values = walk @ values
        return np.asarray(values), "log"

    return run


def _external(
    python: str, method: str, matrix: sp.csr_matrix, seed: int, threads: int
) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npy"
        sp.save_npz(src, sp.csr_matrix(matrix))
        subprocess.run(
            [python, str(REPO / "bench" / "_external.py"), method, str(src), str(dst), str(seed)],
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": str(threads)},
        )
        return np.asarray(np.load(dst), dtype=np.float64)


def make_magic(python: str, threads: int) -> Method:
    """MAGIC (magic-impute defaults) on log1p CP10k, run in its own interpreter."""

    def run(counts: sp.csr_matrix, library: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
        logn = sp.csr_matrix(data.normalize_log1p(counts, library))
        return np.maximum(_external(python, "magic", logn, seed, threads), 0.0), "log"

    return run


def m_fill_rule(counts: sp.csr_matrix, library: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """No network: the earlier headline's fill rule around a per-gene mean at the cell's depth."""
    nbrs = _neighbours(counts, library, 15)
    return np.asarray(fill_rule_values(counts, library, data.neighbour_pool(nbrs))), "log"


def make_scvi(python: str, threads: int) -> Method:
    """scVI (scvi-tools, its own interpreter): log1p of the denoised expression in CP10k."""

    def run(counts: sp.csr_matrix, library: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
        rho = _external(python, "scvi", counts, seed, threads)  # proportions over the genes
        modelled = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
        cp10k = rho * (modelled / np.maximum(library, 1.0))[:, None] * data.TARGET_SUM
        return np.log1p(cp10k), "mean"

    return run


def make_scregnet(epochs: int, threads: int, model_seed: int | None = None, **kw: Any) -> Method:
    """scregnet's headline layer; the model is seeded with the split seed, or ``model_seed``."""

    def run(counts: sp.csr_matrix, library: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
        # a last column carries the counts of the genes that are not modelled, so that the
        # stage sees each cell's full library
        rest = np.maximum(library - np.asarray(counts.sum(axis=1)).ravel(), 0.0)
        full = sp.hstack([counts, sp.csr_matrix(rest[:, None])], format="csr")
        adata = ad.AnnData(full)
        adata.var_names = [*CONTEXT["genes"], "rest"]
        res = impute(
            adata,
            genes=list(adata.var_names[:-1]),
            epochs=epochs,
            device="cpu",
            seed=seed if model_seed is None else model_seed,
            threads=threads,
            **kw,
        )
        layer = np.asarray(res.adata.layers["imputed"], dtype=np.float64)[:, :-1]
        return layer, "mean"

    return run


# ---------------------------------------------------------------- scores
def de_auroc(values: np.ndarray, labels: np.ndarray, bulk: pd.DataFrame) -> float:
    """Mean AUROC over line pairs of |mean imputed difference| for bulk DE genes (|log2FC| > 1)."""
    cpm = bulk / bulk.sum(axis=0) * 1e6
    scores = []
    lines = [c for c in bulk.columns if (labels == c).sum() >= 3]
    for i, a in enumerate(lines):
        for b in lines[i + 1 :]:
            lfc = np.log2(cpm[a].to_numpy() + 1) - np.log2(cpm[b].to_numpy() + 1)
            diff = values[labels == a].mean(axis=0) - values[labels == b].mean(axis=0)
            scores.append(auroc(np.abs(lfc) > 1, np.abs(diff)))
    return float(np.nanmean(scores))


def full_scores(values: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, float]:
    """ARI of k-means (k = number of lines, 3 seeds averaged) and Leiden against the labels."""
    k = int(np.unique(labels).size)
    kmeans = [adjusted_rand(labels, cluster_labels(values, k, seed=s)) for s in range(3)]
    leiden = adjusted_rand(labels, leiden_labels(values, seed=seed, resolution=0.3))
    return {"ari_kmeans": float(np.mean(kmeans)), "ari_leiden": leiden}


def bulk_scores(values: np.ndarray, labels: np.ndarray, bulk: pd.DataFrame) -> dict[str, float]:
    """Mean pseudobulk Spearman over the lines with bulk, and the DE AUROC."""
    rho = pseudobulk_spearman(values, labels, {c: bulk[c].to_numpy() for c in bulk.columns})
    return {
        "bulk_spearman": float(np.mean(list(rho.values()))),
        "de_auroc": de_auroc(values, labels, bulk),
    }


def cellmix_score(
    values: np.ndarray,
    labels: np.ndarray,
    library: np.ndarray,
    genes: list[str],
    pools: list[tuple[dict, pd.Series]],
) -> float:
    """Mean Spearman over the cell pools between each pool and the mix its make-up predicts from
    the imputed cells at their libraries (genes shared with the pools;
    ``scregnet.evaluate.mcv.mixture_spearman``)."""
    index = pools[0][1].index
    shared = [g for g in genes if g in index]
    sub = pd.Index(genes).get_indexer(shared)
    scored = [(make_up, profile.reindex(shared).to_numpy()) for make_up, profile in pools]
    return float(np.mean(mixture_spearman(values[:, sub], labels, scored, library)))


def run_set(
    name: str,
    methods: dict[str, Method],
    fractions: list[float],
    seed: int,
    bulk_all: pd.DataFrame,
    pools: list[tuple[dict, pd.Series]],
    *,
    full: bool,
    full_fraction: float | None = None,
    pooled: int = 1,
    thin: float = 1.0,
) -> list[dict[str, Any]]:
    counts, genes, labels = load_cells(name)
    keep = np.asarray(counts.sum(axis=1)).ravel() > 0
    counts, labels = counts[keep], labels[keep]
    if thin < 1:
        # shallower cells: each molecule kept with probability ``thin`` (a draw of its own)
        counts = sp.csr_matrix(split_molecules(counts, thin, seed=THIN_SEED_OFFSET + seed)[0])
        keep = np.asarray(counts.sum(axis=1)).ravel() > 0
        counts, labels = counts[keep], labels[keep]
        log.info(
            "%s: thinned to %.0f %%, median depth %.0f",
            name,
            100 * thin,
            np.median(data.library_sizes(counts)),
        )
    if pooled > 1:
        counts, labels = pool_cells(counts, labels, pooled, seed)
        log.info(
            "%s: groups of %d cells summed, median depth %.0f",
            name,
            pooled,
            np.median(data.library_sizes(counts)),
        )
    log.info("%s: %d cells x %d genes, lines %s", name, *counts.shape, sorted(set(labels)))
    rows: list[dict[str, Any]] = []
    for frac in fractions:
        train, held = split_molecules(counts, frac, seed=seed)
        lib_x = data.library_sizes(train)
        lib_y = data.library_sizes(held)
        ok = (lib_x > 0) & (lib_y > 0)
        train, held, lib_x, lib_y = train[ok], held[ok], lib_x[ok], lib_y[ok]
        chosen = hvg(train, genes)
        cols = pd.Index(genes).get_indexer(chosen)
        x, y = sp.csr_matrix(train[:, cols], dtype=np.float32), sp.csr_matrix(held[:, cols])
        CONTEXT["genes"] = chosen
        for method, fn in methods.items():
            t0 = time.perf_counter()
            values, kind = fn(x, lib_x, seed)
            seconds = time.perf_counter() - t0
            # each output scored under both readings of the depth correction; the better one
            # is reported (no method loses by how its output is read)
            scores = {
                k: mcv_loss(values, y, train_library=lib_x, held_library=lib_y, kind=k)
                for k in ("log", "mean")
            }
            best = min(scores, key=lambda k: scores[k].mse)
            rows.append(
                {
                    "data": name,
                    "split": frac,
                    "method": method,
                    **scores[best].summary(),
                    "kind": best,
                    "declared_kind": kind,
                    "seconds": seconds,
                }
            )
            log.info("%s", rows[-1])
    if full:
        if full_fraction is not None:
            # development: the full-count scores on the training part of this split seed
            counts, _ = split_molecules(counts, full_fraction, seed=seed)
            ok = data.library_sizes(counts) > 0
            counts, labels = counts[ok], labels[ok]
        lib = data.library_sizes(counts)
        chosen = hvg(counts, genes)
        cols = pd.Index(genes).get_indexer(chosen)
        x = sp.csr_matrix(counts[:, cols], dtype=np.float32)
        CONTEXT["genes"] = chosen
        shared = [g for g in chosen if g in bulk_all.index]
        bulk = bulk_all.loc[shared, [c for c in BULK_LINES if (labels == c).any()]]
        sub = pd.Index(chosen).get_indexer(shared)
        for method, fn in methods.items():
            t0 = time.perf_counter()
            values, _ = fn(x, lib, seed)
            scores = full_scores(values, labels, seed) | bulk_scores(values[:, sub], labels, bulk)
            scores["cellmix_spearman"] = cellmix_score(values, labels, lib, chosen, pools)
            rows.append(
                {
                    "data": name,
                    "split": "full",
                    "method": method,
                    **scores,
                    "seconds": time.perf_counter() - t0,
                }
            )
            log.info("%s", rows[-1])
    return rows


def markdown(rows: list[dict[str, Any]], columns: list[str], digits: int = 4) -> str:
    """A markdown table of ``rows`` (dicts) over ``columns``; floats with ``digits`` decimals."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = [
            f"{r[c]:.{digits}f}" if isinstance(r.get(c), float) else str(r.get(c, ""))
            for c in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="sc_celseq2,sc_celseq2_5cl_p1,sc_dropseq")
    parser.add_argument("--fractions", default="0.5,0.2")
    parser.add_argument("--seed", type=int, default=0, help="binomial split seed (1 = development)")
    parser.add_argument(
        "--model-seed",
        type=int,
        default=None,
        help="seed of scregnet's model (default: the split seed); the run-to-run spread",
    )
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", default=None, help="semicolon-separated subset of the methods")
    parser.add_argument(
        "--external-python", default=None, help="interpreter with magic-impute and scvi-tools"
    )
    parser.add_argument("--no-full", action="store_true", help="MCV only (no bulk/ARI/DE)")
    parser.add_argument(
        "--full-fraction",
        type=float,
        default=None,
        help="score bulk/ARI/DE on this training fraction of the split (development) "
        "instead of all counts",
    )
    parser.add_argument(
        "--pool-cells",
        type=int,
        default=1,
        metavar="K",
        help="sum disjoint random groups of K cells of one line (deeper cells, 1/K as many)",
    )
    parser.add_argument(
        "--thin",
        type=float,
        default=1.0,
        metavar="F",
        help="keep each molecule with probability F before the split (shallower cells)",
    )
    parser.add_argument("--model-options", type=json.loads, default=None)
    parser.add_argument("--train-options", type=json.loads, default=None)
    parser.add_argument(
        "--ablation", action="store_true", help="also the model with real bulk and without parts"
    )
    parser.add_argument(
        "--bulk-stage-always",
        action="store_true",
        help="also scregnet with its bulk stage run whatever the data (use_bulk=True)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not 0 < args.thin <= 1:
        parser.error(f"--thin must be in (0, 1], got {args.thin}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    methods: dict[str, Method] = {
        "none": m_none,
        "kNN smoothing (k=15)": m_knn,
        "kNN diffusion (1 step)": make_diffusion(1),
        "kNN diffusion (3 steps)": make_diffusion(3),
        "no network (fill rule)": m_fill_rule,
    }
    if args.external_python:
        methods["MAGIC"] = make_magic(args.external_python, args.threads)
        methods["scVI"] = make_scvi(args.external_python, args.threads)
    methods["scregnet"] = make_scregnet(
        args.epochs,
        args.threads,
        args.model_seed,
        batch_size=args.batch_size,
        model_options=args.model_options,
        train_options=args.train_options,
    )
    if args.bulk_stage_always:
        methods["scregnet, bulk stage always"] = make_scregnet(
            args.epochs, args.threads, args.model_seed, batch_size=args.batch_size, use_bulk=True
        )
    if args.ablation:
        pure = load_bulk_samples()
        for label, option in (
            ("RNAmix bulk", {"bulk": pure}),
            ("no bulk pretraining or MMD", {"use_bulk": False}),
            ("no U-Net", {"use_unet": False}),
            ("no neighbour channel", {"use_neighbours": False}),
            ("no attention", {"model_options": {"use_attention": False}}),
            ("no per-gene output scale", {"train_options": {"gene_scale": False}}),
        ):
            methods[f"scregnet, {label}"] = make_scregnet(
                args.epochs, args.threads, args.model_seed, batch_size=args.batch_size, **option
            )
    if args.methods:
        wanted = args.methods.split(";")
        methods = {k: v for k, v in methods.items() if k in wanted}
    bulk = load_bulk()
    pools = load_cellmix()
    rows: list[dict[str, Any]] = []
    for name in args.sets.split(","):
        rows += run_set(
            name,
            methods,
            [float(f) for f in args.fractions.split(",") if f],
            args.seed,
            bulk,
            pools,
            full=not args.no_full,
            full_fraction=args.full_fraction,
            pooled=args.pool_cells,
            thin=args.thin,
        )
    mcv_rows = [r for r in rows if r["split"] != "full"]
    print(
        markdown(
            mcv_rows,
            ["data", "split", "method", "mse", "gene_median", "cell_median", "kind", "seconds"],
        )
    )
    full = [r for r in rows if r["split"] == "full"]
    if full:
        print()
        print(
            markdown(
                full,
                [
                    "data",
                    "method",
                    "bulk_spearman",
                    "cellmix_spearman",
                    "ari_kmeans",
                    "ari_leiden",
                    "de_auroc",
                    "seconds",
                ],
            )
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
