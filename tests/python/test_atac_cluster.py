"""``scregnet cluster`` and the ATAC scorer: accuracy on simulated and real labelled cells."""

from __future__ import annotations

import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.cluster import KMeans

from scregnet.atac.cluster import cluster_cells, tfidf
from scregnet.atac.count import count_fragments
from scregnet.cli import main as cli
from scregnet.evaluate.metrics import adjusted_rand
from scregnet.evaluate.score_atac import score
from scregnet.io.h5ad import read_h5ad, write_h5ad


def depth_baseline(adata: ad.AnnData, truth: list[str]) -> float:
    """ARI of k-means on log depth alone: what a clustering that only saw depth would get."""
    depth = np.log10(adata.obs["n_fragments"].to_numpy(dtype=float))[:, None]
    k = len(set(truth))
    labels = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(depth)
    return adjusted_rand(truth, labels)


@pytest.fixture(scope="module")
def pbsmall(testdata: Path) -> ad.AnnData:
    """ArchR's PBSmall: 150 cells (B, M, T barcode prefixes), 500 bp tiles."""
    sizes = {"chr5": 180_915_260, "chr11": 135_006_516}
    bed = pd.DataFrame({"chrom": list(sizes), "start": [0, 0], "end": list(sizes.values())})
    fragments = testdata / "archr_pbsmall" / "PBSmall.tsv.gz"
    return count_fragments(fragments, bed, sizes, tile_size=500, min_fragments=0).adata


def test_tfidf_by_hand() -> None:
    x = sp.csr_matrix(np.array([[1, 0, 2], [0, 3, 1]]))
    got = tfidf(x, scale=1.0).toarray()
    # tf = x / rowsum; idf = n_cells / colsum
    tf = np.array([[1 / 3, 0, 2 / 3], [0, 3 / 4, 1 / 4]])
    idf = np.array([2 / 1, 2 / 3, 2 / 3])
    np.testing.assert_allclose(got, np.log1p(tf * idf), rtol=1e-6)


def test_real_labelled_cells_pbsmall(pbsmall: ad.AnnData) -> None:
    truth = [b.split(".")[0] for b in pbsmall.obs_names]
    adata = cluster_cells(
        pbsmall.copy(),
        features="tiles",
        n_top_features=20_000,
        n_components=10,
        resolution=0.5,
        umap=False,
    )
    ours = adjusted_rand(truth, adata.obs["cluster"])
    baseline = depth_baseline(adata, truth)
    assert ours >= 0.75, ours
    assert ours > baseline + 0.4
    # the first component is the depth one (r ~ 0.98) and is dropped
    assert list(adata.uns["lsi"]["dropped_components"]) == [0]
    assert adata.obsm["X_lsi"].shape == (150, 9)
    # keeping it (cutoff 1.0) changes the embedding
    kept = cluster_cells(
        pbsmall.copy(), features="tiles", n_top_features=20_000, n_components=10,
        resolution=0.5, umap=False, depth_cutoff=1.0,
    )  # fmt: skip
    assert kept.obsm["X_lsi"].shape == (150, 10)


