"""GRN on real BEELINE data: scregnet vs the baselines a supervised user gets, held-out TFs.

Data: ``../shared/data/beeline_real`` (BEELINE's hHEP, mESC and mHSC-GM "TFs+500" sets, each with
cell-type-specific ChIP-seq, non-specific ChIP-seq and STRING truths; README there); every
``<truth>/<cell>/`` folder under ``--root`` with an expression file is a set. Protocol:
the regulators (TFs with at least one true edge) are split at random into 2 folds, 3 times
(split seeds 0, 1, 2). Each model is given the training fold's TFs x every gene as labels (their
true edges positive, all other pairs negative: ``scregnet grn train --labels`` with a positives list)
and scores the held-out fold's TFs x every gene (self pairs excluded); every method scores
exactly those pairs. Metrics: held-out AUPRC ratio and EPR (``scregnet.stats``, the
BEELINE definitions the scorer uses), mean over the 6 folds.

Methods, all in the same run:

- ``|Spearman|``, ``|Pearson|`` over all cells;
- ``target prior``: fraction of the training TFs that regulate the target, ties broken by
  |Pearson|; ``target prior x |r|``: that fraction times |Pearson|;
- ``label structure``: the reverse edge's training label (the target is a training TF that
  regulates the held-out TF), then the target prior x the TF's own in-degree among the training
  TFs x |Pearson| (``grn_baselines.label_baselines``); ``label triangles``: the same with
  the shared regulators (of the training TFs regulating the held-out TF, the fraction that
  regulate the target) ranked between the two; with ``--unlabelled-targets`` only the
  pairs whose target is not a training TF are scored, so no reverse label exists;
- ``GRNBoost2`` / ``GENIE3``: arboreto's per-target regression (``arboreto.core.
  infer_partial_network``; GENIE3 with 100 trees) when arboreto imports, else the scikit-learn
  equivalents of ``grn_baselines`` (the table then names them ``(sklearn)``); regulators
  are every TF of the set's TF list, computed once per cell type (the three truths share the
  expression);
- ``DeepMCL (published)``: the network without pair or label features (``--no-pair-features``);
- ``scregnet``: the default model (expression pair features, label features, held-out selection
  of the read-out and of the network on the training TFs only) and ``scregnet, gate 0``: the same
  trained model with the network's gate set to 0 (its skip read-out alone). With
  ``--transfer-from SET`` scregnet's network is first trained on every regulator of SET and each
  fold's networks start from it (transfer across data sets).

With ``--regulators N`` each set keeps ``N`` regulators drawn at random (one set per ``--draws``
seed) and only their true edges: few labelled TFs, the case of a user with ChIP-seq for a handful
of regulators (the protocol is the same; a 2-fold split of 4 regulators trains on 2).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/grn_real.py --outdir /tmp/grn_real
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).parent))
from grn import metrics, tree_baseline
from grn_baselines import LABEL_STRUCTURE, LABEL_TRIANGLES, abs_pearson, label_baselines
from grn_beeline import RealSet, find_sets, load_set, subsample_regulators, tf_folds, tf_pairs
from scregnet.errors import InputError
from scregnet.grn.config import Sampling
from scregnet.grn.data import ExpressionViews, PairLabels
from scregnet.grn.images import ImageBuilder
from scregnet.grn.model import GRNConfig
from scregnet.grn.train import TrainConfig, fit, predict_pairs
from scregnet.seed import seed_everything
from scregnet.stats import abs_spearman

log = logging.getLogger("bench.grn_real")

DEFAULT_ROOT = (
    Path(
        os.environ.get("SCREGNET_TESTDATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    / "beeline_real"
)


def tree_scores(
    sets: list[RealSet], outdir: Path, *, skip: bool, cached_only: bool = False
) -> dict[str, dict[str, NDArray[np.float64]]]:
    """Per set, GRNBoost2 / GENIE3 ``(genes, genes)`` scores (rows: regulators), computed once per
    cell type on the union of its sets' TF lists and cached in ``outdir``."""
    out: dict[str, dict[str, NDArray[np.float64]]] = {s.name: {} for s in sets}
    if skip:
        return out
    try:
        import arboreto  # noqa: F401

        suffix = ""
    except ImportError:
        suffix = " (sklearn)"
    for cell in dict.fromkeys(s.cell for s in sets):
        group = [s for s in sets if s.cell == cell]
        ref = group[0]
        tf_names = sorted({s.genes[t] for s in group for t in s.tf_list})
        index = {g: i for i, g in enumerate(ref.genes)}
        tfs = [index[t] for t in tf_names if t in index]
        for method in ("GRNBoost2", "GENIE3"):
            cache = outdir / f"trees_{cell}_{method}.npz"
            if cache.exists():
                matrix = np.load(cache)["scores"]
            elif cached_only:
                log.warning("%s %s: no cached scores in %s, left out", cell, method, outdir)
                continue
            else:
                matrix = tree_baseline(
                    ref.expr, tfs, ref.genes, method, list(range(len(ref.genes)))
                )
                np.savez_compressed(cache, scores=matrix)
            for s in group:
                # map rows (regulators) and columns (genes) onto this set's gene order by symbol
                full = np.zeros((len(s.genes), len(s.genes)))
                cols = np.asarray([index.get(g, -1) for g in s.genes])
                row_of = {ref.genes[t]: i for i, t in enumerate(tfs)}
                for gi, g in enumerate(s.genes):
                    r = row_of.get(g)
                    if r is not None:
                        full[gi, cols >= 0] = matrix[r, cols[cols >= 0]]
                out[s.name][method + suffix] = full
    return out


