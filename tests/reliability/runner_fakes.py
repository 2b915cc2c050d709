"""The runner's real plan of a world, with each step's command replaced by a fast stand-in.

A stand-in step reads exactly the step's declared inputs and writes each declared output (a file,
or a folder with one file) holding a digest of those inputs' contents: an output changes exactly
when an input changes, as a real step's would. The runner's resume, locking and signal handling
are then exercised on the real DAG in a fraction of a second per step.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from scregnet.pipeline import Step, plan
from scregnet.pipeline.params import read_params

STAND_IN = """
import hashlib, json, sys, time
from pathlib import Path

spec = json.loads(sys.argv[1])
digest = hashlib.sha256()
for name in spec["inputs"]:
    path = Path(name)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(f.read_bytes() if f.exists() else b"missing")
text = digest.hexdigest() + "\\n"
time.sleep(spec.get("sleep", 0))
for name in spec["files"]:
    Path(name).parent.mkdir(parents=True, exist_ok=True)
    Path(name).write_text(text)
for name in spec["dirs"]:
    Path(name).mkdir(parents=True, exist_ok=True)
    (Path(name) / "track.txt").write_text(text)
"""


def copy_world(world: Path, dest: Path) -> Path:
    """A private copy of a simulated world (tests edit its files), without its truth folder."""
    shutil.copytree(world, dest, ignore=shutil.ignore_patterns("truth"))
    return dest


def world_params(world: Path, **changes: Any) -> dict[str, Any]:
    """The world's params (paths resolved), with ``changes`` applied (None removes a key)."""
    path = world / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = str(value) if isinstance(value, Path) else value
    edited = world / "params.edited.yaml"
    edited.write_text(yaml.safe_dump(raw))
    return read_params(edited)


def is_dir_output(step: Step, output: Path) -> bool:
    """TRACKS writes a folder; TFBIND_MERGE writes an h5ad and a folder named after the sample."""
    return step.stage == "TRACKS" or (step.stage == "TFBIND_MERGE" and output.name == step.name)


def stand_in(step: Step, *, sleep: float = 0.0) -> Step:
    """``step`` with the same inputs and outputs, run by the stand-in script."""
    spec = {
        "inputs": [str(p) for p in step.inputs],
        "files": [str(o) for o in step.outputs if not is_dir_output(step, o)],
        "dirs": [str(o) for o in step.outputs if is_dir_output(step, o)],
        "sleep": sleep,
    }
    return Step(
        step.stage,
        step.name,
        ["-I", "-S", "-c", STAND_IN, json.dumps(spec)],
        list(step.inputs),
        list(step.outputs),
        executable=sys.executable,
        part=step.part,
    )


def fake_plan(params: dict[str, Any], outdir: Path) -> list[Step]:
    """The real plan of ``params`` with every command replaced by :func:`stand_in`."""
    return [stand_in(s) for s in plan(params, outdir, threads=1)]


def stages(ran: list[str]) -> Counter[str]:
    """``["COUNT:sample1", ...]`` -> how many steps of each stage ran."""
    return Counter(item.split(":", 1)[0] for item in ran)
