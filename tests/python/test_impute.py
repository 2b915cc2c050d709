"""Imputation stage: data contract, model maths, training/inference, CLI flags and bad inputs."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from scregnet.cli import main as cli
from scregnet.errors import InputError
from scregnet.impute import data
from scregnet.impute.model import ImputeConfig, LongConv1d, ScDTL, mmd_rbf

# tiny architecture + schedule so each training run takes a second or two
TINY = {"hidden_dim": 32, "latent_dim": 8}
TINY_MODEL = {"unet_channels": (4, 8), "unet_kernels": (7, 15), "fusion_channels": 4}
TINY_TRAIN = {"pretrain_epochs": 1, "adapt_epochs": 1, "bulk_steps": 2}


def synthetic_counts(
    n_cells: int = 90, n_genes: int = 240, n_types: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell-type programmes x library size, Poisson sampled: (counts, true means, cell types)."""
    rng = np.random.default_rng(seed)
    types = np.arange(n_cells) % n_types
    base = rng.gamma(0.8, 1.0, size=n_genes)
    programme = rng.lognormal(0.0, 1.0, size=(n_types, n_genes))
    mean = base * programme[types]
    lib = rng.lognormal(np.log(1200), 0.3, size=(n_cells, 1))
    rate = mean / mean.sum(axis=1, keepdims=True) * lib
    return rng.poisson(rate).astype(np.float32), rate, types


def make_adata(
    n_cells: int = 90, n_genes: int = 240, seed: int = 0, n_types: int = 3
) -> ad.AnnData:
    """Cells of ``n_types`` types with no structure within a type: with 3 types of 30 cells,
    smoothing over 30 neighbours predicts held-out molecules about as well as over 15, so the
    pseudobulk stage runs only when asked for (``use_bulk=True``); with 6 types of 15 it runs by
    default."""
    counts, _, types = synthetic_counts(n_cells, n_genes, n_types=n_types, seed=seed)
    adata = ad.AnnData(sp.csr_matrix(counts))
    adata.obs_names = [f"cell{i}" for i in range(n_cells)]
    adata.var_names = [f"G{i}" for i in range(n_genes)]
    adata.obs["group"] = [f"t{t}" for t in types]
    return adata


def bulk_frame(adata: ad.AnnData, genes: list[str] | None = None) -> pd.DataFrame:
    """A genes x samples bulk matrix summed from groups of cells."""
    counts = np.asarray(adata.X.toarray())
    groups = np.array_split(np.arange(adata.n_obs), 6)
    frame = pd.DataFrame(
        np.stack([counts[g].sum(axis=0) for g in groups], axis=1).astype(int),
        index=list(adata.var_names) if genes is None else genes,
        columns=[f"bulk{i}" for i in range(6)],
    )
    frame.index.name = "gene"
    return frame


def quick(adata: ad.AnnData, **kw: object):  # type: ignore[no-untyped-def]
    from scregnet.impute.api import impute

    options = {
        "epochs": 1,
        "device": "cpu",
        "seed": 0,
        "threads": 1,
        "train_options": TINY_TRAIN,
        "model_options": TINY_MODEL,
        **TINY,
    }
    options.update(kw)
    return impute(adata, **options)  # type: ignore[arg-type]


# ------------------------------------------------------------------ data contract
@pytest.mark.parametrize("sparse", [True, False])
def test_get_counts_accepts_near_integers(sparse: bool) -> None:
    x = np.array([[1.0, 0.0, 2.999999999], [0.0, 4.0000000001, 0.0]])
    adata = ad.AnnData(sp.csr_matrix(x) if sparse else x)
    counts = data.get_counts(adata)
    assert sp.issparse(counts)
    np.testing.assert_array_equal(counts.toarray(), [[1, 0, 3], [0, 4, 0]])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([[1.0, np.nan], [0.0, 1.0]], "NaN"),
        ([[1.0, -2.0], [0.0, 1.0]], "negative"),
        ([[1.5, 2.0], [0.0, 1.0]], "non-integer"),
        ([[0.0, 0.0], [0.0, 0.0]], "no non-zero"),
    ],
)
def test_get_counts_rejects_bad_values(values: list[list[float]], message: str) -> None:
    with pytest.raises(InputError, match=message):
        data.get_counts(ad.AnnData(np.array(values)), path="x.h5ad")


def test_non_integer_error_points_to_layer_and_layer_picks_counts() -> None:
    counts = np.array([[1.0, 0.0], [2.0, 3.0]])
    adata = ad.AnnData(np.log1p(counts))
    adata.layers["counts"] = counts
    with pytest.raises(InputError, match="--layer"):
        data.get_counts(adata)
    np.testing.assert_array_equal(data.get_counts(adata, layer="counts").toarray(), counts)
    with pytest.raises(InputError, match="layer 'raw' not found"):
        data.get_counts(adata, layer="raw")


def test_empty_matrix_is_an_error() -> None:
    with pytest.raises(InputError, match="empty matrix"):
        data.get_counts(ad.AnnData(np.zeros((0, 5))))


def test_normalisation_is_counts_per_10k_then_log1p() -> None:
    x = np.array([[1.0, 3.0], [0.0, 0.0]])
    out = data.normalize_log1p(x)
    np.testing.assert_allclose(out[0], np.log1p([2500.0, 7500.0]), rtol=1e-6)
    np.testing.assert_array_equal(out[1], [0, 0])
    np.testing.assert_allclose(data.normalize_log1p_sparse(sp.csr_matrix(x)).toarray(), out)
    # an explicit library (totals over all genes) changes the scale
    np.testing.assert_allclose(
        data.normalize_log1p(x, np.array([8.0, 1.0]))[0], np.log1p([1250.0, 3750.0]), rtol=1e-6
    )


def test_intersect_genes_needs_200_shared() -> None:
    sc = [f"G{i}" for i in range(300)]
    assert data.intersect_genes(sc, sc[50:260][::-1]) == sc[50:260]
    with pytest.raises(InputError, match="only 199 genes shared"):
        data.intersect_genes(sc, [*sc[:199], "OTHER"])


def test_read_bulk_tsv_validates(tmp_path: Path) -> None:
    good = tmp_path / "bulk.tsv"
    good.write_text("gene\ts1\ts2\nA\t1\t2\nB\t0\t5\n")
    frame = data.read_bulk_tsv(good)
    assert list(frame.columns) == ["s1", "s2"] and list(frame.index) == ["A", "B"]
    numbered = tmp_path / "numbered.tsv"  # samples numbered 1, 2: a header
    numbered.write_text("gene\t1\t2\nA\t1\t2\n")
    assert list(data.read_bulk_tsv(numbered).columns) == ["1", "2"]
    for text, message in [
        ("gene\ts1\nA\t-1\n", "negative"),
        ("gene\ts1\nA\tNaN\n", "NaN"),
        ("gene\ts1\nA\t1.5\n", "non-integer"),
        ("gene\ts1\nA\t1\nA\t2\n", "duplicate gene"),
        ("gene\ts1\n", "empty"),
        ("A\t13148\t12767\nB\t3\t0\n", r"first line looks like data.*13148, 12767"),
        ("A\t5\t5\nB\t3\t0\n", r"first line looks like data.*\b5, 5\.1"),
    ]:
        bad = tmp_path / "bad.tsv"
        bad.write_text(text)
        with pytest.raises(InputError, match=message):
            data.read_bulk_tsv(bad)


