"""The one check of an option that takes one of a fixed set of strings.

Each such option has a ``Literal`` alias, defined once beside the settings it belongs to (e.g.
:data:`scregnet.grn.config.Sampling`); the API checks values with :func:`check_choice` and the CLI
offers ``choices=typing.get_args(alias)``.
"""

from __future__ import annotations

from typing import Any, get_args


def check_choice(option: str, value: object, alias: Any) -> None:
    """Raise ``ValueError`` naming ``option`` and its allowed values unless ``value`` is one of the
    ``Literal`` alias's strings."""
    allowed = get_args(alias)
    if value not in allowed:
        msg = f"{option} must be one of {', '.join(map(repr, allowed))}, got {value!r}"
        raise ValueError(msg)
