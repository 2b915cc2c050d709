"""Resume is exact: every file a step reads is a declared input, and editing any of them reruns that
step and everything downstream, and nothing else; no sample id makes two steps share an output."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from runner_fakes import copy_world, fake_plan, stages, world_params

from scregnet.errors import InputError
from scregnet.pipeline import Step, plan, run_steps, state
from scregnet.pipeline.execute import temp_leftovers
from scregnet.tfbind.data import read_bulk_sheet

# ---- every file a step reads is declared ---------------------------------------------------------


def _companions(path: Path, planned: set[Path]) -> list[Path]:
    """Files a reader opens beside ``path``: BAM/tabix/FASTA indexes, a bulk sheet's named files."""
    found: list[Path] = []
    name = path.name
    candidates: list[Path] = []
    if name.endswith(".bam"):
        candidates = [Path(f"{path}.bai"), path.with_suffix(".bai"), Path(f"{path}.csi")]
    elif name.endswith((".tsv.gz", ".bed.gz")):
        candidates = [Path(f"{path}.tbi"), Path(f"{path}.csi")]
    elif name.endswith((".fa", ".fasta", ".fa.gz", ".fasta.gz")):
        candidates = [Path(f"{path}.fai"), Path(f"{path}.gzi")]
    found += [c for c in candidates if c.exists() or c in planned]
    if name.endswith(".csv") and path.exists():
        try:
            tracks = read_bulk_sheet(path)  # the reader `tfbind train` uses
        except InputError:
            tracks = []
        for track in tracks:
            found += [track.accessibility_bw, *track.chip.values()]
    return found


def files_read(step: Step, steps: list[Step], outdir: Path) -> set[Path]:
    """Every file ``step`` reads, derived from its command line alone: each argv token (and each
    item of a comma-separated token, and the value of ``--x=value``) that is an existing path or
    another step's output, with its companion files; the results folder stands for every output of
    the steps before it."""
    planned = {o.resolve() for s in steps if s is not step for o in s.outputs}
    own = [o.resolve() for o in step.outputs]
    found: set[Path] = set()
    for token in step.argv:
        value = token.split("=", 1)[1] if token.startswith("--") and "=" in token else token
        for item in {value, *value.split(",")}:
            if not item or item.startswith("-"):
                continue
            path = Path(item).resolve()
            if path == outdir.resolve():  # the results folder: what the steps before wrote
                before = steps[: steps.index(step)]
                found |= {o.resolve() for s in before for o in s.outputs}
                records = outdir.resolve() / "pipeline_info" / "steps"
                found |= {records / s.record_name for s in before}
                found.add(outdir.resolve() / "evaluation.json")
                continue
            if path in own or any(path in o.parents for o in own):
                continue  # where the step writes
            if path.exists() or path in planned:
                found.add(path)
                found |= {c.resolve() for c in _companions(path, planned)}
    return found


def undeclared(steps: list[Step], outdir: Path) -> dict[str, list[str]]:
    missing: dict[str, list[str]] = {}
    for step in steps:
        declared = {p.resolve() for p in step.inputs}
        lacking = sorted(str(p) for p in files_read(step, steps, outdir) - declared)
        if lacking:
            missing[step.label] = lacking
    return missing


def _variant(world: Path, tmp: Path, name: str) -> dict[str, Any]:
    if name == "world":
        return world_params(world)
    if name == "peaks_called_labels_extra_args":
        labels = tmp / "labels.tsv"
        labels.write_text("tf\ttarget\nTF1\tG1\n")
        barcodes = tmp / "barcodes.txt"
        barcodes.write_text("AAAC-1\n")
        return world_params(
            world,
            peaks=None,
            grn_labels=labels,
            fragments_args=f"--barcodes {barcodes}",
            count_args=f"--barcodes={barcodes}",
        )
    assert name == "fragments_input_given_model"
    sheet = tmp / "samplesheet.csv"
    rows = ["sample,fragments,rna"]
    for sample in ("sample1", "sample2"):
        frag = tmp / f"{sample}.fragments.tsv.gz"
        frag.write_bytes(b"")
        Path(f"{frag}.tbi").write_bytes(b"")
        rows.append(f"{sample},{frag},{world / 'samples' / f'{sample}.rna.h5ad'}")
    sheet.write_text("\n".join(rows) + "\n")
    model = tmp / "given_model.pt"
    model.write_bytes(b"")
    return world_params(world, input=sheet, tfbind_model=model, bulk_sheet=None)


