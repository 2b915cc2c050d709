"""Single-machine runner: every stage in DAG order, from the same samplesheet and params as Nextflow.

Each step runs the same ``scregnet <subcommand>`` command line that the Nextflow module runs, in a
child process (exactly like a Nextflow task, and so a crash or ``kill -9`` of one step cannot leave the
runner in a half state). A step is skipped when all its outputs exist, are newer than its inputs, and
were made by the same command (recorded in ``pipeline_info/steps/``): that is resume.
"""

from __future__ import annotations

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
        return [self.executable, *self.argv]

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps([self.executable, *self.argv]).encode()).hexdigest()[:16]


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


def run_steps(
    steps: Sequence[Step],
    outdir: Path,
    *,
    on_progress: Callable[[str], None] | None = None,
) -> list[str]:
    """Run (or skip as fresh) every step in order; return the names of the steps that ran."""
    say = on_progress or log.info
    records = outdir / "pipeline_info" / "steps"
    records.mkdir(parents=True, exist_ok=True)
    ran: list[str] = []
    total = len(steps)
    for i, step in enumerate(steps, 1):
        label = f"[{i}/{total}] {step.stage} ({step.name})"
        record = records / f"{step.stage}.{step.name}.json"
        if is_fresh(step, record):
            say(f"{label}: outputs complete and up to date, skipped (resume)")
            continue
        if step.optional_tool and shutil.which(step.executable) is None:
            say(f"{label}: skipped, `{step.executable}` is not installed")
            continue
        say(f"{label}: running")
        for output in step.outputs:
            output.parent.mkdir(parents=True, exist_ok=True)
            for stale in output.parent.glob(
                f".{output.name}.*part*"
            ):  # left by a killed earlier attempt
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        start = time.perf_counter()
        env = {**os.environ, **step.env}
        proc = subprocess.run(
            step.command(), env=env, check=False, stderr=subprocess.PIPE, text=True
        )
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            detail = lines[-1] if lines else f"exit code {proc.returncode}"
            msg = f"{step.stage} ({step.name}) failed: {detail}"
            raise InputError(msg)
        missing = [str(p) for p in step.outputs if not p.exists()]
        if missing:
            msg = f"{step.stage} ({step.name}) exited 0 but did not write {', '.join(missing)}"
            raise RuntimeError(msg)
        with atomic_path(record) as tmp:
            tmp.write_text(
                json.dumps({"fingerprint": step.fingerprint(), "argv": step.argv}) + "\n"
            )
        ran.append(f"{step.stage}:{step.name}")
        say(f"{label}: done in {time.perf_counter() - start:.1f} s")
    return ran


#: ``--profile test``: the simulator's ``small`` world with short training (mirrors conf/test.config).
TEST_PROFILE: dict[str, Any] = {
    "preset": "small",
    "seed": 0,
    "impute_epochs": 10,
    "tfbind_epochs": 4,
    "grn_epochs": 20,
    "min_fragments": 500,
    # CPU-sized TF-binding network (the default is the paper's 160/240/240 + 919, meant for a GPU)
    "tfbind_train_args": "--filters 32,48,48 --hidden 64 --lr 3e-3 --negative-ratio 2",
    # the calibrated CPU-sized model predicts low probabilities; take weaker binding as a prior
    "grn_args": "--prior-threshold 0.05",
}


def prepare_test_data(outdir: Path) -> Path:
    """Simulate the test profile's world under ``outdir/testdata`` (reused when already complete)."""
    from scregnet.simulate import simulate

    world = outdir / "testdata"
    params = world / "params.yaml"
    if params.exists():
        log.info("test data already simulated at %s, reused", world)
        return params
    log.info("simulating the %r test world into %s", TEST_PROFILE["preset"], world)
    simulate(world, preset=TEST_PROFILE["preset"], seed=TEST_PROFILE["seed"])
    return params


def run_pipeline(
    params: dict[str, Any], outdir: Path, *, threads: int = 1, truth: Path | None = None
) -> Path:
    """Plan and run every stage; score against ``truth`` when given; return the report's path."""
    outdir.mkdir(parents=True, exist_ok=True)
    steps = plan(params, outdir, threads=threads)
    start = time.perf_counter()
    run_steps(steps, outdir)
    if truth is not None and truth.is_dir():
        from scregnet.evaluate.truth import evaluate, write_evaluation

        write_evaluation(evaluate(truth, outdir), outdir / "evaluation.json")
        log.info("evaluation against %s written to %s", truth, outdir / "evaluation.json")
    log.info("pipeline finished in %.1f s", time.perf_counter() - start)
    return outdir / "report" / "report.html"
