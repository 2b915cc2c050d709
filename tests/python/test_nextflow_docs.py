"""docs/usage.md's parameter table is generated from nextflow_schema.json; docs/output.md names
every published file pattern and every profile is documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

from nfcheck.docs import END, START, params_table, render
from nfcheck.structure import matching, strip_comments

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "nextflow_schema.json").read_text())
USAGE = (REPO / "docs" / "usage.md").read_text()


def test_usage_parameter_table_matches_the_schema() -> None:
    assert render(USAGE, SCHEMA) == USAGE, "run: python tests/nfcheck/docs.py"


def test_sync_check_fails_when_schema_changes() -> None:
    changed = json.loads(json.dumps(SCHEMA))
    changed["$defs"]["stage_options"]["properties"]["tile_size"]["default"] = 500
    assert render(USAGE, changed) != USAGE
    assert "`--tile_size` | integer | `500`" in params_table(changed)


def test_every_parameter_is_in_the_table() -> None:
    table = USAGE.split(START)[1].split(END)[0]
    names = {k for g in SCHEMA["$defs"].values() for k in g["properties"]}
    assert {m for m in re.findall(r"`--(\w+)`", table)} == names


def test_usage_covers_every_profile_and_platform() -> None:
    config = strip_comments((REPO / "nextflow.config").read_text())
    start = config.index("profiles {") + len("profiles ")
    block = config[start : matching(config, start)]
    profiles = set(re.findall(r"^\s{4}(\w+) \{", block, re.MULTILINE))
    assert profiles >= {
        "docker",
        "singularity",
        "apptainer",
        "podman",
        "conda",
        "gpu",
        "slurm",
        "awsbatch",
        "googlebatch",
        "test",
        "test_full",
    }
    for profile in profiles:
        assert f"`{profile}`" in USAGE, profile
    for heading in (
        "### Local machine",
        "### Docker",
        "### Singularity",
        "### SLURM",
        "### AWS Batch",
        "### Google Batch",
        "### GPU",
        "## A first real run",
    ):
        assert heading in USAGE


def test_output_doc_names_every_published_pattern() -> None:
    output = (REPO / "docs" / "output.md").read_text()
    for pattern in (
        "<sample>.fragments.tsv.gz",
        "<sample>.atac.h5ad",
        "<sample>.qc.tsv",
        "<sample>.clustered.h5ad",
        "<sample>.narrowPeak",
        "<sample>/<cluster>.bw",
        "<sample>.imputed.h5ad",
        "<sample>.imputed.model.pt",
        "<sample>.imputed.loss.tsv",
        "model.pt",
        "<sample>.tfbind.h5ad",
        "<cluster>.binding.bed",
        "<cluster>.binding.bw",
        "grn_edges.tsv",
        "grn_attention.tsv",
        "report/report.html",
        "multiqc_report.html",
        "samplesheet.resolved.csv",
        "params_<time>.json",
        "software_mqc_versions.yml",
        "report/scregnet_atac_qc_mqc.tsv",
        "multiqc/multiqc_data/",
    ):
        assert f"`{pattern}`" in output or pattern in output.split("```")[1], pattern
