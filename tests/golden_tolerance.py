"""The tolerance of the golden comparison (``test_end_to_end.test_golden_summary``).

``tests/golden/tiny_spread.json`` holds the measured spread of the tiny end-to-end summary: the
largest difference of each kind of number between any two of: runs on one machine under other CPU
kernels (oneDNN's ISA, torch's SIMD level, MKL's and OpenBLAS's code paths) and thread counts, and
the golden file, written on another CPU (``bench/golden_spread.py`` rewrites it). The tolerance is
FACTOR times that spread: room for CPUs not measured, while a small change to a stage's
computation still fails (``test_golden_compare.py``, ``test_end_to_end.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

from golden_summary import SummaryTolerance

SPREAD = Path(__file__).resolve().parent / "golden" / "tiny_spread.json"
FACTOR = 1.5


def golden_tolerance() -> SummaryTolerance:
    measured = json.loads(SPREAD.read_text())
    return SummaryTolerance.from_spread(
        measured["spread"], factor=FACTOR, top_edges=measured["grn_top_edges"]
    )
