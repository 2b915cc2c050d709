"""One table, two runners: every Nextflow module's command line equals `scregnet run`'s.

`scregnet run` plans a small pipeline (two samples, one from a BAM, one from a Cell Ranger-named
fragments file, listed out of id order; a genome with chrM and an unplaced contig); each planned
step is then handed to its module: the module's `script:` block is rendered (Groovy) with the
step's files bound to the module's inputs (the step table's slot names are the input names) and
with the `ext.args` that Nextflow's config gives under the same profile and params. Both command
lines must have the same flags with the same values (by base name), and every flag must be one
the step table (scregnet.pipeline.steps) knows or an extra of that profile. Two scenarios: the
test profile on CPU, and the defaults on a GPU with known edges and custom skip rules.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nfcheck.argv import by_name, command_tokens, flags, render_ext_args
from nfcheck.config import ext_args
from nfcheck.config import params as config_params
from nfcheck.functions import call
from nfcheck.render import Renderer, Task, inputs_of
from nfcheck.structure import Process as NfProcess
from nfcheck.structure import parse
from scregnet.cli.report import add_arguments as report_arguments
from scregnet.pipeline import STEPS, TEST_PROFILE, Step, plan
from scregnet.pipeline.params import DEFAULTS
from scregnet.pipeline.steps import Process

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "nextflow.config"
MODULES: dict[str, NfProcess] = {
    p.name: p
    for path in sorted((REPO / "modules" / "local").glob("*/main.nf"))
    for p in parse(path).processes
}
#: the modules that are not pipeline steps of `scregnet run` (it simulates the test world itself)
NOT_STEPS = {"SIMULATE"}

#: params both runners get on top of their defaults (and, for "test", the test profile)
SCENARIOS: dict[str, dict[str, Any]] = {
    "test_cpu": {"profiles": ["test"], "device": "cpu", "params": {}},
    "defaults_gpu": {
        "profiles": [],
        "device": "cuda",
        "params": {
            "tfbind_skip_chroms": "chrM,chr3",
            "tfbind_shards": 2,
            "grn_shards": 3,
            "grn_epochs": 5,
            "multiqc_title": "Run 7",
        },
        "labels": True,
    },
}


def _fasta(root: Path) -> Path:
    contigs = {"chr1": 3000, "chr2": 2500, "chr3": 1200, "chrM": 160, "chrUn_KI270302v1": 80}
    fasta, fai, offset = root / "genome.fa", [], 0
    with fasta.open("w") as handle:
        for name, length in contigs.items():
            handle.write(f">{name}\n")
            offset += len(name) + 2
            fai.append(f"{name}\t{length}\t{offset}\t80\t81\n")
            for start in range(0, length, 80):
                line = "A" * min(80, length - start)
                handle.write(line + "\n")
                offset += len(line) + 1
    (root / "genome.fa.fai").write_text("".join(fai))
    return fasta


def _world(root: Path, *, labels: bool) -> dict[str, Any]:
    """Input files (empty where only their names matter; the small tables and the RNA files, which
    planning reads, minimal) and the params pointing at them."""
    import anndata as ad
    import numpy as np
    import pysam

    root.mkdir(parents=True)
    for name in ("s1.bam.bai", "genes.gtf"):
        (root / name).touch()
    for name in ("s1.rna.h5ad", "s2.rna.h5ad"):
        rna = ad.AnnData(np.ones((3, 2), dtype=np.float32))
        rna.var_names = ["CTCF", "G1"]
        rna.write_h5ad(root / name)
    (root / "tfs.txt").write_text("CTCF\n")
    (root / "bulk_rna.tsv").write_text("gene\tB\nCTCF\t5\nG1\t3\n")
    (root / "labels.tsv").write_text("tf\ttarget\nCTCF\tG1\n")
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": 3000}]}
    with pysam.AlignmentFile(str(root / "s1.bam"), "wb", header=header):
        pass  # a header and no reads: planning reads the chromosome names
    for name in ("motifs.jaspar", "CTCF.chip.bed", "CTCF.bw"):
        (root / name).touch()
    (root / "cr").mkdir()
    (root / "cr" / "fragments.tsv.gz").touch()
    (root / "cr" / "fragments.tsv.gz.tbi").touch()
    (root / "bulk_sheet.csv").write_text(
        "tf,chip_bed,accessibility_bw,cell_type\nCTCF,CTCF.chip.bed,CTCF.bw,B\n"
    )
    (root / "samplesheet.csv").write_text(
        "sample,bam,fragments,rna\n"
        f"s2,,{root}/cr/fragments.tsv.gz,{root}/s2.rna.h5ad\n"
        f"s1,{root}/s1.bam,,{root}/s1.rna.h5ad\n"
    )
    paths = {
        "input": root / "samplesheet.csv",
        "fasta": _fasta(root),
        "gtf": root / "genes.gtf",
        "bulk_sheet": root / "bulk_sheet.csv",
        "bulk_rna": root / "bulk_rna.tsv",
        "motifs": root / "motifs.jaspar",
        "tfs": root / "tfs.txt",
    }
    if labels:
        paths["grn_labels"] = root / "labels.tsv"
    return paths


def runner_params(scenario: dict[str, Any], paths: dict[str, Any]) -> dict[str, Any]:
    params = dict(DEFAULTS)
    if "test" in scenario["profiles"]:
        params.update({k: v for k, v in TEST_PROFILE.items() if k != "simulate_preset"})
    return {**params, **scenario["params"], **paths, "device": scenario["device"]}


def nextflow_params(scenario: dict[str, Any]) -> dict[str, Any]:
    return {**config_params(CONFIG, scenario["profiles"]), **scenario["params"]}


# ---- one planned step -> one Nextflow task --------------------------------------------------------


def nextflow_task(step: Step, proc: NfProcess, ext: str, *, gpu: bool, threads: int) -> Task:
    """``proc`` bound to what ``step`` reads: each input gets the step's slot of the same name;
    indexes and files a task only stages (not named on its command line) get placeholders."""
    slots = step.slots
    # meta.view: the samplesheet's view (the sample id when it gives none), as the pipeline sets it
    vals: dict[str, Any] = {"meta": {"id": step.name, "view": slots.get("view", step.name)}}
    paths: dict[str, Path | list[Path]] = {}
    spare = Path("/nonexistent/placeholder")
    for inp in inputs_of(proc):
        if inp.name == "meta":
            continue
        if inp.kind == "val":
            if inp.name == "shard" and "chroms" in slots:  # TFBIND_PREDICT: a group of contigs
                vals["shard"] = {"id": step.part, "chroms": slots["chroms"]}
            elif inp.name == "shard":  # GRN_SCORE: the K-th of N groups of the TFs ("K/N")
                index, count = (int(n) for n in slots["shard"].split("/"))
                vals["shard"] = {"id": step.part, "index": index, "count": count}
            elif inp.name == "bulk_sheet_csv":
                vals["bulk_sheet_csv"] = Path(slots["bulk_sheet"]).read_text()
            else:
                vals[inp.name] = slots[inp.name]
            continue
        value = slots.get(inp.name, spare / inp.name)
        if value is None:
            value = []  # an absent optional file: Nextflow's []
        many = inp.stage_as is not None and "*" in inp.stage_as
        paths[inp.name] = list(value) if isinstance(value, list) else ([value] if many else value)
    accelerator = 1 if gpu and proc_label(proc) == "process_gpu" else None
    return Task(proc, vals, paths, ext={"args": ext}, cpus=threads, accelerator=accelerator)


def proc_label(proc: NfProcess) -> str | None:
    return proc.labels[0] if proc.labels else None


def compared(argv: list[str], spec: Process) -> tuple[dict[str, list[str]], list[str]]:
    found, positional = flags(argv, spec)
    for arg in spec.args:
        if arg.runner_only:
            found.pop(arg.flag, None)
    return by_name(found), positional


@dataclass
class Rendered:
    step: Step
    tokens: list[str]  # the module's command line after the executable
    ext: str  # the ext.args it got
    gpu: bool
    scenario: str


def runner_plan(
    scenario: dict[str, Any], paths: dict[str, Any], results: Path, threads: int
) -> list[Any]:
    """`scregnet run`'s plan for ``scenario``; a GPU scenario's as on a machine with a GPU (the
    plan checks one is visible), so its command lines are compared on any machine."""
    with pytest.MonkeyPatch.context() as mp:
        if scenario["device"] == "cuda":
            import torch

            mp.setattr(torch.cuda, "is_available", lambda: True)
            mp.setattr(torch.cuda, "device_count", lambda: 1)
        return plan(runner_params(scenario, paths), results, threads=threads)


@pytest.fixture(scope="module")
def renderer() -> Iterator[Renderer]:
    r = Renderer()
    yield r
    r.close()


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def rendered(
    request: pytest.FixtureRequest, renderer: Renderer, tmp_path_factory: pytest.TempPathFactory
) -> list[Rendered]:
    """Every planned step with its module's command line."""
    scenario = SCENARIOS[request.param]
    root = tmp_path_factory.mktemp(request.param)
    paths = _world(root / "inputs", labels=bool(scenario.get("labels")))
    threads = 3
    gpu = scenario["device"] == "cuda"
    steps = runner_plan(scenario, paths, root / "results", threads)
    args = render_ext_args(ext_args(CONFIG, scenario["profiles"]), nextflow_params(scenario))
    out = []
    for step in steps:
        ext = args.get(step.stage, "")
        task = nextflow_task(step, MODULES[step.stage], ext, gpu=gpu, threads=threads)
        tokens = command_tokens(renderer.render(task, "script"), STEPS[step.stage].executable)
        out.append(Rendered(step, tokens, ext, gpu, request.param))
    return out


