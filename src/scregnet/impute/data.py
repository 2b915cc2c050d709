"""The imputation stage's data contract: counts in, log-normalised matrices and bulk profiles out.

AnnData contract (validated once, here):

- ``adata.X`` (or ``adata.layers[layer]`` with ``--layer``) holds raw UMI counts: finite,
  non-negative, integer-valued (values within ``1e-6`` of an integer are accepted and rounded, as
  exported counts often carry float noise), at least one cell and one gene, and every cell with
  at least one count (a cell with none is an empty barcode of a raw, unfiltered matrix).
- ``adata.var_names`` are gene names; the bulk matrix is matched on them.

Normalisation (the one definition every part of the stage and its evaluation uses): each cell's
counts are divided by its library size (total counts) and multiplied by ``TARGET_SUM`` = 10,000
("counts per 10k"), then ``log1p`` is applied: ``x = log(1 + 1e4 * c / sum(c))``. A cell with no
counts stays all zero. The imputed layer is on this same scale.

Bulk: a TSV of genes x samples (first column ``gene``) of raw counts, validated like the single-cell
counts. It is intersected with the single-cell genes explicitly (:func:`intersect_genes`); fewer than
``MIN_SHARED_GENES`` shared genes is an error. Without a bulk matrix, :func:`cluster_pseudobulk`
sums the single cells' raw counts per (unsupervised) cluster instead.

Neighbours (our extension of scDTL, see :mod:`scregnet.impute.model`): :func:`neighbour_graph`
finds each cell's ``k`` nearest neighbours (Euclidean, top principal components of the
log-normalised modelled genes; the cell itself excluded) and :func:`neighbour_pool` turns them
into a sparse pooling matrix. A cell's neighbour profile is ``log1p(TARGET_SUM * sum of the
neighbours' counts / sum of their library sizes)``: the pooled, library-weighted mean profile.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from scregnet.errors import InputError, first_line
from scregnet.io.counts import check_counts
from scregnet.stats import TARGET_SUM

if TYPE_CHECKING:
    import anndata as ad
    import pandas as pd

log = logging.getLogger(__name__)

MIN_SHARED_GENES = 200
#: the bulk sample check (:func:`check_bulk_samples`): of the shared genes the single cells
#: express most (this many), the fraction a sample must detect, and below which it is warned of
BULK_CHECK_GENES = 100
MIN_BULK_DETECTED = 0.5
WARN_BULK_DETECTED = 0.8


def get_counts(
    adata: ad.AnnData, *, layer: str | None = None, path: str | Path | None = None
) -> sp.csr_matrix:
    """The validated raw counts of ``adata`` (``X`` or ``layers[layer]``) as float32 CSR."""
    if adata.n_obs == 0 or adata.n_vars == 0:
        msg = f"empty matrix ({adata.n_obs} cells x {adata.n_vars} genes)"
        raise InputError(msg, path)
    if layer is None:
        source, what, hint = adata.X, "X", " (pick a raw-count layer with --layer)"
    else:
        if layer not in adata.layers:
            have = ", ".join(adata.layers.keys()) or "none"
            msg = f"layer {layer!r} not found (layers: {have})"
            raise InputError(msg, path)
        source, what, hint = adata.layers[layer], f"layer {layer!r}", ""
    if source is None:
        msg = "X is empty (None); pick a raw-count layer with --layer"
        raise InputError(msg, path)
    if adata.var_names.has_duplicates:
        dup = adata.var_names[adata.var_names.duplicated()][0]
        msg = f"duplicate gene names in var_names (e.g. {dup!r}); make them unique first"
        raise InputError(msg, path)
    counts = sp.csr_matrix(source, dtype=np.float64)
    counts.sum_duplicates()
    check_counts(counts.data, what=f"the counts in {what}", path=path, hint=hint)
    counts.data = np.rint(counts.data)
    counts.eliminate_zeros()
    if counts.nnz == 0:
        msg = f"{what} has no non-zero counts"
        raise InputError(msg, path)
    empty = np.flatnonzero(np.diff(counts.indptr) == 0)
    if empty.size:
        # no count on any gene of the file: an empty droplet, not a cell (a low-depth cell with
        # no count on the modelled genes only keeps its library over all genes and is imputed)
        cause = (
            "empty barcodes, as in a raw (unfiltered) matrix; give the filtered matrix (cells only)"
            if adata.n_vars >= MIN_SHARED_GENES
            else "with so few genes their depth is unknown; give all genes of the filtered matrix"
        )
        msg = (
            f"{empty.size} of {adata.n_obs} cells have no counts in {what} on any of the "
            f"{adata.n_vars} genes (e.g. {adata.obs_names[empty[0]]!r}): {cause}"
        )
        raise InputError(msg, path)
    return sp.csr_matrix(counts, dtype=np.float32)


def library_sizes(counts: NDArray[np.floating] | sp.spmatrix) -> NDArray[np.float64]:
    """Total counts per row (cell or bulk sample)."""
    return np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()


def normalize_log1p(
    counts: NDArray[np.floating] | sp.spmatrix, library: NDArray[np.floating] | None = None
) -> NDArray[np.float32]:
    """``log1p(TARGET_SUM * counts / library)`` per row, dense float32.

    ``library`` defaults to the row sums of ``counts``; pass the totals over all genes when
    ``counts`` holds a subset of them. A row with no counts stays zero.
    """
    dense = counts.toarray() if sp.issparse(counts) else np.asarray(counts)  # type: ignore[union-attr]
    lib = library_sizes(dense) if library is None else np.asarray(library, dtype=np.float64)
    lib = np.where(lib > 0, lib, 1.0).reshape(-1, 1)
    return np.log1p(dense.astype(np.float64) / lib * TARGET_SUM).astype(np.float32)


def normalize_log1p_sparse(
    counts: sp.spmatrix, library: NDArray[np.floating] | None = None
) -> sp.csr_matrix:
    """:func:`normalize_log1p` for a sparse matrix, staying sparse (zeros stay zero)."""
    csr = sp.csr_matrix(counts, dtype=np.float64)
    lib = library_sizes(csr) if library is None else np.asarray(library, dtype=np.float64)
    lib = np.where(lib > 0, lib, 1.0)
    scaled = sp.diags(TARGET_SUM / lib) @ csr
    scaled = sp.csr_matrix(scaled)
    scaled.data = np.log1p(scaled.data)
    return sp.csr_matrix(scaled, dtype=np.float32)


def read_bulk_tsv(path: str | Path) -> pd.DataFrame:
    """A bulk RNA count matrix: TSV, genes in rows (first column ``gene``), one column per sample."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        msg = "file does not exist"
        raise InputError(msg, path)
    try:
        frame = pd.read_csv(path, sep="\t", index_col=0)
    except pd.errors.EmptyDataError as exc:
        msg = "file is empty"
        raise InputError(msg, path) from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        msg = f"not a readable TSV ({first_line(exc)})"
        raise InputError(msg, path) from exc
    if _header_is_data(list(map(str, frame.columns))):
        numeric = list(map(str, frame.columns))
        msg = (
            f"the first line looks like data, not a header (sample names {', '.join(numeric[:3])}): "
            "it must name the samples (gene<TAB>sample1<TAB>...)"
        )
        raise InputError(msg, path)
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        msg = f"empty bulk matrix ({frame.shape[0]} genes x {frame.shape[1]} samples)"
        raise InputError(msg, path)
    frame.index = frame.index.astype(str)
    if frame.index.has_duplicates:
        dup = frame.index[frame.index.duplicated()][0]
        msg = f"duplicate gene {dup!r} in the first column"
        raise InputError(msg, path)
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        msg = f"sample column {bad[0]!r} is not numeric"
        raise InputError(msg, path)
    values = frame.to_numpy(dtype=np.float64)
    check_counts(values.ravel(), what="bulk counts", path=path)
    if values.sum() == 0:
        msg = "bulk matrix has no non-zero counts"
        raise InputError(msg, path)
    log.info("read bulk RNA %s: %d genes x %d samples", path, *frame.shape)
    return frame.round().astype(np.float64)


