"""Unit tests of the TF-binding building blocks: encoding, labels, chromosomes, motifs, chromVAR."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from scregnet.errors import InputError
from scregnet.tfbind.data import (
    bin_labels,
    choose_heldout,
    merge_intervals,
    one_hot,
    read_bulk_sheet,
    reverse_complement,
)
from scregnet.tfbind.model import ModelConfig, ScFAN
from scregnet.tfbind.motifs import (
    Motif,
    MotifScanner,
    chromvar_deviations,
    read_motifs,
    score_threshold,
)
from tfbind_sequences import dinucleotide_shuffle


def test_one_hot_and_reverse_complement() -> None:
    x = one_hot("ACGTN")
    assert x.shape == (4, 5)
    np.testing.assert_array_equal(x.argmax(axis=0)[:4], [0, 1, 2, 3])
    assert x[:, 4].sum() == 0
    rc = reverse_complement(torch.from_numpy(one_hot("AACGT"))[None])
    np.testing.assert_array_equal(rc[0].numpy(), one_hot("ACGTT"))
    # an accessibility channel is reversed, not complemented
    with_acc = torch.cat([torch.from_numpy(one_hot("AC")), torch.tensor([[1.0, 2.0]])])[None]
    np.testing.assert_array_equal(reverse_complement(with_acc)[0, 4].numpy(), [2.0, 1.0])


def test_dinucleotide_shuffle_keeps_dinucleotides_and_changes_order() -> None:
    rng = np.random.default_rng(1)
    seq = "".join(rng.choice(list("ACGT"), 300))
    shuffled = dinucleotide_shuffle(seq, rng)
    assert shuffled != seq
    assert shuffled[0] == seq[0] and shuffled[-1] == seq[-1]
    assert Counter(pairwise(seq)) == Counter(pairwise(shuffled))


def test_bins_are_bound_when_covered_more_than_half() -> None:
    bins = np.array([0, 200, 400, 600])
    # [150, 310) covers 50 bp of bin 0 and 110 bp of bin 1; [600, 700) exactly half of bin 3
    labels = bin_labels(np.array([150, 600]), np.array([310, 700]), bins, 200)
    np.testing.assert_array_equal(labels, [False, True, False, False])
    # overlapping peaks are merged before counting
    s, e = merge_intervals(np.array([10, 0, 50]), np.array([60, 20, 120]))
    np.testing.assert_array_equal(s, [0])
    np.testing.assert_array_equal(e, [120])
    assert bin_labels(np.array([0, 50]), np.array([60, 120]), np.array([0]), 200).tolist() == [True]


def test_heldout_chromosomes(tmp_path: Path) -> None:
    human = [f"chr{i}" for i in range(1, 23)]
    assert choose_heldout(human, test=None, val=None, fasta="g.fa") == (
        ["chr1", "chr8", "chr21"],
        ["chr11"],
    )
    sim = [f"chr{i}" for i in range(1, 9)]
    test, val = choose_heldout(sim, test=None, val=None, fasta="g.fa")
    assert val == ["chr8"] and test == ["chr6", "chr7"]
    assert choose_heldout(sim, test=["chr2"], val=["chr3"], fasta="g.fa") == (["chr2"], ["chr3"])
    with pytest.raises(
        InputError, match=r"g\.fa: held-out test chromosome\(s\) chr21 are not in the genome"
    ):
        choose_heldout(sim, test=["chr21"], val=None, fasta="g.fa")
    with pytest.raises(InputError, match="both test and validation"):
        choose_heldout(sim, test=["chr2"], val=["chr2"], fasta="g.fa")


def test_bulk_sheet_errors(tmp_path: Path) -> None:
    (tmp_path / "a.bed").write_text("chr1\t0\t10\n")
    (tmp_path / "a.bw").write_bytes(b"")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("tf,chip_bed,accessibility_bw,cell_type\nCTCF,a.bed,,B\n")
    with pytest.raises(InputError, match="TF CTCF in B has a ChIP BED but no accessibility track"):
        read_bulk_sheet(sheet)
    sheet.write_text("tf,chip_bed,accessibility_bw,cell_type\nCTCF,a.bed,missing.bw,B\n")
    with pytest.raises(InputError, match=r"accessibility track .*missing\.bw does not exist"):
        read_bulk_sheet(sheet)
    sheet.write_text("tf,chip_bed,cell_type\nCTCF,a.bed,B\n")
    with pytest.raises(InputError, match="lacks column"):
        read_bulk_sheet(sheet)
    sheet.write_text(
        "tf,chip_bed,accessibility_bw,cell_type\nCTCF,a.bed,a.bw,B\nNRF1,a.bed,a.bw,B\n"
    )
    tracks = read_bulk_sheet(sheet)
    assert len(tracks) == 1 and list(tracks[0].chip) == ["CTCF", "NRF1"]


def test_read_motifs_both_formats(tmp_path: Path, testdata: Path) -> None:
    jaspar = tmp_path / "m.jaspar"
    jaspar.write_text(">MA0001.1 FOO\nA [ 10 0 0 ]\nC [ 0 10 0 ]\nG [ 0 0 10 ]\nT [ 0 0 0 ]\n")
    (m,) = read_motifs(jaspar)
    assert (m.motif_id, m.name, m.counts.shape) == ("MA0001.1", "FOO", (4, 3))
    np.testing.assert_array_equal(m.counts.argmax(axis=0), [0, 1, 2])
    motifs = read_motifs(testdata / "motifs" / "JASPAR2022_vertebrates.pfm")
    by_name = {x.name.upper(): x for x in motifs}
    ctcf = by_name["CTCF"]
    assert ctcf.counts.shape[0] == 4 and ctcf.counts.shape[1] >= 15
    # CTCF's core: ...CCAsyAGrkGGCr...
    assert "CCA" in "".join("ACGT"[i] for i in ctcf.counts.argmax(axis=0))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (">M1 A\n>M2 B\n1 2 3 4\n", "motif 'M1 A' has no matrix rows"),
        (">M1\n1 2 3\n1 2\n1 2 3\n1 2 3\n", "motif 'M1' has rows of different lengths"),
        (">M1\n1 2 3\n1 2 3\n1 2 3\n", "motif 'M1' is neither 4 rows"),
        (">M1\n1 2 3 -4\n", "motif 'M1' has negative counts or an empty column"),
        ("1 2 3 4\n", "motif file must start with a '>' header line"),
        ("# nothing\n", "motif file has no motifs"),
        (">M1 X\nA [ nan 2 ]\nC [ 1 2 ]\n", "line 2: 'nan' in motif 'M1 X' is not a number"),
        (">M1\n1 2 3 4\n2x81 1 1 1\n", "line 3: '2x81' in motif 'M1' is not a number"),
    ],
)
def test_read_motifs_names_the_file_and_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "m.pfm"
    path.write_text(text)
    with pytest.raises(InputError, match=r"m\.pfm: " + problem):
        read_motifs(path)


def test_score_threshold_matches_sampled_p_value() -> None:
    rng = np.random.default_rng(0)
    motif = Motif("M", "M", rng.integers(0, 20, (4, 6)).astype(float) + 1)
    lo = motif.log_odds()
    threshold = score_threshold(lo, p_value=0.01)
    kmers = rng.integers(0, 4, (200_000, 6))
    scores = lo[kmers, np.arange(6)].sum(axis=1)
    assert 0.005 < (scores >= threshold - 0.005).mean() < 0.02


def test_scanner_finds_motif_on_both_strands() -> None:
    motif = Motif(
        "M", "GATA", np.array([[1, 1, 1, 20], [20, 1, 1, 1], [1, 1, 20, 1], [20, 1, 1, 1]]).T
    )
    # consensus TAGA (per column argmax: T, A, G, A)
    scanner = MotifScanner([motif], p_value=1e-2)
    seqs = ["CCCCTAGACCCC", "CCCCTCTACCCC", "CCCCCCCCCCCC"]  # forward, reverse complement, absent
    onehot = np.stack([one_hot(s) for s in seqs])
    scores = scanner.max_scores(onehot, np.array([12, 12, 12]))[:, 0]
    assert scores[0] == pytest.approx(scores[1]) and scores[0] > scores[2]
    assert scanner.likelihood_ratio(scores[:, None])[0, 0] == pytest.approx(1.0)  # the consensus
    # a motif that runs past a sequence's true length is not counted
    short = scanner.max_scores(onehot[:1], np.array([6]))[0, 0]
    assert short < scores[0]


def test_chromvar_deviations_rank_enriched_cells() -> None:
    rng = np.random.default_rng(0)
    n_cells, n_peaks = 60, 200
    match = np.zeros((n_peaks, 2), dtype=bool)
    match[:40, 0] = True
    match[40:80, 1] = True
    rate = np.ones((n_cells, n_peaks))
    rate[:30, :40] = 4.0  # first half of the cells: motif-0 peaks open
    rate[30:, 80:120] = 4.0  # second half: as many motif-less peaks open (same mean accessibility)
    counts = sp.csr_matrix(rng.poisson(rate))
    gc = rng.uniform(0.3, 0.7, n_peaks)
    _, z = chromvar_deviations(counts, match, gc, n_iterations=20, rng=rng)
    assert z.shape == (n_cells, 2)
    assert z[:30, 0].mean() > 1 and z[30:, 0].mean() < -1
    assert abs(z[:, 1].mean()) < 1.5


def test_model_shapes_and_config() -> None:
    model = ScFAN(ModelConfig(n_tfs=3, window=1000))
    assert [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv1d)] == [
        160,
        240,
        240,
    ]
    assert model.head[1].out_features == 919
    out = model.eval()(torch.zeros(2, 5, 1000))
    assert out.shape == (2, 3)
    seq_only = ScFAN(ModelConfig(n_tfs=1, window=200, use_accessibility=False, filters=(8, 8, 8)))
    assert seq_only(torch.zeros(1, 4, 200)).shape == (1, 1)
    with pytest.raises(ValueError, match="too short"):
        ScFAN(ModelConfig(n_tfs=1, window=30, filters=(8, 8, 8)))


def test_short_motif_threshold_falls_back_to_best_kmers() -> None:
    motif = Motif(
        "M", "SHORT", np.array([[1, 1, 1, 20], [20, 1, 1, 1], [1, 1, 20, 1], [20, 1, 1, 1]]).T
    )
    lo = motif.log_odds()
    # 4 bp: no k-mer is as rare as 5e-5 under a uniform background, so only the consensus matches
    threshold = score_threshold(lo, p_value=5e-5)
    best = lo.max(axis=0).sum()
    assert best - 0.05 < threshold <= best


def test_motif_filters_hold_the_log_odds_on_both_strands() -> None:
    model = ScFAN(ModelConfig(n_tfs=2, window=200, filters=(6, 4, 4), hidden=8))
    long_lo = torch.randn(4, 12)
    long_lo[:, 3:11] += 5.0  # the informative stretch is columns 3..10
    short_lo = torch.randn(4, 5)
    used = model.init_motif_filters([long_lo, short_lo, torch.randn(4, 9), torch.randn(4, 9)])
    assert used == [0, 1, 2, 3, 4, 5]  # 6 filters hold 3 motifs; the 4th does not fit
    w = model.features[0].weight.detach()
    torch.testing.assert_close(w[0, :4], long_lo[:, 3:11])
    torch.testing.assert_close(w[1, :4], long_lo[:, 3:11].flip(dims=(0, 1)))  # reverse complement
    torch.testing.assert_close(w[2, :4, 1:6], short_lo)  # centred, zero padded
    assert float(w[2, :4, 0].abs().sum()) == 0.0 and float(w[:6, 4].abs().sum()) == 0.0
    assert torch.all(model.features[1].bias.detach()[:6] == -2.0)
    # a forward filter responds most to its own motif's consensus, the reverse one to its complement
    consensus = "".join("ACGT"[i] for i in long_lo[:, 3:11].argmax(dim=0))
    x = torch.from_numpy(one_hot("A" * 50 + consensus + "A" * 142))[None]
    x = torch.cat([x, torch.zeros(1, 1, 200)], dim=1)
    out = torch.nn.functional.conv1d(x, model.features[0].weight)
    assert int(out[0, 0].argmax()) == 50
    rc = reverse_complement(x)
    assert int(torch.nn.functional.conv1d(rc, model.features[0].weight)[0, 1].argmax()) == 200 - 58


def test_calibration_undoes_sampling_and_class_weights() -> None:
    from scregnet.tfbind.train import fit_calibration

    rng = np.random.default_rng(0)
    # true model: P(y=1 | z) = sigmoid(2 z - 4); the network's logit is z + 3 (overconfident)
    z = rng.normal(size=200_000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-(2 * z - 4)))).astype(np.int8)
    # keep every positive and 10 % of the negatives, with weight 10
    keep = (y == 1) | (rng.random(z.size) < 0.1)
    w = np.where(y[keep] == 1, 1.0, 10.0)
    logits = (z[keep] + 3)[:, None]
    labels = np.column_stack([y[keep], np.full(keep.sum(), -1)])  # second TF: never assayed
    scale, bias = fit_calibration(
        np.column_stack([logits, logits]), labels, w, ["A", "B"], min_positives=5
    )
    assert scale[0] == pytest.approx(2.0, rel=0.05)
    assert bias[0] == pytest.approx(-4.0 - 2.0 * 3, rel=0.05)
    assert (scale[1], bias[1]) == (1.0, 0.0)
    # unweighted, the fit would reproduce the sample's balance instead (a higher intercept)
    _, biased = fit_calibration(logits, labels[:, :1], np.ones(keep.sum()), ["A"])
    assert biased[0] > bias[0] + 2.0


def test_calibration_slope_is_never_negative() -> None:
    """Logits that rank the held-out windows backwards get slope 0 and the weighted base rate:
    the constrained maximum likelihood, a constant probability (not the raw sigmoid)."""
    from scregnet.tfbind.model import base_rate_tfs
    from scregnet.tfbind.train import fit_calibration

    rng = np.random.default_rng(1)
    z = rng.normal(size=20_000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-(1.5 * z - 3)))).astype(np.int8)
    w = np.where(y == 1, 1.0, 4.0)
    logits = np.column_stack([z, -z])
    labels = np.column_stack([y, y])
    scale, bias = fit_calibration(logits, labels, w, ["UP", "DOWN"])
    assert scale[0] == pytest.approx(1.5, rel=0.1)
    assert scale[1] == 0.0
    rate = (w * y).sum() / w.sum()
    assert 1 / (1 + np.exp(-float(bias[1]))) == pytest.approx(rate, rel=1e-4)
    assert base_rate_tfs(["UP", "DOWN"], scale) == ["DOWN"]


def test_pwm_likelihood_ratio() -> None:
    counts = np.array([[9, 0, 0], [0, 9, 0], [0, 0, 9], [1, 1, 1]], dtype=float)
    scanner = MotifScanner([Motif("M1", "X", counts)])
    best = scanner.max_score[0]
    scores = np.array([[best], [best - 1.0], [best - 3.0], [-np.inf]])
    np.testing.assert_allclose(scanner.likelihood_ratio(scores)[:, 0], [1.0, 0.5, 0.125, 0.0])


def test_motif_auc_and_top_matches() -> None:
    from scregnet.tfbind.context import motif_auc, tf_context, top_matches

    rng = np.random.default_rng(0)
    scores = rng.normal(size=(400, 2))
    scores[:20, 0] += 10.0  # 20 strong matches of motif 0
    match = top_matches(scores, top=0.05)
    assert match.sum(axis=0).tolist() == [20, 20] and match[:20, 0].all()
    # sample 0: motif-0 regions are the most accessible; sample 1: the least; sample 2: no signal
    access = rng.gamma(2.0, 1.0, size=(3, 400))
    access[0, :20] += 50.0
    access[1, :20] = 0.0
    access[2] = 1.0
    ctx = motif_auc(access, match)
    assert ctx[0, 0] == pytest.approx(0.5) and ctx[1, 0] < -0.4 and ctx[2].tolist() == [0.0, 0.0]
    assert abs(ctx[0, 1]) < 0.2
    # scale-free: depth and a monotone transform do not change it; sparse input is the same
    np.testing.assert_allclose(motif_auc(np.log1p(access * 7.0), match), ctx)
    np.testing.assert_allclose(motif_auc(sp.csr_matrix(access), match), ctx)
    spread = tf_context(ctx, [2, 0], 3)
    assert spread.shape == (3, 3) and spread[0, 2] == pytest.approx(0.5) and spread[0, 1] == 0.0


def test_motif_tracks_and_context_in_the_model() -> None:
    counts = np.full((4, 8), 1.0)
    consensus = "TGACGTCA"
    for j, b in enumerate(consensus):
        counts["ACGT".index(b), j] = 30.0
    lo = torch.from_numpy(Motif("M", "X", counts).log_odds())
    config = ModelConfig(
        n_tfs=2,
        window=200,
        filters=(4, 4, 4),
        hidden=4,
        n_motifs=1,
        motif_width=8,
        motif_tf=(1,),
        use_context=True,
    )
    assert config.in_channels == 4 + 1 + 2 and config.trunk_channels == 4 + 1 + 1
    model = ScFAN(config).eval()
    model.set_motifs([lo])
    seq = "A" * 96 + consensus + "A" * 96
    dna = torch.from_numpy(one_hot(seq))[None]
    scores = model.motif_scores(dna)
    assert scores.shape == (1, 1, 200) and float(scores.max()) == pytest.approx(0.0, abs=1e-5)
    assert float(scores[0, 0, :80].max()) < -10  # no match in the poly-A flank
    # strand-symmetric: the reverse complement scores the same maximum
    assert float(model.motif_scores(reverse_complement(dna)).max()) == pytest.approx(0.0, abs=1e-5)
    # the motif path and the context term move only their own TF's logit
    x = torch.cat([dna, torch.ones(1, 1, 200), torch.zeros(1, 2, 200)], dim=1)
    with torch.no_grad():
        model.motif_path.fill_(1.0)
        model.context_weight.fill_(1.0)
        base = model(x)
        x_ctx = x.clone()
        x_ctx[:, 6] = 0.2  # context of TF 1
        shifted = model(x_ctx)
    assert float(shifted[0, 1] - base[0, 1]) == pytest.approx(0.2 * ScFAN.CONTEXT_SCALE, rel=1e-4)
    assert float(shifted[0, 0] - base[0, 0]) == pytest.approx(0.0, abs=1e-5)
    torch.testing.assert_close(model.base_logits(x_ctx), model.base_logits(x))
    # base logits need no context channels at all (prediction does not build them)
    torch.testing.assert_close(model.base_logits(x[:, :5]), model.base_logits(x))
    with pytest.raises(ValueError, match="one TF index"):
        ModelConfig(n_tfs=2, n_motifs=1, motif_width=8, motif_tf=(5,))


def test_jaspar_lookup_prefers_the_canonical_vertebrate_profile() -> None:
    from scregnet.tfbind.motifs import jaspar_motifs

    found = jaspar_motifs(["CTCF", "GATA1", "NOT_A_TF"])
    # CTCF also names an insect profile (MA0531) and GATA1 a plant one (MA2388)
    assert {tf: m.motif_id.split(".")[0] for tf, m in found.items()} == {
        "CTCF": "MA0139",
        "GATA1": "MA0035",
    }


def test_cell_mean_binding_uses_each_cells_context() -> None:
    from scregnet.tfbind.predict import mean_binding_probability

    rng = np.random.default_rng(0)
    pooled = sp.random(60, 80, density=0.3, random_state=0, format="csr")
    logit = rng.normal(size=(2, 80, 3))
    mix = np.zeros((60, 2))
    mix[:, 0], mix[30:, 1] = 1.0, 0.5
    mix[30:, 0] = 0.5
    ctx = rng.normal(size=(60, 3)) * 0.1
    u = {"use_context": True, "context_slope": 10.0, "calib_scale": np.ones(3)}
    u["calib_bias"] = np.zeros(3)
    whole = mean_binding_probability(pooled, logit, mix, ctx, u, chunk=1000)
    np.testing.assert_allclose(mean_binding_probability(pooled, logit, mix, ctx, u, chunk=7), whole)
    # by hand for one cell of each kind: mean over its read peaks of the mixed probabilities
    for cell in (3, 40):
        peaks = pooled[cell].indices
        z = logit[:, peaks] + 10.0 * ctx[cell]
        p = (mix[cell][:, None, None] / (1 + np.exp(-z))).sum(axis=0).mean(axis=0)
        np.testing.assert_allclose(whole[cell], p, rtol=1e-5)


def test_bulk_regions_read_gaps_as_zero(tmp_path: Path) -> None:
    from scregnet.io.tracks import write_bigwig
    from scregnet.tfbind.context import bulk_regions

    sizes = {"chr1": 2_000, "chr2": 1_000}
    dense = {"chr1": np.zeros(2_000), "chr2": np.zeros(1_000)}
    dense["chr1"][250:330] = 10.0  # a gapped run: bases 200-250 and 330-400 hold no data
    dense["chr1"][400:600] = 1.0
    dense["chr1"][1_000:1_200] = 8.0
    dense["chr2"][0:50] = 4.0
    runs = []
    for chrom, values in dense.items():
        on = np.flatnonzero(values)  # data only where the signal is non-zero
        cuts = np.flatnonzero(np.diff(on) != 1) + 1
        for block in np.split(on, cuts):
            runs.append((chrom, block[:1], block[-1:] + 1, values[block[:1]]))
    tracks = [
        (c, np.concatenate([r[1] for r in runs if r[0] == c]),
         np.concatenate([r[2] for r in runs if r[0] == c]),
         np.concatenate([r[3] for r in runs if r[0] == c]))
        for c in sizes
    ]  # fmt: skip
    bw = write_bigwig(tmp_path / "bulk.bw", sizes, tracks)
    regions, access = bulk_regions([bw], [1.0], sizes, ["chr1", "chr2"], bin_size=200, fold=1.0)
    # bins [200,400) mean 4.0 and [400,600) mean 1.0 are adjacent: one region; [1000,1200) alone;
    # chr2's [0,200) has mean 1.0 (>= fold)
    assert regions == [("chr1", 200, 600), ("chr1", 1_000, 1_200), ("chr2", 0, 200)]
    expected = [dense[c][a:b].mean() for c, a, b in regions]
    np.testing.assert_allclose(access[0], expected)


def test_scfan_activity_is_the_top2_fraction_over_a_cells_accessible_peaks() -> None:
    from scregnet.tfbind.predict import scfan_activity

    # 2 clusters x 3 peaks x 3 TFs; the top-2 TFs per peak differ between the clusters
    binding = np.array(
        [
            [[0.9, 0.8, 0.1], [0.2, 0.7, 0.6], [0.5, 0.1, 0.4]],  # cluster 0: {0,1}, {1,2}, {0,2}
            [[0.1, 0.2, 0.3], [0.9, 0.1, 0.8], [0.3, 0.6, 0.9]],  # cluster 1: {1,2}, {0,2}, {1,2}
        ]
    )
    counts = sp.csr_matrix(np.array([[2, 1, 0], [0, 0, 3], [1, 1, 1], [0, 0, 0]]))
    cluster = np.array([0, 0, 1, 1])
    got = scfan_activity(counts, binding, cluster)
    expected = np.array(
        [
            [1 / 2, 2 / 2, 1 / 2],  # peaks 0, 1 in cluster 0
            [1, 0, 1],  # peak 2 in cluster 0
            [1 / 3, 2 / 3, 3 / 3],  # every peak in cluster 1
            [0, 0, 0],  # no accessible peak
        ]
    )
    np.testing.assert_allclose(got, expected)
    # every accessible peak contributes exactly two TFs
    np.testing.assert_allclose(got[:3].sum(axis=1), 2.0)
    # TF 2 excluded (a constant probability): the other two are the top 2 of every peak
    without = scfan_activity(counts, binding, cluster, exclude=[2])
    np.testing.assert_allclose(without, [[1, 1, 0], [1, 1, 0], [1, 1, 0], [0, 0, 0]])
    # top 1 among TFs 0 and 1: cluster 0 peaks {0, 1, 0}, cluster 1 peaks {1, 0, 1}
    one = scfan_activity(counts, binding, cluster, top=1, exclude=[2])
    np.testing.assert_allclose(one[:3], [[1 / 2, 1 / 2, 0], [1, 0, 0], [1 / 3, 2 / 3, 0]])


def test_chip_benchmark_helpers() -> None:
    import tfbind_chip as cb
    from scregnet.tfbind.data import one_hot

    # summits closer than the distance to a cluster's first one merge; the strongest is kept
    summits = np.array([100, 150, 400, 190, 1000])
    kept, members = cb.merge_summits(summits, np.array([1.0, 5.0, 2.0, 3.0, 1.0]), 100)
    assert kept.tolist() == [150, 400, 1000]
    assert [sorted(summits[m].tolist()) for m in members] == [[100, 150, 190], [400], [1000]]
    # GC matching: same bin first, then nearest unused candidates; never a candidate twice
    rng = np.random.default_rng(0)
    cand = np.r_[np.full(10, 0.41), np.full(3, 0.61), [0.7]]
    take = cb.matched_negatives(np.array([0.41, 0.61]), cand, ratio=4, rng=rng)
    assert np.unique(take).size == take.size == 8
    assert (cand[take] == 0.41).sum() == 4 and (cand[take] == 0.61).sum() == 3
    assert (cand[take] == 0.7).sum() == 1  # the 0.61 bin was short by one: nearest GC fills it
    # 6-mers collapse with their reverse complements: a sequence and its RC count the same
    seq = "ACGTTGCAAGGCTTAACCGGATCGATTTACG"
    rc = seq[::-1].translate(str.maketrans("ACGT", "TGCA"))
    counts = cb.kmer_counts(np.stack([one_hot(seq), one_hot(rc)]))
    assert counts.shape[1] == 2080 and counts[0].sum() == len(seq) - 5
    np.testing.assert_array_equal(counts[0].toarray(), counts[1].toarray())
    # blocks hold equal numbers of summits
    bounds = cb.block_bounds(3, np.arange(16_100_000, 21_000_000, 1000))
    assert bounds[0] == cb.REAL_SEGMENTS[0][0] and bounds[-1] == cb.REAL_SEGMENTS[-1][1]
    assert np.diff(np.searchsorted(np.arange(16_100_000, 21_000_000, 1000), bounds)).tolist()[
        :2
    ] == [1633, 1634]


def test_read_meme(tmp_path: Path) -> None:
    from scregnet.errors import InputError
    from tfbind_chip import read_meme

    path = tmp_path / "m.meme"
    path.write_text(
        "MEME version 4\n\nALPHABET= ACGT\n\nMOTIF X_f1 XTF\n\n"
        "letter-probability matrix: alength= 4 w= 2 nsites= 10 E= 0\n"
        " 0.7 0.1 0.1 0.1\n 0.0 0.0 1.0 0.0\n\nMOTIF Y_si\n"
        "letter-probability matrix: alength= 4 w= 1 nsites= 0 E= 0\n 0.25 0.25 0.25 0.25\n"
    )
    x, y = read_meme(path)
    assert (x.motif_id, x.name, y.name) == ("X_f1", "XTF", "Y_si")
    np.testing.assert_allclose(x.counts, [[7, 0], [1, 0], [1, 10], [1, 0]])
    np.testing.assert_allclose(y.counts.ravel(), [25, 25, 25, 25])
    path.write_text("MEME version 4\n")
    with pytest.raises(InputError, match="no MOTIF"):
        read_meme(path)
