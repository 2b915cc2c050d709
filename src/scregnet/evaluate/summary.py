"""A compact, reviewable summary of a results directory (the regression golden of ``make regold``).

Integers (shapes, count sums, cells) compare exactly; floats are rounded to 4 significant digits so
that the golden file reads well in a diff.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _r(value: float) -> float:
    return float(f"{float(value):.4g}")


def summarize(results: str | Path, *, top_tfs: int = 20, top_edges: int = 50) -> dict[str, Any]:
    """Matrix shapes and sums, QC medians, top TF activities per cluster, top GRN edges."""
    import anndata as ad

    results = Path(results)
    out: dict[str, Any] = {"atac": {}, "impute": {}, "tfbind": {}, "grn": {}}
    for path in sorted((results / "atac").glob("*.clustered.h5ad")):
        sample = path.name.removesuffix(".clustered.h5ad")
        adata = ad.read_h5ad(path)
        obs = adata.obs
        out["atac"][sample] = {
            "shape": list(adata.shape),
            "sum": int(adata.X.sum()),
            "nnz": int(adata.X.nnz),
            "clusters": int(obs["cluster"].nunique()),
            "median_n_fragments": _r(np.median(obs["n_fragments"])),
            "median_tss_enrichment": _r(np.median(obs["tss_enrichment"])),
            "median_frip": _r(np.median(obs["frip"])),
        }
    for path in sorted((results / "impute").glob("*.imputed.h5ad")):
        sample = path.name.removesuffix(".imputed.h5ad")
        adata = ad.read_h5ad(path)
        imputed = np.asarray(adata.layers["imputed"], dtype=np.float64)
        out["impute"][sample] = {
            "shape": list(adata.shape),
            "imputed_sum": _r(imputed.sum()),
            "imputed_mean": _r(imputed.mean()),
        }
    for path in sorted((results / "tfbind").glob("*.tfbind.h5ad")):
        sample = path.name.removesuffix(".tfbind.h5ad")
        adata = ad.read_h5ad(path)
        x = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
        means = (
            pd.DataFrame(x, columns=adata.var_names)
            .groupby(adata.obs["cluster"].astype(str).to_numpy())
            .mean()
        )
        out["tfbind"][sample] = {
            "shape": list(adata.shape),
            "top_activity_per_cluster": {
                cluster: [
                    [tf, _r(v)] for tf, v in row.sort_values(ascending=False).head(top_tfs).items()
                ]
                for cluster, row in means.iterrows()
            },
        }
    edges_path = results / "grn" / "grn_edges.tsv"
    if edges_path.exists():
        edges = pd.read_csv(edges_path, sep="\t").sort_values("rank").head(top_edges)
        out["grn"] = {
            "top_edges": [
                [t, g, _r(s)] for t, g, s in zip(edges.tf, edges.target, edges.score, strict=True)
            ]
        }
    return out


def write_summary(summary: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
