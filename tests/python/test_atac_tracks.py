"""``scregnet tracks``: bigWig values read back equal a direct per-base computation."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pyBigWig
import pytest
import scipy.sparse as sp

from scregnet.cli import main as cli
from scregnet.io.h5ad import write_h5ad

SIZES = {"chr11": 135_006_516, "chr5": 180_915_260}


@pytest.fixture(scope="module")
def pbsmall(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ArchR's PBSmall with its true cell types as the clusters (one cell left unclustered)."""
    tmp = tmp_path_factory.mktemp("tracks")
    fragments = testdata / "archr_pbsmall" / "PBSmall.tsv.gz"
    with gzip.open(fragments, "rt") as handle:
        barcodes = sorted({line.split("\t")[3] for line in handle})
    barcodes.remove("T.1")
    clusters = pd.Categorical([b.split(".")[0] + "/x" for b in barcodes])
    adata = ad.AnnData(
        X=sp.csr_matrix((len(barcodes), 1), dtype=np.int32),
        obs=pd.DataFrame({"cluster": clusters, "other": ["a"] * len(barcodes)}, index=barcodes),
    )
    clustered = tmp / "s.clustered.h5ad"
    write_h5ad(adata, clustered)
    genome = tmp / "g.sizes"
    genome.write_text("".join(f"{c}\t{n}\n" for c, n in SIZES.items()))
    return {"fragments": fragments, "clusters": clustered, "genome": genome, "dir": tmp}


def direct(fragments: Path, bin_size: int) -> dict[str, tuple[Counter[tuple[str, int]], int]]:
    """Insertions per (chrom, bin) and total insertions per cluster, the slow obvious way."""
    out: dict[str, tuple[Counter[tuple[str, int]], int]] = {}
    with gzip.open(fragments, "rt") as handle:
        for line in handle:
            chrom, start, end, bc, _ = line.rstrip("\n").split("\t")
            if bc == "T.1":
                continue
            label = bc.split(".")[0] + "/x"
            counter, total = out.get(label, (Counter(), 0))
            for site in (int(start), int(end) - 1):
                counter[(chrom, site // bin_size)] += 1
            out[label] = (counter, total + 2)
    return out


@pytest.mark.parametrize("bin_size", [1, 100])
def test_values_read_back_equal_direct_cpm(
    pbsmall: dict[str, Path], tmp_path: Path, bin_size: int
) -> None:
    outdir = tmp_path / "tracks"
    code = cli.main([
        "tracks", "--quiet", "--fragments", str(pbsmall["fragments"]), "--clusters", str(pbsmall["clusters"]),
        "--genome", str(pbsmall["genome"]), "--outdir", str(outdir), "--bin-size", str(bin_size),
    ])  # fmt: skip
    assert code == 0
    tracks = sorted(p.name for p in outdir.iterdir() if not p.name.startswith("."))
    assert tracks == ["B_x.bw", "M_x.bw", "T_x.bw"]
    expected = direct(pbsmall["fragments"], bin_size)
    for label, (counter, total) in expected.items():
        bw = pyBigWig.open(str(outdir / f"{label.replace('/', '_')}.bw"))
        assert bw.chroms() == SIZES
        got: dict[tuple[str, int], float] = {}
        for chrom in SIZES:
            for start, end, value in bw.intervals(chrom) or []:
                assert end - start == bin_size or end == SIZES[chrom]
                got[(chrom, start // bin_size)] = value
        want = {k: v * 1e6 / total for k, v in counter.items()}
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=1e-6)
        # CPM: the values of a per-base track sum to a million
        if bin_size == 1:
            assert sum(got.values()) == pytest.approx(1e6)
        bw.close()


def test_groupby_and_bad_inputs(
    pbsmall: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outdir = tmp_path / "t"
    base = ["tracks", "--quiet", "--fragments", str(pbsmall["fragments"]), "--clusters", str(pbsmall["clusters"]),
            "--genome", str(pbsmall["genome"]), "--outdir", str(outdir)]  # fmt: skip
    assert cli.main([*base, "--groupby", "other", "--bin-size", "1000"]) == 0
    assert [p.name for p in outdir.iterdir() if not p.name.startswith(".")] == ["a.bw"]
    assert cli.main([*base, "--groupby", "nope"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'nope'" in err[0] and "s.clustered.h5ad" in err[0]
    wrong = tmp_path / "wrong.sizes"
    wrong.write_text("11\t135006516\n5\t180915260\n")
    out2 = tmp_path / "t2"
    assert cli.main([*base[:-1], str(out2), "--genome", str(wrong)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "chr11" in err[0] and "vs 11" in err[0]
    assert not out2.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".t2")]


def test_every_fragment_on_excluded_chromosomes(
    pbsmall: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--exclude-chroms covering every chromosome: the line says the fragments were excluded, not
    that the barcodes do not match (they do); nothing is written."""
    outdir = tmp_path / "t"
    code = cli.main([
        "tracks", "--quiet", "--fragments", str(pbsmall["fragments"]), "--clusters", str(pbsmall["clusters"]),
        "--genome", str(pbsmall["genome"]), "--outdir", str(outdir), "--exclude-chroms", "chr5,chr11",
    ])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "PBSmall.tsv.gz" in err[0] and "lie on excluded chromosome(s) chr11, chr5" in err[0]
    assert "--exclude-chroms" in err[0] and "barcodes" not in err[0]
    assert not outdir.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".t")]


def test_labels_become_safe_file_names(
    pbsmall: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Cells without a label are left out (no `nan.bw`), no label gives a hidden file, and two
    labels that give one file name are named."""
    obs = ad.read_h5ad(pbsmall["clusters"]).obs
    kinds = np.asarray([b.split(".")[0] for b in obs.index], dtype=object)
    labels = np.where(kinds == "B", ".", np.where(kinds == "M", "x y", None))
    obs["odd"] = pd.Categorical(labels)  # B cells ".", M cells "x y", T cells unlabelled
    obs["clash"] = pd.Categorical(np.where(kinds == "B", "a", "A"))
    clusters = tmp_path / "odd.clustered.h5ad"
    write_h5ad(ad.AnnData(X=sp.csr_matrix((len(obs), 1), dtype=np.int32), obs=obs), clusters)
    outdir = tmp_path / "t"
    base = ["tracks", "--quiet", "--fragments", str(pbsmall["fragments"]), "--clusters",
            str(clusters), "--genome", str(pbsmall["genome"]), "--bin-size", "1000"]  # fmt: skip
    loud = [a for a in base if a != "--quiet"]
    assert cli.main([*loud, "--outdir", str(outdir), "--groupby", "odd"]) == 0
    assert sorted(p.name for p in outdir.iterdir() if p.suffix == ".bw") == ["_.bw", "x_y.bw"]
    assert "cell(s) have no odd label and are left out" in capsys.readouterr().err
    clash = tmp_path / "c"
    assert cli.main([*base, "--outdir", str(clash), "--groupby", "clash"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"scregnet tracks: error: {clash}: cluster labels 'A' and 'a' give the same file name "
        "(a); relabel one"
    ]
