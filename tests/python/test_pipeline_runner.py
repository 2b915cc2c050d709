"""The single-machine runner's mechanics: DAG order, resume, failure reporting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scregnet.errors import InputError
from scregnet.pipeline import STAGE_GRAPH, Step, plan, run_steps, stage_order, step_dependencies
from scregnet.pipeline.execute import StepFailed


def test_stage_order_is_topological() -> None:
    order = stage_order()
    assert sorted(order) == sorted(STAGE_GRAPH)
    for stage, upstream in STAGE_GRAPH.items():
        for up in upstream:
            assert order.index(up) < order.index(stage), (up, stage)


def _copy_step(src: Path, dst: Path, tag: str = "") -> Step:
    code = f"import shutil,sys; shutil.copy({str(src)!r}, {str(dst)!r}); open({str(dst)!r},'a').write({tag!r})"
    return Step("COUNT", "s1", ["-c", code], [src], [dst], executable=sys.executable)


def test_resume_skips_fresh_steps_and_reruns_stale_ones(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("a")
    lines: list[str] = []
    assert run_steps([_copy_step(src, dst)], tmp_path, on_progress=lines.append) == ["COUNT:s1"]
    assert run_steps([_copy_step(src, dst)], tmp_path, on_progress=lines.append) == []
    assert any("skipped (resume)" in line for line in lines)
    # a newer input with the same content does not make the step stale (inputs are compared by
    # content), an edited one does, even with its old modification time
    future = time.time() + 5
    os.utime(src, (future, future))
    assert run_steps([_copy_step(src, dst)], tmp_path) == []
    src.write_text("b")
    os.utime(src, (future, future))
    assert run_steps([_copy_step(src, dst)], tmp_path) == ["COUNT:s1"]
    # a different command makes it stale too
    assert run_steps([_copy_step(src, dst, tag="x")], tmp_path) == ["COUNT:s1"]
    assert dst.read_text() == "bx"
    # a missing output makes it stale
    dst.unlink()
    assert run_steps([_copy_step(src, dst, tag="x")], tmp_path) == ["COUNT:s1"]


def test_an_upgraded_scregnet_does_not_reuse_old_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    import scregnet
    from scregnet import pipeline

    ours = Step("COUNT", "s1", ["count", "--fragments", "f"], [], [])
    theirs = Step("MULTIQC", "all", ["."], [], [], executable="multiqc")
    before = ours.fingerprint(), theirs.fingerprint()
    pipeline.package_digest.cache_clear()
    monkeypatch.setattr(scregnet, "__version__", "999.0")
    try:
        assert pipeline.package_digest().startswith("999.0+")
        assert ours.fingerprint() != before[0]  # a scregnet step reruns after an upgrade
        assert theirs.fingerprint() == before[1]  # another tool's step does not
    finally:
        monkeypatch.undo()
        pipeline.package_digest.cache_clear()
    assert ours.fingerprint() == before[0]


def test_failed_step_raises_with_its_last_error_line(tmp_path: Path) -> None:
    bad = Step(
        "COUNT",
        "s1",
        [
            "-c",
            "import sys; sys.stderr.write('noise\\nscregnet count: error: x.bed: empty\\n'); sys.exit(1)",
        ],
        [],
        [tmp_path / "never.txt"],
        executable=sys.executable,
    )
    with pytest.raises(
        InputError, match=r"COUNT \(s1\) failed: scregnet count: error: x.bed: empty"
    ):
        run_steps([bad], tmp_path)
    assert not (tmp_path / "pipeline_info" / "steps" / "COUNT.s1.json").exists()


@pytest.mark.parametrize(
    ("signum", "says"),
    [
        (
            "SIGKILL",
            r"killed by SIGKILL, most likely by the out-of-memory killer \(peak memory \d+ MB\); "
            r"give it more memory \(log: ",  # it ran alone: fewer steps at once would not help
        ),
        ("SIGUSR1", r"killed by SIGUSR1 \(log: "),
    ],
)
def test_a_step_killed_by_a_signal_is_named_by_it(tmp_path: Path, signum: str, says: str) -> None:
    """A killed step's log ends wherever it was: the failure names the signal instead, and for
    SIGKILL (the out-of-memory killer's) the step's peak memory."""
    killed = Step(
        "IMPUTE",
        "s1",
        ["-c", f"import os, signal; print('epoch 3/40'); os.kill(os.getpid(), signal.{signum})"],
        [],
        [tmp_path / "never.txt"],
        executable=sys.executable,
    )
    with pytest.raises(StepFailed, match=r"^IMPUTE \(s1\) failed: " + says):
        run_steps([killed], tmp_path)
    assert not (tmp_path / "never.txt").exists()


def _timed_step(
    stage: str, name: str, out: Path, *, sleep: float, inputs: tuple[Path, ...] = ()
) -> Step:
    """A step that records when it started and ended (epoch seconds) in ``out``."""
    code = (
        "import sys,time; t=time.time(); time.sleep(float(sys.argv[2])); "
        "open(sys.argv[1],'w').write(f'{t} {time.time()}')"
    )
    return Step(
        stage,
        name,
        ["-c", code, str(out), str(sleep)],
        list(inputs),
        [out],
        executable=sys.executable,
    )


def _interval(path: Path) -> tuple[float, float]:
    start, end = map(float, path.read_text().split())
    return start, end


def _memory_step(out: Path, attempts: Path, *, kills: int, how: str) -> Step:
    """IMPUTE that dies for memory (``how``: SIGKILL, or scregnet's exit 137) on its first
    ``kills`` attempts, counted in ``attempts``, then writes when it started and ended."""
    die = "os.kill(os.getpid(), signal.SIGKILL)" if how == "SIGKILL" else "sys.exit(137)"
    code = (
        "import os, signal, sys, time; from pathlib import Path; t = time.time(); "
        f"a = Path({str(attempts)!r}); n = int(a.read_text()) + 1 if a.exists() else 1; "
        "a.write_text(str(n)); print(f'attempt {n}', flush=True); time.sleep(0.2)\n"
        f"if n <= {kills}: {die}\n"
        f"Path({str(out)!r}).write_text(f'{{t}} {{time.time()}}')"
    )
    return Step("IMPUTE", "s1", ["-c", code], [], [out], executable=sys.executable)


@pytest.mark.parametrize("how", ["SIGKILL", "exit 137"])
def test_a_step_killed_for_memory_beside_others_is_retried_alone(tmp_path: Path, how: str) -> None:
    frag, imp, attempts = tmp_path / "frag", tmp_path / "imp", tmp_path / "attempts"
    steps = [
        _timed_step("FRAGMENTS", "s1", frag, sleep=1.5),
        _memory_step(imp, attempts, kills=1, how=how),
    ]
    lines: list[str] = []
    assert sorted(run_steps(steps, tmp_path, jobs=2, on_progress=lines.append)) == [
        "FRAGMENTS:s1",
        "IMPUTE:s1",
    ]
    assert attempts.read_text() == "2"
    retried = [ln for ln in lines if "IMPUTE (s1) failed: " in ln]
    assert len(retried) == 1 and retried[0].endswith("retried on its own")
    if how == "SIGKILL":
        assert "give it more memory or run fewer steps at once (--jobs)" in retried[0]
    assert _interval(imp)[0] >= _interval(frag)[1]  # the retry started once FRAGMENTS was done
    trace = (tmp_path / "pipeline_info" / "trace.tsv").read_text()
    assert "IMPUTE\ts1\tCOMPLETED" in trace and "FAILED" not in trace
    # one log for both attempts: the first attempt's output, then why it was retried
    log = (tmp_path / "pipeline_info" / "logs" / "IMPUTE.s1.log").read_text().splitlines()
    assert log[0] == "attempt 1"
    assert log[2].startswith("---- IMPUTE (s1) failed: ") and log[2].endswith(
        "retried on its own ----"
    )
    assert log[3:] == ["attempt 2"]


def test_a_step_killed_for_memory_alone_or_twice_fails(tmp_path: Path) -> None:
    alone, attempts = tmp_path / "alone", tmp_path / "n1"
    with pytest.raises(StepFailed, match=r"^IMPUTE \(s1\) failed: killed by SIGKILL"):
        run_steps([_memory_step(alone, attempts, kills=1, how="SIGKILL")], tmp_path / "a", jobs=2)
    assert attempts.read_text() == "1"  # nothing ran beside it: no retry

    frag, imp, attempts = tmp_path / "frag", tmp_path / "imp", tmp_path / "n2"
    steps = [
        _timed_step("FRAGMENTS", "s1", frag, sleep=1.0),
        _memory_step(imp, attempts, kills=2, how="SIGKILL"),
    ]
    # the retry ran alone: its failure does not advise fewer steps at once
    with pytest.raises(StepFailed, match=r"^IMPUTE \(s1\) failed: killed by SIGKILL.*memory \(log"):
        run_steps(steps, tmp_path / "b", jobs=2)
    assert attempts.read_text() == "2" and frag.exists() and not imp.exists()


@pytest.mark.parametrize("jobs", [1, 2])
def test_jobs_run_independent_steps_together_and_dependents_after(
    jobs: int, tmp_path: Path
) -> None:
    imp, frag, count = tmp_path / "imp", tmp_path / "frag", tmp_path / "count"
    steps = [
        _timed_step("FRAGMENTS", "s1", frag, sleep=1.0),
        _timed_step("IMPUTE", "s1", imp, sleep=1.0),  # no upstream: independent of FRAGMENTS
        _timed_step("COUNT", "s1", count, sleep=0.1),  # after FRAGMENTS (STAGE_GRAPH)
    ]
    lines: list[str] = []
    assert sorted(run_steps(steps, tmp_path, jobs=jobs, on_progress=lines.append)) == [
        "COUNT:s1",
        "FRAGMENTS:s1",
        "IMPUTE:s1",
    ]
    (f0, f1), (i0, i1), (c0, _c1) = (_interval(p) for p in (frag, imp, count))
    overlap = min(f1, i1) - max(f0, i0)
    if jobs == 2:
        assert overlap > 0.5, (f0, f1, i0, i1)
    else:
        assert overlap < 0, (f0, f1, i0, i1)
    assert c0 >= f1
    # every step has a record with its wall time and peak memory, and a row in the trace
    trace = (tmp_path / "pipeline_info" / "trace.tsv").read_text().splitlines()
    assert trace[0].split("\t") == [
        "stage",
        "name",
        "status",
        "start",
        "wall_s",
        "cpu_s",
        "peak_rss_mb",
        "log",
    ]
    assert {tuple(r.split("\t")[:3]) for r in trace[1:]} == {
        (s.stage, "s1", "COMPLETED") for s in steps
    }
    # resume: nothing runs again, the trace says CACHED
    assert run_steps(steps, tmp_path, jobs=jobs) == []
    trace = (tmp_path / "pipeline_info" / "trace.tsv").read_text().splitlines()
    assert {r.split("\t")[2] for r in trace[1:]} == {"CACHED"}


def test_peak_memory_of_a_step_is_recorded(tmp_path: Path) -> None:
    out = tmp_path / "big.txt"
    code = f"b = bytearray(b'x') * (200 * 2**20); open({str(out)!r}, 'w').write(str(len(b)))"
    # Linux folds the parent's peak RSS at exec into a child's ru_maxrss, so the runner must be a
    # small process (as `scregnet run` is); run it in a fresh interpreter, not inside pytest,
    # whose memory grows with the tests that ran before this one.
    runner = (
        "import sys; from pathlib import Path; from scregnet.pipeline import Step, run_steps; "
        f"run_steps([Step('COUNT', 's1', ['-c', {code!r}], [], [Path({str(out)!r})], "
        f"executable=sys.executable)], Path({str(tmp_path)!r}))"
    )
    subprocess.run([sys.executable, "-c", runner], check=True, capture_output=True)
    record = json.loads((tmp_path / "pipeline_info" / "steps" / "COUNT.s1.json").read_text())
    assert 200 <= record["peak_rss_mb"] < 400, record
    assert record["wall_s"] > 0 and record["cpu_s"] > 0


def test_a_failure_stops_the_steps_running_beside_it(tmp_path: Path) -> None:
    slow = _timed_step("IMPUTE", "s1", tmp_path / "slow", sleep=60)
    bad = Step(
        "FRAGMENTS",
        "s1",
        [
            "-c",
            "import sys,time; time.sleep(0.5); sys.exit('scregnet fragments: error: x.bam: bad')",
        ],
        [],
        [tmp_path / "never"],
        executable=sys.executable,
    )
    after = _timed_step("COUNT", "s1", tmp_path / "after", sleep=0)
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"FRAGMENTS \(s1\) failed: scregnet fragments: error"):
        run_steps([slow, bad, after], tmp_path, jobs=2)
    assert time.perf_counter() - start < 30
    assert not (tmp_path / "slow").exists() and not (tmp_path / "after").exists()
    log = tmp_path / "pipeline_info" / "logs" / "FRAGMENTS.s1.log"
    assert "x.bam: bad" in log.read_text()


def test_gpu_steps_get_one_resolved_device(tiny_world: Path, tmp_path: Path) -> None:
    """`device: auto` is resolved once (cuda when a GPU is visible, else cpu), as Nextflow gives
    each GPU-labelled task cpu or cuda; only the table's GPU processes get a device."""
    import torch

    from scregnet.pipeline import STEPS
    from scregnet.pipeline.params import read_params

    params = read_params(tiny_world / "params.yaml")
    assert params["device"] == "auto"
    steps = plan(params, tmp_path, threads=1)
    devices = {s.argv[s.argv.index("--device") + 1] for s in steps if "--device" in s.argv}
    assert devices == {"cuda" if torch.cuda.is_available() else "cpu"}
    with_device = {s.stage for s in steps if "--device" in s.argv}
    assert with_device == {name for name, spec in STEPS.items() if spec.gpu}


def test_a_gpu_asked_for_and_missing_is_refused_before_any_step(
    tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--device cuda` on a machine without a visible GPU: one line from the planning, before the
    results folder exists (before, the CPU steps ran and the first GPU step failed)."""
    import torch

    from scregnet.cli.main import main as cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "res"
    for extra in ([], ["--dry-run"]):
        argv = ["run", "--params", str(tiny_world / "params.yaml"), "--outdir", str(out)]
        assert cli([*argv, "--device", "cuda", *extra]) == 1
        assert not out.exists()


def test_a_dry_run_says_the_results_folder_cannot_be_written(
    tiny_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dry run checks what the run checks first: a results folder under a file."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x\n")
    argv = ["run", "--params", str(tiny_world / "params.yaml"), "--outdir", str(blocker / "res")]
    from scregnet.cli.main import main as cli

    assert cli([*argv, "--dry-run"]) == 1
    assert "not a writable directory" in capsys.readouterr().err


def test_versions_yaml_lists_each_process_once(tiny_world: Path, tmp_path: Path) -> None:
    import yaml

    import scregnet
    from scregnet.pipeline.execute import write_versions
    from scregnet.pipeline.params import read_params

    steps = plan(read_params(tiny_world / "params.yaml"), tmp_path, threads=1)
    path = write_versions(steps, tmp_path)
    versions = yaml.safe_load(path.read_text())
    assert set(versions) == {s.stage for s in steps} - {"MULTIQC"}
    assert all(v["scregnet"] == scregnet.__version__ for v in versions.values())
    before = path.stat().st_mtime_ns
    time.sleep(0.01)
    write_versions(steps, tmp_path)  # same content: not rewritten, so resume sees the same file
    assert path.stat().st_mtime_ns == before


def test_recorded_commands_do_not_depend_on_how_paths_are_spelled(
    tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step's record holds its command line: the params file named from another folder, with
    `..`, and the results folder named through a symlink give the same commands, so a resumed
    run (a cron job, another shell) reruns nothing. Before, every path kept its spelling."""
    from scregnet.cli.run import results_folder
    from scregnet.pipeline.params import read_params

    real = tmp_path / "res"
    link = tmp_path / "res_link"
    link.symlink_to(real, target_is_directory=True)
    elsewhere = tmp_path / "a" / "b"
    elsewhere.mkdir(parents=True)
    steps = plan(read_params(tiny_world / "params.yaml"), real, threads=1)
    monkeypatch.chdir(elsewhere)
    relative = Path(os.path.relpath(tiny_world, elsewhere)) / "samples" / ".." / "params.yaml"
    again = plan(read_params(relative), real, threads=1)
    assert [s.argv for s in again] == [s.argv for s in steps]
    assert all(".." not in a for s in again for a in s.argv)
    # `scregnet run` plans in the resolved results folder, whatever its spelling
    for outdir in (link, Path(os.path.relpath(real, elsewhere)), link / ".." / "res"):
        spelled = plan(read_params(relative), results_folder(outdir), threads=1)
        assert [s.argv for s in spelled] == [s.argv for s in steps], outdir


def test_step_dependencies_of_the_real_plan(tiny_world: Path, tmp_path: Path) -> None:
    from scregnet.pipeline.params import read_params

    steps = plan(read_params(tiny_world / "params.yaml"), tmp_path, threads=1)
    deps = step_dependencies(steps)
    named = {
        (s.stage, s.name): {(steps[j].stage, steps[j].name) for j in deps[i]}
        for i, s in enumerate(steps)
    }
    samples = sorted({s.name for s in steps if s.stage == "FRAGMENTS"})
    assert len(samples) >= 2
    s1, s2 = samples[:2]
    assert named[("IMPUTE", s1)] == set()
    assert named[("TFBIND_TRAIN", "all")] == set()
    assert named[("COUNT", s1)] >= {("FRAGMENTS", s1)}
    assert ("FRAGMENTS", s2) not in named[("COUNT", s1)]
    assert named[("TFBIND_PREDICT", s1)] >= {
        ("TFBIND_TRAIN", "all"),
        ("CLUSTER", s1),
        ("FRAGMENTS", s1),
    }
    assert not {n for n in named[("TFBIND_PREDICT", s1)] if n[1] == s2}
    assert named[("GRN_TRAIN", "all")] >= {
        ("IMPUTE", s1),
        ("IMPUTE", s2),
        ("TFBIND_MERGE", s1),
        ("TFBIND_MERGE", s2),
    }
    assert named[("GRN_SCORE", "all")] >= {("GRN_TRAIN", "all"), ("IMPUTE", s1)}
    assert named[("GRN_MERGE", "all")] >= {("GRN_SCORE", "all")}
    everything = {(s.stage, s.name) for s in steps}
    assert named[("REPORT", "all")] == everything - {("REPORT", "all"), ("MULTIQC", "all")}


@pytest.mark.parametrize(
    ("argv", "expected"), [([], 7), (["--seed", "0"], 0), (["--seed", "3"], 3)]
)
def test_run_seed_on_the_command_line_beats_the_params_seed(
    argv: list[str],
    expected: int,
    tiny_world: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import yaml

    import scregnet.pipeline
    from scregnet.cli import main as cli

    params = yaml.safe_load((tiny_world / "params.yaml").read_text())
    for key, value in params.items():
        if isinstance(value, str) and (tiny_world / value).exists():
            params[key] = str(tiny_world / value)
    params["seed"] = 7
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    seen: dict[str, object] = {}

    def fake_run(params: dict[str, object], outdir: Path, **kwargs: object) -> Path:
        seen.update(params)
        return outdir / "report" / "report.html"

    monkeypatch.setattr(scregnet.pipeline, "run_pipeline", fake_run)
    assert (
        cli.main(["run", "--params", str(params_file), "--outdir", str(tmp_path / "r"), *argv]) == 0
    )
    assert seen["seed"] == expected


def test_test_profile_world_is_simulated_in_a_child_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import scregnet.pipeline
    import scregnet.simulate

    monkeypatch.setitem(
        scregnet.pipeline.TEST_PROFILE, "simulate_preset", "tiny"
    )  # `small` takes ~30 s

    def not_in_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("the runner simulated in its own process")

    monkeypatch.setattr(scregnet.simulate, "simulate", not_in_process)
    params = scregnet.pipeline.prepare_test_data(tmp_path)
    assert params == tmp_path / "testdata" / "params.yaml" and params.exists()
    world = json.loads((tmp_path / "testdata" / "truth" / "world.json").read_text())
    assert world["preset"] == "tiny" and world["seed"] == 0
    before = params.stat().st_mtime_ns
    assert scregnet.pipeline.prepare_test_data(tmp_path) == params  # reused, not simulated again
    assert params.stat().st_mtime_ns == before


def test_tools_beside_this_python_are_found_without_an_activated_venv(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from scregnet.pipeline import find_tool

    monkeypatch.setenv("PATH", "")
    assert find_tool(Path(sys.executable).name) == str(Path(sys.executable))  # `make demo`: MultiQC
    assert find_tool("no-such-tool-xyz") is None


def test_impute_carries_the_samplesheet_view(tiny_world: Path, tmp_path: Path) -> None:
    """The samplesheet's view reaches the GRN: IMPUTE writes it into the imputed cells (``--view``),
    also when the scRNA file has no view of its own; a sample without one is its own view."""
    from scregnet.io.samplesheet import read_samplesheet
    from scregnet.pipeline.params import read_params

    sheet = tmp_path / "samplesheet.csv"
    rows = (tiny_world / "samplesheet.csv").read_text().splitlines()
    header = rows[0].split(",")
    first = rows[1].split(",")
    first[header.index("view")] = "day0"
    second = rows[2].split(",")
    second[header.index("view")] = ""
    lines = [rows[0]]
    for row in (first, second):
        lines.append(
            ",".join(
                str(tiny_world / v) if v and c in ("bam", "fragments", "rna") else v
                for c, v in zip(header, row, strict=True)
            )
        )
    sheet.write_text("\n".join(lines) + "\n")
    params = read_params(tiny_world / "params.yaml")
    params["input"] = sheet
    steps = plan(params, tmp_path / "out", threads=1)
    views = {s.sample: s.view for s in read_samplesheet(sheet)}
    assert views == {first[0]: "day0", second[0]: second[0]}
    impute = {s.name: s.argv for s in steps if s.stage == "IMPUTE"}
    assert {name: argv[argv.index("--view") + 1] for name, argv in impute.items()} == views


def _failing_step(stage: str, name: str, out: Path, flag: Path) -> Step:
    """A step that fails while ``flag`` exists, else writes ``out``."""
    code = (
        "import sys; from pathlib import Path; "
        "Path(sys.argv[2]).exists() and sys.exit('scregnet cluster: error: x.h5ad: 3 cells'); "
        "Path(sys.argv[1]).write_text('ok')"
    )
    return Step(
        stage, name, ["-c", code, str(out), str(flag)], [], [out], executable=sys.executable
    )


@pytest.mark.parametrize("jobs", [1, 2])
def test_keep_going_runs_what_does_not_need_the_failed_step_then_resumes(
    jobs: int, tmp_path: Path
) -> None:
    """One sample's step fails: with keep_going the other sample's chain still runs, the failed
    sample's dependents are traced NOT_RUN, and after the fix a rerun runs only those."""
    flag = tmp_path / "broken"
    flag.touch()
    out = {k: tmp_path / k for k in ("c1", "t1", "f2", "c2", "t2")}
    steps = [
        _failing_step("CLUSTER", "s1", out["c1"], flag),
        _timed_step("TRACKS", "s1", out["t1"], sleep=0),  # after CLUSTER (s1)
        _timed_step("FRAGMENTS", "s2", out["f2"], sleep=0.2),
        _timed_step("CLUSTER", "s2", out["c2"], sleep=0),  # after FRAGMENTS (s2)
        _timed_step("TRACKS", "s2", out["t2"], sleep=0),
    ]
    lines: list[str] = []
    with pytest.raises(InputError) as exc:
        run_steps(steps, tmp_path, jobs=jobs, keep_going=True, on_progress=lines.append)
    assert str(exc.value).startswith(
        "1 step(s) failed (CLUSTER (s1)) and 1 that need them were not run; every other step "
        "finished"
    )
    assert "First: CLUSTER (s1) failed: scregnet cluster: error: x.h5ad: 3 cells" in str(exc.value)
    assert [p.exists() for p in out.values()] == [False, False, True, True, True]
    assert any("TRACKS (s1): not run, it needs the outputs of CLUSTER (s1)" in ln for ln in lines)
    trace = (tmp_path / "pipeline_info" / "trace.tsv").read_text().splitlines()[1:]
    status = {tuple(r.split("\t")[:2]): r.split("\t")[2] for r in trace}
    assert status == {
        ("CLUSTER", "s1"): "FAILED",
        ("TRACKS", "s1"): "NOT_RUN",
        ("FRAGMENTS", "s2"): "COMPLETED",
        ("CLUSTER", "s2"): "COMPLETED",
        ("TRACKS", "s2"): "COMPLETED",
    }
    # fixed: the rerun runs the failed step and what needed it; the rest is resumed
    flag.unlink()
    assert sorted(run_steps(steps, tmp_path, jobs=jobs)) == ["CLUSTER:s1", "TRACKS:s1"]
    assert all(p.exists() for p in out.values())


def test_without_keep_going_a_failure_ends_the_run(tmp_path: Path) -> None:
    """The first failure ends the run; the trace still names every step, those never started as
    NOT_RUN (a report built afterwards lists them as not run)."""
    flag = tmp_path / "broken"
    flag.touch()
    steps = [
        _failing_step("CLUSTER", "s1", tmp_path / "c1", flag),
        _timed_step("FRAGMENTS", "s2", tmp_path / "f2", sleep=0),
    ]
    with pytest.raises(StepFailed, match=r"^CLUSTER \(s1\) failed: scregnet cluster: error") as exc:
        run_steps(steps, tmp_path, jobs=1)
    assert [s.label for s in exc.value.not_run] == ["FRAGMENTS (s2)"]  # the partial report's
    trace = (tmp_path / "pipeline_info" / "trace.tsv").read_text().splitlines()[1:]
    status = {tuple(r.split("\t")[:2]): r.split("\t")[2] for r in trace}
    assert status == {("CLUSTER", "s1"): "FAILED", ("FRAGMENTS", "s2"): "NOT_RUN"}
    assert not (tmp_path / "f2").exists()


def test_a_steps_warnings_reach_the_console(tmp_path: Path) -> None:
    """A finished step's progress line counts the WARNING lines of its log and shows the first
    (a TF dropped by `tfbind train` is otherwise only in the log)."""
    out = tmp_path / "model.pt"
    code = (
        "import sys; w = sys.stderr.write; "
        "w('11:13:30 INFO scregnet.tfbind.api: windows: 10 train\\n'); "
        "w('11:13:31 WARNING scregnet.tfbind.api: dropping 1 of 2 TF(s): NRF1 (train 0)\\n'); "
        "w('11:13:32 WARNING scregnet.tfbind.train: CTCF left uncalibrated\\n'); "
        "open(sys.argv[1], 'w').write('ok')"
    )
    step = Step("TFBIND_TRAIN", "all", ["-c", code, str(out)], [], [out], executable=sys.executable)
    quiet = Step(
        "IMPUTE", "s1", ["-c", f"open({str(tmp_path / 'i')!r}, 'w')"], [], [tmp_path / "i"],
        executable=sys.executable,
    )  # fmt: skip
    lines: list[str] = []
    run_steps([step, quiet], tmp_path, on_progress=lines.append)
    done = {ln.split("]", 1)[1].split(":", 1)[0].strip(): ln for ln in lines if ": done in" in ln}
    assert done["TFBIND_TRAIN (all)"].endswith(
        ", 2 warning(s) in its log, the first: dropping 1 of 2 TF(s): NRF1 (train 0)"
    )
    assert done["IMPUTE (s1)"].endswith("MB)")


def test_planning_refuses_inputs_named_in_another_chromosome_style(
    tiny_world: Path, tmp_path: Path
) -> None:
    """A BAM, fragments file, GTF or peaks file whose chromosomes are all named in another style
    than the genome index (Ensembl's 1 against chr1) is refused when the run is planned, naming
    it, before any step runs (count would stop on it only after the fragments and peaks)."""
    import gzip

    import pysam

    from scregnet.pipeline.params import read_params

    params = read_params(tiny_world / "params.yaml")
    ensembl = tmp_path / "ensembl"
    ensembl.mkdir()
    with pysam.AlignmentFile(str(tiny_world / "samples" / "sample1.bam")) as bam:
        header = bam.header.to_dict()
    header["SQ"] = [{**sq, "SN": sq["SN"].removeprefix("chr")} for sq in header["SQ"]]
    with pysam.AlignmentFile(str(ensembl / "s1.bam"), "wb", header=header):
        pass
    pysam.index(str(ensembl / "s1.bam"))
    frags = ensembl / "s2.fragments.tsv.gz"
    with pysam.BGZFile(str(frags), "wb") as handle:
        handle.write(b"1\t100\t200\tAAAC-1\t1\n2\t100\t300\tAAAC-1\t1\n")
    pysam.tabix_index(str(frags), preset="bed", force=True)
    gtf = ensembl / "genes.gtf.gz"
    with gzip.open(gtf, "wt") as handle:
        handle.write('#!genome-build x\n1\tx\tgene\t10\t20\t.\t+\t.\tgene_id "G";\n')
    peaks = ensembl / "peaks.bed"
    peaks.write_text("track name=p\n1\t10\t500\n")

    def refused(rows: str, **change: Path) -> str:
        sheet = tmp_path / "sheet.csv"
        sheet.write_text("sample,bam,fragments\n" + rows)
        with pytest.raises(InputError) as exc:
            plan({**params, "input": sheet, **change}, tmp_path / "out", threads=1)
        assert not (tmp_path / "out").exists()
        return str(exc.value)

    good = f"sample1,{tiny_world / 'samples' / 'sample1.bam'},\n"
    msg = refused(good + f"s1,{ensembl / 's1.bam'},\n")
    assert msg.startswith(f"{ensembl / 's1.bam'}: no chromosome name of the BAM header is in")
    assert "(e.g. 1, 2, 3 vs chr1, chr2, chr3)" in msg
    msg = refused(good + f"s2,,{frags}\n")
    assert msg.startswith(f"{frags}: no chromosome name of the fragments is in the genome index")
    assert refused(good, gtf=gtf).startswith(f"{gtf}: no chromosome name of the GTF is in")
    assert refused(good, peaks=peaks).startswith(f"{peaks}: no chromosome name of the peaks")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("sample,bam,fragments\n" + good)
    assert plan({**params, "input": sheet}, tmp_path / "ok", threads=1)
    # a GTF that starts with contigs the genome index lacks is read on to its chromosomes
    unplaced = ensembl / "unplaced_first.gtf"
    contigs = ["KI1"] * 3000 + ["GL2"] * 3000 + ["chr1"]  # past any fixed budget of lines
    lines = [f'{c}\tx\tgene\t10\t20\t.\t+\t.\tgene_id "G";' for c in contigs]
    unplaced.write_text("\n".join(lines) + "\n")
    assert plan({**params, "input": sheet, "gtf": unplaced}, tmp_path / "ok", threads=1)


@pytest.mark.parametrize(
    ("param", "text", "problem"),
    [
        ("bulk_rna", "", "file is empty"),
        ("bulk_rna", "CTCF\t13148\t12767\n", "the first line looks like data"),
        ("grn_labels", "", "labels file is empty"),
        ("tfs", "# none\n", "TF list is empty"),
    ],
)
def test_planning_reads_the_small_tables_before_any_step(
    tiny_world: Path, tmp_path: Path, param: str, text: str, problem: str
) -> None:
    """The bulk RNA matrix, the GRN labels and the TF list are read when the run is planned (and
    by a dry run): before, a bad one stopped IMPUTE or the GRN after TF-binding training."""
    from scregnet.pipeline.params import read_params

    params = read_params(tiny_world / "params.yaml")
    bad = tmp_path / f"{param}.tsv"
    bad.write_text(text)
    with pytest.raises(InputError, match=problem) as exc:
        plan({**params, param: bad}, tmp_path / "out", threads=1)
    assert str(exc.value).startswith(f"{bad}: ")
    assert not (tmp_path / "out").exists()


def test_planning_refuses_atac_counts_given_as_scrna(tiny_world: Path, tmp_path: Path) -> None:
    """A samplesheet whose `rna` column names a cells x peaks file: refused when the run is
    planned (IMPUTE would take the peaks for genes, after TF-binding training)."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    from scregnet.pipeline.params import read_params

    params = read_params(tiny_world / "params.yaml")
    peaks = pd.DataFrame(
        {"chrom": "chr1", "start": [0, 500], "end": [400, 900]},
        index=["chr1:0-400", "chr1:500-900"],
    )
    atac = tmp_path / "s1.atac.h5ad"
    ad.AnnData(sp.csr_matrix((3, 2), dtype="float32"), var=peaks).write_h5ad(atac)
    sheet = tmp_path / "sheet.csv"
    bam = tiny_world / "samples" / "sample1.bam"
    sheet.write_text(f"sample,bam,rna\nsample1,{bam},{atac}\n")
    with pytest.raises(InputError, match=r"s1\.atac\.h5ad: a cells x peaks file"):
        plan({**params, "input": sheet}, tmp_path / "out", threads=1)
    assert not (tmp_path / "out").exists()


def test_planning_refuses_a_bam_aligned_to_another_assembly(
    tiny_world: Path, tmp_path: Path
) -> None:
    """A BAM whose header names the genome's chromosomes but gives one another length (hg19's
    chr1 against hg38's) was aligned to another assembly: refused at planning, naming the BAM and
    both lengths. Chromosomes the genome index lacks are not compared."""
    import pysam

    from scregnet.io.genome import read_chrom_sizes
    from scregnet.pipeline.params import read_params

    params = read_params(tiny_world / "params.yaml")
    sizes = read_chrom_sizes(str(params["fasta"]) + ".fai")
    with pysam.AlignmentFile(str(tiny_world / "samples" / "sample1.bam")) as bam:
        header = bam.header.to_dict()
    first = header["SQ"][0]["SN"]

    def bam_with(sq: list[dict[str, object]], name: str) -> Path:
        path = tmp_path / name
        with pysam.AlignmentFile(str(path), "wb", header={**header, "SQ": sq}):
            pass
        pysam.index(str(path))
        return path

    other = [{**sq, "LN": sq["LN"] + 1000} if sq["SN"] == first else sq for sq in header["SQ"]]
    longer = bam_with(other, "other_assembly.bam")
    # a contig the genome lacks, and another build's mitochondrial genome, are not compared
    rcrs = [{**sq, "LN": sq["LN"] + 2} if sq["SN"] == "chrM" else sq for sq in header["SQ"]]
    assert rcrs != header["SQ"]
    extra = bam_with([*rcrs, {"SN": "chrUn_extra", "LN": 5000}], "extra_contig.bam")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(f"sample,bam,fragments\ns1,{longer},\n")
    with pytest.raises(InputError) as exc:
        plan({**params, "input": sheet}, tmp_path / "out", threads=1)
    assert str(exc.value) == (
        f"{longer}: 1 chromosome(s) have another length in the BAM header than in the genome "
        f"index {Path(str(params['fasta']) + '.fai').name} (e.g. {first}: "
        f"{sizes[first] + 1000:,} vs {sizes[first]:,} bp): they come from different genome "
        "assemblies"
    )
    assert not (tmp_path / "out").exists()
    sheet.write_text(f"sample,bam,fragments\ns1,{extra},\n")
    assert plan({**params, "input": sheet}, tmp_path / "ok", threads=1)


def test_test_profile_report_scores_against_the_truth_first(
    tiny_world: Path, tmp_path: Path
) -> None:
    """With a truth folder (the test profile) REPORT runs `scregnet report --truth` and writes
    evaluation.json (its output, so the report shows this run's scores); without one the file is
    an input (a user's `scregnet evaluate` there reruns REPORT)."""
    from scregnet.pipeline.params import read_params

    params = read_params(tiny_world / "params.yaml")
    truth = tiny_world / "truth"
    out = tmp_path / "out"
    report = next(s for s in plan(params, out, threads=1, truth=truth) if s.stage == "REPORT")
    argv = report.command()
    assert argv[argv.index("--truth") + 1] == str(truth)
    assert out / "evaluation.json" in report.outputs
    assert out / "evaluation.json" not in report.inputs and truth in report.inputs
    plain = next(s for s in plan(params, out, threads=1) if s.stage == "REPORT")
    assert "--truth" not in plain.command()
    assert out / "evaluation.json" in plain.inputs and plain.outputs == [
        out / "report" / "report.html"
    ]
