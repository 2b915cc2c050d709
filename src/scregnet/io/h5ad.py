"""AnnData (.h5ad) reading with clear errors and atomic writing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from scregnet.errors import InputError
from scregnet.io.atomic import atomic_path

if TYPE_CHECKING:
    import anndata as ad


def read_h5ad(path: str | Path, *, backed: bool = False) -> ad.AnnData:
    """Read an ``.h5ad``; a missing, empty or corrupt file is an :class:`InputError`."""
    import anndata as ad

    path = Path(path)
    if not path.exists():
        msg = "file does not exist"
        raise InputError(msg, path)
    if path.stat().st_size == 0:
        msg = "file is empty"
        raise InputError(msg, path)
    try:
        return ad.read_h5ad(path, backed="r" if backed else None)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        msg = f"not a readable .h5ad file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        raise InputError(msg, path) from exc


def write_h5ad(adata: ad.AnnData, path: str | Path, *, compression: str | None = "gzip") -> Path:
    """Write ``adata`` atomically (temporary file + rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp, compression=compression)
    return path
