"""``scregnet grn``: DeepMCL-style GRN inference from one or more expression views."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "infer a ranked TF -> target network from expression views (DeepMCL-style)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rna",
        required=True,
        action="append",
        type=Path,
        metavar="H5AD",
        help="expression h5ad (repeatable). Cells are grouped into views by obs['view'] when "
        "present, else each file is a view named after it; inputs sharing a view are pooled. "
        "Uses layer 'imputed_expected' (the imputation stage's expected values), else 'imputed', "
        "else X (integer counts are normalised + log1p)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--labels",
        type=Path,
        help="known edges TSV 'tf target [label]': with a 0/1 label column exactly those pairs; "
        "without one the listed pairs are positives and the other pairs of the listed TFs negatives",
    )
    source.add_argument(
        "--prior",
        type=Path,
        action="append",
        metavar="TFBIND_H5AD",
        help="tfbind.h5ad (repeatable: the maximum over files is used): predicted binding of TF t "
        "within --prior-window of gene g's TSS labels t -> g positive; negatives are sampled "
        "among clearly unbound pairs (needs --gtf). The output's score is then the rank mean of "
        "the network's co-expression score and that binding (columns expression_score, "
        "binding_prior)",
    )
    parser.add_argument("--gtf", type=Path, help="gene annotation for TSSs (with --prior)")
    parser.add_argument("--out", required=True, type=Path, help="ranked edges TSV")
    parser.add_argument(
        "--attention-out",
        type=Path,
        default=None,
        help="per-TF and overall (tf '*') mean attention per view, TSV 'tf view weight' "
        "(default: beside --out, 'edges' in its name replaced by 'attention', e.g. "
        "grn_edges.tsv -> grn_attention.tsv)",
    )
    parser.add_argument(
        "--tfs",
        default=None,
        help="TFs to score (file, one per line, or comma-separated); default: the labels' / "
        "prior's TFs. TFs unseen in training can be scored",
    )
    parser.add_argument(
        "--layer",
        default=None,
        help="expression layer to use instead of the default ('X': the main matrix)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--epochs", type=int, default=40, help="maximum training epochs")
    parser.add_argument("--batch-size", type=int, default=64, help="training batch size (pairs)")
    parser.add_argument(
        "--score-batch-size", type=int, default=2048, help="pairs per scoring batch (memory bound)"
    )
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    parser.add_argument(
        "--neighbours", type=int, default=5, help="top-correlated neighbour genes per side"
    )
    parser.add_argument(
        "--contrastive-weight", type=float, default=0.5, help="weight of the contrastive loss"
    )
    parser.add_argument(
        "--pair-features",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="give the head the pair's pooled Spearman and metacell correlations beside the "
        "image embeddings, through a skip read-out (|Spearman|, |metacell r| or a logistic "
        "regression, chosen on held-out training TFs) plus the gated network (our extension; "
        "--no-pair-features = DeepMCL as published)",
    )
    parser.add_argument(
        "--label-features",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --pair-features, also give the head gene-level features: the target prior "
        "(fraction of the labelled TFs regulating the target, the TF's own labels left out), its "
        "co-expression-weighted version and both times |rho|, and the TF's and target's mean, "
        "variance and dropout (scregnet.grn.label_features)",
    )
    parser.add_argument(
        "--cells-per-metacell",
        type=int,
        default=100,
        help="cells per k-means metacell (per view) for the metacell-correlation pair features; "
        "0 = no metacell features; ignored with --no-pair-features",
    )
    parser.add_argument(
        "--sampling",
        choices=("balanced", "natural"),
        default="natural",
        help="training pairs per epoch: at the labels' own positive rate (default), or "
        "class-balanced as DeepMCL trains",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="fraction of the training TFs held out (whole TFs) to choose the epoch and, with "
        "pair features, whether the network adds to the correlation read-out (chosen on 3 inner "
        "TF folds, which are also used when this split holds < 20 positives); 0 = no held-out "
        "selection: the read-out starts as |Spearman| and trains with the network for --epochs",
    )
    parser.add_argument(
        "--prior-window", type=int, default=10_000, help="bp either side of a TSS (with --prior)"
    )
    parser.add_argument(
        "--prior-threshold", type=float, default=0.5, help="binding probability for a positive"
    )
    parser.add_argument(
        "--negative-ratio", type=float, default=3.0, help="sampled negatives per prior positive"
    )


def default_attention_path(out: Path) -> Path:
    """``grn_edges.tsv`` -> ``grn_attention.tsv``; ``x.tsv`` -> ``x.attention.tsv``."""
    if "edges" in out.name:
        return out.with_name(out.name.replace("edges", "attention"))
    return out.with_name(f"{out.stem}.attention.tsv")


def main(args: argparse.Namespace) -> int:
    from scregnet.errors import InputError
    from scregnet.grn.images import N_PAIR_FEATURES
    from scregnet.grn.infer import infer_grn, read_tf_list, tfs_file
    from scregnet.grn.label_features import N_LABEL_FEATURES
    from scregnet.grn.model import GRNConfig
    from scregnet.grn.train import TrainConfig
    from scregnet.io.outputs import check_paths

    for name, value, low in (
        ("--epochs", args.epochs, 1),
        ("--batch-size", args.batch_size, 2),
        ("--score-batch-size", args.score_batch_size, 1),
        ("--neighbours", args.neighbours, 1),
        ("--prior-window", args.prior_window, 0),
        ("--cells-per-metacell", args.cells_per_metacell, 0),
    ):
        if value < low:
            msg = f"{name} must be at least {low}, got {value}"
            raise InputError(msg)
    if not 0 <= args.val_fraction < 1:
        msg = f"--val-fraction must be in [0, 1), got {args.val_fraction}"
        raise InputError(msg)
    if args.prior is not None and args.gtf is None:
        msg = "--prior needs --gtf"
        raise InputError(msg)
    tfs = read_tf_list(args.tfs) if args.tfs else None
    attention = args.attention_out or default_attention_path(args.out)
    check_paths(
        inputs=[args.labels, args.prior, args.gtf, tfs_file(args.tfs)],
        distinct=args.rna,
        outputs=[args.out, attention],
    )
    infer_grn(
        args.rna,
        out=args.out,
        labels=args.labels,
        prior=args.prior,
        gtf=args.gtf,
        tfs=tfs,
        attention_out=attention,
        layer=args.layer,
        device=args.device,
        seed=args.seed,
        threads=args.threads,
        model_config=GRNConfig(
            n_neighbours=args.neighbours,
            n_pair_features=(N_PAIR_FEATURES + N_LABEL_FEATURES * args.label_features)
            if args.pair_features
            else 0,
            cells_per_metacell=args.cells_per_metacell,
        ),
        train_config=TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            contrastive_weight=args.contrastive_weight,
            val_fraction=args.val_fraction,
            sampling=args.sampling,
        ),
        prior_window=args.prior_window,
        prior_threshold=args.prior_threshold,
        negative_ratio=args.negative_ratio,
        score_batch_size=args.score_batch_size,
    )
    return 0
