"""params.yaml: unknown keys, keys given twice, wrong types and out-of-range values are errors
naming the file (with the closest known key suggested), never silently replaced by defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scregnet.cli.main import main as cli
from scregnet.errors import InputError
from scregnet.pipeline.params import INTEGERS, NEXTFLOW_ONLY, known_keys, read_params

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def base(tmp_path: Path) -> str:
    """The three required keys, pointing at files that exist."""
    for name in ("s.csv", "g.fa", "g.gtf"):
        (tmp_path / name).write_text("")
    return "input: s.csv\nfasta: g.fa\ngtf: g.gtf\n"


BAD = {
    "misspelt_key": (
        "min_fragment: 10\n",
        "unknown parameter 'min_fragment' (did you mean 'min_fragments'?)",
    ),
    "stage_args_misspelt": ("tfbind_args: --lr 1\n", "did you mean 'tfbind_train_args'"),
    "unknown_key_far_from_any": ("zzz_qqq: 1\n", "unknown parameter 'zzz_qqq'"),
    "duplicate_key": ("seed: 1\nseed: 2\n", "duplicate key 'seed' (lines 4 and 5)"),
    "duplicate_required_key": ("fasta: g.fa\n", "duplicate key 'fasta' (lines 2 and 4)"),
    "epochs_zero": ("impute_epochs: 0\n", "'impute_epochs' must be >= 1, got 0"),
    "grn_epochs_negative": ("grn_epochs: -3\n", "'grn_epochs' must be >= 1"),
    "tfbind_epochs_text": ("tfbind_epochs: ten\n", "'tfbind_epochs' must be an integer"),
    "seed_negative": ("seed: -1\n", "'seed' must be >= 0"),
    "seed_boolean": ("seed: true\n", "'seed' must be an integer"),
    "seed_float": ("seed: 1.5\n", "'seed' must be an integer"),
    "min_fragments_zero": ("min_fragments: 0\n", "'min_fragments' must be >= 1"),
    "min_fragments_word": ("min_fragments: many\n", "integer or 'knee'"),
    "tile_size_small": ("tile_size: 50\n", "'tile_size' must be >= 100"),
    "min_mapq_list": ("min_mapq: [30]\n", "'min_mapq' must be an integer"),
    "barcode_tag_long": ("barcode_tag: CBX\n", "two-character SAM tag"),
    "device_unknown": ("device: gpu\n", "'device' must be auto, cpu, cuda or cuda:N"),
    "stage_args_not_text": ("grn_train_args: 3\n", "'grn_train_args' must be a string"),
    "stage_args_unbalanced_quote": (
        'grn_train_args: "--lr \'1"\n',
        "'grn_train_args' is not a valid command line",
    ),
    "nextflow_enum": ("publish_dir_mode: teleport\n", "'publish_dir_mode' must be one of"),
    "path_not_text": ("peaks: 12\n", "'peaks' must be a string"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_params_value(
    name: str, base: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra, message = BAD[name]
    params = tmp_path / "params.yaml"
    params.write_text(base + extra)
    out = tmp_path / "results"
    assert cli(["run", "--params", str(params), "--outdir", str(out), "--quiet"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and str(params) in err[0] and message in err[0], err
    assert not (out / "atac").exists()


def test_params_not_utf8(base: str, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_bytes(base.encode() + "multiqc_title: caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"not UTF-8 text \(byte 0xe9 on line 4\)"):
        read_params(params)


def test_accepted_values(base: str, tmp_path: Path) -> None:
    """Nextflow's own keys, 'knee', null epochs and quoted integers are valid."""
    params = tmp_path / "params.yaml"
    params.write_text(
        "\ufeff"  # a byte-order mark is not an error
        + base
        + "outdir: results\npublish_dir_mode: link\nmin_fragments: knee\nimpute_epochs: null\n"
        + "seed: '7'\ncount_args: --tile-size 500\ndevice: cuda:1\n"
    )
    got = read_params(params)
    assert got["seed"] == 7 and got["min_fragments"] == "knee" and got["impute_epochs"] is None
    assert got["device"] == "cuda:1"


def _schema_params() -> dict[str, dict[str, object]]:
    schema = json.loads((REPO / "nextflow_schema.json").read_text())
    found: dict[str, dict[str, object]] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            found.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return found


def test_checks_agree_with_the_nextflow_schema() -> None:
    """One params file serves both engines: same keys, same minimums, same choices."""
    schema = _schema_params()
    assert set(schema) <= set(known_keys())
    for key, (low, _) in INTEGERS.items():
        assert schema[key].get("minimum") == low, key
    for key, allowed in NEXTFLOW_ONLY.items():
        if allowed is not None:
            assert tuple(schema[key]["enum"]) == allowed, key  # type: ignore[arg-type]


BAD_SHEETS = {
    # (samplesheet, the file the error names, message)
    "duplicate_id": ("sample,bam\ns1,a.bam\ns1,a.bam\n", "s.csv", "row 3: duplicate sample id"),
    "missing_column": ("bam\na.bam\n", "s.csv", "missing column(s): sample"),
    "no_fasta_index": ("sample,bam\ns1,a.bam\n", "g.fa", "FASTA has no .fai index"),
}


@pytest.mark.parametrize("name", sorted(BAD_SHEETS))
def test_bad_samplesheet_creates_no_outdir(
    name: str, base: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The plan (samplesheet, FASTA index) is checked before the results folder is created."""
    sheet, named, message = BAD_SHEETS[name]
    for file in ("a.bam", "a.bam.bai"):
        (tmp_path / file).write_text("")
    (tmp_path / "s.csv").write_text(sheet)
    params = tmp_path / "params.yaml"
    params.write_text(base)
    out = tmp_path / "results"
    assert cli(["run", "--params", str(params), "--outdir", str(out), "--quiet"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and f"{tmp_path / named}: {message}" in err[0], err
    assert not out.exists()
