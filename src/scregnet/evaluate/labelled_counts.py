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
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

#: largest distance from an integer a decoded value may have before the decoding is rejected
MAX_DECODE_ERROR = 0.25


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
