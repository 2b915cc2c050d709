"""Single-machine runner: every stage in DAG order, from the same samplesheet and params as Nextflow.

Each step runs the same ``scregnet <subcommand>`` command line that the Nextflow module runs, in a
child process (exactly like a Nextflow task, and so a crash or ``kill -9`` of one step cannot leave the
runner in a half state). A step is skipped when all its outputs exist, are newer than its inputs, and
were made by the same command of the same scregnet code (recorded in ``pipeline_info/steps/``): that
is resume. Like Nextflow's task hash, which covers the process script and its container, the record
covers the command line and a digest of the installed scregnet package, so outputs of an older
version are never reused after an upgrade (or, in a development checkout, after an edit).
"""

from __future__ import annotations

import functools
import graphlib
import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scregnet.errors import InputError
from scregnet.io.atomic import atomic_path
from scregnet.io.genome import read_chrom_sizes
from scregnet.io.samplesheet import Sample, read_samplesheet

log = logging.getLogger(__name__)

#: process -> upstream processes; the Nextflow workflow's DAG must be this graph (a test checks it).
STAGE_GRAPH: dict[str, tuple[str, ...]] = {
    "FRAGMENTS": (),
    "PEAKS": ("FRAGMENTS",),
    "COUNT": ("FRAGMENTS", "PEAKS"),
    "CLUSTER": ("COUNT",),
    "TRACKS": ("FRAGMENTS", "CLUSTER"),
    "IMPUTE": (),
    "TFBIND_TRAIN": (),
    "TFBIND_PREDICT": ("TFBIND_TRAIN", "FRAGMENTS", "CLUSTER"),
    "TFBIND_MERGE": ("TFBIND_PREDICT", "CLUSTER"),
    "GRN": ("IMPUTE", "TFBIND_MERGE"),
    "REPORT": ("FRAGMENTS", "COUNT", "CLUSTER", "TRACKS", "IMPUTE", "TFBIND_MERGE", "GRN"),
    "MULTIQC": ("COUNT", "REPORT"),
}


def stage_order() -> list[str]:
    """The processes in a deterministic topological order."""
    sorter = graphlib.TopologicalSorter(STAGE_GRAPH)
    order: list[str] = []
    sorter.prepare()
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=list(STAGE_GRAPH).index)
        order.extend(ready)
        sorter.done(*ready)
    return order


