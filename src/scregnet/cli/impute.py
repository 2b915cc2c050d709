"""``scregnet impute``: scDTL-style imputation of scRNA counts (bulk-to-single-cell transfer)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from scregnet.impute.config import DEVICE, N_TOP_GENES, ImputeConfig, TrainConfig

HELP = "impute scRNA dropouts (bulk-pretrained denoising autoencoder + U-Net, scDTL-style)"

log = logging.getLogger(__name__)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        msg = f"must be >= 1, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


#: flag, default, help; the defaults are :mod:`scregnet.impute.config`'s
TRAINING_OPTIONS = (
    ("--epochs", TrainConfig.epochs, "most fusion training epochs (early stopping may end sooner)"),
    ("--batch-size", TrainConfig.batch_size, "cells per training batch"),
    ("--n-top-genes", N_TOP_GENES, "model at most this many (most variable) genes"),
    ("--hidden-dim", ImputeConfig.hidden_dim, "autoencoder hidden width"),
    ("--latent-dim", ImputeConfig.latent_dim, "autoencoder bottleneck width"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``scregnet impute``'s options; every default is :mod:`scregnet.impute.config`'s."""
    parser.add_argument(
        "--rna",
        required=True,
        type=Path,
        help="scRNA raw counts, cells x genes: .h5ad or a Cell Ranger matrix .h5 (Gene Expression)",
    )
    parser.add_argument(
        "--bulk",
        type=Path,
        default=None,
        help="bulk RNA counts TSV, genes x samples; without it, the cells' pseudobulk (not for "
        "shallow cells)",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output h5ad: X unchanged plus the imputed layers; .model.pt, .loss.tsv beside it",
    )
    parser.add_argument(
        "--layer", default=None, help="take raw counts from this layer instead of X"
    )
    parser.add_argument(
        "--view",
        default=None,
        help="the cells' view (condition or time point) for the GRN, written as obs['view']",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="impute with this checkpoint (an earlier run's .model.pt) instead of training",
    )
    parser.add_argument(
        "--device", default=DEVICE, help="auto, cpu, cuda or cuda:N (mixed precision on CUDA)"
    )
    training = parser.add_argument_group("training options (not with --model)")
    for flag, default, text in TRAINING_OPTIONS:
        # no argparse default, so that a flag given with --model is seen (training_options)
        training.add_argument(
            flag, type=_positive, default=argparse.SUPPRESS, help=f"{text} (default: {default})"
        )


def training_options(args: argparse.Namespace) -> None:
    """Check that no training option comes with ``--model``; fill in the unset ones' defaults."""
    from scregnet.errors import InputError

    given = [f for f, _, _ in TRAINING_OPTIONS if hasattr(args, f[2:].replace("-", "_"))]
    if args.bulk is not None:
        given.insert(0, "--bulk")
    if args.model is not None and given:
        msg = f"{', '.join(given)}: training options cannot be combined with --model"
        raise InputError(msg, args.model)
    for flag, default, _ in TRAINING_OPTIONS:
        name = flag[2:].replace("-", "_")
        if not hasattr(args, name):
            setattr(args, name, default)


def main(args: argparse.Namespace) -> int:
    import sys

    from scregnet.errors import InputError
    from scregnet.impute.api import impute, sidecar_paths, write_outputs
    from scregnet.io.atomic import check_writable_dir
    from scregnet.io.outputs import check_paths
    from scregnet.io.rna import label_view, read_rna

    if not args.out.name.endswith(".h5ad"):
        msg = "--out must end in .h5ad"
        raise InputError(msg, args.out)
    check_paths(
        inputs=[args.rna, args.bulk, args.model],
        outputs=[args.out, *(sidecar_paths(args.out) if args.model is None else ())],
    )
    training_options(args)
    if args.batch_size < 2:
        msg = f"--batch-size must be >= 2, got {args.batch_size}"
        raise InputError(msg)
    if args.n_top_genes < 2:
        msg = (
            f"--n-top-genes must be >= 2 (the model needs at least 2 genes), got {args.n_top_genes}"
        )
        raise InputError(msg)
    check_writable_dir(args.out.parent)
    adata = read_rna(args.rna)
    if args.view is not None:
        label_view(adata, args.view, args.rna)
    result = impute(
        adata,
        bulk=args.bulk,
        layer=args.layer,
        checkpoint=args.model,
        n_top_genes=args.n_top_genes,
        epochs=args.epochs,
        batch_size=args.batch_size,
        hidden_dim=args.hidden_dim,
        latent_dim=args.latent_dim,
        device=args.device,
        seed=args.seed,
        threads=args.threads,
        progress=sys.stderr.isatty() and not args.quiet,
        path=args.rna,
    )
    write_outputs(result, args.out)
    return 0
