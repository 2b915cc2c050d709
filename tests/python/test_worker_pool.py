"""Worker processes: results in call order, a worker's error re-raised, and a worker killed from
outside named by its signal (SIGKILL, the out-of-memory killer's, as a MemoryError)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from scregnet.worker_pool import map_in_processes


def test_results_follow_the_calls_whatever_the_submission_order() -> None:
    calls = [(2, 3), (3, 2), (5, 1), (7, 0)]
    assert map_in_processes(pow, calls, 2, order=[3, 2, 0, 1]) == [8, 9, 5, 1]


def test_an_error_in_a_worker_is_raised_as_itself() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        map_in_processes(int, [("12",), ("x",)], 2)


def test_a_worker_killed_by_sigkill_is_reported_as_out_of_memory() -> None:
    with pytest.raises(MemoryError, match=r"^a test worker was killed by SIGKILL, most likely"):
        map_in_processes(
            signal.raise_signal, [(signal.SIGKILL,), (signal.SIGKILL,)], 2, what="a test worker"
        )


def test_a_worker_killed_by_another_signal_is_named() -> None:
    with pytest.raises(RuntimeError, match=r"^a worker process was killed by SIGUSR1$"):
        map_in_processes(signal.raise_signal, [(signal.SIGUSR1,), (signal.SIGUSR1,)], 2)


def test_fragments_exit_137_when_a_worker_is_killed(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    testdata: Path,
    tmp_path: Path,
) -> None:
    """A fragments worker killed by the OOM killer ends the command with the status Nextflow
    retries with more memory, one line, and no output."""
    from scregnet import worker_pool
    from scregnet.atac import fragments
    from scregnet.cli import main as cli
    from scregnet.errors import EXIT_OUT_OF_MEMORY

    def killed(
        _function: object, calls: list[tuple[object, ...]], threads: int, **kw: object
    ) -> object:
        return worker_pool.map_in_processes(
            signal.raise_signal, [(signal.SIGKILL,)] * len(calls), threads, what=str(kw["what"])
        )

    monkeypatch.setattr(fragments, "map_in_processes", killed)
    out = tmp_path / "f.tsv.gz"
    bam = testdata / "sinto_bam" / "test.bam"
    argv = [
        "fragments",
        "--quiet",
        "--threads",
        "2",
        "--bam",
        str(bam),
        "--exclude-contigs",
        "",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == EXIT_OUT_OF_MEMORY
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(
        "scregnet fragments: error: out of memory (a fragments worker process was killed by SIGKILL"
    )
    assert list(tmp_path.iterdir()) == []