def _header_is_data(names: list[str]) -> bool:
    """Sample names that are all numbers, other than samples numbered 0 or 1 up: a first line of
    counts read as the header (pandas adds ``.1`` to a repeated name, which stays a number)."""
    try:
        values = [float(n) for n in names]
    except ValueError:
        return False
    numbered = [float(i) for i in range(len(names))]
    return values not in (numbered, [v + 1 for v in numbered])


def intersect_genes(
    sc_genes: Sequence[str],
    bulk_genes: Sequence[str],
    *,
    min_shared: int = MIN_SHARED_GENES,
    path: str | Path | None = None,
    sc_path: str | Path | None = None,
) -> list[str]:
    """Genes present in both, in single-cell order; fewer than ``min_shared`` is an error.

    The error names the input that causes it: the single cells (``sc_path``) or the bulk matrix
    (``path``) when it has fewer than ``min_shared`` genes at all, else the bulk matrix (the
    names do not match).
    """
    bulk = set(bulk_genes)
    shared = [g for g in sc_genes if g in bulk]
    if len(shared) < min_shared and len(sc_genes) < min_shared:
        msg = (
            f"only {len(sc_genes)} genes, fewer than the {min_shared} that must be shared with "
            "the bulk matrix; give more genes or no bulk matrix (pseudobulk of the cells instead)"
        )
        raise InputError(msg, sc_path)
    if len(shared) < min_shared and len(bulk) < min_shared:
        msg = (
            f"bulk matrix has only {len(bulk)} genes, fewer than the {min_shared} that must be "
            "shared with the single cells"
        )
        raise InputError(msg, path)
    if len(shared) < min_shared:
        msg = (
            f"only {len(shared)} genes shared between the bulk matrix ({len(bulk)} genes) and the "
            f"single cells ({len(sc_genes)} genes); at least {min_shared} are needed (check gene naming)"
        )
        raise InputError(msg, path)
    log.info(
        "gene intersection: %d shared of %d single-cell and %d bulk genes",
        len(shared),
        len(sc_genes),
        len(bulk),
    )
    return shared


