"""GRN benchmark: DeepMCL-style model vs |Spearman|, GRNBoost2 and GENIE3 on the same pairs.

Protocol (SCIENCE.md section 4): TF-aware cross-validation. TFs are split into folds; the model is
trained on the other folds' TFs (their true edges positive, their other pairs negative) and scores
the held-out TFs' pairs with every candidate target. Baselines need no training and score the same
pairs. Reported per method: mean over folds of AUROC / AUPRC / AUPRC ratio / EPR on the held-out
pairs, and AUPRC ratio / EPR on the full out-of-fold ranking (every TF x target, each TF scored by
a model that never saw it). Each model makes its own held-out choices (read-out, epoch, network
on/off) on its training TFs only (``scregnet.grn.train.fit``); what it chose is listed per fold.
Ablation: the model on each single view, without the held-out selection (``val_fraction = 0``,
the model with a fixed read-out) and without any pair features (DeepMCL as published). Speed (``--speed``): pairs/s
of image building and of scoring (images + network + head) at 10^5 and 10^6 pairs on a real
BEELINE set, with peak memory, on this machine's CPU.

    .venv/bin/python bench/grn.py --world /path/to/small_world [--beeline ../shared/data/beeline_gsd]

GRNBoost2 / GENIE3 run arboreto's per-target regression (``arboreto.core.infer_partial_network``,
its ``SGBM_KWARGS`` with early stopping / ``RF_KWARGS`` with 100 trees) when arboreto is installed (the ``bench``
extra), else scikit-learn with the same settings (``grn_baselines``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray

from grn_baselines import tree_importances
from scregnet.grn.data import ExpressionViews, PairLabels, read_views
from scregnet.grn.images import ImageBuilder
from scregnet.grn.model import GRNConfig
from scregnet.grn.train import TrainConfig, fit, predict_pairs
from scregnet.seed import seed_everything
from scregnet.stats import abs_spearman, auprc, auprc_ratio, auroc, early_precision_ratio

log = logging.getLogger("bench.grn")

#: a model variant: its views, GRNConfig and TrainConfig overrides
Variant = tuple[list[str], dict[str, Any], dict[str, Any]]


def variants(views: list[str], ablation: bool) -> dict[str, Variant]:
    """scregnet's model on all views (and each view alone), plus the ablation of our extensions."""
    out: dict[str, Variant] = {"scregnet (all views)": (views, {}, {})}
    if len(views) > 1:
        out |= {f"scregnet ({v} only)": ([v], {}, {}) for v in views}
    if ablation:
        out["- held-out selection"] = (views, {}, {"val_fraction": 0.0})
        out["- pair features (DeepMCL as published)"] = (views, {"n_pair_features": 0}, {})
    return out


def tree_baseline(
    expr: NDArray[np.float32], tfs: list[int], genes: list[str], method: str, targets: list[int]
) -> NDArray[np.float64]:
    """(TFs, genes) importances; arboreto per target when available."""
    try:
        from arboreto.core import RF_KWARGS, SGBM_KWARGS, infer_partial_network
    except ImportError:
        log.warning("arboreto not installed: scikit-learn %s", method)
        return tree_importances(
            expr, tfs, method="grnboost2" if method == "GRNBoost2" else "genie3", targets=targets
        )
    start = time.perf_counter()
    x = np.asarray(expr, dtype=np.float64)
    tf_names = [genes[t] for t in tfs]
    out = np.zeros((len(tfs), len(genes)))
    # GENIE3 with arboreto's RF settings but 100 trees (1,000 take hours on 2 shared cores)
    kind, kwargs = (
        ("GBM", SGBM_KWARGS)
        if method == "GRNBoost2"
        else ("RF", {**RF_KWARGS, "n_estimators": 100})
    )
    for g in targets:
        if x[:, g].std() == 0:
            continue
        keep = [i for i, t in enumerate(tfs) if t != g]
        links = infer_partial_network(
            kind,
            kwargs,
            x[:, [tfs[i] for i in keep]],
            [tf_names[i] for i in keep],
            genes[g],
            x[:, g],
            seed=0,
        )
        row = dict(zip(links["TF"], links["importance"], strict=True))
        for i in keep:
            out[i, g] = row.get(tf_names[i], 0.0)
    log.info(
        "%s (arboreto): %d targets in %.0f s", method, len(targets), time.perf_counter() - start
    )
    return out


def metrics(y: NDArray[np.int8], s: NDArray[np.float64]) -> dict[str, float]:
    return {
        "auroc": auroc(y, s),
        "auprc": auprc(y, s),
        "auprc_ratio": auprc_ratio(y, s),
        "epr": early_precision_ratio(y, s),
    }


