"""Execution: run the planned steps as child processes, resume finished ones, stop cleanly.

Each step runs its ``scregnet <subcommand>`` command line (the one the Nextflow module runs) in a
child process of its own session, so its process group holds it and every tool it starts: stopping
the run (a failure, SIGTERM or SIGINT to the runner) signals each running step's whole group,
waits briefly, kills what remains and removes the step's temporary outputs. On Linux a step also
gets SIGTERM when the runner itself dies (``PR_SET_PDEATHSIG``). Whether a step is up to date is
decided in :mod:`scregnet.pipeline.state`; one run at a time per outdir is enforced by
:mod:`scregnet.pipeline.lock`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scregnet import keys
from scregnet.errors import EXIT_OUT_OF_MEMORY, InputError, signal_name
from scregnet.io.atomic import atomic_path
from scregnet.pipeline.lock import outdir_lock
from scregnet.pipeline.plan import (
    RECORDS,
    VERSIONS,
    Step,
    find_tool,
    plan,
    step_dependencies,
    step_priorities,
)
from scregnet.pipeline.state import (
    NOT_RUN,
    RECORD_FIELDS,
    snapshot,
    stale_reason,
    write_record,
)
from scregnet.pipeline.steps import STEPS, TEST_PROFILE

log = logging.getLogger(__name__)

TRACE_COLUMNS = ("stage", "name", "status", "start", "wall_s", "cpu_s", "peak_rss_mb", "log")
#: seconds a stopped step gets to clean up after SIGTERM before its process group is killed
STOP_GRACE_S = 10.0

# The temporary names io.atomic gives an output ``<name>`` beside it, with 8 random characters R
# from [a-z0-9_]: a file's ``.<name>.R.part`` + the name's suffixes, a folder's ``.<name>.R.part``,
# the work folders of atac.fragments (``.<name>.parts.R``) and atac.peaks (``.<name>.macs3.R``).
# R has no '.', so no other output's temporary name matches.
_RANDOM = r"[a-z0-9_]{8}"


def _temp_pattern(name: str) -> re.Pattern[str]:
    suffixes = re.escape("".join(Path(name).suffixes))
    return re.compile(
        rf"\.{re.escape(name)}\.(?:{_RANDOM}\.part(?:{suffixes})?|parts\.{_RANDOM}"
        rf"|macs3\.{_RANDOM})"
    )


def temp_leftovers(output: Path) -> list[Path]:
    """Temporary files and folders that an interrupted writer of ``output`` left beside it."""
    try:
        entries = list(output.parent.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    pattern = _temp_pattern(output.name)
    return sorted(p for p in entries if pattern.fullmatch(p.name))


def remove_leftovers(outputs: Sequence[Path]) -> int:
    """Remove the temporary leftovers of ``outputs``; return how many were removed."""
    removed = 0
    for output in outputs:
        for stale in temp_leftovers(output):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
            removed += 1
    return removed


# ---- child processes ---------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when this process dies (Linux only)."""
    libc = _libc()
    if libc is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the runner died before the line above
            os._exit(143)

    return preexec


