"""nextflow_schema.json and assets/schema_input.json: valid draft 2020-12, in sync with
nextflow.config and `scregnet run`'s params, and giving clear messages for bad samplesheets."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from nfcheck.schema import (
    load,
    meta_of,
    missing_indexes,
    read_rows,
    resolve_relative,
    validate_rows,
)
from nfcheck.structure import strip_comments
from scregnet.pipeline.params import DEFAULTS, PATH_KEYS

REPO = Path(__file__).resolve().parents[2]
PIPELINE_SCHEMA = REPO / "nextflow_schema.json"
INPUT_SCHEMA = REPO / "assets" / "schema_input.json"
FILE_COLUMNS = ("bam", "fragments", "rna")


def schema_params(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for group in schema["$defs"].values() for k, v in group["properties"].items()}


def config_params(config: Path) -> dict[str, Any]:
    """``name = literal`` pairs of the top-level ``params { }`` block of a config file."""
    text = strip_comments(config.read_text())
    start = text.index("params {")
    body = text[start : text.index("\n}", start)]
    out: dict[str, Any] = {}
    for name, value in re.findall(r"^\s*(\w+)\s*=\s*(.+?)\s*$", body, re.MULTILINE):
        literal = {"null": None, "true": True, "false": False}.get(value, value)
        if isinstance(literal, str) and re.fullmatch(r"-?\d+", literal):
            literal = int(literal)
        elif isinstance(literal, str) and re.fullmatch(r"'[^']*'", literal):
            literal = literal[1:-1]
        out[name] = literal
    return out


def test_schemas_are_valid_draft_2020_12() -> None:
    for path in (PIPELINE_SCHEMA, INPUT_SCHEMA):
        assert load(path)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_a_broken_schema_is_rejected(tmp_path: Path) -> None:
    broken = json.loads(PIPELINE_SCHEMA.read_text())
    broken["$defs"]["stage_options"]["properties"]["seed"]["type"] = "int"  # not a JSON type
    path = tmp_path / "nextflow_schema.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(jsonschema.SchemaError):
        load(path)


def test_config_params_and_schema_agree() -> None:
    schema = schema_params(load(PIPELINE_SCHEMA))
    params = config_params(REPO / "nextflow.config")
    assert set(params) == set(schema), set(params) ^ set(schema)
    for name, value in params.items():
        if name == "trace_report_suffix":  # an expression (the start time)
            continue
        assert schema[name].get("default") == value, (name, value, schema[name].get("default"))
    for profile in ("test", "test_full"):
        assert set(config_params(REPO / "conf" / f"{profile}.config")) <= set(schema), profile


def test_scregnet_run_params_are_pipeline_params() -> None:
    """`scregnet run --params` and `-params-file` take the same file: every key is a parameter."""
    schema = schema_params(load(PIPELINE_SCHEMA))
    runner_keys = set(PATH_KEYS) | set(DEFAULTS)
    # `device` is scregnet run's only: Nextflow picks the device from task.accelerator (-profile gpu)
    assert runner_keys - {"device"} <= set(schema), runner_keys - set(schema)


def test_params_file_validates(tmp_path: Path) -> None:
    schema = load(PIPELINE_SCHEMA)
    for name in ("samplesheet.csv", "genome.fa", "genes.gtf", "peaks.bed"):
        (tmp_path / name).touch()
    good = {
        "input": str(tmp_path / "samplesheet.csv"),
        "fasta": str(tmp_path / "genome.fa"),
        "gtf": str(tmp_path / "genes.gtf"),
        "peaks": str(tmp_path / "peaks.bed"),
        "outdir": "results",
        "seed": 3,
    }
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(good)) == []
    bad = {**good, "seed": -1, "gtf": "genes.gff3", "min_mapq": "thirty"}
    messages = sorted(e.message for e in validator.iter_errors(bad))
    assert len(messages) == 3, messages


# ---------------------------------------------------------------------------------------------
# samplesheets
# ---------------------------------------------------------------------------------------------


def make_world(root: Path) -> Path:
    """A directory with samples/ files and a samplesheet with paths relative to itself."""
    samples = root / "samples"
    samples.mkdir(parents=True)
    for name in (
        "s1.bam",
        "s1.bam.bai",
        "s1.rna.h5ad",
        "s2.bam",
        "s2.bam.bai",
        "s3.fragments.tsv.gz",
    ):
        (samples / name).touch()
    (samples / "s3.fragments.tsv.gz.tbi").touch()
    sheet = root / "samplesheet.csv"
    sheet.write_text(
        "sample,bam,fragments,rna,view\n"
        "s1,samples/s1.bam,,samples/s1.rna.h5ad,ctrl\n"
        "s2,samples/s2.bam,,,stim\n"
        "s3,,samples/s3.fragments.tsv.gz,,\n"
    )
    return sheet


def check_sheet(sheet: Path, *, check_exists: bool = True) -> list[str]:
    rows = read_rows(sheet)
    resolve_relative(rows, sheet.parent, FILE_COLUMNS)
    errors = validate_rows(load(INPUT_SCHEMA), rows, check_exists=check_exists)
    return errors + (missing_indexes(rows) if check_exists else [])


def test_valid_samplesheet_with_relative_paths(tmp_path: Path) -> None:
    sheet = make_world(tmp_path / "world")
    assert check_sheet(sheet) == []
    rows = read_rows(sheet)
    assert [meta_of(load(INPUT_SCHEMA), r) for r in rows] == [
        {"id": "s1", "view": "ctrl"},
        {"id": "s2", "view": "stim"},
        {"id": "s3", "view": None},  # PIPELINE_INITIALISATION falls back to the sample id
    ]


def test_relative_paths_are_relative_to_the_sheet_not_the_launch_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sheet = make_world(tmp_path / "world")
    monkeypatch.chdir(tmp_path)
    rows = read_rows(sheet)  # unresolved: 'samples/s1.bam' does not exist from tmp_path
    assert any("does not exist" in e for e in validate_rows(load(INPUT_SCHEMA), rows))
    assert check_sheet(sheet) == []


@pytest.mark.parametrize("example", ["samplesheet_bam.csv", "samplesheet_fragments.csv"])
def test_example_samplesheets_are_well_formed(example: str) -> None:
    assert check_sheet(REPO / "assets" / example, check_exists=False) == []


BAD_SHEETS = {
    "missing_column": (
        "id,bam\ns1,samples/s1.bam\n",
        "'sample' is a required property",
    ),
    "duplicate_sample": (
        "sample,bam\ns1,samples/s1.bam\ns1,samples/s2.bam\n",
        "is not unique",
    ),
    "nonexistent_file": (
        "sample,bam\ns1,samples/nope.bam\n",
        "samples/nope.bam' does not exist",
    ),
    "wrong_extension": (
        "sample,rna\ns1,samples/s1.bam\n",
        "end with '.h5ad'",
    ),
    "bam_and_fragments": (
        "sample,bam,fragments\ns3,samples/s1.bam,samples/s3.fragments.tsv.gz\n",
        "exactly one of 'bam' or 'fragments'",
    ),
    "bam_without_index": (
        "sample,bam\ns1,samples/noindex.bam\n",
        "has no index noindex.bam.bai",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SHEETS))
def test_bad_samplesheet_gets_a_clear_message(case: str, tmp_path: Path) -> None:
    sheet = make_world(tmp_path / "world")
    (sheet.parent / "samples" / "noindex.bam").touch()
    text, expected = BAD_SHEETS[case]
    sheet.write_text(text)
    errors = check_sheet(sheet)
    assert errors, f"{case}: accepted"
    assert any(expected in e for e in errors), errors


def test_simulate_presets_are_the_simulators() -> None:
    """The schema's and the runner's preset lists are the simulator's presets."""
    from scregnet.pipeline.params import NEXTFLOW_ONLY
    from scregnet.simulate.presets import PRESETS

    schema = load(PIPELINE_SCHEMA)
    found = [
        group["properties"]["simulate_preset"]["enum"]
        for group in schema["$defs"].values()
        if "simulate_preset" in group.get("properties", {})
    ]
    assert found == [list(PRESETS)]
    assert NEXTFLOW_ONLY["simulate_preset"] == tuple(PRESETS)
