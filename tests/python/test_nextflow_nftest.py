"""nf-test files parse with the Groovy 4 inside the language-server jar; snapshots are valid JSON.

nf-test itself needs Nextflow and runs on a machine that has it (docs/usage.md, "Testing").
Snapshots (*.nf.test.snap) are only ever written by `nf-test test --update-snapshot`; tests here
assert explicit properties instead.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from nfcheck.nftest import arity_problems, nftest_cases
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


def gpu_test_problems(module_dir: Path) -> list[str]:
    """A GPU module's tests/gpu.nf.test: tagged gpu, run with a config that gives process_gpu tasks
    an accelerator, and every test asserts that the task ran with `--device cuda` (which fails
    unless a GPU is visible) and that the container engine was handed the GPU."""
    gpu = module_dir / "tests" / "gpu.nf.test"
    if not gpu.exists():
        return [f"{module_dir.name}: no tests/gpu.nf.test"]
    text = gpu.read_text()
    problems = []
    if 'tag "gpu"' not in text or 'config "./gpu.config"' not in text:
        problems.append(f'{gpu}: needs tag "gpu" and config "./gpu.config"')
    config = (module_dir / "tests" / "gpu.config").read_text()
    if "accelerator = 1" not in config or "params.gpu = true" not in config:
        problems.append(f"{module_dir.name}/tests/gpu.config: does not switch the GPU on")
    cases = nftest_cases(gpu)
    if not cases:
        problems.append(f"{gpu}: no test")
    for case in cases:
        if "'--device cuda'" not in case.body or ".command.run" not in case.body:
            problems.append(f"{gpu}: test {case.name!r} does not assert --device cuda and a GPU")
    return problems


#: an assertion that reads what an output contains (not only that it exists)
CONTENT = re.compile(r"readLines|linesGzip|\.text\b|\.bytes\b|md5|\.anndata\(\)")


def test_every_test_has_a_stub_twin_and_real_tests_assert_content() -> None:
    for path in nftest_files(REPO):
        if path.suffix != ".test" or path.name == "gpu.nf.test":
            continue
        names = [case.name for case in nftest_cases(path)]
        real = [n for n in names if not n.endswith("- stub")]
        assert real and all(f"{n} - stub" in names for n in real), (path, names)
        assert not any(n.endswith("- gpu") for n in names), f"{path}: GPU tests go in gpu.nf.test"
        for case in nftest_cases(path):
            if not case.name.endswith("- stub") and path.parent.name == "tests":
                assert CONTENT.search(case.body), f"{path}: {case.name!r} asserts no content"


#: a plugin loaded at a pinned release: nf-test downloads exactly this jar from its registry
PLUGIN = re.compile(r'^\s*load "(nft-[\w-]+)@(\d+\.\d+\.\d+)"\s*$', re.MULTILINE)


def plugin_problems(root: Path) -> list[str]:
    """nf-tests that call ``.anndata()`` need nft-anndata loaded, at a pinned version, by
    ``nf-test.config``."""
    loaded = dict(PLUGIN.findall((root / "nf-test.config").read_text()))
    users = [p for p in nftest_files(root) if p.suffix == ".test" and ".anndata()" in p.read_text()]
    if users and "nft-anndata" not in loaded:
        return [
            f"{len(users)} nf-test file(s) read AnnData but nf-test.config loads no nft-anndata@x.y.z"
        ]
    return []


def test_nf_test_plugins_are_loaded_and_pinned(tmp_path: Path) -> None:
    assert plugin_problems(REPO) == []
    broken = tmp_path / "repo"
    shutil.copytree(REPO / "modules", broken / "modules")
    config = (REPO / "nf-test.config").read_text()
    (broken / "nf-test.config").write_text(config.replace("nft-anndata@0.4.1", "nft-anndata"))
    assert plugin_problems(broken) == [
        "7 nf-test file(s) read AnnData but nf-test.config loads no nft-anndata@x.y.z"
    ]


def test_gpu_modules_have_gpu_tests() -> None:
    gpu_modules = [
        m.parent
        for m in (REPO / "modules" / "local").glob("*/main.nf")
        if "process_gpu" in m.read_text()
    ]
    assert len(gpu_modules) == 5
    assert [p for m in sorted(gpu_modules) for p in gpu_test_problems(m)] == []


def test_gpu_test_check_fails_on_a_broken_copy(tmp_path: Path) -> None:
    """The old "gpu" tests: the CPU test again, nothing about the device."""
    module = tmp_path / "tfbind_train"
    shutil.copytree(REPO / "modules" / "local" / "tfbind_train", module)
    gpu = module / "tests" / "gpu.nf.test"
    text = gpu.read_text()
    kept = [line for line in text.splitlines(keepends=True) if "--device cuda" not in line]
    gpu.write_text("".join(kept))
    assert gpu_test_problems(module) == [
        f"{gpu}: test 'simulated tiny world - gpu' does not assert --device cuda and a GPU"
    ]


def test_nf_test_inputs_match_each_process() -> None:
    problems = [
        p for path in nftest_files(REPO) if path.suffix == ".test" for p in arity_problems(path)
    ]
    assert problems == []


def test_arity_check_fails_on_a_broken_copy(tmp_path: Path) -> None:
    """A setup that calls TFBIND_TRAIN with 3 of its 4 inputs (its motifs input was added later)."""
    tests_dir = tmp_path / "modules" / "local"
    shutil.copytree(REPO / "modules" / "local", tests_dir)
    path = tests_dir / "grn_train" / "tests" / "main.nf.test"
    lines = path.read_text().splitlines(keepends=True)
    setup = next(i for i, line in enumerate(lines) if 'run("TFBIND_TRAIN")' in line)
    motifs = next(i for i in range(setup, len(lines)) if "input[3]" in lines[i])
    path.write_text("".join(lines[:motifs] + lines[motifs + 1 :]))
    problems = arity_problems(path)
    assert (
        len(problems) == 1
        and "sets input[0, 1, 2] but TFBIND_TRAIN declares 4 input(s)" in problems[0]
    )


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
