"""Scoring in shards: the TFs dealt into groups scored apart (``scregnet grn score --shard K/N``)
and the merge of every group's pairs into the ranked edges (``scregnet grn merge``).

A shard file is a TSV of unranked pairs after one header line::

    #scregnet-grn-shard<TAB>K/N<TAB>model=<digest><TAB>tfs=<digest><TAB>method=<read-out><TAB>pairs=<n>
    tf  target  expression_score  [binding_prior]  attention_<view> ...

``expression_score`` is the model's P(edge) at full precision, ``binding_prior`` the pair's
binding (empty: none) when the model was trained on binding priors. The published score combines
the two by their ranks over every pair, so only the merge can compute it. The merge refuses shards
of different models, TF lists or ``N``, a missing or repeated shard, and a shard with fewer or
more rows than its header's ``pairs`` (a copy cut short at a line boundary).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from scregnet.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from scregnet.grn.edges import EdgeScores

MAGIC = "#scregnet-grn-shard"
SPEC = re.compile(r"^(\d+)/(\d+)$")

#: significant digits that write any float32 so that it reads back exactly
FLOAT32_DIGITS = 9


def parse_shard(spec: str) -> tuple[int, int]:
    """``K/N`` (1 <= K <= N) -> ``(K, N)``; a ValueError that says what is wrong otherwise."""
    m = SPEC.match(spec.strip())
    if not m:
        msg = f"expected K/N (shard K of N, e.g. 2/4), got {spec!r}"
        raise ValueError(msg)
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= k <= n:
        msg = f"shard K/N needs 1 <= K <= N, got {spec!r}"
        raise ValueError(msg)
    return k, n


def shard_tfs(tfs: Sequence[int], k: int, n: int) -> list[int]:
    """The k-th (1-based) of ``n`` contiguous groups of the TFs in gene order, of sizes differing by
    at most one (every TF is scored against the same genes, so equal counts are equal work)."""
    ordered = sorted(tfs)
    return [int(t) for t in np.array_split(np.asarray(ordered, dtype=np.intp), n)[k - 1]]


def tf_digest(tfs: Sequence[int], genes: Sequence[str]) -> str:
    """Which TF list the shards deal out: the first 16 hex digits of the SHA-256 of its names."""
    text = "\n".join(sorted(genes[t] for t in tfs))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_shard(
    scores: EdgeScores, path: str | Path, *, shard: tuple[int, int], model: str, tfs: str
) -> None:
    """Write one shard's pairs (see the module docstring), atomically. Every number reads back
    exactly: the scores as the shortest text of their float64, binding and attention (float32)
    to 9 significant digits."""
    from scregnet.grn.edges import tsv_field, tsv_numbers, write_tsv
    from scregnet.io.atomic import atomic_paths

    names = [tsv_field(g) for g in scores.genes]
    header = ["tf", "target", "expression_score"]
    header += ["binding_prior"] if scores.binding is not None else []
    header += [f"attention_{view}" for view in scores.views]

    def fields(start: int, stop: int) -> list[list[str]]:
        columns = [
            [names[i] for i in scores.tf[start:stop].tolist()],
            [names[i] for i in scores.target[start:stop].tolist()],
            # full precision: the merge ranks these scores against every other shard's
            tsv_numbers(scores.score[start:stop], digits=None),
        ]
        if scores.binding is not None:
            columns.append(tsv_numbers(scores.binding[start:stop], digits=FLOAT32_DIGITS))
        columns += [
            tsv_numbers(scores.view_weights[start:stop, j], digits=FLOAT32_DIGITS)
            for j in range(len(scores.views))
        ]
        return columns

    k, n = shard
    with atomic_paths(Path(path)) as (tmp,):
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(
                f"{MAGIC}\t{k}/{n}\tmodel={model}\ttfs={tfs}\tmethod={scores.method}"
                f"\tpairs={scores.score.size}\n"
            )
            write_tsv(handle, header, scores.score.size, fields)


#: rows parsed at a time when merging: memory holds the pairs as arrays, not as a table
CHUNK_ROWS = 1_000_000


@dataclass
class _Shard:
    path: Path
    k: int
    n: int
    model: str
    tfs: str
    method: str
    columns: list[str]
    pairs: int | None  # the rows the header announces (None: a shard written without the count)


def _read_csv(path: Path, **kw: object) -> pd.DataFrame | Iterator[pd.DataFrame]:
    import pandas as pd

    return pd.read_csv(  # type: ignore[call-overload]
        path,
        sep="\t",
        skiprows=1,
        # gene names as categories: one string per gene, not per pair
        dtype={"tf": "category", "target": "category"},
        keep_default_na=False,
        na_values={"binding_prior": [""]},
        # exact: pandas' default parser can be off in the last bit, which reorders near-ties
        float_precision="round_trip",
        **kw,
    )


def _read_shard(path: Path) -> _Shard:
    """A shard's header line and columns (its rows are read by :func:`_rows`)."""
    from scregnet.io.text import reading

    if not path.is_file():
        msg = "shard file does not exist"
        raise InputError(msg, path)
    with reading(path):
        with open(path, encoding="utf-8") as handle:
            fields = handle.readline().rstrip("\n").split("\t")
        meta = dict(f.split("=", 1) for f in fields[2:] if "=" in f)
        if fields[0] != MAGIC or len(fields) < 2 or not {"model", "tfs", "method"} <= set(meta):
            msg = f"not a GRN shard of `scregnet grn score --shard` (no '{MAGIC}' header line)"
            raise InputError(msg, path)
        try:
            k, n = parse_shard(fields[1])
        except ValueError as exc:
            raise InputError(str(exc), path) from exc
        if "pairs" in meta and not meta["pairs"].isdigit():
            msg = f"GRN shard header has pairs={meta['pairs']!r}, not a number of pairs"
            raise InputError(msg, path)
        try:
            columns = [str(c) for c in _read_csv(path, nrows=0).columns]  # type: ignore[union-attr]
        except ValueError as exc:
            msg = f"GRN shard is not a readable table ({type(exc).__name__})"
            raise InputError(msg, path) from exc
    needed = {"tf", "target", "expression_score"}
    if not needed <= set(columns) or not any(c.startswith("attention_") for c in columns):
        msg = "GRN shard lacks the columns tf, target, expression_score and attention_<view>"
        raise InputError(msg, path)
    pairs = int(meta["pairs"]) if "pairs" in meta else None
    return _Shard(path, k, n, meta["model"], meta["tfs"], meta["method"], columns, pairs)


