"""Names that joins rely on must be unique: repeated cell names in any AnnData or Cell Ranger
input are refused in one line naming the file; repeated gene symbols are renamed (scanpy's way)."""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from test_io_rna import write_cellranger_h5

from scregnet.cli import main as cli
from scregnet.errors import InputError
from scregnet.io.h5ad import read_h5ad, write_h5ad
from scregnet.io.rna import read_rna

#: two names repeat, 'c1' first (three times)
CELLS = ["c0", "c1", "c2", "c1", "c3", "c2", "c1", "c4"]
MESSAGE = "cell name 'c1' appears 3 times (2 names repeat); cell names must be unique"


def write_anndata(path: Path, obs: pd.DataFrame, var: pd.DataFrame, x: object = None) -> Path:
    """``path`` holding an AnnData with these (possibly repeated) names; anndata's warnings about
    them are silenced, as a user's file would simply have them."""
    shape = (len(obs), len(var))
    x = sp.csr_matrix(np.ones(shape, dtype=np.float32)) if x is None else x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        write_h5ad(ad.AnnData(X=x, obs=obs, var=var), path)
    return path


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_read_h5ad_names_the_first_repeated_cell_and_how_many_repeat(tmp_path: Path) -> None:
    path = write_anndata(
        tmp_path / "a.h5ad", pd.DataFrame(index=CELLS), pd.DataFrame(index=["g0", "g1"])
    )
    with pytest.raises(InputError) as exc:
        read_h5ad(path)
    assert str(exc.value) == f"{path}: {MESSAGE}"
    one = write_anndata(
        tmp_path / "b.h5ad", pd.DataFrame(index=["x", "y", "x"]), pd.DataFrame(index=["g"])
    )
    with pytest.raises(InputError, match=r"cell name 'x' appears 2 times; cell names must"):
        read_h5ad(one)


def test_cluster_refuses_repeated_cells_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Clusters are joined onto the fragments' barcodes by name: a repeated name would give one
    barcode whichever cluster came last."""
    obs = pd.DataFrame({"n_fragments": np.arange(len(CELLS)) + 100}, index=CELLS)
    var = pd.DataFrame(index=[f"chr1:{i * 1000}-{i * 1000 + 500}" for i in range(20)])
    x = sp.csr_matrix(np.random.default_rng(0).poisson(1.0, (len(CELLS), 20)).astype(np.float32))
    atac = write_anndata(tmp_path / "s.atac.h5ad", obs, var, x)
    out = tmp_path / "s.clustered.h5ad"
    assert cli.main(["cluster", "--quiet", "--atac", str(atac), "--out", str(out)]) == 1
    assert one_error_line(capsys).endswith(f"{atac}: {MESSAGE}")
    assert not out.exists()


def test_tracks_refuses_repeated_cells_and_writes_nothing(
    tmp_path: Path, testdata: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same barcode in two clusters: tracks would have counted its fragments in one of them."""
    fragments = testdata / "archr_pbsmall" / "PBSmall.tsv.gz"
    obs = pd.DataFrame({"cluster": pd.Categorical(["B", "T", "B"])}, index=["B.1", "B.2", "B.1"])
    clusters = write_anndata(tmp_path / "s.clustered.h5ad", obs, pd.DataFrame(index=["p"]))
    genome = tmp_path / "g.sizes"
    genome.write_text("chr5\t180915260\nchr11\t135006516\n")
    outdir = tmp_path / "tracks"
    argv = ["tracks", "--quiet", "--fragments", str(fragments), "--clusters", str(clusters)]
    assert cli.main([*argv, "--genome", str(genome), "--outdir", str(outdir)]) == 1
    line = one_error_line(capsys)
    assert line.endswith(f"{clusters}: cell name 'B.1' appears 2 times; cell names must be unique")
    assert not outdir.exists()


