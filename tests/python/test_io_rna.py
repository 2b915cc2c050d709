"""scRNA inputs: Cell Ranger feature-barcode matrices (.h5) read like an .h5ad of the same counts."""

from __future__ import annotations

import shutil
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scregnet.cli import main as cli
from scregnet.errors import InputError
from scregnet.io.rna import read_rna
from scregnet.io.samplesheet import read_samplesheet


def write_cellranger_h5(
    path: Path,
    counts: np.ndarray,
    symbols: list[str],
    barcodes: list[str],
    *,
    peaks: int = 0,
) -> Path:
    """The HDF5 layout Cell Ranger 3+ writes (``matrix/``: features x barcodes CSC), with
    ``peaks`` extra ATAC features after the genes as Cell Ranger ARC appends them."""
    n_cells, n_genes = counts.shape
    peak_counts = np.random.default_rng(1).poisson(0.5, (n_cells, peaks))
    matrix = sp.csc_matrix(np.hstack([counts, peak_counts]).T)  # features x barcodes
    ids = [f"ENSG{i:011d}" for i in range(n_genes)] + [f"chr1:{i}-{i + 500}" for i in range(peaks)]
    names = list(symbols) + ids[n_genes:]
    types = ["Gene Expression"] * n_genes + ["Peaks"] * peaks
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m["barcodes"] = np.array(barcodes, dtype="S")
        m["data"] = matrix.data.astype(np.int32)
        m["indices"] = matrix.indices.astype(np.int64)
        m["indptr"] = matrix.indptr.astype(np.int64)
        m["shape"] = np.array(matrix.shape, dtype=np.int32)
        features = m.create_group("features")
        features["id"] = np.array(ids, dtype="S")
        features["name"] = np.array(names, dtype="S")
        features["feature_type"] = np.array(types, dtype="S")
        features["genome"] = np.array(["GRCh38"] * len(ids), dtype="S")
        features["_all_tag_keys"] = np.array([b"genome"])
    return path


