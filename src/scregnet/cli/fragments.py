"""``scregnet fragments``: coordinate-sorted, barcode-tagged BAM -> 10x fragments (bgzip + tabix)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import get_args

from scregnet.atac.options import Collapse, FragmentOptions

HELP = "BAM -> 10x-style fragments file (Tn5 shift, filters, per-cell duplicate collapsing)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = FragmentOptions()
    parser.add_argument("--bam", required=True, type=Path, help="coordinate-sorted, indexed BAM")
    parser.add_argument("--out", required=True, type=Path, help="output .fragments.tsv.gz")
    parser.add_argument(
        "--genome",
        type=Path,
        default=None,
        help="genome index (.fai or chrom.sizes) the later steps use: the BAM must have been "
        "aligned to it (its header's chromosome names and lengths), else it is refused",
    )
    parser.add_argument(
        "--barcode-tag", default=defaults.barcode_tag, help="read tag holding the cell barcode"
    )
    parser.add_argument(
        "--barcodes", type=Path, default=None, help="keep only these barcodes (one per line)"
    )
    parser.add_argument(
        "--min-mapq", type=int, default=defaults.min_mapq, help="minimum MAPQ of both mates"
    )
    parser.add_argument(
        "--exclude-contigs",
        default=",".join(defaults.exclude_contigs),
        help="comma-separated contigs to skip ('' keeps all)",
    )
    parser.add_argument(
        "--shift-plus",
        type=int,
        default=defaults.shift_plus,
        help="Tn5 shift of the + strand read's start",
    )
    parser.add_argument(
        "--shift-minus",
        type=int,
        default=defaults.shift_minus,
        help="Tn5 shift of the - strand read's end",
    )
    parser.add_argument(
        "--min-length",
        type=int,
        default=defaults.min_length,
        help="minimum fragment length after shifting",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=defaults.max_length,
        help="maximum fragment length (default: none)",
    )
    parser.add_argument(
        "--proper-pair",
        action=argparse.BooleanOptionalAction,
        default=defaults.proper_pair,
        help="require the aligner's proper-pair flag",
    )
    parser.add_argument(
        "--collapse",
        choices=get_args(Collapse),
        default=defaults.collapse,
        help="duplicates are pairs with equal coordinates within one barcode, or across barcodes",
    )
    parser.add_argument(
        "--merge-shared-ends",
        action="store_true",
        help="also merge a cell's fragments sharing one insertion site (sinto's behaviour)",
    )


def main(args: argparse.Namespace) -> int:
    from scregnet.atac.fragments import bam_to_fragments, read_barcode_list
    from scregnet.errors import InputError
    from scregnet.io.outputs import check_paths

    check_paths(
        inputs=[args.bam, args.barcodes, args.genome],
        outputs=[args.out, Path(str(args.out) + ".tbi")],
    )
    if args.min_mapq < 0:
        raise InputError(f"--min-mapq must be >= 0, got {args.min_mapq}")
    if args.min_length < 1:
        raise InputError(f"--min-length must be >= 1, got {args.min_length}")
    if args.max_length is not None and args.max_length < args.min_length:
        raise InputError(f"--max-length {args.max_length} is below --min-length {args.min_length}")
    if not args.barcode_tag or len(args.barcode_tag) != 2:
        raise InputError(f"--barcode-tag must be a two-character SAM tag, got {args.barcode_tag!r}")
    if args.genome is not None:
        from scregnet.io.genome import check_bam_genome, read_chrom_sizes

        genome = read_chrom_sizes(args.genome)
        check_bam_genome(args.bam, genome, ref_what=f"genome index {args.genome.name}")
    barcodes = frozenset(read_barcode_list(args.barcodes)) if args.barcodes else None
    options = FragmentOptions(
        barcode_tag=args.barcode_tag,
        min_mapq=args.min_mapq,
        exclude_contigs=tuple(c for c in args.exclude_contigs.split(",") if c),
        shift_plus=args.shift_plus,
        shift_minus=args.shift_minus,
        min_length=args.min_length,
        max_length=args.max_length,
        proper_pair=args.proper_pair,
        collapse=args.collapse,
        merge_shared_ends=args.merge_shared_ends,
        barcodes=barcodes,
    )
    bam_to_fragments(args.bam, args.out, options=options, threads=args.threads)
    return 0
