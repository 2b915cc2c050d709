"""``scregnet report``: one self-contained HTML report (+ MultiQC custom content) for a results directory."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write a self-contained report.html (embedded figures) for a results directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results", required=True, type=Path, help="results directory (scregnet run --outdir)"
    )
    parser.add_argument("--out", required=True, type=Path, help="output HTML file")


def main(args: argparse.Namespace) -> int:
    from scregnet.errors import InputError
    from scregnet.report.build import build_report

    if not args.results.is_dir():
        msg = "results directory does not exist"
        raise InputError(msg, args.results)
    build_report(args.results, args.out)
    return 0