def _rows(shard: _Shard) -> Iterator[pd.DataFrame]:
    """The shard's rows, ``CHUNK_ROWS`` at a time; unreadable text or cells name the file."""
    from scregnet.io.text import reading

    with reading(shard.path):
        try:
            yield from _read_csv(shard.path, chunksize=CHUNK_ROWS)  # type: ignore[misc]
        except ValueError as exc:
            msg = f"GRN shard is not a readable table ({type(exc).__name__}: {exc})"
            raise InputError(msg, shard.path) from exc


def _numbers(
    chunk: pd.DataFrame, columns: list[str], dtype: type, shard: _Shard, *, missing: bool = False
) -> NDArray[Any]:
    """The columns as a ``(rows, columns)`` array of finite numbers (NaN too where ``missing``:
    an empty binding field); an :class:`InputError` naming the shard for anything else (a shard
    cut short, an edited value)."""
    try:
        values = chunk[columns].to_numpy(dtype=dtype)
    except (TypeError, ValueError):
        values = None
    ok = values is not None and (
        np.isfinite(values[~np.isnan(values)]).all() if missing else np.isfinite(values).all()
    )
    if values is None or not ok:
        msg = f"GRN shard has a missing or non-numeric value in {', '.join(columns)} (cut short?)"
        raise InputError(msg, shard.path)
    return values


