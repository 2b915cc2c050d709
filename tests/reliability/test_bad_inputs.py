"""Bad input across every subcommand: one clear error line naming the file, a non-zero exit, and no
output left behind (neither under the final name nor as a temporary file).

Each case builds its broken input from the tiny world and the stage outputs in ``staged``.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import pysam
import pytest
import scipy.sparse as sp

from scregnet.cli.main import main as cli


@dataclass
class Case:
    """``build(staged, tmp)`` returns (argv, the text the error must contain, outputs that must not exist)."""

    build: Callable[[dict[str, Path], Path], tuple[list[str], str, list[Path]]]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    return dst


def _rna(tmp: Path, name: str, matrix: np.ndarray, genes: list[str] | None = None) -> Path:
    genes = genes or [f"G{i}" for i in range(matrix.shape[1])]
    adata = ad.AnnData(
        sp.csr_matrix(matrix),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(matrix.shape[0])]),
        var=pd.DataFrame(index=genes),
    )
    path = tmp / name
    adata.write_h5ad(path)
    return path


def _world_rna(s: dict[str, Path]) -> ad.AnnData:
    return ad.read_h5ad(s["world"] / "samples" / "sample1.rna.h5ad")


# ---- fragments -------------------------------------------------------------------------------------
def bam_without_index(s: dict[str, Path], tmp: Path):  # type: ignore[no-untyped-def]
    bam = _copy(s["world"] / "samples" / "sample1.bam", tmp / "noindex.bam")
    out = tmp / "f.tsv.gz"
    return ["fragments", "--bam", str(bam), "--out", str(out)], "noindex.bam", [out]


def bam_of_another_assembly(s, tmp):  # type: ignore[no-untyped-def]
    lines = s["fai"].read_text().splitlines(True)
    name, length, *rest = lines[0].split("\t")
    fai = tmp / "hg38.fa.fai"  # the genome's first chromosome 1 kb longer than the BAM's
    fai.write_text("\t".join([name, str(int(length) + 1000), *rest]) + "".join(lines[1:]))
    out = tmp / "f.tsv.gz"
    argv = ["fragments", "--bam", str(s["world"] / "samples" / "sample1.bam"), "--genome", str(fai)]
    expected = "sample1.bam: 1 chromosome(s) have another length in the BAM header than in the genome index hg38.fa.fai"
    return [*argv, "--out", str(out)], expected, [out]


def bam_name_sorted(s, tmp):  # type: ignore[no-untyped-def]
    bam = tmp / "byname.bam"
    pysam.sort("-n", "-o", str(bam), str(s["world"] / "samples" / "sample1.bam"))
    out = tmp / "f.tsv.gz"
    return ["fragments", "--bam", str(bam), "--out", str(out)], "byname.bam", [out]


def no_barcode_tag(s, tmp):  # type: ignore[no-untyped-def]
    out = tmp / "f.tsv.gz"
    return (
        [
            "fragments",
            "--bam",
            str(s["world"] / "samples" / "sample1.bam"),
            "--barcode-tag",
            "XB",
            "--out",
            str(out),
        ],
        "XB",
        [out],
    )


def missing_bam(s, tmp):  # type: ignore[no-untyped-def]
    out = tmp / "f.tsv.gz"
    return ["fragments", "--bam", str(tmp / "absent.bam"), "--out", str(out)], "absent.bam", [out]


# ---- count -----------------------------------------------------------------------------------------
def _count(
    s: dict[str, Path],
    tmp: Path,
    *,
    fragments: Path | None = None,
    peaks: Path | None = None,
    extra: list[str] | None = None,
) -> tuple[list[str], Path]:
    out = tmp / "x.atac.h5ad"
    argv = [
        "count",
        "--fragments",
        str(fragments or s["fragments"]),
        "--peaks",
        str(peaks or s["world"] / "peaks.bed"),
        "--genome",
        str(s["fai"]),
        "--min-fragments",
        "500",
        "--out",
        str(out),
        *(extra or []),
    ]
    return argv, out


def peaks_wrong_chromosome_names(s, tmp):  # type: ignore[no-untyped-def]
    bed = tmp / "nochr.bed"
    bed.write_text(
        "".join(
            line.removeprefix("chr")
            for line in (s["world"] / "peaks.bed").read_text().splitlines(True)
        )
    )
    argv, out = _count(s, tmp, peaks=bed)
    return argv, "nochr.bed", [out]


def empty_peaks(s, tmp):  # type: ignore[no-untyped-def]
    bed = tmp / "empty.bed"
    bed.write_text("")
    argv, out = _count(s, tmp, peaks=bed)
    return argv, "empty.bed", [out]


def peak_end_before_start(s, tmp):  # type: ignore[no-untyped-def]
    bed = tmp / "inverted.bed"
    bed.write_text("chr1\t500\t400\tp1\n")
    argv, out = _count(s, tmp, peaks=bed)
    return argv, "inverted.bed", [out]


def peak_end_too_large(s, tmp):  # type: ignore[no-untyped-def]
    bed = tmp / "huge.bed"
    bed.write_text("chr1\t100\t400\tp1\nchr1\t500\t99999999999999999999\tp2\n")
    argv, out = _count(s, tmp, peaks=bed)
    return argv, "huge.bed: line 2", [out]


def truncated_fragments(s, tmp):  # type: ignore[no-untyped-def]
    data = s["fragments"].read_bytes()
    frag = tmp / "cut.tsv.gz"
    frag.write_bytes(data[: len(data) // 2])
    argv, out = _count(s, tmp, fragments=frag)
    return argv, "cut.tsv.gz", [out]


def unsorted_fragments(s, tmp):  # type: ignore[no-untyped-def]
    with gzip.open(s["fragments"], "rt") as handle:
        lines = handle.readlines()
    frag = tmp / "unsorted.tsv.gz"
    with pysam.BGZFile(str(frag), "wb") as handle:
        handle.write("".join(lines[::-1]).encode())
    argv, out = _count(s, tmp, fragments=frag)
    return argv, "unsorted.tsv.gz", [out]


def _with_line(s: dict[str, Path], tmp: Path, name: str, k: int, edit: Any) -> tuple[Path, int]:
    """The world's fragments with line ``k`` (an index, -1 the last) rewritten by ``edit`` (its
    fields), and that line's number in the file."""
    with gzip.open(s["fragments"], "rt") as handle:
        lines = handle.readlines()
    k %= len(lines)
    lines[k] = "\t".join(edit(lines[k].rstrip("\n").split("\t"))) + "\n"
    frag = tmp / name
    with pysam.BGZFile(str(frag), "wb") as handle:
        handle.write("".join(lines).encode())
    return frag, k + 1


