"""Expression views for GRN inference: read, normalise, intersect genes, pool by view.

A *view* is one data source, condition or time point. Cells are grouped into views by
``obs['view']`` when a file has that column, otherwise every file is its own view named after the
file (``S1.rna.h5ad`` -> ``S1``). Files (or cells) that share a view name are pooled. Every view
must have at least ``min_cells`` cells, and all inputs are restricted to the genes they share.

Expression is taken from the first of :data:`DEFAULT_LAYERS` present -- the imputation stage's
expected-value layer ``imputed_expected``, then its headline layer ``imputed`` -- else from ``X``;
``layer=`` picks one (``"X"``: the main matrix). The expected-value layer is the default because
it keeps co-expression best (docs/benchmarks.md, GRN). Every file must be read from the same layer;
the views record it (:attr:`ExpressionViews.layer`) and a trained model scores that layer only.
Integer counts are library-size normalised to 10,000 and ``log1p``-transformed; non-integer
values are taken as already normalised (log-scale) expression and used as they are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from scregnet import keys
from scregnet.errors import InputError
from scregnet.io.text import reading
from scregnet.stats import TARGET_SUM

log = logging.getLogger(__name__)

MIN_CELLS = 50
MIN_GENES = 5
#: layers read when ``layer`` is not given, first present wins (the imputation stage's
#: expected-value layer, then its headline layer)
DEFAULT_LAYERS = (keys.IMPUTED_EXPECTED, keys.IMPUTED)


@dataclass
class ExpressionViews:
    """Log expression per view on one shared gene list.

    ``expr[i]`` is a dense ``(cells, genes)`` float32 matrix for view ``views[i]``; ``cells[i]``
    (optional) names its cells (``obs_names``). Views may share cells (two pseudotime branches
    share their early cells): a cell with the same name and the same expression in two views is
    one cell, counted once wherever the views are pooled (:meth:`pooled`, :meth:`unique_masks`).
    """

    genes: list[str]
    views: list[str]
    expr: list[NDArray[np.float32]]
    cells: list[NDArray[np.str_]] | None = None
    #: the layer every file was read from (``"X"``: the main matrix; None: not read from files)
    layer: str | None = None
    _unique: list[NDArray[np.bool_]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def gene_index(self) -> dict[str, int]:
        return {g: i for i, g in enumerate(self.genes)}

    def n_cells(self) -> list[int]:
        return [int(e.shape[0]) for e in self.expr]

    def subset_views(self, names: Sequence[str]) -> ExpressionViews:
        """Only the named views (in the given order); used for single-view ablations."""
        missing = [n for n in names if n not in self.views]
        if missing:
            msg = f"unknown view(s) {', '.join(missing)}; have {', '.join(self.views)}"
            raise InputError(msg)
        pick = [self.views.index(n) for n in names]
        return ExpressionViews(
            genes=list(self.genes),
            views=list(names),
            expr=[self.expr[i] for i in pick],
            cells=None if self.cells is None else [self.cells[i] for i in pick],
            layer=self.layer,
        )

    def unique_masks(self) -> list[NDArray[np.bool_]]:
        """Per view, which cells are not already in an earlier view.

        A cell is "already in" an earlier view when that view has a cell of the same name with the
        same expression (the same cell listed twice, e.g. in two overlapping trajectory branches);
        equal names with different expression (barcode collisions between samples) are different
        cells. Without cell names every cell is unique.
        """
        if self._unique is not None:  # computed once: a Python pass over every cell name
            return self._unique
        if self.cells is None:
            return [np.ones(e.shape[0], dtype=bool) for e in self.expr]
        seen: dict[str, tuple[int, int]] = {}
        masks = []
        for v, (names, expr) in enumerate(zip(self.cells, self.expr, strict=True)):
            mask = np.ones(len(names), dtype=bool)
            for i, name in enumerate(names.tolist()):
                first = seen.get(name)
                if first is None:
                    seen[name] = (v, i)
                elif first[0] != v and np.array_equal(self.expr[first[0]][first[1]], expr[i]):
                    mask[i] = False
            masks.append(mask)
        self._unique = masks
        return masks

    def pooled(self) -> NDArray[np.float32]:
        """All views' cells stacked, each cell once: ``(unique cells, genes)``."""
        masks = self.unique_masks()
        return np.concatenate([e[m] for e, m in zip(self.expr, masks, strict=True)], axis=0)


