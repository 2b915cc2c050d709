"""Gene-level features from the training labels and the genes' own expression statistics.

A supervised GRN model sees the known edges of its training TFs. Under a TF-aware split a
held-out TF has no labels, but its candidate targets do: a gene that many training TFs regulate
is a likely target of the held-out TF too (the *target prior*), more so when the training TFs
regulating it are co-expressed with the held-out TF (the *similarity-weighted* prior, the label
graph's neighbours of the pair as DeepMCL's neighbour images are its expression neighbours).
For a labelled TF's own pairs every label feature is computed *out of fold*: the labelled TFs are
dealt at random into :data:`GROUPS` groups and a TF's features come from the other groups' labels
only. A training pair thus never sees its own label, and unlike leaving out only the TF itself
(where a target's positives would see one positive fewer than its negatives, a bias that reverses
the prior's sign on dense truths with few TFs) the features of one TF's pairs do not depend on
its labels at all. An unlabelled (held-out) TF's features come from every labelled TF.

Features of a pair (a, b), in :data:`scregnet.grn.config.LABEL_FEATURE_NAMES` order:

- ``prior``: fraction of the labelled TFs (out of fold for a labelled ``a``) with a positive
  edge to ``b``;
- ``log_prior``: ``log(prior + 1 / n)``, ``n`` the number of those TFs;
- ``sim_prior``: the same fraction weighted by each labelled TF's squared pooled Spearman rho
  with ``a`` (out of fold);
- ``prior_x_rho``, ``sim_prior_x_rho``: the two priors times ``b``'s |pooled rho| with ``a``;
- ``log_sim_prior``, ``log_abs_rho``, ``log_abs_r``: logarithms of the similarity-weighted prior
  (plus ``1 / n``), of |pooled rho| and of |pooled Pearson r| (plus 0.01), so that a linear
  read-out can weigh the priors and the correlation as a product ``prior^u |r|^v`` (the
  ``target prior x |r|`` baseline is ``u = v = 1``);
- ``tf_in_degree``, ``log_tf_in_degree``: the target prior of ``a`` itself, i.e. the fraction of
  the labelled TFs (out of fold) with a positive edge to the TF ``a`` (plus ``1 / n`` in the
  log): a TF that many others regulate tends to have many targets itself on networks with
  feedback or undirected edges (ChIP-seq atlases, STRING);
- ``reciprocal``, ``reciprocal_absent``: when ``b`` is itself a labelled TF (out of ``a``'s
  fold), 1 if its label says ``b`` regulates ``a`` (the reverse edge), resp. 1 if it says it does
  not; both 0 when ``b`` is not labelled;
- ``shared_regulators``, ``log_shared_regulators``: of the labelled TFs (out of fold) that
  regulate ``a``, the fraction that also regulate ``b`` (0 when none regulates ``a``; plus
  ``1 / n`` in the log): a link predictor that closes triangles of the label graph, strong where
  the truth is a protein network (STRING) or a ChIP-seq atlas with shared regulators;
- ``tf_degree_mean``, ``tf_degree_stats``: the predicted log out-degree of ``a`` (its number of
  targets), from a Poisson regression of the labelled TFs' out-degrees (out of fold) on their
  pooled mean expression, resp. on mean, variance and fraction of zeros (:func:`tf_degree`). A
  pair's other features rank targets within one TF; this one ranks the TFs against each other,
  which a score pooled over held-out TFs (AUPRC, EPR) rewards;
- ``target_mean``, ``target_var``, ``target_dropout``, ``tf_mean``, ``tf_var``,
  ``tf_dropout``: pooled log-expression mean, variance and fraction of zeros of ``b`` and ``a``.

Each is standardised by its mean and standard deviation over random gene pairs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from scregnet.grn.config import N_LABEL_FEATURES

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: groups of labelled TFs for the out-of-fold label features
GROUPS = 5
#: pairs per block when the similarity-weighted prior gathers (pairs, labelled TFs) weights
BLOCK = 4096


#: :func:`gene_statistics` columns, in words
GENE_STATISTICS = ("mean expression", "variance", "dropout")
#: the out-degree features and the covariates (columns of :func:`gene_statistics`) of each one's
#: model, in ``LABEL_FEATURE_NAMES`` order
DEGREE_COVARIATES = {"tf_degree_mean": (0,), "tf_degree_stats": (0, 1, 2)}
#: fewest labelled TFs a degree model is fitted on (fewer: the feature is constant)
MIN_DEGREE_TFS = 3


def tf_degree(
    stats: NDArray[np.floating], tfs: NDArray[np.intp], degree: NDArray[np.floating]
) -> NDArray[np.float32]:
    """Predicted log out-degree of every gene as a TF, ``(len(DEGREE_COVARIATES), genes)``.

    ``stats``: :func:`gene_statistics` of every gene; ``tfs``, ``degree``: the labelled TFs and
    their numbers of positive targets. One Poisson regression (L2 penalty ``1 / len(tfs)`` on
    covariates standardised over all genes) per entry of :data:`DEGREE_COVARIATES`; zeros when
    fewer than :data:`MIN_DEGREE_TFS` TFs or no positives are given.
    """
    from sklearn.linear_model import PoissonRegressor

    x = np.asarray(stats, dtype=np.float64)
    x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-12)
    out = np.zeros((len(DEGREE_COVARIATES), x.shape[0]), dtype=np.float32)
    if tfs.size < MIN_DEGREE_TFS or float(np.sum(degree)) == 0.0:
        return out
    for i, cols in enumerate(DEGREE_COVARIATES.values()):
        model = PoissonRegressor(alpha=1.0 / tfs.size, max_iter=1000)
        columns = np.asarray(cols, dtype=np.intp)
        model.fit(x[np.ix_(tfs, columns)], degree)
        out[i] = np.log(model.predict(x[:, columns]))
    return out


def gene_statistics(pooled: NDArray[np.floating]) -> NDArray[np.float32]:
    """``(cells, genes)`` log expression -> ``(genes, 3)``: mean, variance, fraction of zeros."""
    x = np.asarray(pooled, dtype=np.float64)
    return np.stack([x.mean(axis=0), x.var(axis=0), (x == 0).mean(axis=0)], axis=1).astype(
        np.float32
    )


class LabelFeatures:
    """Label-graph and marginal features of gene pairs for one set of labelled pairs.

    ``zrank``, ``z``: ``(genes, cells)`` standardised pooled ranks and log expression (dot
    product = Spearman rho, Pearson r);
    ``stats``: :func:`gene_statistics`; ``tf``, ``target``, ``label``: the labelled pairs.
    """

    def __init__(
        self,
        zrank: torch.Tensor,
        z: torch.Tensor,
        stats: torch.Tensor,
        tf: NDArray[np.intp],
        target: NDArray[np.intp],
        label: NDArray[np.int8],
        *,
        seed: int = 0,
    ) -> None:
        import torch

        self.zrank = zrank
        self.z = z
        self.stats = stats
        n_genes = int(zrank.shape[0])
        tfs = np.unique(tf)
        self.row = torch.full((n_genes,), -1, dtype=torch.long, device=zrank.device)
        self.row[torch.as_tensor(tfs, device=zrank.device)] = torch.arange(
            tfs.size, device=zrank.device
        )
        pos = label == 1
        y = torch.zeros((tfs.size, n_genes), dtype=torch.float32, device=zrank.device)
        rows = self.row[torch.as_tensor(tf[pos], device=zrank.device)]
        y[rows, torch.as_tensor(target[pos], device=zrank.device)] = 1.0
        self.y = y  # (labelled TFs, genes)
        self.n_tfs = int(tfs.size)
        # group of each labelled TF (row), and per group the positives per target and the number
        # of TFs outside it; row n_groups = every labelled TF (for unlabelled TFs)
        k = max(1, min(GROUPS, self.n_tfs))
        group = np.random.default_rng(seed).permutation(np.arange(self.n_tfs) % k)
        self.group = torch.as_tensor(group, device=zrank.device)
        total = y.sum(dim=0)
        self.count = torch.stack(
            [total - y[self.group == g].sum(dim=0) for g in range(k)] + [total]
        )  # (k + 1, genes)
        outside = [self.n_tfs - int((group == g).sum()) for g in range(k)] + [self.n_tfs]
        self.n_outside = torch.as_tensor(outside, dtype=torch.float32, device=zrank.device)
        self.n_groups = k
        # predicted log out-degree per fold (k + 1, models, genes): fitted on the TFs outside it
        stats_np = stats.float().cpu().numpy()
        degree = y.sum(dim=1).cpu().numpy()
        self.degree = torch.as_tensor(
            np.stack(
                [tf_degree(stats_np, tfs[group != g], degree[group != g]) for g in range(k)]
                + [tf_degree(stats_np, tfs, degree)]
            ),
            device=zrank.device,
        )
        self.tf_z = zrank[torch.as_tensor(tfs, device=zrank.device)]  # (labelled TFs, cells)
        self.mean = torch.zeros(N_LABEL_FEATURES, device=zrank.device)
        self.scale = torch.ones(N_LABEL_FEATURES, device=zrank.device)
        gen = torch.Generator().manual_seed(seed)
        n_ref = min(20_000, n_genes * n_genes)
        ref = self(
            torch.randint(n_genes, (n_ref,), generator=gen).to(zrank.device),
            torch.randint(n_genes, (n_ref,), generator=gen).to(zrank.device),
        )
        self.mean = ref.mean(dim=0)
        self.scale = ref.std(dim=0).clamp(min=1e-6)
        log.debug("label features from %d labelled TFs, %d positives", self.n_tfs, int(pos.sum()))

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``(n,)`` x ``(n,)`` gene indices -> ``(n, N_LABEL_FEATURES)`` standardised features."""
        import torch

        parts = [
            self._block(a[i : i + BLOCK], b[i : i + BLOCK]) for i in range(0, a.numel(), BLOCK)
        ]
        raw = torch.cat(parts) if parts else torch.zeros((0, N_LABEL_FEATURES))
        return (raw - self.mean) / self.scale

    def _block(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        import torch

        row = self.row[a]
        labelled = row >= 0
        # the pair's fold: its TF's group when labelled, else "every labelled TF"
        fold = torch.full(a.shape, self.n_groups, dtype=torch.long, device=a.device)
        fold[labelled] = self.group[row[labelled]]
        n_other = self.n_outside[fold].clamp(min=1.0)
        prior = self.count[fold, b] / n_other
        log_prior = torch.log(prior + 1.0 / n_other)
        # the labelled TFs outside the pair's fold, (n, labelled TFs)
        outside = fold.unsqueeze(1) != self.group.unsqueeze(0)
        # similarity-weighted prior over them
        w = (self.zrank[a] @ self.tf_z.T).pow(2) * outside
        regulates_b = self.y[:, b].T  # (n, labelled TFs)
        votes = (w * regulates_b).sum(dim=1)
        sim_prior = votes / w.sum(dim=1).clamp(min=1e-8)
        rho = (self.zrank[a] * self.zrank[b]).sum(dim=1).abs()
        r = (self.z[a] * self.z[b]).sum(dim=1).abs()
        in_degree = self.count[fold, a] / n_other
        # the reverse edge b -> a, known when b is a labelled TF outside the pair's fold (for an
        # unlabelled a: any labelled b)
        row_b = self.row[b]
        known = (row_b >= 0) & (self.group[row_b.clamp(min=0)] != fold)
        reverse = torch.zeros_like(prior)
        reverse[known] = self.y[row_b[known], a[known]]
        # of the labelled TFs outside the fold that regulate a, the fraction regulating b too
        regulators = self.y[:, a].T * outside
        shared = (regulators * regulates_b).sum(dim=1) / regulators.sum(dim=1).clamp(min=1.0)
        return torch.cat(
            [
                torch.stack(
                    [
                        prior,
                        log_prior,
                        sim_prior,
                        prior * rho,
                        sim_prior * rho,
                        torch.log(sim_prior + 1.0 / n_other),
                        torch.log(rho + 0.01),
                        torch.log(r + 0.01),
                        in_degree,
                        torch.log(in_degree + 1.0 / n_other),
                        reverse,
                        known.float() - reverse,
                        shared,
                        torch.log(shared + 1.0 / n_other),
                    ],
                    dim=1,
                ),
                self.degree[fold, :, a],
                self.stats[b],
                self.stats[a],
            ],
            dim=1,
        )
