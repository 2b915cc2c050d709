"""The results the Nextflow workflow tells REPORT to expect (workflows/scregnet.nf:
expectedResults), run with the language server's Groovy: one item per stage the samplesheet and
references ask for, each one `scregnet report --expect` accepts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from nfcheck.functions import call
from scregnet.cli.report import add_arguments

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "workflows" / "scregnet.nf"


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    """Every evaluation of this module in one JVM start."""
    value = call(
        WORKFLOW,
        "[ full: expectedResults(['s1', 's2'], ['s1'], true, []),"
        "  labels: expectedResults(['s1'], ['s1'], false, 'edges.tsv'),"
        "  no_binding: expectedResults(['s1', 's2'], ['s2'], false, []),"
        "  atac_only: expectedResults(['s1'], [], true, []) ]",
    )
    assert isinstance(value, dict)
    return value


def test_each_stage_the_inputs_ask_for_is_expected(expected: dict[str, Any]) -> None:
    assert expected["full"] == ["atac=s1,s2", "tfbind=s1,s2", "impute=s1", "grn"]
    # known edges train the GRN without TF binding
    assert expected["labels"] == ["atac=s1", "impute=s1", "grn"]
    # no TF-binding model and no edges: no GRN
    assert expected["no_binding"] == ["atac=s1,s2", "impute=s2"]
    # no scRNA: no imputation, no GRN
    assert expected["atac_only"] == ["atac=s1", "tfbind=s1"]


def test_the_report_accepts_each_item(expected: dict[str, Any]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for items in expected.values():
        argv = ["--results", "r", "--out", "o.html"]
        for item in items:
            argv += ["--expect", item]
        args = parser.parse_args(argv)
        assert [f"{s}={','.join(n)}" if n else s for s, n in args.expect] == items
