"""constraints.txt (``make lock``): the tested version of every dependency, taken by every install.

It pins each dependency of the package and of the extras CI installs, within pyproject.toml's open
ranges; it names no machine's paths or indexes and leaves torch (pinned exactly in pyproject.toml,
its CPU/CUDA build chosen by the index) out; the Makefile's and the containers' installs pass it.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from test_containers import parse_dockerfile

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "constraints.txt"
#: the extras `make lock` resolves (dev includes multiqc)
LOCKED_EXTRAS = ("dev", "peaks", "multiqc")
#: left out of the lock on purpose (see the Makefile's lock target)
UNLOCKED = {"torch", "scregnet"}


def pins(lock_text: str) -> dict[str, str]:
    """``name -> version`` of each ``name==version`` line."""
    out = {}
    for line in lock_text.splitlines():
        line = line.split("#")[0].strip()
        if "==" in line and "@" not in line:
            req = Requirement(line)
            (spec,) = req.specifier
            out[canonicalize_name(req.name)] = spec.version
    return out


def lock_problems(pyproject_text: str, lock_text: str) -> list[str]:
    project = tomllib.loads(pyproject_text)["project"]
    wanted = list(project["dependencies"])
    for extra in LOCKED_EXTRAS:
        wanted += project["optional-dependencies"][extra]
    problems = []
    for line in lock_text.splitlines():
        body = line.split("#")[0].strip()
        if not body:
            continue
        if "==" not in body or "[" in body or "@" in body or body.startswith("-"):
            problems.append(f"constraints.txt: {body!r} is not a plain name==version pin")
    locked = pins(lock_text)
    for spec in wanted:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        if name in UNLOCKED:
            if name in locked:
                problems.append(f"constraints.txt pins {name}, which is left to pyproject.toml")
            continue
        if name not in locked:
            problems.append(
                f"constraints.txt has no {name} (pyproject.toml: {spec}); run make lock"
            )
        elif not req.specifier.contains(locked[name], prereleases=True):
            problems.append(
                f"constraints.txt pins {name}=={locked[name]} outside pyproject.toml's {spec}"
            )
    problems += [f"constraints.txt pins the CUDA package {n}" for n in locked if "nvidia" in n]
    return problems


def test_lock_pins_every_dependency_within_the_open_ranges() -> None:
    assert lock_problems((REPO / "pyproject.toml").read_text(), LOCK.read_text()) == []


def test_lock_check_fails_on_a_stale_lock() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    lock = LOCK.read_text()
    added = pyproject.replace('    "pyyaml>=6",', '    "pyyaml>=6",\n    "rich-argparse>=1",')
    assert any("has no rich-argparse" in p for p in lock_problems(added, lock))
    numpy = pins(lock)["numpy"]
    raised = pyproject.replace('"numpy>=1.26,<2.6"', f'"numpy>{numpy}"')
    assert any("pins numpy" in p and "outside" in p for p in lock_problems(raised, lock))
    local = lock + "scregnet @ file:///home/someone/scregnet\n"
    assert any("not a plain name==version" in p for p in lock_problems(pyproject, local))


def test_pyproject_ranges_stay_open() -> None:
    """Library users resolve their own versions: only torch (and the pinned tools) are exact."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    exact = {
        canonicalize_name(Requirement(d).name)
        for d in project["dependencies"]
        if "==" in str(Requirement(d).specifier)
    }
    assert exact == {"torch"}


def makefile_pip_installs(text: str) -> list[str]:
    """The Makefile's `pip install` commands that install the package or torch."""
    joined = text.replace("\\\n", " ")
    commands = [c.strip() for line in joined.splitlines() for c in line.split("&&")]
    return [c for c in commands if "pip install" in c and ("-e " in c or "torch==" in c)]


def test_makefile_installs_take_the_lock() -> None:
    installs = makefile_pip_installs((REPO / "Makefile").read_text())
    assert len(installs) == 5, installs  # test venv: torch + package; demo: the same; bench
    for command in installs:
        assert "-c $(LOCK)" in command, command
    assert re.search(r"^LOCK\s*:= constraints\.txt$", (REPO / "Makefile").read_text(), re.M)


def test_lock_target_regenerates_this_file_with_pip_tools() -> None:
    text = (REPO / "Makefile").read_text()
    assert "\nlock:\n" in text and "pip-compile" in text and "--output-file $(LOCK)" in text
    assert "make lock" in LOCK.read_text().splitlines()[4]  # pip-compile's header names it


def docker_constraint_problems(dockerfile: Path) -> list[str]:
    """Each `pip install` of the package in the Dockerfile passes the copied constraints.txt."""
    parser = parse_dockerfile(dockerfile)
    problems = []
    copied = any(
        i["instruction"] == "COPY" and "constraints.txt" in i["value"].split()
        for i in parser.structure
    )
    if not copied:
        problems.append(f"{dockerfile.name}: does not COPY constraints.txt")
    for instr in parser.structure:
        if instr["instruction"] != "RUN":
            continue
        for command in instr["value"].split("&&"):
            words = shlex.split(command)
            if "pip" in words and "install" in words and "." in words:
                i = next((k for k, w in enumerate(words) if w in ("-c", "--constraint")), None)
                if i is None or words[i + 1] != "constraints.txt":
                    problems.append(
                        f"{dockerfile.name}: installs the package without -c constraints.txt"
                    )
    return problems


def test_containers_install_with_the_lock(tmp_path: Path) -> None:
    for name in ("Dockerfile", "Dockerfile.cpu"):
        path = REPO / "containers" / name
        assert docker_constraint_problems(path) == [], name
        broken = tmp_path / name
        broken.write_text(path.read_text().replace("-c constraints.txt ", ""))
        # both installs of the package: its dependencies' (metadata alone), then its own
        assert (
            docker_constraint_problems(broken)
            == [f"{name}: installs the package without -c constraints.txt"] * 2
        )
