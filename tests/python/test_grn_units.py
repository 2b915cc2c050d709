"""GRN stage units: images, neighbours, views, labels, priors, model and loss."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import spearmanr

from scregnet.errors import InputError
from scregnet.grn.data import ExpressionViews, PairLabels, label_pairs, read_labels, read_views
from scregnet.grn.images import (
    ImageBuilder,
    bin_genes,
    metacell_means,
    pair_histograms,
    standardise,
    top_neighbours,
)
from scregnet.grn.label_features import LabelFeatures
from scregnet.grn.model import DeepMCL, GRNConfig, contrastive_loss
from scregnet.grn.priors import combined_prior, prior_labels, read_binding, tss_prior
from scregnet.grn.train import _epoch_pairs


def _adata(x: np.ndarray, genes: list[str], view: str | None = None) -> ad.AnnData:
    obs = pd.DataFrame(index=[f"c{i}" for i in range(x.shape[0])])
    if view is not None:
        obs["view"] = view
    return ad.AnnData(sp.csr_matrix(x.astype(np.float32)), obs=obs, var=pd.DataFrame(index=genes))


# ---------------------------------------------------------------- images


def test_bin_genes_golden() -> None:
    expr = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0], [4.0, 5.0]])
    codes = bin_genes(expr, n_bins=4)
    assert codes.shape == (2, 4)
    assert codes[0].tolist() == [0, 1, 2, 3]  # range 0..4 in 4 bins, maximum in the last bin
    assert codes[1].tolist() == [0, 0, 0, 0]  # constant gene


@pytest.mark.parametrize("cells", [None, [0, 2, 3, 5, 7]])
def test_pair_histograms_match_numpy(cells: list[int] | None) -> None:
    rng = np.random.default_rng(0)
    expr = rng.gamma(1.0, 1.0, size=(9, 5))
    codes = bin_genes(expr, n_bins=8)
    a, b = np.array([0, 1, 4, 2]), np.array([1, 3, 0, 2])
    images = pair_histograms(
        torch.from_numpy(codes),
        torch.from_numpy(a),
        torch.from_numpy(b),
        n_bins=8,
        cells=None if cells is None else torch.tensor(cells),
    ).numpy()
    keep = np.arange(9) if cells is None else np.array(cells)
    for i, (ga, gb) in enumerate(zip(a, b, strict=True)):
        counts, _, _ = np.histogram2d(
            codes[ga, keep], codes[gb, keep], bins=8, range=[[0, 8], [0, 8]]
        )
        np.testing.assert_allclose(images[i], np.log1p(counts) / np.log1p(keep.size), rtol=1e-6)


def test_top_neighbours_brute_force() -> None:
    rng = np.random.default_rng(1)
    expr = rng.normal(size=(40, 12))
    expr[:, 3] = expr[:, 0] * 2 + 0.01 * rng.normal(size=40)
    expr[:, 7] = -expr[:, 0] + 0.01 * rng.normal(size=40)
    got = top_neighbours(torch.from_numpy(standardise(expr)), 3, chunk=5).numpy()
    corr = np.abs(np.corrcoef(expr.T))
    np.fill_diagonal(corr, -1)
    want = np.argsort(-corr, axis=1)[:, :3]
    assert (np.sort(got, axis=1) == np.sort(want, axis=1)).all()
    assert set(got[0, :2]) == {3, 7}  # |r| finds the anti-correlated gene too


def test_image_builder_shapes_and_neighbour_images() -> None:
    rng = np.random.default_rng(2)
    views = ExpressionViews(
        genes=[f"g{i}" for i in range(6)],
        views=["a", "b"],
        expr=[rng.gamma(1.0, 1.0, (60, 6)).astype(np.float32) for _ in range(2)],
    )
    builder = ImageBuilder(views, n_neighbours=2, n_bins=16)
    a, b = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    assert builder.primary(a, b).shape == (3, 2, 16, 16)
    neigh = builder.neighbour(torch.tensor([0, 5]))
    assert neigh.shape == (2, 2, 3, 16, 16)
    first = neigh[0, 0, 0]  # (g, g): all mass on the diagonal
    assert torch.equal(first, torch.diag(torch.diagonal(first)))
    stats = builder.stats(a, b)
    assert stats.shape == (3, 2, 4)
    r = np.corrcoef(views.expr[0][:, 0], views.expr[0][:, 3])[0, 1]
    assert stats[0, 0, 0].item() == pytest.approx(r, abs=1e-5)
    assert stats[0, 0, 1].item() == pytest.approx(abs(r), abs=1e-5)


def test_label_neighbours_follow_the_labels_graph() -> None:
    """A gene's neighbours are its labelled regulators, most correlated first, then its
    expression neighbours; genes without a labelled regulator, and every gene once the labels are
    cleared, keep the expression ones; DeepMCL as published never uses the labels' graph."""
    rng = np.random.default_rng(4)
    base = rng.normal(size=(200, 1))
    expr = rng.normal(size=(200, 8))
    expr[:, 1] = base[:, 0] + 0.2 * rng.normal(size=200)  # gene 5's closest by expression
    expr[:, 3] = base[:, 0] + 1.0 * rng.normal(size=200)  # TF 3: moderately tied to gene 5
    expr[:, 4] = base[:, 0] + 3.0 * rng.normal(size=200)  # TF 4: weakly tied to gene 5
    expr[:, 5] = base[:, 0]
    views = ExpressionViews([f"g{i}" for i in range(8)], ["all"], [expr.astype(np.float32)])
    config = GRNConfig(n_neighbours=3, n_bins=8, cells_per_metacell=0)
    builder = ImageBuilder.for_model(views, config)
    assert builder.label_neighbours
    expression = builder.views[0].neighbours.clone()
    assert expression[5, 0].item() == 1
    # TFs 4 and 3 regulate gene 5, TF 3 regulates itself (left out), TF 4 does not regulate 6
    tf = np.array([4, 3, 3, 4])
    target = np.array([5, 5, 3, 6])
    label = np.array([1, 1, 1, 0], dtype=np.int8)
    builder.set_labels(tf, target, label)
    got = builder.views[0].neighbours
    top_up = [g for g in expression[5].tolist() if g not in (3, 4)][:1]
    assert got[5].tolist() == [3, 4, *top_up] and top_up == [1]
    unchanged = [g for g in range(8) if g != 5]
    assert torch.equal(got[unchanged], expression[unchanged])
    # the neighbour images follow: gene 5 against its strongest regulator comes second
    images = builder.neighbour(torch.tensor([5]))
    assert torch.equal(images[0, 0, 1], builder.primary(torch.tensor([5]), torch.tensor([3]))[0, 0])
    builder.set_labels(None)
    assert torch.equal(builder.views[0].neighbours, expression)
    plain = ImageBuilder.for_model(views, GRNConfig(n_neighbours=3, n_bins=8, n_pair_features=0))
    plain.set_labels(tf, target, label)
    assert not plain.label_neighbours and torch.equal(plain.views[0].neighbours, expression)
    off = ImageBuilder.for_model(views, GRNConfig(n_neighbours=3, n_bins=8, label_neighbours=False))
    off.set_labels(tf, target, label)
    assert torch.equal(off.views[0].neighbours, expression)


# ---------------------------------------------------------------- views


