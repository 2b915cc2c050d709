"""``scregnet tracks``: per-cluster pseudobulk Tn5 insertion bigWigs (CPM)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from scregnet import keys
from scregnet.io.genome import MITOCHONDRIAL

HELP = "per-cluster pseudobulk insertion coverage as CPM-normalised bigWig files"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fragments", required=True, type=Path, help="bgzipped fragments file")
    parser.add_argument(
        "--clusters", required=True, type=Path, help="S.clustered.h5ad (obs holds the clusters)"
    )
    parser.add_argument(
        "--genome", required=True, type=Path, help="genome .fai / chrom.sizes / indexed FASTA"
    )
    parser.add_argument("--outdir", required=True, type=Path, help="directory for <cluster>.bw")
    parser.add_argument("--groupby", default=keys.CLUSTER, help="obs column that groups the cells")
    parser.add_argument("--bin-size", type=int, default=1, help="bin width in bp")
    parser.add_argument(
        "--exclude-chroms",
        default=",".join(MITOCHONDRIAL),
        help="comma-separated chromosomes left out",
    )


def main(args: argparse.Namespace) -> int:
    from scregnet.atac.pseudobulk import write_cluster_tracks
    from scregnet.errors import InputError
    from scregnet.io.genome import read_chrom_sizes
    from scregnet.io.h5ad import read_obs
    from scregnet.io.outputs import check_paths

    check_paths(inputs=[args.fragments, args.clusters, args.genome], outdirs=[args.outdir])
    if args.bin_size < 1:
        raise InputError(f"--bin-size must be >= 1, got {args.bin_size}")
    obs = read_obs(args.clusters)
    if args.groupby not in obs:
        raise InputError(
            f"obs has no column {args.groupby!r} (run `scregnet cluster` first)", args.clusters
        )
    groups = obs[args.groupby]
    unlabelled = int(groups.isna().sum())
    if unlabelled:
        log.warning(
            "%s: %d cell(s) have no %s label and are left out of the tracks",
            args.clusters,
            unlabelled,
            args.groupby,
        )
        groups = groups[groups.notna()]
        if groups.empty:
            msg = f"no cell has a {args.groupby!r} label"
            raise InputError(msg, args.clusters)
    chrom_sizes = read_chrom_sizes(args.genome)
    write_cluster_tracks(
        args.fragments,
        groups,
        chrom_sizes,
        args.outdir,
        bin_size=args.bin_size,
        exclude_chroms=tuple(c for c in args.exclude_chroms.split(",") if c),
        threads=args.threads,
        protect=[args.clusters, args.genome],
    )
    return 0
