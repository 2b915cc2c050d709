"""``scregnet grn train|score|merge``: DeepMCL-style GRN inference from one or more expression views."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import get_args

from scregnet.cli.main import HelpFormatter, nested_common_options
from scregnet.grn.config import (
    N_LABEL_FEATURES,
    N_PAIR_FEATURES,
    NEGATIVE_RATIO,
    PRIOR_THRESHOLD,
    PRIOR_WINDOW,
    SCORE_BATCH_SIZE,
    GRNConfig,
    Sampling,
    TrainConfig,
)

HELP = "GRN: train the DeepMCL-style model on labelled pairs, score every TF x gene, merge shards"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``scregnet grn train|score|merge``; every default is :mod:`scregnet.grn.config`'s."""
    sub = parser.add_subparsers(dest="grn_command", metavar="{train,score,merge}")
    sub.required = True
    fmt = HelpFormatter
    model, train = GRNConfig(), TrainConfig()
    t = sub.add_parser(
        "train", help="train on known edges or binding priors; write the model", formatter_class=fmt
    )
    _train_io_options(t)
    _training_options(t, model, train)
    _feature_options(t, model, train)
    _prior_options(t)
    nested_common_options(t)
    s = sub.add_parser(
        "score",
        help="score every TF x gene with a trained model (all TFs, or one shard of them)",
        formatter_class=fmt,
    )
    _score_options(s)
    nested_common_options(s)
    m = sub.add_parser(
        "merge", help="merge `score --shard` files into the ranked edges", formatter_class=fmt
    )
    m.add_argument("--shards", type=Path, nargs="+", required=True, help="shard TSVs, every K of N")
    _edges_outputs(m)
    nested_common_options(m)


def _rna_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--rna",
        required=True,
        action="append",
        type=Path,
        metavar="H5AD",
        help=f"expression .h5ad or Cell Ranger .h5, repeatable; {what}",
    )


def _train_io_options(parser: argparse.ArgumentParser) -> None:
    """Inputs (expression, labels or binding prior), the model file, layer and device."""
    _rna_option(parser, "views and layers as in docs/usage.md")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--labels",
        type=Path,
        help="known edges TSV 'tf target [label]' to train on (docs/usage.md)",
    )
    source.add_argument(
        "--prior",
        type=Path,
        action="append",
        metavar="TFBIND_H5AD",
        help="tfbind.h5ad, repeatable: binding near a TSS labels the pairs (needs --gtf; "
        "docs/usage.md)",
    )
    parser.add_argument("--gtf", type=Path, help="gene annotation for TSSs (with --prior)")
    parser.add_argument("--out", required=True, type=Path, help="the trained model (.pt)")
    parser.add_argument(
        "--layer",
        default=None,
        help="expression layer to use instead of the default ('X': the main matrix)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def _score_options(parser: argparse.ArgumentParser) -> None:
    """``grn score``: the model, the views it was trained on, its priors, TFs, shard, outputs."""
    parser.add_argument(
        "--model", required=True, type=Path, help="the model `scregnet grn train` wrote"
    )
    _rna_option(parser, "the files the model was trained on, in order")
    parser.add_argument(
        "--prior",
        type=Path,
        action="append",
        metavar="TFBIND_H5AD",
        help="the binding priors the model was trained on (its published score combines them)",
    )
    parser.add_argument("--gtf", type=Path, help="gene annotation for TSSs (with --prior)")
    parser.add_argument(
        "--tfs",
        default=None,
        help="TFs to score, a file (one per line) or comma-separated (default: the labels' TFs)",
    )
    parser.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="K/N",
        help="score the K-th of N equal groups of the TFs, unranked, for `scregnet grn merge`",
    )
    parser.add_argument(
        "--score-batch-size",
        type=int,
        default=SCORE_BATCH_SIZE,
        help="pairs per scoring batch (memory bound)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    _edges_outputs(parser, shard=True)


def _edges_outputs(parser: argparse.ArgumentParser, *, shard: bool = False) -> None:
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="ranked edges TSV (with --shard: the shard's pairs)" if shard else "ranked edges TSV",
    )
    parser.add_argument(
        "--attention-out",
        type=Path,
        default=None,
        help="per-view attention TSV (default: --out with 'edges' replaced by 'attention'"
        + ("; none with --shard)" if shard else ")"),
    )