def test_read_views_groups_pools_and_normalises(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    genes = [f"g{i}" for i in range(8)]
    x1 = rng.poisson(3, (60, 8))
    x2 = rng.poisson(3, (70, 8))
    both = ad.concat([_adata(x1, genes, "ctrl"), _adata(x2, genes, "stim")], index_unique="-")
    both.write_h5ad(tmp_path / "both.h5ad")
    _adata(x1, genes, "ctrl").write_h5ad(tmp_path / "more_ctrl.h5ad")
    data = read_views([tmp_path / "both.h5ad", tmp_path / "more_ctrl.h5ad"])
    assert data.views == ["ctrl", "stim"]
    assert data.n_cells() == [120, 70]  # the two files' ctrl cells pooled
    lib = x1.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(data.expr[0][:60], np.log1p(x1 / lib * 1e4), rtol=1e-5)
    # no obs['view']: each file is a view named after it; non-integer values are used as given
    _adata(np.log1p(x1) + 0.5, genes).write_h5ad(tmp_path / "S1.rna.h5ad")
    _adata(np.log1p(x2) + 0.5, genes).write_h5ad(tmp_path / "S2.rna.h5ad")
    data = read_views([tmp_path / "S1.rna.h5ad", tmp_path / "S2.rna.h5ad"])
    assert data.views == ["S1", "S2"]
    np.testing.assert_allclose(data.expr[0], np.log1p(x1) + 0.5, rtol=1e-6)
    # normalised but not logged (counts per 10k): refused, not pooled with logged views
    _adata(x1 / lib * 1e4, genes).write_h5ad(tmp_path / "cp10k.h5ad")
    with pytest.raises(
        InputError, match=r"cp10k\.h5ad: values up to [\d.]+ are neither whole-number"
    ):
        read_views([tmp_path / "S1.rna.h5ad", tmp_path / "cp10k.h5ad"])
    # log2(counts per million + 1) stays below the bound
    _adata(np.log2(x1 / lib * 1e6 + 1), genes).write_h5ad(tmp_path / "log2cpm.h5ad")
    assert read_views([tmp_path / "log2cpm.h5ad"]).expr[0].max() > 15


def test_read_views_layer(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    genes = [f"g{i}" for i in range(6)]
    a = _adata(rng.poisson(2, (60, 6)), genes)
    a.layers["imputed"] = np.full((60, 6), 0.25, dtype=np.float32) + rng.random((60, 6))
    a.write_h5ad(tmp_path / "s.h5ad")
    data = read_views([tmp_path / "s.h5ad"])
    np.testing.assert_allclose(data.expr[0], a.layers["imputed"], rtol=1e-6)
    # the imputation stage's expected-value layer is preferred when present
    a.layers["imputed_expected"] = a.layers["imputed"] * 0.5
    a.write_h5ad(tmp_path / "s.h5ad")
    data = read_views([tmp_path / "s.h5ad"])
    np.testing.assert_allclose(data.expr[0], a.layers["imputed_expected"], rtol=1e-6)
    chosen = read_views([tmp_path / "s.h5ad"], layer="imputed")
    np.testing.assert_allclose(chosen.expr[0], a.layers["imputed"], rtol=1e-6)
    raw = read_views([tmp_path / "s.h5ad"], layer="X")  # integer counts: normalised + log1p
    x = np.asarray(a.X.toarray(), dtype=np.float64)
    np.testing.assert_allclose(
        raw.expr[0], np.log1p(x / x.sum(axis=1, keepdims=True) * 1e4), rtol=1e-5
    )
    with pytest.raises(InputError, match="no layer 'denoised'"):
        read_views([tmp_path / "s.h5ad"], layer="denoised")


def test_read_views_gene_intersection_and_bad_inputs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(5)
    _adata(rng.poisson(2, (60, 8)), [f"g{i}" for i in range(8)]).write_h5ad(tmp_path / "a.h5ad")
    _adata(rng.poisson(2, (60, 8)), [f"g{i}" for i in range(2, 10)]).write_h5ad(tmp_path / "b.h5ad")
    with caplog.at_level(logging.WARNING):
        data = read_views([tmp_path / "a.h5ad", tmp_path / "b.h5ad"])
    assert data.genes == [f"g{i}" for i in range(2, 8)]
    assert "different gene sets: using the 6 genes" in caplog.text
    _adata(rng.poisson(2, (60, 8)), [f"h{i}" for i in range(8)]).write_h5ad(tmp_path / "c.h5ad")
    with pytest.raises(InputError, match=r"c\.h5ad: the expression inputs share only 0 gene"):
        read_views([tmp_path / "a.h5ad", tmp_path / "c.h5ad"])
    _adata(rng.poisson(2, (49, 8)), [f"g{i}" for i in range(8)], "few").write_h5ad(
        tmp_path / "few.h5ad"
    )
    with pytest.raises(InputError, match="view 'few' has 49 cells; at least 50"):
        read_views([tmp_path / "a.h5ad", tmp_path / "few.h5ad"])


# ---------------------------------------------------------------- labels


def test_read_labels_formats(tmp_path: Path) -> None:
    (tmp_path / "h.tsv").write_text("tf\ttarget\tsign\nA\tB\t+\nA\tC\t-\n")
    frame = read_labels(tmp_path / "h.tsv")
    assert frame[["tf", "target"]].values.tolist() == [["A", "B"], ["A", "C"]]
    assert (frame.label == -1).all()  # simulator truth: a sign column is not a label
    (tmp_path / "l.tsv").write_text("A\tB\t1\nA\tC\t0\n")
    assert read_labels(tmp_path / "l.tsv").label.tolist() == [1, 0]
    (tmp_path / "bad.tsv").write_text("A\tB\tyes\n")
    with pytest.raises(InputError, match="label column must be 0 or 1, found yes"):
        read_labels(tmp_path / "bad.tsv")


def test_label_pairs_semantics() -> None:
    genes = ["A", "B", "C", "D"]
    listed = pd.DataFrame({"tf": ["A", "A"], "target": ["B", "Z"], "label": [-1, -1]})
    tf, target, label = label_pairs(listed, genes)
    # A -> B positive; every other pair of A (self excluded) negative; the pair with Z dropped
    assert sorted(zip(tf.tolist(), target.tolist(), label.tolist(), strict=True)) == [
        (0, 1, 1),
        (0, 2, 0),
        (0, 3, 0),
    ]
    explicit = pd.DataFrame({"tf": ["A", "C"], "target": ["B", "D"], "label": [1, 0]})
    tf, target, label = label_pairs(explicit, genes)
    assert list(zip(tf.tolist(), target.tolist(), label.tolist(), strict=True)) == [
        (0, 1, 1),
        (2, 3, 0),
    ]
    with pytest.raises(InputError, match="share no"):
        label_pairs(pd.DataFrame({"tf": ["X"], "target": ["Y"], "label": [-1]}), genes)


def test_names_that_differ_only_by_case_are_pointed_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Human-style TF names against a mouse gene list: names are matched exactly, and the error
    or warning says which absent names are genes but for their case."""
    from scregnet.grn.api import resolve_tfs

    genes = ["Gata1", "Spi1", "Actb", "Gapdh"]
    labels = pd.DataFrame({"tf": ["GATA1", "SPI1"], "target": ["ACTB", "GAPDH"], "label": [1, 0]})
    with pytest.raises(InputError) as exc:
        label_pairs(labels, genes, source="labels.tsv")
    assert str(exc.value) == (
        "labels.tsv: the labels share no (tf, target) pair with the expression data's genes "
        "(ACTB is Actb, GAPDH is Gapdh, GATA1 is Gata1 and 1 more in the expression data: "
        "names are matched exactly, case included)"
    )
    with caplog.at_level("WARNING"):
        label_pairs(pd.DataFrame({"tf": ["Gata1", "Gata1", "SPI1"], "target": ["Actb", "Gapdh", "Actb"],
                                  "label": [1, 0, 0]}), genes)  # fmt: skip
    assert "their pairs dropped: SPI1 (SPI1 is Spi1 in the expression data" in caplog.text
    # an absent name with no twin gets no hint
    with pytest.raises(InputError) as exc:
        label_pairs(pd.DataFrame({"tf": ["X"], "target": ["Y"], "label": [1]}), genes)
    assert "matched exactly" not in str(exc.value)
    with pytest.raises(InputError, match=r"GATA1 \(GATA1 is Gata1 in the expression data"):
        resolve_tfs(["GATA1"], genes, source="tfs.txt")
    _write_tfbind(tmp_path / "s.tfbind.h5ad")  # TFs TFA and TFB
    with pytest.raises(InputError, match=r"evidence is a gene of the expression data \(TFA is tfa"):
        combined_prior([tmp_path / "s.tfbind.h5ad"], _tss_frame(), ["tfa", "G1", "G2", "G3"])


# ---------------------------------------------------------------- priors


def _tss_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "gene_id": ["ENSG1", "ENSG2", "ENSG3", "ENSG4"],
            "gene_name": ["TFA", "G1", "G2", "G3"],
            "chrom": ["chr1", "chr1", "chr1", "chr2"],
            "tss": [1_000, 50_000, 90_000, 5_000],
            "strand": ["+", "+", "-", "+"],
        }
    )


def _write_tfbind(path: Path) -> None:
    """A tfbind.h5ad as scregnet tfbind predict writes it (cells x TFs, binding in uns)."""
    peaks = pd.DataFrame(
        {
            "chrom": ["chr1", "chr1", "chr2"],
            "start": [49_800, 95_000, 5_900],
            "end": [50_300, 95_400, 6_100],
        }
    )
    binding = np.zeros((2, 3, 2), dtype=np.float32)  # clusters x peaks x TFs
    binding[1, 0, 0] = 0.9  # TFA at G1's promoter in cluster 1
    binding[0, 1, 0] = 0.6  # TFA 5 kb from G2's TSS
    binding[0, 2, 1] = 0.8  # TFB (not expressed) near G3
    pwm = np.ones_like(binding)  # a baseline array that must be ignored
    a = ad.AnnData(
        np.zeros((4, 2), dtype=np.float32),
        obs=pd.DataFrame(index=[f"cell{i}" for i in range(4)]),
        var=pd.DataFrame(index=["TFA", "TFB"]),
    )
    a.uns["tfbind"] = {"peaks": peaks, "binding": binding, "pwm_binding": pwm}
    a.write_h5ad(path)


def test_prior_reader_window_and_labels(tmp_path: Path) -> None:
    _write_tfbind(tmp_path / "s.tfbind.h5ad")
    binding = read_binding(tmp_path / "s.tfbind.h5ad")
    assert binding.tfs == ["TFA", "TFB"]
    assert binding.prob.shape == (3, 2)
    assert binding.prob[0, 0] == pytest.approx(0.9)  # max over clusters, not the PWM array
    genes = ["TFA", "G1", "G2", "G3"]
    tfs, prior = tss_prior(binding, _tss_frame(), genes, window=10_000)
    assert tfs == ["TFA"]
    np.testing.assert_allclose(prior[0], [0.0, 0.9, 0.6, 0.0])
    _, narrow = tss_prior(binding, _tss_frame(), genes, window=1_000)
    np.testing.assert_allclose(narrow[0], [0.0, 0.9, 0.0, 0.0])
    frame = prior_labels(tfs, prior, genes, threshold=0.5, rng=np.random.default_rng(0))
    assert frame[frame.label == 1].target.tolist() == ["G1", "G2"]
    assert frame[frame.label == 0].target.tolist() == ["G3"]
    strict = prior_labels(tfs, prior, genes, threshold=0.7, rng=np.random.default_rng(0))
    assert strict[strict.label == 1].target.tolist() == ["G1"]
    # peaks-as-observations layout, two files combined by maximum
    obs = pd.DataFrame({"chrom": ["chr1"], "start": [89_900], "end": [90_100]}, index=["p0"])
    b = ad.AnnData(
        np.array([[0.95, 0.1]], dtype=np.float32), obs=obs, var=pd.DataFrame(index=["TFA", "TFB"])
    )
    b.write_h5ad(tmp_path / "peaks.h5ad")
    tfs, both = combined_prior(
        [tmp_path / "s.tfbind.h5ad", tmp_path / "peaks.h5ad"], _tss_frame(), genes, window=10_000
    )
    np.testing.assert_allclose(both[0], [0.0, 0.9, 0.95, 0.0])
    # a GTF of another naming style matches no peak: refused, naming the GTF
    ensembl = _tss_frame().assign(chrom=lambda f: f["chrom"].str.removeprefix("chr"))
    with pytest.raises(InputError, match="no chromosome name of the GTF's genes") as exc:
        combined_prior([tmp_path / "s.tfbind.h5ad"], ensembl, genes, tss_path="ensembl.gtf")
    assert "ensembl.gtf" in str(exc.value) and "1, 2 vs chr1, chr2" in str(exc.value)
    # expression data named in another identifier space than the GTF's names and IDs
    with pytest.raises(InputError, match="no gene of the expression data is in the GTF") as exc:
        combined_prior(
            [tmp_path / "s.tfbind.h5ad"], _tss_frame(), ["ENSMUSG1", "ENSMUSG2"], tss_path="g.gtf"
        )
    assert str(exc.value).startswith("g.gtf: ") and "ENSMUSG1, ENSMUSG2 vs TFA, G1" in str(
        exc.value
    )
    (tmp_path / "cells.h5ad").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_binding(tmp_path / "cells.h5ad")
    _adata(np.ones((3, 2)), ["TFA", "TFB"]).write_h5ad(tmp_path / "nopeaks.h5ad")
    with pytest.raises(InputError, match="no peak table"):
        read_binding(tmp_path / "nopeaks.h5ad")


def test_a_tf_with_a_constant_binding_probability_is_no_binding_evidence(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`tfbind` names the TFs whose probability is their base rate (the model did not learn
    them): the prior leaves them out, so their pairs keep the expression score and give no
    training labels; another sample's informative prediction of the TF still counts."""
    _write_tfbind(tmp_path / "s.tfbind.h5ad")
    a = ad.read_h5ad(tmp_path / "s.tfbind.h5ad")
    a.uns["tfbind"]["binding"][..., 0] = 0.09
    a.uns["tfbind"]["base_rate_tfs"] = np.asarray(["TFA"], dtype=object)
    a.write_h5ad(tmp_path / "constant.tfbind.h5ad")
    with caplog.at_level("WARNING"):
        binding = read_binding(tmp_path / "constant.tfbind.h5ad")
    assert binding.tfs == ["TFB"] and binding.prob.shape == (3, 1)
    assert "TF(s) TFA have a constant binding probability" in caplog.text
    genes = ["TFA", "TFB", "G1", "G2", "G3"]
    with pytest.raises(InputError, match="no TF of the prior with binding evidence"):
        combined_prior([tmp_path / "constant.tfbind.h5ad"], _tss_frame(), ["TFA", "G1"])
    tfs, prior = combined_prior(
        [tmp_path / "constant.tfbind.h5ad", tmp_path / "s.tfbind.h5ad"],
        _tss_frame(),
        genes,
        window=10_000,
    )
    assert tfs == ["TFA", "TFB"]
    np.testing.assert_allclose(prior[0], [0.0, 0.0, 0.9, 0.6, 0.0])  # from s.tfbind.h5ad only


# ---------------------------------------------------------------- model


def test_model_shapes_and_attention() -> None:
    torch.manual_seed(0)
    config = GRNConfig(n_neighbours=2, embed_dim=8, hidden=16)
    model = DeepMCL(config).eval()
    images = torch.rand(5, 3, 32, 32)
    emb = model.encode(images)
    assert emb.shape == (5, 3, 8)
    out = model.head(
        emb,
        torch.rand(5, 3, 3, 8),
        torch.rand(5, 3, 3, 8),
        torch.rand(5, 3, config.n_stats),
        torch.rand(5, config.n_pair_features),
    )
    assert out.logit.shape == (5,)
    assert out.view_weights.shape == (5, 3)
    assert out.neighbour_weights.shape == (5, 3, 6)
    torch.testing.assert_close(out.view_weights.sum(dim=1), torch.ones(5))
    torch.testing.assert_close(out.embedding.norm(dim=1), torch.ones(5))


def test_contrastive_loss() -> None:
    same = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    far = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # distance 2 > margin 1
    assert contrastive_loss(same, torch.tensor([1.0, 1.0])).item() == pytest.approx(0.0)
    assert contrastive_loss(far, torch.tensor([1.0, 0.0])).item() == pytest.approx(0.0)
    assert contrastive_loss(far, torch.tensor([1.0, 1.0])).item() == pytest.approx(4.0)
    assert contrastive_loss(same, torch.tensor([1.0, 0.0])).item() == pytest.approx(1.0)


def test_prior_labels_survive_an_uninformative_prior() -> None:
    """Binding predicted near nearly every gene: the top half are positives, the lowest are negatives."""
    genes = ["TFA", *[f"G{i}" for i in range(10)]]
    prior = np.array(
        [[0.0, 0.99, 0.98, 0.97, 0.96, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7]], dtype=np.float32
    )
    frame = prior_labels(["TFA"], prior, genes, threshold=0.5, rng=np.random.default_rng(0))
    positives = frame[frame.label == 1].target.tolist()
    negatives = frame[frame.label == 0].target.tolist()
    assert positives == ["G0", "G1", "G2", "G3", "G4"]
    assert negatives and set(negatives) <= {"G5", "G6", "G7", "G8", "G9"}


# ---------------------------------------------------------------- pair features (our extension)


def test_metacell_means_average_clusters() -> None:
    rng = np.random.default_rng(6)
    # three well-separated groups of 40 cells: metacells of ~40 cells recover their means
    centres = np.array([[0.0, 5.0, 1.0], [5.0, 0.0, 1.0], [2.0, 2.0, 6.0]])
    expr = np.repeat(centres, 40, axis=0) + rng.normal(0, 0.05, (120, 3))
    means = metacell_means(expr, 40, seed=0)
    assert means.shape == (3, 3)
    order = np.argsort(means[:, 0])
    np.testing.assert_allclose(means[order], centres[[0, 2, 1]], atol=0.05)


def test_pair_features_are_standardised_correlations() -> None:
    rng = np.random.default_rng(7)
    genes = [f"g{i}" for i in range(8)]
    expr = [rng.gamma(1.0, 1.0, (80, 8)).astype(np.float32) for _ in range(2)]
    expr[1][:, 3] = expr[1][:, 0] * 3  # a strong pair in the second view
    views = ExpressionViews(genes=genes, views=["a", "b"], expr=expr)
    builder = ImageBuilder(views, n_neighbours=2, n_bins=8, cells_per_metacell=20)
    assert builder.n_metacells == 8  # 4 per view
    a, b = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    raw = builder.pair_features(a, b) * builder.feature_scale + builder.feature_mean
    pooled = np.concatenate(expr)
    rho = spearmanr(pooled[:, 0], pooled[:, 3]).statistic
    assert raw[0, 0].item() == pytest.approx(rho, abs=1e-4)
    assert raw[0, 1].item() == pytest.approx(abs(rho), abs=1e-4)
    assert raw[0, 3].item() == pytest.approx(abs(raw[0, 2].item()), abs=1e-6)
    assert -1 <= raw[:, 2].min() and raw[:, 2].max() <= 1
    # standardised over random gene pairs; switching metacells off zeroes their features
    assert builder.feature_scale.shape == (4,)
    off = ImageBuilder(views, n_neighbours=2, n_bins=8, cells_per_metacell=0)
    assert off.n_metacells == 0
    assert torch.equal(off.pair_features(a, b)[:, 2:], torch.zeros(3, 2))
    torch.testing.assert_close(off.pair_features(a, b)[:, :2], builder.pair_features(a, b)[:, :2])


def test_pair_feature_head_starts_as_the_spearman_ranking() -> None:
    torch.manual_seed(0)
    config = GRNConfig(n_neighbours=2, embed_dim=8, hidden=16)
    model = DeepMCL(config).eval()
    pair = torch.randn(6, config.n_pair_features)
    out = model.head(
        torch.rand(6, 2, 8),
        torch.rand(6, 2, 3, 8),
        torch.rand(6, 2, 3, 8),
        torch.rand(6, 2, 4),
        pair,
    )
    # gate 0 and skip = the |rho| feature: the initial logit is exactly the |Spearman| ranking
    torch.testing.assert_close(out.logit, pair[:, 1])
    with pytest.raises(ValueError, match="pair features"):
        model.head(
            torch.rand(6, 2, 8), torch.rand(6, 2, 3, 8), torch.rand(6, 2, 3, 8), torch.rand(6, 2, 4)
        )
    plain = DeepMCL(GRNConfig(n_neighbours=2, embed_dim=8, hidden=16, n_pair_features=0))
    assert plain.skip is None and plain.gate is None


def test_epoch_pairs_sampling() -> None:
    labels = PairLabels(
        np.zeros(100, dtype=np.intp), np.arange(100), (np.arange(100) < 10).astype(np.int8)
    )
    rng = np.random.default_rng(0)
    balanced = _epoch_pairs(labels, 40, rng)
    assert balanced.size == 40 and labels.label[balanced].sum() == 20
    natural = _epoch_pairs(labels, 1000, rng, "natural")
    assert sorted(natural.tolist()) == list(range(100))  # every pair once, at the 10 % rate
    with pytest.raises(
        ValueError, match="sampling must be one of 'balanced', 'natural', got 'focal'"
    ):
        _epoch_pairs(labels, 40, rng, "focal")


# ---------------------------------------------------------------- shared cells


def test_cells_shared_by_views_are_pooled_once(tmp_path: Path) -> None:
    """Two overlapping branches (30 shared cells, same names and values) pool to their union; a
    barcode collision (same name, other values) is two cells; the pooled Spearman feature then
    equals Spearman over the union (what an untrained model ranks by)."""
    from scregnet.stats import abs_spearman

    rng = np.random.default_rng(8)
    genes = [f"g{i}" for i in range(6)]
    union = rng.poisson(3, (130, 6))
    first, second = union[:80], union[50:]  # cells 50..79 in both branches
    a = _adata(first, genes, "b1")
    a.obs_names = [f"c{i}" for i in range(80)]
    b = _adata(second.copy(), genes, "b2")
    b.obs_names = [f"c{i}" for i in range(50, 130)]
    a.write_h5ad(tmp_path / "b1.h5ad")
    b.write_h5ad(tmp_path / "b2.h5ad")
    data = read_views([tmp_path / "b1.h5ad", tmp_path / "b2.h5ad"])
    assert data.n_cells() == [80, 80]
    assert [int(m.sum()) for m in data.unique_masks()] == [80, 50]
    assert data.pooled().shape == (130, 6)
    builder = ImageBuilder(data, n_neighbours=2, n_bins=8, cells_per_metacell=20)
    assert builder.n_metacells == 4 + round(50 / 20)  # shared cells clustered in b1 only
    rho = builder.pair_features(torch.tensor([0]), torch.tensor([3]))
    rho = rho * builder.feature_scale + builder.feature_mean
    log_union = np.log1p(union / union.sum(axis=1, keepdims=True) * 1e4)
    expected = spearmanr(log_union[:, 0], log_union[:, 3]).statistic
    assert rho[0, 0].item() == pytest.approx(expected, abs=1e-5)
    assert abs_spearman(data.pooled(), [0])[0, 3] == pytest.approx(abs(expected), abs=1e-5)
    # same barcode, different expression: a collision between samples, both cells kept
    b.X = sp.csr_matrix(b.X.toarray() + 1)
    b.write_h5ad(tmp_path / "b2.h5ad")
    assert read_views([tmp_path / "b1.h5ad", tmp_path / "b2.h5ad"]).pooled().shape == (160, 6)


# ---------------------------------------------------------------- held-out selection


def test_inner_tf_folds_and_auprc_gain_se() -> None:
    from scregnet.grn.readout import auprc_gain_se, inner_tf_folds

    tf = np.repeat(np.arange(8), 20)
    label = ((np.arange(160) % 20 < 4) & (tf < 6)).astype(np.int8)  # TFs 6, 7: no positive
    folds = inner_tf_folds(PairLabels(tf, tf * 0, label), 3, np.random.default_rng(0))
    assert len(folds) == 3
    held = [set(tf[m].tolist()) for m in folds]
    assert sorted(t for h in held for t in h) == list(range(6))  # each positive TF once
    assert all(set(tf[m]) == h for m, h in zip(folds, held, strict=True))  # whole TFs
    one = PairLabels(tf[tf == 0], tf[tf == 0], label[tf == 0])
    assert inner_tf_folds(one, 3, np.random.default_rng(0)) == []
    rng = np.random.default_rng(1)
    noise = rng.random(160)
    perfect = label + 0.1 * noise
    gain, se = auprc_gain_se(tf, label, perfect, noise, rng)
    assert gain > 0.5 and 0 < se < gain
    gain, se = auprc_gain_se(tf, label, noise, noise, rng)
    assert gain == 0 and se == 0  # no gain is never more than a standard error
    # one validation TF: its pairs are resampled, so a small gain still has an error
    first = tf == 0
    slightly = noise[first] + 0.05 * label[first]
    gain, se = auprc_gain_se(tf[first], label[first], slightly, noise[first], rng)
    assert gain > 0 and se > 0


def test_prior_readouts_break_ties_by_abs_pearson() -> None:
    """The fixed prior read-outs rank pairs by their prior and, within a tie, by |Pearson r|
    (as the target-prior baseline), not by |Spearman rho|."""
    from scregnet.grn.config import LABEL_FEATURE_NAMES, N_PAIR_FEATURES
    from scregnet.grn.readout import fit_skip

    def col(name: str) -> int:
        return N_PAIR_FEATURES + LABEL_FEATURE_NAMES.index(name)

    features = np.zeros((3, N_PAIR_FEATURES + len(LABEL_FEATURE_NAMES)))
    features[:, col("log_prior")] = [1.0, 1.0, 2.0]  # pairs 0 and 1 tie on the prior
    features[:, col("sim_prior")] = [1.0, 1.0, 2.0]
    features[:, col("log_abs_r")] = [-1.0, 1.0, -3.0]  # pair 1 has the larger |r| ...
    features[:, col("log_abs_rho")] = [1.0, -1.0, -3.0]  # ... and the smaller |rho|
    label = np.array([0, 1, 1], dtype=np.int8)
    for name in ("prior", "sim_prior"):
        w, b = fit_skip(name, features, label)
        assert list(np.argsort(-(features @ w + b))) == [2, 1, 0], name


def test_per_tf_auprc_weighs_every_regulator_equally() -> None:
    """Each TF's own AUPRC, TFs with one class only dropped; a read-out that ranks every TF's
    pairs perfectly but puts one TF's negatives above the rest loses to one that ranks only the
    TF with most positives on pooled AUPRC, and wins on the per-TF mean."""
    from scregnet.grn.readout import per_tf_auprc
    from scregnet.stats import auprc

    tf = np.repeat(np.arange(4), 10)
    label = np.zeros(40, dtype=np.int8)
    label[0:6] = 1  # TF 0: 6 positives
    label[10:12] = 1  # TF 1: 2
    label[20:22] = 1  # TF 2: 2; TF 3: none (dropped)
    rng = np.random.default_rng(0)
    score = rng.random(40)
    got = per_tf_auprc(tf, label, score)
    want = [auprc(label[tf == t], score[tf == t]) for t in range(3)]
    np.testing.assert_allclose(got, want)
    big = np.where(tf == 0, label + 1.0, 0.0) + 0.01 * score  # TF 0 perfect, on top; rest noise
    even = label + 0.5 * score  # every TF ranked perfectly ...
    even[tf == 3] += 5.0  # ... but TF 3's negatives on top
    assert auprc(label, big) > auprc(label, even)
    assert per_tf_auprc(tf, label, even).mean() > per_tf_auprc(tf, label, big).mean()


def _selection_world(tmp_path: Path) -> ImageBuilder:
    """Two synthetic views (15 TFs, 40 genes, 150 cells each) ready for image building."""
    from grn_synth import synth_grn

    from scregnet.grn.data import _log_expression

    _, genes, counts, _ = synth_grn(n_tfs=15, n_targets=25, n_cells=150, seed=1)
    data = ExpressionViews(
        genes, list(counts), [_log_expression(c, tmp_path) for c in counts.values()]
    )
    return ImageBuilder(data, n_neighbours=3, n_bins=16, cells_per_metacell=25)


def _top_pairs_by(builder: ImageBuilder, column: int, n_tfs: int, k: int) -> PairLabels:
    """Every pair of TFs 0..n_tfs-1; positives = the ``k * n_tfs`` pairs highest on one feature
    (so that feature ranks any set of TFs perfectly); every TF has a positive."""
    a = np.repeat(np.arange(n_tfs), builder.n_genes)
    b = np.tile(np.arange(builder.n_genes), n_tfs)
    a, b = a[a != b], b[a != b]
    value = builder.pair_features(torch.as_tensor(a), torch.as_tensor(b))[:, column].numpy()
    label = np.zeros(a.size, dtype=np.int8)
    label[np.argsort(-value)[: k * n_tfs]] = 1
    assert all(label[a == t].any() for t in range(n_tfs))
    return PairLabels(a.astype(np.intp), b.astype(np.intp), label)


@pytest.mark.parametrize(("column", "expected"), [(1, "spearman"), (3, "metacell")])
def test_held_out_selection_picks_the_read_out_that_generalises(
    tmp_path: Path, column: int, expected: str
) -> None:
    """Labels that are exactly the top |Spearman| (or |metacell r|) pairs of every TF: the inner
    folds must choose that read-out, and since nothing beats a perfect read-out by more than a
    standard error the network stays off, so the model ranks new TFs exactly by it."""
    from scregnet.grn.train import TrainConfig, fit, predict_pairs
    from scregnet.seed import seed_everything

    builder = _selection_world(tmp_path)
    labels = _top_pairs_by(builder, column, 15, 5)
    train = labels.subset(labels.tf < 10)
    test = labels.subset(labels.tf >= 10)
    rng = seed_everything(0)
    config = GRNConfig(n_neighbours=3, n_bins=16, embed_dim=8, hidden=16, cells_per_metacell=25)
    result = fit(builder, train, model_config=config, config=TrainConfig(epochs=2), rng=rng)
    sel = result.selection
    assert sel["skip"] == expected
    assert sel["inner_folds"] == 3 and sel["network_splits"] == 3  # 2 val TFs: < 20 positives
    assert sel["network"] is False and result.best_epoch == 0
    assert result.model.gate is not None and result.model.gate.item() == 0.0
    from scregnet.stats import auprc

    # float32 sigmoids of close logits may tie: all but a hair of perfect
    assert auprc(test.label, predict_pairs(result.model, builder, test)) > 0.99


@pytest.mark.parametrize(("n_tfs", "expected"), [(3, "prior"), (4, "metacell")])
def test_read_out_is_the_default_below_four_validation_tfs(
    tmp_path: Path, n_tfs: int, expected: str
) -> None:
    """Labels that are exactly the top |metacell r| pairs: from 4 labelled TFs the inner folds
    find that read-out; with 3 they choose nothing and the read-out is the target prior, with no
    TF term."""
    from scregnet.grn.readout import MIN_SELECTION_TFS
    from scregnet.grn.train import TrainConfig, fit
    from scregnet.seed import seed_everything

    builder = _selection_world(tmp_path)
    labels = _top_pairs_by(builder, 3, n_tfs, 5)
    config = GRNConfig(n_neighbours=3, n_bins=16, embed_dim=8, hidden=16, cells_per_metacell=25)
    result = fit(
        builder,
        labels,
        model_config=config,
        config=TrainConfig(network=False),
        rng=seed_everything(0),
    )
    sel = result.selection
    assert sel["validation_tfs"] == n_tfs and (n_tfs < MIN_SELECTION_TFS) == (expected == "prior")
    assert sel["skip"] == expected and sel["readout"] == expected and sel["tf_degree"] is None


def test_held_out_selection_keeps_a_network_that_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the network beats the read-out on held-out TFs by more than a standard error it is
    kept (refitted on every training TF for its best epoch count when chosen on inner folds)."""
    import scregnet.grn.readout as readout_mod
    import scregnet.grn.train as train_mod
    from scregnet.grn.train import TrainConfig, fit
    from scregnet.seed import seed_everything

    builder = _selection_world(tmp_path)
    labels = _top_pairs_by(builder, 1, 9, 5)
    # the gains over the read-out: of the TF out-degree term (none), then of the network (clear)
    monkeypatch.setattr(readout_mod, "auprc_gain_se", lambda *a, **k: (0.0, 1.0))
    monkeypatch.setattr(train_mod, "auprc_gain_se", lambda *a, **k: (0.2, 0.05))
    rng = seed_everything(0)
    config = GRNConfig(n_neighbours=3, n_bins=16, embed_dim=8, hidden=16, cells_per_metacell=25)
    result = fit(builder, labels, model_config=config, config=TrainConfig(epochs=3), rng=rng)
    sel = result.selection
    assert sel["skip"] == "spearman" and sel["network"] is True
    assert result.best_epoch == sel["network_epoch"] >= 1
    assert len(result.history) == sel["network_epoch"]  # the refit ran that many epochs
    assert result.val_tfs == [] and result.model.gate is not None
    assert result.model.gate.item() != 0.0


def test_pair_dots_in_blocks_equal_one_pass() -> None:
    import torch

    from scregnet.grn.images import pair_dots

    gen = torch.Generator().manual_seed(0)
    rows = torch.randn(40, 257, generator=gen)
    a = torch.randint(40, (700,), generator=gen)
    b = torch.randint(40, (700,), generator=gen)
    one_pass = (rows[a] * rows[b]).sum(dim=1)
    for block in (1, 257, 3 * 257 + 5, 10**9):  # 1 pair, 1 pair, 3 pairs, all pairs per block
        assert torch.equal(pair_dots(rows, a, b, block=block), one_pass)
    assert pair_dots(rows, a[:0], b[:0], block=257).shape == (0,)


def test_pos_weight_weights_the_positive_pairs_in_the_loss(tmp_path: Path) -> None:
    """``TrainConfig.pos_weight`` reaches the loss: from the same start, seed and pairs, the first
    epoch's mean loss with positives weighted 8x is clearly above the unweighted one (with no
    effect the two runs are identical)."""
    from scregnet.grn.readout import use_labels
    from scregnet.grn.train import TrainConfig, _train_epochs

    builder = _selection_world(tmp_path)
    labels = _top_pairs_by(builder, 1, 9, 5)
    use_labels(builder, labels)
    config = GRNConfig(n_neighbours=3, n_bins=16, embed_dim=8, hidden=16, cells_per_metacell=25)
    losses = {}
    for weight in (1.0, 8.0):
        torch.manual_seed(0)
        history, *_ = _train_epochs(
            DeepMCL(config),
            builder,
            labels,
            None,
            epochs=1,
            config=TrainConfig(epochs=1, pos_weight=weight),
            rng=np.random.default_rng(0),
            patience=None,
        )
        losses[weight] = history[0]["loss"]
    assert losses[8.0] > 1.2 * losses[1.0]


def test_every_read_out_has_a_name_in_words() -> None:
    """The edges' ``method`` column names each read-out the selection can keep, with and
    without the network, and names DeepMCL only where its network contributes."""
    from scregnet.grn.api import readout_name
    from scregnet.grn.config import N_LABEL_FEATURES, N_PAIR_FEATURES
    from scregnet.grn.readout import SKIP_CANDIDATES

    width = N_PAIR_FEATURES + N_LABEL_FEATURES
    names = set()
    for skip in SKIP_CANDIDATES:
        sel = {"mode": "held-out selection", "skip": skip, "network": False}
        off = readout_name(sel, width)
        assert "DeepMCL" not in off and off.endswith("(network gate 0)")
        assert "DeepMCL network" in readout_name(sel | {"network": True}, width)
        alone = readout_name(sel | {"network_trained": False}, width)
        assert alone == off.replace("(network gate 0)", "(read-out alone, network not trained)")
        names.add(off)
    assert len(names) == len(SKIP_CANDIDATES)
    assert readout_name({}, 0) == "DeepMCL network (published architecture)"
    for degree, words in (
        ("tf_degree_mean", "mean expression)"),
        ("tf_degree_stats", "mean expression, variance, dropout)"),
    ):
        sel = {"mode": "held-out selection", "skip": "prior", "tf_degree": degree}
        assert f"predicted out-degree (from its {words}" in readout_name(sel, width)


def _labelled_tfs(builder: ImageBuilder, y: np.ndarray) -> LabelFeatures:
    """Label features from labels ``y`` (TFs 0..len(y)-1 x every gene, self pairs left out)."""
    n_tfs, n_genes = y.shape
    a = np.repeat(np.arange(n_tfs), n_genes)
    b = np.tile(np.arange(n_genes), n_tfs)
    keep = a != b
    return LabelFeatures(
        builder.pooled_zrank,
        builder.pooled_z,
        builder.gene_stats,
        a[keep],
        b[keep],
        y[a[keep], b[keep]],
        seed=3,
    )


def test_label_features_tf_in_degree_and_reciprocal_labels(tmp_path: Path) -> None:
    """For an unlabelled TF: its in-degree is the fraction of labelled TFs with an edge to it, and
    a labelled target's reverse label is ``reciprocal`` (1) or ``reciprocal_absent`` (1); an
    unlabelled target gives neither. For a labelled TF both come from the other groups' TFs only
    (out of fold), so a pair never sees its own TF's labels."""
    from scregnet.grn.config import LABEL_FEATURE_NAMES

    builder = _selection_world(tmp_path)
    n_genes = builder.n_genes
    rng = np.random.default_rng(0)
    y = (rng.random((10, n_genes)) < 0.3).astype(np.int8)  # TFs 0-9 labelled
    np.fill_diagonal(y[:, :10], 0)
    lf = _labelled_tfs(builder, y)
    col = {n: i for i, n in enumerate(LABEL_FEATURE_NAMES)}

    def raw(ta: np.ndarray, tb: np.ndarray) -> np.ndarray:
        z = lf(torch.as_tensor(ta), torch.as_tensor(tb))
        return (z * lf.scale + lf.mean).numpy()

    # unlabelled TF 12 against every labelled TF and the unlabelled gene 13
    targets = np.arange(10)
    got = raw(np.full(11, 12), np.append(targets, 13))
    np.testing.assert_allclose(got[:, col["tf_in_degree"]], y[:, 12].mean(), rtol=1e-5)
    np.testing.assert_allclose(got[:10, col["reciprocal"]], y[targets, 12])
    np.testing.assert_allclose(got[:10, col["reciprocal_absent"]], 1 - y[targets, 12])
    assert got[10, col["reciprocal"]] == 0 and got[10, col["reciprocal_absent"]] == 0
    # labelled TF 0: only TFs outside its group count, for both features
    group = lf.group.numpy()
    other = np.flatnonzero(group != group[0])
    got0 = raw(np.zeros(9, dtype=np.int64), np.arange(1, 10))
    np.testing.assert_allclose(got0[:, col["tf_in_degree"]], y[other, 0].mean(), rtol=1e-5)
    outside = group[1:10] != group[0]
    np.testing.assert_allclose(got0[:, col["reciprocal"]], np.where(outside, y[1:10, 0], 0))
    np.testing.assert_allclose(
        got0[:, col["reciprocal_absent"]], np.where(outside, 1 - y[1:10, 0], 0)
    )
    assert not outside.all()  # the check above covers an in-fold target too


def test_label_features_shared_regulators(tmp_path: Path) -> None:
    """``shared_regulators`` of (a, b): of the labelled TFs regulating ``a``, the fraction that
    also regulate ``b``; every labelled TF counts for an unlabelled ``a``, only the other groups'
    TFs for a labelled one (out of fold); 0 when no labelled TF regulates ``a``."""
    from scregnet.grn.config import LABEL_FEATURE_NAMES

    builder = _selection_world(tmp_path)
    n_genes = builder.n_genes
    rng = np.random.default_rng(1)
    y = (rng.random((10, n_genes)) < 0.4).astype(np.int8)  # TFs 0-9 labelled
    np.fill_diagonal(y[:, :10], 0)
    y[:, 14] = 0  # nobody regulates gene 14
    lf = _labelled_tfs(builder, y)
    col = {n: i for i, n in enumerate(LABEL_FEATURE_NAMES)}

    def raw(ta: np.ndarray, tb: np.ndarray) -> np.ndarray:
        z = lf(torch.as_tensor(ta), torch.as_tensor(tb))
        return (z * lf.scale + lf.mean).numpy()

    targets = np.arange(15, 40)
    regs = y[:, 12] == 1
    assert 0 < regs.sum() < 10
    got = raw(np.full(targets.size, 12), targets)
    want = y[regs][:, targets].mean(axis=0)
    np.testing.assert_allclose(got[:, col["shared_regulators"]], want, atol=1e-6)
    np.testing.assert_allclose(
        got[:, col["log_shared_regulators"]], np.log(want + 1 / 10), atol=1e-5
    )
    assert want.min() < want.max()  # the check tells targets apart
    assert np.all(raw(np.full(3, 14), targets[:3])[:, col["shared_regulators"]] == 0)
    # a labelled TF with regulators in its own group and in others: only the others count
    group = lf.group.numpy()
    tf = next(
        t
        for t in range(10)
        if (y[group == group[t], t] == 1).any() and (y[group != group[t], t] == 1).any()
    )
    outside = (group != group[tf]) & (y[:, tf] == 1)
    got_tf = raw(np.full(targets.size, tf), targets)
    want_tf = y[outside][:, targets].mean(axis=0)
    np.testing.assert_allclose(got_tf[:, col["shared_regulators"]], want_tf, atol=1e-6)
    every = y[y[:, tf] == 1][:, targets].mean(axis=0)
    assert not np.allclose(want_tf, every)  # the check above tells the two rules apart


def test_tf_degree_recovers_a_log_linear_out_degree() -> None:
    """The out-degree models fit a Poisson regression on the labelled TFs' statistics: with
    out-degrees drawn as exp(1 + 0.8 z(mean)) the mean-only model predicts that log-degree for
    every gene; with too few TFs or no positives the feature is 0 (constant)."""
    from scregnet.grn.label_features import MIN_DEGREE_TFS, tf_degree

    rng = np.random.default_rng(0)
    stats = rng.normal(size=(300, 3)) * [1.0, 2.0, 0.1] + [2.0, 1.0, 0.5]
    z_mean = (stats[:, 0] - stats[:, 0].mean()) / stats[:, 0].std()
    tfs = np.arange(60)
    degree = rng.poisson(np.exp(1.0 + 0.8 * z_mean[tfs])).astype(float)
    got = tf_degree(stats, tfs, degree)
    assert got.shape == (2, 300)
    truth = 1.0 + 0.8 * z_mean
    assert np.corrcoef(got[0], truth)[0, 1] > 0.99
    assert np.abs(got[0] - truth).mean() < 0.15
    assert np.corrcoef(got[1], truth)[0, 1] > 0.95  # the 3-covariate model finds it too
    few = tfs[: MIN_DEGREE_TFS - 1]
    assert not tf_degree(stats, few, degree[: few.size]).any()
    assert not tf_degree(stats, tfs, np.zeros(tfs.size)).any()


def test_label_features_tf_degree_is_out_of_fold(tmp_path: Path) -> None:
    """A labelled TF's predicted out-degree comes from the degree models fitted on the other
    groups' TFs only (its own labels never enter it); an unlabelled TF's from every labelled TF."""
    from scregnet.grn.config import LABEL_FEATURE_NAMES
    from scregnet.grn.label_features import tf_degree

    builder = _selection_world(tmp_path)
    n_genes = builder.n_genes
    rng = np.random.default_rng(1)
    rates = rng.uniform(0.05, 0.6, size=10)
    y = (rng.random((10, n_genes)) < rates[:, None]).astype(np.int8)
    np.fill_diagonal(y[:, :10], 0)
    stats = builder.gene_stats.numpy()

    def features(labels: np.ndarray) -> tuple[LabelFeatures, np.ndarray]:
        lf = _labelled_tfs(builder, labels)
        z = lf(torch.as_tensor([0, 12]), torch.as_tensor([5, 5]))
        return lf, (z * lf.scale + lf.mean).numpy()

    cols = [LABEL_FEATURE_NAMES.index(n) for n in ("tf_degree_mean", "tf_degree_stats")]
    lf, got = features(y)
    degree = y.sum(axis=1).astype(float)
    group = lf.group.numpy()
    other = np.flatnonzero(group != group[0])
    np.testing.assert_allclose(
        got[0, cols], tf_degree(stats, other, degree[other])[:, 0], rtol=1e-4
    )
    np.testing.assert_allclose(
        got[1, cols], tf_degree(stats, np.arange(10), degree)[:, 12], rtol=1e-4
    )
    # TF 0's own labels changed: its degree features stay, the unlabelled TF's move
    y2 = y.copy()
    y2[0] = 1 - y2[0]
    y2[0, 0] = 0
    _, got2 = features(y2)
    np.testing.assert_allclose(got2[0, cols], got[0, cols], rtol=1e-4)
    assert not np.allclose(got2[1, cols], got[1, cols], rtol=1e-3)


def test_degree_term_is_kept_only_when_it_ranks_the_tfs() -> None:
    """The TF out-degree term is added when it raises the pooled held-out AUPRC beyond the
    standard-error rule (a column tracking each TF's positive rate), and not for a column of
    per-TF noise."""
    from scregnet.grn.readout import DEGREE_WEIGHTS, choose_degree_term

    rng = np.random.default_rng(0)
    n_tfs, n_targets = 40, 200
    rate = np.exp(rng.normal(-2.5, 1.0, size=n_tfs)).clip(0.005, 0.6)
    tf = np.repeat(np.arange(n_tfs), n_targets)
    label = (rng.random(tf.size) < rate[tf]).astype(np.int8)
    score = label * 1.0 + rng.normal(size=tf.size)  # ranks targets within a TF, not the TFs
    informative = np.log(rate[tf])
    informative = (informative - informative.mean()) / informative.std()
    noise = rng.normal(size=n_tfs)[tf]
    boot = np.random.default_rng(1)
    skip, record = choose_degree_term(
        "prior", score, {"tf_degree_mean": informative}, tf, label, boot, 100
    )
    assert skip.degree == "tf_degree_mean" and skip.degree_weight in DEGREE_WEIGHTS
    assert record["readout"] == f"prior + {skip.degree_weight} x tf_degree_mean"
    assert record["tf_degree_gain"] > 2 * record["tf_degree_gain_se"] > 0
    skip, record = choose_degree_term(
        "prior", score, {"tf_degree_mean": noise}, tf, label, boot, 100
    )
    assert skip.degree is None and record["tf_degree"] is None


def test_fitted_read_out_needs_more_standard_errors_from_few_tfs() -> None:
    """A fitted read-out's per-TF gain must exceed Student's t quantile of standard errors when
    the validation TFs are few (the SE itself comes from them); from 62 TFs on the rule is 2
    SEs. The same gain that passes 2 SEs on 2 TFs fails there and passes on 30."""
    from scregnet.grn.readout import SE_MULTIPLE, paired_gain, se_multiple

    assert se_multiple(1) == float("inf") and se_multiple(0) == float("inf")
    assert se_multiple(2) == pytest.approx(12.706, abs=1e-3)
    assert se_multiple(3) == pytest.approx(4.303, abs=1e-3)
    assert se_multiple(11) == pytest.approx(2.228, abs=1e-3)
    assert se_multiple(62) == se_multiple(500) == SE_MULTIPLE
    assert all(se_multiple(n) >= se_multiple(n + 1) for n in range(2, 80))

    base = np.array([0.30, 0.40])
    gain, se, wins = paired_gain(base + np.array([0.10, 0.14]), base)
    assert gain == pytest.approx(0.12) and se == pytest.approx(0.02)
    assert gain > SE_MULTIPLE * se and not wins  # 6 SEs: not enough from 2 TFs
    rng = np.random.default_rng(0)
    base30 = rng.uniform(0.2, 0.5, size=30)
    gain, se, wins = paired_gain(base30 + rng.normal(0.12, 0.05, size=30), base30)
    assert wins and gain > se_multiple(30) * se
    assert paired_gain(base[:1] + 0.5, base[:1])[2] is False  # one TF: no error, no win


def test_fit_starts_the_network_from_a_transferred_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fit(init_network=...)``: every network the fit trains starts from the given weights (the
    skip read-out and the gate are its own); a state of another configuration is refused."""
    import scregnet.grn.train as train_mod
    from scregnet.grn.train import TrainConfig, fit, new_network
    from scregnet.seed import seed_everything

    builder = _selection_world(tmp_path)
    labels = _top_pairs_by(builder, 1, 9, 5)
    config = GRNConfig(n_neighbours=3, n_bins=16, embed_dim=8, hidden=16, cells_per_metacell=25)
    torch.manual_seed(1)
    source = DeepMCL(config)
    with torch.no_grad():
        assert source.gate is not None and source.skip is not None
        source.gate.fill_(3.0)
        source.skip.weight.fill_(5.0)
    state = source.state_dict()
    started: list[DeepMCL] = []

    def spy(*args: object, **kwargs: object) -> DeepMCL:
        model = new_network(*args, **kwargs)  # type: ignore[arg-type]
        started.append(copy.deepcopy(model))
        return model

    monkeypatch.setattr(train_mod, "new_network", spy)
    fit(
        builder,
        labels,
        model_config=config,
        config=TrainConfig(epochs=1),
        rng=seed_everything(0),
        init_network=state,
    )
    assert started
    for model in started:
        own = model.state_dict()
        assert float(own["gate"]) == 0.0 and not torch.equal(
            own["skip.weight"], state["skip.weight"]
        )
        for key, value in state.items():
            if not key.startswith(("skip.", "gate")):
                assert torch.equal(own[key], value), key
    with pytest.raises(InputError, match="does not fit"):
        new_network(GRNConfig(n_neighbours=3, n_bins=16, embed_dim=16, hidden=16), builder, state)


def _pair_feature_model() -> DeepMCL:
    """An untrained model with pair features at the selection world's sizes (torch seed 0)."""
    from scregnet.grn.config import N_PAIR_FEATURES

    torch.manual_seed(0)
    return DeepMCL(GRNConfig(n_neighbours=3, n_bins=16, n_pair_features=N_PAIR_FEATURES)).eval()


def test_scoring_at_gate_zero_reads_the_read_out_alone(tmp_path: Path) -> None:
    """A model whose gate is 0 scores every pair by its skip read-out without building images: the
    same logits the full forward pass gives, uniform view weights (no view enters the score); with
    the gate open the network and its attention are used."""
    from scregnet.grn.api import iter_scores
    from scregnet.grn.train import forward_pairs, neighbour_embeddings

    builder = _selection_world(tmp_path)
    model = _pair_feature_model()
    assert model.skip is not None and model.gate is not None
    with torch.no_grad():
        model.skip.weight.normal_()
    tfs = [0, 3]

    def scored() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        parts = list(iter_scores(model, builder, tfs, batch_size=7))
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]

    tf, target, fast, weights = scored()
    bank = neighbour_embeddings(model, builder, genes=np.arange(builder.n_genes))
    with torch.no_grad():
        full = forward_pairs(model, builder, torch.as_tensor(tf), torch.as_tensor(target), bank)
    np.testing.assert_allclose(fast, torch.sigmoid(full.logit).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(weights, 0.5)
    with torch.no_grad():
        model.gate.fill_(0.5)
    _, _, opened, weights = scored()
    assert not np.allclose(opened, fast)
    assert not np.allclose(weights, 0.5)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)