def test_every_module_is_a_table_step() -> None:
    assert set(MODULES) - NOT_STEPS == set(STEPS)
    for name, spec in STEPS.items():
        assert proc_label(MODULES[name]) == spec.label, name


def test_the_plan_covers_every_step(rendered: list[Rendered]) -> None:
    assert {r.step.stage for r in rendered} == set(STEPS)


def test_module_command_lines_equal_the_runner_steps(
    rendered: list[Rendered],
) -> None:
    problems = []
    for r in rendered:
        step, tokens = r.step, r.tokens
        spec = STEPS[step.stage]
        words = len(spec.command)
        if tokens[:words] != list(spec.command):
            problems.append(
                f"{step.label}: Nextflow runs {tokens[:words]}, the table {spec.command}"
            )
            continue
        theirs, their_positional = compared(tokens[words:], spec)
        ours, our_positional = compared(step.argv[words:], spec)
        if theirs != ours:
            diff = {
                flag: (theirs.get(flag), ours.get(flag))
                for flag in sorted(set(theirs) | set(ours))
                if theirs.get(flag) != ours.get(flag)
            }
            problems.append(f"{step.label}: flag -> (Nextflow, runner): {diff}")
        if not any(a.arity == "positional" for a in spec.args) and (
            their_positional or our_positional
        ):
            problems.append(f"{step.label}: positional {their_positional} vs {our_positional}")
    assert problems == [], "\n".join(problems)