def fragment_negative_count(s, tmp):  # type: ignore[no-untyped-def]
    frag, number = _with_line(s, tmp, "negative.tsv.gz", 5, lambda f: [*f[:4], "-4"])
    argv, out = _count(s, tmp, fragments=frag)
    return argv, f"negative.tsv.gz: line {number}: negative count -4", [out]


def zero_cells_pass(s, tmp):  # type: ignore[no-untyped-def]
    argv, out = _count(s, tmp)
    argv[argv.index("--min-fragments") + 1] = "100000000"
    return argv, str(s["fragments"].name), [out]


def fragments_only_on_chrM(s, tmp):  # type: ignore[no-untyped-def]
    frag = tmp / "mito.tsv.gz"
    with pysam.BGZFile(str(frag), "wb") as handle:
        handle.write("".join(f"chrM\t{i}\t{i + 80}\tAAAC-1\t1\n" for i in range(50)).encode())
    argv, out = _count(s, tmp, fragments=frag)
    return argv, "mito.tsv.gz: no fragment left", [out]


def exclude_every_chromosome(s, tmp):  # type: ignore[no-untyped-def]
    chroms = ",".join(line.split("\t")[0] for line in s["fai"].read_text().splitlines())
    argv, out = _count(s, tmp, extra=["--exclude-chroms", chroms])
    return argv, f"{s['fragments'].name}: no fragment left", [out]


