"""The package's import layers (DESIGN.md): stages never import each other nor ``evaluate``, and
``evaluate`` imports no stage. Stages meet only through files on disk, as Nextflow processes do;
the contracts inside those files (AnnData keys, the checkpoint format) are defined once, in
``scregnet.keys`` and ``scregnet.checkpoint``."""

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
        ("evaluate", "import scregnet.grn.model\n"),
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


# ---- shared contracts are defined once ---------------------------------------------------------
#: key values that are also subcommand, directory, result-field or samplesheet-column names, so a
#: literal of one is not necessarily the AnnData key; every other value of scregnet.keys is checked
SHARED_WORDS = {"cluster", "imputed", "tfbind", "chromvar", "view", "tiles"}
#: the modules that may call torch.save / torch.load: the checkpoint format, and the per-epoch
#: training state of ``tfbind train --state`` (optimiser and generator states, not a model)
TORCH_IO = {"checkpoint.py", "tfbind/train.py"}


def contract_violations(package: Path) -> list[str]:
    """``file:line: ...`` for an AnnData key typed outside ``keys.py``, torch.save/torch.load
    outside :data:`TORCH_IO`, and any ``weights_only=False``."""
    from scregnet import keys

    values = {v for k, v in vars(keys).items() if k.isupper() and isinstance(v, str)} - SHARED_WORDS
    bad: list[str] = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Constant) and node.value in values and rel != "keys.py":
                bad.append(f"{where}: types the AnnData key {node.value!r} (use scregnet.keys)")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                func = node.func
                if (
                    isinstance(func.value, ast.Name)
                    and func.value.id == "torch"
                    and func.attr in ("save", "load")
                    and rel not in TORCH_IO
                ):
                    bad.append(f"{where}: torch.{func.attr} (use scregnet.checkpoint)")
            if (
                isinstance(node, ast.keyword)
                and node.arg == "weights_only"
                and isinstance(node.value, ast.Constant)
                and node.value.value is False
            ):
                bad.append(f"{where}: weights_only=False")
    return bad


def test_contracts_are_defined_once() -> None:
    assert contract_violations(PACKAGE) == []


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('LAYER = "imputed_expected"\n', "types the AnnData key 'imputed_expected'"),
        ('def f(a):\n    return a.obsm["X_lsi"]\n', "types the AnnData key 'X_lsi'"),
        ("import torch\ntorch.save({}, 'm.pt')\n", "torch.save (use scregnet.checkpoint)"),
        ("import torch\ntorch.load('m.pt', weights_only=True)\n", "torch.load"),
        ("import torch\nf(weights_only=False)\n", "weights_only=False"),
    ],
)
def test_contract_check_catches_a_retyped_contract(tmp_path: Path, line: str, problem: str) -> None:
    (tmp_path / "grn").mkdir()
    (tmp_path / "grn" / "bad.py").write_text(line)
    (tmp_path / "keys.py").write_text('X = "imputed_expected"\n')  # the one place it may be typed
    found = contract_violations(tmp_path)
    assert len(found) == 1 and found[0].startswith("grn/bad.py:") and problem in found[0]
