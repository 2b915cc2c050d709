"""Real single-cell counts with known cell-type labels, for judging imputation by clustering.

SCIENCE.md section 2 scores clustering "against known labels". ``celltypist_counts`` (the real
counts in ../shared/data) has none, so the benchmark also uses the one labelled real count matrix
that ships with a dependency and needs no network: scanpy's ``pbmc68k_reduced`` (Zheng et al.
2017, 10x Chromium PBMCs): 700 cells x 765 variable genes, with the authors' ``bulk_labels``
(each cell assigned to the FACS-sorted bulk population its profile correlates with best; 10
types, so the labels are noisy: they come from expression, not from sorting each cell).

The file stores ``log1p(counts per 10k)`` in ``.raw`` and each cell's total count in
``obs['n_counts']``; the integer counts are ``expm1(raw) x n_counts / 1e4``. Every value decodes
to within 0.09 of an integer (the stored values carry three decimals), so rounding is exact.

For unlabelled immune counts such as ``celltypist_counts``, :func:`marker_labels` assigns each
cell the lineage whose canonical markers score highest (scanpy's ``score_genes``): labels that
come from a fixed list of textbook markers, not from any clustering of the data, so that no
method's output defines the reference its own ARI is measured against.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

#: largest distance from an integer a decoded value may have before the decoding is rejected
MAX_DECODE_ERROR = 0.25


#: canonical immune lineage markers (textbook / Seurat-PBMC / Human Cell Atlas immune markers),
#: fixed before any imputation method was scored against the labels they give
IMMUNE_LINEAGE_MARKERS: dict[str, tuple[str, ...]] = {
    "T cell": ("CD3D", "CD3E", "CD2", "TRAC", "TRBC2", "CD247"),
    "NK cell": ("GNLY", "NKG7", "KLRD1", "PRF1"),
    "B cell": ("MS4A1", "CD79A", "CD79B", "CD19"),
    "Monocyte": ("CD14", "VCAN", "S100A8", "S100A9", "FCN1"),
    "Macrophage": ("C1QA", "C1QB", "C1QC", "APOE", "APOC1", "MARCO", "CD163"),
    "Dendritic cell": ("CD1C", "FCER1A", "CLEC10A", "LAMP3", "CCR7", "FSCN1", "CCL22", "IDO1"),
    "Platelet": ("PPBP", "PF4", "GP9", "ITGA2B", "TUBB1"),
}
#: a lineage is scored only when this many of its markers are detected in MIN_DETECTED of cells
MIN_MARKERS = 2
MIN_DETECTED = 0.01


def marker_labels(
    counts: sp.spmatrix | NDArray[np.floating],
    genes: list[str],
    markers: dict[str, tuple[str, ...]] | None = None,
    *,
    seed: int = 0,
) -> NDArray[np.object_]:
    """Each cell's lineage by marker score; ``None`` where no lineage scores above zero.

    ``counts`` are raw counts (cells x genes, all genes: the scores' control genes are drawn from
    the whole transcriptome). Scores are scanpy's ``score_genes`` (mean log1p CP10k of the
    markers minus that of expression-matched control genes) per lineage; lineages with fewer than
    ``MIN_MARKERS`` markers detected in ``MIN_DETECTED`` of cells cannot be told apart in these
    data and are left out. The label is the best-scoring lineage.
    """
    import anndata as ad
    import scanpy as sc

    panel = IMMUNE_LINEAGE_MARKERS if markers is None else markers
    adata = ad.AnnData(sp.csr_matrix(counts, dtype=np.float32))
    adata.var_names = [str(g) for g in genes]
    detected = np.asarray((adata.X > 0).mean(axis=0)).ravel()
    seen = set(adata.var_names[detected >= MIN_DETECTED])
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    names, scores = [], []
    for lineage, genes_of in panel.items():
        present = [g for g in genes_of if g in seen]
        if len(present) < MIN_MARKERS:
            continue
        sc.tl.score_genes(adata, present, score_name="score", random_state=seed)
        names.append(lineage)
        scores.append(adata.obs["score"].to_numpy(dtype=np.float64))
    if not names:
        raise ValueError("marker_labels: no lineage has enough detected markers")
    table = np.column_stack(scores)
    labels = np.asarray(names, dtype=object)[table.argmax(axis=1)]
    labels[table.max(axis=1) <= 0] = None
    return labels


def marker_labelled_counts(
    path: str | Path,
) -> tuple[sp.csr_matrix, list[str], NDArray[np.object_]]:
    """A cells-in-rows count CSV (``celltypist_counts``) with :func:`marker_labels` over all genes.

    Returns integer counts (cells x genes, CSR float32), gene names and the labels.
    """
    import pandas as pd

    frame = pd.read_csv(path, index_col=0)
    counts = sp.csr_matrix(np.rint(frame.to_numpy(dtype=np.float64)).astype(np.float32))
    genes = [str(g) for g in frame.columns]
    return counts, genes, marker_labels(counts, genes)


def pbmc68k_counts() -> tuple[sp.csr_matrix, list[str], NDArray[np.str_]]:
    """Integer UMI counts (cells x genes, CSR float32), gene names and ``bulk_labels``."""
    import scanpy as sc

    ref = sc.datasets.pbmc68k_reduced()
    raw = ref.raw.X
    logn = np.asarray(raw.toarray() if sp.issparse(raw) else raw, dtype=np.float64)
    values = np.expm1(logn) * ref.obs["n_counts"].to_numpy(dtype=np.float64)[:, None] / 1e4
    counts = np.rint(values)
    worst = float(np.abs(values - counts).max())
    if worst > MAX_DECODE_ERROR:
        raise ValueError(f"pbmc68k_reduced: .raw does not decode to integer counts ({worst:.3f})")
    labels = ref.obs["bulk_labels"].astype(str).to_numpy()
    genes = [str(g) for g in ref.raw.var_names]
    return sp.csr_matrix(counts.astype(np.float32)), genes, labels
