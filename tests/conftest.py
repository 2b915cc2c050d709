"""Shared fixtures: the real test data directory and simulator worlds (built once per test run and
shared by its xdist workers: tests/built_once.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from built_once import built_once

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The shared real data sets (``SCREGNET_TESTDATA``, default ``../shared/data``)."""
    path = Path(os.environ.get("SCREGNET_TESTDATA", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.fail(f"test data directory {path} not found (set SCREGNET_TESTDATA)")
    return path


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulator's ``tiny`` world (seed 0), generated once per test run."""
    from scregnet.simulate import simulate

    folder = built_once(
        tmp_path_factory, "tiny", lambda d: simulate(d / "world", preset="tiny", seed=0)
    )
    return folder / "world"


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulator's ``small`` world (seed 0), generated once per test run (~1 min)."""
    from scregnet.simulate import simulate

    folder = built_once(
        tmp_path_factory, "small", lambda d: simulate(d / "world", preset="small", seed=0)
    )
    return folder / "world"


@pytest.fixture(scope="session")
def celltypist_labelled(testdata: Path) -> tuple[Any, list[str], Any]:
    """celltypist's real counts (all 32,786 genes), gene names and marker lineage labels (~15 s)."""
    from labelled_counts import marker_labelled_counts

    return marker_labelled_counts(testdata / "celltypist_counts" / "sample_cell_by_gene.csv.gz")


@pytest.fixture(scope="session")
def tiny_run(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny world's results folder from ``bin/scregnet run`` with fast training settings."""
    from tiny_run import run, tiny_params

    base = tmp_path_factory.mktemp("e2e")
    params = tiny_params(tiny_world, base / "params.yaml")
    results = base / "results"
    # two steps at a time here, one at a time in the kill -9 test: outputs must not depend on it
    proc = run(["run", "--params", str(params), "--outdir", str(results), "--jobs", "2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"report: {(results / 'report' / 'report.html').resolve()}" in proc.stdout
    return results