@pytest.mark.parametrize(
    "variant", ["world", "peaks_called_labels_extra_args", "fragments_input_given_model"]
)
def test_every_file_a_planned_step_reads_is_a_declared_input(
    variant: str, tiny_world: Path, tmp_path: Path
) -> None:
    world = copy_world(tiny_world, tmp_path / "world")
    outdir = tmp_path / "out"
    steps = plan(_variant(world, tmp_path, variant), outdir)
    assert len(steps) >= 15
    assert undeclared(steps, outdir) == {}
    # the derivation finds what the runner must declare: the bulk sheet's named files, indexes
    derived = {p for s in steps for p in files_read(s, steps, outdir)}
    if variant == "world":
        assert (world / "bulk" / "T_cell.CTCF.chip.bed").resolve() in derived
        assert (world / "bulk" / "T_cell.accessibility.bw").resolve() in derived
        assert (world / "samples" / "sample1.bam.bai").resolve() in derived
        assert (world / "genome.fa.fai").resolve() in derived


def test_the_check_finds_an_undeclared_file(tiny_world: Path, tmp_path: Path) -> None:
    world = copy_world(tiny_world, tmp_path / "world")
    outdir = tmp_path / "out"
    steps = plan(world_params(world), outdir)
    train = next(s for s in steps if s.stage == "TFBIND_TRAIN")
    bed = (world / "bulk" / "B_cell.PAX5.chip.bed").resolve()
    train.inputs = [p for p in train.inputs if p.resolve() != bed]
    assert undeclared(steps, outdir) == {train.label: [str(bed)]}


# ---- editing a declared input reruns that step and what is downstream, nothing else -------------

#: prediction shards per sample: the tiny world's six autosomes in the default four groups
SHARDS = 4
#: GRN scoring shards: the TFs in the default four groups
GRN = Counter({"GRN_TRAIN": 1, "GRN_SCORE": 4, "GRN_MERGE": 1})
GRN_SCORED = Counter({"GRN_SCORE": 4, "GRN_MERGE": 1})
ALL = GRN + Counter(
    {
        "FRAGMENTS": 2,
        "COUNT": 2,
        "CLUSTER": 2,
        "TRACKS": 2,
        "IMPUTE": 2,
        "TFBIND_TRAIN": 1,
        "TFBIND_PREDICT": 2 * SHARDS,
        "TFBIND_MERGE": 2,
        "REPORT": 1,
        "MULTIQC": 1,
    }
)
TFBIND_DOWN = GRN + Counter(
    {
        "TFBIND_TRAIN": 1,
        "TFBIND_PREDICT": 2 * SHARDS,
        "TFBIND_MERGE": 2,
        "REPORT": 1,
        "MULTIQC": 1,
    }
)
SAMPLE1_DOWN = GRN + Counter(
    {
        "FRAGMENTS": 1,
        "COUNT": 1,
        "CLUSTER": 1,
        "TRACKS": 1,
        "TFBIND_PREDICT": SHARDS,
        "TFBIND_MERGE": 1,
        "REPORT": 1,
        "MULTIQC": 1,
    }
)
EDITS = {
    "bulk/B_cell.PAX5.chip.bed": TFBIND_DOWN,  # named inside the bulk sheet
    "bulk/monocyte.accessibility.bw": TFBIND_DOWN,  # named inside the bulk sheet
    "bulk/bulk_sheet.csv": TFBIND_DOWN,
    "motifs.jaspar": TFBIND_DOWN,
    "bulk/bulk_rna.tsv": Counter({"IMPUTE": 2, "REPORT": 1, "MULTIQC": 1}) + GRN,
    # the TF list is read by scoring only: the model is not retrained
    "tfs.txt": Counter({"REPORT": 1, "MULTIQC": 1}) + GRN_SCORED,
    "samples/sample2.rna.h5ad": Counter({"IMPUTE": 1, "REPORT": 1, "MULTIQC": 1}) + GRN,
    "genes.gtf": ALL - Counter({"FRAGMENTS": 2, "IMPUTE": 2, "TFBIND_TRAIN": 1}),
    # FRAGMENTS checks the BAM header against it
    "genome.fa.fai": ALL - Counter({"IMPUTE": 2}),
    "samples/sample1.bam.bai": SAMPLE1_DOWN,
}


