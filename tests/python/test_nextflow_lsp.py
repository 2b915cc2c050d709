"""The Nextflow language server's verdict on every .nf and .config file, and the workflow's DAG.

The DAG must be the step table's graph (each process's ``upstream`` in scregnet.pipeline.STEPS);
tests/python/test_nextflow_argv.py checks the same table against each module's command line.

One server runs for this module with two workspace folders: the repository, and a sandbox holding
deliberately broken copies that prove each check fails when it should.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from nfcheck.dag import graph_diff, process_graph
from nfcheck.lsp import LanguageServer, nextflow_files
from scregnet.pipeline import STEPS

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "workflows" / "scregnet.nf"


def runner_graph() -> dict[str, set[str]]:
    """The step table's process graph (scregnet.pipeline.STEPS, the runner's STAGE_GRAPH)."""
    return {name: set(spec.upstream) for name, spec in STEPS.items()}


def _broken_copy(sandbox: Path, name: str, old: str, new: str) -> Path:
    """A copy of modules/ and workflows/ with one replacement in workflows/scregnet.nf."""
    root = sandbox / name
    for sub in ("modules", "workflows"):
        shutil.copytree(REPO / sub, root / sub)
    wf = root / "workflows" / "scregnet.nf"
    text = wf.read_text()
    assert old in text, f"the broken copy {name!r} no longer applies: {old!r} not found"
    wf.write_text(text.replace(old, new, 1))
    return root


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    box = tmp_path_factory.mktemp("nf-sandbox")
    _broken_copy(
        box,
        "lint_broken",
        "    CLUSTER(COUNT.out.h5ad)\n",
        "    CLUSTER(COUNT.out.h5ad)\n    NOT_A_PROCESS(ch_bam)\n    def unused_channel = ch_rna\n",
    )
    _broken_copy(
        box,
        "dag_broken",
        "TRACKS(ch_fragments.join(CLUSTER.out.h5ad), ch_fai)",
        "TRACKS(ch_fragments.join(COUNT.out.h5ad), ch_fai)",
    )
    return box


@pytest.fixture(scope="module")
def server(sandbox: Path) -> Iterator[LanguageServer]:
    with LanguageServer(REPO, sandbox) as ls:
        ls.open([*nextflow_files(REPO), *nextflow_files(sandbox)])
        yield ls


def test_every_pipeline_file_is_checked() -> None:
    names = {p.relative_to(REPO).as_posix() for p in nextflow_files(REPO)}
    assert {"main.nf", "nextflow.config", "workflows/scregnet.nf", "conf/base.config"} <= names
    assert {
        f"modules/local/{m.parent.name}/main.nf" for m in (REPO / "modules").rglob("main.nf")
    } <= names


def test_no_language_server_errors_or_warnings(server: LanguageServer) -> None:
    problems = server.problems(nextflow_files(REPO))
    real = [str(d) for d in problems if not d.allowlisted]
    assert real == [], "\n".join(real)


def test_only_the_offline_plugin_false_positives_are_allowlisted(server: LanguageServer) -> None:
    allowed = [d for d in server.problems(nextflow_files(REPO)) if d.allowlisted]
    assert all(d.path.name == "nextflow.config" for d in allowed), allowed
    assert all(
        d.message == "Plugin 'nf-schema' does not exist"
        or d.message.startswith("Unrecognized config option 'validation.")
        for d in allowed
    )


def test_lint_fails_on_a_broken_copy(server: LanguageServer, sandbox: Path) -> None:
    problems = server.problems(nextflow_files(sandbox / "lint_broken"))
    errors = [d.message for d in problems if d.severity == "error"]
    warnings = [d.message for d in problems if d.severity == "warning"]
    assert "`NOT_A_PROCESS` is not defined" in errors
    assert any("unused_channel" in w or "not used" in w for w in warnings), warnings


def test_workflow_dag_equals_the_runner_stage_graph(server: LanguageServer) -> None:
    got = process_graph(server.preview_dag(WORKFLOW, "SCREGNET"))
    assert graph_diff(got, runner_graph()) == []


def test_dag_check_fails_on_a_broken_copy(server: LanguageServer, sandbox: Path) -> None:
    broken = sandbox / "dag_broken" / "workflows" / "scregnet.nf"
    got = process_graph(server.preview_dag(broken, "SCREGNET"))
    diff = graph_diff(got, runner_graph())
    assert any(line.startswith("TRACKS:") for line in diff), diff