def test_small_world_accuracy_and_scorer(
    small_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """BAM -> fragments -> count (knee) -> cluster on the simulator's small data: ARI >= 0.8."""
    results = tmp_path / "results"
    atac = results / "atac"
    sheet = pd.read_csv(small_world / "samplesheet.csv")
    sample = str(sheet["sample"].iloc[0])
    frags = atac / f"{sample}.fragments.tsv.gz"
    counted = atac / f"{sample}.atac.h5ad"
    clustered = atac / f"{sample}.clustered.h5ad"
    common = ["--quiet", "--threads", "2"]
    assert (
        cli.main(
            [
                "fragments",
                "--bam",
                str(small_world / sheet["bam"].iloc[0]),
                "--out",
                str(frags),
                *common,
            ]
        )
        == 0
    )
    assert cli.main([
        "count", "--fragments", str(frags), "--peaks", str(small_world / "peaks.bed"),
        "--genome", str(small_world / "genome.fa.fai"), "--tss", str(small_world / "genes.gtf"),
        "--min-fragments", "knee", "--out", str(counted), *common,
    ]) == 0  # fmt: skip
    assert (
        cli.main(["cluster", "--atac", str(counted), "--out", str(clustered), "--no-umap", *common])
        == 0
    )
    report = score(small_world / "truth", results)
    assert report is not None
    result = report["samples"][sample]
    assert result["ari"] >= 0.8, result
    assert result["cell_recall"] >= 0.95 and result["cell_precision"] >= 0.95, result
    truth = pd.read_csv(small_world / "truth" / "cell_types.tsv", sep="\t")
    truth = truth[truth["sample"] == sample].set_index("barcode")
    adata = read_h5ad(clustered)
    common_cells = [b for b in adata.obs_names if b in truth.index]
    labels = truth.loc[common_cells, "cell_type"].tolist()
    assert result["ari"] > depth_baseline(adata[common_cells], labels) + 0.3
    assert result["median_tss_enrichment"] > 2 and 0 < result["median_frip"] < 1
    # a sample the truth does not have is skipped with a warning (it scored NaN recall before)
    shutil.copy(clustered, atac / "elsewhere.clustered.h5ad")
    capsys.readouterr()
    again = score(small_world / "truth", results)
    assert again is not None and set(again["samples"]) == {sample}
    assert again["mean_cell_recall"] == report["mean_cell_recall"]
    assert "atac: no truth cells for sample elsewhere" in capsys.readouterr().err
    clustered.unlink()
    counted.unlink()
    assert score(small_world / "truth", results) is None


def test_cli_flags_umap_and_outputs(pbsmall: ad.AnnData, tmp_path: Path) -> None:
    src = tmp_path / "in.h5ad"
    write_h5ad(pbsmall, src)
    out = tmp_path / "out.h5ad"
    base = ["cluster", "--quiet", "--atac", str(src), "--out", str(out), "--features", "tiles",
            "--n-top-features", "20000", "--n-components", "10"]  # fmt: skip
    assert cli.main([*base, "--resolution", "0.5"]) == 0
    adata = read_h5ad(out)
    assert adata.obsm["X_umap"].shape == (150, 2)
    assert adata.obs["cluster"].dtype.name == "category"
    # PBSmall covers a few loci: fewer than 20,000 tiles have any insertion
    n_accessible = int((np.diff(sp.csc_matrix(pbsmall.obsm["tiles"]).indptr) > 0).sum())
    assert adata.uns["lsi"]["n_features"] == min(20_000, n_accessible) == 4662
    few = adata.obs["cluster"].nunique()
    assert cli.main([*base, "--resolution", "3.0", "--no-umap", "--seed", "1"]) == 0
    again = read_h5ad(out)
    assert "X_umap" not in again.obsm
    assert again.obs["cluster"].nunique() > few
    assert (
        cli.main([*base[:-4], "--n-top-features", "500", "--n-components", "5", "--no-umap"]) == 0
    )
    smaller = read_h5ad(out)
    assert smaller.uns["lsi"]["n_features"] == 500 and smaller.obsm["X_lsi"].shape[1] <= 5
    assert cli.main([*base[:-2], "--n-components", "10", "--n-neighbors", "5", "--no-umap"]) == 0
    assert read_h5ad(out).uns["neighbors"]["params"]["n_neighbors"] == 5


def test_peaks_features_and_bad_inputs(
    pbsmall: ad.AnnData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.h5ad"
    no_tiles = pbsmall.copy()
    del no_tiles.obsm["tiles"]
    write_h5ad(no_tiles, src)
    out = tmp_path / "out.h5ad"
    assert (
        cli.main(
            ["cluster", "--quiet", "--atac", str(src), "--out", str(out), "--features", "tiles"]
        )
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in.h5ad" in err[0] and "obsm['tiles']" in err[0]
    assert not out.exists()
    assert (
        cli.main(["cluster", "--quiet", "--atac", str(tmp_path / "none.h5ad"), "--out", str(out)])
        == 1
    )
    assert "does not exist" in capsys.readouterr().err


def test_expression_file_is_refused(
    pbsmall: ad.AnnData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An RNA h5ad given as --atac (genes, no peak coordinates) stops here with one line, not
    later in tfbind after clustering it as if its genes were peaks."""
    src, out = tmp_path / "rna.h5ad", tmp_path / "out.h5ad"
    genes = pd.DataFrame(index=[f"GENE{i}" for i in range(40)])
    x = sp.csr_matrix(np.random.default_rng(0).poisson(2.0, (pbsmall.n_obs, 40)), dtype=np.float32)
    write_h5ad(ad.AnnData(X=x, obs=pbsmall.obs.copy(), var=genes), src)
    assert cli.main(["cluster", "--quiet", "--atac", str(src), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rna.h5ad" in err[0], err
    assert "not a cells x peaks file from `scregnet count`" in err[0]
    assert "var['chrom'], var['start'], var['end']" in err[0] and "GENE0, GENE1, GENE2" in err[0]
    assert not out.exists()


def test_three_cells_get_clusters_and_a_umap(pbsmall: ad.AnnData, tmp_path: Path) -> None:
    """The fewest cells clustering takes: UMAP's spectral start needs a fourth, so it starts
    from random positions (before, an internal error from scipy's eigh)."""
    src, out = tmp_path / "three.h5ad", tmp_path / "out.h5ad"
    cells = pbsmall[[0, 60, 120]]
    n = cells.obsm["tiles"].shape[1]
    starts = np.arange(n) * 500
    var = pd.DataFrame(
        {"chrom": "chr5", "start": starts, "end": starts + 500},
        index=[f"chr5:{s}-{s + 500}" for s in starts],
    )
    write_h5ad(ad.AnnData(X=sp.csr_matrix(cells.obsm["tiles"]), obs=cells.obs.copy(), var=var), src)
    argv = ["cluster", "--quiet", "--atac", str(src), "--out", str(out), "--n-top-features", "0"]
    assert cli.main(argv) == 0
    adata = read_h5ad(out)
    assert adata.obsm["X_umap"].shape == (3, 2) and np.isfinite(adata.obsm["X_umap"]).all()
    assert adata.obs["cluster"].notna().all()


@pytest.mark.parametrize("n_top", ["1", "2", "-1"])
def test_too_few_top_features_blames_the_option(
    pbsmall: ad.AnnData, tmp_path: Path, capsys: pytest.CaptureFixture[str], n_top: str
) -> None:
    """``--n-top-features 1`` keeps one feature: the option's fault, not the counts file's."""
    src, out = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    write_h5ad(pbsmall, src)
    argv = ["cluster", "--quiet", "--atac", str(src), "--out", str(out), "--features", "tiles"]
    assert cli.main([*argv, "--n-top-features", n_top]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].endswith(f"--n-top-features must be 0 (all) or >= 3, got {n_top}"), err
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--resolution", "nan", "--resolution must be a number > 0, got nan"),
        ("--resolution", "inf", "--resolution must be a number > 0, got inf"),
        ("--resolution", "0", "--resolution must be a number > 0, got 0.0"),
        ("--depth-cutoff", "nan", "--depth-cutoff must be in (0, 1], got nan"),
        ("--depth-cutoff", "-0.5", "--depth-cutoff must be in (0, 1], got -0.5"),
        ("--depth-cutoff", "1.5", "--depth-cutoff must be in (0, 1], got 1.5"),
    ],
)
def test_bad_numeric_options_are_refused(
    pbsmall: ad.AnnData,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    problem: str,
) -> None:
    """NaN passed `<= 0` and made every cell its own cluster; any depth cutoff was taken."""
    src, out = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    write_h5ad(pbsmall, src)
    argv = ["cluster", "--quiet", "--atac", str(src), "--out", str(out), option, value]
    assert cli.main(argv) == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"scregnet cluster: error: {problem}"]
    assert not out.exists()
