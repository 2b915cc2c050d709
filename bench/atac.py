"""Benchmark stage 1 (ATAC counts) against its peers; prints markdown tables.

``count``: fragments/s of ``scregnet count`` (peaks + tiles + QC, TSS enrichment included when a
GTF is given) against SnapATAC2 (``pp.import_fragments`` + ``pp.add_tile_matrix`` +
``pp.make_peak_matrix``) and the floor ``zcat F > /dev/null``.
``fragments``: reads/s of ``scregnet fragments`` against sinto's Python API
(``sinto.fragments.fragments``) and SnapATAC2's ``pp.make_fragment_file``.

Every measurement runs in its own subprocess (``python bench/atac.py _worker ...``) which reports
wall time, CPU time (its own + its children's) and peak RSS (the larger of itself and its
children), so numbers are not polluted by the parent. Peers that are not installed are reported
as such. Data sets: a simulator world (``--world DIR``; ``--simulate large`` makes one), the real
fragments in ../shared/data, and ``--synthetic N`` (N fragments, 5,000 cells + background
barcodes, 10 chromosomes of 50 Mb) for the scaling / RSS target.

    python bench/atac.py --world /tmp/world --synthetic 10000000 --tile-size 500
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
DATA = Path(os.environ.get("SCREGNET_TESTDATA", REPO.parent / "shared" / "data"))


# --- worker side ------------------------------------------------------------------------------


def _usage() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime, max(
        me.ru_maxrss, kids.ru_maxrss
    ) / 1024


def worker(task: str, args: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if task == "zcat":
        with open(os.devnull, "wb") as null:
            subprocess.run(["zcat", args["fragments"]], stdout=null, check=True)
    elif task == "count":
        from scregnet.atac.count import count_fragments
        from scregnet.io.bed import read_bed
        from scregnet.io.genome import read_chrom_sizes
        from scregnet.io.gtf import read_tss

        res = count_fragments(
            args["fragments"],
            read_bed(args["peaks"]),
            read_chrom_sizes(args["genome"]),
            tss=read_tss(args["gtf"]) if args.get("gtf") else None,
            tile_size=args["tile_size"],
            min_fragments=args["min_fragments"],
            threads=args["threads"],
        )
        out["cells"] = res.adata.n_obs
        out["peak_nnz"] = int(res.adata.X.nnz)
        out["tile_nnz"] = int(res.adata.obsm["tiles"].nnz)
    elif task == "snapatac2_count":
        import snapatac2 as snap

        from scregnet.io.genome import read_chrom_sizes

        sizes = read_chrom_sizes(args["genome"])
        adata = snap.pp.import_fragments(
            args["fragments"],
            chrom_sizes=sizes,
            file=None,
            min_num_fragments=args["min_fragments"],
            sorted_by_barcode=False,
            n_jobs=args["threads"],
        )
        snap.pp.add_tile_matrix(
            adata, bin_size=args["tile_size"], exclude_chroms=None, n_jobs=args["threads"]
        )
        peaks = snap.pp.make_peak_matrix(adata, peak_file=args["peaks"])
        out["cells"] = adata.n_obs
        out["peak_nnz"] = int(peaks.X.nnz)
        out["tile_nnz"] = int(adata.X.nnz)
    elif task == "fragments":
        from scregnet.atac.fragments import bam_to_fragments

        res = bam_to_fragments(args["bam"], args["out"], threads=args["threads"])
        out["fragments"] = res.stats.fragments
        out["reads"] = res.stats.reads
    elif task == "sinto":
        from sinto.fragments import fragments

        fragments(
            args["bam"], args["out"], min_mapq=30, nproc=args["threads"], collapse_within=True
        )
    elif task == "snapatac2_fragments":
        import snapatac2 as snap

        snap.pp.make_fragment_file(args["bam"], args["out"], barcode_tag="CB", min_mapq=30)
    else:
        raise SystemExit(f"unknown task {task}")
    return out


# --- parent side ------------------------------------------------------------------------------


def measure(task: str, **args: Any) -> dict[str, Any]:
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(HERE), "_worker", task, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"task": task, "error": tail[:120]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(task=task, wall=wall)
    return result


def measure_rounds(
    jobs: list[tuple[str, str, dict[str, Any]]], repeat: int
) -> list[tuple[str, dict[str, Any]]]:
    """Run ``(label, task, args)`` jobs ``repeat`` times interleaved (tool A, B, C, A, B, C, ...)
    so that every tool sees the same mix of machine load; keep each tool's best wall and best CPU
    time (and the largest peak RSS)."""
    best: dict[str, dict[str, Any]] = {}
    for _ in range(repeat):
        for label, task, args in jobs:
            r = measure(task, **args)
            old = best.get(label)
            if old is None or "error" in r:  # an error in any round is the tool's result
                best[label] = r
                continue
            if "error" in old:
                continue
            old["wall"] = min(old["wall"], r["wall"])
            old["cpu"] = min(old["cpu"], r["cpu"])
            old["rss"] = max(old["rss"], r["rss"])
    return [(label, best[label]) for label, _, _ in jobs]


def has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def count_lines(path: Path) -> int:
    import gzip

    with gzip.open(path, "rb") as handle:
        return sum(1 for line in handle if not line.startswith(b"#"))


def bam_reads(path: Path) -> int:
    import pysam

    return sum(s.mapped + s.unmapped for s in pysam.AlignmentFile(str(path)).get_index_statistics())


def synthetic(n: int, outdir: Path, seed: int = 0) -> dict[str, Path]:
    """A coordinate-sorted fragments file with ``n`` fragments, 5,000 cells and background."""
    import numpy as np
    import pysam

    rng = np.random.default_rng(seed)
    n_chrom, length, n_cells = 10, 50_000_000, 5000
    letters = np.array(list("ACGT"))
    barcodes = np.array(["".join(rng.choice(letters, 16)) + "-1" for _ in range(3 * n_cells)])
    weight = np.concatenate([rng.lognormal(0, 0.4, n_cells), np.full(2 * n_cells, 0.01)])
    weight /= weight.sum()
    plain = outdir / "synthetic.tsv"
    with plain.open("w") as handle:
        for c in range(n_chrom):
            m = n // n_chrom
            start = np.sort(rng.integers(0, length - 1000, m))
            size = np.where(
                rng.random(m) < 0.6, rng.integers(30, 147, m), rng.integers(147, 700, m)
            )
            bc = barcodes[rng.choice(barcodes.size, m, p=weight)]
            dup = rng.geometric(0.7, m)
            handle.writelines(
                f"chr{c + 1}\t{s}\t{s + z}\t{b}\t{d}\n"
                for s, z, b, d in zip(
                    start.tolist(), size.tolist(), bc.tolist(), dup.tolist(), strict=True
                )
            )
    frags = outdir / "synthetic.tsv.gz"
    pysam.tabix_compress(str(plain), str(frags), force=True)
    plain.unlink()
    pysam.tabix_index(str(frags), preset="bed", force=True)
    genome = outdir / "synthetic.sizes"
    genome.write_text("".join(f"chr{c + 1}\t{length}\n" for c in range(n_chrom)))
    peaks = outdir / "synthetic.peaks.bed"
    with peaks.open("w") as handle:
        for c in range(n_chrom):
            for s in np.sort(rng.choice(length // 1000, 5000, replace=False)) * 1000:
                handle.write(f"chr{c + 1}\t{s}\t{s + 500}\n")
    return {"fragments": frags, "genome": genome, "peaks": peaks}


def sorted_copy(src: Path, dst: Path) -> Path:
    """A position-sorted, bgzipped + indexed copy (the shipped real files are sorted by barcode)."""
    import pandas as pd
    import pysam

    if not dst.exists():
        frame = pd.read_csv(src, sep="\t", header=None, comment="#")
        frame = frame.sort_values([0, 1, 2, 3], kind="stable")
        plain = dst.with_suffix("")
        frame.to_csv(plain, sep="\t", header=False, index=False)
        pysam.tabix_compress(str(plain), str(dst), force=True)
        plain.unlink()
        pysam.tabix_index(str(dst), preset="bed", force=True)
    return dst


def table(title: str, unit: str, rows: list[tuple[str, dict[str, Any]]], n: int) -> str:
    lines = [
        f"\n**{title}** ({n:,} {unit})\n",
        f"| tool | wall s | CPU s | {unit}/s (wall) | {unit}/CPU-s | peak RSS MB | notes |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in rows:
        if "error" in r:
            lines.append(f"| {name} | - | - | - | - | - | {r['error']} |")
            continue
        notes = ", ".join(
            f"{k} {v:,}"
            for k, v in r.items()
            if k in ("cells", "peak_nnz", "tile_nnz", "fragments")
        )
        lines.append(
            f"| {name} | {r['wall']:.1f} | {r['cpu']:.1f} | {n / r['wall']:,.0f} | {n / r['cpu']:,.0f} | {r['rss']:.0f} | {notes} |"
        )
    return "\n".join(lines)


def bench_count(
    label: str,
    d: dict[str, Path],
    tile_size: int,
    threads: int,
    min_fragments: int,
    repeat: int = 1,
) -> str:
    n = count_lines(d["fragments"])
    common = {
        "fragments": str(d["fragments"]),
        "peaks": str(d["peaks"]),
        "genome": str(d["genome"]),
        "tile_size": tile_size,
        "min_fragments": min_fragments,
        "threads": threads,
    }
    jobs: list[tuple[str, str, dict[str, Any]]] = [
        ("zcat (floor)", "zcat", {"fragments": str(d["fragments"])}),
        ("scregnet count", "count", common),
    ]
    if d.get("gtf"):
        jobs.append(("scregnet count + TSS enrichment", "count", {**common, "gtf": str(d["gtf"])}))
    if has("snapatac2"):
        jobs.append(("SnapATAC2 import + tiles + peaks", "snapatac2_count", common))
    rows = measure_rounds(jobs, repeat)
    if not has("snapatac2"):
        rows.append(("SnapATAC2", {"error": "not installed"}))
    return table(f"count: {label}, {tile_size} bp tiles", "fragments", rows, n)


def first_contigs(bam: Path, n: int, out: Path) -> Path:
    """A coordinate-sorted, indexed BAM of the reads on the first ``n`` contigs of ``bam``."""
    import pysam

    if not out.exists():
        with pysam.AlignmentFile(str(bam)) as src:
            contigs = list(src.references[:n])
        pysam.view("-b", "-o", str(out), str(bam), *contigs, catch_stdout=False)
        pysam.index(str(out))
    return out


def bench_fragments(label: str, bam: Path, threads: int, repeat: int = 1) -> str:
    n = bam_reads(bam)
    with tempfile.TemporaryDirectory(dir=REPO / "bench") as tmp:
        jobs: list[tuple[str, str, dict[str, Any]]] = [
            (
                "scregnet fragments",
                "fragments",
                {"bam": str(bam), "out": f"{tmp}/a.tsv.gz", "threads": threads},
            )
        ]
        if has("sinto"):
            jobs.append(
                (
                    "sinto (Python API)",
                    "sinto",
                    {"bam": str(bam), "out": f"{tmp}/b.tsv", "threads": threads},
                )
            )
        if has("snapatac2"):
            jobs.append(
                (
                    "SnapATAC2 make_fragment_file",
                    "snapatac2_fragments",
                    {"bam": str(bam), "out": f"{tmp}/c.tsv.gz"},
                )
            )
        rows = measure_rounds(jobs, repeat)
    return table(f"fragments: {label}, {threads} thread(s)", "reads", rows, n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--world", type=Path, help="a simulator world directory")
    parser.add_argument(
        "--simulate", choices=["small", "large"], help="simulate a world into bench/out first"
    )
    parser.add_argument(
        "--synthetic", type=int, default=0, help="also a synthetic file of N fragments"
    )
    parser.add_argument("--real", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--tile-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every tool this many times, interleaved, and keep its best times",
    )
    parser.add_argument(
        "--fragments-contigs",
        type=int,
        default=0,
        help="benchmark `fragments` on the reads of the world's first N contigs (0: all)",
    )
    parser.add_argument(
        "--skip-fragments",
        action="store_true",
        help="only the `count` tables (skip the BAM -> fragments comparison)",
    )
    args = parser.parse_args(argv)
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"# ATAC benchmark ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})"
    )
    world = args.world
    if args.simulate:
        from scregnet.simulate import simulate

        world = out / args.simulate
        if not (world / "samplesheet.csv").exists():
            simulate(world, preset=args.simulate, seed=0)
    if world is not None:
        import pandas as pd

        sheet = pd.read_csv(world / "samplesheet.csv")
        bam = world / sheet["bam"].iloc[0]
        what = f"simulator {world.name} {sheet['sample'].iloc[0]}"
        bench_bam = bam
        if args.fragments_contigs:
            bench_bam = first_contigs(
                bam, args.fragments_contigs, out / f"{world.name}.first{args.fragments_contigs}.bam"
            )
            what += f", first {args.fragments_contigs} contig(s)"
        if not args.skip_fragments:
            print(bench_fragments(what, bench_bam, args.threads, args.repeat), flush=True)
        frags = out / f"{world.name}.{sheet['sample'].iloc[0]}.fragments.tsv.gz"
        if not frags.exists():
            from scregnet.atac.fragments import bam_to_fragments

            bam_to_fragments(bam, frags, threads=max(args.threads, 2))
        d = {
            "fragments": frags,
            "peaks": world / "peaks.bed",
            "genome": world / "genome.fa.fai",
            "gtf": world / "genes.gtf",
        }
        print(
            bench_count(
                f"simulator {world.name} {sheet['sample'].iloc[0]}",
                d,
                args.tile_size,
                args.threads,
                500,
                args.repeat,
            ),
            flush=True,
        )
    if args.real:
        if not args.skip_fragments:
            print(
                bench_fragments(
                    "real scPipe chr21 reads",
                    DATA / "scpipe_chr21" / "chr21_scatac.bam",
                    args.threads,
                    args.repeat,
                ),
                flush=True,
            )
        real = out / "pbsmall"
        real.mkdir(exist_ok=True)
        (real / "g.sizes").write_text("chr5\t180915260\nchr11\t135006516\n")
        macs = DATA / "macs3_scatac"
        (real / "hg19.sizes").write_text((macs / "hg19.len").read_text())
        print(
            bench_count(
                "real 10x fragments (MACS3 test data, chr22, position-sorted)",
                {
                    "fragments": sorted_copy(
                        macs / "test.fragments.tsv.gz", real / "macs3.sorted.tsv.gz"
                    ),
                    "peaks": macs / "scatac_frag_macs3_peaks.narrowPeak",
                    "genome": real / "hg19.sizes",
                },
                args.tile_size,
                args.threads,
                10,
                args.repeat,
            ),
            flush=True,
        )
    if args.synthetic:
        syn = out / f"synthetic{args.synthetic}"
        syn.mkdir(exist_ok=True)
        d = (
            synthetic(args.synthetic, syn)
            if not (syn / "synthetic.tsv.gz").exists()
            else {
                "fragments": syn / "synthetic.tsv.gz",
                "genome": syn / "synthetic.sizes",
                "peaks": syn / "synthetic.peaks.bed",
            }
        )
        print(
            bench_count(
                f"synthetic {args.synthetic:,} fragments",
                d,
                args.tile_size,
                args.threads,
                1000,
                args.repeat,
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        task, payload = sys.argv[2], json.loads(sys.argv[3])
        result = worker(task, payload)
        cpu, rss = _usage()
        result.update(cpu=cpu, rss=rss)
        print(json.dumps(result))
        sys.exit(0)
    sys.exit(main())