def genome_index_missing(s, tmp):  # type: ignore[no-untyped-def]
    argv, out = _count(s, tmp)
    argv[argv.index("--genome") + 1] = str(tmp / "nope.fai")
    return argv, "nope.fai", [out]


def _genome(
    s: dict[str, Path], tmp: Path, name: str, *, chr1: int = 400000, extra: str = ""
) -> Path:
    """The world's genome index as ``chrom.sizes`` with chr1 ``chr1`` bp long, then ``extra``."""
    lines = [line.split("\t")[:2] for line in s["fai"].read_text().splitlines()]
    path = tmp / name
    text = "".join(f"{c}\t{chr1 if c == 'chr1' else n}\n" for c, n in lines)
    path.write_text(text + extra)
    return path


def genome_zero_length(s, tmp):  # type: ignore[no-untyped-def]
    argv, out = _count(s, tmp)
    argv[argv.index("--genome") + 1] = str(_genome(s, tmp, "zero.sizes", chr1=0))
    return argv, "zero.sizes: line 1", [out]


def genome_chromosome_twice(s, tmp):  # type: ignore[no-untyped-def]
    argv, out = _count(s, tmp)
    argv[argv.index("--genome") + 1] = str(_genome(s, tmp, "twice.sizes", extra="chr1\t500000\n"))
    return argv, "twice.sizes: line 8", [out]


# ---- peaks -----------------------------------------------------------------------------------------
def _peaks(s: dict[str, Path], tmp: Path, extra: list[str]) -> tuple[list[str], Path]:
    out = tmp / "x.narrowPeak"
    argv = ["peaks", "--fragments", str(s["fragments"]), "--genome", str(s["fai"])]
    return [*argv, "--out", str(out), *extra], out


def peaks_barcodes_match_nothing(s, tmp):  # type: ignore[no-untyped-def]
    listed = tmp / "strangers.txt"
    listed.write_text("NOTABARCODE-1\nXX-1\n")
    argv, out = _peaks(s, tmp, ["--barcodes", str(listed)])
    return argv, "strangers.txt: none of its 2 barcodes is in the fragments file", [out]


def peaks_barcodes_empty(s, tmp):  # type: ignore[no-untyped-def]
    listed = tmp / "nobody.txt"
    listed.write_text("\n")
    argv, out = _peaks(s, tmp, ["--barcodes", str(listed)])
    return argv, "nobody.txt: barcode list is empty", [out]


def peaks_name_with_slash(s, tmp):  # type: ignore[no-untyped-def]
    argv, out = _peaks(s, tmp, ["--name", "a/b"])
    return argv, "--name must be a file-name prefix", [out]


def peaks_negative_gsize(s, tmp):  # type: ignore[no-untyped-def]
    argv, out = _peaks(s, tmp, ["--gsize", "-5"])
    return argv, "--gsize must be > 0", [out]


# ---- cluster / tracks ------------------------------------------------------------------------------
def cluster_empty_h5ad(s, tmp):  # type: ignore[no-untyped-def]
    bad = tmp / "empty.atac.h5ad"
    bad.write_bytes(b"")
    out = tmp / "c.h5ad"
    return ["cluster", "--atac", str(bad), "--out", str(out)], "empty.atac.h5ad", [out]


def cluster_not_h5ad(s, tmp):  # type: ignore[no-untyped-def]
    bad = tmp / "text.atac.h5ad"
    bad.write_text("this is not HDF5\n")
    out = tmp / "c.h5ad"
    return ["cluster", "--atac", str(bad), "--out", str(out)], "text.atac.h5ad", [out]


