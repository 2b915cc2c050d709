"""The content the module nf-tests assert (md5s, counts, headers) is what the same commands write
on this machine: nf-test cannot run here, so each constant is reproduced from the module's command
(the step table's flags with the module test's ``ext.args``) on the same simulated world."""

from __future__ import annotations

import csv
import gzip
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scregnet.io.params import DEFAULTS
from scregnet.pipeline.steps import STEPS

REPO = Path(__file__).resolve().parents[2]
MODULES = REPO / "modules" / "local"
MD5 = re.compile(r"encodeHex\(\)\.toString\(\) == '([0-9a-f]{32})'")


def nftest(module: str) -> str:
    return (MODULES / module / "tests" / "main.nf.test").read_text()


def ext_args(module: str, process: str) -> list[str]:
    """``ext.args`` the module test's nextflow.config gives ``process`` (split on spaces)."""
    config = (MODULES / module / "tests" / "nextflow.config").read_text()
    m = re.search(rf"withName: '{process}' \{{ ext\.args = '([^']*)' \}}", config)
    return m.group(1).split() if m else []


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def scregnet(argv: list[str], cwd: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bin" / "scregnet"), *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.fixture(scope="module")
def module_outputs(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FRAGMENTS then COUNT on sample1 of the tiny world (seed 0, as the SIMULATE setup runs)."""
    assert ext_args("fragments", "SIMULATE") == ["--seed", "0"]
    work = tmp_path_factory.mktemp("nftest")
    # FRAGMENTS keeps conf/modules.config's ext.args (the module test config does not set them)
    assert ext_args("fragments", "FRAGMENTS") == []
    bam = tiny_world / "samples" / "sample1.bam"
    argv = STEPS["FRAGMENTS"].argv(
        {"bam": bam, "out": "sample1.fragments.tsv.gz"}, DEFAULTS, threads=2
    )
    scregnet(argv, work)
    scregnet(
        [
            "count",
            "--fragments", "sample1.fragments.tsv.gz",
            "--peaks", str(tiny_world / "peaks.bed"),
            "--genome", str(tiny_world / "genome.fa.fai"),
            "--tss", str(tiny_world / "genes.gtf"),
            "--out", "sample1.atac.h5ad",
            "--qc", "sample1.qc.tsv",
            "--threads", "2",
            *ext_args("count", "COUNT"),
        ],
        work,
    )  # fmt: skip
    return work


def test_fragments_md5_is_the_commands_output(module_outputs: Path) -> None:
    (expected,) = MD5.findall(nftest("fragments"))
    with gzip.open(module_outputs / "sample1.fragments.tsv.gz", "rt") as fh:
        records = [line for line in fh.read().split("\n") if line and not line.startswith("#")]
    assert md5("\n".join(records)) == expected


def test_count_qc_content_is_the_commands_output(module_outputs: Path) -> None:
    text = nftest("count")
    (expected_md5,) = MD5.findall(text)
    header = re.search(r"readLines\(\)\[0\]\.split\('\\t'\)\.toList\(\) == \[([^\]]*)\]", text)
    cells = re.search(r"== 'True' \} == (\d+) \}", text)
    assert header and cells
    with open(module_outputs / "sample1.qc.tsv", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    assert rows[0] == re.findall(r"'([^']+)'", header.group(1))
    assert sum(r[7] == "True" for r in rows[1:]) == int(cells.group(1))
    assert md5("\n".join("\t".join(r[:3]) for r in rows)) == expected_md5
