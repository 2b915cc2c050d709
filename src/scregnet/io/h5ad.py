"""AnnData (.h5ad) reading with clear errors and atomic writing."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from scregnet.errors import InputError, first_line
from scregnet.io.atomic import atomic_path

if TYPE_CHECKING:
    from collections.abc import Iterable

    import anndata as ad
    import pandas as pd


def nonempty_file(path: str | Path) -> Path:
    """``path``, or an :class:`InputError` when it does not exist or is empty (an HDF5 file's
    first checks, before its reader's own errors)."""
    path = Path(path)
    if not path.exists():
        msg = "file does not exist"
        raise InputError(msg, path)
    if path.stat().st_size == 0:
        msg = "file is empty"
        raise InputError(msg, path)
    return path


def check_unique_names(
    names: Iterable[str], path: str | Path | None, *, what: str = "cell name"
) -> None:
    """An :class:`InputError` naming ``path`` when a name repeats: the first repeated name, how
    often it appears and how many names repeat. Joins by name (clusters onto a fragments file's
    barcodes, cells onto labels) would otherwise silently keep one of them."""
    import pandas as pd

    index = pd.Index(names)
    if index.is_unique:
        return
    repeated = index[index.duplicated()]
    first, n_names = repeated[0], repeated.nunique()
    more = f" ({n_names} names repeat)" if n_names > 1 else ""
    msg = (
        f"{what} {str(first)!r} appears {int((index == first).sum())} times{more}; "
        f"{what}s must be unique"
    )
    raise InputError(msg, path)


def _unreadable(exc: Exception, path: Path) -> InputError:
    detail = first_line(exc, default="")
    return InputError(f"not a readable .h5ad file ({type(exc).__name__}: {detail})", path)


def read_h5ad(path: str | Path, *, backed: bool = False, what: str = "cell name") -> ad.AnnData:
    """Read an ``.h5ad``; a missing, empty or corrupt file, or one whose observation names
    (``what``: cells, or peaks for a tfbind shard) repeat, is an :class:`InputError`.

    Repeated ``var_names`` are the reader's to handle (genes: :func:`scregnet.io.rna.read_rna`
    renames them; peaks: tfbind refuses them), anndata's warning about them is not shown.
    """
    import anndata as ad

    path = nonempty_file(path)
    try:
        with warnings.catch_warnings():  # repeated names: refused or renamed by scregnet
            warnings.filterwarnings("ignore", ".* names are not unique", UserWarning)
            adata = ad.read_h5ad(path, backed="r" if backed else None)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise _unreadable(exc, path) from exc
    check_unique_names(adata.obs_names, path, what=what)
    return adata


def read_obs(path: str | Path) -> pd.DataFrame:
    """The ``obs`` table of an ``.h5ad`` without its matrices, checked like :func:`read_h5ad`."""
    import anndata as ad
    import h5py

    path = nonempty_file(path)
    try:
        with h5py.File(path, "r") as handle:
            obs = ad.io.read_elem(handle["obs"])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise _unreadable(exc, path) from exc
    check_unique_names(obs.index, path)
    return obs


def read_var(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """The ``var`` table of an ``.h5ad`` and the keys of its ``uns``, without its matrices."""
    import anndata as ad
    import h5py

    path = nonempty_file(path)
    try:
        with h5py.File(path, "r") as handle:
            var = ad.io.read_elem(handle["var"])
            uns = list(handle["uns"].keys()) if "uns" in handle else []
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise _unreadable(exc, path) from exc
    return var, uns


def write_h5ad_file(
    adata: ad.AnnData, path: str | Path, *, compression: str | None = "gzip"
) -> None:
    """Write ``adata`` to ``path`` (not atomic: give it a temporary path).

    HDF5 is written in memory and the bytes copied to disk by Python: HDF5 writing straight to a
    disk that fills up prints stacks of errors and can crash the process, whereas a failed copy
    is an ``OSError`` that names the file. Costs the compressed file's size in memory.
    """
    import anndata as ad
    import h5py

    adata.strings_to_categoricals()
    if adata.raw is not None:
        adata.strings_to_categoricals(adata.raw.var)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        ad.io.write_elem(
            handle, "/", adata, dataset_kwargs={"compression": compression} if compression else {}
        )
    with open(path, "wb") as out:
        out.write(buffer.getbuffer())


def write_h5ad(adata: ad.AnnData, path: str | Path, *, compression: str | None = "gzip") -> Path:
    """Write ``adata`` atomically (temporary file + rename); a full disk is an error naming ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        write_h5ad_file(adata, tmp, compression=compression)
    return path
