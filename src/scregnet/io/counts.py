"""Checks on count matrices read from users' files, one definition for every stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from scregnet.errors import InputError

#: how far from a whole number a value may be and still count as an integer count
INTEGER_TOLERANCE = 1e-6
#: the largest integer count taken (int32's): a larger one is no count of molecules, and would
#: overflow the 32-bit arithmetic downstream
MAX_COUNT = 2**31 - 1


def check_counts(
    values: NDArray[np.floating],
    *,
    what: str,
    path: str | Path | None,
    hint: str = "",
    integer: bool = True,
) -> None:
    """An :class:`InputError` for NaN/inf or negative values (``values`` = the stored entries) and,
    with ``integer``, for values that are not whole numbers or exceed :data:`MAX_COUNT`."""
    if values.size == 0:
        return
    if not np.isfinite(values).all():
        msg = f"{what} contain NaN or infinite values"
        raise InputError(msg, path)
    if (values < 0).any():
        msg = f"{what} contain negative values (min {values.min():g}); raw counts are expected"
        raise InputError(msg, path)
    if not integer:
        return
    if (values > MAX_COUNT).any():
        msg = f"{what} contain a value of {values.max():g}, above any count of molecules (max {MAX_COUNT}); raw counts are expected"
        raise InputError(msg, path)
    frac = np.abs(values - np.rint(values))
    if (frac > INTEGER_TOLERANCE).any():
        example = values[np.argmax(frac)]
        msg = f"{what} contain non-integer values (e.g. {example:g}); raw integer counts are expected{hint}"
        raise InputError(msg, path)
