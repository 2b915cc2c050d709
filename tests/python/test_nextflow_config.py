"""Config precedence: a profile's settings override conf/modules.config (nfcheck/config.py replays
Nextflow's reading order), and `-profile test` gives the stages the runner's test settings."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from nfcheck.config import config_files_read, ext_args, process_setting
from scregnet.pipeline import TEST_PROFILE

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "nextflow.config"


def test_test_profile_overrides_modules_config() -> None:
    args = ext_args(CONFIG, ["test", "docker"])
    assert args["TFBIND_TRAIN"].source.name == "test.config", args["TFBIND_TRAIN"]
    assert args["GRN_TRAIN"].source.name == "test.config", args["GRN_TRAIN"]
    # without the profile the modules.config flags apply
    plain = ext_args(CONFIG, ["docker"])
    assert plain["TFBIND_TRAIN"].source.name == "modules.config"


def test_modules_config_is_read_before_every_profile() -> None:
    order = [p.name for p in config_files_read(CONFIG, ["test", "gpu", "slurm"])]
    assert order.index("modules.config") < min(
        order.index(name) for name in ("test.config", "gpu.config", "slurm.config")
    ), order


def test_precedence_check_fails_on_a_broken_copy(tmp_path: Path) -> None:
    """modules.config included after the profiles (the nf-core template's old bug)."""
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    text = CONFIG.read_text()
    line = "includeConfig 'conf/modules.config'\n"
    assert line in text
    (tmp_path / "nextflow.config").write_text(text.replace(line, "", 1) + "\n" + line)
    args = ext_args(tmp_path / "nextflow.config", ["test"])
    assert args["TFBIND_TRAIN"].source.name == "modules.config"


def test_test_profile_flags_equal_the_runner_test_profile() -> None:
    """conf/test.config's extra flags are scregnet.pipeline.TEST_PROFILE's (`scregnet run --profile test`)."""
    args = ext_args(CONFIG, ["test"])
    assert TEST_PROFILE["tfbind_train_args"] in args["TFBIND_TRAIN"].value
    assert TEST_PROFILE["grn_train_args"] in args["GRN_TRAIN"].value


SITE_IGNORE = "process {\n    executor = 'slurm'\n    errorStrategy = 'ignore'\n}\n"


def test_a_site_ignore_does_not_reach_the_report(tmp_path: Path) -> None:
    """A site config's ``errorStrategy 'ignore'`` lets the run go on past a failed sample's task,
    but a failed REPORT or MULTIQC still ends the run (after the same retries as every task)."""
    site = tmp_path / "site.config"
    site.write_text(SITE_IGNORE)
    default = process_setting(CONFIG, "COUNT", "errorStrategy")
    assert default is not None and default.source.name == "base.config"
    for profiles in ([], ["test", "docker"], ["slurm", "gpu"], ["awsbatch"], ["googlebatch"]):
        sample = process_setting(CONFIG, "COUNT", "errorStrategy", profiles, [site])
        assert sample == process_setting(CONFIG, "COUNT", "errorStrategy", [], [site])
        assert sample is not None and sample.value == "'ignore'", (profiles, sample)
        for summary in ("REPORT", "MULTIQC"):
            got = process_setting(CONFIG, summary, "errorStrategy", profiles, [site])
            assert got is not None and got.value == default.value, (profiles, summary, got)


def test_report_strategy_check_fails_on_a_broken_copy(tmp_path: Path) -> None:
    """base.config without its REPORT|MULTIQC selector: the site's 'ignore' reaches the report."""
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    shutil.copy(CONFIG, tmp_path / "nextflow.config")
    base = tmp_path / "conf" / "base.config"
    text = base.read_text()
    assert "withName: 'REPORT|MULTIQC'" in text
    base.write_text(text.replace("withName: 'REPORT|MULTIQC'", "withName: 'NOTHING'"))
    site = tmp_path / "site.config"
    site.write_text(SITE_IGNORE)
    got = process_setting(tmp_path / "nextflow.config", "REPORT", "errorStrategy", [], [site])
    assert got is not None and got.value == "'ignore'"


def multiqc_title_words(config: Path, titles: list[str]) -> list[list[str]]:
    """The shell words MULTIQC's ext.args make of each title (the closure run in Groovy, its
    result split by bash as the task script would)."""
    import subprocess

    from nfcheck.functions import evaluate

    closure = ext_args(config)["MULTIQC"].value
    rendered = evaluate(
        "titles.collect { t -> def c = " + closure + "; "
        "c.resolveStrategy = Closure.DELEGATE_FIRST; c.delegate = [ params: [ multiqc_title: t ] ]; c() }",
        titles=titles,
    )
    words = []
    for args in rendered:
        proc = subprocess.run(
            ["bash", "-c", f"printf '%s\\n' {args}"], capture_output=True, text=True, check=True
        )
        words.append(proc.stdout.splitlines())
    return words


TITLES = ["Run 12", 'Lab\'s "cells" $(touch pwned) `id` \\ $HOME']


def test_multiqc_title_reaches_multiqc_as_written(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    assert multiqc_title_words(CONFIG, TITLES) == [["--title", t] for t in TITLES]
    assert not (tmp_path / "pwned").exists()


def test_title_check_fails_on_double_quotes(tmp_path: Path, monkeypatch: Any) -> None:
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    shutil.copy(CONFIG, tmp_path / "nextflow.config")
    modules = tmp_path / "conf" / "modules.config"
    text = modules.read_text()
    start = text.index("ext.args   = { params.multiqc_title")
    end = text.index("\n", start)
    modules.write_text(
        text[:start]
        + 'ext.args   = { params.multiqc_title ? "--title \\"${params.multiqc_title}\\"" : \'\' }'
        + text[end:]
    )
    monkeypatch.chdir(tmp_path)
    assert multiqc_title_words(tmp_path / "nextflow.config", TITLES)[1] != ["--title", TITLES[1]]
    assert (tmp_path / "pwned").exists()


def test_google_batch_trains_tf_binding_in_the_bucket() -> None:
    """Google Batch runs tasks in a scratch folder on the VM unless `scratch` is false: TFBIND_TRAIN's
    per-epoch state must outlive a reclaimed VM, so under -profile googlebatch it runs in its work
    directory (in the bucket); elsewhere, and for other tasks, Nextflow's defaults stay."""
    got = process_setting(CONFIG, "TFBIND_TRAIN", "scratch", ["googlebatch"])
    assert got is not None and got.value == "false" and got.source.name == "googlebatch.config"
    assert process_setting(CONFIG, "TFBIND_PREDICT", "scratch", ["googlebatch"]) is None
    assert process_setting(CONFIG, "TFBIND_TRAIN", "scratch", ["awsbatch"]) is None


def test_multiqc_is_cached_by_path_and_size() -> None:
    """software_mqc_versions.yml (collectFile into pipeline_info/) gets a new modification time at
    every launch: with the default cache mode MULTIQC would rerun on every -resume."""
    workflow = (REPO / "workflows" / "scregnet.nf").read_text()
    assert "collectFile(name: 'software_mqc_versions.yml', storeDir:" in workflow
    got = process_setting(CONFIG, "MULTIQC", "cache")
    assert got is not None and got.value == "'lenient'"
    assert process_setting(CONFIG, "REPORT", "cache") is None


def test_awsbatch_without_a_queue_stops_before_reading_any_input() -> None:
    """main.nf's check, run in Groovy on the profiles a user may give: `-profile awsbatch` with no
    --aws_queue is refused at launch with the option's name (Nextflow would fail only when it
    submits the first task); any other profile, or a queue given, passes."""
    from nfcheck.functions import call

    main = (REPO / "main.nf").read_text()
    assert "missingProfileParams(workflow.profile, params)" in main
    cases = {
        "aws": ("awsbatch", None),
        "aws_gpu": ("awsbatch,gpu", None),
        "aws_spaced": ("gpu, awsbatch", ""),
        "aws_queue": ("awsbatch,gpu", "my-cpu-queue"),
        "slurm": ("slurm,gpu", None),
        "standard": ("standard", None),
        "none": (None, None),
    }
    got = call(
        REPO / "main.nf",
        "cases.collectEntries { name, c -> [name, missingProfileParams(c[0], [aws_queue: c[1]])] }",
        cases=cases,
    )
    refused = {name for name, message in got.items() if message is not None}
    assert refused == {"aws", "aws_gpu", "aws_spaced"}, got
    assert all("--aws_queue" in got[name] for name in refused), got
