"""Gene-pair co-expression images (CNNC / DeepDRIM / DeepMCL representation).

For a pair (a, b) in one view the *primary image* is the 2D histogram, over that view's cells, of
a's log expression against b's, on an ``n_bins x n_bins`` grid spanning each gene's range in the
view. Counts are log-scaled and normalised: ``log1p(count) / log1p(n_cells)`` (so images from
views of different sizes share one scale). *Neighbour images* describe each side of the pair on
its own: for gene g, the image of (g, g) followed by the images of g against its ``k``
most-correlated genes (|Pearson| on log expression, within the view). A pair thus has
``1 + 2 (k + 1)`` images per view: DeepDRIM's 2k + 2 neighbour images plus the primary one.
With ``label_neighbours`` (our extension) a gene's neighbours come from the graph of the labels
last given to :meth:`ImageBuilder.set_labels` instead: the labelled TFs that regulate it, most
correlated first, topped up with its expression neighbours (:func:`label_neighbours`); genes with
no labelled regulator keep their expression neighbours. The images of a target against its known
regulators then sit beside the primary image of a new TF against it.

Everything is vectorised: each gene is binned once per view (``uint8`` codes), a batch of pair
images is one ``bincount`` over ``a_code * n_bins + b_code`` offset by the pair's index.
Neighbour images depend on one gene only, so a caller embeds them once per gene, not per pair.

*Pair features* (our extension of DeepMCL, see docs/benchmarks.md ``## GRN``) are scalar
co-expression statistics of a pair over all views together, given to the classifier head beside
the image embeddings so that it starts from what a correlation ranking knows: Spearman rho over
all cells pooled (the |Spearman| baseline), and Pearson r over *metacells* — k-means clusters of
about ``cells_per_metacell`` cells found per view in PCA space, each summarised by its mean log
expression. A cell shared by several views (same name and expression, e.g. the early cells of two
trajectory branches) is counted once in both: pooled once, and clustered only in the first view
that has it. Averaging over a metacell removes most sampling and dropout noise while keeping the
differences between cell states and views, where regulation shows most on sparse counts. Each
feature is standardised by its mean and standard deviation over random gene pairs.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy.stats import rankdata

from scregnet.grn.config import (
    CELLS_PER_METACELL,
    LABEL_NEIGHBOURS,
    N_BINS,
    N_NEIGHBOURS,
    N_PAIR_FEATURES,
    usable_neighbours,
)

if TYPE_CHECKING:
    import torch

    from scregnet.grn.config import GRNConfig
    from scregnet.grn.data import ExpressionViews
    from scregnet.grn.label_features import LabelFeatures

log = logging.getLogger(__name__)

#: pairs x cells elements gathered at once by :func:`pair_dots` (64 MB of float32 per operand)
PAIR_DOT_BLOCK = 1 << 24


def bin_genes(expr: NDArray[np.floating], n_bins: int = N_BINS) -> NDArray[np.uint8]:
    """Bin each gene's expression over its own range: ``(cells, genes)`` -> ``(genes, cells)`` codes.

    Bin ``i`` covers ``[min + i w, min + (i + 1) w)`` with ``w = (max - min) / n_bins`` (the maximum
    falls in the last bin); a constant gene gets code 0 everywhere.
    """
    if not 2 <= n_bins <= 255:
        msg = f"n_bins must be in [2, 255], got {n_bins}"
        raise ValueError(msg)
    x = np.asarray(expr, dtype=np.float64).T  # (genes, cells)
    lo = x.min(axis=1, keepdims=True)
    span = x.max(axis=1, keepdims=True) - lo
    span[span == 0] = np.inf
    codes = np.floor((x - lo) / span * n_bins)
    return np.clip(codes, 0, n_bins - 1).astype(np.uint8)


def standardise(expr: NDArray[np.floating]) -> NDArray[np.float32]:
    """``(cells, genes)`` -> ``(genes, cells)`` rows centred and scaled to unit norm.

    The dot product of two rows is then their Pearson correlation (0 for a constant gene).
    """
    x = np.asarray(expr, dtype=np.float64).T
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    return (x / norm).astype(np.float32)


def top_neighbours(z: torch.Tensor, k: int, *, chunk: int = 1024) -> torch.Tensor:
    """The ``k`` genes with the highest |Pearson| to each gene (itself excluded).

    ``z``: ``(genes, cells)`` rows from :func:`standardise`. Computed ``chunk`` genes at a time so
    a 20,000-gene correlation matrix is never held whole. Returns ``(genes, k)`` int64.
    """
    import torch

    n = z.shape[0]
    k = min(k, n - 1)
    out = torch.empty((n, k), dtype=torch.long, device=z.device)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        corr = (z[start:stop] @ z.T).abs()  # (chunk, genes)
        corr[torch.arange(stop - start), torch.arange(start, stop)] = -1.0
        out[start:stop] = torch.topk(corr, k, dim=1).indices
    return out


def label_neighbours(
    z: torch.Tensor,
    expression: torch.Tensor,
    tf: NDArray[np.intp],
    target: NDArray[np.intp],
    label: NDArray[np.int8],
) -> torch.Tensor:
    """Each gene's neighbours from the labels' graph: ``(genes, k)`` int64.

    A gene regulated by labelled TFs (positive pairs ``tf -> target``, self pairs left out) gets
    up to ``k`` of them, highest |Pearson| to it first (``z``: standardised rows, one view), then
    its ``expression`` neighbours (``(genes, k)``, :func:`top_neighbours`) not already taken.
    Every other gene keeps its expression neighbours.
    """
    import torch

    pos = (np.asarray(label) == 1) & (np.asarray(tf) != np.asarray(target))
    regs = np.asarray(tf, dtype=np.int64)[pos]
    genes = np.asarray(target, dtype=np.int64)[pos]
    out = expression.clone()
    if genes.size == 0:
        return out
    k = int(expression.shape[1])
    strength = (
        pair_dots(
            z, torch.as_tensor(regs, device=z.device), torch.as_tensor(genes, device=z.device)
        )
        .abs()
        .cpu()
        .numpy()
    )
    order = np.lexsort((-strength, genes))  # by gene, strongest regulator first
    genes, regs = genes[order], regs[order]
    starts = np.flatnonzero(np.r_[True, genes[1:] != genes[:-1]])
    ends = np.r_[starts[1:], genes.size]
    expr = expression.cpu().numpy()
    rows = np.empty((starts.size, k), dtype=np.int64)
    for i, (s, e) in enumerate(zip(starts, ends, strict=True)):
        chosen = regs[s : min(e, s + k)]
        fill = expr[genes[s]][~np.isin(expr[genes[s]], chosen)][: k - chosen.size]
        rows[i] = np.concatenate([chosen, fill])
    out[torch.as_tensor(genes[starts], device=out.device)] = torch.as_tensor(
        rows, device=out.device
    )
    return out


def pair_dots(
    rows: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, block: int = PAIR_DOT_BLOCK
) -> torch.Tensor:
    """``(rows[a] * rows[b]).sum(1)`` for gene pairs ``(a, b)``, a bounded number of pairs at a time.

    ``rows``: ``(genes, cells)`` standardised rows, so each dot is a correlation. Gathering every
    pair's rows at once needs pairs x cells x 3 floats (12 GB for 61,000 pairs of 16,500 cells, the
    `large` world); blocks of ``block // cells`` pairs keep it to a few hundred MB. Each pair's
    sum is computed exactly as in one pass.
    """
    import torch

    step = max(1, block // max(1, int(rows.shape[1])))
    if a.numel() <= step:
        return (rows[a] * rows[b]).sum(dim=1)
    return torch.cat(
        [
            (rows[a[i : i + step]] * rows[b[i : i + step]]).sum(dim=1)
            for i in range(0, a.numel(), step)
        ]
    )


def pair_histograms(
    bins: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    n_bins: int = N_BINS,
    cells: torch.Tensor | None = None,
) -> torch.Tensor:
    """Log-scaled, normalised 2D histograms for pairs ``(a[i], b[i])``.

    ``bins``: ``(genes, cells)`` uint8 codes; ``a``, ``b``: ``(n,)`` gene indices; ``cells``: an
    optional subset of cell indices. Returns ``(n, n_bins, n_bins)`` float32, rows = a's bins.
    """
    import torch

    if cells is not None:
        bins = bins[:, cells]
    n, n_cells = int(a.shape[0]), int(bins.shape[1])
    size = n_bins * n_bins
    # (n, cells) combined codes, offset so every pair counts into its own block
    codes = bins[a].long() * n_bins + bins[b].long()
    codes += torch.arange(n, device=bins.device).unsqueeze(1) * size
    counts = torch.bincount(codes.reshape(-1), minlength=n * size).reshape(n, n_bins, n_bins)
    return torch.log1p(counts.float()) / math.log1p(n_cells)


def metacell_means(
    expr: NDArray[np.floating], cells_per_metacell: int, *, seed: int = 0, n_pcs: int = 20
) -> NDArray[np.float32]:
    """Mean expression of k-means metacells: ``(cells, genes)`` -> ``(k, genes)``.

    ``k = max(2, round(cells / cells_per_metacell))``; clusters are found on the top ``n_pcs``
    principal components of the (at most 2,000) most variable genes, deterministically for a seed.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    x = np.asarray(expr, dtype=np.float32)
    n_cells = x.shape[0]
    k = min(n_cells, max(2, round(n_cells / cells_per_metacell)))
    variable = np.argsort(-x.var(axis=0), kind="stable")[:2000]
    sub = x[:, variable] - x[:, variable].mean(axis=0)
    n_comp = max(1, min(n_pcs, n_cells - 1, variable.size))
    pcs = PCA(n_comp, random_state=seed, svd_solver="randomized").fit_transform(sub)
    labels = KMeans(k, n_init=4, random_state=seed).fit_predict(pcs)
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, labels, x)
    counts = np.bincount(labels, minlength=k)
    keep = counts > 0
    return (sums[keep] / counts[keep, None]).astype(np.float32)


