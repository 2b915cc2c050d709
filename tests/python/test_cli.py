"""The CLI shell: version, help for every subcommand, error mapping, the launcher."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scregnet import __version__
from scregnet.cli import main as cli

REPO = Path(__file__).resolve().parents[2]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"scregnet {__version__}"


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    available = cli.subcommands()
    assert "evaluate" in available and "simulate" in available
    for name in available:
        with pytest.raises(SystemExit) as exc:
            cli.main([name, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert "--seed" in out and "--threads" in out and "--quiet" in out
        # a default is shown where there is one, once, and never as None
        assert "default: None" not in " ".join(out.split()), name


def test_help_shows_real_defaults_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["grn", "train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--epochs EPOCHS maximum training epochs (default: 15)" in out
    with pytest.raises(SystemExit):
        cli.main(["grn", "score", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "comma-separated (default: the labels' TFs) --shard K/N" in out
    assert "--out OUT ranked edges TSV (with --shard: the shard's pairs) --attention-out" in out
    # a help that mentions a default in words still shows the value
    with pytest.raises(SystemExit):
        cli.main(["tfbind", "train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(the paper's by default) (default: 160,240,240)" in out  # as --filters takes it
    assert "chromosomes never used (default: chrM,MT,M,chrMT)" in out
    assert "--seed SEED random seed (default: 0) --threads THREADS CPU threads (default: 1)" in out
    with pytest.raises(SystemExit):
        cli.main(["tfbind", "merge", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "on purpose (their peaks get no prediction) (default: none)" in out
    assert "cell-level outputs: --neighbors" in out and "not with --chrom" not in out


def test_input_error_is_one_line_and_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["evaluate", "--truth", str(tmp_path / "nope"), "--results", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "nope" in err[0] and "does not exist" in err[0]
    a_file = tmp_path / "results.txt"
    a_file.write_text("x\n")
    for argv in (
        ["evaluate", "--truth", str(tmp_path), "--results", str(a_file)],
        ["report", "--results", str(a_file), "--out", str(tmp_path / "r.html")],
    ):
        assert cli.main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "results directory is a file, not a folder" in err[0], err


def test_running_out_of_memory_exits_137(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failed allocation ends with the OOM killer's status, which Nextflow retries with more
    memory, and one line saying so; a bug still exits 1."""
    import numpy as np

    from scregnet.cli import evaluate
    from scregnet.errors import EXIT_OUT_OF_MEMORY

    def allocate(_args: object) -> int:
        np.ones(2**62, dtype=np.uint8)  # 4 EiB: numpy refuses at once
        return 0

    monkeypatch.setattr(evaluate, "main", allocate)
    argv = ["evaluate", "--truth", ".", "--results", "."]
    assert EXIT_OUT_OF_MEMORY == 137
    assert cli.main(argv) == EXIT_OUT_OF_MEMORY
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("scregnet evaluate: error: out of memory (")
    assert "4.00 EiB" in err[0]

    def bug(_args: object) -> int:
        raise ValueError("a bug")

    monkeypatch.setattr(evaluate, "main", bug)
    assert cli.main(argv) == 1
    assert "internal error: ValueError: a bug" in capsys.readouterr().err


def test_running_out_of_gpu_memory_says_what_to_change(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from scregnet.cli import evaluate

    def gpu(_args: object) -> int:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore")

    monkeypatch.setattr(evaluate, "main", gpu)
    assert cli.main(["evaluate", "--truth", ".", "--results", "."]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "scregnet evaluate: error: out of GPU memory (CUDA out of memory. Tried to allocate "
        "2.00 GiB); rerun on a GPU with more memory, with a smaller --batch-size where the "
        "subcommand takes one, or with --device cpu"
    ]


def test_negative_seed_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["evaluate", "--truth", ".", "--results", ".", "--seed", "-1"])
    assert exc.value.code == 2


def test_launcher_works_from_a_checkout(tmp_path: Path) -> None:
    # run bin/scregnet with a python that does not have the package on its path
    env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    out = subprocess.run(
        [sys.executable, "-S", str(REPO / "bin" / "scregnet"), "--version"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    # -S drops site-packages, so numpy etc. are unavailable; --version must still work
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"scregnet {__version__}"