def test_table_edges_are_the_files_steps_read(rendered: list[Rendered]) -> None:
    """The DAG edges (the table's `upstream`, which test_nextflow_lsp.py compares with the
    workflow's DAG) are exactly the files the runner's steps read from other steps: no step reads
    from a process outside its upstream, and on the full test plan every edge carries a file.
    REPORT reads the whole results folder, a superset of its edges."""
    steps = [r.step for r in rendered]
    producer = {out.resolve(): step.stage for step in steps for out in step.outputs}
    holder = {d: stage for out, stage in producer.items() for d in out.parents}  # folders holding
    used: dict[str, set[str]] = {name: set() for name in STEPS}
    for step in steps:
        for path in step.inputs:
            found = {producer.get(c) for c in (path.resolve(), *path.resolve().parents)}
            found.add(holder.get(path.resolve()))
            used[step.stage] |= {stage for stage in found if stage and stage != step.stage}
    for name, spec in STEPS.items():
        if name == "REPORT":
            assert used[name] >= set(spec.upstream), (name, used[name])
            continue
        assert used[name] <= set(spec.upstream), (name, used[name] - set(spec.upstream))
        if rendered[0].scenario == "test_cpu":
            assert used[name] == set(spec.upstream), (name, set(spec.upstream) - used[name])


