"""BEELINE's real scRNA-seq sets with independent truth, and TF-aware held-out pairs on them.

A set is one folder ``<Net>/<cell>/`` of ``beeline_real`` (README there): log-normalised
expression (genes x cells, first column the gene), ``Label.csv.gz`` (true edges as row indices TF,
Target into that expression file) and ``TF.csv.gz`` (the set's TF list). The regulators scored
are the TFs with at least one true edge; self edges are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from scregnet.errors import InputError
from scregnet.grn.data import PairLabels

#: the truths of ``beeline_real``, in the order tables list them (other truth folders follow)
NETS = ("Specific", "Non-Specific", "STRING")
#: a set folder's expression file
EXPRESSION = "BL--ExpressionData.csv.gz"


def find_sets(root: str | Path) -> list[tuple[str, str]]:
    """``(net, cell)`` of every set under ``root``: each ``<net>/<cell>/`` folder holding an
    expression file (:data:`NETS` first, then other truths by name; cell types by name), so that
    sets added beside the shipped ones are run too."""
    base = Path(root)
    if not base.is_dir():
        msg = "BEELINE real-data folder does not exist"
        raise InputError(msg, base)
    nets = sorted(
        (d.name for d in base.iterdir() if d.is_dir()),
        key=lambda n: (NETS.index(n) if n in NETS else len(NETS), n),
    )
    found = [
        (net, cell.name)
        for net in nets
        for cell in sorted((base / net).iterdir())
        if (cell / EXPRESSION).is_file()
    ]
    if not found:
        msg = f"no <truth>/<cell>/{EXPRESSION} set folder"
        raise InputError(msg, base)
    return found


@dataclass
class RealSet:
    """One set: expression ``(cells, genes)``, TF list, regulators and true edges as indices."""

    name: str
    cell: str
    genes: list[str]
    expr: NDArray[np.float32]
    tf_list: list[int]
    regulators: list[int]
    true: set[tuple[int, int]]


def load_set(root: str | Path, net: str, cell: str) -> RealSet:
    """Read ``root/net/cell``; a missing file is an :class:`InputError` naming it."""
    folder = Path(root) / net / cell
    files = {
        n: folder / f
        for n, f in (
            ("expr", EXPRESSION),
            ("label", "Label.csv.gz"),
            ("tf", "TF.csv.gz"),
        )
    }
    for path in files.values():
        if not path.is_file():
            msg = "BEELINE real-set file does not exist"
            raise InputError(msg, path)
    frame = pd.read_csv(files["expr"], index_col=0)
    genes = [str(g) for g in frame.index]
    label = pd.read_csv(files["label"], index_col=0)
    tf_table = pd.read_csv(files["tf"], index_col=0)
    true = {
        (int(a), int(b)) for a, b in zip(label.TF, label.Target, strict=True) if int(a) != int(b)
    }
    if not true or max(max(p) for p in true) >= len(genes):
        msg = "labels are empty or index rows beyond the expression file"
        raise InputError(msg, files["label"])
    regulators = sorted({a for a, _ in true})
    tf_list = sorted(set(tf_table["index"].astype(int).tolist()) | set(regulators))
    return RealSet(
        f"{cell} {net}", cell, genes, frame.T.to_numpy(np.float32), tf_list, regulators, true
    )


def tf_pairs(tf_ids: list[int], n_genes: int, true: set[tuple[int, int]]) -> PairLabels:
    """Every (TF, gene) pair of ``tf_ids`` except self pairs, labelled by ``true``."""
    a = np.repeat(np.asarray(tf_ids, dtype=np.intp), n_genes)
    b = np.tile(np.arange(n_genes, dtype=np.intp), len(tf_ids))
    keep = a != b
    a, b = a[keep], b[keep]
    y = np.fromiter(((p in true) for p in zip(a.tolist(), b.tolist(), strict=True)), dtype=np.int8)
    return PairLabels(a, b, y)


def tf_folds(regulators: list[int], split: int, n_folds: int = 2) -> list[list[int]]:
    """A random TF-aware partition of the regulators (split seed ``split``) into ``n_folds``."""
    order = np.random.default_rng(split).permutation(regulators).tolist()
    return [order[i::n_folds] for i in range(n_folds)]


def subsample_regulators(data: RealSet, n: int, draw: int) -> RealSet:
    """``data`` with ``n`` of its regulators drawn at random (seed ``draw``) and only their true
    edges: a set with few labelled TFs, as a user with ChIP-seq for a handful of regulators has."""
    if not 2 <= n < len(data.regulators):
        msg = f"cannot keep {n} of the {len(data.regulators)} regulators of {data.name}"
        raise InputError(msg)
    keep = set(np.random.default_rng(draw).choice(data.regulators, n, replace=False).tolist())
    return replace(
        data,
        name=f"{data.name}, {n} regulators (draw {draw})",
        regulators=sorted(keep),
        true={p for p in data.true if p[0] in keep},
    )