def _cluster_bad_x(
    s: dict[str, Path], tmp: Path, name: str, value: float | None
) -> tuple[list[str], str, list[Path]]:
    """`cluster` on the staged counts with one stored entry set to ``value`` (None: no X)."""
    adata = ad.read_h5ad(s["atac"])
    if value is None:
        adata.X = None
    else:
        x = sp.csr_matrix(adata.X, dtype=np.float32)
        x.data[7] = value
        adata.X = x
    bad = tmp / name
    adata.write_h5ad(bad)
    out = tmp / "c.h5ad"
    return ["cluster", "--atac", str(bad), "--out", str(out), "--no-umap"], name, [out]


def cluster_nan_counts(s, tmp):  # type: ignore[no-untyped-def]
    argv, name, outs = _cluster_bad_x(s, tmp, "nan.atac.h5ad", np.nan)
    return argv, f"{name}: peak counts (X) contain NaN", outs


def cluster_inf_counts(s, tmp):  # type: ignore[no-untyped-def]
    argv, name, outs = _cluster_bad_x(s, tmp, "inf.atac.h5ad", np.inf)
    return argv, f"{name}: peak counts (X) contain NaN or infinite", outs


def cluster_negative_counts(s, tmp):  # type: ignore[no-untyped-def]
    argv, name, outs = _cluster_bad_x(s, tmp, "neg.atac.h5ad", -3)
    return argv, f"{name}: peak counts (X) contain negative", outs


def cluster_without_x(s, tmp):  # type: ignore[no-untyped-def]
    argv, name, outs = _cluster_bad_x(s, tmp, "nox.atac.h5ad", None)
    return argv, f"{name}: AnnData has no X", outs


def tracks_without_clusters(s, tmp):  # type: ignore[no-untyped-def]
    out = tmp / "tracks"
    return (
        [
            "tracks",
            "--fragments",
            str(s["fragments"]),
            "--clusters",
            str(s["atac"]),
            "--genome",
            str(s["fai"]),
            "--outdir",
            str(out),
        ],
        "cluster",
        [out],
    )


def tracks_negative_chromosome_length(s, tmp):  # type: ignore[no-untyped-def]
    sizes = _genome(s, tmp, "neg.sizes", chr1=-400000)
    out = tmp / "tracks"
    argv = ["tracks", "--fragments", str(s["fragments"]), "--clusters", str(s["clustered"])]
    return [*argv, "--genome", str(sizes), "--outdir", str(out)], "neg.sizes: line 1", [out]


# ---- impute ----------------------------------------------------------------------------------------
def _impute(rna: Path, tmp: Path, extra: list[str] | None = None) -> tuple[list[str], Path]:
    out = tmp / "i.imputed.h5ad"
    return ["impute", "--rna", str(rna), "--out", str(out), "--epochs", "1", *(extra or [])], out


def rna_with_nan(s, tmp):  # type: ignore[no-untyped-def]
    x = np.ones((60, 250))
    x[3, 4] = np.nan
    argv, out = _impute(_rna(tmp, "nan.h5ad", x), tmp)
    return argv, "nan.h5ad", [out]


def rna_negative(s, tmp):  # type: ignore[no-untyped-def]
    x = np.ones((60, 250))
    x[3, 4] = -2
    argv, out = _impute(_rna(tmp, "neg.h5ad", x), tmp)
    return argv, "neg.h5ad", [out]


def rna_not_counts(s, tmp):  # type: ignore[no-untyped-def]
    argv, out = _impute(_rna(tmp, "lognorm.h5ad", np.full((60, 250), 0.37)), tmp)
    return argv, "lognorm.h5ad", [out]


def rna_empty(s, tmp):  # type: ignore[no-untyped-def]
    argv, out = _impute(_rna(tmp, "nocells.h5ad", np.zeros((0, 250))), tmp)
    return argv, "nocells.h5ad", [out]


def bulk_shares_too_few_genes(s, tmp):  # type: ignore[no-untyped-def]
    bulk = tmp / "otherbulk.tsv"
    pd.DataFrame({"gene": [f"X{i}" for i in range(300)], "b1": 10, "b2": 12}).to_csv(
        bulk, sep="\t", index=False
    )
    argv, out = _impute(s["world"] / "samples" / "sample1.rna.h5ad", tmp, ["--bulk", str(bulk)])
    return argv, "otherbulk.tsv", [out]


