"""Shuffled backgrounds and sequence-only scFAN training (bench and test helpers, not the product).

Used by the CTCF sanity check (``bench/tfbind.py``, ``tests/python/test_tfbind_ctcf.py``: ChIP
summits against dinucleotide-shuffled backgrounds, no accessibility input) and the real ChIP-seq
benchmark (``bench/tfbind_chip.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from scregnet.errors import InputError
from scregnet.tfbind.config import TrainConfig
from scregnet.tfbind.model import ModelConfig, ScFAN
from scregnet.tfbind.motifs import Motif
from scregnet.tfbind.train import fit, pos_weights


def dinucleotide_shuffle(seq: str, rng: np.random.Generator) -> str:
    """A random sequence with exactly the dinucleotide counts of ``seq`` (Altschul-Erikson 1985).

    Random Eulerian walk through the dinucleotide graph: a random arborescence of last exits
    (Wilson's loop-erased walk) guarantees that the walk uses every edge.
    """
    seq = seq.upper()
    if len(seq) < 3:
        return seq
    edges: dict[str, list[str]] = {}
    for a, b in itertools.pairwise(seq):
        edges.setdefault(a, []).append(b)
    last = seq[-1]
    in_tree = {last}
    nxt: dict[str, str] = {}
    for v in edges:
        u = v
        while u not in in_tree:
            options = edges[u]
            nxt[u] = options[int(rng.integers(len(options)))]
            u = nxt[u]
        u = v
        while u not in in_tree:
            in_tree.add(u)
            u = nxt[u]
    order: dict[str, list[str]] = {}
    for v, out in edges.items():
        out = list(out)
        if v != last:
            out.remove(nxt[v])
        perm = rng.permutation(len(out))
        out = [out[i] for i in perm]
        if v != last:
            out.append(nxt[v])
        order[v] = out[::-1]  # pop() from the end
    walk = [seq[0]]
    for _ in range(len(seq) - 1):
        walk.append(order[walk[-1]].pop())
    return "".join(walk)


def fit_sequences(
    sequences: Sequence[str],
    labels: np.ndarray,
    *,
    config: TrainConfig,
    device: torch.device,
    val_fraction: float = 0.1,
    motifs: Sequence[Motif] = (),
) -> tuple[ScFAN, dict[str, Any]]:
    """Train a sequence-only model on equal-length sequences with ``(n, n_tasks)`` 0/1 labels.

    For motif sanity checks (e.g. ChIP summits against shuffled backgrounds); a random
    ``val_fraction`` of the sequences drives early stopping. ``motifs`` (one per task) add the
    motif-scan tracks and the per-task motif path (none: the plain CNN).
    """
    from torch.utils.data import TensorDataset

    from scregnet.seed import seed_everything
    from scregnet.tfbind.data import one_hot

    lengths = {len(s) for s in sequences}
    if len(lengths) != 1:
        msg = f"sequences must all have the same length, got {sorted(lengths)[:5]}"
        raise InputError(msg)
    window = lengths.pop()
    rng = seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    labels = np.asarray(labels, dtype=np.float32).reshape(len(sequences), -1)
    x = torch.from_numpy(np.stack([one_hot(s) for s in sequences]))
    y = torch.from_numpy(labels)
    order = rng.permutation(len(sequences))
    n_val = max(1, round(val_fraction * len(sequences)))
    val, tr = order[:n_val], order[n_val:]
    model = ScFAN(
        ModelConfig(
            n_tfs=labels.shape[1],
            window=window,
            use_accessibility=False,
            filters=config.filters,
            dropout=config.dropout,
            hidden=config.hidden,
            n_motifs=len(motifs),
            motif_width=max((m.counts.shape[1] for m in motifs), default=0),
            motif_tf=tuple(range(len(motifs))),
            motif_centre=window,
        )
    )
    if motifs:
        model.set_motifs([torch.from_numpy(m.log_odds()) for m in motifs])
    result = fit(
        model,
        TensorDataset(x[tr], y[tr]),
        TensorDataset(x[val], y[val]),
        pos_weight=pos_weights(labels[tr], cap=config.max_pos_weight),
        config=config,
        device=device,
        generator=generator,
    )
    return model, result
