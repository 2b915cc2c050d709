"""AnnData (.h5ad) reading with clear errors and atomic writing."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from scregnet.errors import InputError
from scregnet.io.atomic import atomic_path

if TYPE_CHECKING:
    import anndata as ad


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


def read_h5ad(path: str | Path, *, backed: bool = False) -> ad.AnnData:
    """Read an ``.h5ad``; a missing, empty or corrupt file is an :class:`InputError`."""
    import anndata as ad

    path = nonempty_file(path)
    try:
        return ad.read_h5ad(path, backed="r" if backed else None)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        msg = f"not a readable .h5ad file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        raise InputError(msg, path) from exc


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