def checkpoint_genes_mismatch(s, tmp):  # type: ignore[no-untyped-def]
    model = tmp / "other.model.pt"
    import torch

    torch.save(
        {
            "kind": "scregnet.impute",
            "version": 3,
            "config": {},
            "state_dict": {},
            "genes": ["A", "B"],
        },
        model,
    )
    argv, out = _impute(s["world"] / "samples" / "sample1.rna.h5ad", tmp, ["--model", str(model)])
    argv.remove("--epochs")
    argv.remove("1")
    return argv, "other.model.pt", [out]


# ---- tfbind ----------------------------------------------------------------------------------------
def tfbind_heldout_absent(s, tmp):  # type: ignore[no-untyped-def]
    out = tmp / "m.pt"
    return (
        [
            "tfbind",
            "train",
            "--fasta",
            str(s["world"] / "genome.fa"),
            "--bulk",
            str(s["world"] / "bulk" / "bulk_sheet.csv"),
            "--test-chroms",
            "chr99",
            "--out",
            str(out),
        ],
        "chr99",
        [out],
    )


def _train_with_sheet(
    s: dict[str, Path], tmp: Path, column: str, replacement: Path
) -> tuple[list[str], Path]:
    """`tfbind train` on the world's bulk sheet (absolute paths) with row 0's ``column`` replaced."""
    bulk = s["world"] / "bulk"
    sheet = pd.read_csv(bulk / "bulk_sheet.csv")
    for col in ("chip_bed", "accessibility_bw"):
        sheet[col] = [str(bulk / p) for p in sheet[col]]
    sheet.loc[0, column] = str(replacement)
    path = tmp / "sheet.csv"
    sheet.to_csv(path, index=False)
    out = tmp / "m.pt"
    argv = ["tfbind", "train", "--fasta", str(s["world"] / "genome.fa"), "--bulk", str(path)]
    return [*argv, "--out", str(out)], out


def tfbind_missing_accessibility(s, tmp):  # type: ignore[no-untyped-def]
    argv, out = _train_with_sheet(s, tmp, "accessibility_bw", tmp / "gone.bw")
    return argv, "gone.bw", [out]


def tfbind_chrom_names_differ(s, tmp):  # type: ignore[no-untyped-def]
    bulk = s["world"] / "bulk"
    first = pd.read_csv(bulk / "bulk_sheet.csv").chip_bed[0]
    bed = tmp / "renamed.chip.bed"
    bed.write_text("".join("chrUn_" + line for line in (bulk / first).read_text().splitlines(True)))
    argv, out = _train_with_sheet(s, tmp, "chip_bed", bed)
    return argv, "renamed.chip.bed", [out]


def tfbind_bigwig_of_another_assembly(s, tmp):  # type: ignore[no-untyped-def]
    import pyBigWig

    bulk = s["world"] / "bulk"
    first = bulk / pd.read_csv(bulk / "bulk_sheet.csv").accessibility_bw[0]
    with pyBigWig.open(str(first)) as bw:
        sizes = bw.chroms()
    name = next(iter(sizes))
    other = tmp / "hg19.bw"
    with pyBigWig.open(str(other), "w") as bw:
        bw.addHeader([(c, n + 1000 if c == name else n) for c, n in sizes.items()])
        bw.addEntries([name], [0], ends=[100], values=[1.0])
    argv, out = _train_with_sheet(s, tmp, "accessibility_bw", other)
    sheet = pd.read_csv(tmp / "sheet.csv")  # every row of that cell type reads the same track
    sheet.loc[sheet.accessibility_bw == str(first), "accessibility_bw"] = str(other)
    sheet.to_csv(tmp / "sheet.csv", index=False)
    return (
        argv,
        "hg19.bw: 1 chromosome(s) have another length in the bigWig than in the FASTA",
        [out],
    )


