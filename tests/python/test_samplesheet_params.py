"""Samplesheet and params.yaml: path resolution and one-line errors for every bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from scregnet.errors import InputError
from scregnet.io.samplesheet import read_samplesheet
from scregnet.pipeline.params import read_params


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    for name in ("a.bam", "a.bam.bai", "b.bam", "b.bam.bai", "a.rna.h5ad", "noindex.bam"):
        (tmp_path / "data" / name).write_bytes(b"x")
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_relative_paths_resolve_against_the_sheet(files: Path) -> None:
    sheet = write(
        files / "s.csv",
        "sample,bam,fragments,rna,view\nA,data/a.bam,,data/a.rna.h5ad,v1\nB,data/b.bam,,,\n",
    )
    samples = read_samplesheet(sheet)
    assert [s.sample for s in samples] == ["A", "B"]
    assert samples[0].bam == files / "data" / "a.bam"
    assert samples[0].rna == files / "data" / "a.rna.h5ad"
    assert samples[1].rna is None
    assert samples[1].view == "B"  # no view: the sample is its own view


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bam\ndata/a.bam\n", "missing column(s): sample"),
        ("sample,bam\nA,data/a.bam\nA,data/b.bam\n", "duplicate sample id 'A'"),
        ("sample,bam\nA,data/missing.bam\n", "does not exist"),
        ("sample,bam\nA,data/a.rna.h5ad\n", "must end with .bam"),
        ("sample,bam\nA,data/noindex.bam\n", "has no index"),
        ("sample,bam\n", "no samples"),
        ("sample,rna\nA,data/a.rna.h5ad\n", "needs a 'bam' or a 'fragments' column"),
        ("sample,bam\nA B,data/a.bam\n", "sample id"),
        (
            "sample,bam,RNA\nA,data/a.bam,data/a.rna.h5ad\n",
            "unknown column 'RNA' (did you mean 'rna'?",
        ),
        ("sample,bam,scrna\nA,data/a.bam,data/a.rna.h5ad\n", "unknown column 'scrna' (did you"),
        (
            "sample,fragment\nA,data/a.tsv.gz\n",
            "unknown column 'fragment' (did you mean 'fragments'?",
        ),
        ("sample,bam,rna,view\nA,data/a.bam\n", "row 2: 2 fields but the header has 4"),
        ("sample,bam\nA,data/a.bam,x\n", "row 2: 3 fields but the header has 2"),
    ],
)
def test_bad_samplesheets(files: Path, text: str, message: str) -> None:
    sheet = write(files / "s.csv", text)
    with pytest.raises(InputError, match=None) as exc:
        read_samplesheet(sheet)
    assert message in str(exc.value)
    assert str(sheet) in str(exc.value)


def test_extra_columns_are_logged_and_ignored(
    files: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A lab's own columns (not close to a column scregnet reads) do not stop a run."""
    sheet = write(files / "s.csv", "sample,bam,notes,sample_id\nA,data/a.bam,first run,A-17\n")
    with caplog.at_level("WARNING"):
        samples = read_samplesheet(sheet)
    assert [s.sample for s in samples] == ["A"] and samples[0].rna is None
    assert "column(s) notes, sample_id ignored" in caplog.text


def test_params_resolve_and_fill_defaults(files: Path) -> None:
    write(files / "s.csv", "sample,bam\nA,data/a.bam\n")
    (files / "g.fa").write_text(">chr1\nACGT\n")
    (files / "g.gtf").write_text("")
    params = read_params(
        write(files / "p.yaml", "input: s.csv\nfasta: g.fa\ngtf: g.gtf\nmin_fragments: 10\n")
    )
    assert params["input"] == files / "s.csv"
    assert params["min_fragments"] == 10
    assert params["peaks"] is None and params["tile_size"] == 5000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fasta: g.fa\ngtf: g.gtf\n", "required parameter 'input'"),
        ("input: s.csv\nfasta: nope.fa\ngtf: g.gtf\n", "'fasta' points to"),
        ("- a\n- b\n", "YAML mapping"),
        ("input: [\n", "not valid YAML"),
        ("input: s.csv\nfasta: g.fa\ngtf: g.gtf\ngpu: maybe\n", "'gpu' must be true or false"),
        ("input: s.csv\nfasta: g.fa\ngtf: g.gtf\nhelp: 3\n", "'help' must be true or false"),
        (
            "input: s.csv\nfasta: g.fa\ngtf: g.gtf\nvalidate_params: 'no'\n",
            "'validate_params' must be true or false",
        ),
    ],
)
def test_bad_params(files: Path, text: str, message: str) -> None:
    write(files / "s.csv", "sample,bam\nA,data/a.bam\n")
    (files / "g.fa").write_text(">chr1\nACGT\n")
    (files / "g.gtf").write_text("")
    with pytest.raises(InputError) as exc:
        read_params(write(files / "p.yaml", text))
    assert message in str(exc.value)