def start_child(command: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ``command`` in a session (and process group) of its own, tied to this process."""
    return subprocess.Popen(
        list(command),
        start_new_session=True,
        preexec_fn=_parent_death_signal(),  # the runner starts no threads, so a preexec_fn is safe
        **kwargs,
    )


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _exited(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it (its pid, the group id, stays reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def stop_child(proc: subprocess.Popen[bytes], *, grace: float | None = None) -> None:
    """SIGTERM the child's process group, SIGKILL it after ``grace`` seconds, and reap the child."""
    stop_children([proc], grace=STOP_GRACE_S if grace is None else grace)


def stop_children(procs: Sequence[subprocess.Popen[bytes]], *, grace: float) -> None:
    live = [p for p in procs if p.returncode is None]
    for proc in live:
        _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    try:
        while any(not _exited(p.pid) for p in live) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for proc in live:
            _signal_group(proc.pid, signal.SIGKILL)  # what is left, and any tool a step started
            proc.wait()


# ---- the scheduler -----------------------------------------------------------------------------


@dataclass
class _Running:
    index: int
    proc: subprocess.Popen[bytes]
    log: Any
    log_path: Path
    inputs: dict[str, str | None]
    started: float
    started_at: str
    #: another step ran beside it at some point (its memory was not the step's alone)
    crowded: bool = False


def _wait_any(running: dict[int, _Running]) -> tuple[_Running, int, float, float]:
    """Block until one running step exits; return it, its exit code, its CPU seconds (user +
    system) and its peak RSS in MB.

    ``os.wait4`` gives the exit status with the child's resource usage, whose ``ru_maxrss`` covers
    the child and every process it waited for (MACS3 under ``scregnet peaks``, for instance).
    Before the step is reaped, whatever it left running in its process group is killed.
    """
    while True:
        for run in running.values():
            if not _exited(run.proc.pid):
                continue
            _signal_group(run.proc.pid, signal.SIGKILL)
            _pid, status, usage = os.wait4(run.proc.pid, 0)
            code = os.waitstatus_to_exitcode(status)
            run.proc.returncode = code
            cpu = usage.ru_utime + usage.ru_stime
            return run, code, cpu, usage.ru_maxrss / 1024  # KiB on Linux
        time.sleep(0.01)


def _last_line(log_path: Path, code: int) -> str:
    lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else f"exit code {code}"


def _failure(log_path: Path, code: int, peak_mb: float, *, crowded: bool) -> str:
    """Why a step failed: its last log line, or for a step killed by a signal (its log ends
    wherever it was), the signal; SIGKILL is most often the kernel's out-of-memory killer, and
    fewer steps at once helps only a step that ran beside others (``crowded``)."""
    if code >= 0:
        return _last_line(log_path, code)
    name = signal_name(-code)
    if -code == signal.SIGKILL:
        fewer = " or run fewer steps at once (--jobs)" if crowded else ""
        return (
            f"killed by {name}, most likely by the out-of-memory killer (peak memory "
            f"{peak_mb:.0f} MB); give it more memory{fewer}"
        )
    return f"killed by {name}"


#: a WARNING line of a step's log, as :func:`scregnet.cli.main.configure_logging` writes it
_WARNING_LINE = re.compile(r"^\d\d:\d\d:\d\d WARNING \S+: (.*)$")


def _warnings_note(log_path: Path, *, width: int = 160) -> str:
    """``", N warning(s) in its log, the first: ..."`` for a finished step's log, or ``""``: a
    step's warnings (a TF dropped, cells refused by a check that warns) reach the console."""
    found = [
        m.group(1)
        for line in log_path.read_text(errors="replace").splitlines()
        if (m := _WARNING_LINE.match(line))
    ]
    if not found:
        return ""
    first = found[0] if len(found[0]) <= width else found[0][: width - 3] + "..."
    return f", {len(found)} warning(s) in its log, the first: {first}"


def _write_trace(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(
            "\t".join(TRACE_COLUMNS)
            + "\n"
            + "".join("\t".join(str(r.get(c, "")) for c in TRACE_COLUMNS) + "\n" for r in rows)
        )


def _log_name(step: Step) -> str:
    """The file name of a step's log in ``pipeline_info/logs/``."""
    return f"{step.stage}.{step.task}.log"


def _record_path(records: Path, step: Step) -> Path:
    return records / step.record_name


def run_steps(
    steps: Sequence[Step],
    outdir: Path,
    *,
    jobs: int = 1,
    keep_going: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> list[str]:
    """Run (or skip as up to date) every step, up to ``jobs`` at once; return the steps that ran.

    A step starts once every step it depends on (:func:`~scregnet.pipeline.plan.step_dependencies`)
    has finished; among the ready steps the one heading the longest remaining chain starts first.
    Each step is a child process with a fixed command line, so what it writes does not depend on
    ``jobs`` or on the order. Every step's output goes to ``pipeline_info/logs/<stage>.<name>.log``;
    its record (:mod:`~scregnet.pipeline.state`) to ``pipeline_info/steps/<stage>.<name>.json``, and
    a row to ``pipeline_info/trace.tsv``. The run holds the outdir's lock throughout, and first
    removes the temporary leftovers of an earlier, killed run. On a failure or an interrupt the steps
    still running are stopped, their temporary outputs removed, and the exception re-raised. With
    ``keep_going`` a failed step stops only the steps that need its outputs (traced ``NOT_RUN``):
    every other step runs to the end, and then one error names the failed steps. A step killed for
    memory (SIGKILL, or scregnet's exit 137) while other steps ran beside it is first retried once
    with none beside it: the steps running finish, the retry runs alone, then the rest go on.
    """
    if jobs < 1:
        msg = f"jobs must be >= 1, got {jobs}"
        raise ValueError(msg)
    say = on_progress or log.info
    info = outdir / "pipeline_info"
    records, logs = outdir / RECORDS, info / "logs"
    with outdir_lock(outdir):
        records.mkdir(parents=True, exist_ok=True)
        logs.mkdir(parents=True, exist_ok=True)
        bookkeeping = [outdir / keys.TRACE, *(_record_path(records, s) for s in steps)]
        swept = remove_leftovers([o for s in steps for o in s.outputs] + bookkeeping)
        if swept:
            say(f"removed {swept} temporary file(s) left by an interrupted run")
        return _schedule(steps, info, jobs=jobs, keep_going=keep_going, say=say)


class StepFailed(InputError):
    """A step exited with an error (its message names the step, its last error line and log).
    ``not_run`` holds the steps never started: those that needed a failed one (``keep_going``),
    or every step still waiting when the run stopped."""

    not_run: tuple[Step, ...] = ()


def _schedule(
    steps: Sequence[Step],
    info: Path,
    *,
    jobs: int,
    keep_going: bool,
    say: Callable[[str], None],
) -> list[str]:
    """Start ready steps (up to ``jobs`` at once) until all finished; the trace as it goes."""
    records, logs = info.parent / RECORDS, info / "logs"
    deps = step_dependencies(steps)
    priority = step_priorities(steps, deps)
    total = len(steps)
    labels = [f"[{i}/{total}] {s.label}" for i, s in enumerate(steps, 1)]
    pending = set(range(total))
    finished: set[int] = set()
    running: dict[int, _Running] = {}
    trace: dict[int, dict[str, Any]] = {}
    ran: list[str] = []
    failed: list[tuple[str, str]] = []  # with keep_going: each failed step's label and message
    # steps killed for memory beside others, to be retried on their own -> why (for their log)
    alone: dict[int, str] = {}

    def write_trace() -> None:
        _write_trace(info.parent / keys.TRACE, [trace[k] for k in sorted(trace)])

    try:
        while pending or running:
            ready = sorted(
                (i for i in pending if deps[i] <= finished), key=lambda i: (-priority[i], i)
            )
            if alone.keys() & set(ready) or alone.keys() & set(running):
                # a retry for memory runs with nothing beside it: let the others finish first
                ready = [i for i in ready if i in alone][:1] if not running else []
            launched_or_skipped = False
            for i in ready:
                if len(running) >= jobs:
                    break
                started = _start_or_skip(
                    i, steps[i], labels[i], records, logs, trace, say, retry=alone.get(i)
                )
                if started is not None:
                    started.crowded = bool(running)
                    for other in running.values():
                        other.crowded = True
                    running[i] = started
                    # on disk before the step reads it: REPORT reports the finished steps'
                    # outputs, including those skipped as up to date since the last write
                    write_trace()
                else:
                    finished.add(i)
                pending.discard(i)
                launched_or_skipped = True
            if launched_or_skipped and len(running) < jobs:
                continue  # a skipped step may have made others ready
            if not running:
                if pending:
                    msg = f"steps never became ready: {sorted(labels[i] for i in pending)}"
                    raise RuntimeError(msg)
                break
            run, code, cpu, peak_mb = _wait_any(running)
            del running[run.index]
            step = steps[run.index]
            try:
                wall = _finish(run, code, cpu, peak_mb, step, info, records, trace)
            except StepFailed as exc:
                if _killed_for_memory(code) and run.crowded and run.index not in alone:
                    alone[run.index] = str(exc)
                    pending.add(run.index)
                    say(
                        f"{labels[run.index]}: {exc}; it ran beside other steps: retried on its own"
                    )
                    continue
                if not keep_going:
                    raise
                failed.append((step.label, str(exc)))
                say(f"{labels[run.index]}: {exc}")
                for j in sorted(_needing(run.index, pending, deps)):
                    pending.discard(j)
                    trace[j] = {
                        "stage": steps[j].stage,
                        "name": steps[j].task,
                        "status": keys.STEP_NOT_RUN,
                    }
                    say(f"{labels[j]}: not run, it needs the outputs of {step.label}")
                write_trace()
                continue
            finished.add(run.index)
            ran.append(f"{step.stage}:{step.task}")
            write_trace()  # as it goes
            say(
                f"{labels[run.index]}: done in {wall:.1f} s (peak memory {peak_mb:.0f} MB)"
                + _warnings_note(run.log_path)
            )
    except BaseException as exc:
        for index in running:
            step = steps[index]
            trace[index] = {"stage": step.stage, "name": step.task, "status": keys.STEP_ABORTED}
        for index in pending:  # never started: the trace names every step of the run
            step = steps[index]
            trace[index] = {"stage": step.stage, "name": step.task, "status": keys.STEP_NOT_RUN}
        if isinstance(exc, StepFailed):
            exc.not_run = tuple(steps[i] for i in sorted(pending))
        _stop(steps, running)
        raise
    finally:
        write_trace()
    if failed:
        not_run = tuple(
            steps[k] for k, row in sorted(trace.items()) if row["status"] == keys.STEP_NOT_RUN
        )
        msg = (
            f"{len(failed)} step(s) failed ({', '.join(label for label, _ in failed)}) and "
            f"{len(not_run)} that need them were not run; every other step finished (rerun after "
            f"the fix resumes from them). First: {failed[0][1]}"
        )
        error = StepFailed(msg)
        error.not_run = not_run
        raise error
    return ran


def _killed_for_memory(code: int) -> bool:
    """A step's exit code as the kernel's OOM killer leaves it (SIGKILL), or as scregnet exits
    when an allocation fails (137)."""
    return code in (-signal.SIGKILL, EXIT_OUT_OF_MEMORY)


def _needing(index: int, pending: set[int], deps: Sequence[set[int]]) -> set[int]:
    """The pending steps that need step ``index``'s outputs, directly or through each other."""
    blocked = {index}
    grew = True
    while grew:
        more = {j for j in pending - blocked if deps[j] & blocked}
        grew = bool(more)
        blocked |= more
    return blocked - {index}


def _start_or_skip(
    i: int,
    step: Step,
    label: str,
    records: Path,
    logs: Path,
    trace: dict[int, dict[str, Any]],
    say: Callable[[str], None],
    *,
    retry: str | None = None,
) -> _Running | None:
    """Launch a ready step, or skip it (up to date, or its optional tool missing): ``None``.
    ``retry``: why its first attempt failed, for a step retried on its own (its log goes on)."""
    record = _record_path(records, step)
    row: dict[str, Any] = {"stage": step.stage, "name": step.task}
    inputs = snapshot(step.inputs)
    reason = stale_reason(step, record, inputs)
    if reason is None:
        say(f"{label}: outputs complete and up to date, skipped (resume)")
        previous = json.loads(record.read_text())
        row.update({k: previous.get(k, "") for k in RECORD_FIELDS})
        trace[i] = {**row, "status": keys.STEP_CACHED}
        return None
    if step.tool_missing:
        say(f"{label}: skipped, `{step.executable}` is not installed")
        trace[i] = {**row, "status": keys.STEP_SKIPPED}
        return None
    if reason != NOT_RUN:
        say(f"{label}: out of date, {reason}")
    return _launch(i, step, label, logs, inputs, say, retry=retry)


def _finish(
    run: _Running,
    code: int,
    cpu: float,
    peak_mb: float,
    step: Step,
    info: Path,
    records: Path,
    trace: dict[int, dict[str, Any]],
) -> float:
    """Trace an exited step, raise if it failed or missed an output, else record it; its wall s."""
    run.log.close()
    wall = time.perf_counter() - run.started
    row = {
        "stage": step.stage,
        "name": step.task,
        "status": keys.STEP_COMPLETED if code == 0 else keys.STEP_FAILED,
        "start": run.started_at,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "log": str(run.log_path.relative_to(info)),
    }
    trace[run.index] = row
    if code != 0:  # the caller's except clause stops the steps running beside it
        remove_leftovers(step.outputs)
        why = _failure(run.log_path, code, peak_mb, crowded=run.crowded)
        msg = f"{step.label} failed: {why} (log: {run.log_path})"
        raise StepFailed(msg)
    missing = [str(p) for p in step.outputs if not p.exists()]
    if missing:
        msg = f"{step.label} exited 0 but did not write {', '.join(missing)}"
        raise RuntimeError(msg)
    write_record(_record_path(records, step), step, run.inputs, row)
    return wall


def _stop(steps: Sequence[Step], running: dict[int, _Running]) -> None:
    """Stop the steps still running (after a failure or an interrupt) and remove their temporary
    outputs; a step's own SIGTERM handler removes them too, this covers a step that was killed."""
    try:
        stop_children([run.proc for run in running.values()], grace=STOP_GRACE_S)
    finally:
        for index, run in running.items():
            run.log.close()
            remove_leftovers(steps[index].outputs)
        running.clear()


def _launch(
    index: int,
    step: Step,
    label: str,
    logs: Path,
    inputs: dict[str, str | None],
    say: Callable[[str], None],
    *,
    retry: str | None = None,
) -> _Running:
    say(f"{label}: running" + (" on its own (retry)" if retry else ""))
    for output in step.outputs:
        output.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(step.outputs)  # left by a killed attempt
    log_path = logs / _log_name(step)
    if retry:  # the first attempt's log stays above the retry's
        handle = log_path.open("ab")
        handle.write(f"\n---- {retry}; retried on its own ----\n".encode())
        handle.flush()
    else:
        handle = log_path.open("wb")
    try:
        proc = start_child(
            step.command(),
            env={**os.environ, **step.env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    except BaseException:
        handle.close()
        raise
    return _Running(
        index,
        proc,
        handle,
        log_path,
        inputs,
        time.perf_counter(),
        time.strftime("%Y-%m-%dT%H:%M:%S"),
    )


# ---- the whole pipeline ------------------------------------------------------------------------


def prepare_test_data(outdir: Path) -> Path:
    """Simulate the test profile's world under ``outdir/testdata`` (reused when already complete).

    The simulator runs in a child process, like every step: the runner stays small, and so do the
    peak-memory figures of the steps it starts (Linux counts the parent's resident memory at
    ``exec`` time in a child's ``ru_maxrss``).
    """
    world = outdir / "testdata"
    params = world / "params.yaml"
    if params.exists():
        log.info("test data already simulated at %s, reused", world)
        return params
    log.info("simulating the %r test world into %s", TEST_PROFILE["simulate_preset"], world)
    argv = ["simulate", "--preset", str(TEST_PROFILE["simulate_preset"]), "--outdir", str(world)]
    argv += ["--seed", str(TEST_PROFILE["seed"])]
    with outdir_lock(outdir):
        remove_leftovers([world])
        proc = start_child([sys.executable, "-m", "scregnet.cli.main", *argv])
        try:
            code = proc.wait()
        except BaseException:
            stop_child(proc)
            remove_leftovers([world])
            raise
    if code:
        msg = f"simulating the test world into {world} failed (see the lines above)"
        raise InputError(msg)
    return params


def tool_version(tool: str) -> str:
    """``tool``'s version as the modules' ``versions`` outputs report it; '' when not installed."""
    if tool == "scregnet":
        import scregnet

        return scregnet.__version__
    path = find_tool(tool)
    if path is None:
        return ""
    proc = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    words = proc.stdout.strip().split()
    return words[-1] if proc.returncode == 0 and words else ""


def write_versions(steps: Sequence[Step], outdir: Path) -> Path:
    """``pipeline_info/software_mqc_versions.yml``: process -> tool -> version for the processes
    in ``steps`` (the YAML Nextflow collects from the ``versions`` topic). Rewritten only when its
    content changes, so that resume sees the same file."""
    versions = {tool: tool_version(tool) for s in steps for tool in STEPS[s.stage].tools}
    lines = []
    for stage in sorted({s.stage for s in steps}):
        tools = [t for t in STEPS[stage].tools if versions[t]]
        if tools:
            lines.append(f"{stage}:")
            lines += [f"  {tool}: {versions[tool]}" for tool in tools]
    text = "\n".join(lines) + "\n"
    path = outdir / VERSIONS
    if not path.exists() or path.read_text() != text:
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return path


def run_pipeline(
    params: dict[str, Any],
    outdir: Path,
    *,
    threads: int = 1,
    jobs: int = 1,
    keep_going: bool = False,
    truth: Path | None = None,
) -> Path:
    """Plan and run every stage (``jobs`` steps at once, each with ``threads`` threads; with
    ``keep_going`` a failed step stops only what needs it, :func:`run_steps`; after a failure the
    report shows what finished, :func:`report_finished_steps`); with ``truth`` REPORT scores the
    results against it first (``evaluation.json``); return the report's path. The plan
    (samplesheet included) is checked before ``outdir`` is created, so a bad input leaves no
    folder behind."""
    truth = truth if truth is not None and truth.is_dir() else None
    steps = plan(params, outdir, threads=threads, truth=truth)
    with outdir_lock(outdir):
        write_versions(steps, outdir)
        start = time.perf_counter()
        try:
            run_steps(steps, outdir, jobs=jobs, keep_going=keep_going)
        except StepFailed as exc:
            report = next((s for s in exc.not_run if s.stage == "REPORT"), None)
            if report is not None:
                report_finished_steps(report, outdir)
            raise
    log.info("pipeline finished in %.1f s", time.perf_counter() - start)
    return outdir / "report" / "report.html"


def report_finished_steps(report: Step, outdir: Path) -> Path | None:
    """After a failed run in which REPORT was not run (it needs a failed step, or the run stopped
    first): run its command, so that the report shows what finished and names what did not (from
    the trace). It writes REPORT's own outputs but no record, so the rerun after the fix builds
    the full report. Returns the report's path, or None when it failed (the warning gives its
    last error line)."""
    log_path = outdir / "pipeline_info" / "logs" / _log_name(report)
    for output in report.outputs:
        output.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as handle:
        code = subprocess.run(
            report.command(),
            env={**os.environ, **report.env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        ).returncode
    if code != 0:
        log.warning("no report of the finished steps: %s", _last_line(log_path, code))
        return None
    log.warning("report of the finished steps, marked incomplete: %s", report.outputs[0])
    return report.outputs[0]
