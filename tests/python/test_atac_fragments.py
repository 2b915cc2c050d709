"""``scregnet fragments``: golden matches against sinto and SnapATAC2, every flag, bad inputs."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pysam
import pytest

from scregnet.cli import main as cli

Frag = tuple[str, int, int, str, int]


def load(path: Path) -> list[Frag]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle if line.strip()]
    return [(r[0], int(r[1]), int(r[2]), r[3], int(r[4])) for r in rows]


def run(*argv: str | Path) -> int:
    return cli.main(["fragments", "--quiet", *map(str, argv)])


SINTO = ("--min-length", "10", "--max-length", "5000", "--no-proper-pair", "--merge-shared-ends")


def write_bam(
    path: Path,
    pairs: list[dict[str, object]],
    *,
    contigs: tuple[tuple[str, int], ...] = (("chr1", 100_000), ("chr2", 100_000), ("chrM", 16_000)),
    sort_order: str = "coordinate",
    index: bool = True,
) -> Path:
    """A paired-end BAM from pair specs: chrom, start (fwd read), end (rev read end), cb, and
    optional mapq, flag_extra, tag, name, read_len."""
    header = {
        "HD": {"VN": "1.6", "SO": sort_order},
        "SQ": [{"SN": n, "LN": ln} for n, ln in contigs],
    }
    names = [n for n, _ in contigs]
    reads = []
    for k, p in enumerate(pairs):
        rl = int(p.get("read_len", 50))  # type: ignore[call-overload]
        start, end = int(p["start"]), int(p["end"])  # type: ignore[call-overload]
        tid = names.index(str(p["chrom"]))
        tlen = end - start
        for mate in (0, 1):
            r = pysam.AlignedSegment()
            r.query_name = str(p.get("name", f"pair{k}"))
            r.reference_id = tid
            r.next_reference_id = tid
            r.mapping_quality = int(p.get("mapq", 60)) if mate == 0 else int(p.get("mapq2", 60))  # type: ignore[call-overload]
            r.query_sequence = "A" * rl
            r.query_qualities = pysam.qualitystring_to_array("I" * rl)
            r.cigarstring = f"{rl}M"
            if mate == 0:
                r.reference_start, r.next_reference_start = start, end - rl
                r.flag = 0x1 | 0x2 | 0x20 | 0x40
                r.template_length = tlen
            else:
                r.reference_start, r.next_reference_start = end - rl, start
                r.flag = 0x1 | 0x2 | 0x10 | 0x80
                r.template_length = -tlen
            r.flag |= int(p.get("flag_extra", 0))  # type: ignore[call-overload]
            r.flag &= ~int(p.get("flag_clear", 0))  # type: ignore[call-overload]
            if p.get("cb") is not None:
                r.set_tag(str(p.get("tag", "CB")), str(p["cb"]))
            reads.append(r)
    if sort_order == "coordinate":
        reads.sort(key=lambda r: (r.reference_id, r.reference_start))
    unsorted = path.with_suffix(".unsorted.bam")
    with pysam.AlignmentFile(str(unsorted), "wb", header=header) as out:
        for r in reads:
            out.write(r)
    unsorted.rename(path)
    if index:
        pysam.index(str(path))
    return path


def base_pairs() -> list[dict[str, object]]:
    return [
        {"chrom": "chr1", "start": 1000, "end": 1200, "cb": "AAA-1"},
        {"chrom": "chr1", "start": 1000, "end": 1200, "cb": "AAA-1"},  # duplicate
        {"chrom": "chr1", "start": 1000, "end": 1200, "cb": "CCC-1"},  # same coords, other cell
        {"chrom": "chr1", "start": 5000, "end": 5400, "cb": "CCC-1", "mapq": 10},
        {"chrom": "chr1", "start": 7000, "end": 7070, "cb": "GGG-1"},
        {"chrom": "chr2", "start": 300, "end": 9000, "cb": "AAA-1"},
        {"chrom": "chrM", "start": 100, "end": 300, "cb": "AAA-1"},
    ]


# --- golden matches ---------------------------------------------------------------------------


def test_sinto_collapse_within_golden(testdata: Path, tmp_path: Path) -> None:
    d = testdata / "sinto_bam"
    out = tmp_path / "w.tsv.gz"
    assert run("--bam", d / "test.bam", "--out", out, "--exclude-contigs", "", *SINTO) == 0
    assert sorted(load(out)) == sorted(load(d / "frags_within.bed"))
    assert Path(str(out) + ".tbi").exists()
    # tabix works and the file is coordinate-sorted
    with pysam.TabixFile(str(out)) as tbx:
        assert len(list(tbx.fetch("chr20", 209000, 210000))) == 2
    starts = [f[1] for f in load(out)]
    assert starts == sorted(starts)


def test_sinto_collapse_across_golden(testdata: Path, tmp_path: Path) -> None:
    d = testdata / "sinto_bam"
    out = tmp_path / "a.tsv.gz"
    assert (
        run(
            "--bam",
            d / "test.bam",
            "--out",
            out,
            "--exclude-contigs",
            "",
            "--collapse",
            "across",
            *SINTO,
        )
        == 0
    )
    assert sorted(load(out)) == sorted(load(d / "frags_across.bed"))


def test_sinto_real_reads_golden_and_shared_end_merging(testdata: Path, tmp_path: Path) -> None:
    d = testdata / "scpipe_chr21"
    expected = sorted(load(d / "expected_sinto_fragments.tsv.gz"))
    out = tmp_path / "s.tsv.gz"
    assert run("--bam", d / "chr21_scatac.bam", "--out", out, *SINTO) == 0
    assert sorted(load(out)) == expected
    # without sinto's shared-end merging, cells keep fragments that differ at one end only
    plain = tmp_path / "p.tsv.gz"
    assert run("--bam", d / "chr21_scatac.bam", "--out", plain, *SINTO[:-1]) == 0
    got = load(plain)
    assert len(got) > len(expected)
    assert sum(f[4] for f in got) == sum(
        f[4] for f in expected
    )  # same read pairs, split differently


def test_snapatac2_real_reads(testdata: Path, tmp_path: Path) -> None:
    """Defaults (proper pairs, no length limits) against snapatac2 2.9 make_fragment_file.

    SnapATAC2 also calls pairs duplicates when their *unclipped* 5' ends agree (Picard's rule), so
    a few soft-clipped pairs that it merges stay separate here; every SnapATAC2 fragment is found.
    """
    d = testdata / "scpipe_chr21"
    expected = {f[:4]: f[4] for f in load(d / "expected_snapatac2_fragments.tsv.gz")}
    out = tmp_path / "d.tsv.gz"
    assert run("--bam", d / "chr21_scatac.bam", "--out", out) == 0
    got = {f[:4]: f[4] for f in load(out)}
    assert set(expected) <= set(got)
    same = sum(got[k] == v for k, v in expected.items())
    assert same / len(expected) > 0.998
    assert (len(got) - len(expected)) / len(expected) < 0.002


# --- flags ------------------------------------------------------------------------------------


@pytest.fixture
def small_bam(tmp_path: Path) -> Path:
    return write_bam(tmp_path / "s.bam", base_pairs())


def test_defaults_shift_dedup_mapq_chrM(small_bam: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.tsv.gz"
    assert run("--bam", small_bam, "--out", out) == 0
    assert load(out) == [
        ("chr1", 1004, 1195, "AAA-1", 2),
        ("chr1", 1004, 1195, "CCC-1", 1),
        ("chr1", 7004, 7065, "GGG-1", 1),
        ("chr2", 304, 8995, "AAA-1", 1),
    ]


def test_ensembl_mitochondrial_genome_left_out_by_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Ensembl/NCBI references name the mitochondrial genome MT: its reads (often a third of an
    ATAC library) stay out of the fragments as chrM's do, and their share is logged."""
    import logging

    from scregnet.atac.fragments import bam_to_fragments

    pairs = [
        {"chrom": "1", "start": 1000, "end": 1200, "cb": "AAA-1"},
        {"chrom": "MT", "start": 100, "end": 300, "cb": "AAA-1"},
        {"chrom": "MT", "start": 400, "end": 600, "cb": "AAA-1"},
    ]
    bam = write_bam(tmp_path / "e.bam", pairs, contigs=(("1", 100_000), ("MT", 16_569)))
    out = tmp_path / "e.tsv.gz"
    with caplog.at_level(logging.INFO, logger="scregnet.atac.fragments"):
        bam_to_fragments(bam, out)
    assert load(out) == [("1", 1004, 1195, "AAA-1", 1)]
    assert "MT left out (--exclude-contigs): 4 of 6 mapped reads (66.7 %)" in caplog.text


