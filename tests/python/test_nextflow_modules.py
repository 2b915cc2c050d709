"""Module contract runs: every module's ``stub:`` and ``script:`` block rendered (Groovy) and run
with bash on the simulator's ``tiny`` world, with ``bin/`` on PATH; every declared output must appear.

Script blocks are chained in DAG order (SIMULATE makes the world, FRAGMENTS feeds COUNT, ...). A
module whose subcommand does not exist yet is skipped with a reason naming that subcommand; its
stub block is still run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nfcheck.functions import call
from nfcheck.render import (
    Renderer,
    RunResult,
    Task,
    execute,
    inputs_of,
    outputs_of,
)
from nfcheck.structure import Process, parse

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "workflows" / "scregnet.nf"
MODULES: dict[str, Process] = {
    p.name: p
    for path in sorted((REPO / "modules" / "local").glob("*/main.nf"))
    for p in parse(path).processes
}
#: the command each module's script block runs (what must exist for a contract run)
COMMAND = {
    "SIMULATE": "scregnet simulate",
    "FRAGMENTS": "scregnet fragments",
    "PEAKS": "scregnet peaks",
    "COUNT": "scregnet count",
    "CLUSTER": "scregnet cluster",
    "TRACKS": "scregnet tracks",
    "IMPUTE": "scregnet impute",
    "TFBIND_TRAIN": "scregnet tfbind train",
    "TFBIND_PREDICT": "scregnet tfbind predict",
    "TFBIND_MERGE": "scregnet tfbind merge",
    "GRN_TRAIN": "scregnet grn train",
    "GRN_SCORE": "scregnet grn score",
    "GRN_MERGE": "scregnet grn merge",
    "REPORT": "scregnet report",
    "MULTIQC": "multiqc",
}
#: ext.args as conf/modules.config renders them with conf/test.config's params; models are made
#: small and trained for one epoch, since this checks the command-line contract, not accuracy
EXT_ARGS = {
    "SIMULATE": "--seed 0",
    "FRAGMENTS": "--min-mapq 30 --barcode-tag CB --seed 0",
    "PEAKS": "--seed 0",
    "COUNT": "--min-fragments 100 --tile-size 5000 --seed 0",
    "CLUSTER": "--seed 0",
    "TRACKS": "--seed 0",
    "IMPUTE": "--seed 0 --epochs 1 --hidden-dim 32 --latent-dim 8",
    "TFBIND_TRAIN": "--seed 0 --epochs 1 --filters 16,16,16 --hidden 32",
    "TFBIND_PREDICT": "--seed 0",
    "GRN_TRAIN": "--seed 0 --epochs 1",
}


def test_every_module_is_covered() -> None:
    assert set(MODULES) == set(COMMAND)


def command_available(command: str) -> bool:
    """Whether ``command`` exists here (``scregnet <sub> --help`` exits 0, or the tool is on PATH)."""
    words = command.split()
    if words[0] != "scregnet":  # looked up on the PATH the task gets (render.execute)
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        return shutil.which(words[0], path=path) is not None
    proc = subprocess.run(
        [sys.executable, "-m", "scregnet.cli.main", *words[1:], "--help"],
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


@pytest.fixture(scope="module")
def renderer() -> Iterator[Renderer]:
    r = Renderer()
    yield r
    r.close()


# ---------------------------------------------------------------------------------------------
# stub blocks: always run
# ---------------------------------------------------------------------------------------------


def dummy_task(proc: Process, tmp: Path) -> Task:
    """Bind every input of ``proc`` to a placeholder (the stub must not read them)."""
    vals: dict[str, Any] = {}
    paths: dict[str, Path | list[Path]] = {}
    for inp in inputs_of(proc):
        if inp.kind == "val":
            vals[inp.name] = DUMMY_VALS.get(inp.name, "chr1")
        else:
            f = tmp / "inputs" / f"{inp.name}.dat"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.touch()
            paths[inp.name] = [f] if inp.stage_as or inp.many else f
    return Task(proc, vals, paths, ext={"args": EXT_ARGS.get(proc.name, "")})


#: placeholder values of the val inputs that are not plain strings
DUMMY_VALS: dict[str, Any] = {
    "meta": {"id": "s1", "view": "v1"},
    "shard": {"id": "shard1", "chroms": ["chr1"]},
    "expected": ["atac=s1"],
    "skipped_chroms": ["chrM"],
    "bulk_sheet_csv": "tf,chip_bed,accessibility_bw,cell_type\n",
}


@pytest.mark.parametrize("name", sorted(COMMAND))
def test_stub_block_creates_every_declared_output(
    name: str, renderer: Renderer, tmp_path: Path
) -> None:
    proc = MODULES[name]
    task = dummy_task(proc, tmp_path)
    result = execute(task, renderer.render(task, "stub"), tmp_path / "task")
    assert result.ok, result.explain()
    assert all(result.outputs[o.pattern] for o in outputs_of(proc)), result.outputs


# ---------------------------------------------------------------------------------------------
# script blocks: chained on the tiny world
# ---------------------------------------------------------------------------------------------


@dataclass
class Step:
    result: RunResult | None = None
    skipped: str | None = None


class Chain:
    """Runs script blocks in DAG order, each in its own task directory, remembering outputs."""

    def __init__(self, renderer: Renderer, root: Path) -> None:
        self.renderer, self.root = renderer, root
        self.steps: dict[str, Step] = {}
        self.seconds: dict[str, float] = {}
        self.tasks: dict[str, tuple[Task, str]] = {}  # the task and rendered script of each step

    def out(self, name: str, pattern_end: str) -> list[Path]:
        step = self.steps[name]
        assert step.result is not None
        return next(v for k, v in step.result.outputs.items() if k.endswith(pattern_end))

    def ok(self, name: str) -> bool:
        step = self.steps.get(name)
        return step is not None and step.result is not None and step.result.ok

    def ready(self, name: str, *upstream: str) -> bool:
        for up in upstream:
            step = self.steps.get(up)
            if step is None or step.result is None or not step.result.ok:
                why = step.skipped if step and step.skipped else "failed"
                self.steps[name] = Step(skipped=f"needs {up}'s outputs ({up}: {why})")
                return False
        if not command_available(COMMAND[name]):
            missing = (
                "is not implemented yet"
                if COMMAND[name].startswith("scregnet")
                else "is not installed"
            )
            self.steps[name] = Step(
                skipped=f"`{COMMAND[name]}` {missing}: script block not run (its stub block is checked)"
            )
            return False
        return True

    def run(self, name: str, vals: dict[str, Any], paths: dict[str, Any], *, tag: str = "") -> None:
        task = Task(MODULES[name], vals, paths, ext={"args": EXT_ARGS.get(name, "")}, cpus=1)
        command = self.renderer.render(task, "script")
        key = name + tag
        self.tasks[key] = (task, command)
        start = time.perf_counter()
        self.steps[key] = Step(execute(task, command, self.root / key.lower()))
        self.seconds[key] = time.perf_counter() - start


@pytest.fixture(scope="module")
def chain(renderer: Renderer, tmp_path_factory: pytest.TempPathFactory) -> Chain:
    c = Chain(renderer, tmp_path_factory.mktemp("contract"))
    meta = {"id": "sample1", "view": "ctrl"}
    if c.ready("SIMULATE"):
        c.run("SIMULATE", {"meta": {"id": "world_tiny"}, "preset": "tiny"}, {})
    if "SIMULATE" not in c.steps or c.steps["SIMULATE"].result is None:
        return c
    world = c.out("SIMULATE", "world")[0]
    fasta, fai, gtf = world / "genome.fa", world / "genome.fa.fai", world / "genes.gtf"
    bam = world / "samples" / "sample1.bam"

    if c.ready("FRAGMENTS", "SIMULATE"):
        c.run("FRAGMENTS", {"meta": meta}, {"bam": bam, "bai": Path(f"{bam}.bai"), "fai": fai})
    frags = tbi = None
    if c.ok("FRAGMENTS"):
        frags, tbi = c.out("FRAGMENTS", ".tsv.gz")[0], c.out("FRAGMENTS", ".tbi")[0]
    if c.ready("PEAKS", "FRAGMENTS"):
        c.run("PEAKS", {"meta": meta}, {"fragments": frags, "tbi": tbi, "fai": fai})
    if c.ready("COUNT", "FRAGMENTS"):
        peaks = world / "peaks.bed"
        c.run(
            "COUNT",
            {"meta": meta},
            {"fragments": frags, "tbi": tbi, "peaks": peaks, "fai": fai, "gtf": gtf},
        )
    if c.ready("CLUSTER", "COUNT"):
        c.run("CLUSTER", {"meta": meta}, {"atac": c.out("COUNT", ".atac.h5ad")[0]})
    clustered = c.out("CLUSTER", ".clustered.h5ad")[0] if c.ok("CLUSTER") else None
    if c.ready("TRACKS", "FRAGMENTS", "CLUSTER"):
        c.run(
            "TRACKS",
            {"meta": meta},
            {"fragments": frags, "tbi": tbi, "clustered": clustered, "fai": fai},
        )
    if c.ready("IMPUTE", "SIMULATE"):
        c.run(
            "IMPUTE",
            {"meta": meta},
            {
                "rna": world / "samples" / "sample1.rna.h5ad",
                # no bulk: the tiny world has too few genes for bulk transfer (impute needs 200)
                "bulk_rna": [],
            },
        )
    if c.ready("TFBIND_TRAIN", "SIMULATE"):
        sheet = world / "bulk" / "bulk_sheet.csv"
        files = sorted(p for p in sheet.parent.iterdir() if p.suffix in (".bed", ".bw"))
        c.run(
            "TFBIND_TRAIN",
            # the workflow hands the sheet over as text (stageBulkSheet), its files staged beside it
            {"meta": {"id": "tfbind"}, "bulk_sheet_csv": sheet.read_text()},
            {
                "bulk_files": files,
                "fasta": fasta,
                "fai": fai,
                "motifs": world / "motifs.jaspar",
            },
        )
    # two shards made by the workflow's own rule (predictionShards, chrM skipped as by default),
    # and two GRN scoring shards of the TFs (grnShards), in one Groovy evaluation
    contigs = [
        [row.split("\t")[0], int(row.split("\t")[1])] for row in fai.read_text().splitlines()
    ]
    shards_and_skipped = call(
        WORKFLOW,
        "[ predictionShards(contigs, ['chrM'], 2), skippedContigs(contigs, ['chrM']), grnShards(2) ]",
        contigs=contigs,
    )
    chroms, skipped, grn_shards = shards_and_skipped
    if c.ready("TFBIND_PREDICT", "TFBIND_TRAIN", "CLUSTER", "FRAGMENTS"):
        model = c.out("TFBIND_TRAIN", ".pt")[0]
        for chrom in chroms:
            c.run(
                "TFBIND_PREDICT",
                {"meta": meta, "shard": chrom},
                {
                    "atac": clustered,
                    "fragments": frags,
                    "tbi": tbi,
                    "model": model,
                    "fasta": fasta,
                    "fai": fai,
                    "motifs": world / "motifs.jaspar",
                },
                tag=f".shard{chroms.index(chrom)}",
            )
        shard_steps = [c.steps[f"TFBIND_PREDICT.shard{i}"] for i in range(len(chroms))]
        c.steps["TFBIND_PREDICT"] = next(
            (s for s in shard_steps if s.result is None or not s.result.ok), shard_steps[0]
        )
    if c.ready("TFBIND_MERGE", "TFBIND_PREDICT"):
        shards = [c.steps[f"TFBIND_PREDICT.shard{i}"].result.outputs for i in range(len(chroms))]  # type: ignore[union-attr]
        shard_files = [
            next(v for k, v in o.items() if k.endswith(".tfbind.h5ad"))[0] for o in shards
        ]
        c.run(
            "TFBIND_MERGE",
            {"meta": meta, "skipped_chroms": skipped},
            {"shards": shard_files, "atac": clustered},
        )
    if c.ready("GRN_TRAIN", "IMPUTE", "TFBIND_MERGE"):
        # known-edge labels (the --labels branch): priors from a one-epoch tiny TF-binding model
        # mark nearly every pair bound, which leaves `scregnet grn train --prior` no negatives to
        # learn from
        labels = c.root / "inputs" / "grn_labels.tsv"
        labels.parent.mkdir(parents=True, exist_ok=True)
        truth = (world / "truth" / "grn_edges.tsv").read_text().splitlines()
        labels.write_text(
            "tf\ttarget\n" + "".join(f"{r.split()[0]}\t{r.split()[1]}\n" for r in truth[1:])
        )
        c.run(
            "GRN_TRAIN",
            {"meta": {"id": "grn"}},
            {
                "rna": [c.out("IMPUTE", ".imputed.h5ad")[0]],
                "labels": labels,
                # the workflow hands no priors with known edges
                "priors": [],
                "gtf": gtf,
            },
        )
    # the two shards of the TFs scored apart, then merged
    if c.ready("GRN_SCORE", "GRN_TRAIN", "IMPUTE"):
        for shard in grn_shards:
            c.run(
                "GRN_SCORE",
                {"meta": {"id": "grn"}, "shard": shard},
                {
                    "model": c.out("GRN_TRAIN", ".pt")[0],
                    "rna": [c.out("IMPUTE", ".imputed.h5ad")[0]],
                    "priors": [],
                    "gtf": gtf,
                    "tfs": world / "tfs.txt",
                },
                tag=f".{shard['id']}",
            )
        score_steps = [c.steps[f"GRN_SCORE.{s['id']}"] for s in grn_shards]
        c.steps["GRN_SCORE"] = next(
            (s for s in score_steps if s.result is None or not s.result.ok), score_steps[0]
        )
    if c.ready("GRN_MERGE", "GRN_SCORE"):
        scored = [c.steps[f"GRN_SCORE.{s['id']}"].result.outputs for s in grn_shards]  # type: ignore[union-attr]
        score_files = sorted(
            (next(v for k, v in o.items() if k.endswith(".tsv"))[0] for o in scored),
            key=lambda f: f.name,
        )
        c.run("GRN_MERGE", {"meta": {"id": "grn"}}, {"shards": score_files})
    if c.ready("REPORT", "COUNT", "CLUSTER", "TRACKS", "IMPUTE", "TFBIND_MERGE", "GRN_MERGE"):
        c.run(
            "REPORT",
            {
                "meta": {"id": "report"},
                "expected": ["atac=sample1", "tfbind=sample1", "impute=sample1", "grn"],
            },
            {
                "atac": [c.out("COUNT", ".atac.h5ad")[0], c.out("COUNT", ".qc.tsv")[0], clustered],
                "tracks": c.out("TRACKS", "tracks/*"),
                "impute": [c.out("IMPUTE", ".imputed.h5ad")[0]],
                "tfbind": [c.out("TFBIND_MERGE", ".tfbind.h5ad")[0]],
                "grn": [
                    c.out("GRN_MERGE", "grn_edges.tsv")[0],
                    c.out("GRN_MERGE", "grn_attention.tsv")[0],
                ],
            },
        )
    if c.ready("MULTIQC", "COUNT", "REPORT"):
        c.run(
            "MULTIQC",
            {"meta": {"id": "multiqc"}},
            {
                "multiqc_files": c.out("REPORT", "_mqc.tsv"),
                "multiqc_config": REPO / "assets" / "multiqc_config.yml",
            },
        )
    return c


@pytest.mark.parametrize("name", sorted(COMMAND))
def test_script_block_honours_the_cli_contract(name: str, chain: Chain) -> None:
    step = chain.steps.get(name)
    if step is None:
        pytest.skip(
            f"`{COMMAND[name]}` not reached: the simulator (`scregnet simulate`) is missing"
        )
    if step.skipped:
        pytest.skip(f"{name}: {step.skipped}")
    assert step.result is not None
    assert step.result.ok, step.result.explain()
    for cmd, version in step.result.versions.items():
        assert version and "\n" not in version, f"version command {cmd!r} printed {version!r}"


def test_tfbind_train_reruns_in_its_own_task_directory(chain: Chain) -> None:
    """A spot reclaim rerun in place (Google Batch with scratch false): the same script in the same
    directory, under the pipeline's shell flags (noclobber), finds the first attempt's files (the
    bulk sheet it wrote, its model) and ends with the same model."""
    if not chain.ok("TFBIND_TRAIN"):
        pytest.skip(str(chain.steps["TFBIND_TRAIN"].skipped or "TFBIND_TRAIN failed"))
    model = chain.out("TFBIND_TRAIN", ".pt")[0]
    first = model.read_bytes()
    assert (model.parent / "bulk_sheet.csv").exists()
    task, command = chain.tasks["TFBIND_TRAIN"]
    again = execute(task, command, model.parent)
    assert again.ok, again.stderr[-2000:]
    assert model.read_bytes() == first


def test_report_finds_every_result_the_chain_wrote(chain: Chain) -> None:
    """REPORT's script block passes the expected results (``--expect``) to the report, which
    finds each one the chained modules wrote under the names the report reads."""
    step = chain.steps.get("REPORT")
    if step is None or step.skipped:
        pytest.skip(f"REPORT: {step.skipped if step else 'not reached'}")
    assert step.result is not None and step.result.ok, step.result and step.result.explain()
    assert "--expect 'grn'" in step.result.command
    page = chain.out("REPORT", "report.html")[0].read_text()
    assert 'id="run-status"' not in page
    assert 'alt="sample1 fragment lengths"' in page  # from the counts: no fragments file staged


def test_multiqc_parses_the_scregnet_custom_content(chain: Chain) -> None:
    """MULTIQC's script block on the report's *_mqc.tsv: one MultiQC row per sample with the
    per-sample QC medians; the per-barcode tables (atac/*.qc.tsv) are not MultiQC's input."""
    step = chain.steps.get("MULTIQC")
    if step is None or step.skipped:
        pytest.skip(f"MULTIQC: {step.skipped if step else 'not reached'}")
    assert step.result is not None and step.result.ok, step.result and step.result.explain()
    data = chain.out("MULTIQC", "_data")[0]
    report = data / "multiqc_scregnet_atac_qc.txt"  # from report/scregnet_atac_qc_mqc.tsv
    rows = report.read_text().splitlines()
    header = rows[0].split("\t")
    assert header[:2] == ["Sample", "cells"]
    for column in (
        "median_fragments",
        "median_tss_enrichment",
        "median_frip",
        "median_duplicate_rate",
        "median_nucleosome_signal",
    ):
        assert column in header, header
    assert [r.split("\t")[0] for r in rows[1:]] == ["sample1"]
    assert int(rows[1].split("\t")[1]) > 0
    assert not (data / "multiqc_scregnet_count_qc.txt").exists()


def test_report_runs_when_every_sample_failed(renderer: Renderer, tmp_path: Path) -> None:
    """Every sample's tasks failed under errorStrategy 'ignore': the workflow hands REPORT empty
    lists, and its script block still writes the report, listing every expected result."""
    task = Task(
        MODULES["REPORT"],
        {
            "meta": {"id": "report"},
            "expected": ["atac=sample1,sample2", "impute=sample1", "grn"],
        },
        {name: [] for name in ("atac", "tracks", "impute", "tfbind", "grn")},
    )
    result = execute(task, renderer.render(task, "script"), tmp_path / "task")
    assert result.ok, result.explain()
    page = (tmp_path / "task" / "report" / "report.html").read_text()
    assert "4 result(s) that the samplesheet asks for are missing" in page
    assert not list((tmp_path / "task" / "report").glob("*_mqc.tsv"))


def test_contract_run_fails_on_a_broken_module(renderer: Renderer, tmp_path: Path) -> None:
    """The harness catches a stub that forgets an output and a script with an unknown flag."""
    proc = MODULES["FRAGMENTS"]
    broken_stub = Process(
        proc.name,
        proc.path,
        proc.directives,
        proc.inputs,
        proc.outputs,
        {
            **proc.sections,
            "stub": proc.sections["stub"].replace("touch '${prefix}.fragments.tsv.gz.tbi'", ""),
        },
    )
    assert broken_stub.sections["stub"] != proc.sections["stub"]  # the break still applies
    task = dummy_task(broken_stub, tmp_path)
    result = execute(task, renderer.render(task, "stub"), tmp_path / "stub")
    assert not result.ok and result.missing == ["*.fragments.tsv.gz.tbi"]

    broken_script = Process(
        proc.name,
        proc.path,
        proc.directives,
        proc.inputs,
        proc.outputs,
        {**proc.sections, "script": proc.sections["script"].replace("--bam", "--bam-file")},
    )
    task = dummy_task(broken_script, tmp_path)
    result = execute(task, renderer.render(task, "script"), tmp_path / "script")
    assert result.returncode != 0 and "--bam" in result.stderr


def test_merge_accepts_peaks_on_skipped_contigs_only(chain: Chain, tmp_path: Path) -> None:
    """`tfbind merge --skip-chroms` (TFBIND_MERGE's skipped contigs): one shard plus the other
    shard's chromosomes declared skipped merges; without the declaration it is refused."""
    for name in ("CLUSTER", "TFBIND_PREDICT"):
        if not chain.ok(name):
            pytest.skip(f"{name} not run")
    shard0 = chain.steps["TFBIND_PREDICT.shard0"].result
    shard1 = chain.steps["TFBIND_PREDICT.shard1"].result
    assert shard0 is not None and shard1 is not None
    first = next(v for k, v in shard0.outputs.items() if k.endswith(".tfbind.h5ad"))[0]
    other = shard1.command.split("--chrom '")[1].split("'")[0]
    base = [
        sys.executable, "-m", "scregnet.cli.main", "tfbind", "merge",
        "--shards", str(first), "--atac", str(chain.out("CLUSTER", ".clustered.h5ad")[0]),
    ]  # fmt: skip
    refused = subprocess.run(
        [*base, "--out", str(tmp_path / "a.h5ad")], capture_output=True, text=True, check=False
    )
    assert refused.returncode != 0 and "no shard covers" in refused.stderr
    merged = subprocess.run(
        [*base, "--skip-chroms", other, "--out", str(tmp_path / "b.h5ad")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert merged.returncode == 0, merged.stderr[-2000:]
    assert (tmp_path / "b.h5ad").stat().st_size > 0