@dataclass
class Step:
    """One task: a process applied to one sample (or to all, for pooled steps)."""

    stage: str
    name: str
    argv: list[str]
    inputs: list[Path]
    outputs: list[Path]
    executable: str = "scregnet"
    optional_tool: bool = False  # skip with a log line when the executable is absent (MultiQC)
    env: dict[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        if self.executable == "scregnet":
            return [sys.executable, "-m", "scregnet.cli.main", *self.argv]
        return [find_tool(self.executable) or self.executable, *self.argv]

    def fingerprint(self) -> str:
        code = package_digest() if self.executable == "scregnet" else ""
        key = json.dumps([self.executable, *self.argv, code])
        return hashlib.sha256(key.encode()).hexdigest()[:16]


@functools.cache
def package_digest() -> str:
    """Version and source digest of the scregnet package that runs the steps (its ``*.py`` files)."""
    import scregnet

    root = Path(scregnet.__file__).parent
    digest = hashlib.sha256(scregnet.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{scregnet.__version__}+{digest.hexdigest()[:12]}"


def find_tool(name: str) -> str | None:
    """``name`` on PATH or beside this Python (a venv's bin/, e.g. MultiQC, when not activated)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), str(Path(sys.executable).parent)])
    return shutil.which(name, path=path)


def _p(path: Path | None) -> str:
    return "" if path is None else str(path)


def plan(params: dict[str, Any], outdir: Path, *, threads: int = 1) -> list[Step]:
    """Expand params + samplesheet into the ordered list of steps."""
    samples: list[Sample] = read_samplesheet(params["input"])
    fasta: Path = params["fasta"]
    fai = Path(str(fasta) + ".fai")
    if not fai.exists():
        msg = "FASTA has no .fai index (run `samtools faidx`)"
        raise InputError(msg, fasta)
    gtf: Path = params["gtf"]
    seed = str(params.get("seed", 0))
    common = ["--seed", seed, "--threads", str(threads)]
    device = ["--device", str(params.get("device", "auto"))]
    steps: dict[str, list[Step]] = {stage: [] for stage in STAGE_GRAPH}
    atac, peaks_dir, tracks_dir = outdir / "atac", outdir / "peaks", outdir / "tracks"
    impute_dir, tfbind_dir, grn_dir = outdir / "impute", outdir / "tfbind", outdir / "grn"
    frags: dict[str, Path] = {}
    clustered: dict[str, Path] = {}
    for s in samples:
        if s.bam is not None:
            frag = atac / f"{s.sample}.fragments.tsv.gz"
            steps["FRAGMENTS"].append(
                Step(
                    "FRAGMENTS",
                    s.sample,
                    [
                        "fragments",
                        "--bam",
                        str(s.bam),
                        "--out",
                        str(frag),
                        "--min-mapq",
                        str(params["min_mapq"]),
                        "--barcode-tag",
                        str(params["barcode_tag"]),
                        *common,
                    ],
                    [s.bam],
                    [frag, Path(str(frag) + ".tbi")],
                )
            )
        else:
            assert s.fragments is not None
            frag = s.fragments
        frags[s.sample] = frag
        if params.get("peaks") is None:
            peaks = peaks_dir / f"{s.sample}.narrowPeak"
            steps["PEAKS"].append(
                Step(
                    "PEAKS",
                    s.sample,
                    [
                        "peaks",
                        "--fragments",
                        str(frag),
                        "--genome",
                        str(fai),
                        "--out",
                        str(peaks),
                        *common,
                    ],
                    [frag],
                    [peaks],
                )
            )
        else:
            peaks = params["peaks"]
        count = atac / f"{s.sample}.atac.h5ad"
        steps["COUNT"].append(
            Step(
                "COUNT",
                s.sample,
                [
                    "count",
                    "--fragments",
                    str(frag),
                    "--peaks",
                    str(peaks),
                    "--genome",
                    str(fai),
                    "--tss",
                    str(gtf),
                    "--min-fragments",
                    str(params["min_fragments"]),
                    "--tile-size",
                    str(params["tile_size"]),
                    "--qc",
                    str(atac / f"{s.sample}.qc.tsv"),
                    "--out",
                    str(count),
                    *common,
                ],
                [frag, peaks, gtf],
                [count, atac / f"{s.sample}.qc.tsv"],
            )
        )
        clustered[s.sample] = atac / f"{s.sample}.clustered.h5ad"
        steps["CLUSTER"].append(
            Step(
                "CLUSTER",
                s.sample,
                ["cluster", "--atac", str(count), "--out", str(clustered[s.sample]), *common],
                [count],
                [clustered[s.sample]],
            )
        )
        track_dir = tracks_dir / s.sample
        steps["TRACKS"].append(
            Step(
                "TRACKS",
                s.sample,
                [
                    "tracks",
                    "--fragments",
                    str(frag),
                    "--clusters",
                    str(clustered[s.sample]),
                    "--genome",
                    str(fai),
                    "--outdir",
                    str(track_dir),
                    *common,
                ],
                [frag, clustered[s.sample]],
                [track_dir],
            )
        )
    imputed: dict[str, Path] = {}
    for s in samples:
        if s.rna is None:
            continue
        imputed[s.sample] = impute_dir / f"{s.sample}.imputed.h5ad"
        argv = ["impute", "--rna", str(s.rna), "--out", str(imputed[s.sample]), *device, *common]
        if params.get("bulk_rna") is not None:
            argv += ["--bulk", str(params["bulk_rna"])]
        if params.get("impute_epochs"):
            argv += ["--epochs", str(params["impute_epochs"])]
        steps["IMPUTE"].append(Step("IMPUTE", s.sample, argv, [s.rna], [imputed[s.sample]]))
    model = params.get("tfbind_model")
    if model is None and params.get("bulk_sheet") is not None:
        model = tfbind_dir / "model.pt"
        argv = [
            "tfbind",
            "train",
            "--fasta",
            str(fasta),
            "--bulk",
            str(params["bulk_sheet"]),
            "--out",
            str(model),
            *device,
            *common,
        ]
        if params.get("tfbind_epochs"):
            argv += ["--epochs", str(params["tfbind_epochs"])]
        # the motif-scan input tracks come from the given JASPAR file, else pyjaspar's release
        if params.get("motifs") is not None:
            argv += ["--motifs", str(params["motifs"])]
        steps["TFBIND_TRAIN"].append(
            Step("TFBIND_TRAIN", "all", argv, [fasta, params["bulk_sheet"]], [model])
        )
    tfbind: dict[str, Path] = {}
    if model is not None:
        # One shard covering every chromosome here; Nextflow runs one shard per chromosome. Both merge.
        chroms = ",".join(read_chrom_sizes(fai))
        for s in samples:
            shard = tfbind_dir / "shards" / f"{s.sample}.all.tfbind_shard.h5ad"
            argv = [
                "tfbind",
                "predict",
                "--model",
                str(model),
                "--fasta",
                str(fasta),
                "--atac",
                str(clustered[s.sample]),
                "--fragments",
                str(frags[s.sample]),
                "--chrom",
                chroms,
                "--out",
                str(shard),
                *device,
                *common,
            ]
            if params.get("motifs") is not None:
                argv += ["--motifs", str(params["motifs"])]
            steps["TFBIND_PREDICT"].append(
                Step(
                    "TFBIND_PREDICT",
                    s.sample,
                    argv,
                    [model, clustered[s.sample], frags[s.sample]],
                    [shard],
                )
            )
            tfbind[s.sample] = tfbind_dir / f"{s.sample}.tfbind.h5ad"
            argv = [
                "tfbind",
                "merge",
                "--shards",
                str(shard),
                "--atac",
                str(clustered[s.sample]),
                "--out",
                str(tfbind[s.sample]),
                *common,
            ]
            steps["TFBIND_MERGE"].append(
                Step("TFBIND_MERGE", s.sample, argv, [shard], [tfbind[s.sample]])
            )
    if imputed:
        grn = grn_dir / "grn_edges.tsv"
        argv = ["grn"]
        for path in imputed.values():
            argv += ["--rna", str(path)]
        if params.get("grn_labels") is not None:
            argv += ["--labels", str(params["grn_labels"])]
            grn_inputs = [*imputed.values(), params["grn_labels"]]
        elif tfbind:
            for path in tfbind.values():
                argv += ["--prior", str(path)]
            argv += ["--gtf", str(gtf)]
            grn_inputs = [*imputed.values(), *tfbind.values()]
        else:
            grn_inputs = []
        if params.get("tfs") is not None:
            argv += ["--tfs", str(params["tfs"])]
        if params.get("grn_epochs"):
            argv += ["--epochs", str(params["grn_epochs"])]
        if grn_inputs:
            attention = grn_dir / "grn_attention.tsv"
            argv += ["--out", str(grn), "--attention-out", str(attention), *device, *common]
            steps["GRN"].append(Step("GRN", "all", argv, grn_inputs, [grn, attention]))
        else:
            log.warning(
                "GRN skipped: it needs --grn_labels or TF-binding priors (bulk_sheet or tfbind_model)"
            )
    report = outdir / "report" / "report.html"
    upstream = [
        o
        for st in ("COUNT", "CLUSTER", "IMPUTE", "TFBIND_MERGE", "GRN")
        for step in steps[st]
        for o in step.outputs
    ]
    steps["REPORT"].append(
        Step(
            "REPORT",
            "all",
            ["report", "--results", str(outdir), "--out", str(report), *common],
            upstream,
            [report],
        )
    )
    steps["MULTIQC"].append(
        Step(
            "MULTIQC",
            "all",
            [str(outdir / "report"), "--outdir", str(outdir / "multiqc"), "--force"],
            [report],
            [outdir / "multiqc" / "multiqc_report.html"],
            executable="multiqc",
            optional_tool=True,
        )
    )
    ordered = [step for stage in stage_order() for step in steps[stage]]
    for step in ordered:  # `<process>_args` params: extra flags, like Nextflow's ext.args
        extra = params.get(f"{step.stage.lower()}_args")
        if extra and step.executable == "scregnet":
            step.argv += shlex.split(str(extra))
    return ordered


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def is_fresh(step: Step, record: Path) -> bool:
    """Outputs complete, newer than every input, and made by this very command."""
    if (
        not record.exists()
        or json.loads(record.read_text()).get("fingerprint") != step.fingerprint()
    ):
        return False
    if not all(p.exists() for p in step.outputs):
        return False
    newest_input = max((_mtime(p) for p in step.inputs if p.exists()), default=0.0)
    return min(_mtime(p) for p in step.outputs) >= newest_input


#: Rough seconds one step of each stage takes (CPU test profile, measured 2026-11-21). They only
#: decide which ready step starts first (the longest remaining chain first), never what it computes.
STAGE_COST: dict[str, float] = {
    "FRAGMENTS": 13,
    "PEAKS": 20,
    "COUNT": 5,
    "CLUSTER": 18,
    "TRACKS": 7,
    "IMPUTE": 40,
    "TFBIND_TRAIN": 180,
    "TFBIND_PREDICT": 22,
    "TFBIND_MERGE": 6,
    "GRN": 165,
    "REPORT": 8,
    "MULTIQC": 5,
}

#: the ``name`` of a step that pools every sample (it waits for every sample's upstream steps)
POOLED = "all"

TRACE_COLUMNS = ("stage", "name", "status", "start", "wall_s", "cpu_s", "peak_rss_mb", "log")
#: what a step record keeps besides its command (and a trace row takes from it when resumed)
RECORD_FIELDS = ("start", "wall_s", "cpu_s", "peak_rss_mb", "log")


def _stage_ancestors() -> dict[str, set[str]]:
    ancestors: dict[str, set[str]] = {}
    for stage in stage_order():
        ancestors[stage] = set(STAGE_GRAPH[stage])
        for up in STAGE_GRAPH[stage]:
            ancestors[stage] |= ancestors[up]
    return ancestors


def step_dependencies(steps: Sequence[Step]) -> list[set[int]]:
    """For each step, the indices of the steps that must finish before it may start.

    Step ``b`` comes before step ``a`` when ``b``'s stage is upstream of ``a``'s in
    :data:`STAGE_GRAPH` and both concern the same sample (or either pools every sample), and
    whenever ``a`` reads a file that ``b`` writes.
    """
    ancestors = _stage_ancestors()
    deps: list[set[int]] = []
    for a in steps:
        upstream = ancestors.get(a.stage, set())
        inputs = set(a.inputs)
        deps.append(
            {
                j
                for j, b in enumerate(steps)
                if b is not a
                and (
                    (b.stage in upstream and (a.name == b.name or POOLED in (a.name, b.name)))
                    or any(o in inputs for o in b.outputs)
                )
            }
        )
    return deps


def step_priorities(
    steps: Sequence[Step], deps: Sequence[set[int]], costs: Sequence[float] | None = None
) -> list[float]:
    """Each step's longest remaining chain (its cost plus its slowest chain of dependents), from
    ``costs`` (seconds per step) or else :data:`STAGE_COST`; the scheduler starts the highest first."""
    dependents: list[list[int]] = [[] for _ in steps]
    for i, ds in enumerate(deps):
        for j in ds:
            dependents[j].append(i)
    sorter = graphlib.TopologicalSorter({i: deps[i] for i in range(len(steps))})
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as exc:
        msg = f"the steps depend on each other in a cycle: {exc.args[1]}"
        raise RuntimeError(msg) from exc
    level = [0.0] * len(steps)
    for i in reversed(order):
        cost = STAGE_COST.get(steps[i].stage, 1.0) if costs is None else costs[i]
        level[i] = cost + max((level[k] for k in dependents[i]), default=0.0)
    return level


@dataclass
class _Running:
    index: int
    proc: subprocess.Popen[bytes]
    log: Any
    log_path: Path
    started: float
    started_at: str


def _wait_any(running: dict[int, _Running]) -> tuple[_Running, int, float, float]:
    """Block until one running step exits; return it, its exit code, its CPU seconds (user +
    system) and its peak RSS in MB.

    ``os.wait4`` gives the exit status with the child's resource usage, whose ``ru_maxrss`` covers
    the child and every process it waited for (MACS3 under ``scregnet peaks``, for instance).
    """
    while True:
        for run in running.values():
            pid, status, usage = os.wait4(run.proc.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                run.proc.returncode = code
                cpu = usage.ru_utime + usage.ru_stime
                return run, code, cpu, usage.ru_maxrss / 1024  # KiB on Linux
        time.sleep(0.05)


def _stop(running: dict[int, _Running]) -> None:
    """Terminate the steps still running (after a failure or an interrupt) and reap them."""
    for run in running.values():
        if run.proc.poll() is None:
            run.proc.terminate()
    for run in running.values():
        try:
            run.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            run.proc.kill()
            run.proc.wait()
        run.log.close()
    running.clear()


def _last_line(log_path: Path, code: int) -> str:
    lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else f"exit code {code}"


def _write_trace(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(
            "\t".join(TRACE_COLUMNS)
            + "\n"
            + "".join("\t".join(str(r.get(c, "")) for c in TRACE_COLUMNS) + "\n" for r in rows)
        )


def run_steps(
    steps: Sequence[Step],
    outdir: Path,
    *,
    jobs: int = 1,
    on_progress: Callable[[str], None] | None = None,
) -> list[str]:
    """Run (or skip as fresh) every step, up to ``jobs`` at once; return the steps that ran.

    A step starts once every step it depends on (:func:`step_dependencies`) has finished; among
    the ready steps the one heading the longest remaining chain starts first. Each step is a child
    process with a fixed command line, so what it writes does not depend on ``jobs`` or on the
    order. Every step's output goes to ``pipeline_info/logs/<stage>.<name>.log``; its wall time and
    peak memory go to ``pipeline_info/steps/<stage>.<name>.json`` and ``pipeline_info/trace.tsv``.
    On a failure the steps still running are terminated and the first failure is raised; their
    partial outputs are only temporary files (atomic writes), removed when the step runs again.
    """
    if jobs < 1:
        msg = f"jobs must be >= 1, got {jobs}"
        raise ValueError(msg)
    say = on_progress or log.info
    info = outdir / "pipeline_info"
    records, logs = info / "steps", info / "logs"
    records.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    deps = step_dependencies(steps)
    priority = step_priorities(steps, deps)
    total = len(steps)
    labels = [f"[{i}/{total}] {s.stage} ({s.name})" for i, s in enumerate(steps, 1)]
    pending = set(range(total))
    finished: set[int] = set()
    running: dict[int, _Running] = {}
    trace: dict[int, dict[str, Any]] = {}
    ran: list[str] = []
    try:
        while pending or running:
            ready = sorted(
                (i for i in pending if deps[i] <= finished), key=lambda i: (-priority[i], i)
            )
            launched_or_skipped = False
            for i in ready:
                if len(running) >= jobs:
                    break
                step, label = steps[i], labels[i]
                record = records / f"{step.stage}.{step.name}.json"
                row: dict[str, Any] = {"stage": step.stage, "name": step.name}
                if is_fresh(step, record):
                    say(f"{label}: outputs complete and up to date, skipped (resume)")
                    previous = json.loads(record.read_text())
                    row.update({k: previous.get(k, "") for k in RECORD_FIELDS})
                    trace[i] = {**row, "status": "CACHED"}
                elif step.optional_tool and find_tool(step.executable) is None:
                    say(f"{label}: skipped, `{step.executable}` is not installed")
                    trace[i] = {**row, "status": "SKIPPED"}
                else:
                    running[i] = _launch(i, step, label, logs, say)
                    pending.discard(i)
                    launched_or_skipped = True
                    continue
                pending.discard(i)
                finished.add(i)
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
            run.log.close()
            step, label = steps[run.index], labels[run.index]
            wall = time.perf_counter() - run.started
            if code != 0:  # the except clause below stops the steps running beside it
                msg = (
                    f"{step.stage} ({step.name}) failed: {_last_line(run.log_path, code)}"
                    f" (log: {run.log_path})"
                )
                raise InputError(msg)
            missing = [str(p) for p in step.outputs if not p.exists()]
            if missing:
                msg = f"{step.stage} ({step.name}) exited 0 but did not write {', '.join(missing)}"
                raise RuntimeError(msg)
            row = {
                "stage": step.stage,
                "name": step.name,
                "status": "COMPLETED",
                "start": run.started_at,
                "wall_s": round(wall, 1),
                "cpu_s": round(cpu, 1),
                "peak_rss_mb": round(peak_mb, 1),
                "log": str(run.log_path.relative_to(info)),
            }
            trace[run.index] = row
            record = records / f"{step.stage}.{step.name}.json"
            with atomic_path(record) as tmp:
                tmp.write_text(
                    json.dumps(
                        {
                            "fingerprint": step.fingerprint(),
                            "scregnet": package_digest(),
                            "argv": step.argv,
                            **{k: row[k] for k in RECORD_FIELDS},
                        }
                    )
                    + "\n"
                )
            finished.add(run.index)
            ran.append(f"{step.stage}:{step.name}")
            _write_trace(info / "trace.tsv", [trace[i] for i in sorted(trace)])  # as it goes
            say(f"{label}: done in {wall:.1f} s (peak memory {peak_mb:.0f} MB)")
    except BaseException:
        _stop(running)
        raise
    finally:
        _write_trace(info / "trace.tsv", [trace[i] for i in sorted(trace)])
    return ran


def _launch(index: int, step: Step, label: str, logs: Path, say: Callable[[str], None]) -> _Running:
    say(f"{label}: running")
    for output in step.outputs:
        output.parent.mkdir(parents=True, exist_ok=True)
        for stale in output.parent.glob(f".{output.name}.*part*"):  # left by a killed attempt
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    log_path = logs / f"{step.stage}.{step.name}.log"
    handle = log_path.open("wb")
    proc = subprocess.Popen(
        step.command(), env={**os.environ, **step.env}, stdout=handle, stderr=subprocess.STDOUT
    )
    return _Running(
        index, proc, handle, log_path, time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%S")
    )


#: ``--profile test``: the simulator's ``small`` world with short training (mirrors conf/test.config).
TEST_PROFILE: dict[str, Any] = {
    "preset": "small",
    "seed": 0,
    "impute_epochs": 10,
    "tfbind_epochs": 4,
    # the held-out selection keeps the gate at 0 on this world whatever the epochs: reading
    # `imputed`, 20, 8 and 4 epochs gave identical edges (304 s, 120 s, ~90 s); reading
    # `imputed_expected`, 4 and 2 give identical edge scores (92 s, 59 s; only the attention
    # columns differ; 2026-11-21), and the demo must stay < 10 min (9 min 43 s with 4)
    "grn_epochs": 2,
    "min_fragments": 500,
    # CPU-sized TF-binding network (the default is the paper's 160/240/240 + 919, meant for a GPU)
    "tfbind_train_args": "--filters 16,24,24 --hidden 32 --lr 3e-3 --negative-ratio 2",
    # the calibrated CPU-sized model predicts low probabilities; take weaker binding as a prior
    # (0.5 gave no better labels on this world: expression score EPR 2.96 vs 3.09)
    "grn_args": "--prior-threshold 0.05",
}


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
    log.info("simulating the %r test world into %s", TEST_PROFILE["preset"], world)
    argv = ["simulate", "--preset", str(TEST_PROFILE["preset"]), "--outdir", str(world)]
    argv += ["--seed", str(TEST_PROFILE["seed"])]
    if subprocess.run([sys.executable, "-m", "scregnet.cli.main", *argv], check=False).returncode:
        msg = f"simulating the test world into {world} failed (see the lines above)"
        raise InputError(msg)
    return params


def run_pipeline(
    params: dict[str, Any],
    outdir: Path,
    *,
    threads: int = 1,
    jobs: int = 1,
    truth: Path | None = None,
) -> Path:
    """Plan and run every stage (``jobs`` steps at once, each with ``threads`` threads); score
    against ``truth`` when given; return the report's path."""
    outdir.mkdir(parents=True, exist_ok=True)
    steps = plan(params, outdir, threads=threads)
    start = time.perf_counter()
    run_steps(steps, outdir, jobs=jobs)
    if truth is not None and truth.is_dir():
        from scregnet.evaluate.truth import evaluate, write_evaluation

        write_evaluation(evaluate(truth, outdir), outdir / "evaluation.json")
        log.info("evaluation against %s written to %s", truth, outdir / "evaluation.json")
    log.info("pipeline finished in %.1f s", time.perf_counter() - start)
    return outdir / "report" / "report.html"
