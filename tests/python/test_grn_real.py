"""scregnet's GRN on real BEELINE sets (mHSC-GM with non-specific and with cell-type-specific
ChIP-seq truth), split 0 fold 0 of the benchmark's TF-aware folds, against the baselines a supervised user gets for free (|Spearman|,
|Pearson|, target prior, target prior x |r|, and two one-line rules on the training labels'
structure: reciprocal labels + target prior x TF in-degree x |r|, and the same with the shared
regulators ranked after the reciprocal label; the tree methods take minutes and are left to
bench/grn_real.py), computed in the same test on the same held-out pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.mark.slow
def test_beats_best_baseline_on_real_heldout_tfs(testdata: Path) -> None:
    from grn_baselines import LABEL_STRUCTURE, LABEL_TRIANGLES, abs_pearson, label_baselines
    from grn_beeline import load_set, tf_folds, tf_pairs
    from scregnet.grn.data import ExpressionViews
    from scregnet.grn.images import ImageBuilder
    from scregnet.grn.model import GRNConfig
    from scregnet.grn.train import TrainConfig, fit, predict_pairs
    from scregnet.seed import seed_everything
    from scregnet.stats import abs_spearman, auprc_ratio, early_precision_ratio

    data = load_set(testdata / "beeline_real", "Non-Specific", "mHSC-GM")
    test_tfs, train_tfs = tf_folds(data.regulators, 0)
    train = tf_pairs(train_tfs, len(data.genes), data.true)
    test = tf_pairs(test_tfs, len(data.genes), data.true)
    pearson = abs_pearson(data.expr)
    scores = {
        "|Spearman|": abs_spearman(data.expr, list(range(len(data.genes))))[test.tf, test.target],
        "|Pearson|": pearson[test.tf, test.target],
    }
    scores |= label_baselines(
        train.tf, train.target, train.label, test.tf, test.target, pearson[test.tf, test.target]
    )
    rng = seed_everything(0)
    views = ExpressionViews(data.genes, ["all"], [data.expr])
    builder = ImageBuilder.for_model(views, GRNConfig(), seed=0)
    model = fit(
        builder,
        train,
        model_config=GRNConfig(),
        config=TrainConfig(epochs=2, max_pairs_per_epoch=1024),
        rng=rng,
    ).model
    scores["scregnet"] = predict_pairs(model, builder, test)
    result = {
        name: (auprc_ratio(test.label, s), early_precision_ratio(test.label, s))
        for name, s in scores.items()
    }
    print(json.dumps(result))
    # the bar: the baselines of the issue (correlations and target priors)
    rules = (LABEL_STRUCTURE, LABEL_TRIANGLES)
    best = np.max([v for k, v in result.items() if k not in ("scregnet", *rules)], axis=0)
    assert result["scregnet"][0] >= best[0] and result["scregnet"][1] >= best[1]
    # the one-line rules on the labels' structure (reciprocal labels, TF in-degree, shared
    # regulators) carry most of the gain on this truth; the model is above both (measured:
    # 22.6 / 27.1 against 20.1 / 25.4 and 14.4 / 17.7)
    rule = np.max([result[k] for k in rules], axis=0)
    assert result["scregnet"][0] >= rule[0] and result["scregnet"][1] >= rule[1]


@pytest.mark.slow
def test_tf_degree_term_beats_the_target_prior_on_specific_chip(testdata: Path) -> None:
    """On mHSC-GM with cell-type-specific ChIP-seq truth (split 0 fold 0) the target prior is the
    best simple baseline; scregnet's read-out adds the held-out TF's predicted out-degree (its
    mean expression predicts its number of targets) and ranks the held-out pairs above it
    (measured: 1.36 / 1.17 against 1.14 / 1.17; the prior alone would tie it)."""
    from grn_baselines import LABEL_STRUCTURE, LABEL_TRIANGLES, abs_pearson, label_baselines
    from grn_beeline import load_set, tf_folds, tf_pairs
    from scregnet.grn.data import ExpressionViews
    from scregnet.grn.images import ImageBuilder
    from scregnet.grn.model import GRNConfig
    from scregnet.grn.train import TrainConfig, fit, predict_pairs
    from scregnet.seed import seed_everything
    from scregnet.stats import abs_spearman, auprc_ratio, early_precision_ratio

    data = load_set(testdata / "beeline_real", "Specific", "mHSC-GM")
    test_tfs, train_tfs = tf_folds(data.regulators, 0)
    train = tf_pairs(train_tfs, len(data.genes), data.true)
    test = tf_pairs(test_tfs, len(data.genes), data.true)
    pearson = abs_pearson(data.expr)[test.tf, test.target]
    spearman = abs_spearman(data.expr, list(range(len(data.genes))))[test.tf, test.target]
    scores = {"|Spearman|": spearman, "|Pearson|": pearson}
    scores |= label_baselines(train.tf, train.target, train.label, test.tf, test.target, pearson)
    rng = seed_everything(0)
    views = ExpressionViews(data.genes, ["all"], [data.expr])
    builder = ImageBuilder.for_model(views, GRNConfig(), seed=0)
    result = fit(
        builder, train, model_config=GRNConfig(), config=TrainConfig(network=False), rng=rng
    )
    print(json.dumps({k: v for k, v in result.selection.items() if "degree" in k}))
    scores["scregnet"] = predict_pairs(result.model, builder, test)
    got = {
        name: (auprc_ratio(test.label, s), early_precision_ratio(test.label, s))
        for name, s in scores.items()
    }
    print(json.dumps(got))
    baselines = [
        v for k, v in got.items() if k not in ("scregnet", LABEL_STRUCTURE, LABEL_TRIANGLES)
    ]
    best = np.max(baselines, axis=0)
    assert got["scregnet"][0] >= 1.10 * best[0]
    assert got["scregnet"][1] >= best[1]


@pytest.mark.slow
def test_shared_regulators_on_string_truth(testdata: Path) -> None:
    """On hHEP with STRING truth (split 0 fold 0; a protein network, rich in triangles) the read-out
    learns from the shared regulators of a pair beside its reciprocal label and ranks the held-out
    pairs 10 % above both one-line label rules, the triangles rule included (measured: 45.0 / 40.5
    against 33.6 / 30.5 and 37.7 / 34.1; without the shared-regulators feature the read-out is
    below the triangles rule)."""
    from grn_baselines import LABEL_STRUCTURE, LABEL_TRIANGLES, abs_pearson, label_baselines
    from grn_beeline import load_set, tf_folds, tf_pairs
    from scregnet.grn.data import ExpressionViews
    from scregnet.grn.images import ImageBuilder
    from scregnet.grn.model import GRNConfig
    from scregnet.grn.train import TrainConfig, fit, predict_pairs
    from scregnet.seed import seed_everything
    from scregnet.stats import auprc_ratio, early_precision_ratio

    data = load_set(testdata / "beeline_real", "STRING", "hHEP")
    test_tfs, train_tfs = tf_folds(data.regulators, 0)
    train = tf_pairs(train_tfs, len(data.genes), data.true)
    test = tf_pairs(test_tfs, len(data.genes), data.true)
    pearson = abs_pearson(data.expr)[test.tf, test.target]
    scores = label_baselines(train.tf, train.target, train.label, test.tf, test.target, pearson)
    rng = seed_everything(0)
    views = ExpressionViews(data.genes, ["all"], [data.expr])
    builder = ImageBuilder.for_model(views, GRNConfig(), seed=0)
    result = fit(
        builder, train, model_config=GRNConfig(), config=TrainConfig(network=False), rng=rng
    )
    scores["scregnet"] = predict_pairs(result.model, builder, test)
    got = {
        name: (auprc_ratio(test.label, s), early_precision_ratio(test.label, s))
        for name, s in scores.items()
    }
    print(json.dumps(got))
    rule = np.max([got[LABEL_STRUCTURE], got[LABEL_TRIANGLES]], axis=0)
    assert got["scregnet"][0] >= 1.10 * rule[0] and got["scregnet"][1] >= 1.10 * rule[1]


def test_sets_are_found_by_folder(tmp_path: Path, testdata: Path) -> None:
    """The real-data bench runs every ``<truth>/<cell>/`` set under its root, the shipped nine and
    any added beside them; a missing root is one clear error."""
    from grn_beeline import EXPRESSION, find_sets
    from grn_real import main
    from scregnet.errors import InputError

    for net, cell in (("STRING", "mDC"), ("Specific", "hESC"), ("Custom", "x"), ("Specific", "y")):
        (tmp_path / net / cell).mkdir(parents=True)
        if cell != "y":  # a folder without an expression file is not a set
            (tmp_path / net / cell / EXPRESSION).touch()
    assert find_sets(tmp_path) == [("Specific", "hESC"), ("STRING", "mDC"), ("Custom", "x")]
    shipped = find_sets(testdata / "beeline_real")
    assert len(shipped) == 9 and shipped[0] == ("Specific", "hHEP")
    with pytest.raises(InputError, match="does not exist"):
        find_sets(tmp_path / "absent")
    with pytest.raises(SystemExit) as exit_info:  # an unknown set is an error, not an empty run
        main(["--root", str(testdata / "beeline_real"), "--sets", "hESC Specific"])
    assert exit_info.value.code == 2


def test_few_regulators_and_undefined_ratios() -> None:
    """``--regulators N`` keeps N regulators drawn by seed with only their true edges (at least
    2, fewer than all); a ratio whose best baseline scores 0 on every fold is left out of the
    summary's means and minima, and the summary says how many were."""
    from grn_beeline import RealSet, subsample_regulators
    from grn_real import summary
    from scregnet.errors import InputError

    true = {(t, g) for t in range(6) for g in range(10, 14 + t)}
    data = RealSet(
        "c Specific",
        "c",
        [f"g{i}" for i in range(20)],
        np.zeros((5, 20), np.float32),
        list(range(8)),
        list(range(6)),
        true,
    )
    few = subsample_regulators(data, 3, 1)
    assert few.name == "c Specific, 3 regulators (draw 1)" and len(few.regulators) == 3
    assert few.true == {p for p in true if p[0] in few.regulators}
    assert subsample_regulators(data, 3, 1).regulators == few.regulators  # the seed decides
    for n in (1, 6):
        with pytest.raises(InputError, match="cannot keep"):
            subsample_regulators(data, n, 0)

    rows = pd.DataFrame(
        [
            {"set": s, "split": 0, "fold": 0, "method": m, "auprc_ratio": a, "epr": e}
            for s, base_epr in (("A", 2.0), ("B", 0.0))
            for m, a, e in (("|Spearman|", 1.0, base_epr), ("scregnet read-out", 1.5, 3.0))
        ]
    )
    text = summary(rows)
    assert "over 2 set(s): mean 1.500 (AUPRC ratio), 1.500 (EPR); minimum 1.500 / 1.500" in text
    assert "(0 / 1 set(s) with a zero denominator left out)" in text
