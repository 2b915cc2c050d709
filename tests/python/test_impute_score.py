"""The imputation scorer used by ``scregnet evaluate`` (reads files only)."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scregnet.evaluate.score_impute import log_normalise, score
from scregnet.impute.data import normalize_log1p


def _world(tmp_path: Path, imputed_from_truth: bool) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    n_cells, n_genes, n_types = 60, 80, 3
    types = np.arange(n_cells) % n_types
    programme = rng.lognormal(0, 1.2, size=(n_types, n_genes))
    true = programme[types] * rng.lognormal(0, 0.2, size=(n_cells, 1))
    observed = rng.poisson(true / true.sum(axis=1, keepdims=True) * 300)
    barcodes = [f"AAAC{i:04d}-1" for i in range(n_cells)]
    genes = [f"G{i}" for i in range(n_genes)]
    truth = tmp_path / "truth"
    (truth / "expression").mkdir(parents=True)
    ad.AnnData(true, obs=pd.DataFrame(index=barcodes), var=pd.DataFrame(index=genes)).write_h5ad(
        truth / "expression" / "s1.h5ad"
    )
    pd.DataFrame(
        {"sample": "s1", "barcode": barcodes, "cell_type": [f"type{t}" for t in types]}
    ).to_csv(truth / "cell_types.tsv", sep="\t", index=False)
    results = tmp_path / "results"
    (results / "impute").mkdir(parents=True)
    out = ad.AnnData(
        sp.csr_matrix(observed.astype(np.float32)),
        obs=pd.DataFrame(index=barcodes),
        var=pd.DataFrame(index=genes),
    )
    out.layers["imputed"] = (
        log_normalise(true) if imputed_from_truth else normalize_log1p(observed)
    ).astype(np.float32)
    out.write_h5ad(results / "impute" / "s1.imputed.h5ad")
    return truth, results


def test_score_rewards_recovering_true_expression(tmp_path: Path) -> None:
    truth, results = _world(tmp_path, imputed_from_truth=True)
    report = score(truth, results)
    assert report is not None
    sample = report["samples"]["s1"]
    assert sample["imputed"]["all"]["pearson"] == pytest.approx(1.0)
    assert sample["observed"]["all"]["pearson"] < 0.95
    assert sample["imputed"]["dropout"]["rmse"] < sample["observed"]["dropout"]["rmse"]
    assert sample["imputed"]["ari"] == pytest.approx(1.0)
    assert report["imputed_ari_mean"] >= report["observed_ari_mean"]
    assert report["layer"] == "imputed"  # the stage's headline layer is what is scored


def test_score_no_imputation_equals_observed(tmp_path: Path) -> None:
    truth, results = _world(tmp_path, imputed_from_truth=False)
    report = score(truth, results)
    assert report is not None
    s = report["samples"]["s1"]
    assert s["imputed"]["all"] == pytest.approx(s["observed"]["all"])


def test_score_is_none_without_outputs(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    assert score(tmp_path, tmp_path / "results") is None


def test_leiden_labels_recover_separated_groups_reproducibly() -> None:
    """The unlabelled-data reference (scanpy workflow, Leiden) finds the groups, any seed."""
    from scregnet.evaluate.metrics import adjusted_rand
    from scregnet.evaluate.score_impute import cluster_labels, leiden_labels

    rng = np.random.default_rng(3)
    n_groups, per_group, n_genes = 4, 40, 60
    centres = rng.normal(0, 3, size=(n_groups, n_genes))
    truth = np.repeat(np.arange(n_groups), per_group)
    values = centres[truth] + rng.normal(0, 1, size=(truth.size, n_genes))
    runs = [leiden_labels(values, seed=s, resolution=0.5) for s in range(3)]
    for labels in runs:
        assert np.unique(labels).size == n_groups
        assert adjusted_rand(truth, labels) == pytest.approx(1.0)
    # a finer resolution splits more; k-means with a wrong k cannot agree with the truth
    assert np.unique(leiden_labels(values, seed=0, resolution=3.0)).size > n_groups
    assert adjusted_rand(truth, cluster_labels(values, 2)) < 0.7
