"""Rules the language server does not check: labels, containers, stubs, versions, GPU routing,
call arity and emit names (tests/nfcheck/structure.py), each shown to fail on a broken copy."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from nfcheck.structure import check_pipeline, known_labels, parse

REPO = Path(__file__).resolve().parents[2]
LABELS = {
    "process_single",
    "process_low",
    "process_medium",
    "process_high",
    "process_long",
    "process_high_memory",
    "process_gpu",
}
GPU_MODULES = {"IMPUTE", "TFBIND_TRAIN", "TFBIND_PREDICT", "GRN_TRAIN", "GRN_SCORE"}


def test_pipeline_follows_every_rule() -> None:
    assert check_pipeline(REPO) == []


def test_base_config_defines_the_nf_core_labels() -> None:
    assert known_labels(REPO / "conf" / "base.config") == LABELS


def test_gpu_modules_are_exactly_the_torch_stages() -> None:
    gpu = {
        p.name
        for path in (REPO / "modules" / "local").glob("*/main.nf")
        for p in parse(path).processes
        if "process_gpu" in p.labels
    }
    assert gpu == GPU_MODULES


def test_every_module_has_meta_yml_and_nf_test() -> None:
    for module in sorted((REPO / "modules" / "local").iterdir()):
        assert (module / "meta.yml").is_file(), module
        assert (module / "tests" / "main.nf.test").is_file(), module


def copy_pipeline(dst: Path) -> Path:
    for sub in ("conf", "modules", "workflows", "subworkflows"):
        shutil.copytree(REPO / sub, dst / sub)
    shutil.copy(REPO / "main.nf", dst / "main.nf")
    return dst


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"broken copy no longer applies: {old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


BREAKS = {
    "unknown label": (
        "modules/local/cluster/main.nf",
        "label 'process_low'",
        "label 'process_tiny'",
        "unknown label 'process_tiny'",
    ),
    "no container": (
        "modules/local/count/main.nf",
        "    container 'ghcr.io/scregnet/scregnet:0.1.0'\n",
        "",
        "no 'container' directive",
    ),
    "no stub": (
        "modules/local/tracks/main.nf",
        "    stub:\n",
        "    // stub removed\n",
        "no 'stub:' section",
    ),
    "no versions topic": (
        "modules/local/cluster/main.nf",
        "eval('scregnet --version | sed \"s/^scregnet //\"'), topic: versions",
        "eval('scregnet --version | sed \"s/^scregnet //\"'), emit: versions",
        "no versions output on the 'versions' topic",
    ),
    "gpu process without process_gpu": (
        "modules/local/impute/main.nf",
        "label 'process_gpu'",
        "label 'process_medium'",
        "chooses a device but is not labelled 'process_gpu'",
    ),
    "hard-coded accelerator": (
        "modules/local/grn_score/main.nf",
        "    label 'process_gpu'\n",
        "    label 'process_gpu'\n    accelerator 1\n",
        "hard-codes 'accelerator'",
    ),
    "module reads params": (
        "modules/local/fragments/main.nf",
        "--threads ${task.cpus}",
        "--threads ${task.cpus} --min-mapq ${params.min_mapq}",
        "reads params",
    ),
    "wrong call arity": (
        "workflows/scregnet.nf",
        "COUNT(ch_fragments.join(ch_peaks), ch_fai, ch_gtf)",
        "COUNT(ch_fragments.join(ch_peaks), ch_fai)",
        "COUNT called with 2 argument(s), it declares 3 inputs",
    ),
    "unknown emit": (
        "workflows/scregnet.nf",
        "CLUSTER(COUNT.out.h5ad)",
        "CLUSTER(COUNT.out.matrix)",
        "COUNT.out.matrix does not exist (emits: h5ad, qc)",
    ),
    "subworkflow take arity": (
        "main.nf",
        "        PIPELINE_INITIALISATION.out.rna,\n",
        "",
        "SCREGNET called with 5 argument(s), it declares 6 takes",
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_structure_check_fails_on_a_broken_copy(case: str, tmp_path: Path) -> None:
    root = copy_pipeline(tmp_path)
    rel, old, new, expected = BREAKS[case]
    edit(root / rel, old, new)
    problems = check_pipeline(root)
    assert any(expected in p for p in problems), problems


def test_meta_yml_documents_every_input_and_emit() -> None:
    import yaml

    from nfcheck.render import inputs_of

    for path in sorted((REPO / "modules" / "local").glob("*/main.nf")):
        proc = parse(path).processes[0]
        meta = yaml.safe_load((path.parent / "meta.yml").read_text())
        documented = [
            name
            for entry in meta["input"]
            for item in (entry if isinstance(entry, list) else [entry])
            for name in item
        ]
        assert documented == [i.name for i in inputs_of(proc)], path
        assert set(meta["output"]) == set(proc.emits), path


#: config file -> what it must say (whitespace-insensitive) to route GPU work as NEXTFLOW.md asks
GPU_ROUTING = {
    "base.config": [
        "withLabel: process_gpu {",
        "accelerator = { params.gpu ? 1 : null }",
    ],
    "gpu.config": [
        "params.gpu = true",
        "docker.runOptions = '-u $(id -u):$(id -g) --gpus all'",
        "singularity.runOptions = '--nv'",
        "apptainer.runOptions = '--nv'",
    ],
    "awsbatch.config": [
        "executor = 'awsbatch'",
        "cliPath = params.aws_cli_path",
        "queue = { task.accelerator && params.gpu_queue ? params.gpu_queue : params.aws_queue }",
    ],
    "googlebatch.config": [
        "executor = 'google-batch'",
        "accelerator = { params.gpu ? [ request: 1, type: params.gpu_type ] : null }",
        "machineType = { params.gpu ? params.gpu_machine_type : null }",
        "installGpuDrivers = true",
        "maxSpotAttempts = 5",
        "autoRetryExitCodes = [ 50001, 50002, 50003, 50006 ]",
    ],
    "slurm.config": [
        "executor = 'slurm'",
        "--gres=gpu:${task.accelerator.request}",
    ],
}


def gpu_routing_problems(conf: Path) -> list[str]:
    problems = []
    for name, needed in GPU_ROUTING.items():
        text = " ".join((conf / name).read_text().split())
        problems += [f"{name}: missing `{n}`" for n in needed if " ".join(n.split()) not in text]
    return problems


def test_profiles_route_gpu_work() -> None:
    assert gpu_routing_problems(REPO / "conf") == []
    assert "gpu_type = 'nvidia-l4'" in " ".join((REPO / "nextflow.config").read_text().split())


def profile_sniffing(root: Path) -> list[str]:
    """Config lines that switch behaviour on the profile's *name* (`-profile mygpu` would match)."""
    return [
        f"{path.relative_to(root)}:{i}"
        for path in [root / "nextflow.config", *sorted((root / "conf").glob("*.config"))]
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if "workflow.profile" in line and not line.lstrip().startswith(("//", "*"))
    ]


