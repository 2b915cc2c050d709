"""Write errors: a full disk, a read-only file system or a refused write give one error line with
the output's path and the reason, exit 1, and leave nothing partial (no file, no temporary).

Full and read-only disks are real tmpfs mounts (root only; skipped elsewhere); the same failures
are also injected at the writing calls so that every machine runs a share of the class.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scregnet.cli.main import main as cli

Mount = Callable[..., Path]


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Mount]:
    """``mount(name, "size=64k", "ro")``: a fresh tmpfs at ``tmp_path / name``."""
    made: list[Path] = []

    def _mount(name: str, *options: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a small tmpfs needs root")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", ",".join(["mode=0777", *options]), "tmpfs", str(path)],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
        made.append(path)
        return path

    yield _mount
    for path in made:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _argv(name: str, s: dict[str, Path], where: Path) -> tuple[list[str], Path]:
    """A command of class ``name`` writing under ``where``, and the output its error must name."""
    world = s["world"]
    if name == "fragments":
        out = where / "f.tsv.gz"
        return [
            "fragments",
            "--bam",
            str(world / "samples" / "sample1.bam"),
            "--out",
            str(out),
        ], out
    if name == "count":
        out = where / "c.h5ad"
        argv = ["count", "--fragments", str(s["fragments"]), "--peaks", str(world / "peaks.bed")]
        argv += [
            "--genome",
            str(s["fai"]),
            "--min-fragments",
            "500",
            "--qc",
            str(where / "c.qc.tsv"),
        ]
        return [*argv, "--out", str(out)], out
    if name == "cluster":
        out = where / "c.h5ad"
        return ["cluster", "--atac", str(s["atac"]), "--out", str(out), "--no-umap"], out
    if name == "tracks":
        out = where / "tracks"
        argv = ["tracks", "--fragments", str(s["fragments"]), "--clusters", str(s["clustered"])]
        return [*argv, "--genome", str(s["fai"]), "--outdir", str(out)], out
    if name == "simulate":
        out = where / "world"
        return ["simulate", "--preset", "tiny", "--outdir", str(out)], out
    raise AssertionError(name)


def _check(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: Path, reason: str, where: Path
) -> None:
    before = sorted(p.name for p in where.iterdir())
    code = cli([*argv, "--quiet"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 1, f"exit {code}"
    assert len(lines) == 1, lines
    assert "error" in lines[0] and reason in lines[0] and str(named) in lines[0], lines[0]
    assert sorted(p.name for p in where.iterdir()) == before, "partial output left"


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("fragments", "64k"),
        ("fragments", "160k"),  # the first parts fit, the joined file does not
        ("count", "64k"),
        ("count", "160k"),  # the matrix is half written when the disk fills
        ("cluster", "100k"),
        ("tracks", "64k"),
        ("simulate", "256k"),
    ],
)
def test_full_disk(
    name: str,
    size: str,
    staged: dict[str, Path],
    mount: Mount,
    capsys: pytest.CaptureFixture[str],
) -> None:
    disk = mount("disk", f"size={size}")
    argv, named = _argv(name, staged, disk)
    _check(capsys, argv, named, "No space left on device", disk)


@pytest.mark.parametrize("name", ["fragments", "count", "cluster", "tracks", "simulate"])
def test_read_only_file_system(
    name: str, staged: dict[str, Path], mount: Mount, capsys: pytest.CaptureFixture[str]
) -> None:
    disk = mount("ro", "size=64k", "ro")
    argv, _ = _argv(name, staged, disk)
    _check(capsys, argv, disk, "read-only file system", disk)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EIO])
def test_failed_h5ad_write_names_the_output(
    code: int,
    staged: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import scregnet.io.h5ad

    def refuse(path: str | Path, mode: str = "r", *args: object, **kwargs: object) -> object:
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(scregnet.io.h5ad, "open", refuse, raising=False)
    argv, named = _argv("cluster", staged, tmp_path)
    _check(capsys, argv, named, os.strerror(code), tmp_path)


def test_count_writes_no_qc_table_without_its_matrix(
    staged: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import scregnet.io.h5ad

    def full(adata: object, path: str | Path, **kwargs: object) -> None:
        Path(path).write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(scregnet.io.h5ad, "write_h5ad_file", full)
    argv, named = _argv("count", staged, tmp_path)
    _check(capsys, argv, named, "No space left on device", tmp_path)
    assert not (tmp_path / "c.qc.tsv").exists()


def test_failed_rename_leaves_no_temporary(
    staged: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import scregnet.io.atomic

    def refuse(src: str | Path, dst: str | Path) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dst))

    monkeypatch.setattr(scregnet.io.atomic.os, "replace", refuse)
    argv, named = _argv("fragments", staged, tmp_path)
    _check(capsys, argv, named, "Permission denied", tmp_path)
