"""``scregnet peaks``: MACS3's own expected peaks on scATAC fragments; missing tool; bad input."""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path

import pytest

from scregnet.cli import main as cli

HAS_MACS3 = bool(shutil.which("macs3")) or (Path(sys.executable).parent / "macs3").exists()


@pytest.mark.needs_macs3
@pytest.mark.skipif(not HAS_MACS3, reason="macs3 is not installed")
def test_reproduces_macs3_expected_peaks(testdata: Path, tmp_path: Path) -> None:
    d = testdata / "macs3_scatac"
    out = tmp_path / "run_callpeak_frag.narrowPeak"
    code = cli.main([
        "peaks", "--quiet", "--fragments", str(d / "test.fragments.tsv.gz"), "--genome", str(d / "hg19.len"),
        "--gsize", "hs", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    assert out.read_text() == (d / "scatac_frag_macs3_peaks.narrowPeak").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # scratch removed
    # flags: a whitelist of cells, a stricter q-value and a name change the peaks
    strict = tmp_path / "strict.narrowPeak"
    assert cli.main([
        "peaks", "--quiet", "--fragments", str(d / "test.fragments.tsv.gz"), "--genome", str(d / "hg19.len"),
        "--gsize", "hs", "--qvalue", "0.0001", "--barcodes", str(d / "barcodes.txt"), "--name", "x",
        "--out", str(strict),
    ]) == 0  # fmt: skip
    lines = strict.read_text().splitlines()
    assert 0 < len(lines) < len(out.read_text().splitlines())
    assert lines[0].split("\t")[3].startswith("x_peak_")


@pytest.mark.needs_macs3
@pytest.mark.skipif(not HAS_MACS3, reason="macs3 is not installed")
def test_no_peaks_on_the_mitochondrial_genome(tmp_path: Path) -> None:
    """A fragments file from another tool may hold mitochondrial reads: MACS3 calls peaks on them,
    and they are dropped (UCSC and Ensembl names alike), the nuclear ones kept."""
    import numpy as np
    import pysam

    rng = np.random.default_rng(0)
    rows = []
    contigs = {
        "chr1": (200_000, [10_000, 50_000]),
        "chrM": (16_569, [3_000]),
        "MT": (16_569, [900]),
    }
    for chrom, (size, piles) in contigs.items():
        starts = [p + int(rng.integers(0, 100)) for p in piles for _ in range(300)]
        starts += [int(rng.integers(0, size - 300)) for _ in range(300)]
        rows += [(chrom, s, s + 150, f"BC{i % 50}", 1) for i, s in enumerate(starts)]
    plain = tmp_path / "f.tsv"
    plain.write_text("".join("\t".join(map(str, r)) + "\n" for r in sorted(rows)))
    frags = tmp_path / "f.tsv.gz"
    pysam.tabix_compress(str(plain), str(frags))
    genome = tmp_path / "g.len"
    genome.write_text("".join(f"{c}\t{size}\n" for c, (size, _) in contigs.items()))
    out = tmp_path / "p.narrowPeak"
    argv = ["peaks", "--quiet", "--fragments", str(frags), "--genome", str(genome)]
    assert cli.main([*argv, "--out", str(out)]) == 0
    peaks = [line.split("\t")[:2] for line in out.read_text().splitlines()]
    assert [(c, int(s) // 1000) for c, s in peaks] == [("chr1", 10), ("chr1", 50)]


def test_missing_macs3_is_one_clear_line(
    testdata: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    d = testdata / "macs3_scatac"
    out = tmp_path / "p.narrowPeak"
    code = cli.main(
        [
            "peaks",
            "--fragments",
            str(d / "test.fragments.tsv.gz"),
            "--genome",
            str(d / "hg19.len"),
            "--out",
            str(out),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "macs3" in err[0] and "not installed" in err[0]
    assert not out.exists()


@pytest.mark.needs_macs3
@pytest.mark.skipif(not HAS_MACS3, reason="macs3 is not installed")
def test_macs3_failure_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # three fragments: nothing to call
    text = "chr1\t10\t100\tA\t1\nchr1\t20\t120\tA\t1\nchr1\t500\t600\tB\t1\n"
    junk, err = _refused(tmp_path, capsys, text)
    assert str(junk) in err


def _refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> tuple[Path, str]:
    """``peaks`` on a fragments file holding ``text``: it fails with one line and writes nothing;
    the file and the line."""
    fragments = tmp_path / "f.tsv.gz"
    with gzip.open(fragments, "wt") as handle:
        handle.write(text)
    genome = tmp_path / "g.sizes"
    genome.write_text("chr1\t1000\n")
    out = tmp_path / "p.narrowPeak"
    argv = ["peaks", "--quiet", "--fragments", str(fragments), "--genome", str(genome)]
    assert cli.main([*argv, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    return fragments, err[0]


@pytest.mark.needs_macs3
@pytest.mark.skipif(not HAS_MACS3, reason="macs3 is not installed")
@pytest.mark.parametrize("text", ["", "# header only\n"])
def test_fragments_without_fragments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    """No fragment line: refused as `count` does, before MACS3 (which failed on it with
    "ZeroDivisionError: float division")."""
    empty, err = _refused(tmp_path, capsys, text)
    assert err.endswith(f"{empty}: fragments file has no fragments"), err


@pytest.mark.needs_macs3
@pytest.mark.skipif(not HAS_MACS3, reason="macs3 is not installed")
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        # MACS3 never returned on a last line without a line break
        ("chr1\t10\t100\tA\t1\nchr1\t20\t120\tA\t1", "the last line has no line break"),
        # ... nor on negative counts (or called peaks with a q-value of 1e6)
        ("chr1\t10\t100\tA\t-3\nchr1\t20\t120\tA\t-3\n", "line 1: negative count -3"),
        ("chr1\t10\t100\tA\t1\nchr1\t20\tx\tA\t1\n", "line 2: malformed fragment line"),
        ("chr1\t10\t100\tA\t1\nchrUn_x\t20\t120\tA\t1\n", "not in the genome index"),
        ("chr1\t10\t100\tA\t0\nchr1\t20\t120\tA\t0\n", "no fragments (none with a count above 0)"),
    ],
)
def test_fragments_macs3_misreads_are_refused_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    fragments, err = _refused(tmp_path, capsys, text)
    assert f"{fragments}: " in err and problem in err, err
