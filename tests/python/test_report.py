"""The HTML report: every section and every figure is present and renders in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scregnet.cli.main import main as cli
from scregnet.report.build import SECTIONS


def _results(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    res = tmp_path / "results"
    for sub in ("atac", "impute", "tfbind", "grn", "pipeline_info/steps"):
        (res / sub).mkdir(parents=True)
    n = 120
    obs = pd.DataFrame(
        {
            "n_fragments": rng.integers(1000, 5000, n),
            "tss_enrichment": rng.normal(8, 1, n),
            "frip": rng.uniform(0.3, 0.7, n),
            "cluster": pd.Categorical(rng.integers(0, 3, n).astype(str)),
        },
        index=[f"c{i}" for i in range(n)],
    )
    atac = ad.AnnData(
        sp.random(n, 50, density=0.1, format="csr", random_state=0, dtype=np.float32), obs=obs
    )
    atac.obsm["X_umap"] = rng.normal(size=(n, 2))
    atac.write_h5ad(res / "atac" / "s1.clustered.h5ad")
    frags = pd.DataFrame(
        {
            "c": "chr1",
            "s": np.arange(n) * 1000,
            "e": np.arange(n) * 1000 + rng.integers(50, 600, n),
            "b": "c0",
            "n": 1,
        }
    )
    frags.to_csv(res / "atac" / "s1.fragments.tsv.gz", sep="\t", header=False, index=False)
    counts = rng.poisson(1.0, size=(n, 30)).astype(np.float32)
    rna = ad.AnnData(sp.csr_matrix(counts), obs=obs[[]])
    rna.layers["imputed"] = np.log1p(counts + 0.5)
    rna.uns["scregnet_impute"] = {"epochs": 17, "kept_epoch": 9, "bulk_source": "shallow_cells"}
    rna.write_h5ad(res / "impute" / "s1.imputed.h5ad")
    tfb = ad.AnnData(rng.uniform(size=(n, 4)).astype(np.float32), obs=obs[["cluster"]])
    tfb.var_names = ["CTCF", "SPI1", "GATA1", "PAX5"]
    tfb.write_h5ad(res / "tfbind" / "s1.tfbind.h5ad")
    edges = pd.DataFrame(
        {
            "tf": ["SPI1", "GATA1", "PAX5"],
            "target": ["g1", "g2", "g3"],
            "score": [0.9, 0.8, 0.7],
            "rank": [1, 2, 3],
            "method": ["target prior (ties broken by |Pearson r|) (network gate 0)"] * 3,
        }
    )
    edges.to_csv(res / "grn" / "grn_edges.tsv", sep="\t", index=False)
    (res / "evaluation.json").write_text(json.dumps({"atac": {"ari": 0.9}, "grn": {"epr": 2.0}}))
    (res / "pipeline_info" / "steps" / "COUNT.s1.json").write_text(
        json.dumps({"fingerprint": "x", "argv": ["count", "--fragments", "f"]})
    )
    return res


def test_fragment_lengths_come_from_the_counts(tmp_path: Path) -> None:
    """`scregnet count` keeps the fragments by length: the report draws them without the
    fragments file (which a pipeline's report task would otherwise have to copy in whole)."""
    res = _results(tmp_path)
    (res / "atac" / "s1.fragments.tsv.gz").unlink()
    out = res / "report" / "report.html"
    assert cli(["report", "--results", str(res), "--out", str(out)]) == 0
    assert 'alt="s1 fragment lengths"' not in out.read_text()
    clustered = res / "atac" / "s1.clustered.h5ad"
    atac = ad.read_h5ad(clustered)
    atac.uns["fragment_lengths"] = np.bincount([147, 147, 300, 60], minlength=1001)
    atac.write_h5ad(clustered)
    assert cli(["report", "--results", str(res), "--out", str(out)]) == 0
    assert 'alt="s1 fragment lengths"' in out.read_text()


def test_report_has_every_section_and_figure(tmp_path: Path) -> None:
    res = _results(tmp_path)
    out = res / "report" / "report.html"
    assert cli(["report", "--results", str(res), "--out", str(out)]) == 0
    page = out.read_text()
    for key, title in SECTIONS:
        assert f'<section id="{key}">' in page and title in page
    # 3 QC histograms + fragment lengths + UMAP + imputation + heatmap + network
    assert page.count("data:image/png;base64,") == 8
    assert "not run" not in page and "no outputs" not in page
    # the read-out behind the GRN's scores is named once, in words (not a repeated column)
    assert page.count("Published score: target prior (ties broken by |Pearson r|) (network") == 1
    assert page.count("(network gate 0)") == 1
    assert "s1: 17 fusion epochs trained; the model uses the weights of epoch 9." in page
    assert "s1: bulk stage skipped: no bulk RNA given and the cells are shallow" in page
    assert (
        (res / "report" / "scregnet_atac_qc_mqc.tsv")
        .read_text()
        .startswith("# id: 'scregnet_atac_qc'")
    )


def test_report_marks_missing_stages(tmp_path: Path) -> None:
    res = tmp_path / "grn_only"
    (res / "grn").mkdir(parents=True)
    pd.DataFrame({"tf": ["A"], "target": ["B"], "score": [0.9], "rank": [1]}).to_csv(
        res / "grn" / "grn_edges.tsv", sep="\t", index=False
    )
    out = tmp_path / "r.html"
    assert cli(["report", "--results", str(res), "--out", str(out)]) == 0
    # every stage's section but the GRN's says its stage is absent; the evaluation's says there
    # is no evaluation (it is not a stage of the run); the versions are always there
    page = out.read_text()
    assert page.count("produced no outputs") == len(SECTIONS) - 3
    assert "No evaluation.json: the results were not scored against" in page


def test_report_names_expected_results_that_are_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a Nextflow run whose failed tasks were ignored: s2's ATAC and TF binding and s1's
    # imputation never arrived, but every result of s1 that did is reported
    res = _results(tmp_path)
    (res / "impute" / "s1.imputed.h5ad").unlink()
    out = tmp_path / "r.html"
    expect = ["--expect", "atac=s1,s2", "--expect", "tfbind=s1,s2", "--expect", "impute=s1"]
    assert (
        cli(["report", "--results", str(res), "--out", str(out), *expect, "--expect", "grn"]) == 0
    )
    page = out.read_text()
    status = page[page.index('<section id="run-status">') : page.index('<section id="atac-qc">')]
    assert "3 result(s) that the samplesheet asks for are missing" in status
    rows = re.findall(r"<tr>\s*<td>(\w+)</td>\s*<td>([^<]+)</td>", status)
    assert rows == [("atac", "s2"), ("impute", "s1"), ("tfbind", "s2")]
    warnings = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert [w.split(f"{res}: ", 1)[1] for w in warnings] == [
        "no atac result for sample s2",
        "no impute result for sample s1",
        "no tfbind result for sample s2",
    ]
    # everything expected is there: no such section
    again = tmp_path / "again.html"
    assert cli(["report", "--results", str(res), "--out", str(again), "--expect", "atac=s1"]) == 0
    assert 'id="run-status"' not in again.read_text()
    # the GRN's one result missing
    (res / "grn" / "grn_edges.tsv").unlink()
    assert cli(["report", "--results", str(res), "--out", str(again), "--expect", "grn"]) == 0
    assert re.search(r"<td>grn</td>\s*<td>\(all samples\)</td>", again.read_text())


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("peaks=s1", "unknown stage 'peaks'"),
        ("atac", "atac needs its samples"),
        ("atac=", "atac needs its samples"),
        ("grn=s1", "grn takes no samples"),
    ],
)
def test_report_refuses_a_bad_expectation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, problem: str
) -> None:
    res = _results(tmp_path)
    out = tmp_path / "r.html"
    with pytest.raises(SystemExit) as exit_info:
        cli(["report", "--results", str(res), "--out", str(out), "--expect", value])
    assert exit_info.value.code == 2
    assert problem in capsys.readouterr().err
    assert not out.exists()


