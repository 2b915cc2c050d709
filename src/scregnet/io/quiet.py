"""Silencing the C libraries' own messages around calls whose failures scregnet reports itself,
so that bad input gives one error line naming the file, not ``[E::hts_open_format]`` or
``[bwHdrRead]`` lines before it."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_htslib() -> Iterator[None]:
    """No htslib messages on stderr (pysam's verbosity 0) for the duration: a failed open or write
    (disk full) is reported once, as an error naming the file, instead of as several ``[E::...]``
    lines."""
    import pysam

    previous = pysam.set_verbosity(0)
    try:
        yield
    finally:
        pysam.set_verbosity(previous)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null for the duration, for libraries that print their
    errors with ``fprintf(stderr, ...)`` (libBigWig); keep the block to the one call."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
