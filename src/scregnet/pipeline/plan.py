"""Planning: the samplesheet and params expanded into steps (command line, inputs, outputs).

A step's inputs are every file its command reads: the paths on its command line, their companion
indexes (``.bai``, ``.tbi``, ``.fai``) and the files named inside sheets it reads (the bulk sheet's
ChIP BEDs and accessibility bigWigs). Resume compares exactly these files, so editing any of them
reruns the step and, through its changed outputs, everything downstream.

Every output path is derived from a fixed folder and a sample id; :func:`check_layout` refuses a
plan in which two steps would write the same path, one step would write inside another's output,
or an output would overwrite an input, so no sample id can make one step replace another's files.
"""

from __future__ import annotations

import csv
import functools
import graphlib
import hashlib
import json
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from scregnet.errors import InputError
from scregnet.io.genome import read_chrom_sizes
from scregnet.io.params import PATH_KEYS
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

#: the processes that pool every sample into one step (named :data:`POOLED`)
POOLED_STAGES = frozenset({"TFBIND_TRAIN", "GRN", "REPORT", "MULTIQC"})
#: the ``name`` of a pooled step; a sample may carry this id too, pooling is told by the stage
POOLED = "all"
#: folder of the per-sample TF-binding shards; it starts with '_', which no sample id can
SHARDS_DIR = "_shards"
#: where the runner keeps one record per finished step, relative to the outdir (see ``state``)
RECORDS = Path("pipeline_info") / "steps"


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

    @property
    def pooled(self) -> bool:
        return self.stage in POOLED_STAGES

    @property
    def label(self) -> str:
        return f"{self.stage} ({self.name})"

    @property
    def record_name(self) -> str:
        """The file name of this step's record in ``pipeline_info/steps/``."""
        return f"{self.stage}.{self.name}.json"

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


# ---- files a command reads besides the paths on its command line ---------------------------------


def _existing(*paths: Path) -> list[Path]:
    return [p for p in paths if p.exists()]


def bam_files(bam: Path) -> list[Path]:
    """A BAM and its index (``x.bam.bai``, ``x.bai`` or ``x.bam.csi``, whichever exist)."""
    return [bam, *_existing(Path(f"{bam}.bai"), bam.with_suffix(".bai"), Path(f"{bam}.csi"))]


def tabix_files(fragments: Path, *, planned: bool = False) -> list[Path]:
    """A bgzipped fragments file and its index; ``planned``: both written by an upstream step."""
    if planned:
        return [fragments, Path(f"{fragments}.tbi")]
    return [fragments, *_existing(Path(f"{fragments}.tbi"), Path(f"{fragments}.csi"))]


def fasta_files(fasta: Path) -> list[Path]:
    """A FASTA, its ``.fai`` and, for a bgzipped FASTA, its ``.gzi``."""
    return [fasta, Path(f"{fasta}.fai"), *_existing(Path(f"{fasta}.gzi"))]


def bulk_sheet_files(sheet: Path) -> list[Path]:
    """The bulk sheet and the ChIP BEDs and accessibility bigWigs it names (relative to the sheet).

    Read the way ``tfbind train`` reads it (``#`` starts a comment, cells are stripped); a sheet
    that cannot be read yields only itself: the step then fails with the reader's own error.
    """
    files = [sheet]
    try:
        text = sheet.read_text()
    except (OSError, UnicodeDecodeError):
        return files
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    rows = csv.DictReader([line for line in lines if line.strip()])
    for row in rows:
        for column in ("chip_bed", "accessibility_bw"):
            value = (row.get(column) or "").strip()
            if value:
                path = (sheet.parent / value).resolve()
                if path not in files:
                    files.append(path)
    return files


