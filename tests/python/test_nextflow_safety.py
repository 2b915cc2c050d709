"""-resume and shell safety of the Nextflow layer (tests/nfcheck/safety.py), each rule shown to fail
on a broken copy: ordered gathers, no launch-time file reaching a process, quoted interpolation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nfcheck.render import StagingCollision, Task, staging_plan
from nfcheck.safety import (
    launch_writes,
    unquoted_interpolations,
    unsorted_gathers,
    workflow_files,
)
from nfcheck.schema import load, missing_indexes, read_rows, resolve_relative, validate_rows
from nfcheck.structure import parse

REPO = Path(__file__).resolve().parents[2]


def copy_pipeline(dst: Path) -> Path:
    for sub in ("modules", "workflows", "subworkflows"):
        shutil.copytree(REPO / sub, dst / sub)
    shutil.copy(REPO / "main.nf", dst / "main.nf")
    return dst


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"broken copy no longer applies: {old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_every_gather_is_ordered() -> None:
    assert unsorted_gathers(workflow_files(REPO)) == []


def test_no_launch_time_file_is_used() -> None:
    assert launch_writes(workflow_files(REPO)) == []


def test_every_interpolation_is_quoted_or_checked() -> None:
    assert unquoted_interpolations(REPO) == []


WF = "workflows/scregnet.nf"
SUB = "subworkflows/local/utils_scregnet_pipeline/main.nf"
BREAKS = {
    # gathers in completion order (the -resume defects of issue 16)
    "groupTuple without sort": (
        WF,
        ".groupTuple(sort: { a, b -> a.name <=> b.name })",
        ".groupTuple()",
        unsorted_gathers,
        ".groupTuple() has no order",
    ),
    "collect without sort": (
        WF,
        "        .collect(sort: { a, b -> a.name <=> b.name })\n        .map { files -> [ [ id: 'multiqc' ], files ] }",
        "        .collect()\n        .map { files -> [ [ id: 'multiqc' ], files ] }",
        unsorted_gathers,
        ".collect() has no order",
    ),
    "toList": (
        WF,
        ".toSortedList { a, b -> a[0].id <=> b[0].id }",
        ".toList()",
        unsorted_gathers,
        ".toList() has no order",
    ),
    # the staged bulk sheet written to pipeline_info/ at each launch and handed to TFBIND_TRAIN
    "bulk sheet written at launch": (
        SUB,
        '    return [ lines.join("\\n") + "\\n",',
        '    def staged = file("${workflow.launchDir}/bulk_sheet.staged.csv")\n'
        '    staged.text = lines.join("\\n")\n'
        '    return [ lines.join("\\n") + "\\n",',
        launch_writes,
        "stageBulkSheet() writes a file at launch and its result is used",
    ),
    "params dump used": (
        SUB,
        "    dumpParameters(inputs.params, info_dir, inputs.run_name)\n",
        "    def dumped = dumpParameters(inputs.params, info_dir, inputs.run_name)\n",
        launch_writes,
        "dumpParameters() writes a file at launch and its result is used",
    ),
}
QUOTING = {
    "contig names unquoted": (
        "modules/local/tfbind_predict/main.nf",
        "--chrom '${chroms}'",
        "--chrom ${chroms}",
        "TFBIND_PREDICT script: ${chroms} is neither single-quoted",
    ),
    "path unquoted": (
        "modules/local/count/main.nf",
        "--peaks '${peaks}'",
        "--peaks ${peaks}",
        "COUNT script: ${peaks} is neither single-quoted",
    ),
    "def built from raw values": (
        "modules/local/grn_train/main.nf",
        """def views = rna.collect { h5ad -> "--rna '${h5ad}'" }.join(' ')""",
        """def views = "--rna " + rna.join(' --rna ')""",
        "GRN_TRAIN script: ${views} is neither single-quoted",
    ),
    "def with an unquoted interpolation": (
        "modules/local/impute/main.nf",
        """def bulk = bulk_rna ? "--bulk '${bulk_rna}'" : ''""",
        """def bulk = bulk_rna ? "--bulk ${bulk_rna}" : ''""",
        "IMPUTE script: ${bulk} is neither single-quoted",
    ),
    "stub unquoted": (
        "modules/local/peaks/main.nf",
        "touch '${prefix}.narrowPeak'",
        "touch ${prefix}.narrowPeak",
        "PEAKS stub: ${prefix} is neither single-quoted",
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_resume_checks_fail_on_a_broken_copy(case: str, tmp_path: Path) -> None:
    root = copy_pipeline(tmp_path)
    rel, old, new, check, expected = BREAKS[case]
    edit(root / rel, old, new)
    problems = check(workflow_files(root))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("case", sorted(QUOTING))
def test_quoting_check_fails_on_a_broken_copy(case: str, tmp_path: Path) -> None:
    root = copy_pipeline(tmp_path)
    rel, old, new, expected = QUOTING[case]
    edit(root / rel, old, new)
    problems = unquoted_interpolations(root)
    assert any(expected in p for p in problems), problems


def report_task(impute: list[Path]) -> Task:
    """REPORT bound to ``impute`` files (other inputs empty)."""
    proc = parse(REPO / "modules" / "local" / "report" / "main.nf").processes[0]
    return Task(
        proc,
        {"meta": {"id": "report"}, "expected": []},
        {"atac": [], "tracks": [], "impute": impute, "tfbind": [], "grn": []},
    )


def test_cellranger_samplesheet_stages_without_collision(tmp_path: Path) -> None:
    """tests/data/samplesheet_cellranger.csv: two samples whose fragments files are both
    outs/fragments.tsv.gz (tests/default.nf.test runs the pipeline on it with -stub). Each task
    that reads a fragments file reads one sample's, and REPORT reads none (the fragment lengths
    come from the counts), so the shared name never meets itself in a task directory."""
    sheet = REPO / "tests" / "data" / "samplesheet_cellranger.csv"
    rows = read_rows(sheet)
    resolve_relative(rows, sheet.parent, ("bam", "fragments", "rna"))
    schema = load(REPO / "assets" / "schema_input.json")
    assert validate_rows(schema, rows, check_exists=True) == [] and missing_indexes(rows) == []
    files = [Path(r["fragments"]) for r in rows]
    assert {f.name for f in files} == {"fragments.tsv.gz"} and len(files) == 2
    for main in sorted((REPO / "modules" / "local").glob("*/main.nf")):
        for proc in parse(main).processes:
            for line in proc.inputs:
                if "fragments" in line:
                    # one sample's file per task: in its tuple, never gathered
                    assert line.lstrip().startswith("tuple val(meta)"), (proc.name, line)
                    assert "arity: '0..*'" not in line, (proc.name, line)
    report = parse(REPO / "modules" / "local" / "report" / "main.nf").processes[0]
    assert not any("fragments" in line for line in report.inputs)
    # the staging check itself: two inputs of one name in one folder collide
    same = [tmp_path / d / "s1.imputed.h5ad" for d in ("a", "b")]
    for f in same:
        f.parent.mkdir()
        f.touch()
    assert "results/impute/s1.imputed.h5ad" in staging_plan(report_task(same[:1]))
    with pytest.raises(StagingCollision, match="input file name collision"):
        staging_plan(report_task(same))