def _edit_keeping_mtime(path: Path) -> None:
    """Change one byte-level detail of ``path`` and put its modification time back."""
    st = path.stat()
    text = {".csv", ".tsv", ".txt", ".gtf", ".bed", ".jaspar", ".fai"}
    with path.open("ab") as handle:
        handle.write(b"\n" if path.suffix in text else b"\0")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture(scope="module")
def finished_run(
    tiny_world: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], tuple[Path, Path]]:
    """A world and a finished stand-in run of it; each call puts both back as they were then."""
    base = tmp_path_factory.mktemp("finished")
    world, outdir = base / "world", base / "out"
    copy_world(tiny_world, world)
    assert stages(run_steps(fake_plan(world_params(world), outdir), outdir, jobs=4)) == ALL
    shutil.copytree(world, base / "world.kept")
    shutil.copytree(outdir, base / "out.kept")

    def fresh() -> tuple[Path, Path]:
        for path in (world, outdir):
            shutil.rmtree(path)
            shutil.copytree(path.with_name(path.name + ".kept"), path)
        return world, outdir

    return fresh


@pytest.mark.parametrize("edited", list(EDITS))
def test_editing_an_input_reruns_its_steps_and_downstream_only(
    edited: str, finished_run: Callable[[], tuple[Path, Path]]
) -> None:
    world, outdir = finished_run()
    assert run_steps(fake_plan(world_params(world), outdir), outdir, jobs=4) == []
    _edit_keeping_mtime(world / edited)
    assert (
        stages(run_steps(fake_plan(world_params(world), outdir), outdir, jobs=4)) == EDITS[edited]
    )
    assert run_steps(fake_plan(world_params(world), outdir), outdir, jobs=4) == []


