"""MAGIC and scVI for bench/impute_mcv.py, run in an interpreter that has magic-impute and
scvi-tools (they are not project dependencies: magic-impute pins an older pandas).

Usage: python _external.py {magic,scvi} IN.npz OUT.npy SEED

- ``magic``: IN holds log1p(counts per 10k) (cells x genes, scipy sparse npz); writes MAGIC's
  imputed values (``magic.MAGIC`` defaults).
- ``scvi``: IN holds raw counts; trains scVI with its defaults (at most 400 epochs, early
  stopping on its 10 % validation cells) and writes the normalised expression (proportions over
  the given genes, ``library_size=1``).
"""

from __future__ import annotations

import sys

import numpy as np
import scipy.sparse as sp


def main(argv: list[str]) -> int:
    method, src, dst, seed = argv[0], argv[1], argv[2], int(argv[3])
    values = sp.load_npz(src).astype(np.float32)
    if method == "magic":
        import magic

        op = magic.MAGIC(random_state=seed, n_jobs=1, verbose=0)
        out = np.asarray(op.fit_transform(values.toarray()), dtype=np.float64)
    elif method == "scvi":
        import anndata as ad
        import scvi
        import torch

        torch.set_num_threads(1)
        scvi.settings.seed = seed
        adata = ad.AnnData(sp.csr_matrix(values))
        scvi.model.SCVI.setup_anndata(adata)
        model = scvi.model.SCVI(adata)
        model.train(max_epochs=400, early_stopping=True, accelerator="cpu", devices=1)
        out = np.asarray(
            model.get_normalized_expression(library_size=1.0, return_numpy=True), dtype=np.float64
        )
    else:
        msg = f"unknown method {method!r}"
        raise SystemExit(msg)
    np.save(dst, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
