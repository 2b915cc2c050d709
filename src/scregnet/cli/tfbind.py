"""``scregnet tfbind train|predict|merge``: the scFAN-style TF-binding stage."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from scregnet.cli.main import HelpFormatter, nested_common_options
from scregnet.tfbind.config import PredictConfig, TrainConfig

HELP = "TF binding: train the scFAN-style CNN on bulk data, predict per cluster and per cell"


def _csv(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        msg = f"expected a comma-separated list, got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return items


def _ints(value: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in _csv(value))
    except ValueError as exc:
        msg = f"expected comma-separated integers, got {value!r}"
        raise argparse.ArgumentTypeError(msg) from exc
    if any(v < 1 for v in out):
        msg = f"values must be >= 1, got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return out


def _floats(value: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in _csv(value))
    except ValueError as exc:
        msg = f"expected comma-separated numbers, got {value!r}"
        raise argparse.ArgumentTypeError(msg) from exc


def _positive_int(value: str) -> int:
    n = int(value)
    if n < 1:
        msg = f"must be >= 1, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return n


def _positive_float(value: str) -> float:
    x = float(value)
    if not 0 < x < math.inf:
        msg = f"must be a positive number, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return x


def _probability(value: str) -> float:
    x = float(value)
    if not 0 < x < 1:
        msg = f"must be between 0 and 1 (exclusive), got {value}"
        raise argparse.ArgumentTypeError(msg)
    return x


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="tfbind_command", metavar="{train,predict,merge}")
    sub.required = True
    fmt = HelpFormatter
    _train_options(
        sub.add_parser(
            "train", help="train on bulk accessibility + ChIP peaks", formatter_class=fmt
        )
    )
    _predict_options(
        sub.add_parser(
            "predict", help="predict binding per cluster and activity per cell", formatter_class=fmt
        )
    )
    m = sub.add_parser(
        "merge", help="merge `predict --chrom` shards into S.tfbind.h5ad", formatter_class=fmt
    )
    m.add_argument("--shards", type=Path, nargs="+", required=True, help="shard .h5ad files")
    m.add_argument(
        "--atac", type=Path, required=True, help="the S.clustered.h5ad the shards came from"
    )
    m.add_argument("--out", type=Path, required=True, help="S.tfbind.h5ad")
    m.add_argument(
        "--skip-chroms",
        type=lambda s: [c for c in s.split(",") if c],
        action="extend",
        default=[],
        help="comma-separated chromosomes left out of prediction on purpose (their peaks get no "
        "prediction)",
    )
    _finalize_options(m, "cell-level outputs")
    nested_common_options(m)


def _train_options(t: argparse.ArgumentParser) -> None:
    """``tfbind train``'s options; every default is :class:`TrainConfig`'s."""
    d = TrainConfig()
    _train_io_options(t)
    _train_window_options(t, d)
    _train_fit_options(t, d)
    _train_network_options(t, d)
    _train_motif_options(t, d)
    nested_common_options(t)


def _train_io_options(t: argparse.ArgumentParser) -> None:
    """``tfbind train``'s inputs, outputs and device."""
    t.add_argument("--fasta", type=Path, required=True, help="genome FASTA (indexed)")
    t.add_argument(
        "--bulk",
        type=Path,
        required=True,
        help="bulk sheet CSV: tf,chip_bed,accessibility_bw,cell_type",
    )
    t.add_argument("--out", type=Path, required=True, help="model checkpoint to write (.pt)")
    t.add_argument(
        "--state",
        type=Path,
        default=None,
        help="per-epoch training-state file, resumed from when it exists and removed at the end",
    )
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def _train_window_options(t: argparse.ArgumentParser, d: TrainConfig) -> None:
    """``tfbind train``: the windows, bins and chromosome split."""
    t.add_argument("--window", type=_positive_int, default=d.window, help="input window (bp)")
    t.add_argument(
        "--bin-size",
        type=_positive_int,
        default=d.bin_size,
        help="labelled bin at the window centre (bp)",
    )
    t.add_argument("--step", type=_positive_int, default=d.step, help="bin tiling step (bp)")
    t.add_argument(
        "--test-chroms",
        type=_csv,
        default=d.test_chroms,
        help="held-out test chromosomes (default: chr1,chr8,chr21, else see docs/usage.md)",
    )
    t.add_argument(
        "--val-chroms",
        type=_csv,
        default=d.val_chroms,
        help="validation chromosomes for early stopping (default: chr11, else see docs/usage.md)",
    )
    t.add_argument(
        "--exclude-chroms",
        type=_csv,
        default=d.exclude_chroms,
        help="chromosomes never used",
    )


