"""GRN scoring in shards on a real BEELINE set: one ``scregnet grn score`` against ``--shard K/N``
for every K then ``scregnet grn merge``: wall time and peak memory of each command, and whether
the merged edges and attention are the same bytes as the unsharded ones.

The labels are the true edges of half of the set's regulators (drawn with ``--seed``); every TF of
the set's TF list is scored against every gene. Each command runs as its own process, one thread.

    OMP_NUM_THREADS=1 python bench/grn_shards.py ../shared/data/beeline_real --set Specific/mESC \
        --shards 4 --outdir shards [--train-args "--val-fraction 0 --epochs 3"]

``--synthetic TFSxGENES`` times the merge alone at scale: ``--shards`` shard files of TFS x GENES
pairs with random scores, binding (10 % missing) and two views' attention, merged by ``scregnet
grn merge``.

    python bench/grn_shards.py --synthetic 150x20000 --shards 3 --outdir merge
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grn_beeline import load_set


def run(argv: list[str]) -> tuple[float, float]:
    """Run ``scregnet argv`` as a child process: (wall seconds, peak RSS in GB)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "scregnet.cli.main", *argv, "--quiet"])
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        msg = f"scregnet {' '.join(argv)} exited with {proc.returncode}"
        raise SystemExit(msg)
    return time.perf_counter() - start, usage.ru_maxrss / 1024**2


def inputs(root: Path, name: str, outdir: Path, seed: int) -> tuple[Path, Path, Path]:
    """The set's expression as h5ad, the training labels and the TF list."""
    import anndata as ad

    net, cell = name.split("/")
    real = load_set(root, net, cell)
    adata = ad.AnnData(real.expr)
    adata.var_names = real.genes
    adata.obs_names = [f"cell{i}" for i in range(adata.n_obs)]
    rna = outdir / f"{cell}.h5ad"
    adata.write_h5ad(rna)
    regulators = list(real.regulators)
    np.random.default_rng(seed).shuffle(regulators)
    train = set(regulators[: len(regulators) // 2])
    edges = [(real.genes[t], real.genes[g]) for t, g in sorted(real.true) if t in train]
    labels = outdir / "labels.tsv"
    pd.DataFrame(edges, columns=["tf", "target"]).to_csv(labels, sep="\t", index=False)
    tfs = outdir / "tfs.txt"
    tfs.write_text("\n".join(real.genes[t] for t in real.tf_list) + "\n")
    return rna, labels, tfs


def synthetic_merge(size: str, n_shards: int, outdir: Path, seed: int) -> int:
    """Write ``n_shards`` shards of random scores for TFS x GENES pairs and time their merge."""
    from scregnet.grn.edges import EdgeScores
    from scregnet.grn.shards import write_shard

    n_tfs, n_genes = (int(v) for v in size.lower().split("x"))
    rng = np.random.default_rng(seed)
    genes = [f"GENE{i:05d}" for i in range(n_genes)]
    shards = []
    for k, group in enumerate(np.array_split(np.arange(n_tfs), n_shards), start=1):
        tf = np.repeat(group, n_genes - 1)
        target = np.concatenate([np.delete(np.arange(n_genes), t) for t in group])
        scores = EdgeScores(
            genes,
            ["v1", "v2"],
            tf,
            target,
            rng.random(tf.size),
            rng.dirichlet([1, 1], size=tf.size).astype(np.float32),
            method="target prior",
        )
        binding = rng.random(tf.size).astype(np.float32)
        binding[rng.random(tf.size) < 0.1] = np.nan
        scores.binding = binding
        shards.append(outdir / f"grn.shard{k}.tsv")
        write_shard(scores, shards[-1], shard=(k, n_shards), model="0" * 16, tfs="0" * 16)
    merged = outdir / "merged_edges.tsv"
    wall, peak = run(["grn", "merge", "--shards", *map(str, shards), "--out", str(merged)])
    n_pairs = sum(1 for _ in merged.open()) - 1
    print(f"merge of {n_shards} shards, {n_pairs:,} pairs: {wall:.1f} s, peak {peak:.2f} GB")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, nargs="?", help="BEELINE real-data folder")
    parser.add_argument("--synthetic", metavar="TFSxGENES", help="time the merge of random shards")
    parser.add_argument("--set", default="Specific/mESC", help="truth/cell type")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--train-args", default="", help="extra `grn train` flags")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--outdir", type=Path, required=True)
    args = parser.parse_args(argv)
    out = args.outdir
    out.mkdir(parents=True, exist_ok=True)
    if args.synthetic:
        return synthetic_merge(args.synthetic, args.shards, out, args.seed)
    if args.root is None:
        parser.error("give the BEELINE real-data folder, or --synthetic")
    rna, labels, tfs = inputs(args.root, args.set, out, args.seed)
    model = out / "grn_model.pt"
    common = ["--threads", "1", "--seed", str(args.seed)]
    rows = []
    train = ["grn", "train", "--rna", str(rna), "--labels", str(labels), "--out", str(model)]
    rows.append(("train", *run([*train, *common, *shlex.split(args.train_args)])))
    score = ["grn", "score", "--model", str(model), "--rna", str(rna), "--tfs", str(tfs)]
    whole = out / "whole_edges.tsv"
    rows.append(("score, every TF", *run([*score, "--out", str(whole), *common])))
    shards = [out / f"shard{k}.tsv" for k in range(1, args.shards + 1)]
    for k, shard in enumerate(shards, 1):
        flags = ["--shard", f"{k}/{args.shards}", "--out", str(shard), *common]
        rows.append((f"score, shard {k}/{args.shards}", *run([*score, *flags])))
    merged = out / "merged_edges.tsv"
    rows.append(
        ("merge", *run(["grn", "merge", "--shards", *map(str, shards), "--out", str(merged)]))
    )
    n_pairs = sum(1 for _ in whole.open()) - 1
    method = pd.read_csv(whole, sep="\t", nrows=1).method[0]
    print(f"{args.set}: {n_pairs:,} pairs; {method}")
    print("| command | wall s | peak GB |\n|---|---|---|")
    for name, wall, peak in rows:
        print(f"| {name} | {wall:.1f} | {peak:.2f} |")
    same = [
        merged.read_bytes() == whole.read_bytes(),
        (out / "merged_attention.tsv").read_bytes() == (out / "whole_attention.tsv").read_bytes(),
    ]
    print(f"merged edges identical: {same[0]}; attention identical: {same[1]}")
    return 0 if all(same) else 1


if __name__ == "__main__":
    raise SystemExit(main())