def _shard(value: str) -> tuple[int, int]:
    from scregnet.grn.shards import parse_shard

    try:
        return parse_shard(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _training_options(
    parser: argparse.ArgumentParser, model: GRNConfig, train: TrainConfig
) -> None:
    """Epochs, batch size, learning rate, neighbours and the contrastive weight."""
    parser.add_argument("--epochs", type=int, default=train.epochs, help="maximum training epochs")
    parser.add_argument(
        "--batch-size", type=int, default=train.batch_size, help="training batch size (pairs)"
    )
    parser.add_argument("--lr", type=float, default=train.lr, help="learning rate")
    parser.add_argument(
        "--neighbours",
        type=int,
        default=model.n_neighbours,
        help="neighbour images per gene on each side of a pair (see --label-neighbours)",
    )
    parser.add_argument(
        "--contrastive-weight",
        type=float,
        default=train.contrastive_weight,
        help="weight of the contrastive loss",
    )


def _feature_options(parser: argparse.ArgumentParser, model: GRNConfig, train: TrainConfig) -> None:
    """The head's extra features, metacells, pair sampling and the validation split."""
    parser.add_argument(
        "--pair-features",
        action=argparse.BooleanOptionalAction,
        default=model.n_pair_features >= N_PAIR_FEATURES,
        help="give the head the pair's correlation features (our extension; docs/usage.md)",
    )
    parser.add_argument(
        "--label-features",
        action=argparse.BooleanOptionalAction,
        default=model.n_pair_features == N_PAIR_FEATURES + N_LABEL_FEATURES,
        help="with --pair-features, also give the head gene-level features (docs/usage.md)",
    )
    parser.add_argument(
        "--label-neighbours",
        action=argparse.BooleanOptionalAction,
        default=model.label_neighbours,
        help="with --pair-features, pair each gene's neighbour images with its labelled regulators",
    )
    parser.add_argument(
        "--cells-per-metacell",
        type=int,
        default=model.cells_per_metacell,
        help="cells per k-means metacell for the metacell correlations (0 = none)",
    )
    parser.add_argument(
        "--sampling",
        choices=get_args(Sampling),
        default=train.sampling,
        help="training pairs per epoch: at the labels' positive rate, or class-balanced",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=train.val_fraction,
        help="fraction of the training TFs held out for model selection (docs/usage.md)",
    )
    parser.add_argument(
        "--network",
        action=argparse.BooleanOptionalAction,
        default=train.network,
        help="train the image network on the chosen read-out (--no-network: the read-out alone)",
    )


def _prior_options(parser: argparse.ArgumentParser) -> None:
    """How ``--prior`` binding becomes training labels."""
    parser.add_argument(
        "--prior-window",
        type=int,
        default=PRIOR_WINDOW,
        help="bp either side of a TSS (with --prior)",
    )
    parser.add_argument(
        "--prior-threshold",
        type=float,
        default=PRIOR_THRESHOLD,
        help="binding probability for a positive",
    )
    parser.add_argument(
        "--negative-ratio",
        type=float,
        default=NEGATIVE_RATIO,
        help="sampled negatives per prior positive",
    )


def default_attention_path(out: Path) -> Path:
    """``grn_edges.tsv`` -> ``grn_attention.tsv``; ``x.tsv`` -> ``x.attention.tsv``."""
    if "edges" in out.name:
        return out.with_name(out.name.replace("edges", "attention"))
    return out.with_name(f"{out.stem}.attention.tsv")


def main(args: argparse.Namespace) -> int:
    if args.grn_command == "train":
        return _train(args)
    if args.grn_command == "score":
        return _score(args)
    return _merge(args)


def _at_least(*checks: tuple[str, int, int]) -> None:
    from scregnet.errors import InputError

    for name, value, low in checks:
        if value < low:
            msg = f"{name} must be at least {low}, got {value}"
            raise InputError(msg)


def _train(args: argparse.Namespace) -> int:
    from scregnet.errors import InputError
    from scregnet.grn.api import train_grn
    from scregnet.io.outputs import check_paths

    _at_least(
        ("--epochs", args.epochs, 1),
        ("--batch-size", args.batch_size, 2),
        ("--neighbours", args.neighbours, 1),
        ("--prior-window", args.prior_window, 0),
        ("--cells-per-metacell", args.cells_per_metacell, 0),
    )
    if not 0 <= args.val_fraction < 1:
        msg = f"--val-fraction must be in [0, 1), got {args.val_fraction}"
        raise InputError(msg)
    if not 0 < args.lr < math.inf:
        msg = f"--lr must be a positive number, got {args.lr}"
        raise InputError(msg)
    if not 0 <= args.contrastive_weight < math.inf:
        msg = f"--contrastive-weight must be 0 or more, got {args.contrastive_weight}"
        raise InputError(msg)
    if args.prior is not None and args.gtf is None:
        msg = "--prior needs --gtf"
        raise InputError(msg)
    check_paths(
        inputs=[args.labels, *(args.prior or []), args.gtf],
        distinct=args.rna,
        outputs=[args.out],
    )
    train_grn(
        args.rna,
        out=args.out,
        labels=args.labels,
        prior=args.prior,
        gtf=args.gtf,
        layer=args.layer,
        device=args.device,
        seed=args.seed,
        threads=args.threads,
        model_config=model_config(args),
        train_config=train_config(args),
        prior_window=args.prior_window,
        prior_threshold=args.prior_threshold,
        negative_ratio=args.negative_ratio,
    )
    return 0


def _score(args: argparse.Namespace) -> int:
    from scregnet.errors import InputError
    from scregnet.grn.api import read_tf_list, score_grn, tfs_file
    from scregnet.io.outputs import check_paths

    _at_least(("--score-batch-size", args.score_batch_size, 1))
    if args.prior is not None and args.gtf is None:
        msg = "--prior needs --gtf"
        raise InputError(msg)
    if args.shard is not None and args.attention_out is not None:
        msg = "--attention-out is written by `scregnet grn merge`, not by a --shard"
        raise InputError(msg)
    tfs = read_tf_list(args.tfs) if args.tfs else None
    attention = None if args.shard else args.attention_out or default_attention_path(args.out)
    check_paths(
        inputs=[args.model, *(args.prior or []), args.gtf, tfs_file(args.tfs)],
        distinct=args.rna,
        outputs=[args.out, attention],
    )
    score_grn(
        args.model,
        args.rna,
        out=args.out,
        attention_out=attention,
        prior=args.prior,
        gtf=args.gtf,
        tfs=tfs,
        shard=args.shard,
        device=args.device,
        threads=args.threads,
        score_batch_size=args.score_batch_size,
    )
    return 0


def _merge(args: argparse.Namespace) -> int:
    from scregnet.grn.api import merge_grn
    from scregnet.io.outputs import check_paths

    attention = args.attention_out or default_attention_path(args.out)
    check_paths(distinct=args.shards, outputs=[args.out, attention])
    merge_grn(args.shards, out=args.out, attention_out=attention)
    return 0


def model_config(args: argparse.Namespace) -> GRNConfig:
    """The :class:`GRNConfig` of parsed ``grn`` arguments."""
    return GRNConfig(
        n_neighbours=args.neighbours,
        n_pair_features=(N_PAIR_FEATURES + N_LABEL_FEATURES * args.label_features)
        if args.pair_features
        else 0,
        cells_per_metacell=args.cells_per_metacell,
        label_neighbours=args.label_neighbours,
    )


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed ``grn`` arguments."""
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        contrastive_weight=args.contrastive_weight,
        val_fraction=args.val_fraction,
        sampling=args.sampling,
        network=args.network,
    )
