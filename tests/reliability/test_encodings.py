"""Text inputs in the wrong encoding or with malformed rows: one error line naming the file, never
an ``internal error``; harmless variations (byte-order mark, CRLF, extra fragment columns) work."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np
import pysam
import pytest

from scregnet.cli.main import main as cli
from scregnet.errors import InputError
from scregnet.grn.api import read_tf_list, tfs_file
from scregnet.io.samplesheet import read_samplesheet
from scregnet.tfbind.motifs import read_motifs

LATIN1 = "caf\xe9".encode("latin-1")
Build = Callable[[dict[str, Path], Path], tuple[list[str], str, list[Path]]]


def _latin1_copy(src: Path, dst: Path, *, at: int = 3) -> Path:
    """``src`` with a Latin-1 word inserted into line ``at``'s last field."""
    lines = src.read_bytes().splitlines(keepends=True)
    lines[at] = lines[at].rstrip(b"\n") + LATIN1 + b"\n"
    dst.write_bytes(b"".join(lines))
    return dst


def _count(s: dict[str, Path], tmp: Path, **files: Path) -> tuple[list[str], Path]:
    out = tmp / "x.h5ad"
    argv = ["count", "--fragments", str(files.get("fragments", s["fragments"]))]
    argv += ["--peaks", str(files.get("peaks", s["world"] / "peaks.bed"))]
    argv += ["--genome", str(files.get("genome", s["fai"])), "--min-fragments", "500"]
    if "tss" in files:
        argv += ["--tss", str(files["tss"])]
    return [*argv, "--out", str(out)], out


def peaks_latin1(s, tmp):  # type: ignore[no-untyped-def]
    argv, out = _count(s, tmp, peaks=_latin1_copy(s["world"] / "peaks.bed", tmp / "p.bed"))
    return argv, "p.bed: not UTF-8", [out]


def peaks_utf16(s, tmp):  # type: ignore[no-untyped-def]
    bed = tmp / "u16.bed"
    bed.write_bytes((s["world"] / "peaks.bed").read_text().encode("utf-16"))
    argv, out = _count(s, tmp, peaks=bed)
    return argv, "u16.bed: not UTF-8", [out]


def gtf_latin1(s, tmp):  # type: ignore[no-untyped-def]
    gtf = _latin1_copy(s["world"] / "genes.gtf", tmp / "g.gtf")
    argv, out = _count(s, tmp, tss=gtf)
    return argv, "g.gtf: not UTF-8", [out]


def genome_index_is_a_bam_index(s, tmp):  # type: ignore[no-untyped-def]
    bai = s["world"] / "samples" / "sample1.bam.bai"
    argv, out = _count(s, tmp, genome=bai)
    return argv, "sample1.bam.bai", [out]


def fragments_barcode_latin1(s, tmp):  # type: ignore[no-untyped-def]
    with gzip.open(s["fragments"], "rb") as handle:
        lines = handle.read().splitlines(keepends=True)
    fields = lines[2].split(b"\t")
    fields[3] = fields[3] + LATIN1
    lines[2] = b"\t".join(fields)
    frag = tmp / "latin.tsv.gz"
    with pysam.BGZFile(str(frag), "wb") as handle:  # type: ignore[call-arg]
        handle.write(b"".join(lines))
    pysam.tabix_index(str(frag), preset="bed", force=True)
    argv, out = _count(s, tmp, fragments=frag)
    return argv, "latin.tsv.gz", [out]


def barcodes_latin1(s, tmp):  # type: ignore[no-untyped-def]
    barcodes = tmp / "bc.txt"
    barcodes.write_bytes(b"AAAC-1\n" + LATIN1 + b"\n")
    out = tmp / "f.tsv.gz"
    argv = ["fragments", "--bam", str(s["world"] / "samples" / "sample1.bam")]
    return [*argv, "--barcodes", str(barcodes), "--out", str(out)], "bc.txt", [out]


def _run(sheet: Path, s: dict[str, Path], tmp: Path) -> tuple[list[str], list[Path]]:
    params = tmp / "p.yaml"
    params.write_text(
        f"input: {sheet}\nfasta: {s['world'] / 'genome.fa'}\ngtf: {s['world'] / 'genes.gtf'}\n"
    )
    out = tmp / "results"
    return ["run", "--params", str(params), "--outdir", str(out)], [out / "atac"]


