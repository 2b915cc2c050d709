"""``scregnet report``: one self-contained HTML report (+ MultiQC custom content) for a results directory."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "write a self-contained report.html (embedded figures) for a results directory"

log = logging.getLogger(__name__)


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
    parser.add_argument(
        "--truth",
        type=Path,
        default=None,
        help="a simulated world's truth folder: score the results against it first (as "
        "`scregnet evaluate`), writing <results>/evaluation.json, which the report shows",
    )
    parser.add_argument(
        "--expect",
        type=_expected,
        action="append",
        default=[],
        metavar="STAGE[=SAMPLE,...]",
        help="results the run should have written: atac, impute or tfbind with the samples "
        "given to that stage, or grn; the report opens with any that are missing (repeatable; "
        "the Nextflow pipeline passes every sample of its samplesheet)",
    )


def _expected(text: str) -> tuple[str, list[str]]:
    """``STAGE=SAMPLE,...`` (or ``grn``) -> ``(stage, samples)``."""
    from scregnet.keys import RESULT_STAGES

    stage, sep, names = text.partition("=")
    samples = [n for n in names.split(",") if n]
    if stage not in RESULT_STAGES:
        msg = f"unknown stage {stage!r} (one of {', '.join(RESULT_STAGES)})"
        raise argparse.ArgumentTypeError(msg)
    if stage == "grn" and sep:
        msg = "grn takes no samples (the GRN is one result)"
        raise argparse.ArgumentTypeError(msg)
    if stage != "grn" and not samples:
        msg = f"{stage} needs its samples: {stage}=SAMPLE,..."
        raise argparse.ArgumentTypeError(msg)
    return stage, samples


def main(args: argparse.Namespace) -> int:
    from scregnet import keys
    from scregnet.errors import InputError
    from scregnet.io.outputs import check_paths, files_under
    from scregnet.report.build import MULTIQC_TABLE, build_report

    if args.out.suffix.lower() not in (".html", ".htm"):
        msg = "--out must end in .html (the report is written there)"
        raise InputError(msg, args.out)
    if not args.results.is_dir():
        why = "is a file, not a folder" if args.results.exists() else "does not exist"
        msg = f"results directory {why}"
        raise InputError(msg, args.results)
    read = (".h5ad", ".tsv", ".tsv.gz", ".json", ".bed", ".bw", ".narrowPeak")
    evaluation = args.results / keys.EVALUATION if args.truth is not None else None
    check_paths(
        inputs=[
            args.results,
            args.truth,
            *files_under(args.results, suffixes=read, exclude=(MULTIQC_TABLE, keys.EVALUATION)),
        ],
        outputs=[args.out, args.out.parent / MULTIQC_TABLE, evaluation],
    )
    scored = None
    if evaluation is not None:
        from scregnet.evaluate.truth import evaluate

        scored = evaluate(args.truth, args.results)
        log.info(
            "scored the results against %s (written with the report: %s)", args.truth, evaluation
        )
    expected: dict[str, list[str]] = {}
    for stage, samples in args.expect:
        expected.setdefault(stage, []).extend(samples)
    build_report(args.results, args.out, expected=expected, evaluation=scored)
    return 0
