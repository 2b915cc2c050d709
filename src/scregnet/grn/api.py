"""Scoring every TF x candidate target, streamed, and the end-to-end ``scregnet grn`` API."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from scregnet.errors import InputError
from scregnet.grn.config import (
    NEGATIVE_RATIO,
    PRIOR_THRESHOLD,
    PRIOR_WINDOW,
    SCORE_BATCH_SIZE,
)

if TYPE_CHECKING:
    import torch

    from scregnet.grn.config import GRNConfig, TrainConfig
    from scregnet.grn.data import ExpressionViews, PairLabels
    from scregnet.grn.images import ImageBuilder
    from scregnet.grn.model import DeepMCL

log = logging.getLogger(__name__)


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

    def combine_with_binding(self, tfs: Sequence[str], prior: NDArray[np.float32]) -> None:
        """``score`` := rank mean of the network's score and the binding prior (:func:`scregnet.stats.rank_mean`).

        The network learns from expression alone which pairs look like the pairs the binding labels
        positive; the binding itself (TF bound near the gene's TSS in these cells) is separate
        evidence the network's score does not carry, so the two are rank-averaged. Pairs of TFs
        without binding evidence (scored through ``--tfs`` only) keep their expression rank.

        ``prior`` is the ``(tfs, genes)`` TSS-window binding matrix the labels were drawn from.
        """
        from scregnet.stats import rank_mean

        row = np.full(len(self.genes), -1, dtype=np.intp)  # gene index -> prior row
        index = {g: i for i, g in enumerate(self.genes)}
        row[[index[tf] for tf in tfs]] = np.arange(len(tfs))
        r = row[self.tf]
        binding = np.full(self.score.size, np.nan, dtype=np.float32)
        binding[r >= 0] = prior[r[r >= 0], self.target[r >= 0]]
        self.expression_score = self.score
        self.binding = binding
        self.score = rank_mean(self.score, binding)
        self.method = f"rank mean of ({self.method or 'expression score'}) and binding prior"
        log.info(
            "edge score = rank mean of co-expression and binding (%d of %d pairs have binding)",
            int(np.isfinite(binding).sum()),
            binding.size,
        )

    def frame(self) -> pd.DataFrame:
        """Ranked table: ``tf target score rank`` then one ``attention_<view>`` column per view."""
        genes = np.asarray(self.genes, dtype=object)
        # highest score first; ties broken by TF then target name for a deterministic order
        order = np.lexsort((genes[self.target], genes[self.tf], -self.score.astype(np.float64)))
        out = pd.DataFrame(
            {
                "tf": genes[self.tf[order]],
                "target": genes[self.target[order]],
                "score": self.score[order],
                "rank": np.arange(1, order.size + 1),
            }
        )
        if self.method:
            out["method"] = self.method
        if self.expression_score is not None and self.binding is not None:
            out["expression_score"] = self.expression_score[order]
            out["binding_prior"] = self.binding[order]
        for j, view in enumerate(self.views):
            out[f"attention_{view}"] = self.view_weights[order, j]
        return out

    def attention(self) -> pd.DataFrame:
        """Mean attention per TF and view (and over all TFs, ``tf = *``)."""
        genes = np.asarray(self.genes, dtype=object)
        frame = pd.DataFrame(self.view_weights, columns=self.views)
        frame["tf"] = genes[self.tf]
        per_tf = frame.groupby("tf", sort=True)[self.views].mean()
        per_tf.loc["*"] = frame[self.views].mean()
        return per_tf.reset_index().melt(id_vars="tf", var_name="view", value_name="weight")


def readout_name(selection: dict[str, Any], n_pair_features: int) -> str:
    """In words, which read-out of the trained model produces its scores.

    ``selection``: :attr:`scregnet.grn.train.TrainResult.selection`; ``n_pair_features``: the
    model's feature width (0: DeepMCL as published).
    """
    from scregnet.grn.config import N_PAIR_FEATURES

    if n_pair_features == 0:
        return "DeepMCL network (published architecture)"
    inputs = "pair features" if n_pair_features == N_PAIR_FEATURES else "pair and label features"
    if selection.get("mode") != "held-out selection":
        return f"DeepMCL network + |Spearman| skip trained together ({inputs})"
    skip = {
        "spearman": "|Spearman|",
        "metacell": "|metacell r|",
        "prior": "target prior (ties broken by |Pearson r|)",
        "prior_x_rho": "target prior x |Spearman|",
        "sim_prior": "similarity-weighted target prior (ties broken by |Pearson r|)",
        "sim_prior_x_rho": "similarity-weighted target prior x |Spearman|",
        "loglinear": "log-linear target prior x |r| x similarity-weighted prior",
        "logistic": f"logistic regression on {inputs}",
    }[selection["skip"]]
    if selection.get("tf_degree"):
        from scregnet.grn.label_features import DEGREE_COVARIATES, GENE_STATISTICS

        covariates = ", ".join(
            GENE_STATISTICS[c] for c in DEGREE_COVARIATES[selection["tf_degree"]]
        )
        skip += f", plus the TF's predicted out-degree (from its {covariates})"
    if selection.get("network"):
        return f"{skip} + DeepMCL network (gated, {inputs})"
    if selection.get("network_trained") is False:
        return f"{skip} (read-out alone, network not trained)"
    return f"{skip} (network gate 0)"


def iter_scores(
    model: DeepMCL,
    builder: ImageBuilder,
    tfs: Sequence[int],
    *,
    targets: Sequence[int] | None = None,
    batch_size: int = SCORE_BATCH_SIZE,
) -> Iterator[tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64], NDArray[np.float32]]]:
    """Yield ``(tf, target, score, view_weights)`` batches for every TF x target (self excluded);
    scores are float64 probabilities (in float32 those near 1 tie pairs that the logits order).

    Only one batch of primary images exists at a time; neighbour images are embedded once per gene.
    A model whose network's gate is 0 (not kept, or not trained: ``TrainConfig.network`` False)
    scores by its skip read-out of the pair features alone: the same logit, no image built, and
    uniform view weights, since no view weighs in such a score.
    """
    import torch

    from scregnet.device import autocast
    from scregnet.grn.train import forward_pairs, neighbour_embeddings, network_off, readout_logit

    device = builder.device
    model.eval()

    cand = np.arange(builder.n_genes) if targets is None else np.asarray(targets, dtype=np.intp)
    neigh = (
        None
        if network_off(model)
        else neighbour_embeddings(
            model, builder, genes=np.concatenate([cand, np.asarray(tfs, dtype=np.intp)])
        )
    )
    n_views = len(builder.views)
    with torch.no_grad():
        for t in tfs:
            tg_all = cand[cand != t]
            for s in range(0, tg_all.size, batch_size):
                tg = torch.as_tensor(tg_all[s : s + batch_size], device=device)
                a = torch.full_like(tg, int(t))
                if neigh is None:
                    logit = readout_logit(model, builder, a, tg)
                    weights = torch.full((tg.shape[0], n_views), 1.0 / n_views)
                else:
                    with autocast(device):
                        out = forward_pairs(model, builder, a, tg, neigh)
                    logit, weights = out.logit, out.view_weights
                yield (
                    np.full(tg.shape[0], t, dtype=np.intp),
                    tg.cpu().numpy().astype(np.intp),
                    torch.sigmoid(logit.double()).cpu().numpy(),
                    weights.float().cpu().numpy(),
                )


def score_all(
    model: DeepMCL,
    builder: ImageBuilder,
    genes: list[str],
    views: list[str],
    tfs: Sequence[int],
    *,
    targets: Sequence[int] | None = None,
    batch_size: int = SCORE_BATCH_SIZE,
) -> EdgeScores:
    """Collect :func:`iter_scores` into compact arrays (scores only, never the images)."""
    from tqdm import tqdm

    start = time.perf_counter()
    parts = list(
        tqdm(
            iter_scores(model, builder, tfs, targets=targets, batch_size=batch_size),
            desc="scoring",
            unit="batch",
            disable=not log.isEnabledFor(logging.INFO) or None,
        )
    )
    elapsed = time.perf_counter() - start
    if not parts:
        msg = "nothing to score: no TF has a candidate target"
        raise InputError(msg)
    tf, target, score, weights = (np.concatenate(p) for p in zip(*parts, strict=True))
    log.info(
        "scored %d pairs of %d TFs in %.1f s (%.0f pairs/s)",
        score.size,
        len(tfs),
        elapsed,
        score.size / max(elapsed, 1e-9),
    )
    return EdgeScores(
        genes=genes,
        views=views,
        tf=tf,
        target=target,
        score=score.astype(np.float64),
        view_weights=weights.astype(np.float32),
        info={"score_seconds": elapsed, "pairs_per_second": score.size / max(elapsed, 1e-9)},
    )


def write_outputs(
    scores: EdgeScores, edges: str | Path, attention: str | Path | None = None
) -> None:
    """Ranked edges TSV (and the attention TSV): both appear together or not at all."""
    from scregnet.io.atomic import atomic_paths

    paths = [Path(edges)] + ([Path(attention)] if attention is not None else [])
    with atomic_paths(*paths) as tmps:
        scores.frame().to_csv(tmps[0], sep="\t", index=False, float_format="%.6g")
        if attention is not None:
            scores.attention().to_csv(tmps[1], sep="\t", index=False, float_format="%.6g")
    log.info("wrote %d ranked edges to %s", scores.score.size, edges)
    if attention is not None:
        log.info("wrote per-view attention to %s", attention)


def resolve_tfs(
    names: Sequence[str], genes: Sequence[str], *, source: str | None = None
) -> list[int]:
    """Gene indices of TFs; any absent from the expression data is an error that lists them."""
    index = {g: i for i, g in enumerate(genes)}
    absent = [t for t in names if t not in index]
    if absent:
        msg = (
            f"{len(absent)} TF(s) absent from the expression data: "
            f"{', '.join(absent[:20])}{' ...' if len(absent) > 20 else ''}"
        )
        raise InputError(msg, source)
    return sorted({index[t] for t in names})


def tfs_file(spec: str | None) -> Path | None:
    """The file ``--tfs`` names, or ``None`` when it is a list of names (or not given)."""
    if not spec:
        return None
    try:
        return Path(spec) if Path(spec).is_file() else None
    except OSError:  # e.g. a long comma-separated list is too long for a file name
        return None


def read_tf_list(spec: str) -> list[str]:
    """``--tfs``: a file with one TF per line, or a comma-separated list (a single name without a
    comma is a TF unless it looks like a file name)."""
    path = tfs_file(spec)
    if path is not None:
        from scregnet.io.text import read_text

        names = [ln.split("\t")[0].strip() for ln in read_text(path).splitlines()]
        names = [n for n in names if n and not n.startswith("#")]
        if not names:
            msg = "TF list is empty"
            raise InputError(msg, path)
        return names
    names = [n.strip() for n in spec.split(",") if n.strip()]
    looks_like_file = "/" in spec or spec.endswith((".txt", ".tsv", ".csv"))
    if not names or (len(names) == 1 and looks_like_file):
        msg = "TF list file does not exist"
        raise InputError(msg, spec)
    return names


def infer_grn(
    rna: Sequence[str | Path],
    *,
    out: str | Path,
    labels: str | Path | None = None,
    prior: str | Path | Sequence[str | Path] | None = None,
    gtf: str | Path | None = None,
    tfs: Sequence[str] | None = None,
    attention_out: str | Path | None = None,
    layer: str | None = None,
    device: str = "auto",
    seed: int = 0,
    threads: int = 1,
    model_config: GRNConfig | None = None,
    train_config: TrainConfig | None = None,
    prior_window: int = PRIOR_WINDOW,
    prior_threshold: float = PRIOR_THRESHOLD,
    negative_ratio: float = NEGATIVE_RATIO,
    score_batch_size: int = SCORE_BATCH_SIZE,
    data: ExpressionViews | None = None,
) -> EdgeScores:
    """Read views, build labels, train, score every TF x gene, write the ranked edges (and attention)."""
    from scregnet.device import resolve_device, torch_threads
    from scregnet.grn.config import GRNConfig, TrainConfig
    from scregnet.grn.data import PairLabels, label_pairs, read_views
    from scregnet.seed import seed_everything

    if (labels is None) == (prior is None):
        msg = "give exactly one of --labels or --prior"
        raise InputError(msg)
    if prior is not None and gtf is None:
        msg = "--prior needs --gtf (gene TSSs)"
        raise InputError(msg)
    from scregnet.io.atomic import check_writable_dir

    for target in (out, attention_out):
        if target is not None:
            check_writable_dir(Path(target).parent)
    start = time.perf_counter()
    rng = seed_everything(seed)
    dev = resolve_device(device)
    model_config = model_config or GRNConfig()
    train_config = train_config or TrainConfig()
    if data is None:
        data = read_views(rna, layer=layer)
    genes = data.genes

    frame, source, binding = _label_frame(
        labels,
        prior,
        gtf,
        genes,
        prior_window=prior_window,
        prior_threshold=prior_threshold,
        negative_ratio=negative_ratio,
        rng=rng,
    )
    tf_idx, tg_idx, y = label_pairs(frame, genes, source=source)
    pairs = PairLabels(tf_idx, tg_idx, y)
    score_tfs = resolve_tfs(tfs, genes, source="--tfs") if tfs else sorted(set(pairs.tf.tolist()))
    with torch_threads(threads):
        scores = _train_and_score(
            data,
            pairs,
            score_tfs,
            model_config=model_config,
            train_config=train_config,
            device=dev,
            seed=seed,
            rng=rng,
            score_batch_size=score_batch_size,
        )
    log.info("published score: %s", scores.method)
    if binding is not None:
        scores.combine_with_binding(*binding)
    write_outputs(scores, out, attention_out)
    log.info("GRN inference finished in %.1f s", time.perf_counter() - start)
    return scores


def _train_and_score(
    data: ExpressionViews,
    pairs: PairLabels,
    score_tfs: Sequence[int],
    *,
    model_config: GRNConfig,
    train_config: TrainConfig,
    device: torch.device,
    seed: int,
    rng: np.random.Generator,
    score_batch_size: int,
) -> EdgeScores:
    """Fit the model on ``pairs`` and score every TF of ``score_tfs`` x gene, with the training
    record in ``info`` and the published read-out's name in ``method``."""
    from scregnet.grn.images import ImageBuilder
    from scregnet.grn.train import fit

    genes = data.genes
    builder = ImageBuilder.for_model(data, model_config, device=device, seed=seed)
    result = fit(builder, pairs, model_config=model_config, config=train_config, rng=rng)
    scores = score_all(
        result.model, builder, genes, data.views, score_tfs, batch_size=score_batch_size
    )
    scores.info.update(
        {
            "best_epoch": result.best_epoch,
            "history": result.history,
            "val_tfs": [genes[i] for i in result.val_tfs],
            "n_train_pairs": len(pairs),
            "selection": result.selection,
        }
    )
    scores.method = readout_name(result.selection, model_config.n_pair_features)
    return scores


def _label_frame(
    labels: str | Path | None,
    prior: str | Path | Sequence[str | Path] | None,
    gtf: str | Path | None,
    genes: Sequence[str],
    *,
    prior_window: int,
    prior_threshold: float,
    negative_ratio: float,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, str | Path, tuple[list[str], NDArray[np.float32]] | None]:
    """The training pairs (``tf target label``) from ``labels`` or from the binding ``prior``
    near TSSs, the file they came from, and the prior's TFs and (genes x TFs) binding (None with
    ``labels``)."""
    from scregnet.grn.data import read_labels

    if labels is not None:
        return read_labels(labels), labels, None
    from scregnet.grn.priors import combined_prior, prior_labels
    from scregnet.io.gtf import read_tss

    assert prior is not None and gtf is not None
    priors = [prior] if isinstance(prior, str | Path) else list(prior)
    prior_tfs, matrix = combined_prior(priors, read_tss(gtf), genes, window=prior_window)
    frame = prior_labels(
        prior_tfs,
        matrix,
        genes,
        threshold=prior_threshold,
        negative_ratio=negative_ratio,
        rng=rng,
    )
    if frame.empty:
        msg = (
            f"no TF is bound (probability >= {prior_threshold}) within {prior_window} bp of any TSS"
        )
        raise InputError(msg, priors[0])
    return frame, priors[0], (prior_tfs, matrix)
