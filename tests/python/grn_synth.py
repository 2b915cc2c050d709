"""A small synthetic multi-view expression world with a known GRN (for the GRN tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def synth_grn(
    n_tfs: int = 12,
    n_targets: int = 48,
    n_cells: int = 300,
    views: tuple[str, ...] = ("v1", "v2"),
    seed: int = 0,
) -> tuple[list[str], list[str], dict[str, np.ndarray], set[tuple[str, str]]]:
    """Integer UMI counts per view (cells x genes), TF names, genes and the true edges.

    TF levels follow a few latent cell states whose TF activity differs between views; each target
    follows one or two TFs through Hill functions (activation or repression), with Poisson noise
    and library-size variation, so regulation shows in co-expression but not identically per view.
    """
    rng = np.random.default_rng(seed)
    tfs = [f"TF{i}" for i in range(n_tfs)]
    targets = [f"G{i}" for i in range(n_targets)]
    genes = tfs + targets
    edges: set[tuple[str, str]] = set()
    regulators = []
    for g in targets:
        regs = rng.choice(n_tfs, size=rng.integers(1, 3), replace=False)
        signs = rng.choice([1, -1], size=regs.size, p=[0.7, 0.3])
        regulators.append((regs, signs))
        edges |= {(tfs[r], g) for r in regs}
    counts = {}
    for v, _ in enumerate(views):
        n_states = 4
        state_means = rng.gamma(2.0, 1.0, size=(n_states, n_tfs))
        state = rng.integers(0, n_states, size=n_cells)
        tf_level = state_means[state] * rng.lognormal(0, 0.4, size=(n_cells, n_tfs))
        mean = np.empty((n_cells, len(genes)))
        mean[:, :n_tfs] = tf_level
        for j, (regs, signs) in enumerate(regulators):
            act = np.ones(n_cells)
            for r, s in zip(regs, signs, strict=True):
                h = tf_level[:, r] ** 2 / (tf_level[:, r] ** 2 + 1.5**2)
                act *= h if s > 0 else 1 - h
            mean[:, n_tfs + j] = 0.2 + 6.0 * act * rng.lognormal(0, 0.2, size=n_cells)
        lib = rng.lognormal(0, 0.3, size=(n_cells, 1))
        counts[views[v]] = rng.poisson(mean * lib * 2.0)
    return tfs, genes, counts, edges


def write_world(outdir: Path, **kwargs: object) -> dict[str, object]:
    """Write each view as ``<view>.h5ad`` (obs['view']) plus ``edges.tsv`` (tf target)."""
    import anndata as ad
    import scipy.sparse as sp

    tfs, genes, counts, edges = synth_grn(**kwargs)  # type: ignore[arg-type]
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for view, x in counts.items():
        obs = pd.DataFrame({"view": view}, index=[f"{view}_c{i}" for i in range(x.shape[0])])
        a = ad.AnnData(sp.csr_matrix(x.astype(np.float32)), obs=obs, var=pd.DataFrame(index=genes))
        path = outdir / f"{view}.h5ad"
        a.write_h5ad(path)
        paths.append(path)
    edge_path = outdir / "edges.tsv"
    pd.DataFrame(sorted(edges), columns=["tf", "target"]).to_csv(edge_path, sep="\t", index=False)
    return {"paths": paths, "edges": edges, "edge_path": edge_path, "tfs": tfs, "genes": genes}
