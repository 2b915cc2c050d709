"""Scored TF -> target pairs (:class:`EdgeScores`) and the ranked edges and attention files they
become (:func:`write_outputs`): what scoring, in one process or in shards, hands to the writer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
from numpy.typing import NDArray

log = logging.getLogger(__name__)

#: table rows formatted and written this many at a time
WRITE_ROWS = 100_000


def tsv_numbers(values: NDArray[Any], digits: int | None = 6) -> list[str]:
    """Each value to ``digits`` significant digits (``%.<digits>g``), or with ``digits=None`` as
    its shortest text that reads back to the same float64 (``repr``); NaN as an empty field."""
    if digits is None:
        return ["" if v != v else repr(v) for v in values.tolist()]  # v != v: NaN
    spec = f".{digits}g"
    return ["" if v != v else format(v, spec) for v in values.tolist()]


def tsv_field(text: str) -> str:
    """A TSV field quoted as the csv module quotes it (only when it holds a tab, quote or newline)."""
    if any(c in text for c in '\t"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_tsv(
    handle: TextIO,
    header: Sequence[str],
    n_rows: int,
    fields: Callable[[int, int], list[list[str]]],
) -> None:
    """A TSV table of ``n_rows``: the header, then ``fields(start, stop)`` (one list of formatted
    fields per column, for rows ``start`` to ``stop``) ``WRITE_ROWS`` rows at a time, so that a
    table of 10^7 rows never exists as text or as a DataFrame."""
    handle.write("\t".join(tsv_field(h) for h in header) + "\n")
    for start in range(0, n_rows, WRITE_ROWS):
        columns = fields(start, min(start + WRITE_ROWS, n_rows))
        handle.write("".join(f"{line}\n" for line in map("\t".join, zip(*columns, strict=True))))


@dataclass
class EdgeScores:
    """Scores of (tf, target) pairs, as indices into ``genes``, with per-view attention."""

    genes: list[str]
    views: list[str]
    tf: NDArray[np.intp]
    target: NDArray[np.intp]
    #: P(edge) from the model, or the mean fractional rank once combined with binding
    #: (:meth:`combine_with_binding`); float64, so that pairs the model orders do not tie
    score: NDArray[np.float64]
    view_weights: NDArray[np.float32]  # (pairs, views)
    info: dict[str, Any] = field(default_factory=dict)
    expression_score: NDArray[np.float64] | None = None  # the model's, once combined
    binding: NDArray[np.float32] | None = None  # the prior's, NaN for TFs without one
    #: which read-out produced ``score`` (:func:`readout_name`), written as the ``method`` column
    method: str = ""

    @classmethod
    def empty(cls, genes: list[str], views: list[str]) -> EdgeScores:
        """No pairs (a shard without TFs)."""
        return cls(
            genes=genes,
            views=views,
            tf=np.zeros(0, dtype=np.intp),
            target=np.zeros(0, dtype=np.intp),
            score=np.zeros(0, dtype=np.float64),
            view_weights=np.zeros((0, len(views)), dtype=np.float32),
        )

    def attach_binding(self, tfs: Sequence[str], prior: NDArray[np.float32]) -> None:
        """``binding`` := each pair's TSS-window binding probability (NaN for TFs without one).

        ``prior`` is the ``(tfs, genes)`` binding matrix the training labels were drawn from.
        """
        row = np.full(len(self.genes), -1, dtype=np.intp)  # gene index -> prior row
        index = {g: i for i, g in enumerate(self.genes)}
        row[[index[tf] for tf in tfs]] = np.arange(len(tfs))
        r = row[self.tf]
        binding = np.full(self.score.size, np.nan, dtype=np.float32)
        binding[r >= 0] = prior[r[r >= 0], self.target[r >= 0]]
        self.binding = binding

    def combine_with_binding(self) -> None:
        """``score`` := rank mean of the model's score and ``binding`` (:func:`scregnet.stats.rank_mean`).

        The network learns from expression alone which pairs look like the pairs the binding labels
        positive; the binding itself (TF bound near the gene's TSS in these cells) is separate
        evidence the network's score does not carry, so the two are rank-averaged over every
        scored pair. Pairs of TFs without binding evidence (scored through ``--tfs`` only) keep
        their expression rank.
        """
        from scregnet.stats import rank_mean

        assert self.binding is not None and self.expression_score is None
        self.expression_score = self.score
        self.score = rank_mean(self.score, self.binding)
        self.method = f"rank mean of ({self.method or 'expression score'}) and binding prior"
        log.info(
            "edge score = rank mean of co-expression and binding (%d of %d pairs have binding)",
            int(np.isfinite(self.binding).sum()),
            self.binding.size,
        )

    def order(self) -> NDArray[np.intp]:
        """Pair indices, highest score first; ties broken by TF then target name (deterministic)."""
        name_rank = np.empty(len(self.genes), dtype=np.intp)
        name_rank[np.argsort(np.asarray(self.genes, dtype=object), kind="stable")] = np.arange(
            len(self.genes)
        )
        return np.lexsort((name_rank[self.target], name_rank[self.tf], -self.score))

    def write_ranked(self, handle: TextIO) -> None:
        """The ranked table, ``tf target score rank`` then ``method``, ``expression_score`` and
        ``binding_prior`` where there are some and one ``attention_<view>`` column per view, as
        TSV with numbers to 6 significant digits (empty for NaN), written ``WRITE_ROWS`` at a
        time."""
        names = [tsv_field(g) for g in self.genes]
        extra: list[tuple[str, NDArray[Any]]] = []  # the numeric columns after tf..rank, method
        if self.expression_score is not None and self.binding is not None:
            extra += [("expression_score", self.expression_score), ("binding_prior", self.binding)]
        extra += [(f"attention_{v}", self.view_weights[:, j]) for j, v in enumerate(self.views)]
        header = ["tf", "target", "score", "rank"] + (["method"] if self.method else [])
        header += [name for name, _ in extra]
        method = tsv_field(self.method)
        order = self.order()

        def fields(start: int, stop: int) -> list[list[str]]:
            rows = order[start:stop]
            columns = [
                [names[i] for i in self.tf[rows].tolist()],
                [names[i] for i in self.target[rows].tolist()],
                tsv_numbers(self.score[rows]),
                list(map(str, range(start + 1, stop + 1))),
            ]
            if self.method:
                columns.append([method] * rows.size)
            return columns + [tsv_numbers(values[rows]) for _, values in extra]

        write_tsv(handle, header, order.size, fields)

    def attention(self) -> pd.DataFrame:
        """Mean attention per TF and view (and over all TFs, ``tf = *``), summed in float64 so that
        the means do not depend on how the pairs were batched or sharded."""
        genes = np.asarray(self.genes, dtype=object)
        frame = pd.DataFrame(self.view_weights.astype(np.float64), columns=self.views)
        frame["tf"] = genes[self.tf]
        per_tf = frame.groupby("tf", sort=True)[self.views].mean()
        per_tf.loc["*"] = frame[self.views].mean()
        return per_tf.reset_index().melt(id_vars="tf", var_name="view", value_name="weight")


def write_outputs(
    scores: EdgeScores, edges: str | Path, attention: str | Path | None = None
) -> None:
    """Ranked edges TSV (and the attention TSV): both appear together or not at all."""
    from scregnet.io.atomic import atomic_paths

    paths = [Path(edges)] + ([Path(attention)] if attention is not None else [])
    with atomic_paths(*paths) as tmps:
        with open(tmps[0], "w", encoding="utf-8", newline="\n") as handle:
            scores.write_ranked(handle)
        if attention is not None:
            scores.attention().to_csv(tmps[1], sep="\t", index=False, float_format="%.6g")
    log.info("wrote %d ranked edges to %s", scores.score.size, edges)
    if attention is not None:
        log.info("wrote per-view attention to %s", attention)
