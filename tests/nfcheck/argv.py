"""Command lines compared flag by flag: a module's rendered script block against the runner's step.

``ext.args`` (``conf/modules.config`` and the profiles' configs) are Groovy closures over
``params``; :func:`render_ext_args` evaluates them with the Groovy inside the language-server jar.
:func:`flags` splits a command line into flag -> values using the step table's arities
(``scregnet.pipeline.steps``); a flag the table does not know (a ``<process>_args`` extra) takes one
value unless the next token is a flag. Values are compared by base name: a task stages its inputs
and writes its outputs in its own directory, the runner names them in place.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from nfcheck.config import Setting
from nfcheck.functions import evaluate
from scregnet.pipeline.steps import Process


def render_ext_args(settings: Mapping[str, Setting], params: Mapping[str, Any]) -> dict[str, str]:
    """Process -> its ``ext.args`` string with ``params`` (one JVM start for all)."""
    lines = ["def r = [:]"]
    for name, setting in sorted(settings.items()):
        lines.append(
            f"r['{name}'] = {{ def v = ({setting.value}); v instanceof Closure ? v.call() : v }}"
            ".call()?.toString()"
        )
    lines.append("r")
    value = evaluate("\n".join(lines), params=dict(params))
    assert isinstance(value, dict)
    return {k: v or "" for k, v in value.items()}


def command_tokens(script: str, executable: str) -> list[str]:
    """The tokens after ``executable`` in a rendered script (line continuations joined)."""
    text = script.replace("\\\n", " ")
    for line in text.splitlines():
        try:
            tokens = shlex.split(line)
        except ValueError:
            continue
        if tokens and tokens[0] == executable:
            return tokens[1:]
    msg = f"no `{executable}` command in:\n{script}"
    raise AssertionError(msg)


def flags(tokens: list[str], spec: Process) -> tuple[dict[str, list[str]], list[str]]:
    """(flag -> values in order, positional tokens) of a command line after its subcommand."""
    arity = {a.flag: a.arity for a in spec.args if a.flag}
    out: dict[str, list[str]] = {}
    positional: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            positional.append(token)
            i += 1
            continue
        kind = arity.get(token)
        values = out.setdefault(token, [])
        j = i + 1
        if kind == "switch":
            pass
        elif kind == "list":
            while j < len(tokens) and not tokens[j].startswith("--"):
                values.append(tokens[j])
                j += 1
        elif j < len(tokens) and (kind is not None or not tokens[j].startswith("--")):
            values.append(tokens[j])
            j += 1
        i = j
    return out, positional


def by_name(found: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Values reduced to their base names (paths differ between a task directory and a run)."""
    return {flag: [PurePosixPath(v).name for v in values] for flag, values in found.items()}
