"""One run per results folder: a second `scregnet run` refuses with one line naming the first, a
lock left by a killed run is taken over, and a refused run touches nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scregnet.cli.main import main as cli
from scregnet.errors import InputError
from scregnet.pipeline import LOCK_NAME, Step, outdir_lock, run_steps
from scregnet.pipeline.lock import _process_start

HOLD = """
import sys, time
from pathlib import Path
from scregnet.pipeline import outdir_lock
try:
    with outdir_lock(Path(sys.argv[1])):
        print("won", flush=True)
        time.sleep(float(sys.argv[2]))
except Exception as exc:
    print("refused", exc, flush=True)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """Another process holding the lock of ``tmp_path / 'out'``."""
    outdir = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(outdir), "60"],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "won"
    yield proc, outdir
    proc.kill()
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_second_run_refuses_with_one_line_naming_the_first(
    holder: tuple[subprocess.Popen[str], Path],
    tiny_world: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proc, outdir = holder
    before = _listing(outdir)
    code = cli(["run", "--params", str(tiny_world / "params.yaml"), "--outdir", str(outdir)])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1
    assert err.startswith(f"scregnet run: error: {outdir}: another scregnet run")
    assert f"pid {proc.pid} on host {socket.gethostname()}" in err
    assert _listing(outdir) == before == [LOCK_NAME]


def test_the_test_profile_refuses_before_simulating(
    holder: tuple[subprocess.Popen[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    proc, outdir = holder
    assert cli(["run", "--profile", "test", "--outdir", str(outdir)]) == 1
    assert f"pid {proc.pid}" in capsys.readouterr().err
    assert not (outdir / "testdata").exists()


def _lock_reader(outdir: Path, out: Path) -> Step:
    """A step that copies the run's lock file (as it is while the run holds it) to ``out``."""
    code = "import shutil,sys; shutil.copy(sys.argv[1], sys.argv[2])"
    return Step(
        "COUNT",
        "s1",
        ["-c", code, str(outdir / LOCK_NAME), str(out)],
        [],
        [out],
        executable=sys.executable,
    )


def test_the_lock_names_pid_host_and_start_and_goes_when_the_run_ends(tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    assert run_steps([_lock_reader(tmp_path, seen)], tmp_path) == ["COUNT:s1"]
    lock = json.loads(seen.read_text())
    assert lock["pid"] == os.getpid()
    assert lock["host"] == socket.gethostname()
    assert time.strptime(lock["start"][:19], "%Y-%m-%dT%H:%M:%S")
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_left_by_a_killed_run_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outdir = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(outdir), "60"],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "won"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert json.loads((outdir / LOCK_NAME).read_text())["pid"] == proc.pid  # left behind
    seen = tmp_path / "seen.json"
    assert run_steps([_lock_reader(outdir, seen)], outdir) == ["COUNT:s1"]
    assert json.loads(seen.read_text())["pid"] == os.getpid()
    assert f"taking over the lock of an earlier run that is no longer running (pid {proc.pid}" in (
        caplog.text
    )


def _write_lock(outdir: Path, **content: object) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    base = {"host": socket.gethostname(), "start": "2026-12-02T10:00:00+0000"}
    (outdir / LOCK_NAME).write_text(json.dumps({**base, **content}))


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_live_process_named_in_the_lock_is_respected_without_flock(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    # a file system whose flock does not reach the other process: the pid in the file decides
    _write_lock(tmp_path, pid=sleeper.pid, proc_start=_process_start(sleeper.pid))
    with pytest.raises(InputError, match=f"pid {sleeper.pid} on host"), outdir_lock(tmp_path):
        pass
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == sleeper.pid  # left as it was


def test_a_reused_pid_does_not_hold_the_lock(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    if _process_start(sleeper.pid) is None:
        pytest.skip("no /proc: process start times are unknown")
    _write_lock(tmp_path, pid=sleeper.pid, proc_start="1")  # same pid, another process
    with outdir_lock(tmp_path) as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_a_lock_from_another_host_on_a_network_file_system_is_respected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another machine's run cannot be checked from here: the error names the file to remove."""
    import scregnet.pipeline.lock as lock_module

    monkeypatch.setattr(lock_module, "_file_system", lambda _path: "nfs4")
    _write_lock(tmp_path, pid=12345, host="node-elsewhere")
    with (
        pytest.raises(InputError, match=f"node-elsewhere.*delete {tmp_path / LOCK_NAME}"),
        outdir_lock(tmp_path),
    ):
        pass


def test_a_killed_runs_lock_from_another_host_name_on_a_local_disk_is_taken_over(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    """A run in a container (a host name of its own) killed with -9 on a local disk: its flock is
    gone, and only this machine could hold one there, so the next run takes the lock over, even
    when the recorded pid is alive here (another process in this pid namespace)."""
    import scregnet.pipeline.lock as lock_module

    assert lock_module._file_system(tmp_path) is not None
    for fs in ("ext4", "overlay", "tmpfs"):
        caplog.clear()
        _write_lock(tmp_path, pid=sleeper.pid, host="ctr-run-1")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(lock_module, "_file_system", lambda _path, fs=fs: fs)
            with caplog.at_level("WARNING", logger="scregnet"), outdir_lock(tmp_path) as lock:
                assert json.loads(lock.read_text())["host"] == socket.gethostname()
        assert "ctr-run-1" in caplog.text and "taking over" in caplog.text


def test_of_processes_starting_together_exactly_one_runs(tmp_path: Path) -> None:
    outdir = tmp_path / "out"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HOLD, str(outdir), "60"],
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for _ in range(4)
    ]
    try:  # each process says whether it won before the winner lets go
        results = [p.stdout.readline().split()[0] for p in procs if p.stdout is not None]
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    assert sorted(results) == ["refused", "refused", "refused", "won"]


def test_nested_holders_in_one_process_keep_the_lock_until_the_outer_one_ends(
    tmp_path: Path,
) -> None:
    with outdir_lock(tmp_path):
        with outdir_lock(tmp_path):
            pass
        out = subprocess.run(
            [sys.executable, "-c", HOLD, str(tmp_path), "0"],
            capture_output=True,
            text=True,
            env=_env(),
            check=True,
        )
        assert out.stdout.startswith("refused")
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_failed_run_releases_the_lock(tmp_path: Path) -> None:
    bad = Step("COUNT", "s1", ["-c", "raise SystemExit(3)"], [], [], executable=sys.executable)
    with pytest.raises(InputError, match="COUNT"):
        run_steps([bad], tmp_path)
    assert not (tmp_path / LOCK_NAME).exists()
    with outdir_lock(tmp_path):
        pass


RUN_CLI = [sys.executable, "-m", "scregnet.cli.main", "run"]
RUN_SLOW = """
import sys
from pathlib import Path
from scregnet.pipeline import Step, run_steps
out = Path(sys.argv[1])
code = (
    "import sys, time; from scregnet.io.atomic import atomic_path\\n"
    "with atomic_path(sys.argv[1]) as tmp:\\n"
    "    tmp.write_text('partial'); print('writing', flush=True); time.sleep(12)\\n"
    "    tmp.write_text('complete')\\n"
)
step = Step("COUNT", "s1", ["-c", code, str(out / "a.txt")], [], [out / "a.txt"],
            executable=sys.executable)
run_steps([step], out)
"""


def test_a_refused_run_leaves_the_running_one_and_its_temp_files_alone(
    tmp_path: Path, tiny_world: Path
) -> None:
    outdir = tmp_path / "out"
    first = subprocess.Popen([sys.executable, "-c", RUN_SLOW, str(outdir)], env=_env())
    log = outdir / "pipeline_info" / "logs" / "COUNT.s1.log"
    deadline = time.monotonic() + 60
    while not (log.exists() and "writing" in log.read_text()):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    temps = [p for p in outdir.iterdir() if p.name.startswith(".a.txt.")]
    assert len(temps) == 1
    second = subprocess.run(
        [*RUN_CLI, "--params", str(tiny_world / "params.yaml"), "--outdir", str(outdir)],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert second.returncode == 1 and f"pid {first.pid}" in second.stderr
    assert temps[0].exists() and "writing" in log.read_text()  # log not reopened by the second
    assert first.wait(timeout=60) == 0
    assert (outdir / "a.txt").read_text() == "complete"


def test_without_flock_the_recorded_pid_still_decides(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from scregnet.pipeline import lock as lock_module

    def no_flock(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module.fcntl, "flock", no_flock)
    with outdir_lock(tmp_path / "a") as held:
        assert json.loads(held.read_text())["pid"] == os.getpid()
    _write_lock(tmp_path / "b", pid=sleeper.pid, proc_start=_process_start(sleeper.pid))
    with pytest.raises(InputError, match=f"pid {sleeper.pid}"), outdir_lock(tmp_path / "b"):
        pass