def test_report_expects_what_the_workflow_asks_for(rendered: list[Rendered]) -> None:
    """The results the runner's REPORT expects (from its plan) are what the Nextflow workflow's
    expectedResults gives for the same samples and references."""
    steps = [r.step for r in rendered]
    report = next(s for s in steps if s.stage == "REPORT")
    scenario = SCENARIOS[rendered[0].scenario]
    workflow = call(
        REPO / "workflows" / "scregnet.nf",
        "expectedResults(atac, rna, true, labels)",  # both scenarios train TF binding
        atac=sorted(s.name for s in steps if s.stage == "CLUSTER"),
        rna=sorted(s.name for s in steps if s.stage == "IMPUTE"),
        labels=bool(scenario.get("labels")),
    )
    assert report.slots["expected"] == workflow
    assert "grn" in workflow and any(item.startswith("impute=") for item in workflow)


def test_the_workflow_expects_each_stage_the_inputs_ask_for() -> None:
    """expectedResults (workflows/scregnet.nf), for inputs with and without TF binding, known
    edges or scRNA; each item is one `scregnet report --expect` accepts."""
    cases = call(
        REPO / "workflows" / "scregnet.nf",
        "[ expectedResults(['s1', 's2'], ['s1'], true, []),"
        "  expectedResults(['s1'], ['s1'], false, 'edges.tsv'),"
        "  expectedResults(['s1', 's2'], ['s2'], false, []),"
        "  expectedResults(['s1'], [], true, []) ]",
    )
    assert cases == [
        ["atac=s1,s2", "tfbind=s1,s2", "impute=s1", "grn"],
        ["atac=s1", "impute=s1", "grn"],  # known edges train the GRN without TF binding
        ["atac=s1,s2", "impute=s2"],  # neither TF binding nor edges: no GRN
        ["atac=s1", "tfbind=s1"],  # no scRNA: no imputation, no GRN
    ]
    parser = argparse.ArgumentParser()
    report_arguments(parser)
    for items in cases:
        argv = ["--results", "r", "--out", "o.html", *(f"--expect={item}" for item in items)]
        parsed = parser.parse_args(argv).expect
        assert [
            f"{stage}={','.join(names)}" if names else stage for stage, names in parsed
        ] == items


def test_runner_flags_come_from_the_table(rendered: list[Rendered]) -> None:
    """Every flag of a runner step is a table flag or one of its `<process>_args` extras."""
    extras = {
        "TFBIND_TRAIN": TEST_PROFILE["tfbind_train_args"],
        "GRN_TRAIN": TEST_PROFILE["grn_train_args"],
    }
    for r in rendered:
        step = r.step
        spec = STEPS[step.stage]
        known = {a.flag for a in spec.args} | set(extras.get(step.stage, "").split())
        found, _ = flags(step.argv[len(spec.command) :], spec)
        assert set(found) <= known, (step.label, set(found) - known)


def test_device_is_resolved_on_both_sides(rendered: list[Rendered]) -> None:
    for r in rendered:
        step, spec = r.step, STEPS[r.step.stage]
        for argv in (r.tokens, step.argv):
            found, _ = flags(argv[len(spec.command) :], spec)
            if spec.gpu:
                assert found["--device"] in (["cpu"], ["cuda"]), (step.label, found["--device"])
            else:
                assert "--device" not in found, step.label