def spot_retries_escalate(conf: Path) -> list[str]:
    """Cloud profiles whose Nextflow errorStrategy retries spot-reclaim exit codes (5000x): such a
    retry is a new attempt, and every resource closure multiplies by task.attempt."""
    return [
        path.name
        for path in sorted(conf.glob("*.config"))
        for line in path.read_text().splitlines()
        if "errorStrategy" in line and "5000" in line
    ]


def test_gpu_is_an_explicit_switch_and_spot_retries_keep_resources() -> None:
    assert profile_sniffing(REPO) == []
    assert spot_retries_escalate(REPO / "conf") == []


def test_switch_and_spot_checks_fail_on_a_broken_copy(tmp_path: Path) -> None:
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    shutil.copy(REPO / "nextflow.config", tmp_path / "nextflow.config")
    base = tmp_path / "conf" / "base.config"
    base.write_text(
        base.read_text().replace(
            "params.gpu ? 1 : null", "workflow.profile.contains('gpu') ? 1 : null"
        )
    )
    gcp = tmp_path / "conf" / "googlebatch.config"
    gcp.write_text(
        gcp.read_text().replace(
            "process {\n",
            "process {\n    errorStrategy = { task.exitStatus in [ 50001, 137 ] ? 'retry' : 'finish' }\n",
            1,
        )
    )
    assert profile_sniffing(tmp_path) == [
        f"conf/base.config:{next(i for i, line in enumerate(base.read_text().splitlines(), 1) if 'workflow.profile' in line)}"
    ]
    assert spot_retries_escalate(tmp_path / "conf") == ["googlebatch.config"]


