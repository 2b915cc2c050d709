"""Fixtures for the bad-input suite: a tiny world, its first stage outputs and a GRN model, built
once."""

from __future__ import annotations

from pathlib import Path

import pytest

from scregnet.cli.main import main as cli


@pytest.fixture(scope="session")
def staged(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Fragments, counts and clusters of sample1 of the tiny world (the inputs later stages take)."""
    out = tmp_path_factory.mktemp("staged")
    frag = out / "s1.fragments.tsv.gz"
    atac = out / "s1.atac.h5ad"
    clustered = out / "s1.clustered.h5ad"
    fai = tiny_world / "genome.fa.fai"
    assert (
        cli(
            [
                "fragments",
                "--bam",
                str(tiny_world / "samples" / "sample1.bam"),
                "--out",
                str(frag),
                "--quiet",
            ]
        )
        == 0
    )
    assert (
        cli(
            [
                "count",
                "--fragments",
                str(frag),
                "--peaks",
                str(tiny_world / "peaks.bed"),
                "--genome",
                str(fai),
                "--min-fragments",
                "500",
                "--out",
                str(atac),
                "--quiet",
            ]
        )
        == 0
    )
    assert (
        cli(["cluster", "--atac", str(atac), "--out", str(clustered), "--no-umap", "--quiet"]) == 0
    )
    grn_model = out / "grn_model.pt"
    rna = tiny_world / "samples" / "sample1.rna.h5ad"
    labels = tiny_world / "truth" / "grn_edges.tsv"
    argv = ["grn", "train", "--rna", str(rna), "--labels", str(labels), "--out", str(grn_model)]
    assert cli([*argv, "--epochs", "1", "--val-fraction", "0", "--quiet"]) == 0
    return {
        "world": tiny_world,
        "grn_model": grn_model,
        "fragments": frag,
        "atac": atac,
        "clustered": clustered,
        "fai": fai,
        "dir": out,
    }
