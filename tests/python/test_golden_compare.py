"""The golden comparison (``compare_summaries``) with the tolerance the golden test uses: the
committed golden agrees with itself; a change beyond the tolerance in any kind of number fails
with a line naming it, a change within it passes; ranked lists compare by membership."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from golden_summary import ROUNDING_REL, SummaryTolerance, compare_summaries
from golden_tolerance import FACTOR, SPREAD, golden_tolerance

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "tiny_summary.json"


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(GOLDEN.read_text())
    return summary


def test_golden_agrees_with_itself_even_without_tolerance(golden: dict[str, Any]) -> None:
    assert compare_summaries(golden, copy.deepcopy(golden), tolerance=SummaryTolerance()) == []


def test_tolerance_is_derived_from_a_recorded_measurement() -> None:
    measured = json.loads(SPREAD.read_text())
    assert measured["variants"]["default"] == {"env": {}, "threads": 1}
    assert "golden file" in measured["per_variant"] and len(measured["per_variant"]) >= 8
    tol = golden_tolerance()
    assert tol.tfbind_abs == FACTOR * measured["spread"]["tfbind_abs"] > 0
    assert tol.grn_score_abs == FACTOR * measured["spread"]["grn_score_abs"] > 0
    assert 0.5 <= tol.grn_min_overlap < 1.0


def _impute_sum(s: dict[str, Any], scale: float) -> None:
    s["impute"]["sample1"]["imputed_sum"] *= scale


def _tfbind(s: dict[str, Any], delta: float) -> None:
    row = s["tfbind"]["sample2"]["top_activity_per_cluster"]["1"][2]
    row[1] += delta


def _grn_score(s: dict[str, Any], delta: float) -> None:
    s["grn"]["top_edges"][10][2] += delta


@pytest.mark.parametrize(
    ("kind", "change", "unit", "needle"),
    [
        ("impute", _impute_sum, "impute_rel", "impute sample1 imputed_sum"),
        ("tfbind", _tfbind, "tfbind_abs", "tfbind sample2 cluster 1"),
        ("grn", _grn_score, "grn_score_abs", "grn top edges"),
    ],
)
def test_a_change_beyond_the_tolerance_fails_and_within_passes(
    golden: dict[str, Any], kind: str, change: Any, unit: str, needle: str
) -> None:
    tol = golden_tolerance()
    relative = unit.endswith("_rel")
    step = max(getattr(tol, unit), ROUNDING_REL) if relative else getattr(tol, unit)
    for multiple, fails in ((1.5, True), (0.5, False)):
        changed = copy.deepcopy(golden)
        amount = multiple * step
        change(changed, 1 + amount if relative else amount)
        problems = compare_summaries(changed, golden, tolerance=tol)
        if fails:
            assert len(problems) == 1 and problems[0].startswith(needle), (kind, problems)
        else:
            assert problems == [], (kind, problems)


def test_integers_compare_exactly(golden: dict[str, Any]) -> None:
    changed = copy.deepcopy(golden)
    changed["atac"]["sample2"]["nnz"] += 1
    assert compare_summaries(changed, golden, tolerance=golden_tolerance()) == [
        f"atac sample2 nnz: {golden['atac']['sample2']['nnz'] + 1}, "
        f"expected {golden['atac']['sample2']['nnz']}"
    ]


def test_ranked_edges_compare_by_membership(golden: dict[str, Any]) -> None:
    tol = golden_tolerance()
    edges = golden["grn"]["top_edges"]
    last = edges[-1][2]
    # the last edge swapped for an unseen one scoring the same: a near-tie at the cut-off
    tie = copy.deepcopy(golden)
    tie["grn"]["top_edges"][-1] = ["PAX5", "NEWGENE", last]
    assert compare_summaries(tie, golden, tolerance=tol) == []
    # the top edge gone (everything moves up, an unseen edge enters at the bottom)
    lost = copy.deepcopy(golden)
    lost["grn"]["top_edges"] = [*edges[1:], ["PAX5", "NEWGENE", last]]
    problems = compare_summaries(lost, golden, tolerance=tol)
    assert any(f"expected entry {edges[0][0]}/{edges[0][1]}" in p for p in problems), problems
    # half the list replaced by unseen edges at the same scores: the overlap rule fails it
    half = copy.deepcopy(golden)
    for i in range(0, len(edges), 2):
        half["grn"]["top_edges"][i] = ["NEW", f"G{i}", edges[i][2]]
    problems = compare_summaries(half, golden, tolerance=tol)
    assert any("of the expected entries are shared" in p for p in problems), problems


def test_a_tf_missing_from_a_full_cluster_list_fails(golden: dict[str, Any]) -> None:
    changed = copy.deepcopy(golden)
    del changed["tfbind"]["sample1"]["top_activity_per_cluster"]["2"][0]
    problems = compare_summaries(changed, golden, tolerance=golden_tolerance())
    assert len(problems) == 1 and "tfbind sample1 cluster 2: expected entry" in problems[0]
