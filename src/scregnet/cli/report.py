"""``scregnet report``: one self-contained HTML report (+ MultiQC custom content) for a results directory."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write a self-contained report.html (embedded figures) for a results directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results", required=True, type=Path, help="results directory (scregnet run --outdir)"
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output HTML file; with clustered ATAC results the per-sample QC table for MultiQC, "
        "scregnet_atac_qc_mqc.tsv, is written beside it (replacing a file of that name)",
    )


def main(args: argparse.Namespace) -> int:
    from scregnet.errors import InputError
    from scregnet.io.outputs import check_paths, files_under
    from scregnet.report.build import MULTIQC_TABLE, build_report

    if not args.results.is_dir():
        msg = "results directory does not exist"
        raise InputError(msg, args.results)
    read = (".h5ad", ".tsv", ".tsv.gz", ".json", ".bed", ".bw", ".narrowPeak")
    check_paths(
        inputs=[args.results, *files_under(args.results, suffixes=read, exclude=(MULTIQC_TABLE,))],
        outputs=[args.out, args.out.parent / MULTIQC_TABLE],
    )
    build_report(args.results, args.out)
    return 0