def test_gene_order_groups_correlated_genes() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 1)), rng.normal(size=(200, 1))
    # genes 0, 2, 4 follow a; genes 1, 3, 5 follow b
    x = np.hstack([a, b, a, b, a, b]) + 0.05 * rng.normal(size=(200, 6))
    order = list(data.gene_order(x))
    pos = {g: order.index(g) for g in range(6)}
    assert {pos[0], pos[2], pos[4]} in ({0, 1, 2}, {3, 4, 5})


def test_cluster_pseudobulk_sums_raw_counts() -> None:
    adata = make_adata()
    counts = data.get_counts(adata)
    lib = data.library_sizes(counts)
    pb = data.cluster_pseudobulk(counts, lib, rng=np.random.default_rng(0), replicates=4)
    assert pb.counts.shape == (4 * pb.n_clusters, adata.n_vars)
    np.testing.assert_allclose(pb.counts.sum(axis=1), pb.library)
    assert pb.library.max() <= counts.sum()


# ------------------------------------------------------------------ model maths
def test_long_conv_matches_depthwise_conv1d() -> None:
    torch.manual_seed(0)
    conv = LongConv1d(3, 15)
    x = torch.randn(2, 3, 41)
    ref = torch.nn.functional.conv1d(
        x, conv.weight.unsqueeze(1), conv.bias, padding="same", groups=3
    )
    torch.testing.assert_close(conv(x), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("use_unet", [True, False])
@pytest.mark.parametrize("use_neighbours", [True, False])
@pytest.mark.parametrize("use_attention", [True, False])
def test_model_shapes(use_unet: bool, use_neighbours: bool, use_attention: bool) -> None:
    torch.manual_seed(0)
    cfg = ImputeConfig(
        n_genes=103,
        use_unet=use_unet,
        use_attention=use_attention,
        use_neighbours=use_neighbours,
        **TINY,  # type: ignore[arg-type]
        **TINY_MODEL,  # type: ignore[arg-type]
    )
    model = ScDTL(cfg)
    x, depth, nbr = torch.rand(5, 103), torch.rand(5, 1), torch.rand(5, 103)
    out = model(x, depth, nbr if use_neighbours else None)
    assert out.imputed.shape == (5, 103) and out.dae.shape == (5, 103)
    assert out.latent.shape == (5, 8)
    assert (out.imputed >= 0).all()
    assert (model.unet is None) == (not use_unet)
    assert (model.attention is None) == (not use_attention)
    assert cfg.in_channels == (3 if use_neighbours else 2)
    if use_neighbours:
        # the neighbour channel is an input: changing it changes the output
        assert not torch.allclose(model(x, depth, nbr + 1).imputed, out.imputed)
        with pytest.raises(ValueError, match="neighbour"):
            model(x, depth, None)


def test_gene_wise_head_has_per_gene_weights() -> None:
    from scregnet.impute.model import GeneWiseHead

    head = GeneWiseHead(3, 4)
    h = torch.ones(2, 3, 4)
    with torch.no_grad():
        head.weight[2] += 1.0  # only gene 2's read-out changes
    out = head(h)
    base = float(head.shared.detach().sum())
    out = out.detach()
    torch.testing.assert_close(out[:, [0, 1, 3]], torch.full((2, 3), base))
    torch.testing.assert_close(out[:, 2], torch.full((2,), base + 3.0))


def test_mmd_detects_shift() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 4, generator=g)
    same = torch.randn(64, 4, generator=g)
    shifted = torch.randn(64, 4, generator=g) + 2.0
    assert mmd_rbf(a, shifted) > 5 * mmd_rbf(a, same)
    assert float(mmd_rbf(a, a)) == pytest.approx(0.0, abs=1e-6)


def test_batched_inference_matches_one_batch() -> None:
    from scregnet.device import resolve_device
    from scregnet.impute.train import predict

    adata = make_adata(n_cells=23, n_genes=50)
    counts = data.get_counts(adata)
    lib = data.library_sizes(counts)
    pool = data.neighbour_pool(data.neighbour_graph(counts, lib, k=4, n_pcs=5))
    torch.manual_seed(0)
    model = ScDTL(ImputeConfig(n_genes=50, **TINY, **TINY_MODEL))  # type: ignore[arg-type]
    cpu = resolve_device("cpu")
    whole = predict(model, counts, lib, pool=pool, device=cpu, batch_size=1024)
    np.testing.assert_allclose(
        predict(model, counts, lib, pool=pool, device=cpu, batch_size=4), whole, atol=1e-6
    )
    with pytest.raises(ValueError, match="pool"):
        predict(model, counts, lib, pool=None, device=cpu)


def test_inference_out_of_device_memory_halves_the_batch_same_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from scregnet.device import resolve_device
    from scregnet.impute.train import predict

    adata = make_adata(n_cells=23, n_genes=50)
    counts = data.get_counts(adata)
    lib = data.library_sizes(counts)
    torch.manual_seed(0)
    model = ScDTL(ImputeConfig(n_genes=50, use_neighbours=False, **TINY, **TINY_MODEL))  # type: ignore[arg-type]
    cpu = resolve_device("cpu")
    whole = predict(model, counts, lib, pool=None, device=cpu, batch_size=1024)
    forward = ScDTL.forward
    sizes: list[int] = []

    def small_only(self, x, *args, **kwargs):  # type: ignore[no-untyped-def]
        sizes.append(x.shape[0])
        if x.shape[0] > 5:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return forward(self, x, *args, **kwargs)

    monkeypatch.setattr(ScDTL, "forward", small_only)
    halved = predict(model, counts, lib, pool=None, device=cpu, batch_size=1024)
    np.testing.assert_allclose(halved, whole, atol=1e-6)  # as batch_size=4 in the test above
    assert sizes[0] == 23 and max(sizes[-3:]) <= 5


