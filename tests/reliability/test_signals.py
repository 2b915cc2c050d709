"""Signals: SIGTERM, SIGINT and SIGHUP stop the runner's steps (their whole process groups), remove
temporary outputs and end with one line and exit 128 + signal; the same for every subcommand; a
later run removes what a killed one left."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scregnet.cli import main as cli_main
from scregnet.io.atomic import atomic_dir, atomic_path, atomic_paths, scratch_dir
from scregnet.pipeline import Step, run_steps

#: a step: starts a grandchild, writes its output through a temporary file, then waits.
#: "clean": a scregnet-like step that turns SIGTERM into an exception and cleans up;
#: "stubborn": ignores SIGTERM (so does its grandchild), to be killed with its group.
STEP = """
import contextlib, os, signal, subprocess, sys, time
from pathlib import Path
from scregnet.cli.main import signals_as_exceptions
from scregnet.io.atomic import atomic_path
out, pids, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
with signals_as_exceptions() if mode == "clean" else contextlib.nullcontext():
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with atomic_path(out) as tmp:
        tmp.write_text("partial")
        pids.write_text(f"{os.getpid()} {grandchild.pid}")
        time.sleep(120)
        tmp.write_text("complete")
"""

#: `scregnet run` in a child process, its plan replaced by the steps given as JSON
RUNNER = """
import json, sys
from pathlib import Path
import scregnet.pipeline.execute as execute
from scregnet.pipeline import Step
from scregnet.cli.main import main
spec = json.loads(sys.argv[1])
execute.STOP_GRACE_S = spec["grace"]
execute.TEST_PROFILE["preset"] = "tiny"
steps = [
    Step(s["stage"], s["name"], s["argv"], [], [Path(o) for o in s["outputs"]],
         executable=sys.executable)
    for s in spec["steps"]
]
execute.plan = lambda params, outdir, **_: steps
sys.exit(main(spec["argv"]))
"""


SCREGNET = [sys.executable, "-m", "scregnet.cli.main"]


def _run_argv(world: Path, outdir: Path) -> list[str]:
    return ["run", "--params", str(world / "params.yaml"), "--outdir", str(outdir)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _step(stage: str, out: Path, pids: Path, mode: str) -> dict[str, object]:
    return {
        "stage": stage,
        "name": "s1",
        "argv": ["-c", STEP, str(out), str(pids), mode],
        "outputs": [str(out)],
    }


@pytest.fixture(autouse=True)
def sigint_not_ignored() -> Iterator[None]:
    """SIGINT handled as an interactive shell's foreground job has it. A shell starts background
    jobs with SIGINT ignored, and a signal ignored at start stays ignored in scregnet and in the
    processes it starts (as `nohup` asks), so under `make test &` the SIGINT cases could not
    run. Children get the default action (exec resets handled signals)."""
    before = signal.getsignal(signal.SIGINT)
    if before == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture
def reap() -> Iterator[list[int]]:
    """Pids the test may leave running when it fails; killed at the end."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _start_runner(spec: dict[str, object]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


@pytest.mark.parametrize(
    ("sig", "line"),
    [
        (signal.SIGTERM, "scregnet run: stopped by SIGTERM, temporary files removed"),
        (signal.SIGINT, "scregnet run: interrupted (SIGINT), temporary files removed"),
        (signal.SIGHUP, "scregnet run: stopped by SIGHUP, temporary files removed"),
    ],
)
def test_a_signal_to_the_runner_stops_every_step_and_its_children(
    sig: signal.Signals, line: str, tiny_world: Path, tmp_path: Path, reap: list[int]
) -> None:
    outdir = tmp_path / "out"
    clean, stubborn = tmp_path / "clean.pids", tmp_path / "stubborn.pids"
    spec = {
        "grace": 1.0,
        "argv": [*_run_argv(tiny_world, outdir), "--jobs", "2", "--quiet"],
        "steps": [
            _step("FRAGMENTS", outdir / "a.txt", clean, "clean"),
            _step("IMPUTE", outdir / "b.txt", stubborn, "stubborn"),
        ],
    }
    runner = _start_runner(spec)
    reap.append(runner.pid)
    _wait_for(lambda: clean.exists() and stubborn.exists(), "both steps to start")
    pids = [int(p) for f in (clean, stubborn) for p in f.read_text().split()]
    reap.extend(pids)
    assert all(_alive(p) for p in pids)
    temps = sorted(p.name for p in outdir.iterdir() if p.name.startswith((".a.txt.", ".b.txt.")))
    assert len(temps) == 2
    runner.send_signal(sig)
    _stdout, stderr = runner.communicate(timeout=60)
    assert runner.returncode == 128 + sig
    assert stderr.strip().splitlines() == [line]
    _wait_for(lambda: not any(_alive(p) for p in pids), "steps and grandchildren to end", 10)
    time.sleep(0.5)  # nothing writes afterwards
    assert not (outdir / "a.txt").exists() and not (outdir / "b.txt").exists()
    assert not [p for p in outdir.iterdir() if p.name.startswith((".a.txt.", ".b.txt."))]
    assert not (outdir / ".scregnet-run.lock").exists()
    trace = (outdir / "pipeline_info" / "trace.tsv").read_text().splitlines()[1:]
    assert sorted(row.split("\t")[2] for row in trace) == ["ABORTED", "ABORTED"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_step_ends_when_the_runner_is_killed_outright(
    tiny_world: Path, tmp_path: Path, reap: list[int]
) -> None:
    outdir = tmp_path / "out"
    pids_file = tmp_path / "step.pids"
    spec = {
        "grace": 1.0,
        "argv": _run_argv(tiny_world, outdir),
        "steps": [_step("FRAGMENTS", outdir / "a.txt", pids_file, "clean")],
    }
    runner = _start_runner(spec)
    reap.append(runner.pid)
    _wait_for(pids_file.exists, "the step to start")
    step_pid, grandchild = (int(p) for p in pids_file.read_text().split())
    reap += [step_pid, grandchild]
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=60)
    _wait_for(lambda: not _alive(step_pid), "the orphaned step to end", 10)
    assert not [p for p in outdir.iterdir() if p.name.startswith(".a.txt.")]
    assert not (outdir / "a.txt").exists()


