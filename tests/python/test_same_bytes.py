"""Same command, same seed, same machine: the same bytes in every output file.

Each command runs twice into the same output path (the first run's outputs moved aside in
between), so paths recorded inside files are equal and any other difference (a temporary file
name, a date, a timing) fails the comparison. HDF5 (h5ad) files are byte-stable too: h5py writes
no object timestamps unless asked (``track_times``), so they are compared byte for byte as well.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import torch

from scregnet.cli import main as cli

SMALL_TFBIND = ["--filters", "4,4,4", "--hidden", "4", "--epochs", "1"]
SMALL_IMPUTE = ["--epochs", "2", "--hidden-dim", "32", "--latent-dim", "8", "--threads", "1"]


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _differing(a: Path, b: Path) -> list[str]:
    da, db = _digests(a), _digests(b)
    assert da, f"{a} holds no file"
    return sorted(k for k in da.keys() | db.keys() if da.get(k) != db.get(k))


def _run_twice(tmp_path: Path, argv: Callable[[Path], list[str]]) -> tuple[Path, Path]:
    """Run ``argv(out)`` twice into ``tmp_path/run``; the first run's outputs end in ``first``."""
    run, first = tmp_path / "run", tmp_path / "first"
    run.mkdir(parents=True)
    assert cli.main([*argv(run), "--quiet"]) == 0
    run.rename(first)
    run.mkdir()
    assert cli.main([*argv(run), "--quiet"]) == 0
    return first, run


def test_simulate_writes_the_same_bytes_wherever_it_writes(
    tiny_world: Path, tmp_path: Path
) -> None:
    out = tmp_path / "world"
    assert cli.main(["simulate", "--preset", "tiny", "--seed", "0", "--outdir", str(out)]) == 0
    assert _differing(tiny_world, out) == []


def test_impute_writes_the_same_bytes(tiny_world: Path, tmp_path: Path) -> None:
    rna = tiny_world / "samples" / "sample1.rna.h5ad"

    def argv(out: Path) -> list[str]:
        out_h5ad = str(out / "s.imputed.h5ad")
        return ["impute", "--rna", str(rna), "--out", out_h5ad, "--device", "cpu", *SMALL_IMPUTE]

    first, second = _run_twice(tmp_path, argv)
    assert sorted(_digests(first)) == ["s.imputed.h5ad", "s.imputed.loss.tsv", "s.imputed.model.pt"]
    assert _differing(first, second) == []


def test_tfbind_train_and_fragments_write_the_same_bytes(tiny_world: Path, tmp_path: Path) -> None:
    def argv(out: Path) -> list[str]:
        return [
            "tfbind", "train", "--fasta", str(tiny_world / "genome.fa"),
            "--bulk", str(tiny_world / "bulk" / "bulk_sheet.csv"),
            "--motifs", str(tiny_world / "motifs.jaspar"),
            "--out", str(out / "model.pt"), "--device", "cpu", "--threads", "1", *SMALL_TFBIND,
        ]  # fmt: skip

    first, second = _run_twice(tmp_path / "tfbind", argv)
    assert _differing(first, second) == []

    def fragments(out: Path) -> list[str]:
        bam = tiny_world / "samples" / "sample1.bam"
        return ["fragments", "--bam", str(bam), "--out", str(out / "s.fragments.tsv.gz")]

    first, second = _run_twice(tmp_path / "fragments", fragments)
    assert sorted(_digests(first)) == ["s.fragments.tsv.gz", "s.fragments.tsv.gz.tbi"]
    assert _differing(first, second) == []


def test_a_checkpoint_saved_by_path_would_differ(tmp_path: Path) -> None:
    """What the comparison guards against: ``torch.save`` to a path names the archive inside after
    the file, so the same model saved under two temporary names differs; through a file object
    (as scregnet saves) it does not."""
    payload = {"weight": torch.arange(6.0)}
    by_path = [tmp_path / ".model.pt.abc.part.pt", tmp_path / ".model.pt.xyz.part.pt"]
    for path in by_path:
        torch.save(payload, path)
    assert by_path[0].read_bytes() != by_path[1].read_bytes()
    by_handle = [tmp_path / "a.pt", tmp_path / "b.pt"]
    for path in by_handle:
        with path.open("wb") as handle:
            torch.save(payload, handle)
    assert by_handle[0].read_bytes() == by_handle[1].read_bytes()
