"""``scregnet simulate``: write a synthetic world with ground truth for every stage."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "simulate a coherent scATAC + scRNA world with ground truth (genome, BAMs, bulk, truth/)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--outdir", required=True, type=Path, help="output directory (created atomically)"
    )
    parser.add_argument(
        "--preset",
        default="small",
        metavar="{tiny,small,large,tiny_real,small_real}",
        help="world size: tiny (seconds, unit tests), small (~1 min, -profile test), large "
        "(benchmarks); *_real: the same sizes with realistic binding (docs/simulator.md)",
    )


def main(args: argparse.Namespace) -> int:
    from scregnet.io.outputs import check_paths
    from scregnet.simulate import simulate

    check_paths(outdirs=[args.outdir])
    out = simulate(args.outdir, preset=args.preset, seed=args.seed, threads=args.threads)
    log.info("world written to %s", out)
    return 0
