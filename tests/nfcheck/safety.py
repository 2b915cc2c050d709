"""Rules for -resume safety and shell safety that neither the language server nor Nextflow checks.

- :func:`unsorted_gathers`: every ``collect``/``groupTuple``/``toList`` of a channel names its order
  (``sort:``, or ``toSortedList``): otherwise the gathered list follows task completion order, the
  receiving task's inputs change order between runs and ``-resume`` reruns it.
- :func:`launch_writes`: a file written while the workflow is being set up (``.text =``, ``write``,
  ``copyTo``...) gets a new timestamp at each launch; if it reached a process it would change that
  task's cache key. A function that writes may only be called as a statement of its own (its
  result dropped) or to hand a samplesheet to ``samplesheetToList``.
- :func:`unquoted_interpolations`: every ``${...}`` in a process's command (``script:`` and
  ``stub:``) is inside single quotes, or is ``task.cpus``/``args`` (config-owned flags), or is a
  ``def`` of the same block whose own interpolations follow this rule. Contig names, sample ids and
  file names then reach bash as single words whatever they contain (the workflow rejects names
  with a single quote where they come from: predictionShards, the samplesheet schema).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from nfcheck.structure import matching, parse, pipeline_files, strip_comments

GATHER = re.compile(r"\.(collect|groupTuple|toList)\s*\(")
WRITES = re.compile(
    r"\.(text\s*=(?!=)|write\s*\(|append\s*\(|copyTo\s*\(|moveTo\s*\(|setText\s*\()"
)
FUNCTION = re.compile(r"^def\s+(\w+)\s*\(", re.MULTILINE)
SAFE_NAMES = {"task.cpus", "args"}


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def workflow_files(root: Path) -> list[Path]:
    """main.nf, workflows/ and subworkflows/: the files that wire channels."""
    return [p for p in pipeline_files(root) if "modules" not in p.relative_to(root).parts]


def unsorted_gathers(paths: list[Path]) -> list[str]:
    """``path:line: ...`` for each channel gather without an order."""
    problems = []
    for path in paths:
        text = strip_comments(path.read_text())
        for m in GATHER.finditer(text):
            args = text[m.end() : matching(text, m.end() - 1, "(", ")")]
            if m.group(1) == "toList" or "sort:" not in args or re.search(r"sort:\s*false", args):
                problems.append(
                    f"{path}:{_line(text, m.start())}: .{m.group(1)}({args.strip()}) has no order "
                    "(give sort:, or use toSortedList)"
                )
    return problems


def _functions(text: str) -> dict[str, str]:
    out = {}
    for m in FUNCTION.finditer(text):
        open_at = text.index("{", m.end())
        out[m.group(1)] = text[open_at + 1 : matching(text, open_at)]
    return out


def launch_writes(paths: list[Path]) -> list[str]:
    """``path:line: ...`` for each use of a file-writing function's result other than the allowed two."""
    texts = {p: strip_comments(p.read_text()) for p in paths}
    writers = {
        name
        for text in texts.values()
        for name, body in _functions(text).items()
        if WRITES.search(body)
    }
    problems = []
    for path, text in texts.items():
        for name in sorted(writers):
            for m in re.finditer(rf"(?<![\w.]){name}\s*\(", text):
                line_start = text.rfind("\n", 0, m.start()) + 1
                before = text[line_start : m.start()]
                if before.strip() == "def" or before.strip().startswith("def "):
                    if re.match(rf"def\s+{name}\s*\(", text[line_start:].lstrip()):
                        continue  # the definition itself
                if before.strip() == "":
                    continue  # a statement of its own: the result is dropped
                enclosing = text.rfind("samplesheetToList(", 0, m.start())
                if (
                    enclosing >= 0
                    and matching(text, enclosing + len("samplesheetToList"), "(", ")") > m.start()
                ):
                    continue
                problems.append(
                    f"{path}:{_line(text, m.start())}: {name}() writes a file at launch and its "
                    "result is used (a launch-time file must never become a process input)"
                )
    return problems


def _interpolations(literal: str) -> list[tuple[int, str]]:
    """(offset, expression) of each ``${...}`` in a GString literal's text."""
    found, i = [], 0
    while True:
        start = literal.find("${", i)
        if start < 0:
            return found
        end = matching(literal, start + 1)
        found.append((start, literal[start + 2 : end].strip()))
        i = end + 1


def _single_quoted(literal: str, offset: int) -> bool:
    """Whether ``offset`` lies inside single quotes of the shell text ``literal`` (on its line)."""
    line_start = literal.rfind("\n", 0, offset) + 1
    text, quotes, i = literal[line_start:offset], 0, 0
    while i < len(text):
        if text.startswith("${", i):  # skip nested interpolations
            i = matching(text, i + 1) + 1
            continue
        if text[i] == "'":
            quotes += 1
        i += 1
    return quotes % 2 == 1


