"""The trained GRN model file (``scregnet grn train --out``): the network and everything scoring
needs to rebuild its inputs.

Scoring (``scregnet grn score``) rebuilds the images and features from the same expression views
(checked: the same genes in the same order, the same views) and the seed, then sets the label
features from the training pairs stored here, exactly as training left them. A score is then the
same whichever TFs are scored together, so the TFs can be scored in shards on different machines.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scregnet.errors import InputError
from scregnet.grn.data import PairLabels

if TYPE_CHECKING:
    from scregnet.grn.data import ExpressionViews
    from scregnet.grn.model import DeepMCL

#: how the training pairs were labelled: known edges (``--labels``) or binding near TSSs
#: (``--prior``, whose binding the published score then combines with the model's)
SUPERVISION = ("labels", "prior")


@dataclass
class TrainedGRN:
    """A trained model with its training pairs (indices into ``genes``) and its record."""

    model: DeepMCL
    genes: list[str]
    views: list[str]
    labels: PairLabels
    #: the expression layer training read (``"X"``: the main matrix; None: the default layers,
    #: :data:`scregnet.grn.data.DEFAULT_LAYERS`), which scoring reads
    layer: str | None
    seed: int
    #: ``labels`` or ``prior`` (:data:`SUPERVISION`)
    supervision: str
    #: with ``prior``: the prior's TFs (in its row order) and its TSS window
    prior_tfs: list[str] = field(default_factory=list)
    prior_window: int = 0
    #: which read-out produces the scores, in words (:func:`scregnet.grn.api.readout_name`)
    method: str = ""
    #: the training record: selection, best epoch, history, validation TFs
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def label_tfs(self) -> list[int]:
        """The labelled TFs (gene indices, sorted): those scored when no TF list is given."""
        return sorted(set(self.labels.tf.tolist()))

    def check_views(self, data: ExpressionViews, source: str | Path | None = None) -> None:
        """An :class:`InputError` unless ``data`` has the training genes (same order) and views."""
        if list(data.genes) != self.genes:
            same = len(set(data.genes) & set(self.genes))
            msg = (
                f"the expression has {len(data.genes)} genes ({same} shared) where the model was "
                f"trained on {len(self.genes)} in another order or set: score the files it was "
                "trained on"
            )
            raise InputError(msg, source)
        if list(data.views) != self.views:
            msg = (
                f"the expression has the views {', '.join(data.views)} where the model was "
                f"trained on {', '.join(self.views)}: score the files it was trained on"
            )
            raise InputError(msg, source)


def save(trained: TrainedGRN, path: str | Path) -> Path:
    """Write ``trained`` to ``path`` (:mod:`scregnet.checkpoint` format, kind ``scregnet.grn``)."""
    import torch

    from scregnet.grn.model import save_checkpoint

    return save_checkpoint(
        trained.model,
        path,
        genes=list(trained.genes),
        views=list(trained.views),
        labels={
            "tf": torch.as_tensor(trained.labels.tf, dtype=torch.int32),
            "target": torch.as_tensor(trained.labels.target, dtype=torch.int32),
            "label": torch.as_tensor(trained.labels.label, dtype=torch.int8),
        },
        layer=trained.layer,
        seed=int(trained.seed),
        supervision=trained.supervision,
        prior_tfs=list(trained.prior_tfs),
        prior_window=int(trained.prior_window),
        method=trained.method,
        record=trained.record,
    )


def load(path: str | Path) -> TrainedGRN:
    """The model written by :func:`save`; an :class:`InputError` naming ``path`` for another file."""
    from scregnet.grn.model import load_checkpoint

    model, ckpt = load_checkpoint(path)
    try:
        genes = [str(g) for g in ckpt["genes"]]
        labels = PairLabels(
            ckpt["labels"]["tf"].numpy().astype(np.intp),
            ckpt["labels"]["target"].numpy().astype(np.intp),
            ckpt["labels"]["label"].numpy().astype(np.int8),
        )
        trained = TrainedGRN(
            model=model,
            genes=genes,
            views=[str(v) for v in ckpt["views"]],
            labels=labels,
            layer=ckpt["layer"],
            seed=int(ckpt["seed"]),
            supervision=str(ckpt["supervision"]),
            prior_tfs=[str(t) for t in ckpt["prior_tfs"]],
            prior_window=int(ckpt["prior_window"]),
            method=str(ckpt["method"]),
            record=dict(ckpt["record"]),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        msg = f"GRN checkpoint lacks what scoring needs ({type(exc).__name__}: {exc}); retrain"
        raise InputError(msg, path) from exc
    n = len(genes)
    if (
        trained.supervision not in SUPERVISION
        or len(labels) == 0
        or labels.tf.max() >= n
        or labels.target.max() >= n
    ):
        msg = "GRN checkpoint's training pairs do not fit its genes; retrain"
        raise InputError(msg, path)
    return trained


def digest(path: str | Path) -> str:
    """The first 16 hex digits of the file's SHA-256: which model a shard was scored with."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
