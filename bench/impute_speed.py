"""Training and inference speed of ``scregnet impute`` on CPU, with peak memory.

Synthetic negative binomial counts (``--cells`` x ``--genes``, 5 cell groups, ~2,000 counts per
cell; speed does not depend on the values' biology). One ``impute`` call with ``--epochs`` fusion
epochs (no early stop: patience above the epochs), then one more inference pass timed alone.
Reports: training cells/s (cells x fusion epochs / fusion seconds), the whole call's seconds
(gene choice, neighbour graph, bulk pretraining, adaptation, fusion, inference, layers),
inference cells/s, and the process's peak resident memory. Run one size per process, so the
peak is that size's::

    python bench/impute_speed.py --cells 5000 --genes 2000 --threads 1
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time

import anndata as ad
import numpy as np
import scipy.sparse as sp

from scregnet.impute.config import TrainConfig


def synthetic_counts(n_cells: int, n_genes: int, seed: int) -> sp.csr_matrix:
    """NB counts: 5 groups with their own gene means, per-cell depth ~ log-normal."""
    rng = np.random.default_rng(seed)
    base = rng.lognormal(-1.0, 1.5, size=n_genes)
    groups = rng.integers(0, 5, size=n_cells)
    shift = rng.lognormal(0.0, 0.7, size=(5, n_genes))
    depth = rng.lognormal(0.0, 0.4, size=n_cells)
    rows = []
    step = 5000
    for start in range(0, n_cells, step):
        sl = slice(start, start + step)
        mu = base[None, :] * shift[groups[sl]] * depth[sl, None]
        mu *= 2000.0 / base.mean() / n_genes
        lam = rng.gamma(2.0, mu / 2.0)  # NB with dispersion 2
        rows.append(sp.csr_matrix(rng.poisson(lam).astype(np.float32)))
    return sp.vstack(rows, format="csr")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=5000)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from scregnet.impute.api import _neighbour_pool, impute
    from scregnet.impute.train import predict

    counts = synthetic_counts(args.cells, args.genes, args.seed)
    adata = ad.AnnData(counts)
    adata.var_names = [f"g{i}" for i in range(args.genes)]
    t0 = time.perf_counter()
    res = impute(
        adata,
        epochs=args.epochs,
        batch_size=args.batch_size,
        n_top_genes=args.genes,
        device=args.device,
        seed=args.seed,
        threads=args.threads,
        train_options={"patience": args.epochs + 1},
    )
    total = time.perf_counter() - t0
    fuse = [r for r in res.losses if r["phase"] == "fuse"]
    fuse_s = float(sum(float(r["seconds"]) for r in fuse))  # type: ignore[arg-type]
    sub = adata[:, res.genes]
    x = sp.csr_matrix(sub.X)
    library = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    pool = _neighbour_pool(res.model.config, x, library)
    import torch

    torch.set_num_threads(args.threads)
    t1 = time.perf_counter()
    predict(res.model, x, library, pool=pool, device=torch.device(args.device))
    infer_s = time.perf_counter() - t1
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss in KiB
    row = {
        "cells": args.cells,
        "genes": len(res.genes),
        "threads": args.threads,
        "fusion_epochs": len(fuse),
        "train_cells_per_s": args.cells * len(fuse) / fuse_s,
        "impute_call_s": total,
        "inference_cells_per_s": args.cells / infer_s,
        "peak_rss_gib": peak_gib,
        "device": args.device,
    }
    if args.device.startswith("cuda"):
        row["peak_gpu_gib"] = torch.cuda.max_memory_allocated(args.device) / 2**30
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
