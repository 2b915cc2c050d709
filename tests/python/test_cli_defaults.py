"""One definition per default: the ``impute``, ``tfbind`` and ``grn`` command lines, parsed with
no optional flag, give exactly the config dataclasses' defaults (and ``impute``'s and
``infer_grn``'s keyword defaults); each fixed-choice option's CLI ``choices`` are its ``Literal``
alias's values, and the API refuses any other value with a ``ValueError`` naming the option."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from pathlib import Path
from typing import Any, get_args

import pytest

from scregnet.atac.options import Collapse, Features, Strategy
from scregnet.cli import grn as grn_cli
from scregnet.cli import impute as impute_cli
from scregnet.cli import tfbind as tfbind_cli
from scregnet.cli.main import build_parser
from scregnet.grn.config import GRNConfig, Sampling
from scregnet.grn.config import TrainConfig as GRNTrainConfig
from scregnet.impute.config import ImputeConfig
from scregnet.impute.config import TrainConfig as ImputeTrainConfig
from scregnet.tfbind.config import PredictConfig, TrainConfig

TRAIN = ["tfbind", "train", "--fasta", "g.fa", "--bulk", "b.csv", "--out", "m.pt"]
PREDICT = ["tfbind", "predict", "--model", "m.pt", "--fasta", "g.fa", "--atac", "a.h5ad"]
PREDICT += ["--fragments", "f.tsv.gz", "--out", "o.h5ad"]
MERGE = ["tfbind", "merge", "--shards", "s.h5ad", "--atac", "a.h5ad", "--out", "o.h5ad"]
GRN = ["grn", "train", "--rna", "x.h5ad", "--labels", "e.tsv", "--out", "m.pt"]
GRN_SCORE = ["grn", "score", "--model", "m.pt", "--rna", "x.h5ad", "--out", "e_out.tsv"]
IMPUTE = ["impute", "--rna", "x.h5ad", "--out", "x.imputed.h5ad"]


def parse(argv: list[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if not hasattr(args, "seed"):  # as cli.main does
        args.seed = 0
    return args


def differences(got: object, want: object) -> dict[str, tuple[object, object]]:
    """Fields where two dataclass instances differ: name -> (CLI's, dataclass's)."""
    return {
        f.name: (getattr(got, f.name), getattr(want, f.name))
        for f in dataclasses.fields(want)
        if getattr(got, f.name) != getattr(want, f.name)
    }


def test_tfbind_train_defaults_are_the_config_defaults() -> None:
    assert differences(tfbind_cli.train_config(parse(TRAIN)), TrainConfig()) == {}


@pytest.mark.parametrize("argv", [PREDICT, MERGE], ids=["predict", "merge"])
def test_tfbind_predict_defaults_are_the_config_defaults(argv: list[str]) -> None:
    assert differences(tfbind_cli.predict_config(parse(argv)), PredictConfig()) == {}


def test_grn_defaults_are_the_config_and_api_defaults() -> None:
    from scregnet.grn.api import score_grn, train_grn

    args = parse(GRN)
    assert differences(grn_cli.model_config(args), GRNConfig()) == {}
    assert differences(grn_cli.train_config(args), GRNTrainConfig()) == {}
    api = inspect.signature(train_grn).parameters
    for name in ("prior_window", "prior_threshold", "negative_ratio", "device"):
        assert getattr(args, name) == api[name].default, name
    args, api = parse(GRN_SCORE), inspect.signature(score_grn).parameters
    for name in ("score_batch_size", "device", "shard"):
        assert getattr(args, name) == api[name].default, name


def impute_args(argv: list[str]) -> argparse.Namespace:
    args = parse(argv)
    impute_cli.training_options(args)  # as cli.impute.main does
    return args


def test_impute_defaults_are_the_config_and_api_defaults() -> None:
    from scregnet.impute.api import impute

    args = impute_args(IMPUTE)
    api = inspect.signature(impute).parameters
    for name in ("n_top_genes", "epochs", "batch_size", "hidden_dim", "latent_dim", "device"):
        assert getattr(args, name) == api[name].default, name
    # impute()'s own defaults are the config dataclasses'
    train, model = ImputeTrainConfig(), ImputeConfig(n_genes=2)
    for name in ("epochs", "batch_size"):
        assert api[name].default == getattr(train, name), name
    assert api["use_bulk"].default is None  # the bulk stage decided from the data
    for name in ("hidden_dim", "latent_dim", "use_unet", "use_neighbours", "n_neighbours"):
        assert api[name].default == getattr(model, name), name


def test_a_changed_flag_is_seen() -> None:
    """The comparison above can fail: a flag away from its default shows as a difference."""
    got = tfbind_cli.train_config(parse([*TRAIN, "--epochs", "7", "--no-context"]))
    assert set(differences(got, TrainConfig())) == {"epochs", "context"}
    flags = ["--neighbours", "3", "--no-label-features", "--no-label-neighbours"]
    args = parse([*GRN, *flags, "--sampling", "balanced"])
    assert set(differences(grn_cli.model_config(args), GRNConfig())) == {
        "n_neighbours",
        "n_pair_features",
        "label_neighbours",
    }
    assert set(differences(grn_cli.train_config(args), GRNTrainConfig())) == {"sampling"}
    args = impute_args([*IMPUTE, "--epochs", "7", "--latent-dim", "8"])
    assert (args.epochs, args.latent_dim, args.hidden_dim) == (7, 8, ImputeConfig.hidden_dim)


def test_help_lines_are_one_sentence() -> None:
    """Every option's help of ``impute``, ``tfbind train|predict|merge`` and ``grn
    train|score|merge`` is one short sentence."""
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    def nested(command: str) -> list[argparse.ArgumentParser]:
        actions = subs.choices[command]._actions
        return list(
            next(a for a in actions if isinstance(a, argparse._SubParsersAction)).choices.values()
        )

    parsers = [subs.choices["impute"], *nested("grn"), *nested("tfbind")]
    long = [
        f"{p.prog} {a.option_strings[0]}: {len(a.help)} characters"
        for p in parsers
        for a in p._actions
        if a.help and a.help != argparse.SUPPRESS and len(a.help) > 100
    ]
    assert long == []


def option(command: str, flag: str) -> argparse.Action:
    """The ``flag`` action of ``scregnet <command>`` (``grn train``: a nested subcommand)."""
    parser = build_parser()
    for word in command.split():
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return next(a for a in parser._actions if flag in a.option_strings)


CHOICES = [
    ("fragments", "--collapse", Collapse),
    ("count", "--strategy", Strategy),
    ("cluster", "--features", Features),
    ("grn train", "--sampling", Sampling),
]


@pytest.mark.parametrize(("command", "flag", "alias"), CHOICES, ids=[c[1] for c in CHOICES])
def test_cli_choices_are_the_literal_values(command: str, flag: str, alias: Any) -> None:
    action = option(command, flag)
    assert tuple(action.choices) == get_args(alias)
    assert action.default in get_args(alias)


def test_a_bad_choice_names_the_option_and_its_values(tmp_path: Path) -> None:
    import anndata as ad
    import numpy as np

    from scregnet.atac.cluster import cluster_cells
    from scregnet.atac.count import count_fragments
    from scregnet.atac.fragments import FragmentOptions

    with pytest.raises(
        ValueError, match=r"^sampling must be one of 'balanced', 'natural', got 'focal'$"
    ):
        GRNTrainConfig(sampling="focal")
    with pytest.raises(
        ValueError, match=r"^collapse must be one of 'within', 'across', got 'none'$"
    ):
        FragmentOptions(collapse="none")
    with pytest.raises(
        ValueError,
        match=r"^strategy must be one of 'fragment', 'insertion', 'paired-insertion', got 'reads'$",
    ):
        count_fragments(tmp_path / "f.tsv.gz", tmp_path / "p.bed", {"chr1": 1000}, strategy="reads")
    with pytest.raises(
        ValueError, match=r"^features must be one of 'peaks', 'tiles', got 'genes'$"
    ):
        cluster_cells(ad.AnnData(np.ones((4, 3), dtype=np.float32)), features="genes")


def test_fragments_cli_defaults_are_the_options_defaults() -> None:
    from scregnet.atac.options import FragmentOptions

    args = parse(["fragments", "--bam", "x.bam", "--out", "f.tsv.gz"])
    defaults = FragmentOptions()
    for field in dataclasses.fields(FragmentOptions):
        if field.name == "barcodes":  # a file of barcodes on the command line
            assert args.barcodes is None and defaults.barcodes is None
            continue
        value = getattr(args, field.name)
        if field.name == "exclude_contigs":
            value = tuple(c for c in value.split(",") if c)
        assert value == getattr(defaults, field.name), field.name
