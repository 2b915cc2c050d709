"""The README's Python API examples name functions that exist and call them with keywords they
take, and its pipeline picture is the step table's DAG."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

from scregnet.pipeline.steps import STEPS, mermaid

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks(language: str, text: str | None = None) -> list[str]:
    text = README.read_text() if text is None else text
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def check_calls(source: str) -> list[str]:
    """Problems with a block: unknown imports, calls whose arguments do not bind."""
    tree = ast.parse(source)
    names: dict[str, object] = {}
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(str(node.module))
            for alias in node.names:
                if not hasattr(module, alias.name):
                    problems.append(f"{node.module} has no {alias.name}")
                else:
                    names[alias.asname or alias.name] = getattr(module, alias.name)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        func = names.get(node.func.id)
        if func is None:
            continue
        args = [None] * len(node.args)
        kwargs = {kw.arg: None for kw in node.keywords if kw.arg is not None}
        try:
            inspect.signature(func).bind(*args, **kwargs)  # type: ignore[arg-type]
        except TypeError as err:
            problems.append(f"{node.func.id}(...) line {node.lineno}: {err}")
    return problems


def test_readme_has_an_api_example_per_stage() -> None:
    modules = " ".join(blocks("python"))
    for stage in ("scregnet.atac", "scregnet.impute", "scregnet.tfbind", "scregnet.grn"):
        assert f"from {stage}." in modules, stage


@pytest.mark.parametrize("index", range(4))
def test_readme_api_examples_bind(index: int) -> None:
    assert check_calls(blocks("python")[index]) == []


def test_binding_check_fails_on_a_wrong_keyword_or_name() -> None:
    wrong_keyword = "from scregnet.impute.api import impute\nimpute(None, epoch=3)\n"
    assert any("epoch" in p for p in check_calls(wrong_keyword))
    wrong_name = "from scregnet.impute.api import impute_cells\n"
    assert check_calls(wrong_name) == ["scregnet.impute.api has no impute_cells"]
    missing_required = "from scregnet.grn.api import train_grn\ntrain_grn(['a.h5ad'])\n"
    assert any("out" in p for p in check_calls(missing_required))


def test_readme_pipeline_picture_is_the_step_table() -> None:
    """Regenerate with `python -c "from scregnet.pipeline.steps import mermaid; print(mermaid())"`."""
    (picture,) = blocks("mermaid")
    assert picture == mermaid()
    for name, process in STEPS.items():
        for up in process.upstream:
            assert f"    {up} --> {name}\n" in picture


@pytest.mark.slow
def test_readme_api_examples_run(
    tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's Python blocks, run in order as written, in a folder holding the tiny world as
    `w` and the fragments file its shell example makes of the first sample (~1 min)."""
    import pandas as pd

    from scregnet.io.h5ad import read_h5ad
    from tiny_run import run

    monkeypatch.chdir(tmp_path)
    (tmp_path / "w").symlink_to(tiny_world)
    proc = run(
        [
            "fragments", "--bam", "w/samples/sample1.bam", "--genome", "w/genome.fa.fai",
            "--out", "s1.fragments.tsv.gz", "--threads", "1",
        ],
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for index, source in enumerate(blocks("python")):
        exec(compile(source, f"README.md python block {index + 1}", "exec"), {"__name__": "readme"})
    assert "scfan_activity" in read_h5ad("s1.tfbind.h5ad").layers
    assert read_h5ad("s1.imputed.h5ad").layers["imputed"].shape[0] > 0
    edges = pd.read_csv("grn_edges.tsv", sep="\t")
    assert {"tf", "target", "score", "rank", "method"} <= set(edges.columns)
    assert set(edges["tf"]) == {"SPI1", "CEBPA"}