def test_gene_scale_matches_each_genes_expected_total_to_its_observed_counts() -> None:
    from scregnet.device import resolve_device
    from scregnet.impute.train import GENE_SCALE_RANGE, fit_gene_scale, init_output_bias, predict

    adata = make_adata(n_cells=40, n_genes=60, seed=3)
    counts = data.get_counts(adata)
    lib = data.library_sizes(counts)
    torch.manual_seed(0)
    model = ScDTL(ImputeConfig(n_genes=60, use_neighbours=False, **TINY, **TINY_MODEL))  # type: ignore[arg-type]
    init_output_bias(model, counts, lib)  # predictions near each gene's mean, as after training
    cpu = resolve_device("cpu")

    def totals() -> np.ndarray:
        pred = predict(model, counts, lib, pool=None, device=cpu).astype(np.float64)
        return (np.expm1(pred) * (lib / data.TARGET_SUM)[:, None]).sum(axis=0)

    observed = np.asarray(counts.sum(axis=0)).ravel()
    # gene 0 predicted e^10 times too high, gene 1 e^10 times too low: their scales are clipped
    with torch.no_grad():
        model.log_gene_scale[:2] = torch.tensor([10.0, -10.0])
    before = totals()
    scale = fit_gene_scale(model, counts, lib, pool=None, device=cpu)
    np.testing.assert_allclose(scale[:2], GENE_SCALE_RANGE, rtol=1e-12)
    np.testing.assert_allclose(
        model.log_gene_scale[:2].numpy(), [10 + np.log(0.1), -10 + np.log(10)], rtol=1e-5
    )
    inside = (scale > GENE_SCALE_RANGE[0]) & (scale < GENE_SCALE_RANGE[1])
    assert inside.sum() > 40 and not np.allclose(before[inside], observed[inside], rtol=0.05)
    np.testing.assert_allclose(totals()[inside], observed[inside], rtol=1e-3)
    np.testing.assert_allclose(
        model.log_gene_scale[2:].numpy(), np.log(scale[2:]), rtol=1e-5, atol=1e-6
    )


def test_neighbour_graph_excludes_self_and_finds_own_type() -> None:
    counts, _, types = synthetic_counts(n_cells=90, n_genes=240, seed=2)
    csr = sp.csr_matrix(counts)
    lib = data.library_sizes(csr)
    nbrs = data.neighbour_graph(csr, lib, k=5, n_pcs=10)
    assert nbrs.shape == (90, 5)
    assert not (nbrs == np.arange(90)[:, None]).any()
    assert (types[nbrs] == types[:, None]).mean() > 0.95
    np.testing.assert_array_equal(nbrs, data.neighbour_graph(csr, lib, k=5, n_pcs=10))
    pool = data.neighbour_pool(nbrs)
    np.testing.assert_allclose((pool @ counts)[0], counts[nbrs[0]].sum(axis=0))
    # fewer cells than k: every other cell
    assert data.neighbour_graph(csr[:3], lib[:3], k=5, n_pcs=10).shape == (3, 2)


def test_neighbour_count_follows_the_size_of_the_cell_groups() -> None:
    """kNN smoothing's held-out loss sizes the neighbour channel: 20 distinct groups of 12 cells
    keep the smallest candidate (more neighbours mix groups), 2 groups of 150 take the largest."""

    def grouped(n_groups: int, per_group: int) -> sp.csr_matrix:
        rng = np.random.default_rng(0)
        programme = rng.lognormal(0.0, 1.5, size=(n_groups, 300))
        rate = np.repeat(programme / programme.sum(axis=1, keepdims=True) * 3000, per_group, 0)
        return sp.csr_matrix(rng.poisson(rate).astype(np.float32))

    candidates = (15, 30, 50, 100)
    small, losses = data.choose_neighbours(grouped(20, 12), candidates, n_pcs=10, seed=0)
    assert small == 15 and set(losses) == set(candidates)
    large, _ = data.choose_neighbours(grouped(2, 150), candidates, n_pcs=10, seed=0)
    assert large == 100


def test_hold_out_splits_molecules_binomially() -> None:
    from scregnet.impute.train import hold_out

    counts = sp.csr_matrix(synthetic_counts(n_cells=40, n_genes=100)[0])
    train, held = hold_out(counts, 0.1, torch.Generator().manual_seed(0))
    np.testing.assert_array_equal((train + held).toarray(), counts.toarray())
    assert train.min() >= 0 and held.min() >= 0
    assert 0.09 < held.sum() / counts.sum() < 0.11


def test_split_targets_thin_each_cell() -> None:
    from scregnet.impute.train import TrainConfig, split_targets

    counts = torch.tensor(synthetic_counts(n_cells=40, n_genes=100)[0])
    library = counts.sum(dim=1, keepdim=True) * 2  # half the cell's counts in other genes
    cfg = TrainConfig(split_min=0.6, split_max=0.6)
    x_in, depth, target, lib_target = split_targets(counts, library, cfg, torch.Generator())
    kept = torch.expm1(x_in)  # CP10k of the input part
    assert (target >= 0).all() and (target <= counts).all()
    # the target holds about 40 % of the molecules; its library adds 40 % of the other genes
    assert 0.37 < float(target.sum() / counts.sum()) < 0.43
    np.testing.assert_allclose(
        lib_target.numpy(),
        (target.sum(1, keepdim=True) + 0.4 * counts.sum(1, keepdim=True)).numpy(),
        rtol=1e-5,
    )
    assert torch.isfinite(depth).all() and kept.shape == counts.shape


def test_nb_nll_is_minimised_at_the_true_mean() -> None:
    from scregnet.impute.model import nb_nll

    gen = torch.Generator().manual_seed(0)
    counts = torch.poisson(torch.full((4000, 1), 3.0), generator=gen)
    log_theta = torch.tensor([5.0])
    losses = {
        m: float(nb_nll(counts, torch.full_like(counts, m), log_theta).mean())
        for m in (2.0, 3.0, 4.0)
    }
    assert losses[3.0] < min(losses[2.0], losses[4.0])


# ------------------------------------------------------------------ API
def test_impute_keeps_x_and_adds_layer() -> None:
    adata = make_adata(n_types=6)
    x_before = adata.X.copy()
    result = quick(adata)
    out = result.adata
    assert (out.X != x_before).nnz == 0 and (adata.X != x_before).nnz == 0
    layer = out.layers["imputed"]
    assert layer.shape == adata.shape and np.isfinite(layer).all() and (layer >= 0).all()
    assert int(out.var["imputed"].sum()) == len(result.genes) >= adata.n_vars - 3
    assert out.uns["scregnet_impute"]["bulk_source"] == "pseudobulk"
    assert {r["phase"] for r in result.losses} == {"pretrain", "adapt", "fuse"}


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("model_options", {"n_neighbours": 5}),
        ("model_options", {"n_genes": 3}),
        ("train_options", {"epochs": 2}),
    ],
)
def test_options_that_are_keywords_are_refused(option: str, value: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=f"{next(iter(value))}: give as impute\\(\\) keywords"):
        quick(make_adata(), **{option: value})