def test_report_on_a_folder_without_results_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    res = tmp_path / "empty"
    (res / "pipeline_info").mkdir(parents=True)
    out = tmp_path / "r.html"
    assert cli(["report", "--results", str(res), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no scregnet results" in err[0] and str(res) in err[0]
    assert not out.exists()


def test_report_of_a_run_where_every_task_failed_lists_them_all(tmp_path: Path) -> None:
    # every sample's tasks failed under errorStrategy 'ignore': the report is still written,
    # listing every expected result, and writes no MultiQC table (there is no ATAC QC)
    res = tmp_path / "results"
    (res / "atac").mkdir(parents=True)
    out = tmp_path / "report" / "r.html"
    expect = ["--expect", "atac=s1,s2", "--expect", "impute=r1", "--expect", "grn"]
    assert cli(["report", "--results", str(res), "--out", str(out), *expect]) == 0
    page = out.read_text()
    status = page[page.index('<section id="run-status">') : page.index('<section id="atac-qc">')]
    assert "4 result(s) that the samplesheet asks for are missing" in status
    rows = re.findall(r"<tr>\s*<td>(\w+)</td>\s*<td>([^<]+)</td>", status)
    assert rows == [("atac", "s1"), ("atac", "s2"), ("impute", "r1"), ("grn", "(all samples)")]
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.html"]


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed (make test installs Debian's chromium)")
    res = _results(tmp_path)
    out = res / "report" / "report.html"
    assert cli(["report", "--results", str(res), "--out", str(out)]) == 0
    # a probe marks every image that decoded to a real picture, then the DOM is dumped
    probe = (
        "<script>window.addEventListener('load',()=>{for(const i of document.images)"
        "{i.setAttribute('data-w',String(i.naturalWidth))}"
        "document.body.setAttribute('data-sections',String(document.querySelectorAll('section h2').length))})</script>"
    )
    probed = tmp_path / "probed.html"
    probed.write_text(out.read_text().replace("</body>", probe + "</body>"))
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert f'data-sections="{len(SECTIONS)}"' in dom
    widths = [int(w) for w in re.findall(r'data-w="(\d+)"', dom)]
    assert len(widths) == 8 and all(w > 100 for w in widths)


def test_report_names_tfs_the_model_dropped(tmp_path: Path) -> None:
    """TFs that `tfbind train` dropped (too few ChIP positives) and those whose probability is
    their base rate are named in the TF section."""
    res = _results(tmp_path)
    path = res / "tfbind" / "s1.tfbind.h5ad"
    tfb = ad.read_h5ad(path)
    tfb.uns["tfbind"] = {
        "dropped_tfs": np.asarray(["NRF1", "YY1"], dtype=object),
        "base_rate_tfs": np.asarray(["ANTI"], dtype=object),
    }
    tfb.write_h5ad(path)
    out = res / "report" / "report.html"
    assert cli(["report", "--results", str(res), "--out", str(out)]) == 0
    page = out.read_text()
    assert page.count("s1: no binding prediction for TF(s) NRF1, YY1: `tfbind train` dropped") == 1
    assert page.count("s1: the binding probability of TF(s) ANTI is a constant, their base") == 1
    assert page.count("data:image/png;base64,") == 8


def test_report_of_a_run_shows_only_its_finished_steps(tmp_path: Path) -> None:
    """With the trace of `scregnet run`, the report shows the outputs of that run's finished
    steps only: not a failed step's earlier output, not a pooled step it did not run, not a
    sample since dropped from the samplesheet; and it names the steps that did not finish. The
    records may name the folder where the run wrote it (moved since)."""
    res = _results(tmp_path)
    for sample in ("s2", "s3"):  # s3: an earlier run's sample, no longer in the samplesheet
        shutil.copy(res / "atac" / "s1.clustered.h5ad", res / "atac" / f"{sample}.clustered.h5ad")
        shutil.copy(res / "impute" / "s1.imputed.h5ad", res / "impute" / f"{sample}.imputed.h5ad")
    for sample in ("s1", "s2"):  # the loss table IMPUTE writes beside the imputed cells
        (res / "impute" / f"{sample}.imputed.loss.tsv").write_text(
            "phase\tepoch\tloss\treconstruction\nfuse\t1\t0.5\t0.4\n"
        )
    old = Path("/elsewhere/results")
    outputs = {
        ("FRAGMENTS", "s1"): ["atac/s1.fragments.tsv.gz"],
        ("CLUSTER", "s1"): ["atac/s1.clustered.h5ad"],
        ("IMPUTE", "s1"): ["impute/s1.imputed.h5ad"],
        ("TFBIND_MERGE", "s1"): ["tfbind/s1.tfbind.h5ad"],
        ("CLUSTER", "s2"): ["atac/s2.clustered.h5ad"],
    }
    for (stage, name), files in outputs.items():
        record = {"argv": [stage.lower(), name], "outputs": {str(old / f): "x" for f in files}}
        (res / "pipeline_info" / "steps" / f"{stage}.{name}.json").write_text(json.dumps(record))
    status = {k: "COMPLETED" for k in outputs} | {("IMPUTE", "s1"): "CACHED"}
    status |= {("IMPUTE", "s2"): "FAILED", ("GRN_MERGE", "all"): "NOT_RUN"}
    status |= {("REPORT", "all"): "NOT_RUN"}
    rows = [f"{stage}\t{name}\t{s}\t\t\t\t\t" for (stage, name), s in status.items()]
    (res / "pipeline_info" / "trace.tsv").write_text(
        "stage\tname\tstatus\tstart\twall_s\tcpu_s\tpeak_rss_mb\tlog\n" + "\n".join(rows) + "\n"
    )
    out = res / "report" / "report.html"
    assert cli(["report", "--results", str(res), "--out", str(out)]) == 0
    page = out.read_text()
    assert page.index('<section id="run-status"><h2>Incomplete run</h2>') < page.index("atac-qc")
    assert "1 step(s) failed and 2 were not run" in page
    status_part = page[: page.index('<section id="atac-qc">')]
    assert "IMPUTE" in status_part and "GRN_MERGE" in status_part and "CLUSTER" not in status_part
    assert "s1: UMAP" in page or 'alt="s1 UMAP"' in page
    assert 'alt="s2 UMAP"' in page and 'alt="s3 UMAP"' not in page
    assert 'alt="s1 imputation diagnostics"' in page
    assert 'alt="s2 imputation diagnostics"' not in page
    assert page.count("<th>reconstruction</th>") == 1  # s1's loss table, not s2's
    assert 'alt="s1 fragment lengths"' in page
    assert 'alt="GRN network"' not in page
    parameters = page[page.index('<section id="parameters">') :]
    assert "scregnet impute s1" in parameters and "count --fragments" not in parameters
    qc = (res / "report" / "scregnet_atac_qc_mqc.tsv").read_text()
    assert "\ns1\t" in qc and "\ns2\t" in qc and "s3" not in qc


def test_a_trace_without_output_records_reports_every_file(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A finished step whose record lists no outputs (written by an older scregnet, or records
    removed): the report warns and shows every result in the folder, as without a trace."""
    res = _results(tmp_path)
    (res / "pipeline_info" / "trace.tsv").write_text(
        "stage\tname\tstatus\nCOUNT\ts1\tCOMPLETED\nCLUSTER\ts1\tCOMPLETED\n"
    )
    out = res / "report" / "report.html"
    assert cli(["report", "--results", str(res), "--out", str(out)]) == 0
    assert "no record of the outputs of COUNT (s1)" in capfd.readouterr().err
    page = out.read_text()
    assert 'alt="s1 UMAP"' in page and 'alt="GRN network"' in page
    assert "Incomplete run" not in page


def test_report_with_truth_writes_the_evaluation_only_with_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report --truth` scores first but writes evaluation.json together with the report: a
    report that fails leaves the earlier evaluation as it was."""
    from scregnet.evaluate import truth

    res = _results(tmp_path)
    before = (res / "evaluation.json").read_text()
    truth_dir = tmp_path / "truth"
    truth_dir.mkdir()
    monkeypatch.setattr(truth, "evaluate", lambda _t, _r: {"atac": {"ari": float("nan")}})
    (res / "impute" / "s1.imputed.loss.tsv").write_text("")  # the report reads it; empty
    out = tmp_path / "r.html"
    argv = [
        "report",
        "--quiet",
        "--results",
        str(res),
        "--out",
        str(out),
        "--truth",
        str(truth_dir),
    ]
    assert cli(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "s1.imputed.loss.tsv" in err[0], err
    assert (res / "evaluation.json").read_text() == before and not out.exists()
    (res / "impute" / "s1.imputed.loss.tsv").unlink()
    assert cli(argv) == 0
    assert json.loads((res / "evaluation.json").read_text()) == {"atac": {"ari": None}}
    assert "ari" in out.read_text()


@pytest.mark.parametrize(
    ("command", "name"), [("report", "grn_model.pt"), ("evaluate", "model.pt")]
)
def test_report_and_evaluate_write_only_their_own_kind_of_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, name: str
) -> None:
    """A mistyped --out naming a checkpoint is refused, not replaced by HTML or JSON."""
    res = _results(tmp_path)
    model = res / "grn" / name
    model.write_bytes(b"weights")
    argv = [command, "--quiet", "--results", str(res), "--out", str(model)]
    if command == "evaluate":
        argv += ["--truth", str(tmp_path)]
    assert cli(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    suffix = ".html" if command == "report" else ".json"
    assert err[0].startswith(f"scregnet {command}: error: {model}: --out must end in {suffix}")
    assert model.read_bytes() == b"weights"


@pytest.mark.parametrize(
    ("folder", "name", "problem"),
    [
        ("atac", "s1.clustered.h5ad", "no obs['cluster']: not an output of `scregnet cluster`"),
        ("impute", "s1.imputed.h5ad", "no layer 'imputed': not an output of `scregnet impute`"),
    ],
)
def test_report_refuses_a_result_of_the_wrong_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], folder: str, name: str, problem: str
) -> None:
    """An RNA file where the clustered ATAC belongs, or ATAC counts where the imputed cells do."""
    res = _results(tmp_path)
    plain = ad.AnnData(sp.random(20, 10, density=0.3, format="csr", dtype=np.float32))
    plain.write_h5ad(res / folder / name)
    out = tmp_path / "r.html"
    assert cli(["report", "--quiet", "--results", str(res), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"scregnet report: error: {res / folder / name}: {problem}"]
    assert not out.exists()


def test_evaluate_refuses_a_clustered_file_without_clusters(tmp_path: Path) -> None:
    from scregnet.errors import InputError
    from scregnet.evaluate.score_atac import score

    res = _results(tmp_path)
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "cell_types.tsv").write_text("sample\tbarcode\tcell_type\ns1\tc0\tB\ns1\tc1\tT\n")
    assert score(truth, res)["samples"]["s1"]["cells_true"] == 2
    plain = ad.AnnData(sp.random(20, 10, density=0.3, format="csr", dtype=np.float32))
    plain.write_h5ad(res / "atac" / "s1.clustered.h5ad")
    with pytest.raises(InputError, match=r"s1\.clustered\.h5ad: no obs\['cluster'\]"):
        score(truth, res)
