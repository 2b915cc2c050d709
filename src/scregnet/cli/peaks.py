"""``scregnet peaks``: call peaks on the pseudobulk of a fragments file with MACS3."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "call peaks on pseudobulk fragments with MACS3 (callpeak -f FRAG) -> narrowPeak"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fragments", required=True, type=Path, help="bgzipped fragments file")
    parser.add_argument(
        "--genome", required=True, type=Path, help="genome .fai / chrom.sizes / indexed FASTA"
    )
    parser.add_argument("--out", required=True, type=Path, help="output .narrowPeak")
    parser.add_argument(
        "--gsize",
        default=None,
        help="MACS3 effective genome size: a number or hs/mm/ce/dm (default: genome length)",
    )
    parser.add_argument("--qvalue", type=float, default=0.05, help="MACS3 q-value cutoff")
    parser.add_argument(
        "--barcodes", type=Path, default=None, help="pile up only these barcodes (one per line)"
    )
    parser.add_argument(
        "--name", default=None, help="MACS3 experiment name (peak name prefix; default: file stem)"
    )


def main(args: argparse.Namespace) -> int:
    from scregnet.atac.peaks import GSIZE_SHORTCUTS, call_peaks
    from scregnet.errors import InputError
    from scregnet.io.genome import read_chrom_sizes
    from scregnet.io.outputs import check_paths

    check_paths(inputs=[args.fragments, args.genome, args.barcodes], outputs=[args.out])
    gsize: str | int | None = args.gsize
    if gsize is not None and gsize not in GSIZE_SHORTCUTS:
        try:
            gsize = int(float(gsize))
        except ValueError as exc:
            msg = f"--gsize must be a number or one of {', '.join(GSIZE_SHORTCUTS)}, got {args.gsize!r}"
            raise InputError(msg) from exc
        if gsize <= 0:
            raise InputError(f"--gsize must be > 0, got {args.gsize}")
    if not 0 < args.qvalue < 1:
        raise InputError(f"--qvalue must be in (0, 1), got {args.qvalue}")
    if args.name is not None and (args.name in {"", ".", ".."} or "/" in args.name):
        raise InputError(f"--name must be a file-name prefix without '/', got {args.name!r}")
    chrom_sizes = read_chrom_sizes(args.genome)
    call_peaks(
        args.fragments,
        args.out,
        chrom_sizes=chrom_sizes,
        gsize=gsize,
        qvalue=args.qvalue,
        barcodes=args.barcodes,
        name=args.name,
    )
    return 0
