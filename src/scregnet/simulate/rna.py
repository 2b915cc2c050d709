"""Expression: TF levels drive targets through Hill kinetics; UMI counts with library size and dropout.

For a cell ``c`` of cell type ``k`` in view ``v``:

* TF level ``x_t = activity[v, k, t] * LogNormal(0, 0.45)`` (cell-to-cell variation); a TF gene's
  own expression is ``base_t * (0.05 + x_t)``.
* A target ``g`` with activators ``a`` and repressors ``r`` (edges bound in cell type ``k``):
  ``rate_g = base_g * (leak_g + (1 - leak_g) * sum_a w_a H(x_a) / sum_a w_a) * prod_r (1 - 0.95 H(x_r))``
  with ``H(x) = x^n / (K^n + x^n)``; an activator whose sites are closed in ``k`` contributes 0.
* Genes without regulators have a fixed per-cell-type level ``base_g * f_{g,k}``.
* Biological noise (Gamma, CV ~0.26), then relative rates ``p_c = rate_c / sum(rate_c)``.
* True expression = ``L_c * p_c`` (expected UMIs at the cell's library size ``L_c``, log-normal);
  observed counts = Poisson(true) with logistic dropout of low-expressed entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from scregnet.simulate.world import World

TF_LEVEL_SD = 0.45
BIO_CV2 = 0.07  # squared coefficient of variation of the Gamma biological noise
DROPOUT_SLOPE = 1.0
DROPOUT_MIDPOINT = 2.0  # expected UMIs at which half of the entries drop out


@dataclass
class ExpressionModel:
    """Per-gene parameters of the expression programme."""

    base: np.ndarray  # (n_genes,) baseline rate
    leak: np.ndarray  # (n_genes,) fraction of expression without activators
    ct_factor: np.ndarray  # (n_cell_types, n_genes) fixed level of unregulated genes
    is_tf: np.ndarray  # (n_genes,) bool
    tf_gene: np.ndarray  # (n_tfs,) gene index of each TF


def expression_model(rng: np.random.Generator, world: World) -> ExpressionModel:
    """Draw baseline levels (log-normal, heavy-tailed), leakiness and unregulated cell-type levels."""
    genes = world.genes
    n_genes, n_ct = len(genes), len(world.cell_types)
    base = rng.lognormal(0.0, 1.3, n_genes)
    is_tf = genes.is_tf.to_numpy()
    base[is_tf] = rng.lognormal(1.0, 0.4, int(is_tf.sum()))  # TFs are reasonably expressed
    leak = rng.uniform(0.05, 0.3, n_genes)
    regulated = np.zeros(n_genes, dtype=bool)
    regulated[world.edges.gene_index.to_numpy()] = True
    varies = (~regulated) & (~is_tf) & (rng.random(n_genes) < 0.4)
    ct_factor = np.ones((n_ct, n_genes))
    ct_factor[:, varies] = rng.lognormal(0.0, 0.7, (n_ct, int(varies.sum())))
    name_to_index = {g: i for i, g in enumerate(genes.gene_name)}
    tf_gene = np.array([name_to_index[t] for t in world.tfs])
    return ExpressionModel(base, leak, ct_factor, is_tf, tf_gene)


def relative_rates(
    rng: np.random.Generator,
    world: World,
    model: ExpressionModel,
    cell_type: np.ndarray,
    view: int,
) -> np.ndarray:
    """(n_cells, n_genes) relative expression ``p`` (rows sum to 1) of cells of the given types."""
    n_cells = cell_type.size
    n_genes = model.base.size
    activity = world.activity[view][cell_type]  # (cells, tfs)
    x = activity * rng.lognormal(0.0, TF_LEVEL_SD, activity.shape)
    edges = world.edges
    rate = model.base[None, :] * model.ct_factor[cell_type]
    if len(edges):
        t = edges.tf_index.to_numpy()
        g = edges.gene_index.to_numpy()
        k = edges.hill_k.to_numpy()
        n = edges.hill_n.to_numpy()
        w = edges.weight.to_numpy()
        act = edges.sign.to_numpy() > 0
        xe = x[:, t]  # (cells, edges)
        h = xe**n / (k**n + xe**n) * world.edge_bound[:, cell_type].T
        m_act = sp.csr_matrix((w[act], (np.flatnonzero(act), g[act])), shape=(len(edges), n_genes))
        num = np.asarray(h @ m_act)
        den = np.asarray(m_act.sum(axis=0)).ravel()
        has_act = den > 0
        frac = np.ones((n_cells, n_genes))
        frac[:, has_act] = num[:, has_act] / den[has_act]
        rep = ~act
        m_rep = sp.csr_matrix(
            (np.ones(int(rep.sum())), (np.flatnonzero(rep), g[rep])), shape=(len(edges), n_genes)
        )
        log_r = np.asarray(np.log1p(-0.95 * h) @ m_rep)
        regulated = has_act | (np.asarray(m_rep.sum(axis=0)).ravel() > 0)
        rate[:, regulated] = (
            model.base[regulated]
            * (model.leak[regulated] + (1 - model.leak[regulated]) * frac[:, regulated])
            * np.exp(log_r[:, regulated])
        )
    rate[:, model.tf_gene] = model.base[model.tf_gene] * (0.05 + x)
    rate *= rng.gamma(1.0 / BIO_CV2, BIO_CV2, rate.shape)
    return rate / rate.sum(axis=1, keepdims=True)


def single_cell_counts(
    rng: np.random.Generator, p: np.ndarray, median_umis: int
) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray]:
    """True expression ``L_c * p_c``, observed counts (CSR int32) and the library sizes ``L_c``."""
    n_cells = p.shape[0]
    library = np.asarray(rng.lognormal(np.log(median_umis), 0.4, n_cells))
    truth = (p * library[:, None]).astype(np.float32)
    counts = rng.poisson(truth)
    drop_p = 1.0 / (
        1.0 + np.exp(DROPOUT_SLOPE * (np.log(truth + 1e-12) - np.log(DROPOUT_MIDPOINT)))
    )
    counts[rng.random(counts.shape) < drop_p] = 0
    return truth, sp.csr_matrix(counts.astype(np.int32)), library


def bulk_profiles(
    rng: np.random.Generator, world: World, model: ExpressionModel, *, cells_per_type: int = 300
) -> np.ndarray:
    """(n_cell_types, n_genes) mean relative expression of each cell type in the first view."""
    out = np.zeros((len(world.cell_types), model.base.size))
    for k in range(len(world.cell_types)):
        p = relative_rates(rng, world, model, np.full(cells_per_type, k), 0)
        out[k] = p.mean(axis=0)
    return out


def bulk_counts(
    rng: np.random.Generator, profiles: np.ndarray, *, replicates: int, depth: int
) -> np.ndarray:
    """(n_cell_types * replicates, n_genes) bulk RNA counts: replicate noise (LogNormal 0.1) + Poisson."""
    rows = []
    for prof in profiles:
        for _ in range(replicates):
            p = prof * rng.lognormal(0.0, 0.1, prof.size)
            p /= p.sum()
            lib = depth * rng.uniform(0.8, 1.2)
            rows.append(rng.poisson(p * lib))
    return np.array(rows, dtype=np.int64)