def test_fill_rule_weights_zeros_by_neighbour_detection() -> None:
    from scregnet.impute.api import evidence_weighted_values, fill_rule_values

    counts = sp.csr_matrix(np.array([[2, 0, 0], [1, 1, 0], [0, 3, 0], [1, 0, 0]], dtype=np.float32))
    imputed = np.full((4, 3), 2.0, dtype=np.float32)
    nbrs = np.array([[1, 2], [0, 2], [0, 1], [1, 2]])
    pool = data.neighbour_pool(nbrs)
    got = evidence_weighted_values(imputed, counts, pool, steps=1, power=1.0)
    # observed entries keep the given value; zeros x the fraction of neighbours detecting the gene
    want = np.array([[2, 2 * 1.0, 0], [2, 2, 0], [2 * 1.0, 2, 0], [2, 2 * 1.0, 0]])
    np.testing.assert_allclose(got, want)
    # without neighbours: the gene's detection rate over all cells
    got = evidence_weighted_values(imputed, counts, None, steps=1, power=1.0)
    np.testing.assert_allclose(got[0], [2, 2 * 0.5, 0])
    # the baseline fill rule keeps observed values and fills zeros from the gene's non-zero mean
    library = np.array([10.0, 20.0, 30.0, 10.0])
    fill = fill_rule_values(counts, library, pool)
    observed = data.normalize_log1p(counts, library)
    seen = counts.toarray() > 0
    np.testing.assert_allclose(fill[seen], observed[seen], rtol=1e-6)
    mean_nz_gene1 = 2.0  # (1 + 3) / 2
    p = detection_probability_of(counts, pool)
    np.testing.assert_allclose(
        fill[0, 1], np.sqrt(p[0, 1]) * np.log1p(mean_nz_gene1 * 1e4 / 10.0), rtol=1e-5
    )
    assert (fill[:, 2] == 0).all()  # never detected: nothing to fill


def detection_probability_of(counts: sp.csr_matrix, pool: sp.csr_matrix) -> np.ndarray:
    from scregnet.impute.api import detection_probability

    return detection_probability(counts, pool)


def test_model_layers_follow_its_expected_counts() -> None:
    from scipy.stats import poisson

    from scregnet.impute.api import expected_layers

    library = np.array([1000.0, 20000.0])
    lam = np.array([[0.01, 0.5, 3.0, 80.0], [0.2, 5.0, 40.0, 500.0]])
    imputed = np.log1p(lam * 1e4 / library[:, None]).astype(np.float32)
    expected, detected = expected_layers(imputed, library)
    k = np.arange(0, 2000)
    for i in range(2):
        c = 1e4 / library[i]
        for j in range(4):
            want = float(poisson.pmf(k, lam[i, j]) @ np.log1p(c * k))
            assert expected[i, j] == pytest.approx(want, rel=2e-3, abs=1e-4)
            p_nz = 1 - np.exp(-lam[i, j])
            assert detected[i, j] == pytest.approx(want / p_nz, rel=2e-3)
    assert (expected <= imputed + 1e-6).all()  # Jensen: E[log] <= log of the mean
    result = quick(make_adata())
    layers = result.adata.layers
    assert (layers["imputed_expected"] <= layers["imputed_detected"] + 1e-5).all()
    assert (layers["imputed_expected"] <= layers["imputed"] + 1e-5).all()
    assert "baseline_fill_rule" in layers


def test_fill_rule_detection_is_diffused() -> None:
    from scregnet.impute.api import detection_probability, evidence_weighted_values

    # 4 cells x 3 genes; neighbours: 0 <-> 1, 2 <-> 3 (two pairs)
    counts = sp.csr_matrix(np.array([[2, 0, 0], [1, 0, 1], [0, 3, 0], [0, 1, 0]], dtype=np.float32))
    pool = data.neighbour_pool(np.array([[1], [0], [3], [2]]))
    det = (counts.toarray() > 0).astype(np.float64)
    one = detection_probability(counts, pool, steps=1)
    np.testing.assert_allclose(one, det[[1, 0, 3, 2]])  # the neighbour's detection
    two = detection_probability(counts, pool, steps=2)
    np.testing.assert_allclose(two, det)  # two steps on a pair: back to the cell itself
    # three neighbours each: cell 0 sees 1, 2, 3 etc.; step 2 averages step 1 over them again
    full = data.neighbour_pool(np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]))
    walk = (np.ones((4, 4)) - np.eye(4)) / 3.0
    np.testing.assert_allclose(
        detection_probability(counts, full, steps=3), walk @ walk @ walk @ det, rtol=1e-6
    )
    # no pool: the fraction of all cells detecting the gene, for every cell
    np.testing.assert_allclose(detection_probability(counts, None), np.tile(det.mean(0), (4, 1)))
    imputed = np.full((4, 3), 2.0, dtype=np.float32)
    got = evidence_weighted_values(imputed, counts, pool, steps=1, power=0.5)
    seen = det > 0
    np.testing.assert_allclose(got[seen], 2.0)  # observed non-zeros keep the given value
    np.testing.assert_allclose(got[~seen], 2.0 * np.sqrt(one[~seen]), rtol=1e-6)
    assert got[0, 2] == pytest.approx(2.0)  # its neighbour detects gene 2: filled fully
    assert got[2, 2] == 0.0  # nobody near cell 2 detects gene 2: stays 0


def test_same_seed_same_output_other_seed_differs() -> None:
    adata = make_adata()
    a = quick(adata, seed=3).adata.layers["imputed"]
    b = quick(adata, seed=3).adata.layers["imputed"]
    c = quick(adata, seed=4).adata.layers["imputed"]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_local_smoothing_gain() -> None:
    """The fewest neighbours' lead over the best wider count, relative to its loss."""
    assert data.local_smoothing_gain({15: 0.5, 30: 0.51, 50: 0.52}) == pytest.approx(0.02)
    assert data.local_smoothing_gain({15: 0.5, 30: 0.52, 50: 0.505}) == pytest.approx(0.01)
    assert data.local_smoothing_gain({15: 0.5, 30: 0.49}) == pytest.approx(-0.02)
    assert data.local_smoothing_gain({15: 0.5}) == math.inf  # too few cells for a wider count