def correlation_matrices(expr: NDArray[np.float32]) -> dict[str, NDArray[np.float64]]:
    return {
        "|Spearman|": abs_spearman(expr, list(range(expr.shape[1]))),
        "|Pearson|": abs_pearson(expr),
    }


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The training settings of every fit of a run (folds and transfer source alike)."""
    return TrainConfig(
        epochs=args.epochs,
        max_pairs_per_epoch=args.max_pairs,
        network=not args.readout_only,
        pos_weight=args.pos_weight,
        sampling=args.sampling,
    )


def run_models(
    data: RealSet, train: PairLabels, test: PairLabels, *, seed: int, args: argparse.Namespace
) -> tuple[dict[str, NDArray[np.float64]], dict[str, str]]:
    views = ExpressionViews(list(data.genes), ["all"], [data.expr])
    scores: dict[str, NDArray[np.float64]] = {}
    chosen: dict[str, str] = {}
    models = [("scregnet", GRNConfig()), ("DeepMCL (published)", GRNConfig(n_pair_features=0))]
    if args.readout_only:
        models = [("scregnet read-out", GRNConfig())]
    for name, model_config in models:
        if name.startswith("DeepMCL") and (
            seed not in args.deepmcl_splits or len(test) > args.deepmcl_max_test
        ):
            continue
        rng = seed_everything(seed)
        builder = ImageBuilder.for_model(
            views, model_config, seed=seed, device=torch.device(args.device)
        )
        t0 = time.perf_counter()
        result = fit(
            builder,
            train,
            model_config=model_config,
            config=train_config(args),
            rng=rng,
            init_network=args.init_network if name == "scregnet" else None,
        )
        scores[name] = predict_pairs(result.model, builder, test)
        sel = result.selection
        if result.model.gate is not None and not args.readout_only:
            off = copy.deepcopy(result.model)
            assert off.gate is not None
            with torch.no_grad():
                off.gate.zero_()
            scores[name + ", gate 0"] = predict_pairs(off, builder, test)
            chosen[name] = (
                f"skip {sel['readout']}, network "
                f"{'epoch ' + str(sel['network_epoch']) if sel['network'] else 'off'}"
                f" (gain {sel['network_gain']:.4f}, SE {sel['network_gain_se']:.4f})"
            )
        elif args.readout_only:
            chosen[name] = f"skip {sel['readout']}"
        else:
            chosen[name] = f"{sel['mode']}, epoch {result.best_epoch}"
        log.info(
            "%s split %d %s: %.0f s (%s)",
            data.name,
            seed,
            name,
            time.perf_counter() - t0,
            chosen[name],
        )
    return scores, chosen


def pretrained_network(data: RealSet, args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """The state of scregnet's network trained on every regulator of ``data`` (the source of a
    transfer), with the fold runs' training settings."""
    model_config = GRNConfig()
    views = ExpressionViews(list(data.genes), ["all"], [data.expr])
    t0 = time.perf_counter()
    result = fit(
        ImageBuilder.for_model(views, model_config, seed=0, device=torch.device(args.device)),
        tf_pairs(list(data.regulators), len(data.genes), data.true),
        model_config=model_config,
        config=replace(train_config(args), network=True),
        rng=seed_everything(0),
    )
    log.info("%s: network trained for transfer in %.0f s", data.name, time.perf_counter() - t0)
    return {k: v.detach().clone() for k, v in result.model.state_dict().items()}