#: cells normalised at a time from a dense counts matrix
LOG_ROWS = 1024
#: largest value log-normalised expression takes: log1p or log2(x + 1) of counts per million stays
#: below 21, so larger non-integer values are un-logged (CP10k, TPM) or scaled data
LOG_EXPRESSION_MAX = 30.0


def _view_name(path: Path) -> str:
    name = path.name
    for suffix in (".h5ad", ".h5", ".imputed", ".rna"):
        name = name.removesuffix(suffix)
    return name


def _log_expression(matrix: Any, path: Path) -> NDArray[np.float32]:
    """Dense float32 log expression from counts (normalised + log1p) or already-normalised data.

    Counts are normalised in float64 on the non-zeros of a sparse matrix, or ``LOG_ROWS`` cells
    at a time of a dense one, so that memory peaks at the float32 result, not at a float64 copy.
    """
    data = matrix.data if sp.issparse(matrix) else np.asarray(matrix)
    data = np.asarray(data)
    if data.size and not np.isfinite(data).all():
        msg = "expression contains NaN or infinite values"
        raise InputError(msg, path)
    if data.size and data.min() < 0:
        msg = "expression contains negative values (expected counts or log-normalised expression)"
        raise InputError(msg, path)
    counts = bool(data.size) and np.array_equal(data, np.round(data))
    if not counts and data.size and data.max() > LOG_EXPRESSION_MAX:
        msg = (
            f"values up to {data.max():.6g} are neither whole-number counts nor log-normalised "
            f"expression (at most {LOG_EXPRESSION_MAX:g}): give raw counts, or log1p of "
            "normalised counts"
        )
        raise InputError(msg, path)
    if sp.issparse(matrix):
        csr = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
        csr.sum_duplicates()  # an entry stored twice is one count before the log
        if counts:
            lib = np.asarray(csr.sum(axis=1), dtype=np.float64).ravel()
            lib[lib == 0] = 1.0
            row = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
            csr.data = np.log1p(csr.data / lib[row] * TARGET_SUM)
        return csr.astype(np.float32).toarray()
    out = np.empty(data.shape, dtype=np.float32)
    for start in range(0, data.shape[0], LOG_ROWS):
        block = np.asarray(data[start : start + LOG_ROWS], dtype=np.float64)
        if counts:
            lib = block.sum(axis=1, keepdims=True)
            lib[lib == 0] = 1.0
            block = np.log1p(block / lib * TARGET_SUM)
        out[start : start + LOG_ROWS] = block
    return out


def _expression_matrix(adata: Any, layer: str | None, path: Path) -> tuple[Any, str]:
    """The matrix to read and its layer's name: ``layer`` (``"X"``: the main matrix), else the
    first default layer present, else ``X``."""
    if layer == "X":
        return adata.X, "X"
    if layer is not None:
        if layer not in adata.layers:
            msg = f"has no layer {layer!r} (layers: {', '.join(adata.layers) or 'none'}; or X)"
            raise InputError(msg, path)
        return adata.layers[layer], layer
    for name in DEFAULT_LAYERS:
        if name in adata.layers:
            return adata.layers[name], name
    return adata.X, "X"


class _File(NamedTuple):
    """One expression file as read."""

    path: Path
    genes: list[str]
    #: log expression, cells x genes
    expr: NDArray[np.float32]
    #: view label and name per cell
    labels: NDArray[np.str_]
    names: NDArray[np.str_]
    #: whether the view is the file's name (no ``obs['view']``)
    named: bool
    #: the layer read (``"X"``: the main matrix)
    layer: str


