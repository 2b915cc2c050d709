"""The parameter table of docs/usage.md, generated from nextflow_schema.json.

``python tests/nfcheck/docs.py`` rewrites the table between the markers; a test fails when the
table and the schema disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
START, END = "<!-- params-table:start -->", "<!-- params-table:end -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(spec: dict[str, Any]) -> str:
    if "default" not in spec:
        return ""
    value = spec["default"]
    return f"`{json.dumps(value) if not isinstance(value, str) else value}`"


def params_table(schema: dict[str, Any]) -> str:
    lines = []
    for group in schema["$defs"].values():
        lines += [f"**{group['title']}**: {group.get('description', '')}", ""]
        lines += ["| parameter | type | default | description |", "|---|---|---|---|"]
        for name, spec in group["properties"].items():
            kind = spec.get("type", "")
            kind = "/".join(kind) if isinstance(kind, list) else kind
            if spec.get("format"):
                kind += f" ({spec['format']})"
            if spec.get("enum"):
                kind += ": " + ", ".join(f"`{e}`" for e in spec["enum"])
            required = " (required)" if name in group.get("required", []) else ""
            lines.append(
                f"| `--{name}`{required} | {_cell(kind)} | {_default(spec)} | {_cell(spec['description'])} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render(doc: str, schema: dict[str, Any]) -> str:
    """``doc`` with the text between the markers replaced by the generated table."""
    head, rest = doc.split(START, 1)
    _old, tail = rest.split(END, 1)
    return f"{head}{START}\n{params_table(schema)}{END}{tail}"


def main() -> int:
    schema = json.loads((REPO / "nextflow_schema.json").read_text())
    usage = REPO / "docs" / "usage.md"
    usage.write_text(render(usage.read_text(), schema))
    return 0


if __name__ == "__main__":
    sys.exit(main())