def run_set(
    data: RealSet,
    trees: dict[str, NDArray[np.float64]],
    args: argparse.Namespace,
    rows_path: Path,
) -> None:
    corr = correlation_matrices(data.expr)
    for seed in args.splits:
        for f, test_tfs in enumerate(tf_folds(data.regulators, seed)):
            train_tfs = [t for t in data.regulators if t not in test_tfs]
            train = tf_pairs(train_tfs, len(data.genes), data.true)
            test = tf_pairs(test_tfs, len(data.genes), data.true)
            if args.unlabelled_targets:
                test = test.subset(~np.isin(test.target, train_tfs))
            scores = {name: m[test.tf, test.target] for name, m in {**corr, **trees}.items()}
            r = corr["|Pearson|"][test.tf, test.target]
            scores |= label_baselines(train.tf, train.target, train.label, test.tf, test.target, r)
            chosen: dict[str, str] = {}
            if not args.baselines_only:
                model_scores, chosen = run_models(data, train, test, seed=seed, args=args)
                scores |= model_scores
            rows = [
                {
                    "set": data.name,
                    "split": seed,
                    "fold": f,
                    "method": name,
                    **metrics(test.label, s),
                    "choice": chosen.get(name, ""),
                }
                for name, s in scores.items()
            ]
            frame = pd.DataFrame(rows)
            frame.to_csv(rows_path, sep="\t", index=False, mode="a", header=not rows_path.exists())
            log.info(
                "%s split %d fold %d: %s",
                data.name,
                seed,
                f,
                ", ".join(f"{r['method']} {r['auprc_ratio']:.2f}/{r['epr']:.2f}" for r in rows),
            )


def _ratio(value: float, base: float) -> float:
    """``value / base``; NaN (left out of means and minima) where ``base`` is 0, as the EPR of
    every ranking can be on a fold with few true edges."""
    return float(value / base) if base > 0 else float("nan")


def _undefined(ratios: dict[str, list[float]]) -> str:
    """A note of the sets whose ratio is undefined (zero denominator), if any."""
    n = {k: int(np.isnan(v).sum()) for k, v in ratios.items()}
    if not any(n.values()):
        return ""
    return f" ({n['auprc_ratio']} / {n['epr']} set(s) with a zero denominator left out)"