def read_views(
    paths: Sequence[str | Path],
    *,
    layer: str | None = None,
    min_cells: int = MIN_CELLS,
    min_genes: int = MIN_GENES,
) -> ExpressionViews:
    """Read one or more expression files (``.h5ad``, Cell Ranger ``.h5``) into views on their
    shared genes."""
    if not paths:
        msg = "no expression file given (--rna)"
        raise InputError(msg)
    start = time.perf_counter()
    per_file = [_read_file(Path(raw), layer) for raw in paths]
    _check_named_views(per_file)
    _check_layers(per_file)
    order = _shared_genes(per_file, min_genes)

    pooled: dict[str, list[NDArray[np.float32]]] = {}
    cell_names: dict[str, list[NDArray[np.str_]]] = {}
    sources: dict[str, list[Path]] = {}
    for path, genes, expr, labels, names, *_ in per_file:
        idx = {g: i for i, g in enumerate(genes)}
        cols = np.fromiter((idx[g] for g in order), dtype=np.intp, count=len(order))
        expr = expr[:, cols]
        for view in dict.fromkeys(labels.tolist()):
            pooled.setdefault(str(view), []).append(expr[labels == view])
            cell_names.setdefault(str(view), []).append(names[labels == view])
            sources.setdefault(str(view), []).append(path)
    views = [str(v) for v in pooled]
    mats = [np.ascontiguousarray(np.concatenate(pooled[v], axis=0)) for v in views]
    for view, mat in zip(views, mats, strict=True):
        if mat.shape[0] < min_cells:
            msg = f"view {view!r} has {mat.shape[0]} cells; at least {min_cells} are needed"
            raise InputError(msg, sources[view][0])
    log.info(
        "expression: %d view(s) (%s) on %d shared genes in %.1f s",
        len(views),
        ", ".join(f"{v}: {m.shape[0]} cells" for v, m in zip(views, mats, strict=True)),
        len(order),
        time.perf_counter() - start,
    )
    data = ExpressionViews(
        genes=order,
        views=views,
        expr=mats,
        cells=[np.concatenate(cell_names[v]) for v in views],
        layer=per_file[0].layer,
    )
    n_shared = sum(int((~m).sum()) for m in data.unique_masks())
    if n_shared:
        log.info(
            "%d cell(s) appear in more than one view: counted once when views are pooled", n_shared
        )
    return data


def _read_file(path: Path, layer: str | None) -> _File:
    """One expression file's genes, log expression and per-cell view labels and names."""
    from scregnet.io.rna import read_rna

    adata = read_rna(path)
    matrix, layer_read = _expression_matrix(adata, layer, path)
    if matrix is None or adata.n_obs == 0 or adata.n_vars == 0:
        msg = "expression matrix is empty"
        raise InputError(msg, path)
    genes = [str(g) for g in adata.var_names]  # unique: read_rna renames repeated symbols
    named = keys.VIEW not in adata.obs.columns
    if named:
        labels = np.full(adata.n_obs, _view_name(path), dtype=object)
    else:
        labels = adata.obs[keys.VIEW].astype(str).to_numpy()
    names = np.asarray(adata.obs_names, dtype=str)
    expr = _log_expression(matrix, path)
    if not expr.any():
        msg = "every expression value is 0"
        raise InputError(msg, path)
    log.info("read %s: %d cells x %d genes", path, adata.n_obs, adata.n_vars)
    return _File(path, genes, expr, labels.astype(str), names, named, layer_read)


def _check_named_views(per_file: list[_File]) -> None:
    """Two different files without ``obs['view']`` whose names give the same view (Cell Ranger
    names every sample's matrix ``filtered_feature_bc_matrix.h5``) are an :class:`InputError`:
    pooling them by accident of their names would merge samples."""
    first: dict[str, Path] = {}
    for path, *_, named, _ in per_file:
        if not named:
            continue
        view = _view_name(path)
        other = first.setdefault(view, path)
        if other.resolve() != path.resolve():
            msg = (
                f"no obs['view'] here or in {other}, and both file names give the view {view!r}: "
                "give each its view (scregnet impute --view, or obs['view'])"
            )
            raise InputError(msg, path)


def _check_layers(per_file: list[_File]) -> None:
    """Files read from different layers (one has the imputed layers, another only ``X``) are an
    :class:`InputError`: their values are on different scales and the model records one layer."""
    first = per_file[0]
    for f in per_file[1:]:
        if f.layer != first.layer:
            msg = (
                f"read from layer {f.layer!r} where {first.path} is read from {first.layer!r}: "
                "give files with the same layers, or choose one with --layer"
            )
            raise InputError(msg, f.path)


