"""Bad genome, BAM and bigWig files give one error line naming the file, without the C
libraries' own messages (htslib's ``[E::...]``, libBigWig's ``[bwHdrRead]``) before it."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from scregnet.errors import InputError
from scregnet.io.genome import open_fasta
from scregnet.io.tracks import open_bigwig


def test_plain_gzip_fasta_is_named_as_such(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    fasta = tmp_path / "genome.fa.gz"
    with gzip.open(fasta, "wt") as handle:
        handle.write(">chr1\nACGTACGTAC\n")
    with pytest.raises(InputError, match=r"genome\.fa\.gz: compressed with gzip, not bgzip"):
        open_fasta(fasta)
    plain = tmp_path / "genome.fa"
    plain.write_text(">chr1\nACGTACGTAC\n")
    assert open_fasta(plain).fetch("chr1", 0, 4) == "ACGT"
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("content", [b"chr1\t0\t10\n", b"\x88\x8b\x8b\x88" + b"\0" * 60])
def test_unreadable_bigwig_prints_nothing_of_its_own(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], content: bytes
) -> None:
    bigwig = tmp_path / "signal.bw"
    bigwig.write_bytes(content)
    with pytest.raises(InputError, match=r"signal\.bw: not a"):
        open_bigwig(bigwig)
    assert capfd.readouterr().err == ""


def test_folder_given_as_bam(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from scregnet.atac.fragments import open_bam

    with pytest.raises(InputError, match=r"is a folder, not a BAM file"):
        open_bam(tmp_path)
    truncated = tmp_path / "cut.bam"
    truncated.write_bytes(b"\x1f\x8b\x08\x04" + b"\0" * 40)
    with pytest.raises(InputError, match=r"cut\.bam: not a readable BAM file"):
        open_bam(truncated)
    assert capfd.readouterr().err == ""
