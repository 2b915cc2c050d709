"""Reading counts into the GRN: ``scregnet.grn.data`` log-normalisation of a cells x genes counts
matrix against scanpy's ``normalize_total`` + ``log1p`` + dense float32 (the peer), each in its own
process on the same random sparse matrix: wall seconds and peak memory above the matrix itself.

    python bench/grn_read.py --cells 10000 --genes 20000 --density 0.05
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def counts(cells: int, genes: int, density: float, seed: int) -> sp.csr_matrix:
    """Random counts 1-19 at ``density`` (duplicated positions summed)."""
    rng = np.random.default_rng(seed)
    k = int(cells * genes * density)
    rows = rng.integers(0, cells, k).astype(np.int32)
    cols = rng.integers(0, genes, k).astype(np.int32)
    data = rng.integers(1, 20, k).astype(np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(cells, genes))


def one(method: str, args: argparse.Namespace) -> None:
    matrix = counts(args.cells, args.genes, args.density, args.seed)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    start = time.perf_counter()
    if method == "scregnet":
        from scregnet.grn.data import _log_expression

        out = _log_expression(matrix, Path("bench"))
    else:
        import anndata as ad
        import scanpy as sc

        adata = ad.AnnData(matrix)
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
        out = adata.X.astype(np.float32).toarray()
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"{method}\t{wall:.2f}\t{peak:.2f}\t{before:.2f}\t{out.nbytes / 1024**3:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--one", choices=["scregnet", "scanpy"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        one(args.one, args)
        return 0
    print("| method | wall s | peak GB | GB before the call | result GB |\n|---|---|---|---|---|")
    for _ in range(args.repeats):
        for method in ("scregnet", "scanpy"):
            flags = ["--cells", str(args.cells), "--genes", str(args.genes)]
            flags += ["--density", str(args.density), "--seed", str(args.seed), "--one", method]
            line = subprocess.run(
                [sys.executable, __file__, *flags], check=True, capture_output=True, text=True
            ).stdout.strip()
            print("| " + " | ".join(line.split("\t")) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
