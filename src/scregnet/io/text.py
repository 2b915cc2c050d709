"""Reading small text inputs (sheets, lists, params) as UTF-8 with errors that name the file,
and the strict JSON the package writes.

A byte-order mark is dropped; any other byte that is not UTF-8 (a Latin-1 or UTF-16 file) is an
:class:`InputError` giving the line and the byte, never a ``UnicodeDecodeError``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scregnet.errors import InputError, first_line


def decode(data: bytes, path: str | Path) -> str:
    """``data`` as text; an :class:`InputError` naming ``path`` when it is not UTF-8."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        msg = "file is UTF-16 encoded; save it as UTF-8 text"
        raise InputError(msg, path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        msg = f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it as UTF-8"
        raise InputError(msg, path) from exc


def read_text(path: str | Path) -> str:
    """The whole file as text; missing, unreadable or non-UTF-8 files are an :class:`InputError`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        msg = "file does not exist"
        raise InputError(msg, path) from exc
    except IsADirectoryError as exc:
        msg = "is a folder, not a file"
        raise InputError(msg, path) from exc
    except OSError as exc:
        msg = f"cannot read ({exc.strerror})"
        raise InputError(msg, path) from exc
    return decode(data, path)


def read_json(path: str | Path) -> Any:
    """The JSON document in ``path``; a missing, unreadable or malformed file is an
    :class:`InputError` naming it."""
    import json

    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        msg = f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        raise InputError(msg, path) from exc


def strict_json(value: Any) -> Any:
    """``value`` as standard JSON takes it: numpy numbers as Python numbers, and a score that
    is not finite (NaN, e.g. a metric with one class) as ``null`` (``NaN`` is not JSON: jq and
    R's jsonlite refuse it)."""
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(value: Any) -> str:
    """``value`` as an indented, key-sorted strict JSON document (:func:`strict_json`)."""
    import json

    return json.dumps(strict_json(value), indent=2, sort_keys=True, allow_nan=False) + "\n"


@contextlib.contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Parsing of the text file ``path``: undecodable bytes and malformed tables (pandas parser
    errors) become an :class:`InputError` naming ``path``."""
    try:
        yield
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start] if exc.start < len(exc.object) else 0
        msg = f"not UTF-8 text (byte 0x{byte:02x}); save it as UTF-8"
        raise InputError(msg, path) from exc
    except Exception as exc:
        if type(exc).__name__ == "ParserError" and type(exc).__module__.startswith("pandas"):
            msg = f"not a readable table ({first_line(exc)})"
            raise InputError(msg, path) from exc
        raise
