"""Parse the pipeline's Nextflow files and check the rules the language server does not.

The parser understands the subset of DSL2 this project writes (strict syntax, one declaration per
line): ``include``, ``process`` (directives, ``input:``/``output:``/``when:``/``script:``/``stub:``),
``workflow`` (``take:``/``main:``/``emit:``) and ``def`` functions. Comments are removed and string
literals respected when matching braces and splitting arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SECTION = re.compile(r"^\s*(input|output|when|script|shell|exec|stub|topic):\s*$")
WF_SECTION = re.compile(r"^\s*(take|main|emit|publish):\s*$")
BLOCK = re.compile(r"^(process|workflow)\b\s*([A-Za-z_][A-Za-z0-9_]*)?\s*\{", re.MULTILINE)
INCLUDE = re.compile(r"^include\s*\{([^}]*)\}\s*from\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
WHEN_DEFAULT = "task.ext.when == null || task.ext.when"
#: processes that consume the 'versions' topic and therefore emit their own version as `emit: versions`
TOPIC_CONSUMERS = frozenset({"MULTIQC"})


def strip_comments(text: str) -> str:
    """``text`` with ``//`` and ``/* */`` comments blanked (newlines kept), strings untouched."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith(('"""', "'''"), i):
            end = text.find(text[i : i + 3], i + 3)
            end = n if end < 0 else end + 3
            out.append(text[i:end])
            i = end
        elif text[i] in "'\"":
            quote, j = text[i], i + 1
            while j < n and text[j] != quote and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append("\n" * text.count("\n", i, end))
            i = end
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def matching(text: str, start: int, open_: str = "{", close: str = "}") -> int:
    """Index of the bracket closing the one at ``start`` (strings skipped)."""
    depth, i, n = 0, start, len(text)
    while i < n:
        if text.startswith(('"""', "'''"), i):
            end = text.find(text[i : i + 3], i + 3)
            i = n if end < 0 else end + 3
            continue
        c = text[i]
        if c in "'\"":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    msg = f"unbalanced {open_}{close} from offset {start}"
    raise ValueError(msg)


