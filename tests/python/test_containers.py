"""containers/: base images pinned, package versions identical to pyproject.toml's pins, and the
image tags the modules use are the ones these files build."""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path

import pytest
import tomllib
import yaml
from dockerfile_parse import DockerfileParser

import scregnet

REPO = Path(__file__).resolve().parents[2]
CONTAINERS = REPO / "containers"
#: pyproject name -> conda-forge/bioconda name
CONDA_NAMES = {
    "torch": "pytorch",
    "pyBigWig": "pybigwig",
    "igraph": "python-igraph",
    "matplotlib": "matplotlib-base",
    "isal": "python-isal",
}


def requirement(spec: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    assert m, spec
    return m.group(1), m.group(2).replace(" ", "")


def pyproject_deps() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return dict(requirement(d) for d in project["dependencies"])


def parse_dockerfile(dockerfile: Path) -> DockerfileParser:
    return DockerfileParser(fileobj=io.BytesIO(dockerfile.read_bytes()))


def pip_installs(dockerfile: Path, *, after_sources: bool = False) -> list[list[str]]:
    """The argument lists of every `pip install` in the Dockerfile's RUN instructions; with
    ``after_sources``, only those after the package's sources are copied (`COPY src ...`)."""
    parser = parse_dockerfile(dockerfile)
    found = []
    copied = not after_sources
    for instr in parser.structure:
        if instr["instruction"] == "COPY" and instr["value"].split()[0] == "src":
            copied = True
        if instr["instruction"] != "RUN" or not copied:
            continue
        lexer = shlex.shlex(instr["value"], posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        commands: list[list[str]] = [[]]
        for token in lexer:
            if token in ("&&", ";", "||", "|"):
                commands.append([])
            else:
                commands[-1].append(token)
        for words in commands:
            if "pip" in words and "install" in words:
                found.append(
                    [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
                )
    return found


def check_dockerfile(dockerfile: Path, deps: dict[str, str], *, cuda: bool) -> list[str]:
    problems = []
    base = parse_dockerfile(dockerfile).baseimage or ""
    _image, _, tag = base.partition(":")
    if not tag or tag == "latest" or not re.search(r"\d+\.\d+", tag):
        problems.append(f"{dockerfile.name}: base image {base!r} is not pinned to a version")
    torch_pin = deps["torch"].removeprefix("==")
    if cuda:
        if "cuda" not in tag or "runtime" not in tag or not tag.startswith(torch_pin + "-"):
            problems.append(
                f"{dockerfile.name}: base {base!r} is not the CUDA PyTorch {torch_pin} runtime image"
            )
    installs = pip_installs(dockerfile)
    args = [a.split("#")[0] for cmd in installs for a in cmd if not a.startswith(("http", "--"))]
    if not any("." in cmd for cmd in pip_installs(dockerfile, after_sources=True)):
        problems.append(
            f"{dockerfile.name}: does not `pip install .` (the scregnet package) from its sources"
        )
    for arg in args:
        if arg == "." or "==" not in arg:
            continue
        name, spec = requirement(arg)
        if name in deps and deps[name] != spec:
            problems.append(
                f"{dockerfile.name}: {name}{spec}, pyproject.toml has {name}{deps[name]}"
            )
    pinned = {requirement(a)[0] for a in args if "==" in a}
    for name, spec in deps.items():
        if spec.startswith("==") and name not in pinned:
            problems.append(f"{dockerfile.name}: does not install {name}{spec} explicitly")
    return problems


def check_environment(env_file: Path, deps: dict[str, str]) -> list[str]:
    env = yaml.safe_load(env_file.read_text())
    conda = {}
    pip: list[str] = []
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            pip += entry.get("pip", [])
        else:
            name, _, spec = (
                entry.partition("=")
                if "=" in entry and "==" not in entry and not re.search(r"[<>]", entry)
                else (None, None, None)
            )
            if name is not None:
                conda[name] = "==" + spec
            else:
                n, s = requirement(entry)
                conda[n] = s
    pip_names = {requirement(p)[0]: requirement(p)[1] for p in pip if p != ".."}
    problems = []
    for name, spec in deps.items():
        cname = CONDA_NAMES.get(name, name.lower())
        got = conda.get(cname, pip_names.get(name))
        if got is None:
            problems.append(f"{env_file.name}: {name} missing")
        elif got != spec:
            problems.append(f"{env_file.name}: {cname} {got}, pyproject.toml has {name}{spec}")
    if ".." not in pip:
        problems.append(f"{env_file.name}: does not pip-install the package from the checkout")
    return problems


def test_cuda_dockerfile() -> None:
    assert check_dockerfile(CONTAINERS / "Dockerfile", pyproject_deps(), cuda=True) == []


def test_cpu_dockerfile() -> None:
    assert check_dockerfile(CONTAINERS / "Dockerfile.cpu", pyproject_deps(), cuda=False) == []


def test_conda_environment() -> None:
    assert check_environment(CONTAINERS / "environment.yml", pyproject_deps()) == []


def test_macs3_is_the_same_version_everywhere() -> None:
    pins = set(
        re.findall(
            r"macs3[=]=?([\d.]+)",
            "".join(p.read_text() for p in CONTAINERS.iterdir() if p.is_file()),
        )
    )
    assert len(pins) == 1, pins


def test_modules_use_the_images_these_files_build() -> None:
    version = scregnet.__version__
    images = set()
    for path in (REPO / "modules" / "local").glob("*/main.nf"):
        images |= set(re.findall(r"ghcr\.io/scregnet/scregnet:[\w.\-]+", path.read_text()))
    assert images == {
        f"ghcr.io/scregnet/scregnet:{version}",
        f"ghcr.io/scregnet/scregnet:{version}-cuda",
    }
    for name, image in (("Dockerfile", f"{version}-cuda"), ("Dockerfile.cpu", version)):
        assert f"scregnet:{image} ." in (CONTAINERS / name).read_text()
    assert (
        f"From: ghcr.io/scregnet/scregnet:{version}-cuda"
        in (CONTAINERS / "apptainer.def").read_text()
    )


BROKEN = {
    "unpinned base": (
        "Dockerfile.cpu",
        "ARG BASE=python:3.11.11-slim-bookworm",
        "ARG BASE=python:latest",
        "not pinned",
    ),
    "other torch in base": (
        "Dockerfile",
        "pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime",
        "pytorch/pytorch:2.12.0-cuda12.6-cudnn9-runtime",
        "not the CUDA PyTorch 2.13.0 runtime image",
    ),
    "other torch pin": (
        "Dockerfile.cpu",
        '"torch==2.13.0" "macs3',
        '"torch==2.12.1" "macs3',
        "torch==2.12.1, pyproject.toml has torch==2.13.0",
    ),
    "package not installed": (
        "Dockerfile",
        "--no-deps -c constraints.txt .",
        "--no-deps -c constraints.txt scregnet-core",
        "does not `pip install .`",
    ),
    "package installed before its sources are copied": (
        "Dockerfile.cpu",
        "COPY src ./src\nCOPY bin ./bin\nRUN python -m pip install",
        "RUN python -m pip install",
        "does not `pip install .`",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_container_check_fails_on_a_broken_copy(case: str, tmp_path: Path) -> None:
    name, old, new, expected = BROKEN[case]
    text = (CONTAINERS / name).read_text()
    assert old in text
    broken = tmp_path / name
    broken.write_text(text.replace(old, new))
    problems = check_dockerfile(broken, pyproject_deps(), cuda=name == "Dockerfile")
    assert any(expected in p for p in problems), problems


def test_environment_check_fails_on_a_broken_copy(tmp_path: Path) -> None:
    broken = tmp_path / "environment.yml"
    broken.write_text(
        (CONTAINERS / "environment.yml").read_text().replace("pytorch=2.13.0", "pytorch=2.12")
    )
    assert any("pytorch ==2.12" in p for p in check_environment(broken, pyproject_deps()))


def optional_deps(extra: str) -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return dict(requirement(d.split(";")[0]) for d in project["optional-dependencies"][extra])


def multiqc_module_versions(text: str) -> set[str]:
    """The MultiQC versions the module's conda and container directives name."""
    conda = re.findall(r"conda\s+'bioconda::multiqc=([\d.]+)'", text)
    container = re.findall(r"container\s+'[\w./-]*/multiqc:([\d.]+)--[\w]+'", text)
    assert conda and container, "MULTIQC module: no conda or container pin found"
    return set(conda) | set(container)


def test_multiqc_is_the_same_version_in_the_module_and_the_multiqc_extra() -> None:
    """The contract run executes the pip-installed MultiQC (dev extra): the module's version."""
    module = multiqc_module_versions((REPO / "modules/local/multiqc/main.nf").read_text())
    assert module == {optional_deps("multiqc")["multiqc"].removeprefix("==")}
    assert optional_deps("dev")["scregnet"] == "[multiqc]"  # the tests run MultiQC for real


def test_multiqc_version_check_fails_on_a_broken_copy() -> None:
    text = (REPO / "modules/local/multiqc/main.nf").read_text()
    broken = text.replace("multiqc:1.29--", "multiqc:1.30--")
    assert broken != text and multiqc_module_versions(broken) == {"1.29", "1.30"}


def test_containers_macs3_satisfies_the_peaks_extra() -> None:
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(optional_deps("peaks")["macs3"])
    pins = set(
        re.findall(
            r"macs3==?([\d.]+)", "".join(p.read_text() for p in CONTAINERS.iterdir() if p.is_file())
        )
    )
    assert pins and all(pin in spec for pin in pins), (pins, spec)


#: every `pip install` in a Dockerfile takes this: with WHEELS set, pip installs from it alone
WHEELS_OPTION = '${WHEELS:+--no-index --find-links "$WHEELS"}'


def build_input_problems(dockerfile: Path) -> list[str]:
    """The base image is a build argument (FROM ${BASE}, defaulting to the public image), a
    site's extra CA certificates (containers/certs/) are installed before anything is fetched, and
    every pip install takes the optional wheelhouse WHEELS (the podman test builds from the host's
    wheels: tests/podman_image.py)."""
    parser = parse_dockerfile(dockerfile)
    instructions = [(i["instruction"], i["value"]) for i in parser.structure]
    problems = []
    args = [v for k, v in instructions if k == "ARG" and v.startswith("BASE=")]
    froms = [v for k, v in instructions if k == "FROM"]
    if not args or froms != ["${BASE}"]:
        problems.append(f"{dockerfile.name}: base image is not the build argument BASE")
    copy = next(
        (n for n, (k, v) in enumerate(instructions) if k == "COPY" and "containers/certs/" in v),
        None,
    )
    update = next(
        (
            n
            for n, (k, v) in enumerate(instructions)
            if k == "RUN" and "update-ca-certificates" in v
        ),
        None,
    )
    first_fetch = next(
        (
            n
            for n, (k, v) in enumerate(instructions)
            if k == "RUN" and ("pip" in v or "apt-get install" in v)
        ),
        None,
    )
    if copy is None or update is None or first_fetch is None or not copy < first_fetch <= update:
        problems.append(
            f"{dockerfile.name}: does not install containers/certs/*.crt before fetching"
        )
    stage = next((n for n, (k, _) in enumerate(instructions) if k == "FROM"), len(instructions))
    wheels = [n for n, (k, v) in enumerate(instructions) if k == "ARG" and v == "WHEELS="]
    runs = " ".join(v for k, v in instructions if k == "RUN")
    if (
        not wheels
        or wheels[0] < stage
        or runs.count("pip install") != runs.count(f"pip install {WHEELS_OPTION}")
    ):
        problems.append(f"{dockerfile.name}: pip does not take the build argument WHEELS")
    return problems


def test_dockerfiles_take_base_wheels_and_certificates_as_build_inputs() -> None:
    assert (CONTAINERS / "certs").is_dir()
    for name in ("Dockerfile", "Dockerfile.cpu"):
        assert build_input_problems(CONTAINERS / name) == []


def test_build_input_check_fails_on_a_broken_copy(tmp_path: Path) -> None:
    text = (CONTAINERS / "Dockerfile").read_text()
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        text.replace("FROM ${BASE}", "FROM pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime").replace(
            "COPY containers/certs/ /usr/local/share/ca-certificates/\n", ""
        )
    )
    assert build_input_problems(broken) == [
        "Dockerfile: base image is not the build argument BASE",
        "Dockerfile: does not install containers/certs/*.crt before fetching",
    ]
    text = (CONTAINERS / "Dockerfile.cpu").read_text()
    assert text.count(WHEELS_OPTION) == 3
    for old, new in (
        (f"install {WHEELS_OPTION} --no-deps", "install --no-deps"),  # one pip from the index
        ("ARG WHEELS=\n", ""),
    ):
        broken.write_text(text.replace(old, new))
        assert build_input_problems(broken) == [
            "Dockerfile: pip does not take the build argument WHEELS"
        ], old


def test_cuda_image_has_a_compiler_where_macs3_builds() -> None:
    """MACS3 3.0.4 has no wheel for the CUDA base image's Python: the pip step needs gcc."""
    for instr in parse_dockerfile(CONTAINERS / "Dockerfile").structure:
        if instr["instruction"] == "RUN" and "macs3==" in instr["value"]:
            value = instr["value"]
            assert "build-essential" in value.split("pip install")[0], value
            break
    else:  # pragma: no cover - the check itself is wrong
        raise AssertionError("no RUN installs macs3")


#: the minimum NVIDIA driver of the CUDA 12.6 build of torch, stated wherever the GPU set-up is
MIN_DRIVER = "525.60.13"


def test_gpu_conda_environment_pins_the_cuda_image_torch() -> None:
    cpu = (CONTAINERS / "environment.yml").read_text().splitlines()
    gpu = (CONTAINERS / "environment-gpu.yml").read_text().splitlines()
    body = lambda lines: [x for x in lines if not x.startswith("#") and not x.startswith("name:")]  # noqa: E731
    extra = [x for x in body(gpu) if x not in body(cpu)]
    assert extra == ["  - pytorch-gpu=2.13.0", "  - cuda-version=12.6"]
    assert [x for x in body(cpu) if x not in body(gpu)] == []
    assert "cuda12.6" in parse_dockerfile(CONTAINERS / "Dockerfile").baseimage
    for path in (
        CONTAINERS / "Dockerfile",
        CONTAINERS / "environment-gpu.yml",
        REPO / "conf" / "gpu.config",
        REPO / "docs" / "usage.md",
    ):
        assert MIN_DRIVER in path.read_text(), path
    for path in (REPO / "modules" / "local").glob("*/main.nf"):
        text = path.read_text()
        if "process_gpu" in text:
            assert "task.accelerator ? 'environment-gpu.yml' : 'environment.yml'" in text, path