def test_scores_keep_the_order_of_large_logits(tmp_path: Path) -> None:
    """Read-out logits in the tens (a fixed read-out on a prior with a small scale, as with labels
    for a few TFs) still order the pairs: scores are float64 probabilities, where float32 ones
    are all 1 and tie."""
    from scregnet.grn.api import iter_scores
    from scregnet.grn.config import N_PAIR_FEATURES
    from scregnet.grn.train import predict_pairs

    builder = _selection_world(tmp_path)
    model = _pair_feature_model()
    assert model.skip is not None and model.gate is not None
    with torch.no_grad():
        model.skip.weight.zero_()
        model.skip.weight[0, 1] = 0.1  # |Spearman|: a small term on a large constant
        model.skip.bias.fill_(18.0)
    tf = np.zeros(builder.n_genes - 1, dtype=np.intp)
    target = np.arange(1, builder.n_genes, dtype=np.intp)
    labels = PairLabels(tf, target, (target % 5 == 0).astype(np.int8))
    scores = predict_pairs(model, builder, labels)
    assert scores.dtype == np.float64 and np.all(scores < 1.0)
    assert np.all(np.float32(scores) == 1.0)  # what float32 would have kept: one tie
    features = builder.features(torch.as_tensor(tf), torch.as_tensor(target), N_PAIR_FEATURES)
    spearman = features[:, 1].double().numpy()
    assert np.array_equal(np.argsort(-scores, kind="stable"), np.argsort(-spearman, kind="stable"))
    _, _, streamed, _ = (
        np.concatenate(p) for p in zip(*iter_scores(model, builder, [0]), strict=True)
    )
    np.testing.assert_array_equal(streamed, scores)


