"""The structure of nf-test files: which process each block runs and which ``input[N]`` it sets.

nf-test hands a process its inputs by index (``input[0] = ...``) in a ``when { process { ... } }``
block and in ``setup { run("NAME") { script "..."; process { ... } } }`` blocks. A block that sets fewer
inputs than the process declares fails only when nf-test runs (it cannot run here), so
:func:`arity_problems` compares the indices with the process's declared inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nfcheck.structure import matching, parse

RUN = re.compile(r"\brun\(\s*\"(\w+)\"\s*\)\s*\{")
WHEN = re.compile(r"\bwhen\s*\{")
PROCESS_BLOCK = re.compile(r"\bprocess\s*\{\s*\"\"\"(.*?)\"\"\"\s*\}", re.DOTALL)
SCRIPT = re.compile(r"^\s*script\s+\"([^\"]+)\"", re.MULTILINE)
MAIN_PROCESS = re.compile(r"^\s*process\s+\"(\w+)\"", re.MULTILINE)
TEST = re.compile(r"\btest\(\s*\"([^\"]+)\"\s*\)\s*\{")
INPUT = re.compile(r"\binput\[(\d+)\]\s*=")


@dataclass
class Block:
    process: str
    script: Path  # the module's main.nf
    indices: list[int]
    where: str


@dataclass
class TestCase:
    name: str
    body: str


def blocks(path: Path) -> list[Block]:
    """Every process invocation of one nf-test file (setup runs and the tested process)."""
    text = path.read_text()
    found: list[Block] = []
    for m in RUN.finditer(text):
        body = text[m.end() : matching(text, m.end() - 1)]
        script = SCRIPT.search(body)
        proc = PROCESS_BLOCK.search(body)
        if script and proc:
            found.append(
                Block(
                    m.group(1),
                    (path.parent / script.group(1)).resolve(),
                    [int(i) for i in INPUT.findall(proc.group(1))],
                    f'{path}:{text.count(chr(10), 0, m.start()) + 1}: setup run("{m.group(1)}")',
                )
            )
    main = MAIN_PROCESS.search(text)
    script = SCRIPT.search(text)
    if main and script:
        for m in WHEN.finditer(text):
            body = text[m.end() : matching(text, m.end() - 1)]
            proc = PROCESS_BLOCK.search(body)
            if proc:
                found.append(
                    Block(
                        main.group(1),
                        (path.parent / script.group(1)).resolve(),
                        [int(i) for i in INPUT.findall(proc.group(1))],
                        f"{path}:{text.count(chr(10), 0, m.start()) + 1}: when",
                    )
                )
    return found


def arity_problems(path: Path) -> list[str]:
    """Blocks whose ``input[N]`` indices are not exactly 0..n-1 for the process's n inputs."""
    problems = []
    for block in blocks(path):
        procs = [p for p in parse(block.script).processes if p.name == block.process]
        if not procs:
            problems.append(f"{block.where}: no process {block.process} in {block.script}")
            continue
        want = len(procs[0].inputs)
        if sorted(block.indices) != list(range(want)):
            problems.append(
                f"{block.where}: sets input{sorted(block.indices)} but {block.process} declares "
                f"{want} input(s)"
            )
    return problems


def nftest_cases(path: Path) -> list[TestCase]:
    text = path.read_text()
    return [
        TestCase(m.group(1), text[m.end() : matching(text, m.end() - 1)])
        for m in TEST.finditer(text)
    ]
