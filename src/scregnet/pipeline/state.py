"""Resume: what a finished step recorded, and whether its outputs are still up to date.

A step's record (``pipeline_info/steps/<stage>.<name>.json``) keeps its fingerprint (command line
and a digest of the scregnet code, like Nextflow's task hash) and a signature of every declared
input, taken just before the step started, and of every output, taken when it finished. The step
is up to date, and skipped, when the fingerprint is the same and every input and output still has
its recorded signature; otherwise it runs again, and the outputs it rewrites change the inputs of
the steps downstream, which therefore run again too.

A file's signature is its SHA-256 when it is at most :data:`HASH_LIMIT` bytes (so an edit is seen
whatever the file's modification time, and a ``touch`` alone reruns nothing), else its size and
modification time in nanoseconds (so a large BAM or FASTA is never read just to be compared). A
folder's signature covers the relative path and signature of every file in it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scregnet.io.atomic import atomic_path
from scregnet.pipeline.plan import Step, package_digest

#: files up to this size are compared by content, larger ones by size and modification time
HASH_LIMIT = 16 * 2**20
#: what a step record keeps besides its command and signatures (a resumed trace row reuses them)
RECORD_FIELDS = ("start", "wall_s", "cpu_s", "peak_rss_mb", "log")
#: the reason :func:`stale_reason` gives for a step without a record
NOT_RUN = "not run before"


def _file_signature(path: Path, st: os.stat_result) -> str:
    if st.st_size <= HASH_LIMIT:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return f"sha256:{digest.hexdigest()}"
    return f"stat:{st.st_size}:{st.st_mtime_ns}"


def signature(path: Path) -> str | None:
    """The signature of a file or folder (see the module docstring); None when it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if not path.is_dir():
        return _file_signature(path, st)
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            member = Path(root) / name
            digest.update(member.relative_to(path).as_posix().encode() + b"\0")
            digest.update((signature(member) or "missing").encode() + b"\0")
    return f"dir:{digest.hexdigest()}"


def snapshot(paths: Iterable[Path]) -> dict[str, str | None]:
    """Path -> signature for each path."""
    return {str(p): signature(Path(p)) for p in paths}


def stale_reason(step: Step, record: Path, inputs: dict[str, str | None]) -> str | None:
    """Why ``step`` must run (one short phrase), or None when its record shows it up to date.

    ``inputs`` is the :func:`snapshot` of the step's inputs taken now.
    """
    if not record.exists():
        return NOT_RUN
    try:
        previous: dict[str, Any] = json.loads(record.read_text())
    except (OSError, ValueError):
        return "its record is unreadable"
    if previous.get("fingerprint") != step.fingerprint():
        return "its command or the scregnet code changed"
    recorded_inputs = previous.get("inputs")
    recorded_outputs = previous.get("outputs")
    if not isinstance(recorded_inputs, dict) or not isinstance(recorded_outputs, dict):
        return "its record has no input signatures (written by an older scregnet)"
    for path, sig in inputs.items():
        if path not in recorded_inputs:
            return f"it reads a new input {path}"
        if sig != recorded_inputs[path]:
            return f"input {path} changed" if sig is not None else f"input {path} is missing"
    for output in step.outputs:
        sig = signature(output)
        if sig is None:
            return f"output {output} is missing"
        if recorded_outputs.get(str(output)) != sig:
            return f"output {output} changed since the step wrote it"
    return None


def write_record(
    record: Path, step: Step, inputs: dict[str, str | None], fields: dict[str, Any]
) -> None:
    """Record a finished step: fingerprint, command, input and output signatures, run figures."""
    content = {
        "fingerprint": step.fingerprint(),
        "scregnet": package_digest(),
        "argv": step.argv,
        **{k: fields[k] for k in RECORD_FIELDS},
        "inputs": inputs,
        "outputs": snapshot(step.outputs),
    }
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(content, indent=1) + "\n")
