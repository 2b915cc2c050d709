"""Call the plain-Groovy functions (``def name(...) { }``) of a Nextflow script outside Nextflow.

The workflow's helpers that compute values (prediction shards, the minor-contig rule) use only
Groovy, so the Groovy 4 inside the language-server jar runs them as written; a test compares their
results with the rule they document.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from nfcheck.structure import matching, strip_comments
from nfcheck.tools import ensure_jar, java

SCRIPT = Path(__file__).with_name("functions.groovy")


def function_sources(path: Path) -> str:
    """Every top-level ``def`` function of ``path``, comments removed."""
    text = strip_comments(path.read_text())
    out = []
    for m in re.finditer(r"^def\s+\w+\s*\(", text, re.MULTILINE):
        open_at = text.index("{", m.end())
        out.append(text[m.start() : matching(text, open_at) + 1])
    return "\n\n".join(out)


def call(path: Path, expression: str, **bindings: Any) -> Any:
    """The JSON value of ``expression`` evaluated after ``path``'s functions; raises ValueError
    with Groovy's message when it throws (``error(...)`` included)."""
    return evaluate(expression, function_sources(path), **bindings)


def evaluate(expression: str, functions: str = "", **bindings: Any) -> Any:
    """The JSON value of the Groovy ``expression`` (after ``functions``) with ``bindings``."""
    request = {"functions": functions, "expression": expression, "bindings": bindings}
    proc = subprocess.run(
        [java(), "-cp", str(ensure_jar()), "groovy.ui.GroovyMain", str(SCRIPT)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        msg = f"functions.groovy failed: {proc.stderr[-2000:]}"
        raise RuntimeError(msg)
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    if "error" in answer:
        raise ValueError(answer["error"])
    return answer["value"]