def test_flags_change_the_output(small_bam: Path, tmp_path: Path) -> None:
    def frags(*extra: str) -> list[Frag]:
        out = tmp_path / "x.tsv.gz"
        assert run("--bam", small_bam, "--out", out, *extra) == 0
        return load(out)

    assert ("chr1", 5004, 5395, "CCC-1", 1) in frags("--min-mapq", "5")
    assert any(f[0] == "chrM" for f in frags("--exclude-contigs", ""))
    assert not any(f[0] == "chr2" for f in frags("--exclude-contigs", "chrM,chr2"))
    assert frags("--shift-plus", "0", "--shift-minus", "0")[0][1:3] == (1000, 1200)
    assert [f[3] for f in frags("--collapse", "across") if f[1] == 1004] == ["AAA-1"]
    assert [f[4] for f in frags("--collapse", "across") if f[1] == 1004] == [3]
    assert not any(f[3] == "GGG-1" for f in frags("--min-length", "100"))
    assert not any(f[0] == "chr2" for f in frags("--max-length", "5000"))
    whitelist = tmp_path / "wl.txt"
    whitelist.write_text("CCC-1\nGGG-1\n")
    assert {f[3] for f in frags("--barcodes", str(whitelist))} == {"CCC-1", "GGG-1"}


def test_barcode_tag_and_proper_pair_flags(tmp_path: Path) -> None:
    pairs = [
        {"chrom": "chr1", "start": 100, "end": 400, "cb": "AAA", "tag": "XB"},
        {"chrom": "chr1", "start": 500, "end": 800, "cb": "CCC", "tag": "XB"},
    ]
    bam = write_bam(tmp_path / "t.bam", pairs)
    out = tmp_path / "t.tsv.gz"
    assert run("--bam", bam, "--out", out, "--barcode-tag", "XB") == 0
    assert [f[3] for f in load(out)] == ["AAA", "CCC"]
    # clear the proper-pair flag on one pair: dropped by default, kept with --no-proper-pair
    bam2 = write_bam(tmp_path / "u.bam", [pairs[0], {**pairs[1], "flag_clear": 0x2}])
    assert run("--bam", bam2, "--out", out, "--barcode-tag", "XB") == 0
    assert [f[3] for f in load(out)] == ["AAA"]
    assert run("--bam", bam2, "--out", out, "--barcode-tag", "XB", "--no-proper-pair") == 0
    assert [f[3] for f in load(out)] == ["AAA", "CCC"]


