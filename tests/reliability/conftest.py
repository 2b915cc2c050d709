"""Fixtures for the bad-input suite: a tiny world, its first stage outputs and a GRN model, built
once per test run (tests/built_once.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from built_once import built_once
from scregnet.cli.main import main as cli


@pytest.fixture(scope="session")
def staged(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Fragments, counts and clusters of sample1 of the tiny world (the inputs later stages take),
    and a GRN model trained on its truth, built once per test run."""
    fai = tiny_world / "genome.fa.fai"

    def build(out: Path) -> None:
        frag, atac = out / "s1.fragments.tsv.gz", out / "s1.atac.h5ad"
        bam = tiny_world / "samples" / "sample1.bam"
        assert cli(["fragments", "--bam", str(bam), "--out", str(frag), "--quiet"]) == 0
        argv = ["count", "--fragments", str(frag), "--peaks", str(tiny_world / "peaks.bed")]
        argv += ["--genome", str(fai), "--min-fragments", "500", "--out", str(atac), "--quiet"]
        assert cli(argv) == 0
        argv = ["cluster", "--atac", str(atac), "--out", str(out / "s1.clustered.h5ad")]
        assert cli([*argv, "--no-umap", "--quiet"]) == 0
        rna = tiny_world / "samples" / "sample1.rna.h5ad"
        labels = tiny_world / "truth" / "grn_edges.tsv"
        argv = ["grn", "train", "--rna", str(rna), "--labels", str(labels)]
        argv += ["--out", str(out / "grn_model.pt"), "--epochs", "1", "--val-fraction", "0"]
        assert cli([*argv, "--quiet"]) == 0

    out = built_once(tmp_path_factory, "staged", build)
    return {
        "world": tiny_world,
        "grn_model": out / "grn_model.pt",
        "fragments": out / "s1.fragments.tsv.gz",
        "atac": out / "s1.atac.h5ad",
        "clustered": out / "s1.clustered.h5ad",
        "fai": fai,
        "dir": out,
    }
