"""A failed run on the simulator's tiny world (sample2's RNA refused by `impute`): what the run
exits with and what its report shows, with and without --keep-going. Apart from
test_end_to_end.py so that pytest-xdist runs it beside that file's runs."""

from __future__ import annotations

import re
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest
import scipy.sparse as sp

from tiny_run import run, tiny_params


def _params_with_a_bad_rna(tiny_world: Path, tmp_path: Path) -> Path:
    """The tiny world's params whose sample2 RNA has an empty barcode (which `impute` refuses)."""
    import yaml

    params_path = tiny_params(tiny_world, tmp_path / "params.yaml")
    params = yaml.safe_load(params_path.read_text())
    sheet = pd.read_csv(params["input"])
    rna = ad.read_h5ad(tiny_world / "samples" / "sample2.rna.h5ad")
    x = sp.lil_matrix(rna.X)
    x[0] = 0
    rna.X = sp.csr_matrix(x)
    rna.write_h5ad(tmp_path / "sample2.rna.h5ad")
    for column in ("bam", "rna"):
        sheet[column] = [str(tiny_world / p) for p in sheet[column]]
    sheet.loc[sheet["sample"] == "sample2", "rna"] = str(tmp_path / "sample2.rna.h5ad")
    sheet.to_csv(tmp_path / "samplesheet.csv", index=False)
    params["input"] = str(tmp_path / "samplesheet.csv")
    params_path.write_text(yaml.safe_dump(params))
    return params_path


@pytest.mark.parametrize("keep_going", [True, False], ids=["keep-going", "fail-fast"])
def test_a_failed_run_reports_what_finished(
    keep_going: bool, tiny_world: Path, tmp_path: Path
) -> None:
    """sample2's RNA has an empty barcode, which `impute` refuses; the run exits non-zero. With
    --keep-going the rest of sample2 and all of sample1 run and the pooled GRN does not; without,
    the failure stops the run. Either way the report shows what finished, names the failed step
    and those not run, and leaves no REPORT record (the rerun builds the full report)."""
    params_path = _params_with_a_bad_rna(tiny_world, tmp_path)
    results = tmp_path / "results"
    argv = ["run", "--params", str(params_path), "--outdir", str(results), "--jobs", "2"]
    proc = run([*argv, "--keep-going"] if keep_going else argv)
    assert proc.returncode != 0
    assert "IMPUTE (sample2) failed" in proc.stderr, proc.stderr[-3000:]
    assert "report of the finished steps, marked incomplete" in proc.stderr
    page = (results / "report" / "report.html").read_text()
    status = page[: page.index('<section id="atac-qc">')]
    assert "Incomplete run" in status and "IMPUTE" in status and "FAILED" in status
    assert "GRN_TRAIN" in status and "NOT_RUN" in status
    # the results the samplesheet asks for that are missing (the runner passes --expect)
    assert re.search(r"<td>impute</td>\s*<td>sample2</td>", status)
    assert re.search(r"<td>grn</td>\s*<td>\(all samples\)</td>", status)
    assert 'alt="GRN network"' not in page
    assert not (results / "pipeline_info" / "steps" / "REPORT.all.json").exists()
    if keep_going:
        assert "1 step(s) failed (IMPUTE (sample2))" in proc.stderr
        assert 'alt="sample1 imputation diagnostics"' in page
        assert 'alt="sample2 imputation diagnostics"' not in page
        assert 'alt="sample1 UMAP"' in page and 'alt="sample2 UMAP"' in page