@dataclass
class ViewTensors:
    """One view ready for image building, on the compute device."""

    name: str
    bins: torch.Tensor  # (genes, cells) uint8
    z: torch.Tensor  # (genes, cells) float32, unit-norm centred rows
    zrank: torch.Tensor  # the same for ranks (Spearman)
    neighbours: torch.Tensor  # (genes, k) int64: the neighbour images' partners
    expression_neighbours: torch.Tensor  # (genes, k) int64: the most correlated genes


class ImageBuilder:
    """Builds primary and neighbour images for any gene pairs across all views."""

    def __init__(
        self,
        data: ExpressionViews,
        *,
        n_neighbours: int = N_NEIGHBOURS,
        n_bins: int = N_BINS,
        cells_per_metacell: int = CELLS_PER_METACELL,
        label_neighbours: bool = LABEL_NEIGHBOURS,
        device: torch.device | None = None,
        seed: int = 0,
    ) -> None:
        import torch

        start = time.perf_counter()
        self.device = device or torch.device("cpu")
        self.n_bins = n_bins
        self.n_genes = len(data.genes)
        self.n_neighbours = usable_neighbours(n_neighbours, self.n_genes)
        #: neighbours from the labels' graph (:func:`label_neighbours`) once labels are set
        self.label_neighbours = label_neighbours
        self.views: list[ViewTensors] = []
        for name, expr in zip(data.views, data.expr, strict=True):
            bins = torch.from_numpy(bin_genes(expr, n_bins)).to(self.device)
            z = torch.from_numpy(standardise(expr)).to(self.device)
            zrank = torch.from_numpy(standardise(rankdata(expr, axis=0))).to(self.device)
            neighbours = top_neighbours(z, self.n_neighbours)
            self.views.append(ViewTensors(name, bins, z, zrank, neighbours, neighbours))
        # pair features over all views: pooled ranks and metacell means
        self.pooled_zrank = torch.from_numpy(standardise(rankdata(data.pooled(), axis=0))).to(
            self.device
        )
        self.zmeta: torch.Tensor | None = None  # (genes, metacells); None: no metacell features
        self.n_metacells = 0
        if cells_per_metacell > 0:
            # per view, over the cells no earlier view has (a shared cell joins one metacell)
            metacells = np.concatenate(
                [
                    metacell_means(e[m], cells_per_metacell, seed=seed)
                    for e, m in zip(data.expr, data.unique_masks(), strict=True)
                    if m.sum() >= 2
                ],
                axis=0,
            )
            self.n_metacells = int(metacells.shape[0])
            self.zmeta = torch.from_numpy(standardise(metacells)).to(self.device)
        from scregnet.grn.label_features import gene_statistics

        self.gene_stats = torch.from_numpy(gene_statistics(data.pooled())).to(self.device)
        self.pooled_z = torch.from_numpy(standardise(data.pooled())).to(self.device)
        #: label features of the labelled pairs last given to :meth:`set_labels` (None: zeros)
        self.label_features: LabelFeatures | None = None
        self.seed = seed
        self.feature_mean = torch.zeros(N_PAIR_FEATURES, device=self.device)
        self.feature_scale = torch.ones(N_PAIR_FEATURES, device=self.device)
        gen = torch.Generator().manual_seed(seed)
        n_ref = min(20_000, self.n_genes * self.n_genes)
        ref = self.pair_features(
            torch.randint(self.n_genes, (n_ref,), generator=gen).to(self.device),
            torch.randint(self.n_genes, (n_ref,), generator=gen).to(self.device),
        )
        self.feature_mean = ref.mean(dim=0)
        self.feature_scale = ref.std(dim=0).clamp(min=1e-6)
        log.info(
            "binned %d genes in %d view(s), %d neighbours each, %d metacells, in %.1f s",
            self.n_genes,
            len(self.views),
            self.n_neighbours,
            self.n_metacells,
            time.perf_counter() - start,
        )

    @classmethod
    def for_model(
        cls,
        data: ExpressionViews,
        config: GRNConfig,
        *,
        device: torch.device | None = None,
        seed: int = 0,
    ) -> ImageBuilder:
        """The images a model of ``config`` reads: its bins and neighbours; metacells and
        label-graph neighbours only with pair features (DeepMCL as published has neither)."""
        return cls(
            data,
            n_neighbours=config.n_neighbours,
            n_bins=config.n_bins,
            cells_per_metacell=config.cells_per_metacell if config.n_pair_features else 0,
            label_neighbours=config.label_neighbours and config.n_pair_features > 0,
            device=device,
            seed=seed,
        )

    def primary(
        self, a: torch.Tensor, b: torch.Tensor, cells: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``(n,)`` x ``(n,)`` gene indices -> ``(n, views, n_bins, n_bins)`` primary images."""
        import torch

        return torch.stack(
            [
                pair_histograms(
                    v.bins, a, b, n_bins=self.n_bins, cells=None if cells is None else cells[i]
                )
                for i, v in enumerate(self.views)
            ],
            dim=1,
        )

    def neighbour(
        self, genes: torch.Tensor, cells: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``(g,)`` genes -> ``(g, views, k + 1, n_bins, n_bins)``: (g, g) then (g, neighbour j)."""
        import torch

        out = []
        for i, v in enumerate(self.views):
            partners = torch.cat([genes.unsqueeze(1), v.neighbours[genes]], dim=1)  # (g, k+1)
            left = genes.unsqueeze(1).expand_as(partners).reshape(-1)
            images = pair_histograms(
                v.bins,
                left,
                partners.reshape(-1),
                n_bins=self.n_bins,
                cells=None if cells is None else cells[i],
            )
            out.append(images.reshape(len(genes), partners.shape[1], self.n_bins, self.n_bins))
        return torch.stack(out, dim=1)

    def stats(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per view: Pearson r, |r|, Spearman rho, |rho| of each pair: ``(n, views, N_STATS)``
        (:data:`scregnet.grn.config.N_STATS`)."""
        import torch

        out = []
        for v in self.views:
            r = pair_dots(v.z, a, b)
            rho = pair_dots(v.zrank, a, b)
            out.append(torch.stack([r, r.abs(), rho, rho.abs()], dim=1))
        return torch.stack(out, dim=1)

    def pair_features(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Standardised pooled Spearman rho, |rho|, metacell Pearson r, |r|: ``(n, N_PAIR_FEATURES)``.

        Without metacells (``cells_per_metacell = 0``) the last two are 0.
        """
        import torch

        rho = pair_dots(self.pooled_zrank, a, b)
        if self.zmeta is None:  # metacells switched off: constant 0 features
            r = torch.zeros_like(rho)
        else:
            r = pair_dots(self.zmeta, a, b)
        raw = torch.stack([rho, rho.abs(), r, r.abs()], dim=1)
        return (raw - self.feature_mean) / self.feature_scale

    def set_labels(
        self,
        tf: NDArray[np.intp] | None,
        target: NDArray[np.intp] | None = None,
        label: NDArray[np.int8] | None = None,
    ) -> None:
        """Label features (and, with ``label_neighbours``, the neighbour images' partners) from
        these labelled pairs from now on (``tf=None``: none: zeros and expression neighbours)."""
        from scregnet.grn.label_features import LabelFeatures

        if tf is None or target is None or label is None:
            for v in self.views:
                v.neighbours = v.expression_neighbours
            self.label_features = None
            return
        for v in self.views:
            v.neighbours = (
                label_neighbours(v.z, v.expression_neighbours, tf, target, label)
                if self.label_neighbours
                else v.expression_neighbours
            )
        self.label_features = LabelFeatures(
            self.pooled_zrank, self.pooled_z, self.gene_stats, tf, target, label, seed=self.seed
        )

    def features(self, a: torch.Tensor, b: torch.Tensor, width: int) -> torch.Tensor:
        """The head's features of pairs: :meth:`pair_features`, followed (when ``width`` has room
        for them) by the label features of :meth:`set_labels` (zeros before any labels are set)."""
        import torch

        from scregnet.grn.config import N_LABEL_FEATURES

        pair = self.pair_features(a, b)
        if width == N_PAIR_FEATURES:
            return pair
        if width != N_PAIR_FEATURES + N_LABEL_FEATURES:
            msg = f"feature width {width}: expected {N_PAIR_FEATURES} or {N_PAIR_FEATURES + N_LABEL_FEATURES}"
            raise ValueError(msg)
        if self.label_features is None:
            extra = torch.zeros((a.numel(), N_LABEL_FEATURES), device=pair.device)
        else:
            extra = self.label_features(a, b)
        return torch.cat([pair, extra.to(pair.dtype)], dim=1)

    def sample_cells(self, fraction: float, generator: torch.Generator) -> list[torch.Tensor]:
        """A random subset of each view's cells (training augmentation)."""
        import torch

        out = []
        for v in self.views:
            n = int(v.bins.shape[1])
            keep = max(2, round(n * fraction))
            perm = torch.randperm(n, generator=generator)[:keep]
            out.append(perm.sort().values.to(self.device))
        return out
