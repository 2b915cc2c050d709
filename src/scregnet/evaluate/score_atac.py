"""Score stage 1 (ATAC counts) against simulator truth.

Per sample with ``results/atac/<sample>.clustered.h5ad`` (or, before clustering,
``<sample>.atac.h5ad``): cells called versus the true cells of ``truth/cell_types.tsv``
(precision, recall), ARI / NMI of the Leiden clusters against the true cell types on the
correctly called cells, and the median QC metrics of the called cells.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scregnet import keys
from scregnet.errors import InputError
from scregnet.evaluate.metrics import adjusted_rand, normalized_mutual_info
from scregnet.io.h5ad import read_obs
from scregnet.io.outputs import sample_files
from scregnet.io.tables import read_table

log = logging.getLogger(__name__)

QC_COLUMNS = ("n_fragments", "tss_enrichment", "frip", "nucleosome_signal", "duplicate_rate")


def score_sample(truth: pd.DataFrame, obs: pd.DataFrame) -> dict[str, Any]:
    """Scores of one sample: ``truth`` has barcode, cell_type; ``obs`` is indexed by barcode."""
    true_cells = set(truth["barcode"])
    called = list(obs.index)
    hits = [b for b in called if b in true_cells]
    out: dict[str, Any] = {
        "cells_called": len(called),
        "cells_true": len(true_cells),
        "cell_precision": len(hits) / len(called) if called else float("nan"),
        "cell_recall": len(hits) / len(true_cells) if true_cells else float("nan"),
    }
    if keys.CLUSTER in obs and len(hits) >= 2:
        labels = truth.set_index("barcode").loc[hits, "cell_type"].astype(str).to_numpy()
        clusters = obs.loc[hits, keys.CLUSTER].astype(str).to_numpy()
        out["n_clusters"] = int(pd.Series(clusters).nunique())
        out["ari"] = adjusted_rand(labels, clusters)
        out["nmi"] = normalized_mutual_info(labels, clusters)
    for column in QC_COLUMNS:
        if column in obs:
            values = obs[column].to_numpy(dtype=np.float64)
            out[f"median_{column}"] = float(np.nanmedian(values)) if values.size else float("nan")
    return out


def score(truth_dir: Path, results_dir: Path) -> dict[str, Any] | None:
    """Per-sample ATAC scores and their means; ``None`` when no ATAC output exists."""
    atac = Path(results_dir) / "atac"
    if not atac.is_dir():
        return None
    # a sample's clustered result, where there is one, over its counts
    files = {
        **sample_files(atac, keys.ATAC_COUNTS),
        **sample_files(atac, keys.SAMPLE_RESULTS["atac"][1]),
    }
    if not files:
        return None
    table_path = Path(truth_dir) / "cell_types.tsv"
    if not table_path.exists():
        msg = "truth has no cell_types.tsv"
        raise InputError(msg, table_path)
    truth = read_table(table_path, ("sample", "barcode", "cell_type"), dtype=str)
    samples: dict[str, Any] = {}
    for name, path in files.items():
        cells = truth[truth["sample"] == name]
        if cells.empty:
            log.warning("atac: no truth cells for sample %s in %s, skipped", name, table_path)
            continue
        obs = read_obs(path)
        if path.name.endswith(keys.SAMPLE_RESULTS["atac"][1]) and keys.CLUSTER not in obs:
            msg = f"no obs[{keys.CLUSTER!r}]: not an output of `scregnet cluster`"
            raise InputError(msg, path)
        samples[name] = score_sample(cells, obs)
    if not samples:
        return None
    summary: dict[str, Any] = {"samples": samples}
    for key in ("ari", "nmi", "cell_precision", "cell_recall"):
        values = [s[key] for s in samples.values() if key in s]
        if values:
            summary[f"mean_{key}"] = float(np.mean(values))
    return summary
