"""``scregnet grn train|score|merge`` end to end: outputs, flags, determinism, shards, bad inputs,
accuracy, scorer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from grn_synth import write_world

from scregnet.cli.main import main as cli
from scregnet.stats import auprc, rank_mean

FAST = ["--epochs", "1", "--val-fraction", "0", "--threads", "1", "--device", "cpu"]
SCORE = ["--threads", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return write_world(
        tmp_path_factory.mktemp("grn_world"), n_tfs=6, n_targets=14, n_cells=60, seed=1
    )


def _rna(paths: list[Path]) -> list[str]:
    return [a for p in paths for a in ("--rna", str(p))]


def _run(
    world: dict[str, Any],
    out: Path,
    *extra: str,
    labels: Path | None = None,
    score: tuple[str, ...] = (),
) -> int:
    """``grn train`` (``extra``) to ``out``'s ``.pt``, then ``grn score`` (``score``) to ``out``."""
    model = out.with_suffix(".pt")
    train = ["grn", "train", *_rna(world["paths"]), "--labels", str(labels or world["edge_path"])]
    code = cli([*train, "--out", str(model), *FAST, *extra])
    if code:
        return code
    return cli(
        [
            "grn",
            "score",
            "--model",
            str(model),
            *_rna(world["paths"]),
            "--out",
            str(out),
            *SCORE,
            *score,
        ]
    )