def _extra_inputs(tokens: Iterable[str]) -> list[Path]:
    """Existing files named by extra flags (``<process>_args``), as ``--x PATH`` or ``--x=PATH``."""
    found: list[Path] = []
    for token in tokens:
        value = token.split("=", 1)[1] if token.startswith("--") and "=" in token else token
        if value and not value.startswith("-") and Path(value).exists():
            found.append(Path(value))
    return found


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
    motifs: Path | None = params.get("motifs")
    motif_files = [motifs] if motifs is not None else []
    steps: dict[str, list[Step]] = {stage: [] for stage in STAGE_GRAPH}
    atac, peaks_dir, tracks_dir = outdir / "atac", outdir / "peaks", outdir / "tracks"
    impute_dir, tfbind_dir, grn_dir = outdir / "impute", outdir / "tfbind", outdir / "grn"
    frags: dict[str, list[Path]] = {}  # the fragments file and its index
    clustered: dict[str, Path] = {}
    for s in samples:
        if s.bam is not None:
            frag = atac / f"{s.sample}.fragments.tsv.gz"
            frags[s.sample] = tabix_files(frag, planned=True)
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
                    bam_files(s.bam),
                    frags[s.sample],
                )
            )
        else:
            assert s.fragments is not None
            frag = s.fragments
            frags[s.sample] = tabix_files(frag)
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
                    [*frags[s.sample], fai],
                    [peaks],
                )
            )
        else:
            peaks = params["peaks"]
        count = atac / f"{s.sample}.atac.h5ad"
        qc = atac / f"{s.sample}.qc.tsv"
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
                    str(qc),
                    "--out",
                    str(count),
                    *common,
                ],
                [*frags[s.sample], peaks, fai, gtf],
                [count, qc],
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
                [*frags[s.sample], clustered[s.sample], fai],
                [track_dir],
            )
        )
    imputed: dict[str, Path] = {}
    for s in samples:
        if s.rna is None:
            continue
        imputed[s.sample] = impute_dir / f"{s.sample}.imputed.h5ad"
        argv = ["impute", "--rna", str(s.rna), "--out", str(imputed[s.sample]), *device, *common]
        inputs = [s.rna]
        if params.get("bulk_rna") is not None:
            argv += ["--bulk", str(params["bulk_rna"])]
            inputs.append(params["bulk_rna"])
        if params.get("impute_epochs"):
            argv += ["--epochs", str(params["impute_epochs"])]
        steps["IMPUTE"].append(Step("IMPUTE", s.sample, argv, inputs, [imputed[s.sample]]))
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
        if motifs is not None:
            argv += ["--motifs", str(motifs)]
        inputs = [*fasta_files(fasta), *bulk_sheet_files(params["bulk_sheet"]), *motif_files]
        steps["TFBIND_TRAIN"].append(Step("TFBIND_TRAIN", POOLED, argv, inputs, [model]))
    tfbind: dict[str, Path] = {}
    if model is not None:
        # One shard covering every chromosome here; Nextflow runs one shard per chromosome. Both merge.
        chrom_names = list(read_chrom_sizes(fai))
        bad = [c for c in chrom_names if "," in c]
        if bad:
            msg = f"chromosome name {bad[0]!r} contains ',' (the separator of --chrom lists)"
            raise InputError(msg, fai)
        for s in samples:
            shard = tfbind_dir / SHARDS_DIR / f"{s.sample}.all.tfbind_shard.h5ad"
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
                str(frags[s.sample][0]),
                "--chrom",
                ",".join(chrom_names),
                "--out",
                str(shard),
                *device,
                *common,
            ]
            if motifs is not None:
                argv += ["--motifs", str(motifs)]
            steps["TFBIND_PREDICT"].append(
                Step(
                    "TFBIND_PREDICT",
                    s.sample,
                    argv,
                    [
                        model,
                        *fasta_files(fasta),
                        clustered[s.sample],
                        *frags[s.sample],
                        *motif_files,
                    ],
                    [shard],
                )
            )
            tfbind[s.sample] = tfbind_dir / f"{s.sample}.tfbind.h5ad"
            binding_tracks = tfbind_dir / s.sample
            argv = [
                "tfbind",
                "merge",
                "--shards",
                str(shard),
                "--atac",
                str(clustered[s.sample]),
                "--out",
                str(tfbind[s.sample]),
                "--tracks-outdir",
                str(binding_tracks),
                *common,
            ]
            steps["TFBIND_MERGE"].append(
                Step(
                    "TFBIND_MERGE",
                    s.sample,
                    argv,
                    [shard, clustered[s.sample]],
                    [tfbind[s.sample], binding_tracks],
                )
            )
    if imputed:
        grn = grn_dir / "grn_edges.tsv"
        argv = ["grn"]
        for path in imputed.values():
            argv += ["--rna", str(path)]
        grn_inputs: list[Path] = [*imputed.values()]
        if params.get("grn_labels") is not None:
            argv += ["--labels", str(params["grn_labels"])]
            grn_inputs.append(params["grn_labels"])
        elif tfbind:
            for path in tfbind.values():
                argv += ["--prior", str(path)]
            argv += ["--gtf", str(gtf)]
            grn_inputs += [*tfbind.values(), gtf]
        else:
            grn_inputs = []
        if params.get("tfs") is not None:
            argv += ["--tfs", str(params["tfs"])]
            grn_inputs.append(params["tfs"])
        if params.get("grn_epochs"):
            argv += ["--epochs", str(params["grn_epochs"])]
        if grn_inputs:
            attention = grn_dir / "grn_attention.tsv"
            argv += ["--out", str(grn), "--attention-out", str(attention), *device, *common]
            steps["GRN"].append(Step("GRN", POOLED, argv, grn_inputs, [grn, attention]))
        else:
            log.warning(
                "GRN skipped: it needs --grn_labels or TF-binding priors (bulk_sheet or tfbind_model)"
            )
    report = outdir / "report" / "report.html"
    # the report reads the results folder: every output of the steps above, their records (the
    # commands it lists) and the evaluation when there is one
    upstream = [o for stage in stage_order() for step in steps[stage] for o in step.outputs]
    upstream += [outdir / RECORDS / s.record_name for stage in stage_order() for s in steps[stage]]
    upstream.append(outdir / "evaluation.json")
    steps["REPORT"].append(
        Step(
            "REPORT",
            POOLED,
            ["report", "--results", str(outdir), "--out", str(report), *common],
            upstream,
            [report],
        )
    )
    steps["MULTIQC"].append(
        Step(
            "MULTIQC",
            POOLED,
            [str(outdir / "report"), "--outdir", str(outdir / "multiqc"), "--force"],
            [report.parent],
            [outdir / "multiqc" / "multiqc_report.html"],
            executable="multiqc",
            optional_tool=True,
        )
    )
    ordered = [step for stage in stage_order() for step in steps[stage]]
    extra_files: list[Path] = []
    for step in ordered:  # `<process>_args` params: extra flags, like Nextflow's ext.args
        extra = params.get(f"{step.stage.lower()}_args")
        if extra and step.executable == "scregnet":
            tokens = shlex.split(str(extra))
            step.argv += tokens
            named = _extra_inputs(tokens)
            step.inputs += [p for p in named if p not in step.inputs]
            extra_files += named
    external = [Path(params[k]) for k in PATH_KEYS if params.get(k) is not None]
    for s in samples:
        if s.bam is not None:
            external += bam_files(s.bam)
        if s.fragments is not None:
            external += tabix_files(s.fragments)
        if s.rna is not None:
            external.append(s.rna)
    if params.get("bulk_sheet") is not None:
        external += bulk_sheet_files(params["bulk_sheet"])
    external += extra_files
    check_layout(ordered, samplesheet=Path(params["input"]), external=external)
    return ordered