@pytest.mark.parametrize(
    ("losses", "source"),
    [
        ({15: 1.0, 30: 0.99, 50: 1.01}, "shallow_cells"),  # a wider count is chosen
        ({15: 1.0, 30: 1.001, 50: 1.01}, "shallow_cells"),  # the fewest lead by 0.1 %
        ({15: 1.0, 30: 1.003, 50: 1.01}, "pseudobulk"),  # by 0.3 %
        ({15: 1.0}, "pseudobulk"),
    ],
)
def test_the_bulk_stage_is_skipped_where_wider_smoothing_does_as_well(
    losses: dict[int, float],
    source: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without a bulk matrix, the pseudobulk stage runs only when the fewest neighbours predict
    held-out molecules better than any wider count by PSEUDOBULK_MIN_LOCAL_GAIN (0.2 %): else it
    is skipped (logged, recorded, no pretraining)."""
    from scregnet.impute.config import PSEUDOBULK_MIN_LOCAL_GAIN

    assert PSEUDOBULK_MIN_LOCAL_GAIN == 0.002
    chosen = min(losses, key=losses.__getitem__)
    monkeypatch.setattr(data, "choose_neighbours", lambda *a, **k: (chosen, losses))
    with caplog.at_level(logging.INFO, logger="scregnet.impute.api"):
        result = quick(make_adata(), n_neighbours=0)
    assert result.adata.uns["scregnet_impute"]["bulk_source"] == source
    assert result.model.config.n_neighbours == chosen
    phases = {r["phase"] for r in result.losses}
    if source == "shallow_cells":
        assert phases == {"adapt", "fuse"}
        assert result.config["train"]["use_bulk"] is False
        assert "smoothing over more neighbours predicts held-out molecules" in caplog.text
    else:
        assert "pretrain" in phases


def test_a_bulk_matrix_forced_stage_or_fixed_count_keep_the_bulk_stage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the neighbour choice would skip the pseudobulk stage, a bulk matrix, ``use_bulk=True``
    or a fixed neighbour count (no choice made from the data) keep it, and record which."""
    from scregnet.keys import BULK_SOURCES

    monkeypatch.setattr(data, "choose_neighbours", lambda *a, **k: (30, {15: 1.0, 30: 0.9}))
    adata = make_adata()
    assert quick(adata, n_neighbours=0).adata.uns["scregnet_impute"]["bulk_source"] == (
        "shallow_cells"
    )
    assert set(BULK_SOURCES) == {"bulk", "pseudobulk", "shallow_cells", "none"}  # all it writes
    for kw, source in (
        ({"use_bulk": True, "n_neighbours": 0}, "pseudobulk"),
        ({"bulk": bulk_frame(adata), "n_neighbours": 0}, "bulk"),
        ({"n_neighbours": 30}, "pseudobulk"),  # a fixed count is not a choice from the data
    ):
        result = quick(adata, **kw)
        assert result.adata.uns["scregnet_impute"]["bulk_source"] == source, kw
        assert "pretrain" in {r["phase"] for r in result.losses}, kw


def test_ablations_change_training() -> None:
    adata = make_adata(n_types=6)
    no_bulk = quick(adata, use_bulk=False)
    assert {r["phase"] for r in no_bulk.losses} == {"adapt", "fuse"}
    assert all(r["mmd"] == 0 for r in no_bulk.losses)
    assert no_bulk.adata.uns["scregnet_impute"]["bulk_source"] == "none"
    no_unet = quick(adata, use_unet=False)
    assert no_unet.model.unet is None
    no_nbr = quick(adata, use_neighbours=False)
    assert not no_nbr.model.config.use_neighbours
    assert no_nbr.model.dae_proj.weight.shape[1] == 3  # own, depth, DAE reconstruction
    full = quick(adata).adata.layers["imputed"]
    for other in (no_bulk, no_unet, no_nbr):
        assert not np.allclose(other.adata.layers["imputed"], full)
    k5 = quick(adata, n_neighbours=5)
    assert not np.allclose(k5.adata.layers["imputed"], full)


def test_early_stopping_keeps_best_state() -> None:
    adata = make_adata()
    # a learning rate this large makes the held-out error worse after the first epochs
    result = quick(
        adata, epochs=8, train_options={**TINY_TRAIN, "lr": 0.3, "patience": 1, "ema_decay": 0.0}
    )
    fuse = [r for r in result.losses if r["phase"] == "fuse"]
    vals = [float(r["validation"]) for r in fuse]  # type: ignore[arg-type]
    assert all(np.isfinite(vals))
    assert len(fuse) < 8  # stopped early
    assert vals[-1] > min(vals)
    assert result.adata.uns["scregnet_impute"]["epochs"] == len(fuse)


def test_early_stopping_waits_for_the_weight_average() -> None:
    """Epochs without improvement count only once the running average of the weights is
    exponential (99 steps at decay 0.99): until then it still holds the first steps' weights, and
    its held-out loss can rise while training goes well."""
    from scregnet.impute.train import averaging_steps

    assert (averaging_steps(0.99), averaging_steps(0.9), averaging_steps(0.0)) == (99, 9, 0)
    adata = make_adata()  # 90 cells: 3 steps a fusion epoch
    opts = {**TINY_TRAIN, "lr": 0.3, "patience": 1}

    def fusion_epochs(decay: float) -> int:
        result = quick(adata, epochs=8, train_options={**opts, "ema_decay": decay})
        return len([r for r in result.losses if r["phase"] == "fuse"])

    assert fusion_epochs(0.99) == 8  # 24 steps, all inside the average's first 99
    assert fusion_epochs(0.5) < 8  # exponential after one step: stops as without an average


def test_early_stopping_waits_as_many_steps_after_the_best_epoch() -> None:
    """After the best epoch the average needs ``averaging_steps`` steps to move away from it, so
    an epoch without improvement counts only once that many steps have passed since the best."""
    adata = make_adata()  # 90 cells: 3 steps a fusion epoch
    # decay 0.8: 4 steps, i.e. the second epoch after the best is the first one counted
    opts = {**TINY_TRAIN, "lr": 0.3, "patience": 1, "ema_decay": 0.8}
    result = quick(adata, epochs=14, train_options=opts, use_bulk=True)
    vals = [float(r["validation"]) for r in result.losses if r["phase"] == "fuse"]  # type: ignore[arg-type]
    best = int(np.argmin(vals)) + 1
    assert len(vals) < 14  # stopped early
    assert best > 2  # after the average's first 4 steps
    assert len(vals) == best + 2  # not best + 1: the first epoch after the best is not counted
    # the loss table and the record name the epoch whose weights are kept
    assert [int(r["kept"]) for r in result.losses if r["phase"] == "fuse"] == [
        int(epoch == best) for epoch in range(1, len(vals) + 1)
    ]
    assert result.adata.uns["scregnet_impute"]["kept_epoch"] == best


def test_weight_average_is_what_is_kept() -> None:
    """The fusion weights validated and kept are the running average of every step's weights
    (plain mean first, exponential once the decay caps it); decay 0 keeps the trained ones."""
    import torch

    from scregnet.impute.config import TrainConfig
    from scregnet.impute.train import _moving_average

    update = _moving_average(0.99)
    one, zero = torch.ones(2), torch.zeros(2)
    assert float(update(one, zero, 1)[0]) == pytest.approx(0.5)  # the mean of two steps
    assert float(update(one, zero, 3)[0]) == pytest.approx(0.75)  # the mean of four
    assert float(update(one, zero, 10_000)[0]) == pytest.approx(0.99)  # capped at the decay
    adata = make_adata()
    # the per-gene output scale fitted after training is left out: it matches both models'
    # gene totals to the same counts
    opts = {**TINY_TRAIN, "patience": 99, "gene_scale": False}
    plain = quick(adata, epochs=3, train_options={**opts, "ema_decay": 0.0})
    average = quick(adata, epochs=3, train_options=opts)
    gap = np.abs(average.adata.layers["imputed"] - plain.adata.layers["imputed"]).mean()
    assert gap > 0.01
    # nothing held out (no validation): the last running average is kept
    unvalidated = {**opts, "val_fraction": 0.0}
    last_average = quick(adata, epochs=3, train_options=unvalidated)
    last_plain = quick(adata, epochs=3, train_options={**unvalidated, "ema_decay": 0.0})
    assert not np.allclose(last_average.adata.layers["imputed"], last_plain.adata.layers["imputed"])
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="ema_decay"):
            TrainConfig(ema_decay=bad)


