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


def test_min_fragments_takes_a_number_or_knee_in_both_runners(tmp_path: Path) -> None:
    """One params file serves both runners: `min_fragments: knee` (the barcode-rank cliff) passes
    Nextflow's schema as it passes `scregnet run`, and both refuse the same bad values."""
    from scregnet.errors import InputError
    from scregnet.pipeline.params import read_params

    validator = jsonschema.Draft202012Validator(load(PIPELINE_SCHEMA))
    for value, ok in ((500, True), ("knee", True), (0, False), ("kne", False)):
        schema_ok = not [e for e in validator.iter_errors({"outdir": "r", "min_fragments": value})]
        for name in ("s.csv", "g.fa", "g.gtf"):
            (tmp_path / name).touch()
        path = tmp_path / "params.yaml"
        path.write_text(f"input: s.csv\nfasta: g.fa\ngtf: g.gtf\nmin_fragments: {value}\n")
        try:
            read_params(path)
            runner_ok = True
        except InputError:
            runner_ok = False
        assert (schema_ok, runner_ok) == (ok, ok), value


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


def test_the_rows_are_validated_only_once_resolved() -> None:
    """validateParameters() checks a file parameter's rows against its `schema` as they are,
    `exists` against the launch directory, before PIPELINE_INITIALISATION resolves them against
    the sheet's directory: so `--input` names no row schema, and samplesheetToList validates the
    resolved copy (the test above shows the unresolved rows fail)."""
    text = (REPO / "nextflow_schema.json").read_text()
    assert "schema_input.json" not in text
    workflow = strip_comments(
        (REPO / "subworkflows/local/utils_scregnet_pipeline/main.nf").read_text()
    )
    assert "samplesheetToList(resolveSamplesheet(sheet, info_dir), schema)" in workflow


SAMPLE_IDS = {
    "fine": (["s1", "s2", "S10", "s1_b", "s1-x"], None),
    "case": (["s1", "S1"], "duplicate sample id 'S1' (same as 's1' ignoring case"),
    "duplicate": (["a", "b", "a"], "duplicate sample id 'a'"),
    "reserved": (["s1", "Model.pt"], "sample id 'Model.pt' is a name the pipeline gives"),
    "prefix": (["s1.chr1", "s1"], "sample id 's1.chr1' is sample id 's1' followed by '.'"),
}


def groovy_errors(function: str, cases: dict[str, tuple[list[str], Any]]) -> dict[str, Any]:
    """``function(values, 'sheet.csv')`` of the pipeline's Groovy on each case's values, in one
    JVM start: per case, its error message, or None when it passed."""
    from nfcheck.functions import call

    calls = ", ".join(
        f"{name}: {{ -> try {{ {function}({json.dumps(values)}, 'sheet.csv'); null }} "
        f"catch (IllegalArgumentException e) {{ e.message }} }}()"
        for name, (values, _) in cases.items()
    )
    value = call(REPO / "subworkflows/local/utils_scregnet_pipeline/main.nf", f"[ {calls} ]")
    assert isinstance(value, dict)
    return value


@pytest.fixture(scope="module")
def id_checks() -> dict[str, Any]:
    """checkSampleIds on every case of SAMPLE_IDS."""
    return groovy_errors("checkSampleIds", SAMPLE_IDS)


@pytest.mark.parametrize("case", sorted(SAMPLE_IDS))
def test_sample_ids_are_checked_as_scregnet_run_checks_them(
    case: str, id_checks: dict[str, Any], tmp_path: Path
) -> None:
    """Nextflow refuses the ids `scregnet run` refuses (reserved names, duplicates ignoring case,
    one id another's prefix before '.'), with the same words."""
    from scregnet.errors import InputError
    from scregnet.io.samplesheet import read_samplesheet

    ids, expected = SAMPLE_IDS[case]
    for k in range(len(ids)):
        (tmp_path / f"x{k}.fragments.tsv.gz").touch()
        (tmp_path / f"x{k}.fragments.tsv.gz.tbi").touch()
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "sample,fragments\n" + "".join(f"{i},x{k}.fragments.tsv.gz\n" for k, i in enumerate(ids))
    )
    if expected is None:
        assert id_checks[case] is None
        assert len(read_samplesheet(sheet)) == len(ids)
        return
    assert id_checks[case] is not None and expected in id_checks[case], id_checks[case]
    with pytest.raises(InputError, match=re.escape(expected.split(" (")[0].split(" is ")[0])):
        read_samplesheet(sheet)


SHARED_DATA = {
    "distinct": (
        [
            ["a", "bam", "d/a.bam"],
            ["b", "bam", "d/b.bam"],
            ["c", "rna", "r.h5ad"],
            ["d", "rna", "r.h5ad"],
        ],
        None,
    ),
    "same_bam": ([["a", "bam", "d/a.bam"], ["b", "bam", "d/a.bam"]], ("a", "b", "bam")),
    "same_after_dot": (
        [["a", "fragments", "d/a.tsv.gz"], ["b", "fragments", "d/./a.tsv.gz"]],
        ("a", "b", "fragments"),
    ),
}


