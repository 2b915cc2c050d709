"""``scregnet count``: fragments -> cells x peaks / tiles AnnData with per-cell QC."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import get_args

from scregnet.atac.options import Strategy
from scregnet.io.genome import MITOCHONDRIAL

HELP = "fragments -> cells x peaks (X) and cells x tiles (obsm['tiles']) counts, QC, cell calling"

log = logging.getLogger(__name__)


def _min_fragments(value: str) -> int | str:
    if value == "knee":
        return value
    try:
        number = int(value)
    except ValueError as exc:
        msg = f"expected a non-negative integer or 'knee', got {value!r}"
        raise argparse.ArgumentTypeError(msg) from exc
    if number < 0:
        msg = f"expected a non-negative integer or 'knee', got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fragments", required=True, type=Path, help="bgzipped fragments file")
    parser.add_argument("--peaks", required=True, type=Path, help="peaks BED/narrowPeak")
    parser.add_argument(
        "--genome", required=True, type=Path, help="genome .fai, chrom.sizes or indexed FASTA"
    )
    parser.add_argument("--out", required=True, type=Path, help="output .atac.h5ad")
    parser.add_argument(
        "--tss", type=Path, default=None, help="genes GTF for TSS enrichment (else NaN)"
    )
    parser.add_argument(
        "--tile-size", type=int, default=5000, help="tile width in bp for obsm['tiles'] (0: none)"
    )
    parser.add_argument(
        "--min-fragments",
        type=_min_fragments,
        default=1000,
        help="unique fragments a cell needs, or 'knee' (the cliff of the barcode-rank curve, "
        "placed by Otsu's split of log10 fragments)",
    )
    parser.add_argument(
        "--barcodes", type=Path, default=None, help="call cells only among these barcodes"
    )
    parser.add_argument(
        "--strategy",
        choices=get_args(Strategy),
        default="paired-insertion",
        help="what counts in a feature: overlapping fragments, Tn5 insertions, or insertions "
        "once per fragment",
    )
    parser.add_argument(
        "--exclude-chroms",
        default=",".join(MITOCHONDRIAL),
        help="comma-separated chromosomes left out of counts and QC",
    )
    parser.add_argument(
        "--qc", type=Path, default=None, help="also write per-barcode QC of every barcode (TSV)"
    )


def main(args: argparse.Namespace) -> int:
    from scregnet.atac.count import count_fragments
    from scregnet.atac.fragments import read_barcode_list
    from scregnet.errors import InputError
    from scregnet.io.atomic import atomic_paths
    from scregnet.io.bed import read_bed
    from scregnet.io.genome import read_chrom_sizes
    from scregnet.io.gtf import read_tss
    from scregnet.io.h5ad import write_h5ad_file
    from scregnet.io.outputs import check_paths

    check_paths(
        inputs=[args.fragments, args.peaks, args.genome, args.tss, args.barcodes],
        outputs=[args.out, args.qc],
    )
    if args.tile_size < 0:
        raise InputError(f"--tile-size must be >= 0, got {args.tile_size}")
    chrom_sizes = read_chrom_sizes(args.genome)
    peaks = read_bed(args.peaks)
    tss = read_tss(args.tss) if args.tss else None
    barcodes = read_barcode_list(args.barcodes) if args.barcodes else None
    result = count_fragments(
        args.fragments,
        peaks,
        chrom_sizes,
        tss=tss,
        tile_size=args.tile_size or None,
        strategy=args.strategy,
        min_fragments=args.min_fragments,
        barcodes=barcodes,
        exclude_chroms=tuple(c for c in args.exclude_chroms.split(",") if c),
        threads=args.threads,
        peaks_path=args.peaks,
        tss_path=args.tss or "TSS table",
    )
    # the QC table and the matrix appear together or not at all
    targets = [args.out] if args.qc is None else [args.out, args.qc]
    with atomic_paths(*targets) as temps:
        write_h5ad_file(result.adata, temps[0])
        if args.qc is not None:
            result.qc.to_csv(temps[1], sep="\t", float_format="%.6g")
    log.info("wrote %s (%d cells x %d peaks)", args.out, *result.adata.shape)
    return 0