@pytest.mark.parametrize("bad", [{"n_neighbours": -1}, {"n_pcs": 0}])
def test_config_refuses_negative_neighbours_and_no_pcs(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=f"need n_neighbours >= 0.*{next(iter(bad.values()))}"):
        ImputeConfig(n_genes=10, **bad)  # type: ignore[arg-type]
    options = bad if "n_neighbours" in bad else {"model_options": {**TINY_MODEL, **bad}}
    with pytest.raises(ValueError, match="n_neighbours >= 0"):
        quick(make_adata(), **options)


def test_n_top_genes_limits_modelled_genes() -> None:
    adata = make_adata()
    result = quick(adata, n_top_genes=60)
    assert int(result.adata.var["imputed"].sum()) == 60 and len(result.genes) == 60
    layer = result.adata.layers["imputed"]
    observed = data.normalize_log1p(adata.X)
    rest = ~result.adata.var["imputed"].to_numpy()
    np.testing.assert_allclose(layer[:, rest], observed[:, rest], rtol=1e-5)


def test_labelled_real_counts_decode_to_integers() -> None:
    """scanpy's pbmc68k_reduced decodes to integer UMI counts whose totals match obs n_counts."""
    import scanpy as sc

    from labelled_counts import pbmc68k_counts

    counts, genes, labels = pbmc68k_counts()
    assert counts.shape == (700, 765) and len(genes) == 765
    assert np.array_equal(counts.data, np.rint(counts.data)) and counts.data.min() >= 1
    assert len(set(labels)) == 10 and "CD14+ Monocyte" in set(labels)
    ref = sc.datasets.pbmc68k_reduced()
    # 765 of the genes only: every cell's total here is at most its recorded total
    assert np.all(np.asarray(counts.sum(axis=1)).ravel() <= ref.obs["n_counts"].to_numpy() + 1e-6)


def test_clustering_on_real_counts_keeps_marker_lineages(
    celltypist_labelled: tuple[sp.csr_matrix, list[str], np.ndarray],
) -> None:
    """celltypist's real counts, 20 % of non-zeros zeroed, top 2,000 variable genes, default model.

    k-means (k = 6) of the headline layer recovers the marker lineages (``marker_labels``) within
    0.02 ARI of no imputation (the issue's bar).
    """
    from scregnet.evaluate.metrics import adjusted_rand, mask_nonzeros
    from scregnet.evaluate.score_impute import cluster_labels
    from scregnet.impute.api import impute

    counts, genes, labels = celltypist_labelled
    keep = data.select_variable_genes(counts, genes, 2000)
    counts = sp.csr_matrix(counts[:, pd.Index(genes).get_indexer(keep)])
    masked, _ = mask_nonzeros(counts, 0.2, np.random.default_rng(0))
    adata = ad.AnnData(sp.csr_matrix(masked.astype(np.float32)))
    adata.var_names = keep
    result = impute(adata, epochs=8, device="cpu", seed=0, threads=1, n_top_genes=None)
    ok = pd.notna(labels)

    def ari(values: np.ndarray) -> float:
        return float(
            np.mean(
                [
                    adjusted_rand(labels[ok].astype(str), cluster_labels(values[ok], 6, seed=s))
                    for s in range(3)
                ]
            )
        )

    none = ari(data.normalize_log1p(masked))
    assert ari(np.asarray(result.adata.layers["imputed"])) >= none - 0.02


# ------------------------------------------------------------------ CLI
def run_cli(
    tmp_path: Path, adata: ad.AnnData, *extra: str, name: str = "s", widths: bool = True
) -> tuple[int, Path]:
    rna = tmp_path / f"{name}.rna.h5ad"
    if not rna.exists():
        tmp_path.mkdir(parents=True, exist_ok=True)
        adata.write_h5ad(rna)
    out = tmp_path / "out" / f"{name}.imputed.h5ad"
    code = cli.main(
        [
            "impute",
            "--rna",
            str(rna),
            "--out",
            str(out),
            "--device",
            "cpu",
            *(["--hidden-dim", "32", "--latent-dim", "8"] if widths else []),
            *extra,
        ]
    )
    return code, out


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("impute_cli")
    code, out = run_cli(tmp, make_adata(), "--epochs", "2")
    assert code == 0
    return tmp, out


def test_cli_writes_h5ad_checkpoint_and_loss_table(cli_run: tuple[Path, Path]) -> None:
    from scregnet.impute.api import load_checkpoint, sidecar_paths

    _, out = cli_run
    model_path, loss_path = sidecar_paths(out)
    assert model_path.name == "s.imputed.model.pt" and loss_path.name == "s.imputed.loss.tsv"
    result = ad.read_h5ad(out)
    assert {"imputed", "imputed_detected", "imputed_expected"} <= set(result.layers)
    ckpt = load_checkpoint(model_path)
    assert {"config", "state_dict", "version", "genes"} <= set(ckpt)
    assert set(ckpt["genes"]) == set(result.var_names[result.var["imputed"].to_numpy()])
    losses = pd.read_csv(loss_path, sep="\t")
    assert list(losses.columns) == [
        "phase",
        "epoch",
        "loss",
        "reconstruction",
        "mmd",
        "bulk",
        "validation",
        "kept",
    ]  # no wall time: the same seed writes the same bytes
    assert (losses["phase"] == "fuse").sum() == 2  # --epochs 2
    kept = losses.loc[losses["kept"] == 1]
    assert list(kept["phase"]) == ["fuse"]  # one row: the fusion epoch whose weights are used
    assert int(kept["epoch"].iloc[0]) == result.uns["scregnet_impute"]["kept_epoch"]
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        [out.name, model_path.name, loss_path.name]
    )


