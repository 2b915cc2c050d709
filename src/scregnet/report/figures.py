"""Matplotlib figures for the report, returned as base64 PNG strings (no files, no display)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float = 5.0, height: float = 3.6) -> Figure:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def to_base64(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def histogram(
    values: np.ndarray, *, title: str, xlabel: str, log_x: bool = False, cutoff: float | None = None
) -> str:
    fig = _figure()
    ax = fig.add_subplot()
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    if log_x:
        data = np.log10(np.maximum(data, 1))
        xlabel = f"log10 {xlabel}"
    ax.hist(data, bins=50, color="#3b6ea8")
    if cutoff is not None:
        ax.axvline(
            np.log10(cutoff) if log_x else cutoff, color="#c0392b", linestyle="--", label="cutoff"
        )
        ax.legend()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cells")
    return to_base64(fig)


def fragment_lengths(by_length: np.ndarray) -> str:
    """Each length's share of the fragments shorter than the last bin (``by_length[i]``: the
    fragments of ``i`` bp; the last bin holds the longer ones, not drawn)."""
    fig = _figure()
    ax = fig.add_subplot()
    counts = np.asarray(by_length)[:-1]
    ax.plot(np.arange(counts.size), counts / max(counts.sum(), 1), color="#3b6ea8")
    ax.set_xlabel("fragment length (bp)")
    ax.set_ylabel("fraction of fragments")
    ax.set_title("Fragment length distribution")
    return to_base64(fig)


def scatter_by_label(xy: np.ndarray, labels: Sequence[str], *, title: str) -> str:
    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot()
    labels_arr = np.asarray(labels).astype(str)
    cmap = __import__("matplotlib").colormaps["tab20"]
    for i, label in enumerate(sorted(set(labels_arr), key=lambda v: (len(v), v))):
        mask = labels_arr == label
        ax.scatter(xy[mask, 0], xy[mask, 1], s=4, color=cmap(i % 20), label=label)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=3, fontsize=7, loc="best", frameon=False)
    return to_base64(fig)


def heatmap(
    matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], *, title: str, label: str
) -> str:
    fig = _figure(max(4.0, 0.35 * len(cols) + 2), max(3.0, 0.3 * len(rows) + 1.5))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, aspect="auto", cmap="RdBu_r")
    ax.set_xticks(range(len(cols)), labels=list(cols), rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), labels=list(rows), fontsize=7)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=label)
    return to_base64(fig)


def imputation_diagnostics(detected: np.ndarray, correlation: np.ndarray) -> str:
    """Per-gene detection rate before vs after imputation (imputation diagnostics)."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.scatter(detected, correlation, s=4, color="#3b6ea8")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--")
    ax.set_xlabel("fraction of cells detected (observed counts)")
    ax.set_ylabel("correlation of imputed with observed")
    ax.set_title("Imputation diagnostics per gene")
    return to_base64(fig)


def network(edges: Sequence[tuple[str, str, float]], *, title: str) -> str:
    import networkx as nx

    fig = _figure(6, 5)
    ax = fig.add_subplot()
    graph = nx.DiGraph()
    for tf, target, score in edges:
        graph.add_edge(tf, target, weight=score)
    tfs = {tf for tf, _, _ in edges}
    pos = nx.spring_layout(graph, seed=0)
    colors = ["#c0392b" if n in tfs else "#3b6ea8" for n in graph.nodes]
    nx.draw_networkx(
        graph, pos=pos, ax=ax, node_color=colors, node_size=120, font_size=6, arrowsize=6, width=0.6
    )
    ax.set_title(title)
    ax.set_axis_off()
    return to_base64(fig)
