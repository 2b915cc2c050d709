"""TF-binding benchmark: accuracy vs the motif baselines on the simulator, the real CTCF check, speed.

    python bench/tfbind.py [--workdir DIR] [--preset small] [--filters 32,48,48 --hidden 64]
                           [--epochs 4] [--motif-init] [--no-motif-tracks] [--no-context] [--sequence-warmup N] [--device cpu]
                           [--threads 1] [--skip-ctcf]

1. Simulator (``small`` by default; ``--preset small_real`` / ``tiny_real`` for the worlds whose
   binding cannot be recovered by copying the simulator's rule): ``scregnet simulate``, then per sample ``fragments``,
   ``count`` (the world's peaks), ``cluster``; ``tfbind train`` on the bulk sheet, ``tfbind
   predict`` per sample with the world's motifs; scored by ``scregnet.evaluate.score_tfbind``
   (held-out chromosomes only): the model's and PWM x accessibility's mean AUROC/AUPRC, the ARI
   of k-means on cells x TF activity and on the chromVAR-style deviations; the no-network rule
   (PWM x accessibility x [cluster context > 0], :func:`no_network_rule`); the share of
   (cluster, peak) pairs called bound (probability >= 0.5) against the true share. Also the bulk
   held-out figures over every 200 bp bin of the test chromosomes (the scFAN paper's protocol),
   estimated from the sampled test windows weighted by their inverse sampling rate.
2. Real: CTCF GM12878 top-500 summits vs dinucleotide-shuffled backgrounds, sequence-only model,
   held-out fifth; the JASPAR CTCF PWM and GC content beside it.
3. Speed: training and prediction windows/s and each step's peak memory (``os.wait4`` rusage).

``--speed`` measures only training and prediction windows per CPU second at the paper's network
size and the cost of a genome-wide prediction (``bench/out/tfbind_speed.json``).

``--real`` runs only the real-sequence ChIP-seq benchmark (``bench/tfbind_chip.py``)
on ``encode_chr22``: per TF, summit windows against GC-matched genomic background (and, apart,
dinucleotide shuffles), three contiguous genomic blocks each held out once; the multi-task
sequence-only scFAN trunk beside the best PWM, a 6-mer logistic regression and GC content.
Writes ``bench/out/tfbind_real.json``. ``--real --tune`` instead trains on block 0 and scores
block 1 (the split the hyper-parameters were chosen on; not a reported split).

Existing outputs in ``--workdir`` are reused, so a rerun only redoes what is missing.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCREGNET = [sys.executable, "-m", "scregnet.cli.main"]
#: each step's log lines (stderr) from the runs of this process
LOGS: dict[str, list[str]] = {}


def run(step: str, argv: list[str], timings: dict[str, Any]) -> None:
    """Run one scregnet step; record wall time, its own peak RSS and its log (stderr, also shown)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([*SCREGNET, *argv], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        sys.stderr.write(line)
        lines.append(line)
    _, status, usage = os.wait4(proc.pid, 0)
    LOGS.setdefault(step, []).extend(lines)
    if os.waitstatus_to_exitcode(status) != 0:
        msg = f"{step} failed: {' '.join(argv)}"
        raise SystemExit(msg)
    entry = timings.setdefault(step, {"seconds": 0.0, "peak_rss_mb": 0.0})
    entry["seconds"] += time.perf_counter() - t0
    entry["peak_rss_mb"] = max(entry["peak_rss_mb"], usage.ru_maxrss / 1024)


def _logged_rates(step: str, pattern: str) -> list[float]:
    """Numbers matched by ``pattern`` in the logs of ``step``'s runs."""
    text = "".join(LOGS.get(step, []))
    return [float(m) for m in re.findall(pattern, text)]


def no_network_rule(results: Path, work: Path) -> dict[str, float] | None:
    """The model-free rule PWM x accessibility x [cluster context > 0], scored like the model.

    Per (cluster, peak, TF): the ``pwm_binding`` baseline times 1 where the cluster's TF-activity
    context (``uns['tfbind_cluster_context']``) is positive, else 0. A sigmoid of it with any
    positive slope ranks (cluster, peak) pairs the same, so AUROC / AUPRC need no fitted slope.
    ``None`` when the model was trained without the context term (no cluster contexts stored).
    """
    import anndata as ad

    from scregnet.evaluate.score_tfbind import SUFFIX, score

    out = work / "rule" / "tfbind"
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((results / "tfbind").glob(f"*{SUFFIX}")):
        result = ad.read_h5ad(path)
        if "tfbind_cluster_context" not in result.uns:
            return None
        ctx = np.asarray(result.uns["tfbind_cluster_context"])  # (clusters, tfs)
        u = result.uns["tfbind"]
        u["binding"] = (np.asarray(u["pwm_binding"]) * (ctx[:, None, :] > 0)).astype(np.float32)
        result.write_h5ad(out / path.name)
    report = score(work / "world" / "truth", out.parent)
    assert report is not None
    return {"auroc": report["auroc"], "auprc": report["auprc"]}


def simulator(args: argparse.Namespace, timings: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd
    import torch

    from scregnet.evaluate.score_tfbind import score

    work = Path(args.workdir)
    world = work / "world"
    if not (world / "truth" / "world.json").exists():
        run("simulate", ["simulate", "--outdir", str(world), "--preset", args.preset], timings)
    results = work / "results"
    atac = results / "atac"
    atac.mkdir(parents=True, exist_ok=True)
    common = ["--threads", str(args.threads), "--seed", "0"]
    model_common = ["--threads", str(args.threads), "--seed", str(args.model_seed)]
    sheet = pd.read_csv(world / "samplesheet.csv")
    for sample in sheet["sample"]:
        frag = atac / f"{sample}.fragments.tsv.gz"
        if not frag.exists():
            bam = world / "samples" / f"{sample}.bam"
            run("fragments", ["fragments", "--bam", str(bam), "--out", str(frag), *common], timings)
        counts = atac / f"{sample}.atac.h5ad"
        if not counts.exists():
            argv = ["count", "--fragments", str(frag), "--peaks", str(world / "peaks.bed")]
            argv += ["--genome", str(world / "genome.fa.fai"), "--tss", str(world / "genes.gtf")]
            run("count", [*argv, "--out", str(counts), *common], timings)
        clustered = atac / f"{sample}.clustered.h5ad"
        if not clustered.exists():
            run(
                "cluster",
                ["cluster", "--atac", str(counts), "--out", str(clustered), *common],
                timings,
            )
    model = results / "tfbind" / "model.pt"
    size = ["--filters", args.filters, "--hidden", str(args.hidden)]
    if not model.exists():
        argv = ["tfbind", "train", "--fasta", str(world / "genome.fa")]
        argv += ["--bulk", str(world / "bulk" / "bulk_sheet.csv"), "--out", str(model)]
        argv += [*size, "--epochs", str(args.epochs), "--lr", str(args.lr)]
        argv += ["--batch-size", str(args.batch_size), "--negative-ratio", str(args.negative_ratio)]
        argv += ["--device", args.device, "--motifs", str(world / "motifs.jaspar"), *model_common]
        if args.no_motif_init:
            argv += ["--no-motif-init"]
        if args.no_motif_tracks:
            argv += ["--no-motif-tracks"]
        if args.no_context:
            argv += ["--no-context"]
        if args.sequence_warmup:
            argv += ["--sequence-warmup", str(args.sequence_warmup)]
        run("tfbind train", argv, timings)
    ckpt = torch.load(model, map_location="cpu", weights_only=True)
    called_parts: list[Any] = []
    for sample in sheet["sample"]:
        out = results / "tfbind" / f"{sample}.tfbind.h5ad"
        if not out.exists():
            argv = ["tfbind", "predict", "--model", str(model), "--fasta", str(world / "genome.fa")]
            argv += ["--atac", str(atac / f"{sample}.clustered.h5ad")]
            argv += ["--fragments", str(atac / f"{sample}.fragments.tsv.gz")]
            argv += ["--motifs", str(world / "motifs.jaspar"), "--out", str(out)]
            run("tfbind predict", [*argv, "--device", args.device, *model_common], timings)
        import anndata as ad

        result = ad.read_h5ad(out)
        u = result.uns["tfbind"]
        on_test = u["peaks"]["chrom"].isin(list(u["test_chroms"])).to_numpy()
        called_parts.append((np.asarray(u["binding"])[:, on_test] >= 0.5).ravel())
    report = score(world / "truth", results)
    assert report is not None
    # speeds are in the steps' logs (data files hold no timings); absent when outputs were reused
    train_rates = _logged_rates("tfbind train", r"speed: training ([\d.]+) windows/s")
    predict_rates = _logged_rates("tfbind predict", r"\(([\d.]+) windows/s\)")
    report["train_windows_per_s"] = float(np.mean(train_rates)) if train_rates else float("nan")
    report["predict_windows_per_s"] = (
        float(np.mean(predict_rates)) if predict_rates else float("nan")
    )
    report["bulk_test_auroc"] = float(ckpt["metrics"]["test_mean_auroc"])
    report["bulk_test_auprc"] = float(ckpt["metrics"]["test_mean_auprc"])
    report["bulk_all_bins_auroc"] = float(ckpt["metrics"]["test_mean_auroc_all_bins"])
    report["bulk_all_bins_auprc"] = float(ckpt["metrics"]["test_mean_auprc_all_bins"])
    report["called_share"] = float(np.concatenate(called_parts).mean())
    report["true_bound_share"] = float(
        np.mean([v["positives"] / v["n"] for v in report["per_tf"].values()])
    )
    report["no_network_rule"] = no_network_rule(results, work)
    report["model_config"] = ckpt["model_config"]
    report["best_epoch"] = ckpt["metrics"]["best_epoch"]
    return report


def ctcf(testdata: Path) -> dict[str, float]:
    import pysam
    import torch
    from torch.utils.data import TensorDataset

    from scregnet.stats import auprc, auroc
    from scregnet.tfbind.data import one_hot
    from scregnet.tfbind.motifs import MotifScanner, read_motifs
    from scregnet.tfbind.train import TrainConfig, predict_dataset
    from tfbind_sequences import dinucleotide_shuffle, fit_sequences

    t0 = time.perf_counter()
    fasta = pysam.FastaFile(str(testdata / "tf_peaks" / "Gm12878.CTCF.top500.w200.fa"))
    pos = [fasta.fetch(n).upper() for n in fasta.references]
    rng = np.random.default_rng(0)
    seqs = pos + [dinucleotide_shuffle(s, rng) for s in pos]
    y = np.r_[np.ones(len(pos)), np.zeros(len(pos))].astype(np.float32)
    fold = rng.permutation(len(pos)) % 5
    test = np.r_[fold == 0, fold == 0]
    config = TrainConfig(
        filters=(32, 32, 32), hidden=32, epochs=12, patience=3, batch_size=32, lr=4e-3
    )
    train_seqs = [s for s, t in zip(seqs, test, strict=True) if not t]
    model, _ = fit_sequences(train_seqs, y[~test], config=config, device=torch.device("cpu"))
    x = torch.from_numpy(np.stack([one_hot(s) for s, t in zip(seqs, test, strict=True) if t]))
    held_out = TensorDataset(x, torch.from_numpy(y[test][:, None]))
    probs, _ = predict_dataset(model, held_out, device=torch.device("cpu"))
    motif = next(
        m
        for m in read_motifs(testdata / "motifs" / "JASPAR2022_vertebrates.pfm")
        if m.name.upper() == "CTCF"
    )
    # the same network with the JASPAR CTCF motif-scan track (our extension)
    tracked, _ = fit_sequences(
        train_seqs, y[~test], config=config, device=torch.device("cpu"), motifs=[motif]
    )
    probs_tracked, _ = predict_dataset(tracked, held_out, device=torch.device("cpu"))
    pwm = MotifScanner([motif]).max_scores(x.numpy(), np.full(int(test.sum()), 200))[:, 0]
    gc = np.array([(s.count("G") + s.count("C")) / len(s) for s in seqs])[test]
    return {
        "model_auroc": auroc(y[test], probs[:, 0]),
        "model_auprc": auprc(y[test], probs[:, 0]),
        "tracks_auroc": auroc(y[test], probs_tracked[:, 0]),
        "tracks_auprc": auprc(y[test], probs_tracked[:, 0]),
        "pwm_auroc": auroc(y[test], pwm),
        "pwm_auprc": auprc(y[test], pwm),
        "gc_auroc": auroc(y[test], gc),
        "seconds": time.perf_counter() - t0,
    }


def real_chip(args: argparse.Namespace) -> int:
    """The real-sequence ChIP-seq benchmark (or its tuning split with ``--tune``)."""
    import torch

    import tfbind_chip as cb

    t0 = time.perf_counter()
    torch.manual_seed(0)
    region = cb.read_region(args.testdata / "encode_chr22")
    ws = cb.build_windows(region, window=args.real_window, ratio=args.neg_ratio, min_peaks=50)
    motifs, motif_ids = cb.candidate_motifs(args.testdata, ws.tfs)
    net = cb.NetConfig(
        filters=tuple(int(f) for f in args.real_filters.split(",")),
        dropout=tuple(float(d) for d in args.real_dropout.split(",")),
        kernel=args.real_kernel,
        first_kernel=args.real_first_kernel,
        motif_init=not args.no_real_motif_init,
        motif_tracks=args.real_motif_tracks,
        hidden=args.real_hidden,
        epochs=args.real_epochs,
        lr=args.real_lr,
        jitter=args.real_jitter,
    )
    folds = [((0,), 1)] if args.tune else [((1, 2), 0), ((0, 2), 1), ((0, 1), 2)]
    result = cb.evaluate(region, ws, motifs, motif_ids, folds=folds, net=net, kmer_c=args.kmer_c)
    tfs = cb.summarise(ws, result["per_tf"])
    head = cb.headline(tfs)
    out = {
        "tfs": tfs,
        "split": {
            "blocks": [
                [int(ws.bounds[b]), int(ws.bounds[b + 1])] for b in range(len(ws.bounds) - 1)
            ],
            "folds": [{"train": list(tr), "test": te} for tr, te in folds],
            "aggregation": "per TF: metrics of each held-out block, mean weighted by its positives",
            "tuning": "hyper-parameters chosen on train block 0 -> score block 1 (--tune), not reported",
        },
        "headline": head,
        "negatives": f"{args.neg_ratio} GC-matched genomic windows per positive, same block, no peak of the TF",
        "window": args.real_window,
        "net": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(net).items()},
        "kmer_c": args.kmer_c,
        "timing": {**result["timing"], "total_s": time.perf_counter() - t0},
    }
    name = args.real_out or ("tfbind_real_tune.json" if args.tune else "tfbind_real.json")
    path = REPO / "bench" / "out" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(
        f"\n### Real ChIP-seq (encode_chr22), {'tuning split' if args.tune else 'held-out blocks'}\n"
    )
    print(
        "| TF | peaks | model AUPRC | best PWM | 6-mer LR | GC | model AUROC | PWM AUROC | vs shuffles: model / PWM AUPRC |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for tf, e in sorted(tfs.items(), key=lambda kv: -kv[1]["n_peaks"]):
        print(
            f"| {tf} | {e['n_peaks']} | {e['auprc_model']:.3f} | {e['auprc_pwm']:.3f} | {e['auprc_kmer']:.3f} "
            f"| {e['auprc_gc']:.3f} | {e['auroc_model']:.3f} | {e['auroc_pwm']:.3f} "
            f"| {e['shuffle_auprc_model']:.3f} / {e['shuffle_auprc_pwm']:.3f} |"
        )
    if head["n_tfs"]:
        print(
            f"\nTFs with >= 100 peaks ({head['n_tfs']}): mean AUPRC model {head['mean_auprc_model']:.3f}, "
            f"PWM {head['mean_auprc_pwm']:.3f}, 6-mer {head['mean_auprc_kmer']:.3f}, GC {head['mean_auprc_gc']:.3f}; "
            f"model beats PWM on {head['model_beats_pwm']}/{head['n_tfs']}"
        )
    print(f"wrote {path} ({out['timing']['total_s']:.0f} s)")
    return 0


def paper_speed(args: argparse.Namespace) -> int:
    """Windows per CPU second at the paper's network size (160/240/240, dense 919, 1,000 bp
    windows, DNA + accessibility), training (Adam step, batch 64) and prediction (eval, batch
    256, both strands), one thread; and what a genome-wide prediction would cost."""
    import torch

    from scregnet.tfbind.data import reverse_complement
    from scregnet.tfbind.model import ModelConfig, ScFAN

    torch.manual_seed(0)
    n_tfs = 31
    model = ScFAN(ModelConfig(n_tfs=n_tfs, window=1000, use_accessibility=True))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def timed(step: Any, n_batches: int) -> float:
        step()  # warm-up
        t0 = time.process_time()
        for _ in range(n_batches):
            step()
        return time.process_time() - t0

    x_tr, y_tr = torch.rand(64, 5, 1000), torch.randint(0, 2, (64, n_tfs)).float()

    def train_step() -> None:
        model.train()
        optimiser.zero_grad()
        loss_fn(model(x_tr), y_tr).backward()
        optimiser.step()

    x_pr = torch.rand(256, 5, 1000)

    @torch.no_grad()
    def predict_step() -> None:
        model.eval()
        _ = (model(x_pr) + model(reverse_complement(x_pr))) / 2

    n_train, n_pred = args.speed_batches, max(args.speed_batches // 4, 1)
    train_rate = 64 * n_train / timed(train_step, n_train)
    predict_rate = 256 * n_pred / timed(predict_step, n_pred)
    windows = 150_000 * args.speed_clusters
    out = {
        "network": "paper size: filters 160/240/240 width 8, dense 919, window 1000, 5 input channels",
        "threads": torch.get_num_threads(),
        "device": "cpu",
        "train_windows_per_cpu_s": train_rate,
        "predict_windows_per_cpu_s": predict_rate,
        "genome_wide": {
            "peaks": 150_000,
            "clusters": args.speed_clusters,
            "windows": windows,
            "predict_cpu_hours": windows / predict_rate / 3600,
        },
    }
    path = REPO / "bench" / "out" / "tfbind_speed.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "work" / "tfbind")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--filters", default="32,48,48", help="paper: 160,240,240 (use on a GPU)")
    parser.add_argument("--hidden", type=int, default=64, help="paper: 919")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--no-motif-init", action="store_true", help="ablation: random first-block filters"
    )
    parser.add_argument(
        "--no-motif-tracks", action="store_true", help="ablation: no motif-scan input tracks"
    )
    parser.add_argument(
        "--no-context", action="store_true", help="ablation: no cell-type activity context"
    )
    parser.add_argument("--sequence-warmup", type=int, default=0)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--negative-ratio", type=float, default=2.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--model-seed",
        type=int,
        default=0,
        help="seed of tfbind train and predict (the world and its ATAC steps keep seed 0)",
    )
    parser.add_argument("--skip-ctcf", action="store_true")
    parser.add_argument(
        "--testdata",
        type=Path,
        default=Path(os.environ.get("SCREGNET_TESTDATA", REPO.parent / "shared" / "data")),
    )
    parser.add_argument("--real", action="store_true", help="only the real ChIP-seq benchmark")
    parser.add_argument(
        "--speed", action="store_true", help="only windows/s at the paper's network size"
    )
    parser.add_argument("--speed-batches", type=int, default=8)
    parser.add_argument("--speed-clusters", type=int, default=10)
    parser.add_argument("--tune", action="store_true", help="with --real: the tuning split")
    parser.add_argument("--real-window", type=int, default=200)
    parser.add_argument("--neg-ratio", type=int, default=5)
    parser.add_argument("--real-filters", default="64,64,64")
    parser.add_argument("--real-dropout", default="0.1,0.1,0.3")
    parser.add_argument("--real-kernel", type=int, default=8)
    parser.add_argument("--real-first-kernel", type=int, default=20)
    parser.add_argument(
        "--no-real-motif-init", action="store_true", help="ablation: random first-layer filters"
    )
    parser.add_argument(
        "--real-motif-tracks",
        action="store_true",
        help="our extension: the best PWMs also as fixed scan tracks with a per-TF path",
    )
    parser.add_argument("--real-hidden", type=int, default=64)
    parser.add_argument("--real-epochs", type=int, default=10)
    parser.add_argument("--real-lr", type=float, default=2e-3)
    parser.add_argument("--real-jitter", type=int, default=20)
    parser.add_argument("--kmer-c", type=float, default=0.01)
    parser.add_argument("--real-out", default=None, help="file name under bench/out")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.speed:
        return paper_speed(args)
    if args.real:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        return real_chip(args)
    timings: dict[str, Any] = {}
    sim = simulator(args, timings)
    real = None if args.skip_ctcf else ctcf(args.testdata)
    print(
        f"\n### Simulator `{args.preset}` (held-out chromosomes {', '.join(sim['chromosomes'])}; {sim['n_tfs']} TFs)\n"
    )
    print("| method | mean AUROC | mean AUPRC | cell clustering ARI |")
    print("|---|---|---|---|")
    print(
        f"| scregnet tfbind (filters {args.filters}, dense {args.hidden}) | {sim['auroc']:.3f} | {sim['auprc']:.3f} | {sim['ari']:.3f} |"
    )
    print(
        f"| same, cell score = scFAN activity (top-2 fraction, layers['scfan_activity']) | | | {sim['ari_scfan_activity']:.3f} |"
    )
    print(
        f"| same, cell score = mean binding probability (layers['mean_binding']) | | | {sim['ari_mean_binding']:.3f} |"
    )
    pwm = sim["pwm_baseline"]
    print(f"| PWM log-odds x accessibility | {pwm['auroc']:.3f} | {pwm['auprc']:.3f} | |")
    rule = sim["no_network_rule"]
    if rule is not None:
        print(
            f"| no-network rule: PWM x accessibility x [cluster context > 0] | {rule['auroc']:.3f} | {rule['auprc']:.3f} | |"
        )
    print(f"| chromVAR-style deviations | | | {sim['chromvar_baseline']['ari']:.3f} |")
    print(
        f"\nAUPRC gain over the PWM baseline: {sim['auprc'] - pwm['auprc']:+.3f}; bulk held-out windows: AUROC {sim['bulk_test_auroc']:.3f}, AUPRC {sim['bulk_test_auprc']:.3f}; best epoch {sim['best_epoch']}"
    )
    print(
        f"bulk held-out, every 200 bp bin of the test chromosomes (scFAN protocol, weighted estimate): AUROC {sim['bulk_all_bins_auroc']:.3f}, AUPRC {sim['bulk_all_bins_auprc']:.3f}"
    )
    print(
        f"(cluster, peak) pairs called bound (p >= 0.5): {sim['called_share']:.3f} of all, true share {sim['true_bound_share']:.3f}"
    )
    if real is not None:
        print(
            "\n### Real: CTCF GM12878 top-500 summits vs dinucleotide shuffles (held-out fifth)\n"
        )
        print("| method | AUROC | AUPRC |")
        print("|---|---|---|")
        print(
            f"| sequence-only model (32,32,32 filters) | {real['model_auroc']:.3f} | {real['model_auprc']:.3f} |"
        )
        print(
            f"| same + JASPAR CTCF motif-scan track | {real['tracks_auroc']:.3f} | {real['tracks_auprc']:.3f} |"
        )
        print(
            f"| JASPAR CTCF PWM max log-odds | {real['pwm_auroc']:.3f} | {real['pwm_auprc']:.3f} |"
        )
        print(f"| GC content | {real['gc_auroc']:.3f} | |")
    print("\n### Speed\n")
    print(
        f"training {sim['train_windows_per_s']:.0f} windows/s, prediction {sim['predict_windows_per_s']:.0f} windows/s (device {args.device}, {args.threads} thread(s))\n"
    )
    print("| step | wall s | peak RSS MB |")
    print("|---|---|---|")
    for step, t in timings.items():
        print(f"| {step} | {t['seconds']:.1f} | {t['peak_rss_mb']:.0f} |")
    (Path(args.workdir) / "tfbind_bench.json").write_text(
        json.dumps({"simulator": sim, "ctcf": real, "timings": timings}, indent=1, default=str)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