def test_cli_epochs_batch_size_seed_change_output(
    tmp_path: Path, cli_run: tuple[Path, Path]
) -> None:
    _, ref_out = cli_run
    ref = ad.read_h5ad(ref_out).layers["imputed"]
    adata = make_adata()
    variants = {
        "epochs": ["--epochs", "4"],
        "batch": ["--epochs", "2", "--batch-size", "16"],
        "seed": ["--epochs", "2", "--seed", "5"],
        "same": ["--epochs", "2"],
    }
    layers = {}
    for name, flags in variants.items():
        code, out = run_cli(tmp_path / name, adata, *flags)
        assert code == 0
        layers[name] = ad.read_h5ad(out).layers["imputed"]
    np.testing.assert_array_equal(layers["same"], ref)  # CPU: same seed, identical output
    for name in ("epochs", "batch", "seed"):
        assert not np.allclose(layers[name], ref), name
    losses = pd.read_csv(tmp_path / "epochs" / "out" / "s.imputed.loss.tsv", sep="\t")
    assert (losses["phase"] == "fuse").sum() == 4


def test_cli_widths_and_top_genes(tmp_path: Path) -> None:
    from scregnet.impute.api import load_checkpoint

    code, out = run_cli(
        tmp_path, make_adata(), "--epochs", "1", "--hidden-dim", "24", "--latent-dim", "6",
        "--n-top-genes", "210",
    )  # fmt: skip
    assert code == 0
    ckpt = load_checkpoint(out.with_name("s.imputed.model.pt"))
    assert ckpt["config"]["model"]["hidden_dim"] == 24
    assert ckpt["state_dict"]["dae.encoder.4.weight"].shape == (6, 24)
    assert len(ckpt["genes"]) == 210
    assert int(ad.read_h5ad(out).var["imputed"].sum()) == 210


def test_cli_layer_reads_raw_counts(tmp_path: Path) -> None:
    adata = make_adata()
    adata.layers["counts"] = adata.X.copy()
    adata.X = sp.csr_matrix(np.log1p(adata.X.toarray()))
    code, _ = run_cli(tmp_path, adata, "--epochs", "1")
    assert code == 1
    code, out = run_cli(tmp_path, adata, "--epochs", "1", "--layer", "counts")
    assert code == 0
    result = ad.read_h5ad(out)
    np.testing.assert_allclose(result.X.toarray(), adata.X.toarray())  # X untouched
    assert result.uns["scregnet_impute"]["layer"] == "counts"


def test_cli_bulk_is_used_and_pseudobulk_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    adata = make_adata(n_types=6)
    bulk = tmp_path / "bulk.tsv"
    bulk_frame(adata).to_csv(bulk, sep="\t")
    code, out = run_cli(tmp_path, adata, "--epochs", "1", "--bulk", str(bulk))
    assert code == 0
    log_text = capsys.readouterr().err
    assert ad.read_h5ad(out).uns["scregnet_impute"]["bulk_source"] == "bulk"
    assert "pseudobulk" not in log_text and "240 shared" in log_text
    code, out2 = run_cli(tmp_path, adata, "--epochs", "1", name="t")
    assert code == 0
    assert "no bulk matrix given: using pseudobulk" in capsys.readouterr().err
    assert not np.allclose(
        ad.read_h5ad(out).layers["imputed"], ad.read_h5ad(out2).layers["imputed"]
    )


def test_cli_model_reuses_checkpoint(tmp_path: Path, cli_run: tuple[Path, Path]) -> None:
    _, ref_out = cli_run
    ckpt = ref_out.with_name("s.imputed.model.pt")
    code, out = run_cli(tmp_path, make_adata(), "--model", str(ckpt), widths=False)
    assert code == 0
    np.testing.assert_allclose(
        ad.read_h5ad(out).layers["imputed"], ad.read_h5ad(ref_out).layers["imputed"], atol=1e-6
    )
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # nothing trained


def test_cli_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(tmp_path, make_adata(), "--epochs", "1", "--device", "tpu")
    assert code == 1 and not out.parent.exists()
    assert "--device must be" in capsys.readouterr().err
    if not torch.cuda.is_available():
        code, out = run_cli(tmp_path, make_adata(), "--epochs", "1", "--device", "cuda")
        assert code == 1 and "no CUDA GPU" in capsys.readouterr().err