def samplesheet_latin1(s, tmp):  # type: ignore[no-untyped-def]
    sheet = tmp / "sheet.csv"
    bam = s["world"] / "samples" / "sample1.bam"
    sheet.write_bytes(b"sample,bam,view\nA," + str(bam).encode() + b"," + LATIN1 + b"\n")
    argv, outs = _run(sheet, s, tmp)
    return argv, "sheet.csv: not UTF-8 text (byte 0xe9 on line 2)", outs


def samplesheet_utf16(s, tmp):  # type: ignore[no-untyped-def]
    sheet = tmp / "sheet.csv"
    sheet.write_bytes(f"sample,bam\nA,{s['world'] / 'samples' / 'sample1.bam'}\n".encode("utf-16"))
    argv, outs = _run(sheet, s, tmp)
    return argv, "sheet.csv: file is UTF-16 encoded", outs


def samplesheet_extra_field(s, tmp):  # type: ignore[no-untyped-def]
    sheet = tmp / "sheet.csv"
    bam = s["world"] / "samples" / "sample1.bam"
    sheet.write_text(f"sample,bam\nA,{bam}\nB,{bam},surplus\n")
    argv, outs = _run(sheet, s, tmp)
    return argv, "row 3: 3 fields but the header has 2", outs


def _grn(s: dict[str, Path], tmp: Path, labels: Path, *extra: str) -> tuple[list[str], Path]:
    out = tmp / "g.pt"
    argv = ["grn", "train", "--rna", str(s["world"] / "samples" / "sample1.rna.h5ad")]
    return [*argv, "--labels", str(labels), "--out", str(out), "--epochs", "1", *extra], out


def _grn_score(s: dict[str, Path], tmp: Path, *extra: str) -> tuple[list[str], Path]:
    out = tmp / "g.tsv"
    argv = ["grn", "score", "--model", str(s["grn_model"])]
    return [
        *argv,
        "--rna",
        str(s["world"] / "samples" / "sample1.rna.h5ad"),
        "--out",
        str(out),
        *extra,
    ], out


def labels_latin1(s, tmp):  # type: ignore[no-untyped-def]
    labels = _latin1_copy(s["world"] / "truth" / "grn_edges.tsv", tmp / "l.tsv")
    argv, out = _grn(s, tmp, labels)
    return argv, "l.tsv: not UTF-8", [out]


def labels_ragged_rows(s, tmp):  # type: ignore[no-untyped-def]
    labels = tmp / "l.tsv"
    labels.write_text("tf\ttarget\nA\tB\nA\tC\t1\textra\n")
    argv, out = _grn(s, tmp, labels)
    return argv, "l.tsv: not a readable table", [out]


def tf_list_latin1(s, tmp):  # type: ignore[no-untyped-def]
    tfs = tmp / "tfs.txt"
    tfs.write_bytes(b"TF1\n" + LATIN1 + b"\n")
    argv, out = _grn_score(s, tmp, "--tfs", str(tfs))
    return argv, "tfs.txt: not UTF-8", [out]


def tf_list_long_comma_separated(s, tmp):  # type: ignore[no-untyped-def]
    names = ",".join(f"NOTATF{i:04d}" for i in range(600))  # longer than any file name
    argv, out = _grn_score(s, tmp, "--tfs", names)
    return argv, "none of the 600 TF(s) is a gene of the expression data: NOTATF0000", [out]


def bulk_sheet_latin1(s, tmp):  # type: ignore[no-untyped-def]
    sheet = tmp / "sheet.csv"
    sheet.write_bytes(b"tf,chip_bed,accessibility_bw,cell_type\nCTCF,a.bed,a.bw," + LATIN1 + b"\n")
    out = tmp / "m.pt"
    argv = ["tfbind", "train", "--fasta", str(s["world"] / "genome.fa"), "--bulk", str(sheet)]
    return [*argv, "--out", str(out)], "sheet.csv", [out]


