"""End-to-end benchmark: ``scregnet run`` on a simulator world; per-stage wall time and peak memory.

Runs the single-machine runner exactly as a user does (``bin/scregnet run --params P --outdir O``)
with CPU-sized training (short epochs, the test profile's CPU-sized TF-binding network) and reports:

* per step, from the runner's own ``pipeline_info/trace.tsv``: wall seconds and peak RSS, taken by
  ``os.wait4`` from the kernel (``ru_maxrss`` of the step's process and everything it waited for);
* for the whole run, sampled every 0.25 s with psutil: the summed RSS of the runner and every
  process below it (an upper bound on the memory in use at once: shared pages count once per
  process), and the wall time.

``--profile-test`` instead runs ``scregnet run --profile test`` (what ``make demo`` runs: simulate
the ``small`` world, then every stage with the test profile's training). Besides the measured wall
time it prints the wall time the same schedule would take on an otherwise idle machine: the
runner's own scheduling policy replayed (``--jobs`` slots, same dependencies and priorities) with
each step lasting its measured CPU seconds, plus the runner's own CPU time (simulation, evaluation).
On a shared machine the measured wall time mostly measures the other jobs.

The target is < 8 GB peak memory on the ``large`` world. The world is reused when
``WORLD/params.yaml`` exists (the ATAC bench simulates ``bench/work/large``); ``--simulate`` makes it.

    python bench/end_to_end.py --world bench/work/large --jobs 1 --impute-epochs 1
    python bench/end_to_end.py --profile-test --outdir bench/out/demo --jobs 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]


def absolute_params(world: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = yaml.safe_load((world / "params.yaml").read_text())
    for key, value in list(params.items()):
        if isinstance(value, str) and (world / value).exists():
            params[key] = str((world / value).resolve())
    params.update(overrides)
    return params


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and all its descendants until stopped."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_bytes = 0
        self.peak_at = 0.0
        self.peak_procs: list[str] = []
        self._stop_event = threading.Event()
        self._t0 = time.perf_counter()

    def run(self) -> None:
        while not self._stop_event.is_set():
            total, names = 0, []
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                    total += rss
                    names.append(f"{' '.join(proc.cmdline()[2:4])[:40]}={rss / 2**20:.0f}MB")
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
            if total > self.peak_bytes:
                self.peak_bytes, self.peak_procs = total, names
                self.peak_at = time.perf_counter() - self._t0
            time.sleep(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def read_trace(outdir: Path) -> list[dict[str, str]]:
    lines = (outdir / "pipeline_info" / "trace.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:]]


def replay_schedule(steps: list[Any], seconds: list[float], jobs: int) -> float:
    """Makespan of the runner's list scheduling (``jobs`` slots) when step i lasts seconds[i]."""
    from scregnet.pipeline import step_dependencies, step_priorities

    deps = step_dependencies(steps)
    priority = step_priorities(steps, deps)  # the runner's own (STAGE_COST) priorities
    pending, finished = set(range(len(steps))), set()
    running: list[tuple[float, int]] = []
    now = 0.0
    while pending or running:
        ready = sorted((i for i in pending if deps[i] <= finished), key=lambda i: (-priority[i], i))
        for i in ready[: jobs - len(running)]:
            pending.discard(i)
            running.append((now + seconds[i], i))
        running.sort()
        now, done = running.pop(0)
        finished.add(done)
    return now


