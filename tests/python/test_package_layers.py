"""The package's import layers (DESIGN.md): stages never import each other nor ``evaluate``, and
``evaluate`` imports no stage. Stages meet only through files on disk, as Nextflow processes do."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import scregnet

PACKAGE = Path(scregnet.__file__).parent
STAGES = ("atac", "impute", "tfbind", "grn", "simulate", "report")


def imported_packages(path: Path) -> set[str]:
    """Second-level ``scregnet.<name>`` modules imported anywhere in ``path`` (inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "scregnet":
                names = [f"scregnet.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "scregnet" and len(parts) > 1:
                found.add(parts[1])
    return found


def layer_violations(package: Path) -> list[str]:
    """``file: imports X`` for every stage -> other stage / evaluate and evaluate -> stage import."""
    bad: list[str] = []
    for layer in (*STAGES, "evaluate"):
        forbidden = set(STAGES) | {"evaluate"}
        forbidden.discard(layer)
        for path in sorted((package / layer).rglob("*.py")):
            for other in sorted(imported_packages(path) & forbidden):
                bad.append(f"{path.relative_to(package)}: imports scregnet.{other}")
    return bad


def test_no_stage_imports_another_stage_or_evaluate() -> None:
    assert layer_violations(PACKAGE) == []


@pytest.mark.parametrize(
    ("layer", "line"),
    [
        ("grn", "from scregnet.evaluate.metrics import auprc\n"),
        ("tfbind", "def f():\n    from scregnet.impute import api\n"),
        ("evaluate", "import scregnet.grn.baselines\n"),
        ("impute", "from scregnet import tfbind\n"),
    ],
)
def test_layer_check_catches_an_upward_import(tmp_path: Path, layer: str, line: str) -> None:
    for name in (*STAGES, "evaluate"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / layer / "bad.py").write_text(line)
    assert layer_violations(tmp_path) == [f"{layer}/bad.py: imports scregnet.{_target(line)}"]


def _target(line: str) -> str:
    for token in line.replace("\n", " ").split():
        if token.startswith("scregnet."):
            return token.split(".")[1]
    return line.split("import")[-1].strip()
