"""scRNA-seq inputs: an AnnData ``.h5ad``, or the feature-barcode matrix ``.h5`` that Cell Ranger
(``filtered_feature_bc_matrix.h5``) and Cell Ranger ARC (the joint RNA + ATAC matrix, of which
the Gene Expression features are taken) write."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from scregnet import keys
from scregnet.errors import InputError, first_line
from scregnet.io.h5ad import check_unique_names, nonempty_file, read_h5ad, read_var

if TYPE_CHECKING:
    from collections.abc import Iterable

    import anndata as ad
    import pandas as pd

log = logging.getLogger(__name__)

#: the file names an RNA input may end with
RNA_SUFFIXES = (".h5ad", ".h5")


def read_rna(path: str | Path) -> ad.AnnData:
    """Cells x genes from ``path``: an ``.h5ad`` as written, a Cell Ranger ``.h5`` as counts
    (:func:`read_cellranger_h5`); any other name is an :class:`InputError`.

    Cell names must be unique (:func:`~scregnet.io.h5ad.check_unique_names`); repeated gene
    names are made unique (:func:`unique_genes`), as gene symbols legitimately repeat.
    """
    path = Path(path)
    if path.name.endswith(".h5ad"):
        adata = read_h5ad(path)
        check_not_atac(adata.var, adata.uns.keys(), path)
        return unique_genes(adata, path)
    if path.name.endswith(".h5"):
        return read_cellranger_h5(path)
    msg = "scRNA input must be an .h5ad or a Cell Ranger feature-barcode matrix .h5"
    raise InputError(msg, path)


def check_not_atac(var: pd.DataFrame, uns: Iterable[str], path: str | Path) -> None:
    """Refuse the ATAC stages' outputs given as scRNA: a cells x peaks file (``var`` chrom,
    start and end, features named ``chrom:start-end``, as ``scregnet count`` and ``scregnet
    cluster`` write; genes annotated with coordinates keep their names) or a TF-binding file
    (``uns['tfbind']``), whose columns would otherwise be taken for genes. ``var`` and the keys
    of ``uns`` are the file's."""
    named = var.index[:1000].astype(str)
    peak_names = named.str.fullmatch(r"[^:\s]+:\d+-\d+").mean() > 0.5 if len(named) else False
    if peak_names and all(c in var for c in ("chrom", "start", "end")):
        example = ", ".join(map(str, var.index[:2]))
        msg = (
            f"a cells x peaks file (var: chrom, start, end; e.g. {example}), not scRNA gene "
            "expression"
        )
        raise InputError(msg, path)
    if keys.TFBIND_UNS in set(uns):
        msg = "a TF-binding file from `scregnet tfbind` (uns['tfbind']), not scRNA gene expression"
        raise InputError(msg, path)


def check_rna_file(path: str | Path) -> None:
    """The cheap checks of an scRNA input without reading its matrix (planning a run): an
    ``.h5ad`` that is an ATAC stage's output (:func:`check_not_atac`); a Cell Ranger ``.h5`` is
    read as expression by construction."""
    path = Path(path)
    if path.name.endswith(".h5ad"):
        var, uns = read_var(path)
        check_not_atac(var, uns, path)


def unique_genes(adata: ad.AnnData, path: str | Path) -> ad.AnnData:
    """``adata`` with a gene name that appears more than once given ``-1``, ``-2``, ... from
    its second occurrence on (scanpy's convention; several Ensembl IDs share a symbol), which
    is logged with an example."""
    repeated = adata.var_names.duplicated().nonzero()[0]
    if repeated.size:
        first = str(adata.var_names[repeated[0]])
        with warnings.catch_warnings():  # a new name that was taken is skipped: logged below
            warnings.simplefilter("ignore", UserWarning)
            adata.var_names_make_unique()
        log.warning(
            "%s: %d gene symbol(s) repeat; later occurrences renamed with -1, -2, ... "
            "(e.g. %s -> %s)",
            path,
            repeated.size,
            first,
            adata.var_names[repeated[0]],
        )
    return adata


def read_cellranger_h5(path: str | Path) -> ad.AnnData:
    """The Gene Expression features of a Cell Ranger feature-barcode matrix (Cell Ranger 2 and
    later, Cell Ranger ARC), cells x genes counts (float32 CSR).

    Genes are named by their symbols (``var['gene_ids']`` keeps the Ensembl IDs); a symbol that
    appears more than once gets ``-1``, ``-2``, ... from its second occurrence on (scanpy's
    convention), which is logged. A missing, empty or unreadable file, one with no Gene
    Expression features or one whose barcodes repeat, is an :class:`InputError`.
    """
    import scanpy as sc

    path = nonempty_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # duplicate symbols: handled below
            adata = sc.read_10x_h5(path, gex_only=True)
    except (OSError, KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        detail = first_line(exc, default="")
        msg = f"not a Cell Ranger feature-barcode matrix .h5 ({type(exc).__name__}: {detail})"
        raise InputError(msg, path) from exc
    if adata.n_vars == 0:
        msg = "no Gene Expression features in this feature-barcode matrix"
        raise InputError(msg, path)
    check_unique_names(adata.obs_names, path)
    unique_genes(adata, path)
    log.info("read %s: %d cells x %d genes (Cell Ranger matrix)", path, adata.n_obs, adata.n_vars)
    return adata


def label_view(adata: ad.AnnData, view: str, path: str | Path) -> None:
    """Every cell's view (``obs[keys.VIEW]``) := ``view``. Views the file already gives, if
    other, are replaced, with a warning naming them."""
    import pandas as pd

    if not view or any(c.isspace() for c in view):
        msg = f"a view is a non-empty name without spaces, got {view!r}"
        raise InputError(msg)
    if keys.VIEW in adata.obs.columns:
        given = sorted(set(adata.obs[keys.VIEW].astype(str)) - {view})
        if given:
            log.warning(
                "%s: obs['%s'] (%s) replaced by the view %s",
                path,
                keys.VIEW,
                ", ".join(given[:5]) + (" ..." if len(given) > 5 else ""),
                view,
            )
    adata.obs[keys.VIEW] = pd.Categorical([view] * adata.n_obs)
