"""The report's MultiQC table: one row per sample with the per-cell QC medians (cells, fragments,
TSS enrichment, FRiP, duplicate rate, nucleosome signal), not one row per barcode."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scregnet.report.build import build_report


def clustered(path: Path, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    obs = pd.DataFrame(
        {
            "n_fragments": rng.integers(1000, 5000, n),
            "tss_enrichment": rng.normal(8, 1, n),
            "frip": rng.uniform(0.3, 0.7, n),
            "duplicate_rate": rng.uniform(0.05, 0.4, n),
            "nucleosome_signal": rng.uniform(0.2, 1.5, n),
            "cluster": pd.Categorical(rng.integers(0, 3, n).astype(str)),
        },
        # the same 10x barcodes in both samples: rows must stay per sample
        index=[f"AAAC{i:06d}-1" for i in range(n)],
    )
    adata = ad.AnnData(sp.random(n, 40, density=0.1, format="csr", random_state=seed), obs=obs)
    adata.write_h5ad(path)
    return obs


def test_multiqc_table_has_one_row_per_sample(tmp_path: Path) -> None:
    atac = tmp_path / "results" / "atac"
    atac.mkdir(parents=True)
    obs = {
        s: clustered(atac / f"{s}.clustered.h5ad", n, i)
        for i, (s, n) in enumerate([("day0", 90), ("day3", 60)])
    }
    build_report(tmp_path / "results", tmp_path / "report" / "report.html")
    table = pd.read_csv(tmp_path / "report" / "scregnet_atac_qc_mqc.tsv", sep="\t", comment="#")
    assert list(table["sample"]) == ["day0", "day3"]
    assert list(table["cells"]) == [90, 60]
    for column in ("n_fragments", "tss_enrichment", "frip", "duplicate_rate", "nucleosome_signal"):
        name = f"median_{column.removeprefix('n_')}"
        want = [float(np.median(obs[s][column])) for s in ("day0", "day3")]
        np.testing.assert_allclose(table[name], want, rtol=1e-6)
