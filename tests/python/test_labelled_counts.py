"""Labels for judging imputation by clustering on real counts: marker lineages."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from labelled_counts import IMMUNE_LINEAGE_MARKERS, marker_labels


def marker_world(seed: int = 0) -> tuple[np.ndarray, list[str], list[str | None]]:
    """Poisson background genes plus three lineages' markers, each group expressing its own."""
    rng = np.random.default_rng(seed)
    lineages = ["T cell", "B cell", "Monocyte"]
    markers = [g for name in lineages for g in IMMUNE_LINEAGE_MARKERS[name]]
    genes = [f"BG{i}" for i in range(400)] + markers + ["PPBP"]  # one platelet marker only
    n_per = 20
    expected: list[str | None] = [name for name in lineages for _ in range(n_per)] + [None] * 5
    counts = rng.poisson(rng.gamma(1.0, 2.0, size=400), size=(len(expected), 400))
    extra = np.zeros((len(expected), len(markers) + 1))
    col = 0
    for i, name in enumerate(lineages):
        width = len(IMMUNE_LINEAGE_MARKERS[name])
        extra[i * n_per : (i + 1) * n_per, col : col + width] = rng.poisson(
            20.0, size=(n_per, width)
        )
        col += width
    extra[:, -1] = rng.poisson(30.0, size=len(expected))  # PPBP everywhere: never a label
    return np.hstack([counts, extra]).astype(np.float32), genes, expected


def test_marker_labels_pick_the_lineage_whose_markers_are_expressed() -> None:
    counts, genes, expected = marker_world()
    labels = marker_labels(counts, genes)
    assert list(labels) == expected  # the last cells express no marker: unassigned
    assert "Platelet" not in set(labels)  # one detected marker: the lineage is not scored


def test_marker_labels_need_a_scorable_lineage() -> None:
    counts, genes, _ = marker_world()
    with pytest.raises(ValueError, match="no lineage has enough detected markers"):
        marker_labels(counts[:, :400], genes[:400])


def test_marker_labels_of_celltypist_counts(celltypist_labelled: tuple[Any, ...]) -> None:
    """The real immune sample: six lineages, macrophages the largest-library group (golden)."""
    counts, genes, labels = celltypist_labelled
    assert counts.shape == (559, 32786) and len(genes) == 32786
    assert np.array_equal(counts.data, np.rint(counts.data))
    assert pd.Series(labels).value_counts(dropna=False).to_dict() == {
        "Macrophage": 192,
        "Monocyte": 164,
        "T cell": 79,
        "NK cell": 64,
        "B cell": 28,
        "Dendritic cell": 26,
        None: 6,
    }
    library = np.asarray(counts.sum(axis=1)).ravel()
    medians = pd.Series(library).groupby(labels).median()
    assert medians.idxmax() == "Macrophage" and medians["Macrophage"] > 2 * medians["T cell"]
