"""``scregnet run``: the whole pipeline on one machine (same samplesheet and params as Nextflow)."""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path
from typing import Any

HELP = "run every stage in DAG order on this machine (resumes finished stages)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--params", type=Path, help="params.yaml (the file Nextflow takes as -params-file)"
    )
    source.add_argument(
        "--profile", choices=["test"], help="'test': simulate the small world and run on it"
    )
    parser.add_argument("--outdir", type=Path, required=True, help="results directory")
    parser.add_argument(
        "--device", default=None, help="override params' device: auto, cpu, cuda, cuda:N"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="steps run at the same time when the DAG allows (each uses --threads threads); "
        "outputs do not depend on it",
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="when a step fails, still run every step that does not need its outputs (other "
        "samples' steps), then exit with an error naming the failed steps; a rerun resumes",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the inputs and list each step as up to date, to run (and why) or skipped, "
        "then stop: nothing is run or written (needs --params)",
    )


def main(args: argparse.Namespace) -> int:
    from scregnet.errors import InputError
    from scregnet.io.atomic import check_writable_dir
    from scregnet.io.outputs import check_paths
    from scregnet.pipeline import TEST_PROFILE, outdir_lock, prepare_test_data, run_pipeline
    from scregnet.pipeline.params import read_params

    if args.jobs < 1:
        raise InputError(f"--jobs must be >= 1, got {args.jobs}")
    check_paths(inputs=[args.params], outdirs=[args.outdir])
    if args.dry_run:
        return dry_run(args)
    outdir = results_folder(check_writable_dir(args.outdir))
    truth = None
    lock: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
    if args.profile == "test":
        lock = outdir_lock(outdir)  # one run per outdir, from the test world's simulation on
    else:
        # a bad params file is refused here, a bad samplesheet by run_pipeline's plan: both before
        # the outdir exists
        params = read_params(args.params)
    with lock:
        if args.profile == "test":
            params_path = prepare_test_data(outdir)
            params = read_params(params_path)
            params.update({k: v for k, v in TEST_PROFILE.items() if k not in {"simulate_preset"}})
            truth = params_path.parent / "truth"
        with_overrides(params, args)
        report = run_pipeline(
            params,
            outdir,
            threads=args.threads,
            jobs=args.jobs,
            keep_going=args.keep_going,
            truth=truth,
        )
    if report.exists():
        print(f"report: {report.resolve()}")
    return 0


def results_folder(path: Path) -> Path:
    """``--outdir`` resolved (symlinks, ``..``, the launch folder): the steps' recorded commands
    name the folder the same way however it is spelled, so a resumed run reruns nothing."""
    return path.resolve()


def with_overrides(params: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """``params`` with the command line's ``--device`` and ``--seed`` (a seed given on the
    command line beats the params file's; neither given: 0)."""
    if args.device:
        params["device"] = args.device
    if getattr(args, "seed_given", True):
        params["seed"] = args.seed
    else:
        params.setdefault("seed", 0)
    return params


def dry_run(args: argparse.Namespace) -> int:
    """Print what ``scregnet run`` would do with these arguments (:mod:`scregnet.pipeline.preview`)."""
    from scregnet.errors import InputError
    from scregnet.io.atomic import check_writable_dir
    from scregnet.pipeline import plan
    from scregnet.pipeline.params import read_params
    from scregnet.pipeline.preview import preview, preview_lines

    if args.params is None:
        msg = "--dry-run needs --params (the test profile simulates its data first)"
        raise InputError(msg)
    params = with_overrides(read_params(args.params), args)
    outdir = results_folder(check_writable_dir(args.outdir))  # looked at, not created
    steps = plan(params, outdir, threads=args.threads)
    for line in preview_lines(preview(steps, outdir)):
        print(line)
    return 0
