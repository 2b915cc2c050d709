"""Module contract runs: render a process's ``script:``/``stub:`` block and run it with bash.

Rendering uses Groovy (``render.groovy`` under the language server's bundled Groovy 4), so ``def``
statements, ``?:`` defaults and conditionals behave as in Nextflow. The rendered command runs in a
fresh task directory where inputs are staged as symlinks (``stageAs`` patterns honoured), with
``bin/`` and the active Python environment first on ``PATH``; afterwards every declared output
pattern must match. This is a test harness for a module's contract with the CLI, not an engine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nfcheck.structure import Process, split_args
from nfcheck.tools import REPO, ensure_jar, java

RENDER_GROOVY = Path(__file__).with_name("render.groovy")


@dataclass
class Output:
    pattern: str
    kind: str  # 'any' (Nextflow's default), 'file' or 'dir'
    optional: bool
    emit: str | None


@dataclass
class Input:
    kind: str  # val | path
    name: str
    stage_as: str | None = None
    many: bool = False  # arity '0..*' or '1..*': always a list, even of one file


@dataclass
class Task:
    """One process invocation: its bound inputs and ``task.*`` values."""

    process: Process
    vals: dict[str, Any]
    paths: dict[str, Path | list[Path]]
    ext: dict[str, Any] = field(default_factory=dict)
    cpus: int = 1
    accelerator: Any = None

    def task_map(self) -> dict[str, Any]:
        ext = {"args": None, "prefix": None, "when": None, **self.ext}
        return {
            "cpus": self.cpus,
            "ext": ext,
            "accelerator": self.accelerator,
            "process": f"SCREGNET:{self.process.name}",
            "attempt": 1,
            "index": 1,
        }


def inputs_of(proc: Process) -> list[Input]:
    """Flatten the input declarations (tuples included) into named val/path inputs."""
    found = []
    for decl in proc.inputs:
        for m in re.finditer(
            r"\b(val|path)\(\s*(\w+)\s*(?:,\s*stageAs:\s*['\"]([^'\"]+)['\"])?", decl
        ):
            found.append(Input(m.group(1), m.group(2), m.group(3)))
        bare = re.fullmatch(r"(val|path)\s+(\w+)", decl)
        if bare:
            found.append(Input(bare.group(1), bare.group(2)))
    return found


def outputs_of(proc: Process) -> list[Output]:
    """Declared file outputs: ``path("pattern"[, type: 'dir'])`` with their emit and optional flag."""
    found = []
    for decl in proc.outputs:
        optional = bool(re.search(r"optional:\s*true", decl))
        emit = re.search(r"emit:\s*(\w+)", decl)
        for m in re.finditer(r"\bpath\(", decl):
            close = decl.index(")", m.end())
            args = split_args(decl[m.end() : close])
            pattern = args[0].strip("'\"")
            kind = next(
                (
                    m2.group(1)
                    for a in args[1:]
                    for m2 in [re.fullmatch(r"type:\s*['\"](\w+)['\"]", a)]
                    if m2
                ),
                "any",
            )
            found.append(Output(pattern, kind, optional, emit.group(1) if emit else None))
    return found


def version_commands(proc: Process) -> list[str]:
    """The shell commands of the ``eval(...)`` version outputs."""
    cmds = []
    for decl in proc.outputs:
        m = re.search(r"eval\(\s*'((?:[^'\\]|\\.)*)'\s*\)", decl) or re.search(
            r'eval\(\s*"((?:[^"\\]|\\.)*)"\s*\)', decl
        )
        if m:
            cmds.append(m.group(1))
    return cmds


class Renderer:
    """A long-lived Groovy process rendering blocks on request (one JVM start per session)."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [java(), "-cp", str(ensure_jar()), "groovy.ui.GroovyMain", str(RENDER_GROOVY)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def render(self, task: Task, block: str) -> str:
        """The command text of ``block`` ('script' or 'stub') for ``task``."""
        stage = {
            inp.name: inp.stage_as
            for inp in inputs_of(task.process)
            if inp.kind == "path" and inp.stage_as
        }
        paths: dict[str, Any] = {}
        for name, value in task.paths.items():
            if isinstance(value, list):
                paths[name] = [staged_name(v, stage.get(name), i) for i, v in enumerate(value, 1)]
            else:
                paths[name] = staged_name(value, stage.get(name))
        case = {
            "code": task.process.sections[block],
            "vals": task.vals,
            "paths": paths,
            "task": task.task_map(),
            "projectDir": str(REPO),
            "moduleDir": str(task.process.path.parent),
        }
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(case) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            err = self._proc.stderr.read() if self._proc.stderr else ""
            msg = f"render.groovy exited: {err[-2000:]}"
            raise RuntimeError(msg)
        answer = json.loads(line)
        if "error" in answer:
            msg = f"{task.process.name} {block}: {answer['error']}"
            raise RuntimeError(msg)
        return str(answer["text"])

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()