def summary(rows: pd.DataFrame) -> str:
    """Method x set table of mean held-out AUPRC ratio / EPR, and scregnet / best baseline."""
    rows = rows.drop_duplicates(["set", "split", "fold", "method"])  # baselines of several runs
    mean = rows.groupby(["set", "method"])[["auprc_ratio", "epr"]].mean()
    sets = list(dict.fromkeys(rows.set))
    methods = list(dict.fromkeys(rows.method))
    lines = ["| method | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    notes: list[str] = []
    for m in methods:
        cells = []
        for s in sets:
            if (s, m) in mean.index:
                r = mean.loc[(s, m)]
                cells.append(f"{r.auprc_ratio:.2f} / {r.epr:.2f}")
            else:
                cells.append("-")
        lines.append(f"| {m.replace('|', chr(92) + '|')} | " + " | ".join(cells) + " |")
    # every method but scregnet's own rows is a baseline (DeepMCL as published included); the
    # ratio is given against the baselines without and with the label structure
    every = [m for m in methods if not m.startswith("scregnet")]
    comparisons = [
        ("best baseline", [m for m in every if m not in (LABEL_STRUCTURE, LABEL_TRIANGLES)])
    ]
    if LABEL_STRUCTURE in every:
        comparisons.append(("best baseline with label structure", every))
    for model in ("scregnet", "scregnet read-out"):
        done = [s for s in sets if (s, model) in mean.index]
        if not done:
            continue
        for against, baselines in comparisons:
            ratios: dict[str, list[float]] = {"auprc_ratio": [], "epr": []}
            gate: dict[str, list[float]] = {"auprc_ratio": [], "epr": []}
            for s in done:
                # every method averaged over exactly the folds this model ran on
                keys = rows.loc[(rows.set == s) & (rows.method == model), ["split", "fold"]]
                same = rows[rows.set == s].merge(keys, on=["split", "fold"])
                m = same.groupby("method")[["auprc_ratio", "epr"]].mean()
                for k in ratios:
                    best = max(m.loc[b, k] for b in baselines if b in m.index)
                    ratios[k].append(_ratio(m.loc[model, k], best))
                    if model + ", gate 0" in m.index:
                        gate[k].append(_ratio(m.loc[model, k], m.loc[model + ", gate 0", k]))
            cells = iter(
                f"{a:.2f} / {e:.2f}"
                for a, e in zip(ratios["auprc_ratio"], ratios["epr"], strict=True)
            )
            lines.append(
                f"| {model} / {against} (same folds) | "
                + " | ".join(next(cells) if s in done else "-" for s in sets)
                + " |"
            )
            notes.append(
                f"{model} / {against} over {len(done)} set(s): mean "
                f"{np.nanmean(ratios['auprc_ratio']):.3f} (AUPRC ratio), "
                f"{np.nanmean(ratios['epr']):.3f} (EPR); minimum "
                f"{np.nanmin(ratios['auprc_ratio']):.3f} / {np.nanmin(ratios['epr']):.3f}"
                + _undefined(ratios)
                + "."
            )
            if gate["auprc_ratio"] and against == "best baseline":
                notes.append(
                    f"{model} / the same with gate 0: mean {np.nanmean(gate['auprc_ratio']):.3f} "
                    f"(AUPRC ratio), {np.nanmean(gate['epr']):.3f} (EPR)" + _undefined(gate) + "."
                )
    lines += ["", *notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--sets", nargs="*", default=None, help="e.g. 'hHEP Specific'")
    parser.add_argument("--splits", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument(
        "--deepmcl-splits", type=int, nargs="*", default=[0, 1, 2], help="splits DeepMCL runs on"
    )
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument(
        "--deepmcl-max-test",
        type=int,
        default=10**9,
        help="run DeepMCL only on folds with at most this many held-out pairs",
    )
    parser.add_argument(
        "--readout-only",
        action="store_true",
        help="scregnet without the network (its held-out selection of the read-out only); "
        "reported as 'scregnet read-out'; DeepMCL is not run",
    )
    parser.add_argument(
        "--max-pairs",
        type=int,
        default=TrainConfig.max_pairs_per_epoch,
        help="training pairs per epoch",
    )
    parser.add_argument(
        "--pos-weight", type=float, default=TrainConfig.pos_weight, help="positive-class weight"
    )
    parser.add_argument(
        "--sampling",
        choices=get_args(Sampling),
        default=TrainConfig.sampling,
        help="pairs per epoch",
    )
    parser.add_argument("--no-trees", action="store_true")
    parser.add_argument(
        "--trees-dir", type=Path, default=None, help="use only the tree scores cached there"
    )
    parser.add_argument(
        "--also",
        type=Path,
        nargs="*",
        default=[],
        help="fold TSVs of other runs (same splits) to add",
    )
    parser.add_argument("--summary-only", action="store_true", help="tabulate --also, run nothing")
    parser.add_argument("--baselines-only", action="store_true")
    parser.add_argument(
        "--unlabelled-targets",
        action="store_true",
        help="score only the held-out pairs whose target is not a training TF (no reverse "
        "label exists for them)",
    )
    parser.add_argument(
        "--transfer-from",
        default=None,
        metavar="SET",
        help="train scregnet's network on every TF of this set first (e.g. 'hHEP Specific'), "
        "then start each fold's network from it (transfer across data sets)",
    )
    parser.add_argument(
        "--regulators",
        type=int,
        default=0,
        metavar="N",
        help="keep N regulators of each set, drawn at random (with their true edges only): "
        "few labelled TFs; one set per --draws seed",
    )
    parser.add_argument(
        "--draws", type=int, nargs="*", default=[0], help="seeds of the --regulators draws"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="scregnet's device: cpu, cuda or cuda:N")
    parser.add_argument("--outdir", type=Path, default=Path("grn_real"))
    args = parser.parse_args(argv)
    if args.summary_only:
        print(summary(pd.concat([pd.read_csv(p, sep="\t") for p in args.also])))
        return 0
    named = {f"{c} {n}": (n, c) for n, c in find_sets(args.root)}
    unknown = [n for n in args.sets or [] if n not in named]
    if unknown:
        parser.error(f"--sets: no set {', '.join(map(repr, unknown))} ({', '.join(named)})")
    if args.transfer_from:
        if args.transfer_from not in named:
            parser.error(f"--transfer-from: no set {args.transfer_from!r} ({', '.join(named)})")
        source_cell = named[args.transfer_from][1]
        same = [n for n in (args.sets or named) if named.get(n, ("", ""))[1] == source_cell]
        if same:
            # the source's labels include the held-out TFs of any set on the same cells
            parser.error(
                f"--transfer-from {args.transfer_from!r} shares its cells with {', '.join(same)}: "
                "the held-out TFs' labels would reach the network; transfer from another cell type"
            )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("scregnet").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    args.outdir.mkdir(parents=True, exist_ok=True)
    sets = [load_set(args.root, *named[name]) for name in args.sets or named]
    if args.regulators:
        try:
            sets = [subsample_regulators(s, args.regulators, d) for s in sets for d in args.draws]
        except InputError as err:
            parser.error(f"--regulators: {err}")
    sets.sort(key=lambda s: len(s.regulators) * len(s.genes))  # small sets first
    for s in sets:
        log.info(
            "%s: %d genes x %d cells, %d regulators, %d true edges",
            s.name,
            len(s.genes),
            s.expr.shape[0],
            len(s.regulators),
            len(s.true),
        )
    trees = tree_scores(
        sets,
        args.trees_dir or args.outdir,
        skip=args.no_trees,
        cached_only=args.trees_dir is not None,
    )
    args.init_network = None
    if args.transfer_from:
        args.init_network = pretrained_network(
            load_set(args.root, *named[args.transfer_from]), args
        )
    rows_path = args.outdir / "grn_real_folds.tsv"
    rows_path.unlink(missing_ok=True)
    for s in sets:
        run_set(s, trees[s.name], args, rows_path)
    rows = pd.concat([pd.read_csv(p, sep="\t") for p in [rows_path, *args.also]])
    rows = rows.drop_duplicates(["set", "split", "fold", "method"])
    print(summary(rows))
    print(
        json.dumps(
            {"date": time.strftime("%Y-%m-%d"), "threads": args.threads, "epochs": args.epochs}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