def test_gpu_routing_check_fails_on_a_broken_copy(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    slurm = conf / "slurm.config"
    slurm.write_text(slurm.read_text().replace("--gres=gpu:", "--gpus="))
    assert gpu_routing_problems(conf) == [
        "slurm.config: missing `--gres=gpu:${task.accelerator.request}`"
    ]


def slurm_gpu_settings(config: Path) -> dict[str, Any]:
    """The GPU-labelled tasks' sbatch options and partition under -profile slurm (the closures of
    its process_gpu selector, run in Groovy) with and without a GPU and site options."""
    from nfcheck.functions import evaluate

    text = config.read_text()
    block = text[text.index("withLabel: process_gpu") :]
    closures = {
        name: re.search(rf"^\s*{name}\s*=\s*(\{{.*\}})\s*$", block, re.MULTILINE).group(1)  # type: ignore[union-attr]
        for name in ("clusterOptions", "queue")
    }
    cases = {
        "cpu": ({"slurm_options": None, "slurm_queue": None, "gpu_queue": "gpu"}, None),
        "cpu_site": (
            {"slurm_options": "--account=lab", "slurm_queue": "long", "gpu_queue": "gpu"},
            None,
        ),
        "gpu_site": (
            {"slurm_options": "--account=lab", "slurm_queue": "long", "gpu_queue": "gpu"},
            {"request": 1},
        ),
    }
    # one JVM start: each case binds its own params and task as the closures' delegate
    calls = ", ".join(
        f"{case}: [ clusterOptions: run({closures['clusterOptions']}, cases.{case}), "
        f"queue: run({closures['queue']}, cases.{case}) ]"
        for case in cases
    )
    value = evaluate(
        "def run(c, env) { def d = [ params: env.params, task: [ accelerator: env.accelerator ] ]; "
        "c.resolveStrategy = Closure.DELEGATE_FIRST; c.delegate = d; c() }\n[ " + calls + " ]",
        cases={k: {"params": p, "accelerator": a} for k, (p, a) in cases.items()},
    )
    assert isinstance(value, dict)
    return value


def test_slurm_gpu_tasks_keep_the_site_options() -> None:
    """IMPUTE, TFBIND_* and GRN_* (label process_gpu) get --slurm_options and --slurm_queue like
    every task, with and without a GPU; with one they add --gres and go to --gpu_queue."""
    text = " ".join((REPO / "conf" / "slurm.config").read_text().split())
    assert "queue = params.slurm_queue clusterOptions = params.slurm_options" in text
    assert slurm_gpu_settings(REPO / "conf" / "slurm.config") == {
        "cpu": {"clusterOptions": "", "queue": None},
        "cpu_site": {"clusterOptions": "--account=lab", "queue": "long"},
        "gpu_site": {"clusterOptions": "--account=lab --gres=gpu:1", "queue": "gpu"},
    }


def test_slurm_check_fails_on_a_selector_that_drops_the_site_options(tmp_path: Path) -> None:
    broken = tmp_path / "slurm.config"
    broken.write_text(
        (REPO / "conf" / "slurm.config")
        .read_text()
        .replace("[ params.slurm_options, task.accelerator", "[ task.accelerator")
        .replace("params.gpu_queue : params.slurm_queue }", "params.gpu_queue : null }")
    )
    got = slurm_gpu_settings(broken)
    assert got["cpu_site"] == {"clusterOptions": "", "queue": None}