def cross_validate(
    data: ExpressionViews,
    tfs: list[int],
    true: set[tuple[int, int]],
    *,
    folds: int,
    seeds: list[int],
    epochs: int,
    targets: list[int],
    baselines: dict[str, NDArray[np.float64]],
    configs: dict[str, Variant],
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[str]]]:
    """Per-fold held-out metrics and full out-of-fold ranking metrics for models and baselines,
    and per model what its held-out selection chose in each fold."""
    rows, full_rows = [], []
    choices: dict[str, list[str]] = {}
    target_set = np.asarray(targets)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        order = rng.permutation(tfs)
        splits = [order[i::folds].tolist() for i in range(folds)]
        oof: dict[str, list[tuple[NDArray[np.int8], NDArray[np.float64]]]] = {}

        def pairs(tf_ids: list[int]) -> PairLabels:
            a = np.repeat(tf_ids, target_set.size)
            b = np.tile(target_set, len(tf_ids))
            keep = a != b
            a, b = a[keep], b[keep]
            y = np.fromiter(
                ((p in true) for p in zip(a.tolist(), b.tolist(), strict=True)), dtype=np.int8
            )
            return PairLabels(a.astype(np.intp), b.astype(np.intp), y)

        for f, test_tfs in enumerate(splits):
            train_tfs = [t for t in tfs if t not in test_tfs]
            train, test = pairs(train_tfs), pairs(test_tfs)
            if test.n_positive == 0:
                continue
            scores: dict[str, NDArray[np.float64]] = {}
            for name, (views, model_kw, train_kw) in configs.items():
                r = seed_everything(seed)
                model_config = GRNConfig(**model_kw)
                builder = ImageBuilder.for_model(data.subset_views(views), model_config, seed=seed)
                t0 = time.perf_counter()
                result = fit(
                    builder,
                    train,
                    model_config=model_config,
                    config=TrainConfig(epochs=epochs, **train_kw),
                    rng=r,
                )
                scores[name] = predict_pairs(result.model, builder, test)
                sel = result.selection
                choices.setdefault(name, []).append(
                    f"skip {sel['skip']}, network {'epoch ' + str(sel['network_epoch']) if sel['network'] else 'off'}"
                    if "skip" in sel
                    else f"{sel['mode']}, epoch {result.best_epoch}"
                )
                log.info("seed %d fold %d %s: %.0f s", seed, f, name, time.perf_counter() - t0)
            tf_row = {t: i for i, t in enumerate(tfs)}
            for name, matrix in baselines.items():
                scores[name] = np.array(
                    [matrix[tf_row[a], b] for a, b in zip(test.tf, test.target, strict=True)]
                )
            for name, s in scores.items():
                rows.append({"seed": seed, "fold": f, "method": name, **metrics(test.label, s)})
                oof.setdefault(name, []).append((test.label, s))
        for name, parts in oof.items():
            y = np.concatenate([p[0] for p in parts])
            s = np.concatenate([p[1] for p in parts])
            full_rows.append(
                {
                    "seed": seed,
                    "method": name,
                    "auprc_ratio": auprc_ratio(y, s),
                    "epr": early_precision_ratio(y, s),
                }
            )
    return pd.DataFrame(rows), pd.DataFrame(full_rows), choices


def choice_lines(choices: dict[str, list[str]]) -> str:
    """What each model's held-out selection chose, counted over folds."""
    from collections import Counter

    return "\n".join(
        f"- {name}: " + "; ".join(f"{c} ({n}x)" for c, n in Counter(picks).most_common())
        for name, picks in choices.items()
    )