def bulk_rna_latin1(s, tmp):  # type: ignore[no-untyped-def]
    bulk = _latin1_copy(s["world"] / "bulk" / "bulk_rna.tsv", tmp / "bulk.tsv", at=0)
    out = tmp / "i.h5ad"
    argv = ["impute", "--rna", str(s["world"] / "samples" / "sample1.rna.h5ad")]
    return [*argv, "--bulk", str(bulk), "--epochs", "1", "--out", str(out)], "bulk.tsv", [out]


CASES: dict[str, Build] = {
    f.__name__: f
    for f in (
        peaks_latin1,
        peaks_utf16,
        gtf_latin1,
        genome_index_is_a_bam_index,
        fragments_barcode_latin1,
        barcodes_latin1,
        samplesheet_latin1,
        samplesheet_utf16,
        samplesheet_extra_field,
        labels_latin1,
        labels_ragged_rows,
        tf_list_latin1,
        tf_list_long_comma_separated,
        bulk_sheet_latin1,
        bulk_rna_latin1,
    )
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_text_names_the_file(
    name: str, staged: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, expected, outputs = CASES[name](staged, tmp_path)
    code = cli([*argv, "--quiet"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    err = [line for line in lines if " WARNING " not in line]
    assert code == 1, f"{name}: exit {code}"
    assert len(err) == 1 and "internal error" not in err[0], err
    assert expected in err[0], f"{name}: {err[0]!r} does not say {expected!r}"
    assert not [p for p in outputs if p.exists()]
    assert not [p for p in tmp_path.rglob("*") if ".part" in p.name]


def test_fragments_with_extra_columns_count_the_same(
    staged: dict[str, Path], tmp_path: Path
) -> None:
    """Fragments files with columns beyond the five 10x ones give the same counts."""
    with gzip.open(staged["fragments"], "rt") as handle:
        lines = handle.read().splitlines(keepends=True)
    frag = tmp_path / "wide.tsv.gz"
    with pysam.BGZFile(str(frag), "wb") as handle:  # type: ignore[call-arg]
        handle.write("".join(line.rstrip("\n") + "\tx\t1\n" for line in lines).encode())
    pysam.tabix_index(str(frag), preset="bed", force=True)
    argv, out = _count(staged, tmp_path, fragments=frag)
    assert cli([*argv, "--quiet"]) == 0
    wide, plain = ad.read_h5ad(out), ad.read_h5ad(staged["atac"])
    assert list(wide.obs_names) == list(plain.obs_names)
    assert (wide.X != plain.X).nnz == 0


def test_samplesheet_with_bom_and_crlf_reads(staged: dict[str, Path], tmp_path: Path) -> None:
    bam = staged["world"] / "samples" / "sample1.bam"
    sheet = tmp_path / "sheet.csv"
    sheet.write_bytes(f"\ufeffsample,bam\r\nA,{bam}\r\n".encode())
    (sample,) = read_samplesheet(sheet)
    assert sample.sample == "A" and sample.bam == bam


def test_motifs_latin1_names_the_file(tmp_path: Path) -> None:
    motifs = tmp_path / "m.jaspar"
    motifs.write_bytes(b">MA0001.1 " + LATIN1 + b"\nA [1 2]\nC [1 2]\nG [1 2]\nT [1 2]\n")
    with pytest.raises(InputError, match="not UTF-8") as exc:
        read_motifs(motifs)
    assert str(motifs) in str(exc.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("GATA1,SPI1", ["GATA1", "SPI1"]),
        ("GATA1", ["GATA1"]),
        (",".join(["T"] * 5000), ["T"] * 5000),
    ],
)
def test_tf_lists_are_not_file_names(spec: str, expected: list[str]) -> None:
    assert tfs_file(spec) is None
    assert read_tf_list(spec) == expected


def test_tf_list_file_wins_over_a_name(tmp_path: Path) -> None:
    tfs = tmp_path / "tfs.txt"
    tfs.write_text("# TFs\nGATA1\nSPI1\t1\n")
    assert read_tf_list(str(tfs)) == ["GATA1", "SPI1"]
    with pytest.raises(InputError, match="does not exist"):
        read_tf_list(str(tmp_path / "missing.txt"))
    assert np.array_equal(read_tf_list("A, B"), ["A", "B"])