def _tfbind_model(s: dict[str, Path]) -> Path:
    """A small tfbind model of the tiny world, trained once per session."""
    model = s["dir"] / "tfbind_model.pt"
    if not model.exists():
        argv = ["tfbind", "train", "--fasta", str(s["world"] / "genome.fa"), "--out", str(model)]
        argv += ["--bulk", str(s["world"] / "bulk" / "bulk_sheet.csv"), "--epochs", "1"]
        argv += ["--filters", "8,8,8", "--hidden", "8", "--device", "cpu", "--quiet"]
        assert cli(argv) == 0
    return model


def _tfbind_predict(s: dict[str, Path], tmp: Path, fragments: Path) -> tuple[list[str], Path]:
    out = tmp / "p.h5ad"
    argv = ["tfbind", "predict", "--model", str(_tfbind_model(s))]
    argv += ["--fasta", str(s["world"] / "genome.fa"), "--atac", str(s["clustered"])]
    argv += ["--fragments", str(fragments), "--motifs", str(s["world"] / "motifs.jaspar")]
    return [*argv, "--chrom", "chr2", "--device", "cpu", "--out", str(out)], out


def _rewritten_fragments(s: dict[str, Path], path: Path, edit: Callable[[str], str]) -> Path:
    """The staged fragments with every line passed through ``edit``, bgzipped and indexed."""
    with gzip.open(s["fragments"], "rt") as handle:
        text = "".join(edit(line) for line in handle)
    with pysam.BGZFile(str(path), "wb") as handle:
        handle.write(text.encode())
    pysam.tabix_index(str(path), preset="bed", force=True)
    return path


def tfbind_stale_tabix_index(s, tmp):  # type: ignore[no-untyped-def]
    other = _rewritten_fragments(s, tmp / "other.tsv.gz", lambda line: line.replace("\t", "\t "))
    frag = _copy(s["fragments"], tmp / "stale.tsv.gz")
    _copy(Path(f"{other}.tbi"), Path(f"{frag}.tbi"))
    argv, out = _tfbind_predict(s, tmp, frag)
    return argv, "stale.tsv.gz: reading chr2 through the tabix index failed", [out]


def tfbind_fragments_other_chromosome_names(s, tmp):  # type: ignore[no-untyped-def]
    frag = _rewritten_fragments(s, tmp / "nochr.tsv.gz", lambda line: line.removeprefix("chr"))
    argv, out = _tfbind_predict(s, tmp, frag)
    return argv, "nochr.tsv.gz: no chromosome name of the fragments is in the FASTA", [out]


def tfbind_counted_on_another_assembly(s, tmp):  # type: ignore[no-untyped-def]
    adata = ad.read_h5ad(s["clustered"])
    sizes = np.asarray(adata.uns["tiles"]["chrom_sizes"]).copy()
    sizes[0] += 1000
    adata.uns["tiles"]["chrom_sizes"] = sizes
    atac = tmp / "hg19.clustered.h5ad"
    adata.write_h5ad(atac)
    argv, out = _tfbind_predict(s, tmp, s["fragments"])
    argv[argv.index("--atac") + 1] = str(atac)
    expected = "hg19.clustered.h5ad: 1 chromosome(s) have another length in the genome the cells"
    return argv, expected, [out]


def tfbind_fragments_of_other_cells(s, tmp):  # type: ignore[no-untyped-def]
    def rename(line: str) -> str:
        f = line.split("\t")
        return "\t".join([*f[:3], "X" + f[3], *f[4:]])

    frag = _rewritten_fragments(s, tmp / "othercells.tsv.gz", rename)
    argv, out = _tfbind_predict(s, tmp, frag)
    return argv, "othercells.tsv.gz: no fragment belongs to a clustered cell", [out]


# ---- grn -------------------------------------------------------------------------------------------
def _grn(
    rnas: list[Path], labels: Path, tmp: Path, extra: list[str] | None = None
) -> tuple[list[str], Path]:
    out = tmp / "g.pt"
    argv = ["grn", "train"]
    for rna in rnas:
        argv += ["--rna", str(rna)]
    return [*argv, "--labels", str(labels), "--out", str(out), "--epochs", "1", *(extra or [])], out