def table(held: pd.DataFrame, full: pd.DataFrame, order: list[str]) -> str:
    h = held.groupby("method")[["auroc", "auprc", "auprc_ratio", "epr"]].mean()
    f = full.groupby("method")[["auprc_ratio", "epr"]].mean()
    lines = [
        "| method | held-out AUROC | held-out AUPRC | held-out AUPRC ratio | held-out EPR "
        "| full-ranking AUPRC ratio | full-ranking EPR |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in order:
        if m in h.index:
            r, q = h.loc[m], f.loc[m]
            lines.append(
                f"| {m} | {r.auroc:.3f} | {r.auprc:.3f} | {r.auprc_ratio:.2f} | {r.epr:.2f} "
                f"| {q.auprc_ratio:.2f} | {q.epr:.2f} |"
            )
    return "\n".join(lines)


def speed(
    data: ExpressionViews,
    sizes: list[int],
    labels: PairLabels | None = None,
    device: str = "cpu",
) -> list[dict[str, float]]:
    """Per size: pairs/s of scoring (images + network + head, ``grn.api.iter_scores``, the
    network's gate on) over about that many TF x gene pairs, of the read-out alone (the gate at
    0: pair and label features, no images), and the process's peak resident memory
    so far (sizes run in increasing order). Image building alone is timed on the first size.
    ``labels``: the training pairs whose label features the head reads (none: zeros). On a CUDA
    ``device`` the row also has the peak GPU memory allocated."""
    import resource

    from scregnet.grn.api import iter_scores
    from scregnet.grn.model import DeepMCL
    from scregnet.grn.readout import use_labels

    seed_everything(0)
    dev = torch.device(device)
    builder = ImageBuilder.for_model(data, GRNConfig(), device=dev)
    if labels is not None:
        use_labels(builder, labels)
    g = builder.n_genes
    model = DeepMCL(GRNConfig()).to(dev).eval()
    if model.gate is not None:
        with torch.no_grad():
            model.gate.fill_(1.0)
    rng = np.random.default_rng(0)
    out = []
    for n_pairs in sorted(sizes):
        row: dict[str, float] = {"pairs": 0.0, "cells": float(sum(data.n_cells())), "genes": g}
        if not out:
            a = torch.as_tensor(rng.integers(0, g, n_pairs), device=dev)
            b = torch.as_tensor(rng.integers(0, g, n_pairs), device=dev)
            t0 = time.perf_counter()
            for s in range(0, n_pairs, 2048):
                builder.primary(a[s : s + 2048], b[s : s + 2048])
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            row["image_pairs_per_s"] = n_pairs / (time.perf_counter() - t0)
        n_tfs = min(g, -(-n_pairs // (g - 1)))
        tfs = rng.choice(g, n_tfs, replace=False).tolist()
        t0 = time.perf_counter()
        n = sum(len(batch[0]) for batch in iter_scores(model, builder, tfs))
        row["pairs"] = float(n)
        row["score_pairs_per_s"] = n / (time.perf_counter() - t0)
        assert model.gate is not None
        with torch.no_grad():
            model.gate.fill_(0.0)  # the read-out alone, as a model whose network is not kept
        t0 = time.perf_counter()
        n = sum(len(batch[0]) for batch in iter_scores(model, builder, tfs))
        row["readout_pairs_per_s"] = n / (time.perf_counter() - t0)
        with torch.no_grad():
            model.gate.fill_(1.0)
        row["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        if dev.type == "cuda":
            row["peak_gpu_gb"] = torch.cuda.max_memory_allocated(dev) / 2**30
        log.info("speed: %s", row)
        out.append(row)
    return out


def speed_lines(rows: list[dict[str, float]], device: str = "cpu") -> str:
    where = "CPU" if device == "cpu" else device
    head = (
        f"Speed ({where}, {torch.get_num_threads()} thread(s), {rows[0]['genes']:.0f} genes x "
        f"{rows[0]['cells']:.0f} cells): image building {rows[0]['image_pairs_per_s']:.0f} pairs/s"
    )
    return "\n".join(
        [head]
        + [
            f"- {r['pairs']:.0f} pairs: scoring (images + network + head) "
            f"{r['score_pairs_per_s']:.0f} pairs/s, read-out alone {r['readout_pairs_per_s']:.0f} "
            f"pairs/s, peak resident memory {r['peak_rss_gb']:.2f} GB"
            + (f", peak GPU memory {r['peak_gpu_gb']:.2f} GB" if "peak_gpu_gb" in r else "")
            for r in rows
        ]
    )


def run_speed(root: Path, args: argparse.Namespace) -> str:
    """:func:`speed` on a real BEELINE set (mESC, the most genes), label features from split 0's
    training TFs."""
    from grn_beeline import load_set, tf_folds, tf_pairs

    data = load_set(root, "Non-Specific", "mESC")
    _, train_tfs = tf_folds(data.regulators, 0)
    views = ExpressionViews(list(data.genes), ["all"], [data.expr])
    rows = speed(
        views,
        args.speed_pairs,
        tf_pairs(train_tfs, len(data.genes), data.true),
        device=args.device,
    )
    return f"BEELINE {data.name}\n" + speed_lines(rows, args.device)


def run_world(world: Path, args: argparse.Namespace) -> str:
    rna = sorted((world / "samples").glob("*.rna.h5ad"))
    data = read_views(rna)
    genes = data.genes
    index = {g: i for i, g in enumerate(genes)}
    tf_names = [t for t in (world / "tfs.txt").read_text().split() if t in index]
    tfs = [index[t] for t in tf_names]
    truth = pd.read_csv(world / "truth" / "grn_edges.tsv", sep="\t")
    true = {
        (index[a], index[b])
        for a, b in zip(truth.tf, truth.target, strict=True)
        if a in index and b in index
    }
    rng = np.random.default_rng(0)
    targets = list(range(len(genes)))
    if args.targets and args.targets < len(genes):
        targets = sorted(
            set(rng.choice(len(genes), args.targets, replace=False).tolist()) | set(tfs)
        )
    pooled = data.pooled()
    baselines = {"|Spearman|": abs_spearman(pooled, tfs)}
    if not args.no_trees:
        baselines["GRNBoost2"] = tree_baseline(pooled, tfs, genes, "GRNBoost2", targets)
        baselines["GENIE3"] = tree_baseline(pooled, tfs, genes, "GENIE3", targets)
    configs = variants(list(data.views), not args.no_ablation)
    held, full, choices = cross_validate(
        data,
        tfs,
        true,
        folds=args.folds,
        seeds=[0],
        epochs=args.epochs,
        targets=targets,
        baselines=baselines,
        configs=configs,
    )
    sp = speed(data, [20_000])
    head = (
        f"Simulator world {world.name}: {len(genes)} genes, {len(tfs)} TFs, views "
        f"{', '.join(f'{v} ({n} cells)' for v, n in zip(data.views, data.n_cells(), strict=True))}, "
        f"{len(true)} true edges; {args.folds}-fold TF-aware CV, {len(targets)} candidate targets, "
        f"{args.epochs} epochs."
    )
    speed_line = speed_lines(sp)
    held.to_csv(args.outdir / "grn_world_folds.tsv", sep="\t", index=False)
    return "\n\n".join(
        [head, table(held, full, [*configs, *baselines]), choice_lines(choices), speed_line]
    )


def run_beeline(path: Path, args: argparse.Namespace) -> str:
    expr = pd.read_csv(path / "ExpressionData.csv", index_col=0)
    pt = pd.read_csv(path / "PseudoTime.csv", index_col=0).loc[expr.columns]
    genes = [str(g) for g in expr.index]
    x = expr.T.to_numpy(np.float32)
    cells = np.asarray(expr.columns, dtype=str)
    in_branch = [pt.iloc[:, j].notna().to_numpy() for j in range(2)]
    # the branches share their early cells (same names): pooled features count them once
    data = ExpressionViews(
        genes, ["branch1", "branch2"], [x[m] for m in in_branch], [cells[m] for m in in_branch]
    )
    net = pd.read_csv(path / "GroundTruthNetwork.csv")
    index = {g: i for i, g in enumerate(genes)}
    true = {(index[a], index[b]) for a, b in zip(net.Gene1, net.Gene2, strict=True) if a != b}
    tfs = sorted({a for a, _ in true})
    full_x = x
    baselines = {"|Spearman|": abs_spearman(full_x, tfs)}
    if not args.no_trees:
        baselines["GRNBoost2"] = tree_baseline(
            full_x, tfs, genes, "GRNBoost2", list(range(len(genes)))
        )
        baselines["GENIE3"] = tree_baseline(full_x, tfs, genes, "GENIE3", list(range(len(genes))))
    configs = variants(["branch1", "branch2"], not args.no_ablation)
    held, full, choices = cross_validate(
        data,
        tfs,
        true,
        folds=2,
        seeds=list(range(args.beeline_repeats)),
        epochs=args.epochs,
        targets=list(range(len(genes))),
        baselines=baselines,
        configs=configs,
    )
    held.to_csv(args.outdir / "grn_beeline_folds.tsv", sep="\t", index=False)
    head = (
        f"BEELINE GSD: {len(genes)} genes x {x.shape[0]} cells, 2 views = the two pseudotime "
        f"branches ({', '.join(str(n) for n in data.n_cells())} cells), {len(true)} true edges of "
        f"{len(tfs)} regulators; TF-aware 2-fold CV x {args.beeline_repeats} random TF splits, "
        f"{args.epochs} epochs; baselines on all cells."
    )
    return "\n\n".join([head, table(held, full, [*configs, *baselines]), choice_lines(choices)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, help="simulator world directory (preset small)")
    parser.add_argument("--beeline", type=Path, help="BEELINE GSD directory")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--targets", type=int, default=0, help="subsample candidate targets")
    parser.add_argument("--beeline-repeats", type=int, default=3)
    parser.add_argument("--no-trees", action="store_true", help="skip GRNBoost2/GENIE3")
    parser.add_argument(
        "--no-ablation", action="store_true", help="skip the ablation of our extensions"
    )
    parser.add_argument(
        "--speed", type=Path, help="BEELINE real-data root: time scoring only (--speed-pairs)"
    )
    parser.add_argument("--speed-pairs", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--device", default="cpu", help="device of --speed: cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--outdir", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    args.outdir.mkdir(parents=True, exist_ok=True)
    runs: list[tuple[Path | None, Callable[[Path, argparse.Namespace], str]]] = [
        (args.world, run_world),
        (args.beeline, run_beeline),
        (args.speed, run_speed),
    ]
    for path, fn in runs:
        if path is not None:
            print(fn(path, args) + "\n", flush=True)
    print(json.dumps({"date": time.strftime("%Y-%m-%d"), "threads": args.threads}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