def staged_name(path: Path, stage_as: str | None, index: int = 1) -> str:
    """The name a staged input gets in the task directory, as Nextflow names it: ``*`` alone in
    the last path component keeps the base name (``'dir/*'``), ``?`` becomes the file's 1-based
    index in its input (``'dir?/*'`` -> dir1/, dir2/, ...)."""
    if stage_as is None:
        return path.name
    if "*" in stage_as or "?" in stage_as:
        return stage_as.replace("*", path.name, 1).replace("?", str(index), 1)
    return stage_as


class StagingCollision(RuntimeError):
    """Two inputs of one task staged under the same name (Nextflow: "input file name collision")."""


def staging_plan(task: Task) -> dict[str, Path]:
    """Staged name -> source for every path input of ``task``; raises on a collision."""
    stage = {i.name: i.stage_as for i in inputs_of(task.process) if i.kind == "path"}
    plan: dict[str, Path] = {}
    for name, value in task.paths.items():
        for i, src in enumerate(value if isinstance(value, list) else [value], 1):
            dst = staged_name(src, stage.get(name), i)
            if dst in plan and plan[dst] != src:
                msg = (
                    f"{task.process.name}: input file name collision: {plan[dst]} and {src} "
                    f"are both staged as {dst}"
                )
                raise StagingCollision(msg)
            plan[dst] = src
    return plan


@dataclass
class RunResult:
    workdir: Path
    command: str
    returncode: int
    stderr: str
    outputs: dict[str, list[Path]]  # pattern -> matches
    missing: list[str]
    versions: dict[str, str]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.missing

    def explain(self) -> str:
        tail = "\n".join(self.stderr.strip().splitlines()[-15:])
        return (
            f"command:\n{self.command}\nexit {self.returncode}; missing outputs: {self.missing}\n"
            f"stderr tail:\n{tail}"
        )


def execute(task: Task, command: str, workdir: Path, *, timeout: float = 600) -> RunResult:
    """Stage inputs into ``workdir``, run ``command`` with bash, and collect the declared outputs."""
    workdir.mkdir(parents=True, exist_ok=True)
    staged: set[Path] = set()
    for name, src in staging_plan(task).items():
        dst = workdir / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            dst.symlink_to(src.resolve())
        staged.add(dst)
    script = workdir / ".command.sh"
    script.write_text("#!/bin/bash -euo pipefail\n" + command + "\n")
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(
        [str(REPO / "bin"), str(Path(sys.executable).parent), env["PATH"]]
    )
    env.setdefault("MPLCONFIGDIR", str(workdir / ".mpl"))
    proc = subprocess.run(
        ["bash", "-C", "-e", "-u", "-o", "pipefail", str(script)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    outputs: dict[str, list[Path]] = {}
    missing = []
    for out in outputs_of(task.process):
        matches = [
            p
            for p in sorted(workdir.glob(out.pattern))
            if p not in staged
            and {"dir": p.is_dir(), "file": p.is_file(), "any": p.exists()}[out.kind]
        ]
        outputs[out.pattern] = matches
        if not matches and not out.optional:
            missing.append(out.pattern)
    versions = {}
    if proc.returncode == 0:
        for cmd in version_commands(task.process):
            ver = subprocess.run(
                ["bash", "-o", "pipefail", "-c", cmd],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            versions[cmd] = ver.stdout.strip() if ver.returncode == 0 else ""
    return RunResult(workdir, command, proc.returncode, proc.stderr, outputs, missing, versions)
