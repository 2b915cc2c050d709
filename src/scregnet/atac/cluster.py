"""Cells x peaks counts -> TF-IDF -> LSI -> neighbours -> Leiden clusters and UMAP (scanpy).

* TF-IDF (Signac's ``RunTFIDF`` method 1): ``log1p(x / cell_total * n_cells / peak_total * 1e4)``.
* feature selection: the ``n_top_features`` features accessible in the most cells (ArchR's
  "top accessible" selection), features seen in no cell dropped.
* LSI: truncated SVD (scikit-learn, randomised, seeded) of the TF-IDF matrix, cells embedded as
  U * S. Components whose absolute Pearson correlation with log10 fragments per cell exceeds
  ``depth_cutoff`` are dropped (usually the first one: it encodes sequencing depth).
* neighbours on the kept LSI components, Leiden (igraph) and UMAP, all seeded.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from scregnet import keys
from scregnet.atac.options import Features
from scregnet.choices import check_choice
from scregnet.errors import InputError
from scregnet.jit_cache import cache_umap_kernels

if TYPE_CHECKING:
    import anndata as ad
    import scipy.sparse as sp

log = logging.getLogger(__name__)

#: fewer cells or features than this cannot be clustered (an LSI needs 2 components and one more)
MIN_CELLS = MIN_FEATURES = 3
#: UMAP's spectral initialisation needs more cells than this (its 2 dimensions plus one); with
#: fewer it starts from random positions
MIN_SPECTRAL_CELLS = 4


def tfidf(counts: sp.spmatrix, *, scale: float = 1e4) -> sp.csr_matrix:
    """Signac-style TF-IDF of a cells x features count matrix (CSR in, CSR float32 out)."""
    import scipy.sparse as sp

    x = sp.csr_matrix(counts, dtype=np.float64)
    cell_total = np.asarray(x.sum(axis=1)).ravel()
    feature_total = np.asarray(x.sum(axis=0)).ravel()
    idf = x.shape[0] / np.maximum(feature_total, 1)
    tf = sp.diags(1.0 / np.maximum(cell_total, 1)) @ x
    out = sp.csr_matrix(tf @ sp.diags(idf * scale))
    out.data = np.log1p(out.data)
    return out.astype(np.float32)


def top_features(counts: sp.spmatrix, n_top: int | None) -> np.ndarray:
    """Column indices of the ``n_top`` features accessible in the most cells (all when None)."""
    import scipy.sparse as sp

    n_cells = np.diff(sp.csc_matrix(counts).indptr)
    order = np.argsort(-n_cells, kind="stable")
    order = order[n_cells[order] > 0]
    if n_top:
        order = order[:n_top]
    return np.sort(order)


def lsi(
    counts: sp.spmatrix,
    depth: np.ndarray,
    *,
    n_components: int = 30,
    depth_cutoff: float = 0.75,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """LSI embedding, the correlation of every component with log10 depth, and the kept ones."""
    from sklearn.decomposition import TruncatedSVD

    x = tfidf(counts)
    k = max(2, min(n_components, min(x.shape) - 1))
    svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=7, random_state=seed)
    emb = svd.fit_transform(x)  # U * S
    logd = np.log10(np.maximum(depth, 1)).astype(np.float64)
    if np.std(logd) > 0:
        corr = np.array([np.corrcoef(emb[:, j], logd)[0, 1] for j in range(emb.shape[1])])
    else:
        corr = np.zeros(emb.shape[1])
    keep = [j for j in range(emb.shape[1]) if abs(corr[j]) <= depth_cutoff]
    if len(keep) < 2:
        keep = sorted(np.argsort(np.abs(corr))[:2].tolist())
    return emb.astype(np.float32), corr, keep


def cluster_cells(
    adata: ad.AnnData,
    *,
    features: Features = "peaks",
    n_top_features: int | None = 50_000,
    n_components: int = 30,
    depth_cutoff: float = 0.75,
    n_neighbors: int = 15,
    resolution: float = 1.0,
    seed: int = 0,
    umap: bool = True,
) -> ad.AnnData:
    """Add ``obsm['X_lsi']``, ``obs['cluster']`` and ``obsm['X_umap']`` to ``adata`` (in place)."""
    check_choice("features", features, Features)
    import pandas as pd
    import scanpy as sc

    cache_umap_kernels()
    began = time.perf_counter()
    counts = _feature_counts(adata, features)
    _add_lsi(adata, counts, features, n_top_features, n_components, depth_cutoff, seed)
    sc.pp.neighbors(
        adata,
        n_neighbors=min(n_neighbors, adata.n_obs - 1),
        use_rep=keys.LSI,
        random_state=seed,
    )
    sc.tl.leiden(
        adata,
        resolution=resolution,
        key_added=keys.CLUSTER,
        random_state=seed,
        flavor="igraph",
        n_iterations=2,
        directed=False,
    )
    adata.obs[keys.CLUSTER] = pd.Categorical(adata.obs[keys.CLUSTER].astype(str))
    if umap:
        init = "spectral" if adata.n_obs >= MIN_SPECTRAL_CELLS else "random"
        sc.tl.umap(adata, init_pos=init, random_state=seed)
    log.info(
        "%d clusters over %d cells (resolution %.2f) in %.1f s",
        adata.obs[keys.CLUSTER].nunique(),
        adata.n_obs,
        resolution,
        time.perf_counter() - began,
    )
    return adata


def _feature_counts(adata: ad.AnnData, features: Features) -> sp.spmatrix:
    """The cells x features counts to cluster on (``X`` or ``obsm['tiles']``), checked: present,
    at least 3 cells, finite, non-negative (whole numbers are not required: LSI weighs any
    non-negative values)."""
    import scipy.sparse as sp

    from scregnet.io.counts import check_counts

    if features == "tiles":
        if keys.TILES not in adata.obsm:
            msg = "AnnData has no obsm['tiles'] (run `scregnet count` with --tile-size > 0)"
            raise InputError(msg)
        counts, what = adata.obsm[keys.TILES], "tile counts (obsm['tiles'])"
    else:
        counts, what = adata.X, "peak counts (X)"
    if counts is None:
        msg = "AnnData has no X (the cells x peaks counts from `scregnet count`)"
        raise InputError(msg)
    if adata.n_obs < MIN_CELLS:
        msg = f"clustering needs at least {MIN_CELLS} cells, found {adata.n_obs}"
        raise InputError(msg)
    values = counts.data if sp.issparse(counts) else np.asarray(counts).ravel()
    check_counts(values, what=what, path=None, integer=False)
    return counts


def _add_lsi(
    adata: ad.AnnData,
    counts: sp.spmatrix,
    features: Features,
    n_top_features: int | None,
    n_components: int,
    depth_cutoff: float,
    seed: int,
) -> None:
    """LSI of the top features into ``obsm['X_lsi']``, without depth-correlated components."""
    if "n_fragments" in adata.obs:
        depth = adata.obs["n_fragments"].to_numpy(dtype=np.float64)
    else:
        depth = np.asarray(counts.sum(axis=1)).ravel()
    selected = top_features(counts, n_top_features)
    if selected.size < MIN_FEATURES:
        msg = f"only {selected.size} {features} have any counts; cannot cluster"
        raise InputError(msg)
    emb, corr, keep = lsi(
        counts[:, selected], depth, n_components=n_components, depth_cutoff=depth_cutoff, seed=seed
    )
    dropped = [j for j in range(emb.shape[1]) if j not in keep]
    adata.obsm[keys.LSI] = emb[:, keep]
    adata.uns["lsi"] = {
        "features": features,
        "n_features": int(selected.size),
        "depth_correlation": corr.astype(np.float64),
        "dropped_components": np.asarray(dropped, dtype=np.int64),
        "depth_cutoff": float(depth_cutoff),
    }
    log.info(
        "LSI on %d %s: %d components, dropped %s (|r| with log depth > %.2f)",
        selected.size,
        features,
        emb.shape[1],
        dropped or "none",
        depth_cutoff,
    )