def _shared_genes(per_file: list[_File], min_genes: int) -> list[str]:
    """The genes every file has, in the first file's order; InputError when fewer than
    ``min_genes``."""
    shared = set(per_file[0][1])
    for _, genes, *_ in per_file[1:]:
        shared &= set(genes)
    order = [g for g in per_file[0][1] if g in shared]
    if len(order) < min_genes:
        if len(per_file) == 1:  # nothing is shared: the one file has too few genes
            msg = f"only {len(order)} gene(s); need at least {min_genes}"
            raise InputError(msg, per_file[0].path)
        worst = min(per_file[1:], key=lambda f: len(shared & set(f[1])))[0]
        msg = (
            f"the expression inputs share only {len(order)} gene(s) (need at least {min_genes}); "
            "are they from the same organism and gene naming?"
        )
        raise InputError(msg, worst)
    if any(len(f[1]) != len(order) for f in per_file):
        dropped = sum(len(set(f[1]) - shared) for f in per_file)
        log.warning(
            "inputs have different gene sets: using the %d genes they share (%d gene entries dropped)",
            len(order),
            dropped,
        )
    return order


@dataclass
class PairLabels:
    """Labelled pairs as gene indices into the expression views' gene list."""

    tf: NDArray[np.intp]
    target: NDArray[np.intp]
    label: NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.tf.size)

    def subset(self, mask: NDArray[np.bool_]) -> PairLabels:
        return PairLabels(self.tf[mask], self.target[mask], self.label[mask])

    @property
    def n_positive(self) -> int:
        return int(self.label.sum())