def read_shards(paths: Sequence[str | Path]) -> EdgeScores:
    """Every shard's pairs as one unranked :class:`~scregnet.grn.edges.EdgeScores` (with the binding
    where the shards have it); an :class:`InputError` unless the shards are exactly ``1..N`` of one
    model's scoring."""
    from scregnet.grn.edges import EdgeScores

    if not paths:
        msg = "no shard given (--shards)"
        raise InputError(msg)
    shards = [_read_shard(Path(p)) for p in paths]
    first = shards[0]
    for s in shards[1:]:
        for what, mine, theirs in (
            ("N (shard count)", s.n, first.n),
            ("model", s.model, first.model),
            ("TF list", s.tfs, first.tfs),
            ("columns", s.columns, first.columns),
        ):
            if mine != theirs:
                msg = f"GRN shard has another {what} than {first.path.name}: shards of one scoring only"
                raise InputError(msg, s.path)
    seen: dict[int, Path] = {}
    for s in shards:
        if s.k in seen:
            msg = f"shard {s.k}/{s.n} given twice (also {seen[s.k].name})"
            raise InputError(msg, s.path)
        seen[s.k] = s.path
    missing = sorted(set(range(1, first.n + 1)) - set(seen))
    if missing:
        msg = f"shard(s) {', '.join(f'{k}/{first.n}' for k in missing)} missing"
        raise InputError(msg, first.path)
    shards.sort(key=lambda s: s.k)
    views = [c.removeprefix("attention_") for c in first.columns if c.startswith("attention_")]
    columns = [f"attention_{v}" for v in views]
    with_binding = "binding_prior" in first.columns
    # genes numbered as first seen, renumbered in name order at the end
    seen_genes: dict[str, int] = {}

    def gene_numbers(column: pd.Series) -> NDArray[np.int32]:
        names = [str(g) for g in column.cat.categories]
        lookup = np.array([seen_genes.setdefault(g, len(seen_genes)) for g in names], np.int32)
        return lookup[column.cat.codes.to_numpy()]

    parts: dict[str, list[NDArray[Any]]] = {k: [] for k in ("tf", "target", "score", "w", "b")}
    for shard in shards:
        rows = 0
        for chunk in _rows(shard):
            rows += len(chunk)
            parts["tf"].append(gene_numbers(chunk["tf"]))
            parts["target"].append(gene_numbers(chunk["target"]))
            parts["score"].append(_numbers(chunk, ["expression_score"], np.float64, shard)[:, 0])
            parts["w"].append(_numbers(chunk, columns, np.float32, shard))
            if with_binding:
                binding = _numbers(chunk, ["binding_prior"], np.float32, shard, missing=True)
                parts["b"].append(binding[:, 0])
        if shard.pairs is not None and rows != shard.pairs:
            msg = f"GRN shard holds {rows} pairs, its header says {shard.pairs} (cut short?)"
            raise InputError(msg, shard.path)
    if not parts["tf"] or sum(p.size for p in parts["tf"]) == 0:
        msg = "the GRN shards hold no pair"
        raise InputError(msg, first.path)
    genes = sorted(seen_genes)
    renumber = np.empty(len(genes), dtype=np.intp)
    renumber[[seen_genes[g] for g in genes]] = np.arange(len(genes))

    def joined(key: str) -> NDArray[Any]:
        # one array per column; each chunk's copy is freed as soon as it is joined
        out = np.concatenate(parts[key])
        parts[key].clear()
        return out

    tf, target = renumber[joined("tf")], renumber[joined("target")]
    # a pair scored twice: two equal neighbours among the sorted pair keys
    keys = tf.astype(np.int64)
    keys *= len(genes)
    keys += target
    keys.sort()
    if (keys[1:] == keys[:-1]).any():
        msg = "GRN shards score some pairs twice"
        raise InputError(msg, first.path)
    del keys
    scores = EdgeScores(
        genes=genes,
        views=views,
        tf=tf,
        target=target,
        score=joined("score"),
        view_weights=joined("w"),
        method=first.method,
    )
    if with_binding:
        scores.binding = joined("b")
    return scores