# ------------------------------------------------------------------ bad inputs
def _bad_rna(kind: str) -> ad.AnnData:
    adata = make_adata(n_cells=30)
    x = adata.X.toarray()
    if kind == "nan":
        x[0, 0] = np.nan
    elif kind == "negative":
        x[0, 0] = -1
    elif kind == "float":
        x = np.log1p(x)
    elif kind == "empty":
        return adata[:0].copy()
    elif kind == "huge":  # an integer no count of molecules reaches (overflowed downstream)
        x[0, np.flatnonzero(x[0])[0]] = 1e30
    adata.X = x
    return adata


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("nan", "NaN"),
        ("negative", "negative"),
        ("float", "non-integer values"),
        ("empty", "empty matrix"),
        ("huge", "contain a value of 1e+30, above any count of molecules"),
    ],
)
def test_cli_bad_rna(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, message: str
) -> None:
    code, out = run_cli(tmp_path, _bad_rna(kind), "--epochs", "1", "--quiet")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert message in err[0] and "s.rna.h5ad" in err[0]
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_cli_too_few_shared_genes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    adata = make_adata()
    bulk = tmp_path / "bulk.tsv"
    genes = [*list(adata.var_names[:150]), *[f"X{i}" for i in range(90)]]
    bulk_frame(adata, genes).to_csv(bulk, sep="\t")
    code, out = run_cli(tmp_path, adata, "--epochs", "1", "--bulk", str(bulk), "--quiet")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "only 150 genes shared" in err[0] and "bulk.tsv" in err[0]
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_cli_checkpoint_gene_mismatch(
    tmp_path: Path, cli_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, ref_out = cli_run
    adata = make_adata()
    adata.var_names = [f"other{i}" for i in range(adata.n_vars)]
    ckpt = str(ref_out.with_name("s.imputed.model.pt"))
    code, out = run_cli(tmp_path, adata, "--model", ckpt, "--quiet", widths=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "checkpoint genes do not match" in err[0]
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_cli_bulk_with_model_and_bad_out(
    tmp_path: Path, cli_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, ref_out = cli_run
    ckpt = str(ref_out.with_name("s.imputed.model.pt"))
    code, _ = run_cli(tmp_path, make_adata(), "--model", ckpt, "--bulk", "b.tsv", widths=False)
    assert code == 1 and "--bulk: training options cannot be combined" in capsys.readouterr().err
    code, _ = run_cli(tmp_path, make_adata(), "--model", ckpt, "--epochs", "3", widths=False)
    assert code == 1 and "--epochs: training options cannot be combined" in capsys.readouterr().err
    rna = tmp_path / "s.rna.h5ad"
    code = cli.main(["impute", "--rna", str(rna), "--out", str(tmp_path / "x.csv")])
    assert code == 1 and "must end in .h5ad" in capsys.readouterr().err


# ------------------------------------------------------------------ degenerate but valid inputs
def test_cli_refuses_empty_barcodes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A cell with no count on any gene of the file is an empty barcode (a raw matrix): its
    depth is unknown, so any profile for it would be invented. One line, nothing written."""
    adata = make_adata(n_cells=30)
    x = adata.X.toarray()
    x[[3, 7]] = 0
    adata.X = sp.csr_matrix(x)
    code, out = run_cli(tmp_path, adata, "--epochs", "1", "--quiet")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "s.rna.h5ad: 2 of 30 cells have no counts in X on any of the 240 genes" in err[0]
    assert "'cell3'" in err[0] and "filtered matrix" in err[0]
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_cell_without_counts_on_the_modelled_genes_is_imputed() -> None:
    """A real cell with counts only outside the modelled genes keeps its library over all
    genes: its layers are at its own depth and its profile is the other cells' (not the
    log1p(1e4) a library of 1 would give)."""
    adata = make_adata()
    genes = [f"G{i}" for i in range(0, 240, 6)]
    cols = adata.var_names.get_indexer(genes)
    x = adata.X.toarray()
    x[0, cols] = 0
    adata.X = sp.csr_matrix(x)
    library = x[0].sum()
    assert library > 500
    result = quick(adata, genes=genes, epochs=2)
    layers = {k: np.asarray(v)[:, cols] for k, v in result.adata.layers.items()}
    assert all(np.isfinite(v).all() for v in layers.values())
    imputed, detected = layers["imputed"], layers["imputed_detected"]
    assert np.corrcoef(imputed[0], imputed[1:].mean(axis=0))[0, 1] > 0.9
    # a detected entry is at least one count at the cell's own depth, and no more than others'
    assert detected[0].min() >= np.log1p(1e4 / library) - 1e-4
    assert detected[0].max() <= detected[1:].max()
    assert layers["baseline_fill_rule"][0].max() <= layers["baseline_fill_rule"][1:].max()


@pytest.mark.parametrize("use_bulk", [True, False])
def test_identical_cells_are_imputed(use_bulk: bool) -> None:
    """Every cell the same constant counts: no principal component to find neighbours or
    clusters in; the neighbours are arbitrary (all at distance 0) and every cell gets the same
    profile."""
    adata = make_adata(n_cells=30)
    adata.X = sp.csr_matrix(np.full(adata.shape, 3, dtype=np.float32))
    bulk = bulk_frame(adata) if use_bulk else None
    result = quick(adata, bulk=bulk, epochs=2)
    for name, layer in result.adata.layers.items():
        values = np.asarray(layer)
        assert np.isfinite(values).all(), name
        np.testing.assert_allclose(values, np.broadcast_to(values[0], values.shape), atol=1e-5)
    expected = np.log1p(1e4 / adata.n_vars)  # each gene a 1/240 share of every cell
    np.testing.assert_allclose(np.asarray(result.adata.layers["imputed"]), expected, atol=0.05)


def test_identical_rows() -> None:
    assert data.identical_rows(sp.csr_matrix(np.full((4, 3), 2.0)))
    assert data.identical_rows(np.zeros((3, 2)))
    assert not data.identical_rows(sp.csr_matrix(np.eye(3)))


def test_bulk_sample_that_is_not_an_rna_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bulk sample must detect the genes the single cells express most: one detecting 1 of
    them is refused naming the file and the sample; 70 % of them is warned of."""
    adata = make_adata()
    frame = bulk_frame(adata)
    totals = np.asarray(adata.X.sum(axis=0)).ravel()
    top = np.argsort(-totals, kind="stable")[: data.BULK_CHECK_GENES]
    bad = frame.copy()
    bad.iloc[:, 4] = 0
    bad.iloc[top[5], 4] = 100
    path = tmp_path / "bulk.tsv"
    bad.to_csv(path, sep="\t")
    code, out = run_cli(tmp_path, adata, "--epochs", "1", "--bulk", str(path), "--quiet")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert f"{path}: bulk sample 'bulk4' has counts on only 1 of the 100 shared genes" in err[0]
    assert not out.parent.exists() or not any(out.parent.iterdir())
    data.check_bulk_samples(frame, totals)  # the summed cells detect them all
    borderline = frame.copy()
    borderline.iloc[top[:30], 2] = 0
    data.check_bulk_samples(borderline, totals, path="b.tsv")  # logs to the CLI's stderr
    warning = capsys.readouterr().err
    assert "WARNING" in warning and "b.tsv: bulk sample 'bulk2' has counts on only 70 of" in warning


def test_too_few_genes_name_the_option_or_the_file_that_has_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--n-top-genes 1`` blames the option; a single-cell file or a bulk matrix with fewer
    genes than must be shared is blamed itself, not the gene naming."""
    code, out = run_cli(tmp_path, make_adata(), "--n-top-genes", "1", "--quiet")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "--n-top-genes must be >= 2" in err[0] and "s.rna.h5ad" not in err[0]
    with pytest.raises(ValueError, match="n_top_genes must be >= 2"):
        quick(make_adata(), n_top_genes=1)
    panel = make_adata(n_genes=150)
    bulk = tmp_path / "bulk.tsv"
    bulk_frame(panel).to_csv(bulk, sep="\t")  # the same 150 names
    code, out = run_cli(tmp_path, panel, "--bulk", str(bulk), "--quiet", name="panel")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "panel.rna.h5ad: only 150 genes, fewer than the 200" in err[0]
    assert "gene naming" not in err[0]
    code, out = run_cli(tmp_path, make_adata(), "--bulk", str(bulk), "--quiet", name="full")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and f"{bulk}: bulk matrix has only 150 genes" in err[0]
    assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.mark.parametrize(("n_cells", "warned"), [(12, True), (60, False)])
def test_training_on_few_cells_warns(
    n_cells: int, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Fewer cells than MIN_TRAINING_CELLS still impute, with one warning naming the input."""
    from scregnet.impute.api import impute
    from scregnet.impute.config import MIN_TRAINING_CELLS

    adata = make_adata(n_cells=n_cells, n_genes=60)
    with caplog.at_level(logging.WARNING, logger="scregnet.impute.api"):
        result = impute(
            adata, epochs=1, device="cpu", seed=0, threads=1, n_top_genes=None,
            path="few.h5ad", **TINY,
        )  # fmt: skip
    assert result.adata.layers["imputed"].shape == (n_cells, 60)
    said = [r.getMessage() for r in caplog.records if "unreliable" in r.getMessage()]
    expected = f"few.h5ad: training on {n_cells} cells; the model and its neighbour graph"
    assert [m.startswith(expected) for m in said] == ([True] if warned else [])
    assert (n_cells < MIN_TRAINING_CELLS) == warned