def _train_fit_options(t: argparse.ArgumentParser, d: TrainConfig) -> None:
    """``tfbind train``: sampling, loss weighting and optimisation."""
    t.add_argument(
        "--negative-ratio",
        type=_positive_float,
        default=d.negative_ratio,
        help="sampled negative bins per positive bin",
    )
    t.add_argument(
        "--max-pos-weight",
        type=_positive_float,
        default=d.max_pos_weight,
        help="cap of the per-TF positive-class weight in the loss",
    )
    t.add_argument("--epochs", type=_positive_int, default=d.epochs, help="maximum epochs")
    t.add_argument(
        "--patience",
        type=_positive_int,
        default=d.patience,
        help="early stopping: epochs without validation improvement",
    )
    t.add_argument(
        "--batch-size", type=_positive_int, default=d.batch_size, help="training batch size"
    )
    t.add_argument("--lr", type=_positive_float, default=d.lr, help="Adam learning rate")


def _train_network_options(t: argparse.ArgumentParser, d: TrainConfig) -> None:
    """``tfbind train``: the network and its augmentation."""
    t.add_argument(
        "--filters",
        type=_ints,
        default=d.filters,
        help="filters per convolution block (the paper's by default)",
    )
    t.add_argument(
        "--dropout",
        type=_floats,
        default=d.dropout,
        help="dropout per convolution block (the paper's by default)",
    )
    t.add_argument(
        "--hidden", type=_positive_int, default=d.hidden, help="dense layer width (the paper's)"
    )
    t.add_argument(
        "--no-accessibility",
        action="store_true",
        help="sequence-only model (ignore the accessibility tracks)",
    )
    t.add_argument(
        "--no-rc-augment", action="store_true", help="no reverse-complement augmentation"
    )
    t.add_argument(
        "--jitter",
        type=int,
        default=d.jitter,
        help="random shift of training windows, +- bp (0 = none)",
    )


def _train_motif_options(t: argparse.ArgumentParser, d: TrainConfig) -> None:
    """``tfbind train``: motif and context inputs and the sequence warm-up."""
    t.add_argument(
        "--motifs",
        type=Path,
        default=d.motifs,
        help="JASPAR PFMs of the TFs, matched by name (default: pyjaspar's bundled JASPAR)",
    )
    t.add_argument(
        "--no-motif-tracks",
        action="store_true",
        help="no motif-scan input tracks (the paper's input: DNA + accessibility only)",
    )
    t.add_argument(
        "--no-context",
        action="store_true",
        help="no sample-level TF-activity context input",
    )
    t.add_argument(
        "--motif-init",
        action=argparse.BooleanOptionalAction,
        default=d.motif_init,
        help="initialise two first-block filters per TF from its motif",
    )
    t.add_argument(
        "--sequence-warmup",
        type=int,
        default=d.sequence_warmup,
        help="first epochs trained with the accessibility channel zeroed",
    )


def _predict_options(p: argparse.ArgumentParser) -> None:
    """``tfbind predict``'s options; every default is :class:`PredictConfig`'s."""
    d = PredictConfig()
    p.add_argument("--model", type=Path, required=True, help="checkpoint from `tfbind train`")
    p.add_argument("--fasta", type=Path, required=True, help="genome FASTA (the model's genome)")
    p.add_argument(
        "--atac", type=Path, required=True, help="S.clustered.h5ad from `scregnet cluster`"
    )
    p.add_argument("--fragments", type=Path, required=True, help="fragments.tsv.gz (+ .tbi)")
    p.add_argument(
        "--out", type=Path, required=True, help="S.tfbind.h5ad, or a shard .h5ad with --chrom"
    )
    p.add_argument(
        "--motifs",
        type=Path,
        default=None,
        help="JASPAR PFMs for the baselines (default: pyjaspar's JASPAR by TF name)",
    )
    p.add_argument(
        "--chrom",
        type=_csv,
        action="extend",
        default=None,
        help="only these chromosomes: writes a shard for `tfbind merge`",
    )
    p.add_argument(
        "--window",
        type=_positive_int,
        default=None,
        help="expected window size (must be the model's)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--batch-size", type=_positive_int, default=d.batch_size, help="windows per batch"
    )
    p.add_argument(
        "--no-rc-average",
        action="store_true",
        help="forward strand only (default averages both strands)",
    )
    p.add_argument(
        "--motif-p-value",
        type=_probability,
        default=d.motif_p_value,
        help="PWM match p-value for the chromVAR baseline",
    )
    _finalize_options(p, "cell-level outputs (not with --chrom)")
    nested_common_options(p)