# ---- output layout -------------------------------------------------------------------------------


def _key(path: Path) -> Path:
    return Path(path).resolve()


def check_layout(
    steps: Sequence[Step], *, samplesheet: Path, external: Iterable[Path] = ()
) -> None:
    """Refuse a plan in which two steps write one path, a step writes inside another's output, or
    a step writes over (or into a folder holding) one of the ``external`` input files.

    Paths are compared after resolving symlinks. A clash between outputs names the samplesheet,
    since renaming a sample is the fix; a clash with an input names that input.
    """
    owner: dict[Path, Step] = {}
    for step in steps:
        for out in step.outputs:
            key = _key(out)
            other = owner.get(key)
            if other is not None and other is not step:
                _layout_error(step, other, out, samplesheet, inside=False)
            owner[key] = step
    for key, step in owner.items():
        for parent in key.parents:
            other = owner.get(parent)
            if other is not None and other is not step:
                _layout_error(step, other, key, samplesheet, inside=True)
    for path in external:
        key = _key(path)
        for target in (key, *key.parents):
            other = owner.get(target)
            if other is None:
                continue
            if target == key:
                msg = f"is an input, but {other.label} would write over it"
            else:
                msg = f"is an input inside {target}, which {other.label} would replace"
            raise InputError(msg + "; move it out of the results folder", path)


def _layout_error(
    step: Step, other: Step, path: Path, samplesheet: Path, *, inside: bool
) -> NoReturn:
    if inside:
        msg = f"{step.label} would write {path} inside the output of {other.label}"
    else:
        msg = f"{step.label} and {other.label} would both write {path}"
    names = sorted({s.name for s in (step, other) if not s.pooled})
    if names:
        msg += f"; rename sample {' or '.join(repr(n) for n in names)}"
    raise InputError(msg, samplesheet)


# ---- scheduling ----------------------------------------------------------------------------------

#: Rough seconds one step of each stage takes (CPU test profile). They only
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
    whenever ``a`` reads a file that ``b`` writes (or a file inside a folder ``b`` writes, or a
    folder holding one of ``b``'s outputs).
    """
    ancestors = _stage_ancestors()
    written = [{_key(o) for o in b.outputs} for b in steps]
    holding = [{parent for o in w for parent in o.parents} for w in written]
    deps: list[set[int]] = []
    for a in steps:
        upstream = ancestors.get(a.stage, set())
        reads = {_key(p) for p in a.inputs}
        around = reads | {parent for p in reads for parent in p.parents}
        deps.append(
            {
                j
                for j, b in enumerate(steps)
                if b is not a
                and (
                    (b.stage in upstream and (a.name == b.name or a.pooled or b.pooled))
                    or bool(written[j] & around)
                    or bool(holding[j] & reads)
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


#: ``--profile test``: the simulator's ``small`` world with short training (mirrors conf/test.config).
TEST_PROFILE: dict[str, Any] = {
    "preset": "small",
    "seed": 0,
    "impute_epochs": 10,
    "tfbind_epochs": 4,
    # two epochs: on this world more epochs give the same edge scores, and the demo stays short
    "grn_epochs": 2,
    "min_fragments": 500,
    # CPU-sized TF-binding network (the default is the paper's 160/240/240 + 919, meant for a GPU)
    "tfbind_train_args": "--filters 16,24,24 --hidden 32 --lr 3e-3 --negative-ratio 2",
    # the calibrated CPU-sized model predicts low probabilities; take weaker binding as a prior
    # (0.5 gave no better labels on this world: expression score EPR 2.96 vs 3.09)
    "grn_args": "--prior-threshold 0.05",
}