def test_touching_an_input_reruns_nothing_unless_it_is_compared_by_size_and_time(
    finished_run: Callable[[], tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, outdir = finished_run()
    params = world_params(world)
    tfs = world / "tfs.txt"
    later = tfs.stat().st_mtime_ns + 10**9
    os.utime(tfs, ns=(later, later))
    assert run_steps(fake_plan(params, outdir), outdir, jobs=4) == []  # same content
    monkeypatch.setattr(state, "HASH_LIMIT", 0)  # every file compared by size and mtime
    assert stages(run_steps(fake_plan(params, outdir), outdir, jobs=4)) == ALL  # records changed
    os.utime(tfs, ns=(later + 10**9, later + 10**9))
    assert stages(run_steps(fake_plan(params, outdir), outdir, jobs=4)) == (
        Counter({"REPORT": 1, "MULTIQC": 1}) + GRN_SCORED
    )


def test_an_output_changed_by_hand_is_rebuilt_and_identical_rebuilds_stop_at_the_report(
    finished_run: Callable[[], tuple[Path, Path]],
) -> None:
    world, outdir = finished_run()
    params = world_params(world)
    clustered = outdir / "atac" / "sample1.clustered.h5ad"
    original = clustered.read_bytes()
    clustered.write_bytes(b"edited by hand")
    (outdir / "tracks" / "sample2" / "track.txt").unlink()  # a file inside a folder output
    ran = run_steps(fake_plan(params, outdir), outdir, jobs=4)
    # the steps reading the rebuilt (identical) files do not run again; the report, which lists
    # every step's record, does
    assert sorted(ran) == ["CLUSTER:sample1", "MULTIQC:all", "REPORT:all", "TRACKS:sample2"]
    assert clustered.read_bytes() == original


def test_a_record_without_signatures_reruns_its_step(
    finished_run: Callable[[], tuple[Path, Path]],
) -> None:
    world, outdir = finished_run()
    params = world_params(world)
    record = outdir / "pipeline_info" / "steps" / "TFBIND_TRAIN.all.json"
    old = json.loads(record.read_text())
    del old["inputs"], old["outputs"]  # the record an older runner wrote
    record.write_text(json.dumps(old))
    lines: list[str] = []
    ran = run_steps(fake_plan(params, outdir), outdir, jobs=4, on_progress=lines.append)
    assert "TFBIND_TRAIN:all" in ran
    assert any("no input signatures" in line for line in lines)


# ---- sample ids cannot make steps share or delete each other's files ----------------------------


def _sheet(world: Path, tmp: Path, ids: list[str]) -> Path:
    sheet = tmp / "odd_ids.csv"
    rows = ["sample,bam,rna"]
    for k, sid in enumerate(ids):
        n = k % 2 + 1
        rows.append(f"{sid},{world}/samples/sample{n}.bam,{world}/samples/sample{n}.rna.h5ad")
    sheet.write_text("\n".join(rows) + "\n")
    return sheet


@pytest.mark.parametrize(
    "ids",
    [
        ["pipeline_info", "report"],
        ["tracks", "atac"],
        ["x", "grn_edges.tsv"],
    ],
)
def test_sample_ids_named_like_internal_folders_run_and_rerun(
    ids: list[str], tiny_world: Path, tmp_path: Path
) -> None:
    world = copy_world(tiny_world, tmp_path / "world")
    outdir = tmp_path / "out"
    params = world_params(world, input=_sheet(world, tmp_path, ids))
    steps = fake_plan(params, outdir)
    outputs = [o.resolve() for s in steps for o in s.outputs]
    assert len(outputs) == len(set(outputs))
    assert not [o for o in outputs if set(o.parents) & set(outputs)]
    assert len(run_steps(steps, outdir, jobs=4)) == len(steps)
    assert run_steps(fake_plan(params, outdir), outdir, jobs=4) == []
    for sid in ids:
        assert (outdir / "tfbind" / f"{sid}.tfbind.h5ad").is_file()
        assert (outdir / "tracks" / sid / "track.txt").is_file()


@pytest.mark.parametrize(
    ("ids", "clash"),
    [
        # the samplesheet reader refuses these ids before the plan exists
        (["model.pt"], "sample id 'model.pt' is a name the pipeline gives its own files"),
        (["s", "s.tfbind.h5ad"], "sample id 's.tfbind.h5ad' is sample id 's' followed by '.'"),
    ],
)
def test_sample_ids_whose_outputs_collide_are_refused_before_anything_runs(
    ids: list[str], clash: str, tiny_world: Path, tmp_path: Path
) -> None:
    world = copy_world(tiny_world, tmp_path / "world")
    sheet = _sheet(world, tmp_path, ids)
    with pytest.raises(InputError, match=re.escape(clash)) as err:
        plan(world_params(world, input=sheet), tmp_path / "out")
    assert str(err.value).startswith(f"{sheet}: ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("impute/sample1.imputed.h5ad", "is an input, but IMPUTE (sample1) would write over it"),
        ("tracks/sample1/rna.h5ad", "which TRACKS (sample1) would replace"),
    ],
)
def test_an_input_where_a_step_writes_is_refused(
    where: str, error: str, tiny_world: Path, tmp_path: Path
) -> None:
    world = copy_world(tiny_world, tmp_path / "world")
    outdir = tmp_path / "out"
    rna = outdir / where
    rna.parent.mkdir(parents=True)
    shutil.copy(world / "samples" / "sample1.rna.h5ad", rna)
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(f"sample,bam,rna\nsample1,{world}/samples/sample1.bam,{rna}\n")
    with pytest.raises(InputError, match=re.escape(error)) as err:
        plan(world_params(world, input=sheet), outdir)
    assert str(err.value).startswith(f"{rna}: ")


def test_a_contig_name_with_a_comma_is_refused_naming_the_index(
    tiny_world: Path, tmp_path: Path
) -> None:
    world = copy_world(tiny_world, tmp_path / "world")
    fai = world / "genome.fa.fai"
    fai.write_text(fai.read_text().replace("chr1\t", "chr,1\t", 1))
    error = f"{fai}: contig name(s) chr,1 contain a quote, a comma or white space"
    with pytest.raises(InputError, match=re.escape(error)):
        plan(world_params(world), tmp_path / "out")


def test_temporary_names_are_told_apart_per_output(tmp_path: Path) -> None:
    from scregnet.io.atomic import atomic_dir, atomic_path, scratch_dir

    mine, theirs = (
        tmp_path / "s.atac.h5ad",
        tmp_path / "s.atac.h5ad.atac.h5ad",
    )  # ids s, s.atac.h5ad
    with (
        atomic_path(mine) as a,
        atomic_path(theirs) as b,
        atomic_dir(tmp_path / "s", owner="test") as d,
        scratch_dir(mine, "parts") as work,
    ):
        a.write_text("x")
        b.write_text("x")
        foreign = [tmp_path / ".s.atac.h5ad.notes", tmp_path / "s.atac.h5ad.part"]
        for f in foreign:
            f.write_text("mine, not a temporary file")
        assert temp_leftovers(mine) == sorted([a, work])
        assert temp_leftovers(theirs) == [b]
        assert temp_leftovers(tmp_path / "s") == [d]
