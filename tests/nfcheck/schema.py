"""nf-schema semantics on top of ``jsonschema`` (draft 2020-12).

nf-schema reads a samplesheet into one object per row (empty cells dropped), validates the list
against ``assets/schema_input.json`` and understands keys JSON Schema does not: ``exists`` (with a
``format`` of ``file-path``/``directory-path``/``path``), ``meta`` (columns copied into the meta
map), ``uniqueEntries`` (no two rows share these columns) and ``errorMessage`` (the message shown
instead of the validator's). These few lines give the tests the same verdicts.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import jsonschema


def load(path: Path) -> dict[str, Any]:
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return dict(schema)


def read_rows(sheet: Path) -> list[dict[str, str]]:
    """Rows as nf-schema sees them: header-keyed, values stripped, empty cells absent."""
    with sheet.open(newline="") as handle:
        return [
            {k.strip(): v.strip() for k, v in row.items() if k and v and v.strip()}
            for row in csv.DictReader(handle)
        ]


def resolve_relative(rows: list[dict[str, str]], base: Path, columns: tuple[str, ...]) -> None:
    """Make relative paths absolute against ``base`` (what PIPELINE_INITIALISATION does first)."""
    for row in rows:
        for col in columns:
            if col in row and "://" not in row[col] and not row[col].startswith("/"):
                row[col] = str(base / row[col])


def _nf_keyword_errors(
    schema: dict[str, Any], rows: list[dict[str, str]], *, check_exists: bool
) -> list[str]:
    errors = []
    props = schema["items"]["properties"]
    for i, row in enumerate(rows, start=1):
        for name, spec in props.items():
            if name not in row or not spec.get("exists") or not check_exists:
                continue
            path = Path(row[name])
            kind = spec.get("format", "path")
            ok = (
                path.is_file()
                if kind == "file-path"
                else path.is_dir()
                if kind == "directory-path"
                else path.exists()
            )
            if not ok:
                errors.append(
                    f"row {i}: {name}: the file or directory '{row[name]}' does not exist"
                )
    for columns in [schema.get("uniqueEntries", [])] if schema.get("uniqueEntries") else []:
        seen: dict[tuple[str, ...], int] = {}
        for i, row in enumerate(rows, start=1):
            key = tuple(row.get(c, "") for c in columns)
            if key in seen:
                errors.append(
                    f"row {i}: the combination of {columns} ({', '.join(key)}) is not unique (also row {seen[key]})"
                )
            seen.setdefault(key, i)
    return errors


def validate_rows(
    schema: dict[str, Any], rows: list[dict[str, str]], *, check_exists: bool = True
) -> list[str]:
    """Every problem with ``rows`` as one message each (empty: valid)."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = []
    for err in sorted(validator.iter_errors(rows), key=lambda e: list(e.absolute_path)):
        where = list(err.absolute_path)
        spec: dict[str, Any] = err.schema if isinstance(err.schema, dict) else {}
        message = spec.get("errorMessage", err.message)
        if err.validator == "required" and len(where) == 1:
            message = f"{err.message}"
        if isinstance(message, dict):
            message = err.message
        prefix = f"row {where[0] + 1}: " if where else ""
        column = f"{where[1]}: " if len(where) > 1 else ""
        errors.append(f"{prefix}{column}{message}")
    return errors + _nf_keyword_errors(schema, rows, check_exists=check_exists)


def missing_indexes(rows: list[dict[str, str]]) -> list[str]:
    """BAMs without ``.bam.bai`` or ``.bai`` and fragments without ``.tbi`` beside them: the rule
    of ``indexOf()`` in subworkflows/local/utils_scregnet_pipeline/main.nf, which runs right after
    validation."""
    errors = []
    for i, row in enumerate(rows, start=1):
        for column, suffix in (("bam", ".bai"), ("fragments", ".tbi")):
            if column not in row:
                continue
            short = Path(row[column]).with_suffix(suffix)  # x.bai beside x.bam
            if not Path(row[column] + suffix).exists() and not (column == "bam" and short.exists()):
                errors.append(
                    f"row {i}: {row[column]} has no index {Path(row[column]).name}{suffix} beside it"
                )
    return errors


def meta_of(schema: dict[str, Any], row: dict[str, str]) -> dict[str, str | None]:
    """The meta map nf-schema builds from the columns that carry a ``meta`` key."""
    meta: dict[str, str | None] = {}
    for name, spec in schema["items"]["properties"].items():
        for key in spec.get("meta", []):
            meta[key] = row.get(name)
    return meta