def split_args(text: str) -> list[str]:
    """Top-level comma-separated arguments of a call's argument text (trailing comma allowed)."""
    args, depth, cur, i, n = [], 0, [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith(('"""', "'''"), i):
            end = text.find(text[i : i + 3], i + 3) + 3
            cur.append(text[i:end])
            i = end
            continue
        if c in "'\"":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            cur.append(text[i : j + 1])
            i = j + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    last = "".join(cur).strip()
    if last:
        args.append(last)
    return args


def sections(body: str, pattern: re.Pattern[str]) -> tuple[str, dict[str, str]]:
    """Split a block body into the text before the first section label and each section's text."""
    head: list[str] = []
    out: dict[str, list[str]] = {}
    current: list[str] = head
    for line in body.splitlines():
        m = pattern.match(line)
        if m:
            current = out.setdefault(m.group(1), [])
        else:
            current.append(line)
    return "\n".join(head), {k: "\n".join(v) for k, v in out.items()}


def declarations(section: str) -> list[str]:
    """Non-empty lines of an ``input:``/``output:``/``take:`` section (one declaration per line)."""
    return [line.strip() for line in section.splitlines() if line.strip()]


@dataclass
class Process:
    name: str
    path: Path
    directives: str
    inputs: list[str]
    outputs: list[str]
    sections: dict[str, str]

    @property
    def emits(self) -> list[str]:
        return [m.group(1) for o in self.outputs for m in [re.search(r"emit:\s*(\w+)", o)] if m]

    @property
    def labels(self) -> list[str]:
        return re.findall(r"^\s*label\s+['\"]([^'\"]+)['\"]", self.directives, re.MULTILINE)

    def directive(self, name: str) -> str | None:
        m = re.search(rf"^\s*{name}\b\s*(.+)$", self.directives, re.MULTILINE)
        return m.group(1).strip() if m else None


@dataclass
class Call:
    name: str
    args: list[str]
    line: int


@dataclass
class Workflow:
    name: str  # "" for the entry workflow
    path: Path
    takes: list[str]
    emits: list[str]
    main: str
    calls: list[Call] = field(default_factory=list)
    out_refs: list[tuple[str, str, int]] = field(default_factory=list)  # (callee, emit, line)


@dataclass
class Include:
    name: str  # as used in the including file (alias)
    original: str
    source: str
    target: Path | None  # resolved main.nf, None for plugins


@dataclass
class Script:
    path: Path
    text: str
    includes: list[Include]
    processes: list[Process]
    workflows: list[Workflow]


def _resolve_include(path: Path, source: str) -> Path | None:
    if source.startswith("plugin/"):
        return None
    target = (path.parent / source).resolve()
    if target.is_dir():
        target = target / "main.nf"
    elif target.suffix != ".nf":
        target = target.with_suffix(".nf")
    return target


def parse(path: Path) -> Script:
    """Parse one ``.nf`` file."""
    raw = path.read_text()
    text = strip_comments(raw)
    includes = []
    for m in INCLUDE.finditer(text):
        for item in re.split(r"[;\n]", m.group(1)):
            parts = item.split()
            if not parts:
                continue
            original = parts[0]
            alias = parts[2] if len(parts) == 3 and parts[1] == "as" else original
            includes.append(
                Include(alias, original, m.group(2), _resolve_include(path, m.group(2)))
            )
    processes, workflows = [], []
    for m in BLOCK.finditer(text):
        open_at = m.end() - 1
        close_at = matching(text, open_at)
        body = text[open_at + 1 : close_at]
        kind, name = m.group(1), m.group(2) or ""
        if kind == "process":
            head, secs = sections(body, SECTION)
            processes.append(
                Process(
                    name,
                    path,
                    head,
                    declarations(secs.get("input", "")),
                    declarations(secs.get("output", "")),
                    secs,
                )
            )
        else:
            head, secs = sections(body, WF_SECTION)
            main = secs.get("main", head if not secs else "")
            takes = [d.split("//")[0].strip() for d in declarations(secs.get("take", ""))]
            emits = [
                d.split("=")[0].strip() for d in declarations(secs.get("emit", "")) if "=" in d
            ]
            wf = Workflow(name, path, takes, emits, main)
            offset_line = text.count("\n", 0, open_at) + 1
            wf_body_start = open_at + 1
            for inc in includes:
                if inc.target is None:
                    continue
                for cm in re.finditer(rf"(?<![\w.]){re.escape(inc.name)}\s*\(", body):
                    args_open = cm.end() - 1
                    args_close = matching(body, args_open, "(", ")")
                    line = text.count("\n", 0, wf_body_start + cm.start()) + 1
                    wf.calls.append(
                        Call(inc.name, split_args(body[args_open + 1 : args_close]), line)
                    )
                for om in re.finditer(rf"(?<![\w.]){re.escape(inc.name)}\.out\.(\w+)", body):
                    line = text.count("\n", 0, wf_body_start + om.start()) + 1
                    wf.out_refs.append((inc.name, om.group(1), line))
            del offset_line
            workflows.append(wf)
    return Script(path, raw, includes, processes, workflows)


def known_labels(base_config: Path) -> set[str]:
    """The labels that conf/base.config gives resources to."""
    return set(re.findall(r"withLabel:\s*['\"]?(\w+)", strip_comments(base_config.read_text())))


def pipeline_files(root: Path) -> list[Path]:
    return sorted(
        [
            root / "main.nf",
            *(root / "workflows").glob("*.nf"),
            *(root / "subworkflows").rglob("*.nf"),
            *sorted((root / "modules").rglob("main.nf")),
        ]
    )


def check_process(proc: Process, labels: set[str]) -> list[str]:
    """Rule violations of one module process."""
    where = f"{proc.path}: process {proc.name}"
    problems = []
    if len(proc.labels) != 1:
        problems.append(f"{where}: needs exactly one resource label, has {proc.labels}")
    problems += [
        f"{where}: unknown label '{lb}' (known: {sorted(labels)})"
        for lb in proc.labels
        if lb not in labels
    ]
    for directive in ("tag", "conda", "container"):
        if proc.directive(directive) is None:
            problems.append(f"{where}: no '{directive}' directive")
    if proc.directive("accelerator") is not None:
        problems.append(
            f"{where}: hard-codes 'accelerator' (set it by label in conf/, not in a module)"
        )
    for section in ("input", "output", "when", "script", "stub"):
        if section not in proc.sections:
            problems.append(f"{where}: no '{section}:' section")
    if " ".join(proc.sections.get("when", "").split()) != WHEN_DEFAULT:
        problems.append(f"{where}: 'when:' must be `{WHEN_DEFAULT}`")
    script = proc.sections.get("script", "")
    if "task.ext.args" not in script or "${args}" not in script:
        problems.append(
            f"{where}: script must take `def args = task.ext.args ?: ''` and use ${{args}}"
        )
    version_outputs = [o for o in proc.outputs if "eval(" in o and "versions" in o]
    if proc.name in TOPIC_CONSUMERS:
        if not any(re.search(r"emit:\s*versions\b", o) for o in version_outputs):
            problems.append(f"{where}: consumes the versions topic, so must `emit: versions`")
    elif not any(re.search(r"topic:\s*versions\b", o) for o in proc.outputs):
        problems.append(f"{where}: no versions output on the 'versions' topic")
    uses_device = "--device" in script or "task.accelerator" in script
    gpu = "process_gpu" in proc.labels
    if uses_device and not gpu:
        problems.append(f"{where}: chooses a device but is not labelled 'process_gpu'")
    if gpu:
        if "task.accelerator" not in script or "--device" not in script:
            problems.append(
                f"{where}: labelled 'process_gpu' but does not pass --device from task.accelerator"
            )
        if "task.accelerator" not in (proc.directive("container") or ""):
            problems.append(
                f"{where}: labelled 'process_gpu' but its container ignores task.accelerator"
            )
    if re.search(r"\bparams\.", "\n".join([proc.directives, *proc.sections.values()])):
        problems.append(
            f"{where}: reads params (only main.nf may; use ext.args in conf/modules.config)"
        )
    emits = proc.emits
    if len(emits) != len(set(emits)):
        problems.append(f"{where}: duplicate emit names {emits}")
    return problems


def check_pipeline(root: Path) -> list[str]:
    """Every rule over the whole pipeline under ``root``; an empty list means all pass."""
    labels = known_labels(root / "conf" / "base.config")
    problems: list[str] = []
    scripts = {p.resolve(): parse(p) for p in pipeline_files(root)}
    processes = {(s.path.resolve(), p.name): p for s in scripts.values() for p in s.processes}
    workflows = {(s.path.resolve(), w.name): w for s in scripts.values() for w in s.workflows}
    for script in scripts.values():
        if script.path.parts[-4:-2] == ("modules", "local") or "modules" in script.path.parts:
            if len(script.processes) != 1:
                problems.append(f"{script.path}: a module file holds exactly one process")
        for proc in script.processes:
            problems += check_process(proc, labels)
        if script.path.name != "main.nf" or script.path.parent.resolve() != root.resolve():
            for wf in script.workflows:
                if re.search(r"\bparams\.", wf.main):
                    problems.append(
                        f"{script.path}: workflow {wf.name} reads params (only main.nf may)"
                    )
        for wf in script.workflows:
            called: dict[str, int] = {}
            for call in wf.calls:
                called[call.name] = called.get(call.name, 0) + 1
            problems += [
                f"{script.path}: workflow {wf.name or '<entry>'} calls {n} {k} times (alias it)"
                for k, n in called.items()
                if n > 1
            ]
            for call in wf.calls:
                inc = next(i for i in script.includes if i.name == call.name)
                assert inc.target is not None
                key = (inc.target, inc.original)
                if key in processes:
                    want, kind = len(processes[key].inputs), "inputs"
                elif key in workflows:
                    want, kind = len(workflows[key].takes), "takes"
                else:
                    problems.append(
                        f"{script.path}:{call.line}: {inc.original} not found in {inc.target}"
                    )
                    continue
                if len(call.args) != want:
                    problems.append(
                        f"{script.path}:{call.line}: {call.name} called with {len(call.args)} "
                        f"argument(s), it declares {want} {kind}"
                    )
            for callee, emit, line in wf.out_refs:
                inc = next(i for i in script.includes if i.name == callee)
                assert inc.target is not None
                key = (inc.target, inc.original)
                target_emits = (
                    processes[key].emits
                    if key in processes
                    else workflows[key].emits
                    if key in workflows
                    else None
                )
                if target_emits is not None and emit not in target_emits:
                    problems.append(
                        f"{script.path}:{line}: {callee}.out.{emit} does not exist "
                        f"(emits: {', '.join(target_emits)})"
                    )
    return problems