def _gstrings(code: str) -> list[str]:
    """The double-quoted (GString) literals of a Groovy expression, triple-quoted ones included."""
    out, i, n = [], 0, len(code)
    while i < n:
        if code.startswith('"""', i):
            end = code.index('"""', i + 3)
            out.append(code[i + 3 : end])
            i = end + 3
        elif code[i] == '"':
            j = i + 1
            while j < n and code[j] != '"':
                if code.startswith("${", j):
                    j = matching(code, j + 1) + 1
                    continue
                j += 2 if code[j] == "\\" else 1
            out.append(code[i + 1 : j])
            i = j + 1
        elif code[i] == "'":
            j = code.index("'", i + 1)
            i = j + 1
        else:
            i += 1
    return out


def _top_level(expr: str, token: str) -> int:
    """Index of the first ``token`` outside brackets and string literals, or -1."""
    depth, i, n = 0, 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "'\"":
            j = i + 1
            while j < n and expr[j] != c:
                if expr.startswith("${", j):
                    j = matching(expr, j + 1) + 1
                    continue
                j += 2 if expr[j] == "\\" else 1
            i = j + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and expr.startswith(token, i):
            if token != "?" or not expr.startswith(("?:", "?."), i):
                return i
        i += 1
    return -1


def _literal(expr: str) -> str | None:
    """The text of ``expr`` when it is one string literal ('...' or "..."), else None."""
    if (
        len(expr) >= 2
        and expr[0] == expr[-1]
        and expr[0] in "'\""
        and _gstrings(expr)
        in (
            [expr[1:-1]],
            [],
        )
    ):
        return expr[1:-1]
    return None


def _value_safe(expr: str, check: Callable[[str], bool]) -> bool:
    """Whether a ``def``'s value can only produce shell-safe text: string literals (their
    interpolations checked), config-owned values (``task.ext.*``), a ternary or elvis of such,
    or ``<anything>.collect { ... -> <literal> }.join(<literal>)``."""
    expr = expr.strip()
    if expr.startswith("task.ext.") and re.fullmatch(r"task\.ext\.\w+", expr):
        return True
    lit = _literal(expr)
    if lit is not None:
        return expr[0] == "'" or check(lit)
    elvis = _top_level(expr, "?:")
    if elvis >= 0:
        return _value_safe(expr[:elvis], check) and _value_safe(expr[elvis + 2 :], check)
    q = _top_level(expr, "?")
    if q >= 0:
        colon = _top_level(expr[q + 1 :], ":")
        if colon < 0:
            return False
        return _value_safe(expr[q + 1 : q + 1 + colon], check) and _value_safe(
            expr[q + 2 + colon :], check
        )
    m = re.fullmatch(r"(?s).*\.collect\s*\{\s*[\w\s,]+->\s*(.+?)\s*\}\s*\.join\((.+)\)", expr)
    if m:
        return _value_safe(m.group(1), check) and _literal(m.group(2).strip()) is not None
    return False


def _block_problems(where: str, block: str) -> list[str]:
    defs: dict[str, str] = {}
    command_at = block.rfind('"""', 0, block.rfind('"""'))
    head = block[:command_at]
    for m in re.finditer(r"^\s*def\s+(\w+)\s*=\s*", head, re.MULTILINE):
        # a def runs to the next def (a chained call may continue on following lines)
        nxt = re.compile(r"^\s*def\s", re.MULTILINE).search(head, m.end())
        stmt = head[m.end() : nxt.start() if nxt else len(head)]
        stmt = "\n".join(line for line in stmt.splitlines() if not line.strip().startswith("//"))
        defs[m.group(1)] = " ".join(stmt.split())
    safe: dict[str, bool] = {}

    def literal_ok(literal: str) -> bool:
        return all(expr_ok(e, _single_quoted(literal, off)) for off, e in _interpolations(literal))

    def expr_ok(expr: str, quoted: bool) -> bool:
        if quoted or expr in SAFE_NAMES:
            return True
        if expr in defs:
            if expr not in safe:
                safe[expr] = False  # cycles are unsafe
                safe[expr] = _value_safe(defs[expr], literal_ok)
            return safe[expr]
        return False

    problems = []
    for literal in _gstrings(block[command_at:]):
        for off, expr in _interpolations(literal):
            if not expr_ok(expr, _single_quoted(literal, off)):
                problems.append(
                    f"{where}: ${{{expr}}} is neither single-quoted nor a checked value"
                )
    return problems


def unquoted_interpolations(root: Path) -> list[str]:
    """``path: process BLOCK: ...`` for each unsafe interpolation in a module's command."""
    problems = []
    for path in sorted((root / "modules").rglob("main.nf")):
        for proc in parse(path).processes:
            for block in ("script", "stub"):
                if block in proc.sections:
                    problems += _block_problems(
                        f"{path}: {proc.name} {block}", proc.sections[block]
                    )
    return problems
