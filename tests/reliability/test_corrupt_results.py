"""Corrupt results and truth files given to ``scregnet evaluate`` and ``scregnet report``: one line
naming the file, a non-zero exit and nothing written."""

from __future__ import annotations

import errno
import gzip
import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scregnet.cli.main import main as cli

TFS = ["SPI1", "GATA1", "PAX5"]
MQC = "scregnet_atac_qc_mqc.tsv"


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small valid results folder (every stage's output) and a simulator-style truth folder."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("good")
    res, truth = root / "results", root / "truth"
    for sub in ("atac", "impute", "tfbind", "grn"):
        (res / sub).mkdir(parents=True)
    truth.mkdir()
    n = 60
    cells = [f"c{i}" for i in range(n)]
    obs = pd.DataFrame(
        {
            "n_fragments": rng.integers(1000, 5000, n),
            "tss_enrichment": rng.normal(8, 1, n),
            "frip": rng.uniform(0.3, 0.7, n),
            "cluster": pd.Categorical(rng.integers(0, 3, n).astype(str)),
        },
        index=cells,
    )
    atac = ad.AnnData(
        sp.random(n, 40, density=0.1, format="csr", random_state=0, dtype=np.float32), obs=obs
    )
    atac.write_h5ad(res / "atac" / "s1.clustered.h5ad")
    counts = rng.poisson(1.0, size=(n, 20)).astype(np.float32)
    rna = ad.AnnData(sp.csr_matrix(counts), obs=obs[[]])
    rna.layers["imputed"] = np.log1p(counts + 0.5)
    rna.write_h5ad(res / "impute" / "s1.imputed.h5ad")
    pd.DataFrame({"epoch": [1, 2], "loss": [0.9, 0.5]}).to_csv(
        res / "impute" / "s1.imputed.loss.tsv", sep="\t", index=False
    )
    tfb = ad.AnnData(rng.uniform(size=(n, len(TFS))).astype(np.float32), obs=obs[["cluster"]])
    tfb.var_names = TFS
    tfb.write_h5ad(res / "tfbind" / "s1.tfbind.h5ad")
    pd.DataFrame(
        {
            "tf": TFS,
            "target": ["g1", "g2", "g3"],
            "score": [0.9, 0.8, 0.7],
            "rank": [1, 2, 3],
        }
    ).to_csv(res / "grn" / "grn_edges.tsv", sep="\t", index=False)
    pd.DataFrame({"tf": ["SPI1", "PAX5"], "target": ["g1", "g9"]}).to_csv(
        truth / "grn_edges.tsv", sep="\t", index=False
    )
    pd.DataFrame({"sample": "s1", "barcode": cells, "cell_type": obs["cluster"].to_numpy()}).to_csv(
        truth / "cell_types.tsv", sep="\t", index=False
    )
    peaks = 300
    binding = pd.DataFrame(
        {
            "peak_id": [f"p{i}" for i in range(peaks)],
            "chrom": "chr1",
            "start": np.arange(peaks) * 1000,
            "end": np.arange(peaks) * 1000 + 500,
            "cell_type": "0",
            **{tf: rng.integers(0, 2, peaks) for tf in TFS},
        }
    )
    binding.to_csv(truth / "tf_binding.tsv.gz", sep="\t", index=False)
    return {"results": res, "truth": truth}


def _copy(good: dict[str, Path], tmp_path: Path, *stages: str) -> tuple[Path, Path]:
    """Copies of the truth folder and of the results folder with only ``stages``."""
    truth = Path(shutil.copytree(good["truth"], tmp_path / "truth"))
    res = tmp_path / "results"
    res.mkdir()
    for stage in stages:
        shutil.copytree(good["results"] / stage, res / stage)
    return truth, res


def _binary(path: Path) -> None:
    path.write_bytes(b"\x9f" + np.random.default_rng(1).bytes(4000))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _nan_score(path: Path) -> None:
    edges = pd.read_csv(path, sep="\t")
    edges.loc[0, "score"] = np.nan
    edges.to_csv(path, sep="\t", index=False)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], bad: Path, message: str) -> None:
    assert cli([*argv, "--quiet"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert f"{bad}: " in err[0] and message in err[0] and "internal error" not in err[0], err


EVALUATE = {
    # (stages in the results, file corrupted (results/... or truth/...), corruption, message)
    "edges_binary": (("grn",), "results/grn/grn_edges.tsv", _binary, "not UTF-8 text"),
    "edges_nan_score": (
        ("grn",),
        "results/grn/grn_edges.tsv",
        _nan_score,
        "score on data row 1 is missing or NaN",
    ),
    "tfbind_truncated": (
        ("tfbind",),
        "results/tfbind/s1.tfbind.h5ad",
        _truncate,
        "not a readable .h5ad file",
    ),
    "truth_cell_types_binary": (
        ("atac",),
        "truth/cell_types.tsv",
        _binary,
        "not UTF-8 text",
    ),
    "truth_binding_truncated": (
        ("tfbind",),
        "truth/tf_binding.tsv.gz",
        _truncate,
        "cannot read (Compressed file ended",
    ),
}


@pytest.mark.parametrize("case", sorted(EVALUATE))
def test_evaluate_names_the_corrupt_file(
    case: str, good: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stages, rel, corrupt, message = EVALUATE[case]
    truth, res = _copy(good, tmp_path, *stages)
    bad = tmp_path / rel
    corrupt(bad)
    out = tmp_path / "evaluation.json"
    argv = ["evaluate", "--truth", str(truth), "--results", str(res), "--out", str(out)]
    _fails(capsys, argv, bad, message)
    assert not out.exists()


REPORT = {
    "edges_binary": ("grn", "grn_edges.tsv", _binary, "not UTF-8 text"),
    "edges_empty": ("grn", "grn_edges.tsv", _empty, "file is empty"),
    "edges_nan_score": ("grn", "grn_edges.tsv", _nan_score, "score on data row 1 is missing"),
    "clustered_truncated": ("atac", "s1.clustered.h5ad", _truncate, "not a readable .h5ad"),
    "imputed_truncated": ("impute", "s1.imputed.h5ad", _truncate, "not a readable .h5ad"),
    "tfbind_truncated": ("tfbind", "s1.tfbind.h5ad", _truncate, "not a readable .h5ad"),
    "loss_binary": ("impute", "s1.imputed.loss.tsv", _binary, "not UTF-8 text"),
}


@pytest.mark.parametrize("case", sorted(REPORT))
def test_report_names_the_corrupt_file(
    case: str, good: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stage, name, corrupt, message = REPORT[case]
    _, res = _copy(good, tmp_path, "atac", "impute", "tfbind", "grn")
    bad = res / stage / name
    corrupt(bad)
    out = tmp_path / "report" / "report.html"
    _fails(capsys, ["report", "--results", str(res), "--out", str(out)], bad, message)
    assert not out.exists() and not (out.parent / MQC).exists()


def test_report_help_names_the_multiqc_table(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli(["report", "--help"])
    assert MQC in capsys.readouterr().out


def test_report_and_multiqc_table_appear_together(
    good: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A disk that fills up while the MultiQC table is written leaves neither file."""
    _, res = _copy(good, tmp_path, "atac")

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    out = tmp_path / "report" / "report.html"
    assert cli(["report", "--results", str(res), "--out", str(out), "--quiet"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "no space left" in err[0].lower(), err
    assert not out.exists() and not (out.parent / MQC).exists()
    assert not list(out.parent.iterdir())  # no temporary files either


def test_uncorrupted_copies_pass(good: dict[str, Path], tmp_path: Path) -> None:
    """The folders the tests corrupt are accepted as they are."""
    truth, res = _copy(good, tmp_path, "atac", "impute", "tfbind", "grn")
    out = tmp_path / "evaluation.json"
    argv = ["evaluate", "--truth", str(truth), "--results", str(res), "--out", str(out)]
    assert cli([*argv, "--quiet"]) == 0 and out.exists()
    html = tmp_path / "report" / "report.html"
    assert cli(["report", "--results", str(res), "--out", str(html), "--quiet"]) == 0
    assert html.exists() and (html.parent / MQC).exists()


#: a gzipped fragments file cut in half
_TRUNCATED = gzip.compress(
    "".join(f"chr1\t{i}\t{i + 150}\tc{i % 60}\t1\n" for i in range(0, 400_000, 7)).encode(),
    mtime=0,  # the same bytes, and test ids, in every process (pytest-xdist compares them)
)[:100_000]


@pytest.mark.parametrize(
    ("rel", "content", "message"),
    [
        ("evaluation.json", b'{"atac": ', "not valid JSON (line 1"),
        ("evaluation.json", b"[1, 2]", "not an evaluation report"),
        ("pipeline_info/steps/COUNT_s1.json", b'{"cmd": "count"}', "no 'argv' list"),
        # the fragment-length plot's input
        ("atac/s1.fragments.tsv.gz", _TRUNCATED, "not a readable fragments file"),
        (
            "atac/s1.fragments.tsv.gz",
            gzip.compress(b"chr1\tten\t200\tAAAC\t1\n", mtime=0),
            "not a readable fragments file",
        ),
    ],
)
def test_report_names_a_malformed_record(
    rel: str,
    content: bytes,
    message: str,
    good: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, res = _copy(good, tmp_path, "grn", "atac")
    bad = res / rel
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(content)
    out = tmp_path / "report" / "report.html"
    _fails(capsys, ["report", "--results", str(res), "--out", str(out)], bad, message)
    assert not out.exists()