def test_a_signal_while_the_test_world_is_simulated_leaves_no_part_folder(
    tmp_path: Path, reap: list[int]
) -> None:
    outdir = tmp_path / "out"
    spec = {"grace": 10.0, "argv": ["run", "--profile", "test", "--outdir", str(outdir)]}
    spec["steps"] = []
    runner = _start_runner(spec)
    reap.append(runner.pid)

    def part() -> bool:
        return outdir.exists() and any(p.name.startswith(".testdata.") for p in outdir.iterdir())

    _wait_for(part, "the simulation's .part folder")
    runner.send_signal(signal.SIGTERM)
    _stdout, stderr = runner.communicate(timeout=60)
    assert runner.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith("scregnet run: stopped by SIGTERM")
    assert not [p for p in outdir.iterdir() if p.name.startswith(".testdata")]
    assert not (outdir / "testdata").exists()


def test_sigterm_to_simulate_removes_its_part_folder(tmp_path: Path, reap: list[int]) -> None:
    world = tmp_path / "world"
    proc = subprocess.Popen(
        [*SCREGNET, "simulate", "--preset", "tiny", "--quiet", "--outdir", str(world)],
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    reap.append(proc.pid)
    _wait_for(lambda: any(p.name.startswith(".world.") for p in tmp_path.iterdir()), ".part")
    proc.send_signal(signal.SIGTERM)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert stderr.strip().splitlines() == [
        "scregnet simulate: stopped by SIGTERM, temporary files removed"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("writer", ["file", "files", "folder", "scratch"])
def test_a_signal_the_moment_a_temporary_is_created_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    """The signal lands right after the temporary file or folder exists, before the writer has
    returned its name: cleanup still finds and removes it."""
    calls = {"n": 0}
    real_open, real_mkdir = os.open, os.mkdir
    stop_at = 2 if writer == "files" else 1

    def landing(real: Callable[..., object]) -> Callable[..., object]:
        def created_then_signal(*args: object, **kwargs: object) -> object:
            result = real(*args, **kwargs)
            if calls["n"] < stop_at:  # the cleanup's own calls are not counted
                calls["n"] += 1
            if calls["n"] == stop_at and not calls.get("raised"):
                calls["raised"] = 1
                raise cli_main.Terminated(signal.SIGTERM)
            return result

        return created_then_signal

    monkeypatch.setattr(os, "open", landing(real_open))
    monkeypatch.setattr(os, "mkdir", landing(real_mkdir))
    blocks = {
        "file": lambda: atomic_path(tmp_path / "a.h5ad"),
        "files": lambda: atomic_paths(tmp_path / "a.bed.gz", tmp_path / "a.bed.gz.tbi"),
        "folder": lambda: atomic_dir(tmp_path / "tracks", owner="test"),
        "scratch": lambda: scratch_dir(tmp_path / "a.tsv.gz", "parts"),
    }
    with pytest.raises(cli_main.Terminated), blocks[writer]():
        pytest.fail("the block must not start")
    monkeypatch.undo()
    assert calls == {"n": stop_at, "raised": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ---- the shared handler, in process -------------------------------------------------------------


def _fake_command(
    monkeypatch: pytest.MonkeyPatch, body: Callable[[argparse.Namespace], int]
) -> None:
    """Register ``scregnet fakecmd --out PATH`` running ``body``."""
    module = types.ModuleType("fake_signal_command")
    module.HELP = "a command for the signal tests"  # type: ignore[attr-defined]
    module.add_arguments = lambda p: p.add_argument("--out", type=Path)  # type: ignore[attr-defined]
    module.main = body  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_signal_command", module)
    monkeypatch.setitem(cli_main.SUBCOMMANDS, "fakecmd", "fake_signal_command")


@pytest.mark.parametrize(
    ("sig", "line"),
    [
        (signal.SIGTERM, "scregnet fakecmd: stopped by SIGTERM, temporary files removed"),
        (signal.SIGINT, "scregnet fakecmd: interrupted (SIGINT), temporary files removed"),
        (signal.SIGHUP, "scregnet fakecmd: stopped by SIGHUP, temporary files removed"),
    ],
)
def test_every_subcommand_turns_a_signal_into_a_clean_exit(
    sig: signal.Signals,
    line: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def body(args: argparse.Namespace) -> int:
        with (
            atomic_dir(args.out, owner="fakecmd") as folder,
            atomic_path(args.out.with_name("table.tsv")) as table,
        ):
            (folder / "x.bed").write_text("partial")
            table.write_text("partial")
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler raises before this ends
        return 0

    _fake_command(monkeypatch, body)
    before = {s: signal.getsignal(s) for s in cli_main.STOP_SIGNALS}
    start = time.monotonic()
    assert cli_main.main(["fakecmd", "--out", str(tmp_path / "tracks")]) == 128 + sig
    assert time.monotonic() - start < 4
    assert capsys.readouterr().err.strip().splitlines() == [line]
    assert list(tmp_path.iterdir()) == []
    assert {s: signal.getsignal(s) for s in cli_main.STOP_SIGNALS} == before


def test_a_second_signal_does_not_cut_the_cleanup_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cleaned: list[str] = []

    def body(args: argparse.Namespace) -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # impatient: a second one during cleanup
            time.sleep(0.1)
            cleaned.append("done")
        return 0

    _fake_command(monkeypatch, body)
    assert cli_main.main(["fakecmd"]) == 128 + signal.SIGTERM
    assert cleaned == ["done"]


def test_a_signal_ignored_before_the_command_stays_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def body(args: argparse.Namespace) -> int:
        os.kill(os.getpid(), signal.SIGHUP)  # as under nohup: ignored
        time.sleep(0.1)
        args.out.write_text("done")
        return 0

    _fake_command(monkeypatch, body)
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert cli_main.main(["fakecmd", "--out", str(tmp_path / "x")]) == 0
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert (tmp_path / "x").read_text() == "done"


# ---- a later run removes what a killed one left ---------------------------------------------------


def test_a_later_run_removes_temp_leftovers_of_a_killed_one_and_nothing_else(
    tmp_path: Path,
) -> None:
    out = tmp_path / "s1.atac.h5ad"
    tracks = tmp_path / "tracks" / "s1"
    left = [
        tmp_path / ".s1.atac.h5ad.k3j_9x0q.part.atac.h5ad",  # io.atomic file
        tmp_path / ".s1.atac.h5ad.k3j_9x0q.part",  # io.atomic before its suffix is added
        tmp_path / ".s1.atac.h5ad.parts.a1b2c3d4",  # atac.fragments' per-contig folder
        tmp_path / "tracks" / ".s1.abcd1234.part",  # io.atomic folder
        tmp_path / "pipeline_info" / ".trace.tsv.zzzzzzzz.part.tsv",  # the runner's own
    ]
    kept = [
        tmp_path / ".s1.atac.h5ad.notes",
        tmp_path / "s1.atac.h5ad.part",
        tmp_path / ".s2.atac.h5ad.k3j_9x0q.part.atac.h5ad",  # not an output of this run
        tmp_path / ".s1.atac.h5ad.atac.h5ad.k3j_9x0q.part.atac.h5ad",  # sample 's1.atac.h5ad'
    ]
    for path in left + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name.endswith(("a1b2c3d4", "abcd1234.part")):
            path.mkdir()
            (path / "inside").write_text("x")
        else:
            path.write_text("x")
    code = "import sys,os; os.makedirs(sys.argv[2]); open(sys.argv[1],'w').write('ok')"
    step = Step(
        "COUNT",
        "s1",
        ["-c", code, str(out), str(tracks)],
        [],
        [out, tracks],
        executable=sys.executable,
    )
    lines: list[str] = []
    assert run_steps([step], tmp_path, on_progress=lines.append) == ["COUNT:s1"]
    assert [p for p in left if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []
    assert f"removed {len(left)} temporary file(s) left by an interrupted run" in lines
