"""nf-test files parse with the Groovy 4 inside the language-server jar; snapshots are valid JSON.

nf-test itself needs Nextflow and runs on a machine that has it (docs/usage.md, "Testing").
Snapshots (*.nf.test.snap) are only ever written by `nf-test test --update-snapshot`; tests here
assert explicit properties instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from nfcheck.tools import run_groovy

REPO = Path(__file__).resolve().parents[2]
PARSER = REPO / "tests" / "nfcheck" / "nftest_parse.groovy"


def nftest_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in [*root.rglob("*.nf.test"), root / "nf-test.config"]
        if p.exists() and ".nf-test" not in p.parts and ".venv" not in p.parts
    )


def test_every_module_and_the_pipeline_have_nf_tests() -> None:
    files = {p.relative_to(REPO).as_posix() for p in nftest_files(REPO)}
    modules = {m.parent.name for m in (REPO / "modules" / "local").glob("*/main.nf")}
    assert {f"modules/local/{m}/tests/main.nf.test" for m in modules} <= files
    assert {"tests/default.nf.test", "nf-test.config"} <= files


def test_every_test_has_a_stub_twin_and_gpu_modules_a_gpu_test() -> None:
    for path in nftest_files(REPO):
        if path.suffix != ".test":
            continue
        text = path.read_text()
        names = [
            line.split('"')[1] for line in text.splitlines() if line.strip().startswith("test(")
        ]
        real = [n for n in names if not n.endswith(("- stub", "- gpu"))]
        assert real and all(f"{n} - stub" in names for n in real), (path, names)
        module = path.parents[1] / "main.nf"
        if module.exists() and "process_gpu" in module.read_text():
            assert any(n.endswith("- gpu") for n in names) and 'tag "gpu"' in text, path


def test_nf_test_files_parse(tmp_path: Path) -> None:
    files = nftest_files(REPO)
    proc = run_groovy(PARSER, *map(str, files))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("OK   ") == len(files)


def test_parse_check_fails_on_a_broken_copy(tmp_path: Path) -> None:
    good = REPO / "tests" / "default.nf.test"
    broken = tmp_path / "broken.nf.test"
    broken.write_text(
        good.read_text().replace('test("-profile test") {', 'test("-profile test") {{', 1)
    )
    proc = run_groovy(PARSER, str(good), str(broken))
    assert proc.returncode == 1
    assert f"FAIL {broken}" in proc.stdout and f"OK   {good}" in proc.stdout


def test_snapshots_are_valid_json(tmp_path: Path) -> None:
    snaps = sorted(p for p in REPO.rglob("*.nf.test.snap") if ".venv" not in p.parts)
    for snap in snaps:
        json.loads(snap.read_text())
    broken = tmp_path / "main.nf.test.snap"
    broken.write_text('{"x": {"content": [1, 2]')
    try:
        json.loads(broken.read_text())
    except json.JSONDecodeError:
        pass
    else:  # pragma: no cover - the check itself is wrong
        raise AssertionError("a truncated snapshot parsed as JSON")