def grn_tfs_absent(s, tmp):  # type: ignore[no-untyped-def]
    out = tmp / "g.tsv"
    argv = ["grn", "score", "--model", str(s["grn_model"])]
    argv += ["--rna", str(s["world"] / "samples" / "sample1.rna.h5ad"), "--out", str(out)]
    return [*argv, "--tfs", "NOTATF1,NOTATF2"], "NOTATF1", [out]


def grn_score_other_genes(s, tmp):  # type: ignore[no-untyped-def]
    rna = _world_rna(s)
    path = tmp / "fewer_genes.h5ad"
    rna[:, rna.var_names[1:]].copy().write_h5ad(path)
    out = tmp / "g.tsv"
    argv = ["grn", "score", "--model", str(s["grn_model"]), "--rna", str(path)]
    return [*argv, "--out", str(out)], "fewer_genes.h5ad", [out]


def grn_merge_not_a_shard(s, tmp):  # type: ignore[no-untyped-def]
    edges = s["world"] / "truth" / "grn_edges.tsv"
    out = tmp / "merged.tsv"
    return ["grn", "merge", "--shards", str(edges), "--out", str(out)], "grn_edges.tsv", [out]


def grn_labels_share_no_gene(s, tmp):  # type: ignore[no-untyped-def]
    labels = tmp / "alien.tsv"
    labels.write_text("tf\ttarget\nZZ1\tZZ2\nZZ1\tZZ3\n")
    argv, out = _grn([s["world"] / "samples" / "sample1.rna.h5ad"], labels, tmp)
    return argv, "alien.tsv", [out]


def grn_too_few_cells(s, tmp):  # type: ignore[no-untyped-def]
    rna = _world_rna(s)[:20].copy()
    path = tmp / "twenty.h5ad"
    rna.write_h5ad(path)
    argv, out = _grn([path], s["world"] / "truth" / "grn_edges.tsv", tmp)
    return argv, "twenty.h5ad", [out]


# ---- simulate / run / evaluate / report ------------------------------------------------------------
def simulate_unknown_preset(s, tmp):  # type: ignore[no-untyped-def]
    out = tmp / "world"
    return ["simulate", "--preset", "huge", "--outdir", str(out)], "huge", [out]


def simulate_unwritable(s, tmp):  # type: ignore[no-untyped-def]
    locked = tmp / "locked"
    locked.mkdir()
    (locked / "file").write_text("x")
    out = locked / "file" / "world"  # a file where a directory must be
    return ["simulate", "--preset", "tiny", "--outdir", str(out)], "world", [out]


def run_duplicate_samples(s, tmp):  # type: ignore[no-untyped-def]
    sheet = tmp / "dup.csv"
    bam = s["world"] / "samples" / "sample1.bam"
    sheet.write_text(f"sample,bam\nA,{bam}\nA,{bam}\n")
    params = tmp / "p.yaml"
    params.write_text(
        f"input: {sheet}\nfasta: {s['world'] / 'genome.fa'}\ngtf: {s['world'] / 'genes.gtf'}\n"
    )
    out = tmp / "results"
    return ["run", "--params", str(params), "--outdir", str(out)], "dup.csv", [out / "atac"]


def run_params_missing_input(s, tmp):  # type: ignore[no-untyped-def]
    params = tmp / "p.yaml"
    params.write_text(f"fasta: {s['world'] / 'genome.fa'}\n")
    out = tmp / "results"
    return ["run", "--params", str(params), "--outdir", str(out)], "p.yaml", [out / "atac"]


def run_dry_run_of_the_test_profile(s, tmp):  # type: ignore[no-untyped-def]
    out = tmp / "results"  # the test profile would simulate its data into it first
    argv = ["run", "--profile", "test", "--dry-run", "--outdir", str(out)]
    return argv, "--dry-run needs --params", [out]