def planned_steps(
    params_file: Path, outdir: Path, *, test_profile: bool, threads: int
) -> list[Any]:
    from scregnet.pipeline import TEST_PROFILE, plan
    from scregnet.pipeline.params import read_params

    params = read_params(params_file)
    if test_profile:
        params.update({k: v for k, v in TEST_PROFILE.items() if k != "preset"})
    return plan(params, outdir, threads=threads)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=REPO / "bench" / "work" / "large")
    ap.add_argument("--outdir", type=Path, default=REPO / "bench" / "out" / "end_to_end_large")
    ap.add_argument("--simulate", default=None, help="simulate this preset into --world if absent")
    ap.add_argument(
        "--profile-test", action="store_true", help="run `scregnet run --profile test` (make demo)"
    )
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--impute-epochs", type=int, default=1)
    ap.add_argument("--tfbind-epochs", type=int, default=1)
    ap.add_argument("--grn-epochs", type=int, default=2)
    ap.add_argument("--min-fragments", type=int, default=500)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    args.outdir.mkdir(parents=True, exist_ok=True)
    common = [
        "--outdir",
        str(args.outdir),
        "--jobs",
        str(args.jobs),
        "--threads",
        str(args.threads),
    ]
    if args.profile_test:
        cmd = [sys.executable, str(REPO / "bin" / "scregnet"), "run", "--profile", "test", *common]
        params_file = args.outdir / "testdata" / "params.yaml"
        label = "scregnet run --profile test"
    else:
        if not (args.world / "params.yaml").exists():
            if args.simulate is None:
                print(f"no world at {args.world} (pass --simulate large)", file=sys.stderr)
                return 1
            subprocess.run(
                [
                    sys.executable,
                    str(REPO / "bin" / "scregnet"),
                    "simulate",
                    "--preset",
                    args.simulate,
                    "--outdir",
                    str(args.world),
                ],
                check=True,
            )
        world = json.loads((args.world / "truth" / "world.json").read_text())
        params = absolute_params(
            args.world,
            {
                "device": "cpu",
                "min_fragments": args.min_fragments,
                "impute_epochs": args.impute_epochs,
                "tfbind_epochs": args.tfbind_epochs,
                "grn_epochs": args.grn_epochs,
                # the test profile's CPU-sized network and prior threshold (scregnet.pipeline.TEST_PROFILE)
                "tfbind_train_args": "--filters 16,24,24 --hidden 32 --lr 3e-3 --negative-ratio 2",
                "grn_train_args": "--prior-threshold 0.05",
            },
        )
        params_file = args.outdir / "params.yaml"
        params_file.write_text(yaml.safe_dump(params, sort_keys=True))
        cmd = [
            sys.executable,
            str(REPO / "bin" / "scregnet"),
            "run",
            "--params",
            str(params_file),
            *common,
        ]
        label = f"world {args.world.name} (preset {world.get('preset')})"
    start = time.perf_counter()
    with (args.outdir / "run.log").open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        code = proc.wait()
        sampler.stop()
    wall = time.perf_counter() - start
    trace = (
        read_trace(args.outdir) if (args.outdir / "pipeline_info" / "trace.tsv").exists() else []
    )

    runner_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"{label}: "
        f"jobs {args.jobs}, threads {args.threads}, epochs impute/tfbind/grn "
        f"{args.impute_epochs}/{args.tfbind_epochs}/{args.grn_epochs}; exit code {code}\n"
    )
    print("| step | status | wall (s) | CPU (s) | peak RSS (MB) |\n|---|---|---|---|---|")
    for row in trace:
        print(
            f"| {row['stage']} ({row['name']}) | {row['status']} | {row['wall_s']} "
            f"| {row['cpu_s']} | {row['peak_rss_mb']} |"
        )
    completed = [r for r in trace if r["status"] == "COMPLETED"]
    step_peak = max((float(r["peak_rss_mb"]) for r in completed), default=0.0)
    print(
        f"\nwall {wall:.0f} s; largest step peak RSS {step_peak:.0f} MB; "
        f"whole process tree peak (sampled, summed RSS) {sampler.peak_bytes / 2**20:.0f} MB "
        f"at {sampler.peak_at:.0f} s: {', '.join(sampler.peak_procs)}"
    )
    completed_cpu = sum(float(r["cpu_s"]) for r in completed)
    own_cpu = runner_cpu.ru_utime + runner_cpu.ru_stime - completed_cpu
    estimate = None
    if code == 0 and params_file.exists():
        steps = planned_steps(
            params_file, args.outdir, test_profile=args.profile_test, threads=args.threads
        )
        cpu = {(r["stage"], r["name"]): float(r["cpu_s"] or 0) for r in trace}
        makespan = replay_schedule(
            steps, [cpu.get((s.stage, s.name), 0.0) for s in steps], args.jobs
        )
        sequential = sum(cpu.values())
        estimate = own_cpu + makespan
        print(
            f"steps' CPU time {sequential:.0f} s; runner's own CPU (simulation, evaluation) "
            f"{own_cpu:.0f} s; on an idle machine: {estimate:.0f} s with --jobs {args.jobs} "
            f"(schedule replayed), {own_cpu + sequential:.0f} s one step at a time"
        )
    figures = {
        "run": label,
        "idle_estimate_s": None if estimate is None else round(estimate, 1),
        "runner_own_cpu_s": round(own_cpu, 1),
        "jobs": args.jobs,
        "threads": args.threads,
        "epochs": [args.impute_epochs, args.tfbind_epochs, args.grn_epochs],
        "exit_code": code,
        "wall_s": round(wall, 1),
        "largest_step_peak_rss_mb": step_peak,
        "tree_peak_rss_mb": round(sampler.peak_bytes / 2**20, 1),
        "steps": trace,
    }
    (args.json or args.outdir / "end_to_end.json").write_text(json.dumps(figures, indent=1) + "\n")
    if code != 0:
        print((args.outdir / "run.log").read_text()[-2000:], file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
