"""A compact, reviewable summary of a results directory (the regression golden of ``make regold``).

Integers (shapes, count sums, cells) compare exactly; floats are rounded to 4 significant digits so
that the golden file reads well in a diff, and compare within a :class:`SummaryTolerance`
(:func:`compare_summaries`): float results differ in their last digits between CPUs and BLAS
kernels, so the tolerances come from a measured spread (``bench/golden_spread.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scregnet import keys


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
            "clusters": int(obs[keys.CLUSTER].nunique()),
            "median_n_fragments": _r(np.median(obs["n_fragments"])),
            "median_tss_enrichment": _r(np.median(obs["tss_enrichment"])),
            "median_frip": _r(np.median(obs["frip"])),
        }
    for path in sorted((results / "impute").glob("*.imputed.h5ad")):
        sample = path.name.removesuffix(".imputed.h5ad")
        adata = ad.read_h5ad(path)
        imputed = np.asarray(adata.layers[keys.IMPUTED], dtype=np.float64)
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
            .groupby(adata.obs[keys.CLUSTER].astype(str).to_numpy())
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


@dataclass(frozen=True)
class SummaryTolerance:
    """How far two summaries of the same run may differ and still count as the same result.

    Integers (shapes, count sums, non-zeros, cluster numbers) always compare exactly. Each float
    tolerance is a bound on one kind of number; ranked lists (a cluster's top TFs, the GRN's top
    edges) compare by membership: an entry may be missing from the other list only when its own
    score lies within the score tolerance of that list's last score (a near-tie at the cut-off).
    """

    #: relative difference of the ATAC QC medians (TSS enrichment, FRiP, fragments per cell)
    atac_rel: float = 0.0
    #: relative difference of the imputed layer's sum and mean
    impute_rel: float = 0.0
    #: absolute difference of a cluster's mean activity of one TF
    tfbind_abs: float = 0.0
    #: absolute difference of one GRN edge's score
    grn_score_abs: float = 0.0
    #: least share of the expected top GRN edges found among the top edges compared
    grn_min_overlap: float = 1.0

    @classmethod
    def from_spread(
        cls, spread: dict[str, float], *, factor: float, top_edges: int
    ) -> SummaryTolerance:
        """``factor`` times a measured spread (``bench/golden_spread.py``'s ``spread``): each
        float tolerance scaled up, and the overlap's shortfall from 1 likewise, counted as at least
        one of the ``top_edges`` edges (the measurement's resolution)."""
        shortfall = max(1.0 - spread["grn_overlap"], 1.0 / top_edges)
        return cls(
            atac_rel=factor * spread["atac_rel"],
            impute_rel=factor * spread["impute_rel"],
            tfbind_abs=factor * spread["tfbind_abs"],
            grn_score_abs=factor * spread["grn_score_abs"],
            grn_min_overlap=max(0.0, 1.0 - factor * shortfall),
        )


#: floats are stored to 4 significant digits: half a unit of the 4th is always allowed
ROUNDING_REL = 5e-4


def _close_rel(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= max(rel, ROUNDING_REL) * max(abs(a), abs(b))


def _ranked(
    where: str,
    got: Sequence[Sequence[Any]],
    expected: Sequence[Sequence[Any]],
    tol: float,
    *,
    min_overlap: float = 0.0,
) -> list[str]:
    """Ranked ``[key..., score]`` lists: shared keys' scores within ``tol``; membership by overlap."""
    g = {tuple(row[:-1]): float(row[-1]) for row in got}
    e = {tuple(row[:-1]): float(row[-1]) for row in expected}
    problems = []
    for key in sorted(set(g) & set(e)):
        if abs(g[key] - e[key]) > tol + ROUNDING_REL * max(abs(g[key]), abs(e[key])):
            problems.append(
                f"{where} {'/'.join(map(str, key))}: {g[key]:.4g}, expected {e[key]:.4g} "
                f"(differs by {abs(g[key] - e[key]):.2g}, tolerance {tol:.2g})"
            )
    for ours, theirs, label in ((e, g, "expected"), (g, e, "new")):
        if not theirs:
            continue
        # a list shorter than its cut-off holds every entry: nothing may be missing from it
        cutoff = min(theirs.values()) if len(theirs) >= len(ours) else -math.inf
        for key in sorted(set(ours) - set(theirs)):
            if ours[key] > cutoff + tol:
                problems.append(
                    f"{where}: {label} entry {'/'.join(map(str, key))} ({ours[key]:.4g}) is "
                    f"missing from the other list although above its last score {cutoff:.4g} "
                    f"by more than the tolerance {tol:.2g}"
                )
    if e:
        overlap = len(set(g) & set(e)) / len(e)
        if overlap < min_overlap:
            problems.append(
                f"{where}: {overlap:.0%} of the expected entries are shared, "
                f"at least {min_overlap:.0%} required"
            )
    return problems


def compare_summaries(
    got: dict[str, Any], expected: dict[str, Any], *, tolerance: SummaryTolerance
) -> list[str]:
    """Every difference between two :func:`summarize` results beyond ``tolerance``, one line each.

    An empty list means the two runs agree.
    """
    problems: list[str] = []
    for stage in ("atac", "impute", "tfbind"):
        if sorted(got.get(stage, {})) != sorted(expected.get(stage, {})):
            problems.append(
                f"{stage}: samples {sorted(got.get(stage, {}))}, expected {sorted(expected.get(stage, {}))}"
            )
    for sample in sorted(set(got["atac"]) & set(expected["atac"])):
        g, e = got["atac"][sample], expected["atac"][sample]
        for key in sorted(set(g) | set(e)):
            a, b = g.get(key), e.get(key)
            exact = key in {"shape", "sum", "nnz", "clusters"} or a is None or b is None
            same = a == b if exact else _close_rel(a, b, tolerance.atac_rel)
            if not same:
                problems.append(f"atac {sample} {key}: {a}, expected {b}")
    for sample in sorted(set(got["impute"]) & set(expected["impute"])):
        g, e = got["impute"][sample], expected["impute"][sample]
        if g["shape"] != e["shape"]:
            problems.append(f"impute {sample} shape: {g['shape']}, expected {e['shape']}")
        for key in ("imputed_sum", "imputed_mean"):
            if not _close_rel(g[key], e[key], tolerance.impute_rel):
                problems.append(
                    f"impute {sample} {key}: {g[key]}, expected {e[key]} "
                    f"(relative tolerance {tolerance.impute_rel:.2g})"
                )
    for sample in sorted(set(got["tfbind"]) & set(expected["tfbind"])):
        g, e = got["tfbind"][sample], expected["tfbind"][sample]
        if g["shape"] != e["shape"]:
            problems.append(f"tfbind {sample} shape: {g['shape']}, expected {e['shape']}")
        gc, ec = g["top_activity_per_cluster"], e["top_activity_per_cluster"]
        if sorted(gc) != sorted(ec):
            problems.append(f"tfbind {sample} clusters: {sorted(gc)}, expected {sorted(ec)}")
        for cluster in sorted(set(gc) & set(ec)):
            problems += _ranked(
                f"tfbind {sample} cluster {cluster}", gc[cluster], ec[cluster], tolerance.tfbind_abs
            )
    g_edges, e_edges = got["grn"].get("top_edges", []), expected["grn"].get("top_edges", [])
    if bool(g_edges) != bool(e_edges):
        problems.append(f"grn: {len(g_edges)} top edges, expected {len(e_edges)}")
    elif e_edges:
        problems += _ranked(
            "grn top edges",
            g_edges,
            e_edges,
            tolerance.grn_score_abs,
            min_overlap=tolerance.grn_min_overlap,
        )
    return problems
