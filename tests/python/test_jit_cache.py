"""numba's on-disk cache for umap-learn's kernels: a later process loads them instead of compiling
and builds the same neighbour graph and embedding; no writable cache folder means compiling as
before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pytest

from scregnet import jit_cache

#: a neighbour graph and a UMAP of 60 random cells; the connectivities and the embedding side by side
BUILD = """
import anndata as ad, numpy as np, scanpy as sc
x = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
adata = ad.AnnData(np.zeros((60, 1), dtype=np.float32))
adata.obsm["X_pca"] = x
sc.pp.neighbors(adata, n_neighbors=10, use_rep="X_pca", random_state=0)
sc.tl.umap(adata, random_state=0)
built = np.hstack([adata.obsp["connectivities"].toarray(), adata.obsm["X_umap"]])
"""

#: BUILD in a fresh process with the kernels cached; prints each kernel's cache hits and misses
SCRIPT = f"""
import importlib, json, sys
from scregnet.jit_cache import UMAP_KERNELS, cache_umap_kernels
cached = cache_umap_kernels()
{BUILD}
stats = {{}}
for module, name in UMAP_KERNELS:
    kernel = getattr(importlib.import_module(module), name)
    stats[name] = [kernel.stats.cache_hits.total(), kernel.stats.cache_misses.total()]
np.save(sys.argv[1], built)
print(json.dumps({{"cached": list(cached), "stats": stats}}))
"""


def _run(out: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_a_later_process_loads_the_compiled_kernels(tmp_path: Path) -> None:
    """The first process that runs the kernels on this machine compiles and stores them (the
    suite's earlier clustering tests usually have); every later one loads them."""
    out = tmp_path / "built.npy"
    result = _run(out)
    assert result["cached"] == [f"{m}.{n}" for m, n in jit_cache.UMAP_KERNELS]
    if any(misses for _, misses in result["stats"].values()):
        result = _run(out)
    assert result["stats"] == {name: [1, 0] for _, name in jit_cache.UMAP_KERNELS}
    jit_cache.cache_umap_kernels()
    here: dict[str, Any] = {}
    exec(BUILD, here)  # the same graph and embedding in this process
    np.testing.assert_array_equal(np.load(out), here["built"])


@numba.njit
def _kernel(x: float) -> float:
    return x + 1.0


def test_no_writable_cache_folder_compiles_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_locator() -> None:
        raise RuntimeError("cannot cache function '_kernel': no locator available")

    monkeypatch.setattr(_kernel, "enable_caching", no_locator)
    monkeypatch.setattr(jit_cache, "UMAP_KERNELS", ((__name__, "_kernel"), (__name__, "absent")))
    assert jit_cache.cache_umap_kernels.__wrapped__() == ()
    assert _kernel(1.0) == 2.0
