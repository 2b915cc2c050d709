"""Score imputation outputs (``R/impute/<sample>.imputed.h5ad``) against simulator truth.

For each sample with an imputed file:

- expression recovery: RMSE, L1 and Pearson between ``layers['imputed']`` (the stage's headline
  layer, :data:`HEADLINE_LAYER`; the summary names it under ``layer``) and the true
  (pre-dropout) expression ``truth/expression/<sample>.h5ad`` on the same scale (log1p of counts per
  10k, see :mod:`scregnet.impute.data`), over all entries and over the dropout entries (observed
  zero, true expression > 0); the same for the observed, un-imputed counts as the baseline;
- clustering: ARI and NMI of k-means (k = number of true cell types) on the top principal
  components of the imputed values, and of the observed values, against ``truth/cell_types.tsv``.

Scoring on real counts needs reruns of the model on thinned counts (molecular cross-validation,
:mod:`scregnet.evaluate.mcv`, ``bench/impute_mcv.py``; masked recovery, the secondary figure,
``bench/impute.py``); this scorer reads files only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from scregnet import keys
from scregnet.errors import InputError
from scregnet.evaluate.metrics import adjusted_rand, masked_recovery, normalized_mutual_info
from scregnet.io.outputs import sample_files
from scregnet.io.tables import read_table
from scregnet.jit_cache import cache_umap_kernels
from scregnet.stats import TARGET_SUM

log = logging.getLogger(__name__)

HEADLINE_LAYER = keys.IMPUTED


def log_normalise(values: ArrayLike | sp.spmatrix) -> NDArray[np.float64]:
    """log1p(counts per 10k) per row, dense (the imputation stage's scale)."""
    dense = values.toarray() if sp.issparse(values) else np.asarray(values)  # type: ignore[union-attr]
    dense = np.asarray(dense, dtype=np.float64)
    lib = dense.sum(axis=1, keepdims=True)
    lib[lib == 0] = 1.0
    return np.log1p(dense / lib * TARGET_SUM)


def cluster_labels(
    values: ArrayLike, n_clusters: int, *, seed: int = 0, n_pcs: int = 30
) -> NDArray[np.int64]:
    """k-means (``n_init=10``) on the top principal components of ``values`` (cells x genes)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    x = np.asarray(values, dtype=np.float64)
    n_comp = max(1, min(n_pcs, x.shape[0] - 1, x.shape[1] - 1))
    pcs = PCA(n_components=n_comp, random_state=seed).fit_transform(x)
    km = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed)
    return np.asarray(km.fit_predict(pcs), dtype=np.int64)


def leiden_labels(
    values: ArrayLike,
    *,
    seed: int = 0,
    n_pcs: int = 30,
    n_neighbours: int = 15,
    resolution: float = 1.0,
) -> NDArray[np.int64]:
    """Leiden clusters of ``values`` (cells x genes): scanpy's standard workflow.

    Top ``n_pcs`` principal components, ``n_neighbours``-nearest-neighbour graph (UMAP
    connectivities, ``sc.pp.neighbors``), Leiden (igraph, 2 iterations) at ``resolution``. The
    number of clusters is not fixed: it is what the data support at that resolution, which is
    what makes it a reproducible reference for unlabelled data (docs/benchmarks.md, Imputation).
    """
    import anndata as ad
    import scanpy as sc
    from sklearn.decomposition import PCA

    cache_umap_kernels()
    x = np.asarray(values, dtype=np.float64)
    n_comp = max(1, min(n_pcs, x.shape[0] - 1, x.shape[1] - 1))
    adata = ad.AnnData(np.zeros((x.shape[0], 1), dtype=np.float32))
    adata.obsm["X_pca"] = PCA(n_components=n_comp, random_state=seed).fit_transform(x)
    sc.pp.neighbors(
        adata,
        n_neighbors=min(n_neighbours, x.shape[0] - 1),
        use_rep="X_pca",
        random_state=seed,
    )
    sc.tl.leiden(
        adata,
        resolution=resolution,
        random_state=seed,
        flavor="igraph",
        n_iterations=2,
        directed=False,
    )
    return np.asarray(adata.obs["leiden"].astype(int).to_numpy(), dtype=np.int64)


def clustering_scores(values: ArrayLike, labels: ArrayLike, *, seed: int = 0) -> dict[str, float]:
    """ARI and NMI of :func:`cluster_labels` (k = number of distinct ``labels``) against ``labels``."""
    truth = np.asarray(labels)
    pred = cluster_labels(values, int(np.unique(truth).size), seed=seed)
    return {"ari": adjusted_rand(truth, pred), "nmi": normalized_mutual_info(truth, pred)}


def _recovery(
    truth: NDArray[np.float64], values: NDArray[np.float64], where: NDArray[np.bool_]
) -> dict[str, float]:
    rows, cols = np.nonzero(where)
    return masked_recovery(truth, values, (rows, cols)).as_dict()


def score_sample(
    imputed_path: Path, truth_expression: Path, cell_types: dict[str, str]
) -> dict[str, Any]:
    """Scores for one sample (see the module docstring)."""
    from scregnet.io.h5ad import read_h5ad

    imp = read_h5ad(imputed_path)
    if HEADLINE_LAYER not in imp.layers:
        msg = f"no layer {HEADLINE_LAYER!r}"
        raise InputError(msg, imputed_path)
    true = read_h5ad(truth_expression)
    genes = [g for g in imp.var_names if g in set(true.var_names)]
    cells = [c for c in imp.obs_names if c in set(true.obs_names)]
    if not genes or not cells:
        msg = "no cells or genes in common with the truth expression"
        raise InputError(msg, imputed_path)
    imp = imp[cells, genes]
    true_norm = log_normalise(true[cells, genes].X)
    layer = imp.layers[HEADLINE_LAYER]
    imputed = np.asarray(layer.toarray() if sp.issparse(layer) else layer, dtype=np.float64)
    observed = log_normalise(imp.X)
    everywhere = np.ones(true_norm.shape, dtype=bool)
    dropout = (observed == 0) & (true_norm > 0)
    result: dict[str, Any] = {
        "n_cells": len(cells),
        "n_genes": len(genes),
        "imputed": {"all": _recovery(true_norm, imputed, everywhere)},
        "observed": {"all": _recovery(true_norm, observed, everywhere)},
    }
    if dropout.sum() >= 2:
        result["imputed"]["dropout"] = _recovery(true_norm, imputed, dropout)
        result["observed"]["dropout"] = _recovery(true_norm, observed, dropout)
    labelled = [i for i, c in enumerate(cells) if c in cell_types]
    if len(labelled) >= 3:
        labels = np.asarray([cell_types[cells[i]] for i in labelled])
        if np.unique(labels).size >= 2:
            result["imputed"].update(clustering_scores(imputed[labelled], labels))
            result["observed"].update(clustering_scores(observed[labelled], labels))
    return result


def _read_cell_types(path: Path) -> dict[tuple[str, str], str]:
    if not path.exists():
        return {}
    frame = read_table(path, ("sample", "barcode", "cell_type"), dtype=str)
    return {
        (s, b): t
        for s, b, t in zip(frame["sample"], frame["barcode"], frame["cell_type"], strict=True)
    }


def score(truth_dir: Path, results_dir: Path) -> dict[str, Any] | None:
    """Score every ``impute/<sample>.imputed.h5ad`` in ``results_dir``; ``None`` when there is none."""
    folder, suffix = keys.SAMPLE_RESULTS["impute"]
    files = sample_files(Path(results_dir) / folder, suffix)
    if not files:
        return None
    types = _read_cell_types(Path(truth_dir) / "cell_types.tsv")
    samples: dict[str, Any] = {}
    for sample, path in files.items():
        expr = Path(truth_dir) / "expression" / f"{sample}.h5ad"
        if not expr.exists():
            log.warning("impute: no truth expression for sample %s, skipped", sample)
            continue
        per_cell = {b: t for (s, b), t in types.items() if s == sample}
        samples[sample] = score_sample(path, expr, per_cell)
    if not samples:
        return None
    summary: dict[str, Any] = {"layer": HEADLINE_LAYER, "samples": samples}
    for which in ("imputed", "observed"):
        for key in ("ari", "nmi"):
            vals = [s[which][key] for s in samples.values() if key in s[which]]
            if vals:
                summary[f"{which}_{key}_mean"] = float(np.mean(vals))
        vals = [s[which]["all"]["pearson"] for s in samples.values()]
        summary[f"{which}_pearson_mean"] = float(np.nanmean(vals))
    return summary
