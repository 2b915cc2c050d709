"""The ``tfbind train`` checkpoint (:mod:`scregnet.checkpoint` format, kind ``scregnet.tfbind``).

Besides the training configuration (``config``) and the weights it carries the network's
architecture (``model_config``), the TF names, the window and bin sizes, the genome's chromosome
names and lengths, the held-out chromosomes and metrics, and the motifs and bulk context behind
the motif features, so that prediction can refuse a genome or window it was not trained for.
The metrics' ``dropped_tfs`` (absent when none; older checkpoints lack it) names the bulk sheet's
TFs that training left out for too few positives, with their training and validation counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from scregnet import checkpoint
from scregnet.errors import InputError
from scregnet.io.atomic import atomic_path
from scregnet.tfbind.model import ModelConfig, ScFAN
from scregnet.tfbind.motifs import Motif

if TYPE_CHECKING:
    from scregnet.tfbind.config import TrainConfig

KIND = "scregnet.tfbind"
VERSION = 3


def save_checkpoint(
    out: str | Path,
    *,
    model: nn.Module,
    model_config: ModelConfig,
    config: TrainConfig,
    tfs: list[str],
    chrom_sizes: dict[str, int],
    test_chroms: list[str],
    val_chroms: list[str],
    cell_types: list[str],
    metrics: dict[str, Any],
    motifs: Sequence[Motif] = (),
    motif_tfs: Sequence[str] = (),
    context: np.ndarray | None = None,
) -> Path:
    """Write the checkpoint to ``out`` atomically."""
    with atomic_path(out) as tmp:
        checkpoint.save(
            tmp,
            KIND,
            VERSION,
            config,
            model.state_dict(),
            model_config=model_config,
            tfs=list(tfs),
            window=model_config.window,
            bin_size=config.bin_size,
            chrom_sizes=dict(chrom_sizes),
            test_chroms=list(test_chroms),
            val_chroms=list(val_chroms),
            cell_types=list(cell_types),
            metrics=metrics,
            # the motifs behind the motif tracks and the context, so prediction scans the same ones
            motifs=[
                {"motif_id": m.motif_id, "name": m.name, "counts": np.asarray(m.counts).tolist()}
                for m in motifs
            ],
            motif_tfs=list(motif_tfs),
            bulk_context=None if context is None else np.asarray(context).tolist(),
        )
    return Path(out)


@dataclass
class LoadedModel:
    model: ScFAN
    tfs: list[str]
    window: int
    bin_size: int
    chrom_sizes: dict[str, int]
    test_chroms: list[str]
    val_chroms: list[str]
    checkpoint: dict[str, Any]

    def motifs(self) -> list[Motif]:
        """The motifs the model was trained with (its motif tracks and context), in TF order."""
        return [
            Motif(m["motif_id"], m["name"], np.asarray(m["counts"], dtype=np.float64))
            for m in self.checkpoint.get("motifs", [])
        ]

    def motif_tf_index(self) -> list[int]:
        """Output index of the TF of each of :meth:`motifs`."""
        return [self.tfs.index(tf) for tf in self.checkpoint.get("motif_tfs", [])]


def load_checkpoint(
    path: str | Path,
    *,
    chrom_sizes: dict[str, int] | None = None,
    window: int | None = None,
    fasta: str | Path | None = None,
) -> LoadedModel:
    """Load a ``tfbind train`` checkpoint; refuse another genome or window size.

    ``chrom_sizes`` (of the genome it is applied to) must agree with the training genome on every
    chromosome both have, and share at least one chromosome; ``window`` must equal the model's.
    """
    ckpt = checkpoint.load(path, KIND, VERSION)
    trained: dict[str, int] = ckpt["chrom_sizes"]
    if chrom_sizes is not None:
        _check_genome(trained, chrom_sizes, fasta, path)
    if window is not None and window != ckpt["window"]:
        msg = f"model was trained on {ckpt['window']} bp windows, not {window} bp"
        raise InputError(msg, path)
    model = checkpoint.restore(lambda: ScFAN(ModelConfig(**ckpt["model_config"])), ckpt, path)
    return LoadedModel(
        model,
        list(ckpt["tfs"]),
        int(ckpt["window"]),
        int(ckpt["bin_size"]),
        trained,
        list(ckpt["test_chroms"]),
        list(ckpt["val_chroms"]),
        ckpt,
    )


def _check_genome(
    trained: dict[str, int],
    chrom_sizes: dict[str, int],
    fasta: str | Path | None,
    path: str | Path,
) -> None:
    where = f"the genome {Path(fasta).name}" if fasta else "the genome"
    shared = [c for c in chrom_sizes if c in trained]
    if not shared:
        msg = (
            f"model was trained on another genome: none of its chromosomes ({', '.join(list(trained)[:4])}) "
            f"are in {where} ({', '.join(list(chrom_sizes)[:4])})"
        )
        raise InputError(msg, path)
    differ = [c for c in shared if chrom_sizes[c] != trained[c]]
    if differ:
        c = differ[0]
        msg = (
            f"model was trained on another genome: {c} is {trained[c]} bp there but "
            f"{chrom_sizes[c]} bp in {where} ({len(differ)} chromosome(s) differ)"
        )
        raise InputError(msg, path)
