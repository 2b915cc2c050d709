"""``scregnet run``: the whole pipeline on one machine (same samplesheet and params as Nextflow)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

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


def main(args: argparse.Namespace) -> int:
    from scregnet.io.atomic import check_writable_dir
    from scregnet.io.params import read_params
    from scregnet.pipeline import TEST_PROFILE, prepare_test_data, run_pipeline

    outdir = check_writable_dir(args.outdir)
    truth = None
    if args.profile == "test":
        params_path = prepare_test_data(outdir)
        params = read_params(params_path)
        params.update({k: v for k, v in TEST_PROFILE.items() if k not in {"preset"}})
        truth = params_path.parent / "truth"
    else:
        params = read_params(args.params)
    if args.device:
        params["device"] = args.device
    params["seed"] = args.seed if args.seed else params.get("seed", 0)
    report = run_pipeline(params, outdir, threads=args.threads, truth=truth)
    if report.exists():
        print(f"report: {report.resolve()}")
    return 0