def _finalize_options(parser: argparse.ArgumentParser, title: str) -> None:
    """The cell-level options (default None, so that ``predict --chrom`` can refuse them when
    given; :func:`predict_config` fills in :class:`PredictConfig`'s default)."""
    d = PredictConfig()
    g = parser.add_argument_group(title)
    g.add_argument(
        "--neighbors",
        type=_positive_int,
        default=None,
        help=f"k nearest LSI neighbours pooled per cell (default {d.n_neighbors})",
    )
    g.add_argument(
        "--threshold",
        type=_probability,
        default=None,
        help=f"binding probability for the BED tracks (default {d.threshold})",
    )
    g.add_argument(
        "--chromvar-iterations",
        type=_positive_int,
        default=None,
        help=f"background peak sets of the chromVAR baseline (default {d.chromvar_iterations})",
    )
    g.add_argument(
        "--tracks-outdir",
        type=Path,
        default=None,
        help="per-cluster BED/bigWig directory (default: beside --out, named after the sample)",
    )


def _tracks_dir(args: Any) -> Path:
    if args.tracks_outdir is not None:
        return Path(args.tracks_outdir)
    out = Path(args.out)
    name = out.name
    for suffix in (".tfbind.h5ad", ".h5ad"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return out.parent / name


def predict_config(args: Any) -> PredictConfig:
    """The :class:`PredictConfig` of parsed ``tfbind predict|merge`` arguments."""
    defaults = PredictConfig()
    return PredictConfig(
        batch_size=getattr(args, "batch_size", defaults.batch_size),
        rc_average=not getattr(args, "no_rc_average", False),
        n_neighbors=args.neighbors if args.neighbors is not None else defaults.n_neighbors,
        threshold=args.threshold if args.threshold is not None else defaults.threshold,
        motif_p_value=getattr(args, "motif_p_value", defaults.motif_p_value),
        chromvar_iterations=args.chromvar_iterations
        if args.chromvar_iterations is not None
        else defaults.chromvar_iterations,
        seed=args.seed,
    )


def main(args: argparse.Namespace) -> int:
    from scregnet.device import torch_threads

    with torch_threads(args.threads):
        if args.tfbind_command == "train":
            return _train(args)
        if args.tfbind_command == "predict":
            return _predict(args)
        return _merge(args)


def _train(args: argparse.Namespace) -> int:
    from scregnet.errors import InputError
    from scregnet.io.outputs import check_paths
    from scregnet.tfbind.api import train

    if len(args.filters) != len(args.dropout):
        msg = f"--filters has {len(args.filters)} blocks but --dropout {len(args.dropout)}"
        raise InputError(msg)
    if (
        args.negative_ratio <= 0
        or args.lr <= 0
        or args.max_pos_weight < 1
        or args.jitter < 0
        or args.sequence_warmup < 0
    ):
        msg = "--negative-ratio and --lr must be > 0, --max-pos-weight >= 1, --jitter and --sequence-warmup >= 0"
        raise InputError(msg)
    if args.motifs is not None and not args.motifs.exists():
        msg = "motif file does not exist"
        raise InputError(msg, args.motifs)
    check_paths(
        inputs=[args.fasta, args.bulk, args.motifs, *_sheet_files(args.bulk)],
        outputs=[args.out, args.state],
    )
    config = train_config(args)
    train(
        args.fasta,
        args.bulk,
        args.out,
        config=config,
        device=args.device,
        state=args.state,
    )
    return 0


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed ``tfbind train`` arguments."""
    return TrainConfig(
        window=args.window,
        bin_size=args.bin_size,
        step=args.step,
        test_chroms=args.test_chroms,
        val_chroms=args.val_chroms,
        exclude_chroms=list(args.exclude_chroms),
        negative_ratio=args.negative_ratio,
        max_pos_weight=args.max_pos_weight,
        epochs=args.epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        lr=args.lr,
        filters=args.filters,
        dropout=args.dropout,
        hidden=args.hidden,
        use_accessibility=not args.no_accessibility,
        rc_augment=not args.no_rc_augment,
        jitter=args.jitter,
        motifs=str(args.motifs) if args.motifs is not None else None,
        motif_init=args.motif_init,
        motif_tracks=not args.no_motif_tracks,
        context=not args.no_context,
        sequence_warmup=args.sequence_warmup,
        seed=args.seed,
    )


def _sheet_files(sheet: Path) -> list[Path]:
    """The ChIP BEDs and accessibility bigWigs a bulk sheet names (none when it is unreadable:
    reading it for training then gives the error)."""
    from scregnet.errors import InputError
    from scregnet.tfbind.data import read_bulk_sheet

    try:
        tracks = read_bulk_sheet(sheet)
    except InputError:
        return []
    return [p for t in tracks for p in (t.accessibility_bw, *t.chip.values())]


def _predict(args: argparse.Namespace) -> int:
    from scregnet import keys
    from scregnet.errors import InputError
    from scregnet.io.genome import read_chrom_sizes
    from scregnet.io.h5ad import read_h5ad, write_h5ad
    from scregnet.io.outputs import check_paths
    from scregnet.tfbind.api import finalize, predict_peaks, write_outputs
    from scregnet.tfbind.checkpoint import load_checkpoint
    from scregnet.tfbind.motifs import jaspar_motifs, motifs_for_tfs, read_motifs

    if args.chrom is not None:
        given = [
            f"--{n.replace('_', '-')}"
            for n in ("neighbors", "threshold", "chromvar_iterations", "tracks_outdir")
            if getattr(args, n) is not None
        ]
        if given:
            msg = f"{', '.join(given)} only apply to whole-genome runs or `tfbind merge`, not with --chrom"
            raise InputError(msg)
    inputs = [args.model, args.fasta, args.atac, args.fragments, args.motifs]
    check_paths(
        inputs=inputs,
        outputs=[args.out],
        outdirs=[_tracks_dir(args)] if args.chrom is None else [],
    )
    sizes = read_chrom_sizes(args.fasta)
    loaded = load_checkpoint(args.model, chrom_sizes=sizes, window=args.window, fasta=args.fasta)
    motifs = (
        motifs_for_tfs(read_motifs(args.motifs), loaded.tfs)
        if args.motifs is not None
        else jaspar_motifs(loaded.tfs)
    )
    atac = read_h5ad(args.atac)
    config = predict_config(args)
    shard = predict_peaks(
        atac,
        atac_path=args.atac,
        fragments=args.fragments,
        fasta=args.fasta,
        loaded=loaded,
        motifs=motifs,
        chroms=args.chrom,
        config=config,
        device=args.device,
    )
    if args.chrom is not None:
        write_h5ad(shard, args.out)
        return 0
    result = finalize(atac, shard, atac_path=args.atac, config=config)
    write_outputs(
        result,
        args.out,
        _tracks_dir(args),
        chrom_sizes=shard.uns[keys.TFBIND_SHARD]["chrom_sizes"],
        protect=[p for p in inputs if p is not None],
    )
    return 0


def _merge(args: argparse.Namespace) -> int:
    from scregnet import keys
    from scregnet.io.h5ad import read_h5ad
    from scregnet.io.outputs import check_paths
    from scregnet.tfbind.api import finalize, merge_shards, write_outputs

    check_paths(
        inputs=[args.atac], distinct=args.shards, outputs=[args.out], outdirs=[_tracks_dir(args)]
    )
    shards = [read_h5ad(p) for p in args.shards]
    merged = merge_shards(shards, names=[str(p) for p in args.shards])
    atac = read_h5ad(args.atac)
    result = finalize(
        atac,
        merged,
        atac_path=args.atac,
        config=predict_config(args),
        skipped_chroms=args.skip_chroms,
    )
    write_outputs(
        result,
        args.out,
        _tracks_dir(args),
        chrom_sizes=merged.uns[keys.TFBIND_SHARD]["chrom_sizes"],
        protect=[args.atac, *args.shards],
    )
    return 0