def test_rna_inputs_with_repeated_cells_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An .h5ad (impute, grn) and a Cell Ranger .h5 whose barcodes repeat."""
    from scregnet.grn.data import read_views

    rng = np.random.default_rng(1)
    genes = [f"G{i}" for i in range(30)]
    x = rng.poisson(2.0, (len(CELLS), 30))
    h5 = write_cellranger_h5(tmp_path / "m.h5", x, genes, CELLS)
    h5ad = write_anndata(
        tmp_path / "r.h5ad",
        pd.DataFrame(index=CELLS),
        pd.DataFrame(index=genes),
        sp.csr_matrix(x.astype(np.float32)),
    )
    for path in (h5, h5ad):
        with pytest.raises(InputError) as exc:
            read_views([path], min_cells=1)
        assert str(exc.value) == f"{path}: {MESSAGE}"
    out = tmp_path / "out" / "r.imputed.h5ad"
    assert cli.main(["impute", "--quiet", "--rna", str(h5ad), "--out", str(out)]) == 1
    assert one_error_line(capsys).endswith(f"{h5ad}: {MESSAGE}")
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_repeated_gene_symbols_in_an_h5ad_are_renamed_like_a_cellranger_h5(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Cell Ranger matrix saved as .h5ad without ``var_names_make_unique`` repeats symbols
    (several Ensembl IDs share one): imputed like the .h5 of the same counts, the same unique
    names, and the renaming logged with an example."""
    rng = np.random.default_rng(3)
    programs = rng.gamma(1.0, 1.0, (3, 120))
    x = rng.poisson(programs[rng.integers(0, 3, 90)] * rng.uniform(1, 4, (90, 1)))
    genes = [f"G{i}" for i in range(120)]
    genes[7] = genes[50] = genes[90] = "TBCE"
    genes[60] = "TBCE-1"  # taken: the second TBCE becomes TBCE-2, the third TBCE-3
    barcodes = [f"AAAC{i:04d}-1" for i in range(90)]
    h5 = write_cellranger_h5(tmp_path / "s.h5", x, genes, barcodes)
    h5ad = write_anndata(
        tmp_path / "s.h5ad",
        pd.DataFrame(index=barcodes),
        pd.DataFrame(index=genes),
        sp.csr_matrix(x.astype(np.float32)),
    )
    imputed = []
    for rna in (h5, h5ad):
        out = tmp_path / rna.suffix.lstrip(".") / "s.imputed.h5ad"
        argv = ["impute", "--rna", str(rna), "--out", str(out), "--device", "cpu", "--quiet"]
        assert cli.main([*argv, "--epochs", "1", "--hidden-dim", "16", "--latent-dim", "4"]) == 0
        err = capsys.readouterr().err
        assert f"{rna}: 2 gene symbol(s) repeat" in err and "(e.g. TBCE -> TBCE-2)" in err
        imputed.append(read_h5ad(out))
    names = list(imputed[1].var_names)
    assert names == list(imputed[0].var_names) and len(set(names)) == 120
    assert [names[i] for i in (7, 50, 60, 90)] == ["TBCE", "TBCE-2", "TBCE-1", "TBCE-3"]
    np.testing.assert_array_equal(imputed[0].layers["imputed"], imputed[1].layers["imputed"])
    assert list(read_rna(h5ad).var_names) == names


def test_tfbind_refuses_repeated_peak_names(tmp_path: Path) -> None:
    """A peak's predictions are found again by its name (merging shards, the final activity)."""
    from scregnet.tfbind.predict import check_atac

    peaks = ["chr1:0-500", "chr1:1000-1500", "chr1:0-500"]
    var = pd.DataFrame(
        {"chrom": ["chr1"] * 3, "start": [0, 1000, 0], "end": [500, 1500, 500]}, index=peaks
    )
    obs = pd.DataFrame({"cluster": pd.Categorical(["0", "1"])}, index=["a", "b"])
    path = write_anndata(tmp_path / "s.clustered.h5ad", obs, var)
    adata = read_h5ad(path)
    with pytest.raises(InputError) as exc:
        check_atac(adata, path, need_lsi=False)
    assert str(exc.value) == (
        f"{path}: peak name 'chr1:0-500' appears 2 times; peak names must be unique"
    )


def test_a_tf_with_several_motifs_uses_the_first_and_says_which(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A JASPAR file with two versions of one TF's profile: the first is used, and the log names
    it (the TF's name matched case-insensitively)."""
    from scregnet.tfbind.motifs import motifs_for_tfs, read_motifs

    path = tmp_path / "m.jaspar"
    matrix = "A [ 10 0 0 ]\nC [ 0 10 0 ]\nG [ 0 0 10 ]\nT [ 0 0 0 ]\n"
    path.write_text(f">MA0139.1 CTCF\n{matrix}>MA0139.2 Ctcf\n{matrix}>MA0001.1 FOO\n{matrix}")
    with caplog.at_level("INFO", logger="scregnet.tfbind.motifs"):
        found = motifs_for_tfs(read_motifs(path), ["CTCF", "FOO"])
    assert {tf: m.motif_id for tf, m in found.items()} == {"CTCF": "MA0139.1", "FOO": "MA0001.1"}
    assert "1 TF(s) have several motifs, the first in the file is used: CTCF (MA0139.1)" in (
        caplog.text
    )