@pytest.fixture
def counts() -> tuple[np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(0)
    x = rng.poisson(rng.gamma(0.5, 2.0, 40), (30, 40))
    return x, [f"G{i}" for i in range(40)], [f"AAAC{i:04d}-1" for i in range(30)]


def test_cellranger_arc_h5_gives_the_gene_expression_counts(
    tmp_path: Path, counts: tuple[np.ndarray, list[str], list[str]]
) -> None:
    x, genes, barcodes = counts
    path = write_cellranger_h5(
        tmp_path / "filtered_feature_bc_matrix.h5", x, genes, barcodes, peaks=7
    )
    adata = read_rna(path)
    assert adata.shape == (30, 40)  # the 7 peaks are not genes
    np.testing.assert_array_equal(adata.X.toarray(), x)
    assert list(adata.var_names) == genes and list(adata.obs_names) == barcodes
    assert adata.var["gene_ids"].iloc[3] == "ENSG00000000003"


def test_repeated_symbols_are_renamed_and_logged(
    tmp_path: Path,
    counts: tuple[np.ndarray, list[str], list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    x, genes, barcodes = counts
    genes = ["TBCE", *genes[1:5], "TBCE", *genes[6:]]
    adata = read_rna(write_cellranger_h5(tmp_path / "m.h5", x, genes, barcodes))
    assert adata.var_names[0] == "TBCE" and adata.var_names[5] == "TBCE-1"
    assert adata.var_names.is_unique
    assert "1 gene symbol(s) repeat" in caplog.text


def test_an_atac_matrix_is_refused(tmp_path: Path, testdata: Path) -> None:
    """A real 10x-layout peak x cell matrix (MAESTRO's) given as RNA: no genes in it."""
    path = tmp_path / "peaks.h5"
    shutil.copy(testdata / "maestro_chr22" / "test_peak_count.h5", path)
    with pytest.raises(InputError, match="no Gene Expression features") as exc:
        read_rna(path)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.h5", None, "does not exist"),
        ("empty.h5", b"", "file is empty"),
        ("text.h5", b"barcode,gene\n", "not a Cell Ranger feature-barcode matrix .h5"),
        ("other.h5", "hdf5", "not a Cell Ranger feature-barcode matrix .h5"),
        ("counts.csv", b"a,b\n", "must be an .h5ad or a Cell Ranger"),
    ],
)
def test_bad_rna_files(
    tmp_path: Path, name: str, content: bytes | str | None, message: str
) -> None:
    path = tmp_path / name
    if content == "hdf5":
        with h5py.File(path, "w") as f:
            f["x"] = np.arange(3)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(InputError) as exc:
        read_rna(path)
    assert message in str(exc.value) and str(path) in str(exc.value)
    assert len(str(exc.value).splitlines()) == 1


def test_impute_reads_a_cellranger_h5_like_the_h5ad(
    tmp_path: Path, counts: tuple[np.ndarray, list[str], list[str]]
) -> None:
    """The same counts as .h5 and as .h5ad: the same imputed values (CPU, same seed)."""
    rng = np.random.default_rng(3)
    programs = rng.gamma(1.0, 1.0, (3, 120))
    x = rng.poisson(programs[rng.integers(0, 3, 90)] * rng.uniform(1, 4, (90, 1)))
    genes = [f"G{i}" for i in range(120)]
    barcodes = [f"AAAC{i:04d}-1" for i in range(90)]
    h5 = write_cellranger_h5(tmp_path / "s.h5", x, genes, barcodes, peaks=5)
    h5ad = tmp_path / "s.h5ad"
    ad.AnnData(
        sp.csr_matrix(x.astype(np.float32)),
        obs=pd.DataFrame(index=barcodes),
        var=pd.DataFrame(index=genes),
    ).write_h5ad(h5ad)
    layers = []
    for rna in (h5, h5ad):
        out = tmp_path / rna.suffix.lstrip(".") / "s.imputed.h5ad"
        args = ["impute", "--rna", str(rna), "--out", str(out), "--device", "cpu"]
        sizes = ["--epochs", "1", "--hidden-dim", "16", "--latent-dim", "4", "--quiet"]
        assert cli.main([*args, *sizes]) == 0
        layers.append(ad.read_h5ad(out).layers["imputed"])
    np.testing.assert_array_equal(layers[0], layers[1])


def test_samplesheet_takes_a_cellranger_h5(tmp_path: Path) -> None:
    for name in ("a.bam", "a.bam.bai", "a.h5", "a.csv"):
        (tmp_path / name).write_bytes(b"x")
    sheet = tmp_path / "s.csv"
    sheet.write_text("sample,bam,rna\nA,a.bam,a.h5\n")
    assert read_samplesheet(sheet)[0].rna == tmp_path / "a.h5"
    sheet.write_text("sample,bam,rna\nA,a.bam,a.csv\n")
    with pytest.raises(InputError, match=r"must end with \.h5ad or \.h5"):
        read_samplesheet(sheet)


def test_impute_view_labels_the_cells_and_the_grn_pools_by_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two Cell Ranger matrices (no view of their own) imputed with ``--view day0``: the GRN's
    reader sees one view of both files' cells. An .h5ad's own, different view is replaced, with
    a warning; a view with a space is refused in one line."""
    from scregnet.grn.data import read_views

    rng = np.random.default_rng(5)
    genes = [f"G{i}" for i in range(60)]
    outs = []
    for name in ("a", "b"):
        x = rng.poisson(rng.gamma(1.0, 2.0, 60), (40, 60))
        rna = write_cellranger_h5(
            tmp_path / f"{name}.h5", x, genes, [f"{name}{i}-1" for i in range(40)]
        )
        outs.append(tmp_path / "out" / f"{name}.imputed.h5ad")
        argv = ["impute", "--rna", str(rna), "--out", str(outs[-1]), "--view", "day0"]
        sizes = ["--epochs", "1", "--hidden-dim", "16", "--latent-dim", "4", "--device", "cpu"]
        assert cli.main([*argv, *sizes, "--quiet"]) == 0
        assert set(ad.read_h5ad(outs[-1]).obs["view"]) == {"day0"}
    views = read_views(outs)
    assert views.views == ["day0"] and views.n_cells() == [80]

    x = rng.poisson(rng.gamma(1.0, 2.0, 60), (40, 60)).astype(np.float32)
    obs = pd.DataFrame({"view": ["old"] * 40}, index=[f"c{i}" for i in range(40)])
    h5ad = tmp_path / "labelled.h5ad"
    ad.AnnData(sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(h5ad)
    out = tmp_path / "relabelled" / "c.imputed.h5ad"
    argv = ["impute", "--rna", str(h5ad), "--out", str(out), "--view", "day3", "--epochs", "1"]
    assert cli.main([*argv, "--hidden-dim", "16", "--latent-dim", "4", "--device", "cpu"]) == 0
    assert set(ad.read_h5ad(out).obs["view"]) == {"day3"}
    assert "obs['view'] (old) replaced by the view day3" in capsys.readouterr().err


def test_impute_refuses_a_view_with_a_space(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = np.random.default_rng(0).poisson(2.0, (20, 30))
    rna = write_cellranger_h5(
        tmp_path / "a.h5", x, [f"G{i}" for i in range(30)], [f"c{i}" for i in range(20)]
    )
    out = tmp_path / "out" / "a.imputed.h5ad"
    assert (
        cli.main(["impute", "--rna", str(rna), "--out", str(out), "--view", "day 0", "--quiet"])
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a view is a non-empty name without spaces" in err[0]
    assert not out.exists()


def test_grn_refuses_two_matrices_whose_names_make_one_view(tmp_path: Path) -> None:
    """Cell Ranger names every sample's matrix alike: two of them without views would be pooled
    as one view by their file names, so the GRN's reader refuses them and says what to do."""
    from scregnet.grn.data import read_views

    rng = np.random.default_rng(6)
    genes = [f"G{i}" for i in range(40)]
    paths = []
    for sample in ("s1", "s2"):
        (tmp_path / sample).mkdir()
        x = rng.poisson(2.0, (50, 40))
        barcodes = [f"AAAC{i:04d}-1" for i in range(50)]
        name = tmp_path / sample / "filtered_feature_bc_matrix.h5"
        paths.append(write_cellranger_h5(name, x, genes, barcodes))
    with pytest.raises(
        InputError, match="both file names give the view 'filtered_feature_bc_matrix'"
    ) as exc:
        read_views(paths)
    assert str(paths[1]) in str(exc.value) and "--view" in str(exc.value)
    one = read_views(paths[:1])  # one file: its name is its view
    assert one.views == ["filtered_feature_bc_matrix"] and one.n_cells() == [50]


def test_atac_outputs_are_refused_as_rna(
    tmp_path: Path, counts: tuple[np.ndarray, list[str], list[str]]
) -> None:
    """A cells x peaks file (scregnet count/cluster) or a TF-binding file given as scRNA stops with
    the file's name; genes that carry coordinates under their own names are still expression."""
    x, symbols, barcodes = counts
    starts = np.arange(len(symbols)) * 1000
    coords = {"chrom": "chr1", "start": starts, "end": starts + 500}
    peaks = pd.DataFrame(coords, index=[f"chr1:{s}-{s + 500}" for s in starts])
    src = tmp_path / "s.atac.h5ad"
    ad.AnnData(sp.csr_matrix(x, dtype=np.float32), pd.DataFrame(index=barcodes), peaks).write_h5ad(
        src
    )
    with pytest.raises(InputError, match=r"s\.atac\.h5ad: a cells x peaks file .*chr1:0-500"):
        read_rna(src)
    genes = pd.DataFrame(coords, index=symbols)
    annotated = tmp_path / "annotated.h5ad"
    ad.AnnData(sp.csr_matrix(x, dtype=np.float32), pd.DataFrame(index=barcodes), genes).write_h5ad(
        annotated
    )
    assert list(read_rna(annotated).var_names) == symbols
    tfbind = ad.AnnData(np.zeros((len(barcodes), 3), dtype=np.float32))
    tfbind.obs_names, tfbind.var_names = barcodes, ["CTCF", "GATA1", "SPI1"]
    tfbind.uns["tfbind"] = {"tfs": ["CTCF", "GATA1", "SPI1"]}
    tfbind.write_h5ad(tmp_path / "s.tfbind.h5ad")
    with pytest.raises(InputError, match=r"a TF-binding file from `scregnet tfbind`"):
        read_rna(tmp_path / "s.tfbind.h5ad")