def test_a_shard_reads_back_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scores one bit apart keep their order through a shard file (pandas' default float parser
    does not), binding NaN stays missing and gene names such as 'NA' stay names."""
    from scregnet.grn.edges import EdgeScores
    from scregnet.grn.shards import read_shards, shard_tfs, write_shard

    close = [0.17455373928951884, 0.17455373928951887, 0.1676330662155307, 0.16763306621553073]
    rng = np.random.default_rng(0)
    scores = EdgeScores(
        genes=["NA", "TF1", "G1", "G2", "nan"],
        views=["v1", "v2"],
        tf=np.array([0, 0, 1, 1, 1, 0]),
        target=np.array([2, 3, 2, 3, 4, 4]),
        score=np.array([*close, *rng.uniform(size=2)]),
        view_weights=rng.dirichlet([1, 1], size=6).astype(np.float32),
        binding=np.array([0.5, np.nan, 0.25, 0.0, np.nan, 1.0], dtype=np.float32),
        method="a read-out",
    )
    path = tmp_path / "s.tsv"
    write_shard(scores, path, shard=(1, 1), model="m" * 16, tfs="t" * 16)
    back = read_shards([path])
    order = np.lexsort((back.target, back.tf))
    names = np.asarray(back.genes, dtype=object)
    assert list(names[back.tf[order]]) == ["NA"] * 3 + ["TF1"] * 3
    assert list(names[back.target[order]]) == ["G1", "G2", "nan", "G1", "G2", "nan"]
    assert back.score[order].tolist() == [
        close[0],
        close[1],
        scores.score[5],
        *close[2:],
        scores.score[4],
    ]
    np.testing.assert_array_equal(back.view_weights[order], scores.view_weights[[0, 1, 5, 2, 3, 4]])
    assert back.binding is not None
    np.testing.assert_array_equal(back.binding[order], scores.binding[[0, 1, 5, 2, 3, 4]])
    assert back.method == "a read-out"
    # every float32 (attention, binding) and float64 (score) reads back bit for bit, including
    # neighbours one bit apart, subnormals and both ends of [0, 1]
    n = 20_000
    bits = rng.integers(0, 0x3F800001, size=(n, 2), dtype=np.uint32)  # float32 in [0, 1]
    weights = bits.view(np.float32)
    weights[:4] = [[0.0, 1.0], [1e-45, np.nextafter(np.float32(1), np.float32(0))]] * 2
    dense = EdgeScores(
        genes=[f"G{i}" for i in range(n + 1)],
        views=["v1", "v2"],
        tf=np.zeros(n, dtype=np.intp),
        target=np.arange(1, n + 1),
        score=np.nextafter(rng.uniform(size=n), 2.0),
        view_weights=weights,
        binding=weights[:, 1].copy(),
        method="m",
    )
    many = tmp_path / "many.tsv"
    write_shard(dense, many, shard=(1, 1), model="m" * 16, tfs="t" * 16)
    read = read_shards([many])
    # each pair's row in `dense`: its target G<i> is row i - 1
    row = np.array([int(read.genes[t][1:]) - 1 for t in read.target])
    for name in ("score", "view_weights", "binding"):
        got, want = getattr(read, name), getattr(dense, name)[row]
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(
            np.ascontiguousarray(got).view(np.uint8),
            np.ascontiguousarray(want).view(np.uint8),
            err_msg=name,
        )
    # read a few rows at a time (a genome-wide merge reads millions): the same pairs and values
    import scregnet.grn.shards as shards

    monkeypatch.setattr(shards, "CHUNK_ROWS", 4)
    chunked = read_shards([path])
    assert chunked.genes == back.genes
    for name in ("tf", "target", "score", "view_weights", "binding"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(back, name), err_msg=name)
    # TFs are dealt into contiguous groups whose sizes differ by at most one
    groups = [shard_tfs(list(range(10)), k, 4) for k in range(1, 5)]
    assert groups == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert shard_tfs([3, 1], 3, 3) == []
    # a shard that is not UTF-8 text, or lacks a column, is one clear error naming it
    latin1 = tmp_path / "latin1.tsv"
    text = path.read_bytes().replace(b"TF1", b"TF\xe91")
    latin1.write_bytes(text)
    with pytest.raises(InputError, match="not UTF-8"):
        read_shards([latin1])
    cut = tmp_path / "cut.tsv"
    cut.write_text(path.read_text().splitlines()[0] + "\ntf\ttarget\nA\tB\n")
    with pytest.raises(InputError, match="lacks the columns"):
        read_shards([cut])
    # a pair scored twice (here the same row written again, as the last row) is refused
    lines = path.read_text().splitlines()
    # a shard cut short inside its last row, or with a value that is not a finite number where
    # the merge needs one, is refused naming it
    cut_row = tmp_path / "cut_row.tsv"
    cut_row.write_text("\n".join(lines)[:-12])
    score_field = lines[2].split("\t")[2]
    for name, text in [
        ("cut_row.tsv", None),
        ("nan_score.tsv", lines[2].replace(score_field, "nan")),
        ("inf_score.tsv", lines[2].replace(score_field, "inf")),
        ("word.tsv", lines[2].rsplit("\t", 1)[0] + "\thigh"),
    ]:
        bad = tmp_path / name
        if text is not None:
            bad.write_text("\n".join([*lines[:2], text, *lines[3:]]) + "\n")
        with pytest.raises(InputError, match="missing or non-numeric value") as caught:
            read_shards([bad])
        assert caught.value.path == str(bad)
    # one row more than written: the header's pair count says so too (the next two files)
    counted = lines[0].replace(f"pairs={len(lines) - 2}", f"pairs={len(lines) - 1}")
    assert counted != lines[0]
    twice = tmp_path / "twice.tsv"
    twice.write_text("\n".join([counted, *lines[1:], lines[3]]) + "\n")
    with pytest.raises(InputError, match="score some pairs twice"):
        read_shards([twice])
    again = tmp_path / "again.tsv"
    again.write_text("\n".join([counted, *lines[1:], lines[3].replace("\t0.", "\t0.1", 1)]) + "\n")
    with pytest.raises(InputError, match="score some pairs twice"):
        read_shards([again])


@pytest.mark.parametrize("with_binding", [True, False])
def test_ranked_edges_are_written_as_pandas_writes_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_binding: bool
) -> None:
    """The chunked edges writer gives the bytes of one ``DataFrame.to_csv(sep='\\t',
    float_format='%.6g')`` of the ranked table: ties ordered by TF then target name, NaN binding
    empty, names with a tab or a quote quoted, across chunk boundaries."""
    import scregnet.grn.edges as edges
    from scregnet.grn.edges import EdgeScores, write_outputs

    monkeypatch.setattr(edges, "WRITE_ROWS", 7)
    rng = np.random.default_rng(2)
    genes = ["B", "a", 'q"t', "tab\there", "Z", "m", "NA", "x1"]
    n = 20
    pairs = rng.choice(3 * len(genes), size=n, replace=False)  # distinct (tf, target) pairs
    tf, target = pairs // len(genes), pairs % len(genes)
    score = rng.choice([0.5, 0.25, 1e-7, 123456789.0, 0.1 + 0.2], n)  # many ties
    weights = rng.dirichlet([1, 1], size=n).astype(np.float32)
    scores = EdgeScores(genes, ["v1", "v2"], tf, target, score, weights, method="target prior")
    if with_binding:
        binding = rng.uniform(size=n).astype(np.float32)
        binding[::5] = np.nan
        scores.binding = binding
        scores.combine_with_binding()
    write_outputs(scores, tmp_path / "e.tsv")

    names = np.asarray(genes, dtype=object)
    table = pd.DataFrame({"tf": names[tf], "target": names[target], "score": scores.score})
    table = table.sort_values(["score", "tf", "target"], ascending=[False, True, True])
    order = table.index.to_numpy()
    table["rank"] = np.arange(1, n + 1)
    table["method"] = scores.method
    if with_binding:
        assert scores.expression_score is not None and scores.binding is not None
        table["expression_score"] = scores.expression_score[order]
        table["binding_prior"] = scores.binding[order]
    for j, view in enumerate(scores.views):
        table[f"attention_{view}"] = weights[order, j]
    expected = table.to_csv(sep="\t", index=False, float_format="%.6g", lineterminator="\n")
    assert (tmp_path / "e.tsv").read_text() == expected
    back = pd.read_csv(tmp_path / "e.tsv", sep="\t", keep_default_na=False)
    assert set(back["tf"]) <= set(genes) and back["rank"].tolist() == list(range(1, n + 1))


def test_log_expression_is_the_same_from_sparse_dense_and_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counts give log1p(counts / library x 10^4) in float32 whether the matrix is sparse or dense
    and however many cells a block holds; normalised values pass through."""
    import scregnet.grn.data as grn_data

    rng = np.random.default_rng(4)
    x = rng.poisson(rng.gamma(0.5, 2.0, 30), (25, 30)).astype(np.float32)
    x[3] = 0  # a cell without counts stays 0
    lib = x.sum(axis=1, keepdims=True).astype(np.float64)
    lib[lib == 0] = 1.0
    expected = np.log1p(x / lib * 1e4).astype(np.float32)
    monkeypatch.setattr(grn_data, "LOG_ROWS", 4)
    # the last: each count stored as two entries of one cell and gene (a non-canonical CSR)
    csr = sp.csr_matrix(x)
    pairs = np.stack([csr.data - 1, np.ones(csr.nnz)], axis=1).ravel()  # count - 1, then 1
    doubled = sp.csr_matrix((pairs, np.repeat(csr.indices, 2), csr.indptr * 2), shape=x.shape)
    assert doubled.nnz == 2 * csr.nnz and not doubled.has_canonical_format
    for matrix in (x, sp.csr_matrix(x), sp.csc_matrix(x), x.astype(np.int64), doubled):
        np.testing.assert_array_equal(grn_data._log_expression(matrix, Path("x.h5ad")), expected)
    normalised = np.log1p(x) + 0.25
    np.testing.assert_array_equal(
        grn_data._log_expression(sp.csr_matrix(normalised), Path("x.h5ad")),
        np.asarray(sp.csr_matrix(normalised).toarray(), dtype=np.float32),
    )
    np.testing.assert_array_equal(grn_data._log_expression(normalised, Path("x.h5ad")), normalised)
