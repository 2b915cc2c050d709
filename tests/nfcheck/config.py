"""Which config file sets a process's ``ext.args`` once Nextflow has read the config with some profiles.

Nextflow reads ``nextflow.config`` top to bottom: an ``includeConfig`` is read where it stands, and
the selected profiles' blocks are applied where the ``profiles { }`` block stands, in the order they
are declared there. A later assignment of the same setting wins. This module replays that order for
the settings the pipeline's tests care about (``withName: 'X' { ext.args = ... }``), so that a test can
ask "with ``-profile test``, whose ``ext.args`` does TFBIND_TRAIN get?".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nfcheck.structure import matching, strip_comments

INCLUDE = re.compile(r"^\s*includeConfig\s+['\"]([^'\"]+)['\"]\s*$", re.MULTILINE)
PROFILES = re.compile(r"^profiles\s*\{", re.MULTILINE)
WITH_NAME = re.compile(r"withName:\s*['\"]?([\w|]+)['\"]?\s*\{")
EXT_ARGS = re.compile(r"^\s*ext\.args\s*=\s*(.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Setting:
    value: str  # the right-hand side as written
    source: Path  # the config file that set it last


def _chunks(path: Path, profiles: list[str], root: Path) -> list[tuple[Path, str]]:
    """The config text in the order Nextflow reads it: (file, text) pieces, includes expanded."""
    text = strip_comments(path.read_text())
    out: list[tuple[Path, str]] = []
    pos = 0
    events: list[tuple[int, int, str, str]] = []  # (start, end, kind, payload)
    for m in INCLUDE.finditer(text):
        events.append((m.start(), m.end(), "include", m.group(1)))
    for m in PROFILES.finditer(text):
        close = matching(text, m.end() - 1)
        events.append((m.start(), close + 1, "profiles", text[m.end() : close]))
    for start, end, kind, payload in sorted(events):
        if start < pos:  # an include inside the profiles block: handled with its profile
            continue
        out.append((path, text[pos:start]))
        if kind == "include":
            out += _chunks(root / payload, profiles, root)
        else:
            for name, body in _profile_blocks(payload):
                if name in profiles:
                    out += _profile_chunks(path, body, profiles, root)
        pos = end
    out.append((path, text[pos:]))
    return out


def _profile_blocks(text: str) -> list[tuple[str, str]]:
    """``name { body }`` entries of a ``profiles`` block, in declaration order."""
    blocks, pos = [], 0
    for m in re.finditer(r"(\w+)\s*\{", text):
        if m.start() < pos:
            continue
        close = matching(text, m.end() - 1)
        blocks.append((m.group(1), text[m.end() : close]))
        pos = close + 1
    return blocks


def _profile_chunks(
    path: Path, body: str, profiles: list[str], root: Path
) -> list[tuple[Path, str]]:
    out, pos = [], 0
    for m in INCLUDE.finditer(body):
        out.append((path, body[pos : m.start()]))
        out += _chunks(root / m.group(1), profiles, root)
        pos = m.end()
    out.append((path, body[pos:]))
    return out


def ext_args(config: Path, profiles: list[str] | tuple[str, ...] = ()) -> dict[str, Setting]:
    """Process name -> the ``ext.args`` that wins when ``config`` is read with ``profiles``."""
    found: dict[str, Setting] = {}
    for source, text in _chunks(config, list(profiles), config.parent):
        for m in WITH_NAME.finditer(text):
            close = matching(text, m.end() - 1)
            body = text[m.end() : close]
            args = EXT_ARGS.search(body)
            if args:
                for name in m.group(1).split("|"):
                    found[name] = Setting(args.group(1), source)
    return found


PROCESS_BLOCK = re.compile(r"^\s*process\s*\{", re.MULTILINE)
SELECTOR = re.compile(r"(withName|withLabel):\s*(?:'([^']+)'|\"([^\"]+)\"|([\w|]+))\s*\{")


def _generic_and_named(text: str, setting: str) -> tuple[list[str], list[tuple[str, str]]]:
    """In one piece of config text: the generic values of the process setting ``setting``
    (``process { setting = v }`` outside any selector, ``process.setting = v``) and the
    ``withName`` ones as (pattern, value), each in reading order."""
    assign = re.compile(rf"^\s*{re.escape(setting)}\s*=\s*(.+?)\s*$", re.MULTILINE)
    dotted = re.compile(rf"^\s*process\.{re.escape(setting)}\s*=\s*(.+?)\s*$", re.MULTILINE)
    generic = [(m.start(), m.group(1)) for m in dotted.finditer(text)]
    named: list[tuple[str, str]] = []
    for block in PROCESS_BLOCK.finditer(text):
        start = block.end()
        close = matching(text, start - 1)
        body, pos = text[start:close], 0
        outside: list[tuple[int, str]] = []  # (offset in body, text outside any selector)
        for sel in SELECTOR.finditer(body):
            if sel.start() < pos:
                continue
            end = matching(body, sel.end() - 1)
            outside.append((pos, body[pos : sel.start()]))
            if sel.group(1) == "withName":
                pattern = next(g for g in sel.groups()[1:] if g)
                named += [(pattern, m.group(1)) for m in assign.finditer(body[sel.end() : end])]
            pos = end + 1
        outside.append((pos, body[pos:]))
        for offset, part in outside:
            generic += [(start + offset + m.start(), m.group(1)) for m in assign.finditer(part)]
    return [value for _, value in sorted(generic)], named


def process_setting(
    config: Path,
    process: str,
    setting: str,
    profiles: list[str] | tuple[str, ...] = (),
    extra: list[Path] | tuple[Path, ...] = (),
) -> Setting | None:
    """The value of the process setting ``setting`` (``errorStrategy``, ``maxRetries``, ...) for
    ``process`` once ``config`` is read with ``profiles`` and then each ``-c`` file of ``extra``.

    Nextflow's selector priority: a ``withName`` whose pattern matches the process name outranks
    every generic setting, whichever file either is in; within each kind the last one read wins.
    (No setting here is given by ``withLabel``; those are not read.)"""
    pieces = _chunks(config, list(profiles), config.parent)
    for path in extra:
        pieces += _chunks(path, list(profiles), config.parent)
    generic: Setting | None = None
    named: Setting | None = None
    for source, text in pieces:
        values, selected = _generic_and_named(text, setting)
        for value in values:
            generic = Setting(value, source)
        for pattern, value in selected:
            if re.fullmatch(pattern, process):
                named = Setting(value, source)
    return named or generic


def config_files_read(config: Path, profiles: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """The config files read, in order (a file read twice appears twice)."""
    order: list[Path] = []
    for source, _ in _chunks(config, list(profiles), config.parent):
        if not order or order[-1] != source:
            order.append(source)
    return order


PARAMS_BLOCK = re.compile(r"^\s*params\s*\{", re.MULTILINE)
ASSIGN = re.compile(r"^\s*(\w+)\s*=\s*(.+?)\s*$", re.MULTILINE)


def literal(text: str) -> object:
    """A config literal (null, true/false, an integer, a quoted string); else the text as written."""
    if text in ("null", "true", "false"):
        return {"null": None, "true": True, "false": False}[text]
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"'[^']*'|\"[^\"$]*\"", text):
        return text[1:-1]
    return text


def params(config: Path, profiles: list[str] | tuple[str, ...] = ()) -> dict[str, object]:
    """The ``params { name = literal }`` values once ``config`` is read with ``profiles`` (later
    assignments win, as in Nextflow)."""
    found: dict[str, object] = {}
    for _, text in _chunks(config, list(profiles), config.parent):
        for m in PARAMS_BLOCK.finditer(text):
            close = matching(text, m.end() - 1)
            for name, value in ASSIGN.findall(text[m.end() : close]):
                found[name] = literal(value)
    return found
