"""numba's on-disk cache for the UMAP kernels behind scanpy's neighbour graph and UMAP.

umap-learn compiles ``smooth_knn_dist``, ``compute_membership_strengths`` (the connectivities that
``sc.pp.neighbors`` builds) and its layout epoch (``sc.tl.umap``) with numba but without
``cache=True``, so every process that builds a neighbour graph spends about 10 s compiling them,
whatever the number of cells. :func:`cache_umap_kernels` turns numba's own on-disk cache on for
them: the compiled code is written once (``NUMBA_CACHE_DIR`` if set, else beside umap's sources when
that folder is writable, else the user's cache folder) and loaded by later processes. numba keys
each entry by the source file's size and time and by the CPU, so an upgraded umap or another
machine compiles afresh. Where no cache folder is writable the kernels compile as before.
"""

from __future__ import annotations

import functools
import logging

log = logging.getLogger(__name__)

#: (module, function) of the umap-learn kernels compiled without numba's cache
UMAP_KERNELS = (
    ("umap.umap_", "smooth_knn_dist"),
    ("umap.umap_", "compute_membership_strengths"),
    ("umap.layouts", "_nb_optimize_layout_euclidean_single_epoch"),
)


@functools.cache
def cache_umap_kernels() -> tuple[str, ...]:
    """Turn numba's on-disk cache on for :data:`UMAP_KERNELS` (once per process); the names of
    those now cached. A kernel missing from this umap-learn version is left out."""
    import importlib
    import warnings

    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    cached = []
    for module_name, name in UMAP_KERNELS:
        with warnings.catch_warnings():  # umap-learn without TensorFlow warns on import
            warnings.filterwarnings("ignore", message="Tensorflow not installed")
            module = importlib.import_module(module_name)
        kernel = getattr(module, name, None)
        if not isinstance(kernel, Dispatcher):
            continue
        if isinstance(getattr(kernel, "_cache", None), NullCache):
            try:
                kernel.enable_caching()
            except RuntimeError as exc:  # numba found no writable cache folder
                log.debug("numba cannot cache %s.%s: %s", module_name, name, exc)
                continue
        cached.append(f"{module_name}.{name}")
    return tuple(cached)
