"""``scregnet evaluate``: score stage outputs against simulator truth, write ``evaluation.json``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "score a results directory against simulator truth (writes evaluation.json)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--truth", required=True, type=Path, help="the simulator's truth/ directory"
    )
    parser.add_argument(
        "--results", required=True, type=Path, help="a results directory (scregnet run --outdir)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output JSON (default: RESULTS/evaluation.json)"
    )


def main(args: argparse.Namespace) -> int:
    from scregnet import keys
    from scregnet.errors import InputError
    from scregnet.evaluate.truth import evaluate, write_evaluation
    from scregnet.io.outputs import check_paths, files_under

    out = args.out or args.results / keys.EVALUATION
    if out.suffix.lower() != ".json":
        msg = "--out must end in .json (the evaluation is written there)"
        raise InputError(msg, out)
    read = (".h5ad", ".tsv", ".tsv.gz", ".bed", ".bw", ".narrowPeak")
    check_paths(
        inputs=[
            args.truth,
            args.results,
            *files_under(args.truth),
            *files_under(args.results, suffixes=read),
        ],
        outputs=[out],
    )
    report = evaluate(args.truth, args.results)
    if not report:
        msg = "no stage outputs to score (atac/, impute/, tfbind/ or grn/ results)"
        raise InputError(msg, args.results)
    write_evaluation(report, out)
    log.info("scored %d stage(s): %s -> %s", len(report), ", ".join(report) or "none", out)
    return 0