def test_test_config_params_are_the_test_profile() -> None:
    """conf/test.config sets exactly TEST_PROFILE's params (its `<process>_args` extras are
    checked as flags above)."""
    test_params = config_params(REPO / "conf" / "test.config")
    shared = {k: v for k, v in TEST_PROFILE.items() if not k.endswith("_args")}
    assert {k: test_params.get(k) for k in shared} == shared
    assert set(test_params) - set(shared) <= {"config_profile_name", "config_profile_description"}


def test_runner_defaults_are_the_nextflow_defaults() -> None:
    """One default per parameter: `scregnet run`'s equal nextflow.config's."""
    nf = config_params(CONFIG)
    runner = {k: v for k, v in DEFAULTS.items() if k != "device"}  # Nextflow: task.accelerator
    assert {k: nf.get(k, "<missing>") for k in runner} == runner


# ---- the check fails on a broken copy -------------------------------------------------------------


def _broken_module(tmp_path: Path, name: str, old: str, new: str) -> NfProcess:
    src = REPO / "modules" / "local" / name / "main.nf"
    dst = tmp_path / "modules" / "local" / name / "main.nf"
    dst.parent.mkdir(parents=True)
    text = src.read_text()
    assert old in text, f"the broken copy of {name} no longer applies: {old!r} not found"
    dst.write_text(text.replace(old, new, 1))
    shutil.copy(src.parent / "meta.yml", dst.parent / "meta.yml")
    return parse(dst).processes[0]


@pytest.mark.parametrize(
    ("module", "old", "new", "expect"),
    [
        # the runner/Nextflow differences this test was written against
        ("tfbind_merge", "        ${skipped} \\\\\n", "", "--skip-chroms"),
        ("tfbind_predict", "--device ${device}", "--device auto", "--device"),
        ("grn_train", "--rna '${h5ad}'", "--view '${h5ad}'", "--rna"),
        (
            "grn_score",
            "--shard '${shard.index}/${shard.count}'",
            "--shard '${shard.index}'",
            "--shard",
        ),
        ("grn_merge", "--shards ${shard_list}", "--shards ${shard_list.split(' ')[0]}", "--shards"),
    ],
)
def test_argv_check_fails_on_a_broken_copy(
    rendered: list[Rendered],
    renderer: Renderer,
    tmp_path: Path,
    module: str,
    old: str,
    new: str,
    expect: str,
) -> None:
    proc = _broken_module(tmp_path, module, old, new)
    good = next(r for r in rendered if r.step.stage == proc.name)
    step, spec = good.step, STEPS[proc.name]
    task = nextflow_task(step, proc, good.ext, gpu=good.gpu, threads=3)
    tokens = command_tokens(renderer.render(task, "script"), "scregnet")
    theirs, _ = compared(tokens[len(spec.command) :], spec)
    ours, _ = compared(step.argv[len(spec.command) :], spec)
    assert theirs.get(expect) != ours.get(expect), (theirs, ours)
    # the unbroken module agrees on that flag
    assert compared(good.tokens[len(spec.command) :], spec)[0].get(expect) == ours.get(expect)


def test_argv_check_fails_on_a_broken_table(
    rendered: list[Rendered], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner side: a table entry without TFBIND_MERGE's --skip-chroms (the runner's old
    difference) plans a command line that no longer equals the module's."""
    import dataclasses

    good = next(r for r in rendered if r.step.stage == "TFBIND_MERGE")
    spec = STEPS["TFBIND_MERGE"]
    broken = dataclasses.replace(
        spec, args=tuple(a for a in spec.args if a.flag != "--skip-chroms")
    )
    monkeypatch.setitem(STEPS, "TFBIND_MERGE", broken)
    scenario = SCENARIOS[good.scenario]
    paths = _world(tmp_path / "inputs", labels=bool(scenario.get("labels")))
    steps = runner_plan(scenario, paths, tmp_path / "results", 3)
    step = next(s for s in steps if s.stage == "TFBIND_MERGE" and s.name == good.step.name)
    theirs, _ = compared(good.tokens[len(spec.command) :], spec)
    ours, _ = compared(step.argv[len(spec.command) :], spec)
    assert theirs["--skip-chroms"] and "--skip-chroms" not in ours