def check_bulk_samples(
    bulk: pd.DataFrame, sc_totals: NDArray[np.floating], *, path: str | Path | None = None
) -> None:
    """Refuse a bulk sample that is not an RNA profile; warn about a borderline one.

    ``bulk`` holds the shared genes (rows, in the order of ``sc_totals``, the single cells'
    total counts of each). An RNA profile detects the genes the single cells express most: of the
    :data:`BULK_CHECK_GENES` most expressed (those the cells detect), a sample with counts on
    fewer than :data:`MIN_BULK_DETECTED` of them is an :class:`InputError`, fewer than
    :data:`WARN_BULK_DETECTED` a warning. (Real bulk and mRNA-mixture profiles, CellBench
    RNAmix, detect at least 96 % of them.)
    """
    expressed = np.flatnonzero(np.asarray(sc_totals) > 0)
    top = expressed[np.argsort(-np.asarray(sc_totals)[expressed], kind="stable")]
    top = top[:BULK_CHECK_GENES]
    if top.size == 0:
        return
    detected = (bulk.to_numpy(dtype=np.float64)[top] > 0).sum(axis=0)
    fraction = detected / top.size
    worst = int(np.argmin(fraction))
    what = (
        f"bulk sample {bulk.columns[worst]!r} has counts on only {detected[worst]} of the "
        f"{top.size} shared genes the single cells express most"
    )
    if fraction[worst] < MIN_BULK_DETECTED:
        msg = f"{what}: not an RNA profile (an RNA profile detects nearly all of them)"
        raise InputError(msg, path)
    low = np.flatnonzero(fraction < WARN_BULK_DETECTED)
    if low.size:
        log.warning(
            "%s: %s%s; a real RNA profile detects nearly all of them",
            path or "bulk matrix",
            what,
            f" ({low.size} samples below {WARN_BULK_DETECTED:.0%})" if low.size > 1 else "",
        )


def select_variable_genes(
    counts: sp.csr_matrix, genes: Sequence[str], n_top: int | None
) -> list[str]:
    """The ``n_top`` most variable genes (dispersion of log-normalised values), in input order.

    ``None`` or ``n_top`` at least the number of detected genes keeps all detected genes. Genes
    never detected are always dropped (there is nothing to learn about them).
    """
    detected = np.asarray((counts > 0).sum(axis=0)).ravel() > 0
    genes = list(genes)
    if n_top is None or n_top >= int(detected.sum()):
        return [g for g, d in zip(genes, detected, strict=True) if d]
    logn = normalize_log1p_sparse(counts)
    mean = np.asarray(logn.mean(axis=0), dtype=np.float64).ravel()
    sq = np.asarray(logn.multiply(logn).mean(axis=0), dtype=np.float64).ravel()
    var = sq - mean**2
    dispersion = np.where(mean > 0, var / np.maximum(mean, 1e-12), -np.inf)
    order = np.argsort(-dispersion, kind="stable")[:n_top]
    keep = np.zeros(len(genes), dtype=bool)
    keep[order] = True
    return [g for g, k in zip(genes, keep, strict=True) if k]