def test_outputs_ranked_with_attention(world: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "grn_edges.tsv"
    assert _run(world, out) == 0
    edges = pd.read_csv(out, sep="\t")
    assert list(edges.columns) == [
        "tf",
        "target",
        "score",
        "rank",
        "method",
        "attention_v1",
        "attention_v2",
    ]
    # the read-out that produced the score is named on every row
    assert edges.method.nunique() == 1
    assert edges.method[0].endswith(("(network gate 0)", "features)"))
    n_genes = len(world["genes"])
    n_tfs = len({t for t, _ in world["edges"]})
    assert len(edges) == n_tfs * (n_genes - 1)  # every labelled TF x every other gene
    assert (edges.tf != edges.target).all()
    assert edges["rank"].tolist() == list(range(1, len(edges) + 1))
    assert (np.diff(edges.score.to_numpy()) <= 0).all()
    np.testing.assert_allclose(edges[["attention_v1", "attention_v2"]].sum(axis=1), 1, atol=1e-4)
    attention = pd.read_csv(tmp_path / "grn_attention.tsv", sep="\t")
    assert set(attention.view) == {"v1", "v2"}
    assert "*" in set(attention.tf)


def test_seed_determinism_and_flags_change_output(world: dict[str, Any], tmp_path: Path) -> None:
    def scores(name: str, *extra: str) -> pd.Series:
        out = tmp_path / f"{name}.tsv"
        assert _run(world, out, *extra) == 0
        frame = pd.read_csv(out, sep="\t").set_index(["tf", "target"]).sort_index()
        return frame.score

    base = scores("a", "--seed", "3")
    pd.testing.assert_series_equal(base, scores("b", "--seed", "3"))
    # streaming batch size changes memory, never the result
    out = tmp_path / "c.tsv"
    score = ("--score-batch-size", "7")
    assert _run(world, out, "--seed", "3", score=score) == 0
    batched = pd.read_csv(out, sep="\t").set_index(["tf", "target"]).sort_index().score
    np.testing.assert_allclose(base, batched, atol=1e-5)
    for name, flag in [
        ("seed", ["--seed", "4"]),
        ("epochs", ["--seed", "3", "--epochs", "2"]),
        ("lr", ["--seed", "3", "--lr", "0.01"]),
        ("pair", ["--seed", "3", "--no-pair-features"]),
        ("metacell", ["--seed", "3", "--cells-per-metacell", "20"]),
        ("sampling", ["--seed", "3", "--sampling", "balanced"]),
    ]:
        assert not np.allclose(base, scores(name, *flag)), name
    # after one epoch the gated network adds little to the pair-feature skip: flags that act on
    # the network alone are checked without the skip (DeepMCL as published)
    plain = scores("plain", "--seed", "3", "--no-pair-features")
    for name, flag in [
        ("batch", ["--batch-size", "16"]),
        ("neigh", ["--neighbours", "2"]),
        ("contrast", ["--contrastive-weight", "0"]),
    ]:
        assert not np.allclose(plain, scores(name, "--seed", "3", "--no-pair-features", *flag)), (
            name
        )


def test_tfs_scores_unseen_tf(world: dict[str, Any], tmp_path: Path) -> None:
    labels = tmp_path / "labels.tsv"
    pd.read_csv(world["edge_path"], sep="\t").query("tf != 'TF0'").to_csv(
        labels, sep="\t", index=False
    )
    out = tmp_path / "e.tsv"
    tf_file = tmp_path / "tfs.txt"
    tf_file.write_text("TF0\nTF1\n")
    assert _run(world, out, labels=labels, score=("--tfs", str(tf_file))) == 0
    edges = pd.read_csv(out, sep="\t")
    assert set(edges.tf) == {"TF0", "TF1"}  # TF0 never seen in training


def test_val_fraction_holds_out_whole_tfs(world: dict[str, Any], tmp_path: Path) -> None:
    from scregnet.grn.data import PairLabels
    from scregnet.grn.train import tf_aware_split

    rng = np.random.default_rng(0)
    tf = np.repeat(np.arange(10), 30)
    label = (np.arange(300) % 3 == 0).astype(np.int8)
    mask, train_tfs, val_tfs = tf_aware_split(PairLabels(tf, tf * 0, label), 0.3, rng)
    assert len(val_tfs) == 3 and not set(val_tfs) & set(train_tfs)
    assert set(tf[~mask]) == set(val_tfs) and set(tf[mask]) == set(train_tfs)
    out = tmp_path / "v.tsv"
    assert _run(world, out, "--val-fraction", "0.25") == 0


def test_bad_inputs_one_line_no_output(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bad.tsv"

    def fails(*extra: str, labels: Path | None = None, rna: list[Path] | None = None) -> str:
        argv = ["grn", "train", *_rna(rna or world["paths"])]
        argv += ["--labels", str(labels or world["edge_path"]), "--out", str(out), *FAST, *extra]
        assert cli(argv) == 1
        assert not out.exists() and not list(tmp_path.glob(".bad*"))
        err = capsys.readouterr().err.strip().splitlines()
        return err[-1]

    model = tmp_path / "m.pt"
    assert _run(world, tmp_path / "m.tsv") == 0
    scored = ["grn", "score", "--model", str(model), *SCORE]
    assert cli([*scored, *_rna(world["paths"]), "--out", str(out), "--tfs", "NOPE1,NOPE2"]) == 1
    assert "none of the 2 TF(s) is a gene of the expression data: NOPE1, NOPE2" in (
        capsys.readouterr().err
    )
    assert not out.exists()
    # a TF list with TFs the data lack (a TF database's): those are logged and skipped
    some = tmp_path / "some.tsv"
    assert cli([*scored, *_rna(world["paths"]), "--out", str(some), "--tfs", "TF0,NOPE1"]) == 0
    assert "1 of 2 TF(s) are not genes of the expression data and are not scored: NOPE1" in (
        capsys.readouterr().err
    )
    assert set(pd.read_csv(some, sep="\t")["tf"]) == {"TF0"}
    alien = tmp_path / "alien.tsv"
    alien.write_text("X1\tY1\nX2\tY2\n")
    assert "share no (tf, target) pair" in fails(labels=alien)
    few = tmp_path / "few.h5ad"
    a = ad.read_h5ad(world["paths"][0])[:40].copy()
    a.obs["view"] = "tiny_view"
    a.write_h5ad(few)
    assert "view 'tiny_view' has 40 cells; at least 50" in fails(rna=[*world["paths"], few])
    other = tmp_path / "other.h5ad"
    ad.AnnData(
        sp.csr_matrix(np.ones((60, 3), dtype=np.float32)),
        var=pd.DataFrame(index=["TF0", "A", "B"]),
    ).write_h5ad(other)
    assert "share only 1 gene(s)" in fails(rna=[world["paths"][0], other])
    zeros = tmp_path / "zeros.h5ad"
    a = ad.read_h5ad(world["paths"][0])
    a.X = sp.csr_matrix(a.shape, dtype=np.float32)
    a.write_h5ad(zeros)
    line = fails(rna=[zeros, *world["paths"][1:]])
    assert "every expression value is 0" in line and str(zeros) in line
    assert "--epochs must be at least 1" in fails("--epochs", "0")
    assert "--lr must be a positive number, got -1.0" in fails("--lr", "-1")
    assert "--lr must be a positive number, got nan" in fails("--lr", "nan")
    assert "--contrastive-weight must be 0 or more" in fails("--contrastive-weight", "-0.5")
    # a 0/1 label column: one pair labelled both ways; negatives for one TF only, so the
    # held-in TFs of a validation fold have no negative
    edges = pd.read_csv(world["edge_path"], sep="\t").assign(label=1)
    both = tmp_path / "both.tsv"
    pd.concat([edges, edges.iloc[[0]].assign(label=0)]).to_csv(both, sep="\t", index=False)
    pair = f"{edges.tf.iloc[0]} -> {edges.target.iloc[0]}"
    assert f"the pair {pair} is labelled both 1 and 0" in fails(labels=both)
    one_negative = tmp_path / "one_negative.tsv"
    tf0 = edges.tf.iloc[0]
    others = [g for g in world["genes"] if g != tf0 and g not in set(edges.target[edges.tf == tf0])]
    negative = pd.DataFrame({"tf": [tf0], "target": [others[0]], "label": [0]})
    pd.concat([edges, negative]).to_csv(one_negative, sep="\t", index=False)
    assert "negatives (label 0) for too few TFs" in fails(
        "--val-fraction", "0.2", labels=one_negative
    )


def test_shards_merge_to_the_edges_of_one_scoring(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``score --shard K/N`` for every K, then ``merge``: the same files as one ``score``, also
    with more shards than TFs (empty shards); merge refuses incomplete or mixed shards."""
    whole = tmp_path / "grn_edges.tsv"
    assert _run(world, whole, "--epochs", "2") == 0
    # the network is part of the score (no held-out selection: it trains with the skip), so the
    # shards rebuild its images and neighbour embeddings
    assert "trained together" in pd.read_csv(whole, sep="\t").method[0]
    model = whole.with_suffix(".pt")
    scored = ["grn", "score", "--model", str(model), *_rna(world["paths"]), *SCORE]
    n_tfs = len({t for t, _ in world["edges"]})
    for n in (3, n_tfs + 2):
        shards = [tmp_path / f"s{k}of{n}.tsv" for k in range(1, n + 1)]
        for k, shard in enumerate(shards, 1):
            assert cli([*scored, "--shard", f"{k}/{n}", "--out", str(shard)]) == 0
        merged = tmp_path / f"merged{n}.edges.tsv"
        assert cli(["grn", "merge", "--shards", *map(str, shards[::-1]), "--out", str(merged)]) == 0
        assert merged.read_bytes() == whole.read_bytes()
        attention = tmp_path / f"merged{n}.attention.tsv"
        assert attention.read_bytes() == (tmp_path / "grn_attention.tsv").read_bytes()

    def refused(*shards: Path) -> str:
        out = tmp_path / "refused.tsv"
        assert cli(["grn", "merge", "--shards", *map(str, shards), "--out", str(out)]) == 1
        assert not out.exists()
        return capsys.readouterr().err.strip().splitlines()[-1]

    one, two, three = (tmp_path / f"s{k}of3.tsv" for k in (1, 2, 3))
    assert "shard(s) 2/3 missing" in refused(one, three)
    copy = tmp_path / "copy.tsv"
    copy.write_bytes(two.read_bytes())
    assert "shard 2/3 given twice" in refused(one, two, copy, three)
    # a copy cut short at a line boundary reads as a table: the header's pair count tells
    lines = two.read_text().splitlines(keepends=True)
    assert lines[0].rstrip("\n").endswith(f"pairs={len(lines) - 2}")
    copy.write_text("".join(lines[:-3]))
    assert f"holds {len(lines) - 5} pairs, its header says {len(lines) - 2}" in refused(
        one, copy, three
    )
    assert "another N (shard count)" in refused(one, two, three, tmp_path / f"s1of{n_tfs + 2}.tsv")
    assert "not a GRN shard" in refused(whole)
    # shards of another model (another seed) do not mix
    other = tmp_path / "other.tsv"
    assert _run(world, other, "--epochs", "2", "--seed", "5") == 0
    other_two = tmp_path / "other2.tsv"
    assert (
        cli(
            [
                *scored[:3],
                str(other.with_suffix(".pt")),
                *scored[4:],
                "--shard",
                "2/3",
                "--out",
                str(other_two),
            ]
        )
        == 0
    )
    assert "another model" in refused(one, other_two, three)
    # the model file replaced while a shard loaded it: the shard would name a model it did not use
    import scregnet.grn.trained as grn_trained

    def load_then_replace(path: Path) -> Any:
        trained = real_load(path)
        model.write_bytes(other.with_suffix(".pt").read_bytes())
        return trained

    real_load, kept = grn_trained.load, model.read_bytes()
    replaced = tmp_path / "replaced.tsv"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(grn_trained, "load", load_then_replace)
        assert cli([*scored, "--shard", "2/3", "--out", str(replaced)]) == 1
    assert "the model file changed while it was read" in capsys.readouterr().err
    assert not replaced.exists()
    model.write_bytes(kept)
    # a shard is unranked: its attention comes from the merge
    assert cli([*scored, "--shard", "1/3", "--out", str(one), "--attention-out", str(copy)]) == 1
    assert "written by `scregnet grn merge`" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        cli([*scored, "--shard", "4/3", "--out", str(tmp_path / "x.tsv")])
    assert usage.value.code == 2
    assert "1 <= K <= N" in capsys.readouterr().err


def test_score_refuses_views_the_model_was_not_trained_on(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(world, tmp_path / "e.tsv") == 0
    out = tmp_path / "x.tsv"
    scored = ["grn", "score", "--model", str(tmp_path / "e.pt"), "--out", str(out), *SCORE]
    assert cli([*scored, *_rna(world["paths"][:1])]) == 1
    assert "trained on v1, v2" in capsys.readouterr().err
    fewer = tmp_path / "fewer.h5ad"
    a = ad.read_h5ad(world["paths"][0])
    a[:, a.var_names[1:]].copy().write_h5ad(fewer)
    assert cli([*scored, "--rna", str(fewer), *_rna(world["paths"][1:])]) == 1
    assert "score the files it was trained on" in capsys.readouterr().err
    assert not out.exists()
    not_a_model = tmp_path / "not.pt"
    not_a_model.write_text("text")
    assert cli([*scored[:3], str(not_a_model), *scored[4:], *_rna(world["paths"])]) == 1
    assert "not.pt" in capsys.readouterr().err


def test_score_reads_the_layer_training_read(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model trained on the imputed files' default layer scores that layer: the same files
    without it are refused instead of scored from X; files read from different layers are
    refused at training."""
    from scregnet import keys

    imputed = []
    for path in world["paths"]:
        a = ad.read_h5ad(path)
        x = a.X.toarray() if sp.issparse(a.X) else np.asarray(a.X)
        a.layers[keys.IMPUTED_EXPECTED] = np.log1p(x).astype(np.float32)
        imputed.append(tmp_path / f"imputed_{path.name}")
        a.write_h5ad(imputed[-1])
    model = tmp_path / "m.pt"
    train = ["grn", "train", "--labels", str(world["edge_path"]), *FAST]
    assert cli([*train, *_rna(imputed), "--out", str(model)]) == 0
    out = tmp_path / "e.tsv"
    scored = ["grn", "score", "--model", str(model), "--out", str(out), *SCORE]
    assert cli([*scored, *_rna(imputed)]) == 0
    assert cli([*scored, *_rna(world["paths"])]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "has no layer 'imputed_expected'" in err and str(world["paths"][0]) in err
    mixed = [imputed[0], *world["paths"][1:]]
    refused = tmp_path / "mixed.pt"
    assert cli([*train, *_rna(mixed), "--out", str(refused)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "read from layer 'X'" in err and "--layer" in err and str(world["paths"][1]) in err
    assert not refused.exists()


def test_prior_labels_end_to_end(world: dict[str, Any], tmp_path: Path) -> None:
    """--prior + --gtf: binding near a TSS becomes a positive label; the window matters."""
    genes = world["genes"]
    gtf = tmp_path / "genes.gtf"
    lines = [
        f'chr1\tsim\tgene\t{10_000 * i + 1}\t{10_000 * i + 500}\t.\t+\t.\tgene_id "ID{i}"; gene_name "{g}";'
        for i, g in enumerate(genes)
    ]
    gtf.write_text("\n".join(lines) + "\n")
    true = {(t, g) for t, g in world["edges"]}
    tfs = world["tfs"]
    starts = [10_000 * i + 2_000 for i in range(len(genes))]  # 2 kb downstream of each TSS
    binding = np.zeros((len(genes), len(tfs)), dtype=np.float32)
    for j, t in enumerate(tfs):
        for i, g in enumerate(genes):
            binding[i, j] = 0.9 if (t, g) in true else 0.05
    cells = ad.AnnData(np.zeros((3, len(tfs)), dtype=np.float32), var=pd.DataFrame(index=tfs))
    cells.uns["tfbind"] = {
        "peaks": pd.DataFrame({"chrom": "chr1", "start": starts, "end": [s + 200 for s in starts]}),
        "binding": binding[None],
    }
    prior = tmp_path / "s.tfbind.h5ad"
    cells.write_h5ad(prior)
    out = tmp_path / "p.tsv"
    model = tmp_path / "p.pt"
    argv = ["grn", "train", *_rna(world["paths"]), "--prior", str(prior), "--gtf", str(gtf)]
    argv += ["--out", str(model), *FAST]
    assert cli(argv) == 0
    scored = ["grn", "score", "--model", str(model), *_rna(world["paths"]), *SCORE]
    # the published score combines the binding: the model needs its priors back
    assert cli([*scored, "--out", str(out)]) == 1
    with_prior = [*scored, "--prior", str(prior), "--gtf", str(gtf)]
    assert cli([*with_prior, "--out", str(out)]) == 0
    # the rank mean is taken over every pair: shards carry the binding, the merge combines
    shards = [tmp_path / f"p{k}.tsv" for k in (1, 2)]
    for k, shard in enumerate(shards, 1):
        assert cli([*with_prior, "--shard", f"{k}/2", "--out", str(shard)]) == 0
    merged = tmp_path / "merged.tsv"
    assert cli(["grn", "merge", "--shards", *map(str, shards), "--out", str(merged)]) == 0
    assert merged.read_bytes() == out.read_bytes()
    edges = pd.read_csv(out, sep="\t")
    assert set(edges.tf) == {t for t, _ in true}  # TFs with a bound TSS
    # the published score is the rank mean of co-expression and binding, both kept as columns
    recomputed = rank_mean(edges.expression_score.to_numpy(), edges.binding_prior.to_numpy())
    # (the TSV's 6 significant digits can merge near-tied expression scores: a rank step at most)
    np.testing.assert_allclose(edges.score, recomputed, atol=1.01 / len(edges))
    is_true = np.array([(t, g) in true for t, g in zip(edges.tf, edges.target, strict=True)])
    np.testing.assert_allclose(edges.binding_prior[is_true], 0.9)
    assert auprc(is_true, edges.score) > auprc(is_true, edges.expression_score)
    narrow = tmp_path / "n.pt"
    argv[argv.index(str(model))] = str(narrow)
    assert cli([*argv, "--prior-window", "1000"]) == 1  # 2.1 kb away: nothing within 1 kb
    assert not narrow.exists()
    assert cli([*argv, "--prior-threshold", "0.95"]) == 1
    no_gtf = [a for a in argv if a not in ("--gtf", str(gtf))]
    assert cli(no_gtf) == 1


def _heldout_split(tmp_path: Path) -> tuple[Any, Any, Any]:
    """Synthetic two-view data (10 TFs, 30 targets, 150 cells) and a TF-aware split: the
    even-numbered TFs' pairs train, the odd-numbered TFs' pairs are held out."""
    from grn_synth import synth_grn

    from scregnet.grn.data import ExpressionViews, PairLabels, _log_expression

    _, genes, counts, edges = synth_grn(n_tfs=10, n_targets=30, n_cells=150, seed=0)
    data = ExpressionViews(
        genes, list(counts), [_log_expression(c, tmp_path) for c in counts.values()]
    )
    index = {g: i for i, g in enumerate(genes)}
    true = {(index[a], index[b]) for a, b in edges}

    def pairs(tf_ids: list[int]) -> PairLabels:
        p = [(a, b) for a in tf_ids for b in range(len(genes)) if a != b]
        return PairLabels(
            np.array([x[0] for x in p]),
            np.array([x[1] for x in p]),
            np.array([x in true for x in p], dtype=np.int8),
        )

    train, test = pairs(list(range(0, 10, 2))), pairs(list(range(1, 10, 2)))
    return data, train, test


@pytest.mark.slow
def test_heldout_tf_accuracy_beats_chance_and_multiview(tmp_path: Path) -> None:
    """Trained on half of the TFs, the held-out TFs' targets are ranked far above chance, and
    two views beat one alone."""

    from scregnet.grn.images import ImageBuilder
    from scregnet.grn.model import GRNConfig
    from scregnet.grn.train import TrainConfig, fit, predict_pairs
    from scregnet.seed import seed_everything
    from scregnet.stats import auprc_ratio, early_precision_ratio

    data, train, test = _heldout_split(tmp_path)
    ratios = {}
    for name, views in [("multi", ["v1", "v2"]), ("v1", ["v1"])]:
        rng = seed_everything(0)
        builder = ImageBuilder(data.subset_views(views), n_neighbours=5)
        model = fit(
            builder,
            train,
            model_config=GRNConfig(),
            config=TrainConfig(epochs=6, val_fraction=0),
            rng=rng,
        ).model
        scores = predict_pairs(model, builder, test)
        ratios[name] = (
            auprc_ratio(test.label, scores),
            early_precision_ratio(test.label, scores),
        )
    print(json.dumps(ratios))
    assert ratios["multi"][0] > 4.0 and ratios["multi"][1] > 4.0  # chance = 1
    assert ratios["multi"][0] > ratios["v1"][0]


def test_pair_features_beat_spearman_on_heldout_tfs(tmp_path: Path) -> None:
    """Our extension: with the pair features (pooled Spearman + metacell correlation) the model
    ranks held-out TFs' targets better than |Spearman| on the same pairs, on both BEELINE metrics,
    and better than the published architecture without them."""

    from scregnet.grn.images import ImageBuilder
    from scregnet.grn.model import GRNConfig
    from scregnet.grn.train import TrainConfig, fit, predict_pairs
    from scregnet.seed import seed_everything
    from scregnet.stats import abs_spearman, auprc_ratio, early_precision_ratio

    data, train, test = _heldout_split(tmp_path)
    rho = abs_spearman(data.pooled(), list(range(10)))[test.tf, test.target]
    ratios = {"spearman": (auprc_ratio(test.label, rho), early_precision_ratio(test.label, rho))}
    for name, n_pair in [("pair", 4), ("plain", 0)]:
        rng = seed_everything(0)
        config = GRNConfig(n_pair_features=n_pair, cells_per_metacell=25)
        builder = ImageBuilder(data, cells_per_metacell=25)
        model = fit(
            builder,
            train,
            model_config=config,
            config=TrainConfig(epochs=6, val_fraction=0),
            rng=rng,
        ).model
        scores = predict_pairs(model, builder, test)
        ratios[name] = (auprc_ratio(test.label, scores), early_precision_ratio(test.label, scores))
    print(json.dumps(ratios))
    assert ratios["pair"][0] > ratios["spearman"][0] and ratios["pair"][1] > ratios["spearman"][1]
    assert ratios["pair"][0] > ratios["plain"][0] and ratios["pair"][1] > ratios["plain"][1]


def test_scorer_reads_results(world: dict[str, Any], tmp_path: Path) -> None:
    from scregnet.evaluate.score_grn import score

    truth = tmp_path / "truth"
    truth.mkdir()
    pd.read_csv(world["edge_path"], sep="\t").assign(sign=1).to_csv(
        truth / "grn_edges.tsv", sep="\t", index=False
    )
    results = tmp_path / "results"
    assert score(truth, results) is None
    (results / "grn").mkdir(parents=True)
    true = sorted(world["edges"])
    rows = [(t, g, 1.0) for t, g in true] + [("TF0", f"X{i}", 0.5) for i in range(3 * len(true))]
    pd.DataFrame(rows, columns=["tf", "target", "score"]).to_csv(
        results / "grn" / "grn_edges.tsv", sep="\t", index=False
    )
    result = score(truth, results)
    assert result is not None
    assert result["auroc"] == pytest.approx(1.0)
    assert result["auprc_ratio"] == pytest.approx(4.0)  # density 1/4, perfect ranking
    assert result["epr"] == pytest.approx(4.0)
    assert result["n_true_edges_scored"] == len(true)


def test_scorer_spearman_baseline_matches_scipy(tmp_path: Path) -> None:
    """The |Spearman| baseline of the scorer equals scipy's on the pooled log-normalised counts."""
    import anndata as ad
    from scipy.stats import spearmanr

    from scregnet.evaluate.score_grn import _spearman_baseline

    rng = np.random.default_rng(3)
    genes = [f"G{i}" for i in range(7)]
    (tmp_path / "samples").mkdir()
    pooled = []
    for name, n in (("s1", 40), ("s2", 30)):
        counts = rng.poisson(3.0, (n, len(genes))).astype(np.float32)
        counts[:, 1] += 2 * counts[:, 0]  # one co-varying pair
        a = ad.AnnData(counts)
        a.var_names = genes
        a.write_h5ad(tmp_path / "samples" / f"{name}.rna.h5ad")
        pooled.append(np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4))
    x = np.concatenate(pooled)
    edges = pd.DataFrame(
        {"tf": ["G0", "G0", "G3", "G3", "G9"], "target": ["G1", "G2", "G0", "G6", "G1"]}
    )
    got = _spearman_baseline(tmp_path, edges)
    assert got is not None
    want = [
        abs(spearmanr(x[:, int(t[1])], x[:, int(g[1])])[0])
        for t, g in zip(edges.tf[:4], edges.target[:4], strict=True)
    ]
    np.testing.assert_allclose(got[:4], want, rtol=1e-9)
    assert got[4] == 0.0  # a TF absent from the expression scores 0
    assert got[0] > 0.5


def test_scorer_baselines_with_the_binding_evidence(tmp_path: Path) -> None:
    """With a ``binding_prior`` column the scorer also reports the binding prior alone and the rank
    mean of |Spearman| with it; both equal scikit-learn / scipy / pandas computed here."""
    from scipy.stats import spearmanr
    from sklearn.metrics import average_precision_score

    from scregnet.evaluate.score_grn import score

    rng = np.random.default_rng(5)
    genes = [f"G{i}" for i in range(12)]
    (tmp_path / "samples").mkdir()
    counts = rng.poisson(3.0, (80, len(genes))).astype(np.float32)
    counts[:, 4:8] += counts[:, [0]]  # G0 co-varies with G4..G7
    a = ad.AnnData(counts)
    a.var_names = genes
    a.write_h5ad(tmp_path / "samples" / "s1.rna.h5ad")
    x = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)
    tfs, targets = ["G0", "G1", "G2"], genes[3:]
    pairs = pd.DataFrame([(t, g) for t in tfs for g in targets], columns=["tf", "target"])
    binding = rng.uniform(0, 1, len(pairs))
    binding[pairs.tf.to_numpy() == "G2"] = np.nan  # a TF scored without binding evidence
    truth = tmp_path / "truth"
    truth.mkdir()
    true = {("G0", "G4"), ("G0", "G5"), ("G1", "G9"), ("G2", "G6"), ("G0", "G10")}
    pd.DataFrame(sorted(true), columns=["tf", "target"]).to_csv(
        truth / "grn_edges.tsv", sep="\t", index=False
    )
    (tmp_path / "results" / "grn").mkdir(parents=True)
    edges = pairs.assign(score=rng.uniform(0, 1, len(pairs)), binding_prior=binding)
    edges.to_csv(tmp_path / "results" / "grn" / "grn_edges.tsv", sep="\t", index=False)
    result = score(truth, tmp_path / "results")
    assert result is not None

    y = np.array([(t, g) in true for t, g in zip(pairs.tf, pairs.target, strict=True)])
    rho = np.array(
        [
            abs(spearmanr(x[:, genes.index(t)], x[:, genes.index(g)])[0])
            for t, g in zip(pairs.tf, pairs.target, strict=True)
        ]
    )
    known = ~np.isnan(binding)
    mean_rank = rho.argsort().argsort() + 1.0
    mean_rank /= len(rho)  # no ties among the continuous |Spearman| values
    b_rank = pd.Series(binding[known]).rank(pct=True).to_numpy()
    mean_rank[known] = (mean_rank[known] + b_rank) / 2
    alone = np.where(known, binding, -1.0)
    for key, s in (("binding_prior_baseline", alone), ("spearman_binding_baseline", mean_rank)):
        top = np.argsort(-s)[: len(true)]
        assert result[key]["auprc_ratio"] == pytest.approx(
            average_precision_score(y, s) / y.mean()
        ), key
        assert result[key]["epr"] == pytest.approx(y[top].mean() / y.mean()), key
    # the pipeline's own score is scored separately and differs from both baselines here
    assert result["auprc_ratio"] == pytest.approx(
        average_precision_score(y, edges.score) / y.mean()
    )
    edges.drop(columns="binding_prior").to_csv(
        tmp_path / "results" / "grn" / "grn_edges.tsv", sep="\t", index=False
    )
    result = score(truth, tmp_path / "results")
    assert result is not None
    assert "binding_prior_baseline" not in result and "spearman_binding_baseline" not in result


def test_no_network_scores_the_chosen_read_out_alone(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--no-network`` trains no network: the published score is the read-out the held-out
    selection chooses, the same scores the full model gives when it keeps its gate at 0, with
    uniform view weights, and the edges say so."""
    selection = ["--val-fraction", "0.25", "--seed", "2", "--epochs", "2"]
    full, alone = tmp_path / "full.tsv", tmp_path / "alone.tsv"
    assert _run(world, full, *selection) == 0
    assert _run(world, alone, *selection, "--no-network") == 0
    with_net = pd.read_csv(full, sep="\t").set_index(["tf", "target"]).sort_index()
    without = pd.read_csv(alone, sep="\t").set_index(["tf", "target"]).sort_index()
    assert with_net.method.iloc[0].endswith("(network gate 0)")
    assert without.method.iloc[0] == with_net.method.iloc[0].replace(
        "(network gate 0)", "(read-out alone, network not trained)"
    )
    np.testing.assert_allclose(without.score, with_net.score, rtol=1e-6)
    # no view enters either score: the weights are uniform in both
    np.testing.assert_array_equal(without[["attention_v1", "attention_v2"]], 0.5)
    np.testing.assert_array_equal(with_net[["attention_v1", "attention_v2"]], 0.5)
    capsys.readouterr()
    # no read-out to choose: without pair features, without a validation fraction, or with one
    # labelled TF; one line, exit 1, nothing written
    one_tf = tmp_path / "one_tf.tsv"
    pd.read_csv(world["edge_path"], sep="\t").query("tf == 'TF0'").to_csv(
        one_tf, sep="\t", index=False
    )
    for extra, labels in (
        (["--no-pair-features"], None),
        (["--val-fraction", "0"], None),
        ([], one_tf),
    ):
        out = tmp_path / "bad.tsv"
        assert _run(world, out, *selection, "--no-network", *extra, labels=labels) == 1
        assert not out.exists()
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert "the read-out alone (no network) is chosen on held-out training TFs" in last


def test_neighbours_beyond_the_other_genes_use_every_other_gene(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The documented minimum of 5 genes with the default ``--neighbours 5``, and ``--neighbours``
    above the genes: the network is built for the neighbour images the builder makes (every
    other gene, with a warning), trains and scores."""
    from scregnet.grn.trained import load

    small = write_world(tmp_path / "w", n_tfs=2, n_targets=3, n_cells=60, seed=1)
    assert len(small["genes"]) == 5
    for flags, name in (((), "default"), (("--neighbours", "50"), "fifty")):
        out = tmp_path / f"{name}.tsv"
        assert _run(small, out, *flags) == 0
        assert "only 4 other genes per gene; using 4 neighbour images" in capsys.readouterr().err
        assert load(out.with_suffix(".pt")).model.config.n_neighbours == 4
        edges = pd.read_csv(out, sep="\t")
        assert len(edges) == 2 * 4 and edges.score.notna().all()


def test_one_small_input_and_no_positive_label_name_their_file(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One ``--rna`` with too few genes shares nothing with anything: its own gene count is the
    cause. Labels that are all 0 had no positive before any matching."""
    out = tmp_path / "m.pt"
    small = tmp_path / "small.h5ad"
    ad.AnnData(
        sp.csr_matrix(np.arange(1, 121, dtype=np.float32).reshape(60, 2)),
        var=pd.DataFrame(index=["TF0", "G0"]),
    ).write_h5ad(small)
    argv = ["grn", "train", "--out", str(out), *FAST]
    assert cli([*argv, "--rna", str(small), "--labels", str(world["edge_path"])]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(f"{small}: only 2 gene(s); need at least 5") and "share" not in err[-1]
    zeros = tmp_path / "zeros.tsv"
    pd.read_csv(world["edge_path"], sep="\t").assign(label=0).to_csv(zeros, sep="\t", index=False)
    assert cli([*argv, *_rna(world["paths"]), "--labels", str(zeros)]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{zeros}: no positive label" in line and "after matching" not in line
    assert not out.exists()


def test_score_warns_of_tfs_with_the_same_expression_in_every_cell(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A TF with the same expression in every cell (none, or a constant) is still scored (ranked
    by what the read-out knows without it), and the log says its pairs carry no expression
    evidence."""
    model = tmp_path / "m.pt"
    train = ["grn", "train", *_rna(world["paths"]), "--labels", str(world["edge_path"])]
    assert cli([*train, "--out", str(model), *FAST]) == 0
    out = tmp_path / "e.tsv"
    score = ["grn", "score", "--model", str(model), "--out", str(out), *SCORE]
    capsys.readouterr()
    assert cli([*score, *_rna(world["paths"])]) == 0
    assert "same expression in every cell" not in capsys.readouterr().err
    for level in (0.0, 0.7):  # none, or a constant log-normalised value
        flat = []
        for path in world["paths"]:
            a = ad.read_h5ad(path)
            x = a.X.toarray() if sp.issparse(a.X) else np.asarray(a.X, dtype=np.float32)
            x = np.log1p(x / np.maximum(x.sum(axis=1, keepdims=True), 1) * 1e4)
            x[:, list(a.var_names).index("TF1")] = level
            a.X = sp.csr_matrix(x)
            flat.append(tmp_path / f"{level}_{path.name}")
            a.write_h5ad(flat[-1])
        assert cli([*score, *_rna(flat)]) == 0
        err = capsys.readouterr().err
        assert (
            "1 TF(s) to score have the same expression in every cell (most often none): TF1; "
            in err
        )
        assert "TF1" in set(pd.read_csv(out, sep="\t").tf)


def test_scoring_out_of_device_memory_halves_the_batch(
    world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scoring batch that runs out of device memory is retried smaller: the same edges."""
    import torch

    from scregnet.grn import train as grn_train

    model, whole, halved = tmp_path / "m.pt", tmp_path / "whole.tsv", tmp_path / "halved.tsv"
    train = ["grn", "train", *_rna(world["paths"]), "--labels", str(world["edge_path"])]
    assert cli([*train, "--out", str(model), *FAST]) == 0
    score = ["grn", "score", "--model", str(model), *_rna(world["paths"]), *SCORE]
    assert cli([*score, "--out", str(whole)]) == 0
    sizes: list[int] = []

    def small_only(real):  # type: ignore[no-untyped-def]
        def call(model, builder, a, b, *args, **kwargs):  # type: ignore[no-untyped-def]
            sizes.append(int(a.shape[0]))
            if a.shape[0] > 3:
                raise torch.OutOfMemoryError("CUDA out of memory")
            return real(model, builder, a, b, *args, **kwargs)

        return call

    for name in ("forward_pairs", "readout_logit"):
        monkeypatch.setattr(grn_train, name, small_only(getattr(grn_train, name)))
    assert cli([*score, "--out", str(halved)]) == 0
    assert max(sizes) > 3 and max(sizes[-5:]) <= 3
    a, b = (pd.read_csv(p, sep="\t").sort_values(["tf", "target"]) for p in (whole, halved))
    assert list(a.tf) == list(b.tf) and list(a.target) == list(b.target)
    # the TSV holds 6 decimals: float rounding of another batch size may move the last one
    np.testing.assert_allclose(a.score.to_numpy(), b.score.to_numpy(), rtol=0, atol=1.01e-6)