def run_dry_run_with_a_bad_samplesheet(s, tmp):  # type: ignore[no-untyped-def]
    sheet = tmp / "sheet.csv"
    sheet.write_text("sample,bam\ns1,/nonexistent/s1.bam\n")
    import yaml

    world = s["world"]
    data = yaml.safe_load((world / "params.yaml").read_text())
    data = {k: str(world / v) if (world / str(v)).exists() else v for k, v in data.items()}
    params = tmp / "p.yaml"
    params.write_text(yaml.safe_dump({**data, "input": str(sheet)}))
    out = tmp / "results"
    argv = ["run", "--params", str(params), "--outdir", str(out), "--dry-run"]
    return argv, "s1.bam", [out]


def evaluate_missing_truth(s, tmp):  # type: ignore[no-untyped-def]
    out = tmp / "e.json"
    return (
        ["evaluate", "--truth", str(tmp / "notruth"), "--results", str(tmp), "--out", str(out)],
        "notruth",
        [out],
    )


def report_missing_results(s, tmp):  # type: ignore[no-untyped-def]
    out = tmp / "r.html"
    return ["report", "--results", str(tmp / "noresults"), "--out", str(out)], "noresults", [out]


CASES = {
    f.__name__: Case(f)
    for f in (
        bam_without_index,
        bam_name_sorted,
        bam_of_another_assembly,
        no_barcode_tag,
        missing_bam,
        peaks_wrong_chromosome_names,
        empty_peaks,
        peak_end_before_start,
        peak_end_too_large,
        truncated_fragments,
        unsorted_fragments,
        zero_cells_pass,
        fragments_only_on_chrM,
        fragment_negative_count,
        exclude_every_chromosome,
        genome_index_missing,
        genome_zero_length,
        genome_chromosome_twice,
        peaks_barcodes_match_nothing,
        peaks_barcodes_empty,
        peaks_name_with_slash,
        peaks_negative_gsize,
        cluster_empty_h5ad,
        cluster_not_h5ad,
        cluster_nan_counts,
        cluster_inf_counts,
        cluster_negative_counts,
        cluster_without_x,
        tracks_without_clusters,
        tracks_negative_chromosome_length,
        rna_with_nan,
        rna_negative,
        rna_not_counts,
        rna_empty,
        bulk_shares_too_few_genes,
        checkpoint_genes_mismatch,
        tfbind_heldout_absent,
        tfbind_missing_accessibility,
        tfbind_chrom_names_differ,
        tfbind_stale_tabix_index,
        tfbind_fragments_other_chromosome_names,
        tfbind_fragments_of_other_cells,
        tfbind_counted_on_another_assembly,
        tfbind_bigwig_of_another_assembly,
        grn_tfs_absent,
        grn_score_other_genes,
        grn_merge_not_a_shard,
        grn_labels_share_no_gene,
        grn_too_few_cells,
        simulate_unknown_preset,
        simulate_unwritable,
        run_duplicate_samples,
        run_params_missing_input,
        run_dry_run_of_the_test_profile,
        run_dry_run_with_a_bad_samplesheet,
        evaluate_missing_truth,
        report_missing_results,
    )
}


def test_at_least_25_cases() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(
    name: str, staged: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, expected, outputs = CASES[name].build(staged, tmp_path)
    before = {p for p in tmp_path.rglob("*")}
    try:
        code = cli([*argv, "--quiet"])
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    # one error line; with --quiet only warnings (context) may precede it, never a traceback
    err = [line for line in lines if " WARNING " not in line]
    assert code != 0, f"{name}: exit 0"
    assert len(err) == 1, f"{name}: expected one error line, got {lines}"
    assert "error" in err[0] and expected in err[0], (
        f"{name}: {err[0]!r} does not name {expected!r}"
    )
    for out in outputs:
        assert not out.exists(), f"{name}: partial output {out}"
    leftovers = [p for p in set(tmp_path.rglob("*")) - before if ".part" in p.name]
    assert not leftovers, f"{name}: temporary files left: {leftovers}"
