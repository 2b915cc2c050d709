"""End to end on the simulator's tiny world: every stage, evaluation, report, golden regression,
kill -9 + resume, and run-to-run determinism.

The pipeline runs through ``bin/scregnet run`` exactly as a user runs it. Training is shortened with
``*_epochs`` and ``*_args`` params (the same knobs Nextflow's ext.args uses).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from golden_summary import compare_summaries, summarize
from golden_tolerance import golden_tolerance
from tiny_run import run, tiny_params

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "tiny_summary.json"


def test_every_stage_wrote_its_outputs(tiny_run: Path) -> None:
    for sample in ("sample1", "sample2"):
        for rel in (
            f"atac/{sample}.fragments.tsv.gz",
            f"atac/{sample}.fragments.tsv.gz.tbi",
            f"atac/{sample}.atac.h5ad",
            f"atac/{sample}.clustered.h5ad",
            f"atac/{sample}.qc.tsv",
            f"impute/{sample}.imputed.h5ad",
            f"tfbind/{sample}.tfbind.h5ad",
        ):
            assert (tiny_run / rel).is_file(), rel
        assert list((tiny_run / "tracks" / sample).glob("*.bw"))
    for rel in (
        "tfbind/model.pt",
        "grn/grn_edges.tsv",
        "grn/grn_attention.tsv",
        "report/report.html",
    ):
        assert (tiny_run / rel).is_file(), rel
    edges = pd.read_csv(tiny_run / "grn" / "grn_edges.tsv", sep="\t")
    assert list(edges.columns[:4]) == ["tf", "target", "score", "rank"]
    assert (np.diff(edges["score"].to_numpy()) <= 0).all()


def test_rerun_skips_every_stage(tiny_run: Path, tiny_world: Path, tmp_path: Path) -> None:
    params = tiny_params(tiny_world, tiny_run.parent / "params.yaml")
    proc = run(["run", "--params", str(params), "--outdir", str(tiny_run)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    ran = [line for line in proc.stderr.splitlines() if line.endswith(": running")]
    assert ran == [], ran
    assert "skipped (resume)" in proc.stderr


def test_dry_run_lists_what_would_run_and_writes_nothing(
    tiny_run: Path, tiny_world: Path, tmp_path: Path
) -> None:
    """`scregnet run --dry-run`: after a finished run every step is up to date; a changed
    setting makes its steps and everything downstream run, nothing upstream; a new outdir runs
    everything and is not created."""
    import yaml

    params = tiny_params(tiny_world, tmp_path / "params.yaml")
    before = sorted(p.name for p in tiny_run.rglob("*"))

    def dry(outdir: Path, **change: Any) -> dict[str, str]:
        if change:
            data = yaml.safe_load(params.read_text())
            params.write_text(yaml.safe_dump({**data, **change}))
        proc = run(["run", "--params", str(params), "--outdir", str(outdir), "--dry-run"])
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = proc.stdout.splitlines()
        assert lines[-1].endswith("(dry run: nothing was run or written)")
        return {ln.split("] ", 1)[1].split(": ")[0]: ln.split(": ", 1)[1] for ln in lines[:-1]}

    fates = dry(tiny_run)
    assert {f for label, f in fates.items() if not label.startswith("MULTIQC")} == {"up to date"}
    fates = dry(tiny_run, impute_epochs=4)
    running = {label for label, f in fates.items() if f.startswith("runs")}
    assert fates["IMPUTE (sample1)"] == "runs: its command or the scregnet code changed"
    assert fates["GRN_TRAIN (all)"] == "runs: it needs IMPUTE (sample2), which runs"
    assert {"IMPUTE (sample2)", "GRN_MERGE (all)", "REPORT (all)"} <= running
    assert not any(
        label.split(" ")[0] in {"FRAGMENTS", "COUNT", "TFBIND_TRAIN"} for label in running
    )
    assert sorted(p.name for p in tiny_run.rglob("*")) == before
    fresh = dry(tmp_path / "new")
    assert all(f.startswith(("runs", "skipped")) for f in fresh.values())
    assert fresh["FRAGMENTS (sample1)"] == "runs: not run before"
    assert not (tmp_path / "new").exists()


def test_evaluation_scores_every_stage(tiny_run: Path, tiny_world: Path) -> None:
    proc = run(
        [
            "evaluate",
            "--truth",
            str(tiny_world / "truth"),
            "--results",
            str(tiny_run),
            "--out",
            str(tiny_run.parent / "evaluation.json"),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tiny_run.parent / "evaluation.json").read_text())
    assert set(report) == {"atac", "impute", "tfbind", "grn"}


def test_report_with_truth_scores_the_results_first(
    tiny_run: Path, tiny_world: Path, tmp_path: Path
) -> None:
    """`scregnet report --truth` (REPORT in `scregnet run --profile test`) writes
    <results>/evaluation.json and the report shows it; the run used to score after REPORT, so the
    first run's report had an empty evaluation section."""
    import shutil

    results = tmp_path / "results"
    shutil.copytree(tiny_run, results)
    (results / "evaluation.json").unlink(missing_ok=True)
    out = tmp_path / "report.html"
    proc = run(
        [
            "report",
            "--results",
            str(results),
            "--truth",
            str(tiny_world / "truth"),
            "--out",
            str(out),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = json.loads((results / "evaluation.json").read_text())
    assert set(scores) == {"atac", "impute", "tfbind", "grn"}
    page = out.read_text()
    section = page[page.index('<section id="evaluation">') :]
    section = section[: section.index("</section>")]
    assert "produced no outputs" not in section
    assert f"{scores['grn']['auprc']:.4g}" in section


def test_golden_summary(tiny_run: Path) -> None:
    """Changing these numbers takes `make regold`, whose diff is reviewed in the commit.

    Integers compare exactly; floats within the measured spread across CPU kernels and thread
    counts (``golden_tolerance``); ranked lists (top TFs, top GRN edges) by membership.
    """
    summary = summarize(tiny_run)
    if os.environ.get("SCREGNET_REGOLD"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert compare_summaries(summary, golden, tolerance=golden_tolerance()) == []


def _with_stage(tiny_run: Path, dest: Path, stage: str) -> Path:
    """A results folder: ``tiny_run``'s stage folders linked, ``stage``'s left for the caller."""
    for folder in ("atac", "impute", "tfbind", "grn"):
        if folder != stage:
            (dest / folder).parent.mkdir(parents=True, exist_ok=True)
            (dest / folder).symlink_to(tiny_run / folder)
    (dest / stage).mkdir(parents=True)
    return dest


def test_golden_fails_when_the_imputation_changes_a_little(
    tiny_run: Path, tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The headline layer recomputed from each sample's own checkpoint reproduces the run and
    passes; with the model's predicted expression 1 % higher it fails."""
    from scregnet.impute import api, train

    golden = json.loads(GOLDEN.read_text())
    tol = golden_tolerance()

    def impute_all(dest: Path) -> Path:
        results = _with_stage(tiny_run, dest, "impute")
        for sample in ("sample1", "sample2"):
            name = f"{sample}.imputed.h5ad"
            rna = ad.read_h5ad(tiny_world / "samples" / f"{sample}.rna.h5ad")
            model = tiny_run / "impute" / f"{sample}.imputed.model.pt"
            res = api.impute(rna, checkpoint=model, device="cpu", seed=0, threads=1)
            res.adata.write_h5ad(results / "impute" / name)
        return results

    same = impute_all(tmp_path / "same")
    assert np.array_equal(
        ad.read_h5ad(same / "impute" / "sample1.imputed.h5ad").layers["imputed"],
        ad.read_h5ad(tiny_run / "impute" / "sample1.imputed.h5ad").layers["imputed"],
    )
    assert compare_summaries(summarize(same), golden, tolerance=tol) == []
    original = train.predict

    def one_percent_more(*args: Any, **kwargs: Any) -> Any:
        values = original(*args, **kwargs)  # log1p of counts per 10k
        return np.log1p(np.expm1(values) * 1.01).astype(values.dtype)

    monkeypatch.setattr(train, "predict", one_percent_more)
    problems = compare_summaries(summarize(impute_all(tmp_path / "changed")), golden, tolerance=tol)
    assert {p.split(":")[0] for p in problems} == {
        f"impute {s} {k}" for s in ("sample1", "sample2") for k in ("imputed_sum", "imputed_mean")
    }, problems


def test_golden_fails_when_the_grn_score_weighs_binding_a_little_more(
    tiny_run: Path, tmp_path: Path
) -> None:
    """The edge score recomputed from the table's two evidence columns (rank mean) passes; with
    the binding rank weighted 0.6 instead of 0.5 it fails."""
    from scregnet.stats import fractional_rank

    golden = json.loads(GOLDEN.read_text())
    edges = pd.read_csv(tiny_run / "grn" / "grn_edges.tsv", sep="\t")

    def rescored(weight: float, dest: Path) -> Path:
        expression = fractional_rank(edges["expression_score"].to_numpy())
        binding = edges["binding_prior"].to_numpy()
        known = ~np.isnan(binding)
        score = expression.copy()
        score[known] = (1 - weight) * expression[known] + weight * fractional_rank(binding[known])
        table = edges.assign(score=score.astype(np.float32)).sort_values(
            ["score", "tf", "target"], ascending=[False, True, True]
        )
        table["rank"] = np.arange(1, len(table) + 1)
        results = _with_stage(tiny_run, dest, "grn")
        table.to_csv(results / "grn" / "grn_edges.tsv", sep="\t", index=False)
        return results

    same = rescored(0.5, tmp_path / "same")
    # the table's scores are the rank mean (to the precision its columns are written with: rounded
    # expression scores tie, which moves a fractional rank by up to the tie group's size / pairs)
    assert (
        np.abs(
            pd.read_csv(same / "grn" / "grn_edges.tsv", sep="\t").set_index(["tf", "target"])[
                "score"
            ]
            - edges.set_index(["tf", "target"])["score"]
        ).max()
        < 1e-2
    )
    assert compare_summaries(summarize(same), golden, tolerance=golden_tolerance()) == []
    changed = summarize(rescored(0.6, tmp_path / "changed"))
    problems = compare_summaries(changed, golden, tolerance=golden_tolerance())
    assert problems and all(p.startswith("grn top edges") for p in problems), problems


def _dense(x: object) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)  # type: ignore[union-attr]


def _tables_equal(a: Path, b: Path) -> None:
    for path in sorted(a.rglob("*")):
        rel = path.relative_to(a)
        if path.suffix == ".h5ad":
            x, y = ad.read_h5ad(path), ad.read_h5ad(b / rel)
            assert x.shape == y.shape, rel
            assert np.array_equal(_dense(x.X), _dense(y.X)), rel
            assert x.obs.equals(y.obs) and x.var.equals(y.var), rel
            for key in x.layers:
                assert np.array_equal(np.asarray(x.layers[key]), np.asarray(y.layers[key])), (
                    rel,
                    key,
                )
            for key in x.obsm:
                assert np.array_equal(_dense(x.obsm[key]), _dense(y.obsm[key])), (rel, key)
        elif path.name.endswith((".tsv", ".bed")):
            assert path.read_bytes() == (b / rel).read_bytes(), rel


def test_kill_9_mid_stage_then_rerun_matches_an_uninterrupted_run(
    tiny_run: Path, tiny_world: Path, tmp_path: Path
) -> None:
    params = tiny_params(tiny_world, tmp_path / "params.yaml")
    results = tmp_path / "results"
    with (tmp_path / "run.log").open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "bin" / "scregnet"),
                "run",
                "--params",
                str(params),
                "--outdir",
                str(results),
                "--jobs",
                "2",  # killed while two steps run side by side; the rerun goes one at a time
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + 600
        while "IMPUTE (sample1): running" not in (tmp_path / "run.log").read_text():
            assert proc.poll() is None and time.time() < deadline, (
                tmp_path / "run.log"
            ).read_text()[-2000:]
            time.sleep(0.2)
        time.sleep(1.5)  # well inside the imputation's training
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (results / "impute" / "sample1.imputed.h5ad").exists()
    rerun = run(["run", "--params", str(params), "--outdir", str(results)])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "FRAGMENTS (sample1): outputs complete and up to date, skipped (resume)" in rerun.stderr
    assert not [p for p in results.rglob("*") if ".part" in p.name], (
        "stale temporary files left behind"
    )
    for folder in ("atac", "impute", "tfbind", "grn"):
        _tables_equal(tiny_run / folder, results / folder)
