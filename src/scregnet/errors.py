"""The one exception type for problems a user can fix (bad input, missing tools).

The CLI turns a :class:`InputError` into a single line on stderr and a non-zero exit; anything else
is a bug and is reported with a traceback under ``--debug``.
"""

from __future__ import annotations

import signal
from pathlib import Path

#: the exit status of a subcommand that ran out of memory: 128 + SIGKILL, what the kernel's OOM
#: killer leaves, so that a Nextflow task retries it with more memory (conf/base.config retries
#: exit statuses 130-145) and a scheduler reports it as a memory failure
EXIT_OUT_OF_MEMORY = 137


def first_line(exc: BaseException, default: str | None = None) -> str:
    """The first line of ``exc``'s message (for a one-line error); ``default`` when it has none,
    else the exception's type name."""
    text = str(exc).strip()
    if text:
        return text.splitlines()[0]
    return type(exc).__name__ if default is None else default


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9, ``signal 40`` for a number with no name: how a killed process is named."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class InputError(Exception):
    """A user-fixable problem with an input file, a parameter or the environment."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        self.message = message
        full = f"{self.path}: {message}" if self.path is not None else message
        super().__init__(full)


class MissingToolError(InputError):
    """An external executable (e.g. ``macs3``) that a subcommand needs is not installed."""