def test_threads_give_identical_output(testdata: Path, tmp_path: Path) -> None:
    d = testdata / "sinto_bam"
    one, two = tmp_path / "1.tsv.gz", tmp_path / "2.tsv.gz"
    args = ("--bam", d / "test.bam", "--exclude-contigs", "", "--min-mapq", "0")
    assert run(*args, "--out", one) == 0
    assert (
        cli.main(["fragments", "--quiet", "--threads", "2", *map(str, args), "--out", str(two)])
        == 0
    )
    assert load(one) == load(two) and len(load(one)) == 18


# --- bad input --------------------------------------------------------------------------------


def assert_clean_failure(
    capsys: pytest.CaptureFixture[str], out: Path, code: int, *words: str
) -> None:
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for w in words:
        assert w in err[0], err[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_bam_without_index(
    testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bam = tmp_path / "noindex.bam"
    shutil.copy(testdata / "sinto_bam" / "test.bam", bam)
    out = tmp_path / "o.tsv.gz"
    assert_clean_failure(capsys, out, run("--bam", bam, "--out", out), "noindex.bam", "no index")


def test_bam_not_coordinate_sorted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bam = write_bam(tmp_path / "q.bam", base_pairs(), sort_order="queryname", index=False)
    out = tmp_path / "o.tsv.gz"
    assert_clean_failure(
        capsys, out, run("--bam", bam, "--out", out), "q.bam", "not coordinate-sorted"
    )


def test_no_read_carries_the_tag(
    small_bam: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.tsv.gz"
    code = run("--bam", small_bam, "--out", out, "--barcode-tag", "XX")
    assert_clean_failure(capsys, out, code, "s.bam", "'XX'")


def test_nothing_passes_the_filters(
    small_bam: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.tsv.gz"
    code = run("--bam", small_bam, "--out", out, "--min-mapq", "61")
    assert_clean_failure(capsys, out, code, "s.bam", "no fragment passed")


def test_no_listed_barcode_in_the_bam(
    small_bam: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--barcodes of which none tags a read: said so (before: "no fragment passed the filters")."""
    listed = tmp_path / "wl.txt"
    listed.write_text("NOTPRESENT-1\nALSO-NOT-1\n")
    out = tmp_path / "o.tsv.gz"
    code = run("--bam", small_bam, "--out", out, "--barcodes", listed)
    assert_clean_failure(
        capsys, out, code, "s.bam", "none of the 2 barcode(s) of --barcodes is in the BAM's CB tag"
    )


def test_missing_and_corrupt_bam(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.tsv.gz"
    assert_clean_failure(
        capsys, out, run("--bam", tmp_path / "nope.bam", "--out", out), "nope.bam", "does not exist"
    )
    junk = tmp_path / "junk.bam"
    junk.write_bytes(b"not a bam at all")
    assert_clean_failure(
        capsys, out, run("--bam", junk, "--out", out), "junk.bam", "not a readable BAM"
    )


def test_snapatac2_parity_optional(tmp_path: Path) -> None:
    snap = pytest.importorskip("snapatac2")
    pairs = base_pairs()[:3] + [
        {"chrom": "chr1", "start": 2000 + 37 * i, "end": 2180 + 53 * i, "cb": f"B{i % 7}"}
        for i in range(200)
    ]
    bam = write_bam(tmp_path / "p.bam", pairs)
    ours, theirs = tmp_path / "ours.tsv.gz", tmp_path / "theirs.tsv.gz"
    assert run("--bam", bam, "--out", ours) == 0
    snap.pp.make_fragment_file(str(bam), str(theirs), barcode_tag="CB", min_mapq=30)
    assert sorted(load(ours)) == sorted(load(theirs))


def test_has_barcode_reads_the_whole_file(tmp_path: Path) -> None:
    from scregnet.io.fragments import has_barcode

    path = tmp_path / "f.tsv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("# header\nchr1\t0\t100\tA\t1\nchr1\t10\t210\tB\t1\nchr2\t20\t50\tC\n")
    assert has_barcode(path, {"C", "Z"})
    assert not has_barcode(path, {"Z"})


def test_fragments_past_the_chromosome_end_are_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A fragment ending past its chromosome's end in the genome is read (counting clips it), and
    the reader logs how many there were per chromosome: many suggest another assembly."""
    import logging

    from scregnet.io.fragments import FragmentReader

    path = tmp_path / "f.tsv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("chr1\t0\t100\tA\t1\nchr1\t950\t1010\tB\t1\nchr2\t20\t50\tC\t2\n")
    genome = {"chr1": 1000, "chr2": 60}
    with caplog.at_level(logging.WARNING, logger="scregnet.io.fragments"):
        reader = FragmentReader(path, genome=genome)
        ends = [int(e) for chunk in reader for e in chunk.end]
    assert ends == [100, 1010, 50]
    assert reader.past_end == {"chr1": 1}
    assert "chr1: 1 past 1000 bp" in caplog.text and str(path) in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scregnet.io.fragments"):
        list(FragmentReader(path, genome={"chr1": 2000, "chr2": 60}))
    assert "past" not in caplog.text


def test_a_fasta_changed_after_indexing_is_refused(tmp_path: Path) -> None:
    """The FASTA's size must be what its .fai says (last record's offset plus its bytes): an
    edited FASTA with an old index would read other bases."""
    from scregnet.errors import InputError
    from scregnet.io.genome import open_fasta, read_chrom_sizes

    fasta = tmp_path / "g.fa"
    for text in (
        ">c1\nACGTACGTAC\nACG\n>c2 x\nAAAA\n",  # partial last line
        ">c1\nACGTACGTAC\nACGTACGTAC\n>c2\nAAAAAAAAAA\n",  # whole last line
        ">c1\nACGTACGTAC\nACG\n>c2\nAAAA",  # no final line end
    ):
        fasta.write_text(text)
        Path(str(fasta) + ".fai").unlink(missing_ok=True)
        pysam.faidx(str(fasta))
        assert read_chrom_sizes(fasta)["c1"] in (13, 20)
        open_fasta(fasta).close()
    fasta.write_text(">c1\nACGTACGTAC\nACG\n>c2\nAAAA\n")
    Path(str(fasta) + ".fai").unlink()
    pysam.faidx(str(fasta))
    for edited in (
        ">c1\nACGTACGTAC\nACG\n>c2\nAAAAAAAAAA\nAAAAAAAAAA\n",  # a record grew
        ">c1\nACGTACGTAC\nACG\n>c2\nAAAA\n>c3\nCCCCCCCCCC\nCCCCCCCCCC\n",  # one added
        ">c1\nACGTACGTAC\n>c2\nAAAA\n",  # a record shrank
    ):
        fasta.write_text(edited)
        for read in (read_chrom_sizes, open_fasta):
            with pytest.raises(InputError, match="changed after it was indexed") as caught:
                read(fasta)
            assert caught.value.path == str(fasta)
