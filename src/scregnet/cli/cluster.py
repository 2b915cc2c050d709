"""``scregnet cluster``: TF-IDF + LSI + Leiden + UMAP on a ``scregnet count`` AnnData."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import get_args

from scregnet.atac.options import Features

HELP = "cluster cells: TF-IDF, LSI (depth component dropped), neighbours, Leiden, UMAP"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--atac", required=True, type=Path, help="S.atac.h5ad from scregnet count")
    parser.add_argument("--out", required=True, type=Path, help="output S.clustered.h5ad")
    parser.add_argument(
        "--features",
        choices=get_args(Features),
        default="peaks",
        help="matrix to embed: X (peaks) or obsm['tiles']",
    )
    parser.add_argument(
        "--n-top-features",
        type=int,
        default=50_000,
        help="keep the features accessible in the most cells (0: all)",
    )
    parser.add_argument("--n-components", type=int, default=30, help="LSI components")
    parser.add_argument(
        "--depth-cutoff",
        type=float,
        default=0.75,
        help="drop LSI components whose |Pearson r| with log10 fragments exceeds this",
    )
    parser.add_argument("--n-neighbors", type=int, default=15, help="neighbours per cell")
    parser.add_argument("--resolution", type=float, default=1.0, help="Leiden resolution")
    parser.add_argument(
        "--umap", action=argparse.BooleanOptionalAction, default=True, help="compute a UMAP"
    )


def main(args: argparse.Namespace) -> int:
    from scregnet import keys
    from scregnet.atac.cluster import MIN_FEATURES, cluster_cells
    from scregnet.errors import InputError
    from scregnet.io.h5ad import read_h5ad, write_h5ad
    from scregnet.io.outputs import check_paths

    check_paths(inputs=[args.atac], outputs=[args.out])
    if args.n_components < 2:
        raise InputError(f"--n-components must be >= 2, got {args.n_components}")
    if args.n_neighbors < 2:
        raise InputError(f"--n-neighbors must be >= 2, got {args.n_neighbors}")
    if args.n_top_features < 0 or 0 < args.n_top_features < MIN_FEATURES:
        msg = f"--n-top-features must be 0 (all) or >= {MIN_FEATURES}, got {args.n_top_features}"
        raise InputError(msg)
    if not args.resolution > 0 or not math.isfinite(args.resolution):
        raise InputError(f"--resolution must be a number > 0, got {args.resolution}")
    if not 0 < args.depth_cutoff <= 1:
        raise InputError(f"--depth-cutoff must be in (0, 1], got {args.depth_cutoff}")
    adata = read_h5ad(args.atac)
    missing = [f"var['{c}']" for c in ("chrom", "start", "end") if c not in adata.var]
    if missing:
        msg = (
            f"not a cells x peaks file from `scregnet count`: lacks {', '.join(missing)} "
            f"(columns are {adata.n_vars} features such as {', '.join(map(str, adata.var_names[:3]))})"
        )
        raise InputError(msg, args.atac)
    try:
        cluster_cells(
            adata,
            features=args.features,
            n_top_features=args.n_top_features or None,
            n_components=args.n_components,
            depth_cutoff=args.depth_cutoff,
            n_neighbors=args.n_neighbors,
            resolution=args.resolution,
            seed=args.seed,
            umap=args.umap,
        )
    except InputError as exc:
        raise InputError(str(exc), args.atac) from exc
    write_h5ad(adata, args.out)
    log.info(
        "wrote %s (%d cells, %d clusters)", args.out, adata.n_obs, adata.obs[keys.CLUSTER].nunique()
    )
    return 0
