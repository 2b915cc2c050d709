"""Release hygiene: licence, citations of the three methods, changelog, the Nextflow manifest a user
pins with -r, and the version being one everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

import scregnet

REPO = Path(__file__).resolve().parents[2]
METHOD_DOIS = {
    "scDTL": "10.1093/bib/bbae555",
    "scFAN": "10.1126/sciadv.aba9031",
    "DeepMCL": "10.1093/bib/bbac586",
}


def manifest(config: str) -> dict[str, str]:
    block = config[config.index("manifest {") : config.index("}", config.index("manifest {"))]
    return dict(re.findall(r"^\s*(\w+)\s*=\s*'([^']*)'", block, re.MULTILINE))


def test_licence_is_the_pyproject_licence() -> None:
    licence = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]
    assert licence == "MIT"
    assert (REPO / "LICENSE").read_text().startswith("MIT License")


def citation_problems(text: str) -> list[str]:
    problems = [
        f"{m}: no {doi}" for m, doi in METHOD_DOIS.items() if m not in text or doi not in text
    ]
    tools = ("Nextflow", "nf-core", "MultiQC", "MACS3", "JASPAR", "Scanpy", "PyTorch", "anndata")
    problems += [f"{tool} not cited" for tool in tools if f"**{tool}**" not in text]
    return problems


def test_citations_name_the_three_methods_and_the_tools() -> None:
    assert citation_problems((REPO / "CITATIONS.md").read_text()) == []


def test_citation_check_fails_on_a_broken_copy() -> None:
    text = (REPO / "CITATIONS.md").read_text().replace("bbac586", "bbac000")
    assert citation_problems(text) == ["DeepMCL: no 10.1093/bib/bbac586"]


def test_manifest_pins_a_release() -> None:
    m = manifest((REPO / "nextflow.config").read_text())
    assert m["version"] == scregnet.__version__
    assert m["nextflowVersion"].startswith("!>=")
    assert m["homePage"].startswith("https://github.com/")
    assert f"## {scregnet.__version__}" in (REPO / "CHANGELOG.md").read_text()


def test_conda_environments_name_the_release() -> None:
    """Nextflow's conda cache names an environment by its file's content and the file installs
    this checkout: a file without the version would keep serving the first release's code."""
    for name in ("environment.yml", "environment-gpu.yml"):
        text = (REPO / "containers" / name).read_text()
        assert f"# scregnet {scregnet.__version__}:" in text, name
