"""scRNA-seq inputs: an AnnData ``.h5ad``, or the feature-barcode matrix ``.h5`` that Cell Ranger
(``filtered_feature_bc_matrix.h5``) and Cell Ranger ARC (the joint RNA + ATAC matrix, of which
the Gene Expression features are taken) write."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from scregnet import keys
from scregnet.errors import InputError
from scregnet.io.h5ad import nonempty_file, read_h5ad

if TYPE_CHECKING:
    import anndata as ad

log = logging.getLogger(__name__)

#: the file names an RNA input may end with
RNA_SUFFIXES = (".h5ad", ".h5")


def read_rna(path: str | Path) -> ad.AnnData:
    """Cells x genes from ``path``: an ``.h5ad`` as written, a Cell Ranger ``.h5`` as counts
    (:func:`read_cellranger_h5`); any other name is an :class:`InputError`."""
    path = Path(path)
    if path.name.endswith(".h5ad"):
        return read_h5ad(path)
    if path.name.endswith(".h5"):
        return read_cellranger_h5(path)
    msg = "scRNA input must be an .h5ad or a Cell Ranger feature-barcode matrix .h5"
    raise InputError(msg, path)


def read_cellranger_h5(path: str | Path) -> ad.AnnData:
    """The Gene Expression features of a Cell Ranger feature-barcode matrix (Cell Ranger 2 and
    later, Cell Ranger ARC), cells x genes counts (float32 CSR).

    Genes are named by their symbols (``var['gene_ids']`` keeps the Ensembl IDs); a symbol that
    appears more than once gets ``-1``, ``-2``, ... from its second occurrence on (scanpy's
    convention), which is logged. A missing, empty or unreadable file, or one with no Gene
    Expression features, is an :class:`InputError`.
    """
    import scanpy as sc

    path = nonempty_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # duplicate symbols: handled below
            adata = sc.read_10x_h5(path, gex_only=True)
    except (OSError, KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        msg = f"not a Cell Ranger feature-barcode matrix .h5 ({type(exc).__name__}: {detail})"
        raise InputError(msg, path) from exc
    if adata.n_vars == 0:
        msg = "no Gene Expression features in this feature-barcode matrix"
        raise InputError(msg, path)
    n_repeated = int(adata.var_names.duplicated().sum())
    if n_repeated:
        adata.var_names_make_unique()
        log.warning(
            "%s: %d gene symbol(s) repeat; later occurrences renamed with -1, -2, ...",
            path,
            n_repeated,
        )
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