@dataclass(frozen=True)
class Pseudobulk:
    """Pseudobulk profiles from the single cells' own clusters (raw counts, samples x genes)."""

    counts: NDArray[np.float64]
    library: NDArray[np.float64]
    cluster_of_sample: NDArray[np.int64]
    n_clusters: int


def cluster_pseudobulk(
    counts: sp.csr_matrix,
    library: NDArray[np.floating],
    *,
    rng: np.random.Generator,
    n_clusters: int | None = None,
    replicates: int = 16,
    n_pcs: int = 30,
) -> Pseudobulk:
    """Cluster the cells (PCA of log-normalised counts + k-means) and sum raw counts per cluster.

    ``counts`` are the model's genes, ``library`` each cell's total over all genes. Each cluster
    yields ``replicates`` pseudobulk samples, each the sum of a random half of its cells, so that
    the bulk domain has within-cluster variation to learn from. Unsupervised: no labels are read.
    The default number of clusters is ``n_cells // 50`` clipped to [2, 20].
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    n_cells = counts.shape[0]
    if n_clusters is None:
        n_clusters = int(np.clip(n_cells // 50, 2, 20))
    n_clusters = max(1, min(n_clusters, n_cells))
    seed = int(rng.integers(2**31 - 1))
    n_comp = min(n_pcs, n_cells - 1, counts.shape[1] - 1)
    logn = normalize_log1p(counts, library)
    if n_clusters > 1 and n_comp >= 1 and not identical_rows(logn):
        pcs = PCA(n_components=n_comp, svd_solver="arpack", random_state=seed).fit_transform(logn)
        labels = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed).fit_predict(pcs)
    else:
        labels = np.zeros(n_cells, dtype=np.int64)
    lib = np.asarray(library, dtype=np.float64)
    profiles: list[NDArray[np.float64]] = []
    libs: list[float] = []
    owner: list[int] = []
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        size = max(1, members.size // 2)
        for _ in range(replicates):
            pick = rng.choice(members, size=size, replace=False)
            profiles.append(np.asarray(counts[pick].sum(axis=0), dtype=np.float64).ravel())
            libs.append(float(lib[pick].sum()))
            owner.append(int(k))
    return Pseudobulk(
        counts=np.vstack(profiles),
        library=np.asarray(libs),
        cluster_of_sample=np.asarray(owner, dtype=np.int64),
        n_clusters=int(np.unique(labels).size),
    )


def identical_rows(x: NDArray[np.floating] | sp.spmatrix) -> bool:
    """Whether every row of ``x`` is the same (no variance to find principal components in)."""
    high, low = x.max(axis=0), x.min(axis=0)
    if sp.issparse(high):
        high, low = high.toarray(), low.toarray()
    return bool(np.array_equal(np.asarray(high), np.asarray(low)))


def gene_order(logn: NDArray[np.floating]) -> NDArray[np.intp]:
    """A 1D order of genes that puts co-expressed genes next to each other.

    The U-Net convolves along the gene axis, where the input order (alphabetical, genomic) carries
    little meaning; ordering genes by the leaves of an average-linkage tree on their correlation
    makes neighbouring positions co-vary, so that convolution kernels see related genes.
    """
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    n_genes = logn.shape[1]
    if n_genes < 3:
        return np.arange(n_genes)
    x = np.asarray(logn, dtype=np.float64)
    sd = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    corr = (z.T @ z) / max(1, x.shape[0])
    np.fill_diagonal(corr, 1.0)
    dist = np.clip(1.0 - corr, 0.0, 2.0)
    dist = (dist + dist.T) / 2
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), method="average")
    return np.asarray(leaves_list(tree), dtype=np.intp)


def neighbour_graph(
    counts: sp.csr_matrix, library: NDArray[np.floating], *, k: int, n_pcs: int
) -> NDArray[np.intp]:
    """Each cell's ``k`` nearest neighbours, itself excluded: (cells, min(k, cells - 1)) indices.

    Euclidean distance on the top ``n_pcs`` principal components of ``normalize_log1p(counts,
    library)`` (ARPACK on the implicitly centred sparse matrix, fixed start vector, so the
    result is deterministic).
    """
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    n_cells, n_genes = counts.shape
    k = min(k, n_cells - 1)
    if k < 1:
        return np.zeros((n_cells, 0), dtype=np.intp)
    logn = normalize_log1p_sparse(counts, library)
    n_comp = min(n_pcs, n_cells - 1, n_genes - 1)  # ARPACK needs fewer than min(shape)
    if n_comp >= 1 and not identical_rows(logn):
        pca = PCA(n_components=n_comp, svd_solver="arpack", random_state=0)
        coords = pca.fit_transform(logn)
    else:
        # no principal component: a single gene, or every cell the same (all at distance 0,
        # their neighbours are arbitrary)
        coords = logn.toarray()
    # kneighbors() without a query excludes each point from its own neighbours
    _, idx = NearestNeighbors(n_neighbors=k).fit(coords).kneighbors()
    return np.asarray(idx, dtype=np.intp)


def choose_neighbours(
    counts: sp.csr_matrix,
    candidates: tuple[int, ...],
    *,
    n_pcs: int,
    seed: int,
    held_fraction: float = 0.1,
    max_cells: int = 5000,
) -> tuple[int, dict[int, float]]:
    """The neighbour count of ``candidates`` whose kNN smoothing best predicts held-out molecules.

    Each cell's molecules are split binomially (``held_fraction`` held out); for each ``k`` a
    cell's training counts summed with its ``k`` nearest neighbours' (:func:`neighbour_graph` on
    the training part) predict its held-out part, scored by the molecular cross-validation loss
    (squared error of :func:`scregnet.stats.expected_held_out_log` of the pooled counts per 10k
    against :func:`scregnet.stats.held_out_log`, as :func:`scregnet.evaluate.mcv.mcv_loss` reads
    an expected-count output) over at most ``max_cells`` cells drawn at random (the graph has
    every cell). Returns the best ``k`` and every ``k``'s loss.
    """
    from scregnet.stats import expected_held_out_log, held_out_log, split_molecules

    held, train = split_molecules(counts, held_fraction, seed=seed)
    lib_train, lib_held = library_sizes(train), library_sizes(held)
    nbrs = neighbour_graph(train, lib_train, k=max(candidates), n_pcs=n_pcs)
    n_cells = counts.shape[0]
    rows = np.arange(n_cells)
    if n_cells > max_cells:
        rows = np.sort(np.random.default_rng(seed).choice(n_cells, max_cells, replace=False))
    self_rows = sp.identity(n_cells, format="csr")[rows]
    depth = np.maximum(lib_held[rows], 1.0)
    target = held_out_log(held[rows], depth)
    losses: dict[int, float] = {}
    for k in sorted(candidates):
        if k > nbrs.shape[1] and losses:
            break
        pool = neighbour_pool(nbrs[rows, :k], n_cells) + self_rows
        pooled = np.asarray((pool @ train).toarray(), dtype=np.float64)
        cp10k = pooled / np.maximum(pool @ lib_train, 1.0)[:, None] * TARGET_SUM
        losses[k] = float(np.mean((expected_held_out_log(cp10k, depth) - target) ** 2))
    return min(losses, key=lambda k: losses[k]), losses


def local_smoothing_gain(losses: dict[int, float]) -> float:
    """How much better smoothing over the fewest neighbours predicts held-out molecules than over
    any more (``losses`` from :func:`choose_neighbours`): (the best wider loss - the fewest's)
    / the fewest's. Negative when a wider count is chosen; infinite with a single count."""
    fewest = min(losses)
    wider = [loss for k, loss in losses.items() if k > fewest]
    if not wider:
        return math.inf
    return (min(wider) - losses[fewest]) / losses[fewest]


def neighbour_pool(neighbours: NDArray[np.intp], n_cells: int | None = None) -> sp.csr_matrix:
    """Sparse (cells x cells) 0/1 matrix: row ``i`` selects cell ``i``'s neighbours.

    ``pool @ counts`` sums the neighbours' counts, ``pool @ library`` their library sizes.
    """
    n = neighbours.shape[0] if n_cells is None else n_cells
    k = neighbours.shape[1]
    rows = np.repeat(np.arange(neighbours.shape[0]), k)
    return sp.csr_matrix(
        (np.ones(rows.size, dtype=np.float32), (rows, neighbours.ravel())),
        shape=(neighbours.shape[0], n),
    )