def read_labels(path: str | Path) -> pd.DataFrame:
    """Known edges: TSV ``tf target [label]`` with or without a header line.

    With a header the columns ``tf``, ``target`` and optionally ``label`` are used (others, such as
    the simulator's ``sign``, are ignored). Without one, the first two columns are ``tf`` and
    ``target`` and a third, if present, is ``label``. Labels must be 0 or 1; a pair listed twice
    counts once, and labelled both 1 and 0 is an :class:`InputError`. Returns columns ``tf, target,
    label`` where ``label`` is -1 when the file has no label column.
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        msg = "labels file does not exist"
        raise InputError(msg, path)
    try:
        with reading(path):
            raw = pd.read_csv(path, sep="\t", header=None, dtype=str, comment="#")
    except pd.errors.EmptyDataError as exc:
        msg = "labels file is empty"
        raise InputError(msg, path) from exc
    if raw.shape[1] < 2:
        msg = "labels need at least two tab-separated columns: tf target [label]"
        raise InputError(msg, path)
    first = [str(x).strip().lower() for x in raw.iloc[0]]
    if first[0] == "tf" and first[1] == "target":
        frame = raw.iloc[1:].copy()
        frame.columns = first
        cols = ["tf", "target"] + (["label"] if "label" in first else [])
        frame = frame.loc[:, cols]
    else:
        frame = raw.iloc[:, : min(3, raw.shape[1])].copy()
        frame.columns = ["tf", "target", "label"][: frame.shape[1]]
    if frame.empty:
        msg = "labels file has no rows"
        raise InputError(msg, path)
    frame["tf"] = frame["tf"].str.strip()
    frame["target"] = frame["target"].str.strip()
    if frame[["tf", "target"]].isna().any().any():
        msg = "labels have empty tf or target fields"
        raise InputError(msg, path)
    if "label" in frame.columns:
        values = frame["label"].str.strip()
        bad = sorted(set(values[~values.isin(["0", "1"])].astype(str)))
        if bad:
            msg = f"label column must be 0 or 1, found {', '.join(bad[:5])}"
            raise InputError(msg, path)
        frame["label"] = values.astype(np.int8)
        if (frame["label"] == 0).all():
            msg = (
                f"no positive label: all {len(frame)} pairs are labelled 0 (label the "
                "regulating pairs 1, or list only positives)"
            )
            raise InputError(msg, path)
    else:
        frame["label"] = np.int8(-1)
    twice = frame[frame.duplicated(["tf", "target"], keep=False)]
    conflict = twice.groupby(["tf", "target"], sort=False)["label"].nunique() > 1
    if conflict.any():
        tf, target = conflict[conflict].index[0]
        msg = f"the pair {tf} -> {target} is labelled both 1 and 0"
        raise InputError(msg, path)
    frame = frame.drop_duplicates(["tf", "target"]).reset_index(drop=True)
    log.info("read %d labelled pairs of %d TFs from %s", len(frame), frame.tf.nunique(), path)
    return frame


def case_hint(absent: Sequence[str], genes: Sequence[str], limit: int = 3) -> str:
    """`` (X is x in the expression data: names are matched exactly, case included)`` for the
    names of ``absent`` that are genes of ``genes`` but for letter case (a mouse gene list against
    human-style TF names, say; at most ``limit`` shown); empty when none is."""
    by_case: dict[str, str] = {}
    for g in genes:
        by_case.setdefault(g.casefold(), g)
    pairs = [(a, by_case[a.casefold()]) for a in absent if a.casefold() in by_case]
    if not pairs:
        return ""
    shown = ", ".join(f"{a} is {g}" for a, g in pairs[:limit])
    more = f" and {len(pairs) - limit} more" if len(pairs) > limit else ""
    return f" ({shown}{more} in the expression data: names are matched exactly, case included)"


def label_pairs(
    frame: pd.DataFrame, genes: Sequence[str], *, source: str | Path | None = None
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.int8]]:
    """Map labelled pairs onto gene indices, expanding unlabelled lists with negatives.

    Rows with ``label == -1`` are positives, and every other (tf, gene) pair of their TFs (self
    pairs excluded) becomes a negative. Pairs with a gene absent from ``genes`` are dropped (with a
    warning naming the absent TFs); none left is an :class:`InputError`.
    """
    index = {g: i for i, g in enumerate(genes)}
    present = frame.tf.isin(index) & frame.target.isin(index)
    absent_tfs = sorted(set(frame.tf[~frame.tf.isin(index)]))
    if absent_tfs:
        log.warning(
            "%d labelled TF(s) absent from the expression data, their pairs dropped: %s%s%s",
            len(absent_tfs),
            ", ".join(absent_tfs[:20]),
            " ..." if len(absent_tfs) > 20 else "",
            case_hint(absent_tfs, genes),
        )
    kept = frame[present & (frame.tf != frame.target)]
    if kept.empty:
        absent = sorted(
            set(frame.tf[~frame.tf.isin(index)]) | set(frame.target[~frame.target.isin(index)])
        )
        msg = "the labels share no (tf, target) pair with the expression data's genes" + case_hint(
            absent, genes
        )
        raise InputError(msg, source)
    tf = kept.tf.map(index).to_numpy(np.intp)
    target = kept.target.map(index).to_numpy(np.intp)
    label = kept.label.to_numpy(np.int8)
    if (label == -1).any():
        listed = label == -1
        tfs = np.unique(tf[listed])
        n = len(genes)
        grid_tf = np.repeat(tfs, n)
        grid_target = np.tile(np.arange(n, dtype=np.intp), tfs.size)
        keep = grid_tf != grid_target
        grid_tf, grid_target = grid_tf[keep], grid_target[keep]
        positive = set(zip(tf[listed].tolist(), target[listed].tolist(), strict=True))
        grid_label = np.fromiter(
            ((p in positive) for p in zip(grid_tf.tolist(), grid_target.tolist(), strict=True)),
            dtype=np.int8,
            count=grid_tf.size,
        )
        explicit = ~listed & ~np.isin(tf, tfs)
        tf = np.concatenate([grid_tf, tf[explicit]])
        target = np.concatenate([grid_target, target[explicit]])
        label = np.concatenate([grid_label, label[explicit]])
    if label.max() == 0:
        msg = "no positive pair left after matching the labels to the expression genes"
        raise InputError(msg, source)
    if label.min() == 1:
        msg = "no negative pair in the labels (give a label column with 0s, or list only positives)"
        raise InputError(msg, source)
    return tf.astype(np.intp), target.astype(np.intp), label.astype(np.int8)