@pytest.fixture(scope="module")
def shared_data_checks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """checkDistinctData on every case of SHARED_DATA (paths made absolute, as resolved)."""
    root = tmp_path_factory.mktemp("shared")
    cases = {
        name: ([[sid, col, str(root / rel)] for sid, col, rel in rows], want)
        for name, (rows, want) in SHARED_DATA.items()
    }
    return {"root": root, **groovy_errors("checkDistinctData", cases)}


@pytest.mark.parametrize("case", sorted(SHARED_DATA))
def test_two_samples_reading_one_data_file_are_refused(
    case: str, shared_data_checks: dict[str, Any], tmp_path: Path
) -> None:
    """A row copied and not edited (two samples, one BAM or fragments file) is refused by Nextflow
    and by `scregnet run` with the same words; one scRNA file may serve several samples."""
    from scregnet.errors import InputError
    from scregnet.io.samplesheet import read_samplesheet

    rows, expected = SHARED_DATA[case]
    lines = []
    for sid, column, rel in rows:
        data = tmp_path / rel
        data.parent.mkdir(exist_ok=True)
        data.touch()
        Path(f"{data}.bai" if column == "bam" else f"{data}.tbi").touch()
        if column == "rna":  # an ATAC file of its own beside the shared one
            (tmp_path / f"{sid}.bam").touch()
            (tmp_path / f"{sid}.bam.bai").touch()
        lines.append((sid, column, rel))
    header = ["sample", "bam", "fragments", "rna"]
    sheet = tmp_path / "sheet.csv"
    body = ""
    for sid, column, rel in lines:
        values = {"sample": sid, column: rel}
        if column == "rna":
            values["bam"] = f"{sid}.bam"
        body += ",".join(values.get(h, "") for h in header) + "\n"
    sheet.write_text(",".join(header) + "\n" + body)
    if expected is None:
        assert shared_data_checks[case] is None, shared_data_checks[case]
        assert len(read_samplesheet(sheet)) == len(rows)
        return
    first, second, column = expected
    said = f"samples '{first}' and '{second}' read the same {column} file"
    assert shared_data_checks[case] is not None and said in shared_data_checks[case]
    with pytest.raises(InputError, match=re.escape(said)):
        read_samplesheet(sheet)


COLUMN_CASES = {
    "known": (["sample", "bam", "rna", "view"], None),
    "extra": (["sample", "fragments", "notes", "sample_id", "condition"], None),
    "upper": (["sample", "bam", "RNA"], "rna"),
    "prefixed": (["sample", "bam", "scrna"], "rna"),
    "singular": (["sample", "fragment"], "fragments"),
    "plural": (["sample", "bams", "rna"], "bam"),
    "suffixed": (["sample", "bam", "view_name"], "view"),
    "present": (["sample", "bam", "rna", "rna_h5ad"], None),  # rna is there: an extra column
}


@pytest.fixture(scope="module")
def column_checks() -> dict[str, Any]:
    """checkColumns on every case of COLUMN_CASES."""
    return groovy_errors("checkColumns", COLUMN_CASES)


@pytest.mark.parametrize("case", sorted(COLUMN_CASES))
def test_misspelt_columns_are_refused_as_scregnet_run_refuses_them(
    case: str, column_checks: dict[str, Any], tmp_path: Path
) -> None:
    """Nextflow and `scregnet run` refuse the same misspelt columns, naming the one meant (nf-schema
    alone would warn of an unidentified header and drop the samples' scRNA)."""
    from scregnet.errors import InputError
    from scregnet.io.samplesheet import read_samplesheet

    header, meant = COLUMN_CASES[case]
    (tmp_path / "x.bam").touch()
    (tmp_path / "x.bam.bai").touch()
    (tmp_path / "x.fragments.tsv.gz").touch()
    (tmp_path / "x.fragments.tsv.gz.tbi").touch()
    values = {"sample": "s1", "bam": "x.bam", "fragments": "x.fragments.tsv.gz"}
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(",".join(header) + "\n" + ",".join(values.get(h, "") for h in header) + "\n")
    if meant is None:
        assert column_checks[case] is None, column_checks[case]
        assert [s.sample for s in read_samplesheet(sheet)] == ["s1"]
        return
    said = f"(did you mean '{meant}'?"
    assert column_checks[case] is not None and said in column_checks[case], column_checks[case]
    with pytest.raises(InputError, match=re.escape(said)):
        read_samplesheet(sheet)


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


def test_a_bam_index_named_without_bam_is_found(tmp_path: Path) -> None:
    sheet = make_world(tmp_path)
    (tmp_path / "samples" / "s2.bam.bai").rename(tmp_path / "samples" / "s2.bai")
    assert check_sheet(sheet) == []
    (tmp_path / "samples" / "s2.bai").unlink()
    assert check_sheet(sheet) == [
        f"row 2: {tmp_path}/samples/s2.bam has no index s2.bam.bai beside it"
    ]


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
