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

from scregnet import keys
from scregnet.errors import InputError
from scregnet.io.genome import read_chrom_sizes
from scregnet.io.rna import check_rna_file
from scregnet.io.samplesheet import Sample, read_samplesheet
from scregnet.pipeline.contigs import check_contig_names, prediction_shards, skipped_contigs
from scregnet.pipeline.inputs import check_bulk_rna, check_chromosome_styles, check_grn_lists
from scregnet.pipeline.params import DEFAULTS, PATH_KEYS
from scregnet.pipeline.steps import POOLED_STAGES, STAGE_COST, STAGE_GRAPH, STEPS

log = logging.getLogger(__name__)

#: the ``name`` of a pooled step; a sample may carry this id too, pooling is told by the stage
POOLED = "all"
#: folder of the TF-binding shards (per sample) and of the GRN's scoring shards; it starts with
#: '_', which no sample id can
SHARDS_DIR = "_shards"
#: where the runner keeps one record per finished step, relative to the outdir (see ``state``)
RECORDS = Path(keys.STEP_RECORD).parent
#: the software versions YAML (MultiQC's and pipeline_info/'s, as Nextflow writes it)
VERSIONS = Path("pipeline_info") / "software_mqc_versions.yml"
#: the MultiQC config both runners use by default (Nextflow: assets/multiqc_config.yml, a link to it)
DEFAULT_MULTIQC_CONFIG = Path(__file__).resolve().parents[1] / "data" / "multiqc_config.yml"


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
    part: str = ""  # one of several steps of a stage for this sample (a prediction shard)
    #: what filled the command line's slots (step table names; the Nextflow modules' input names)
    slots: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def pooled(self) -> bool:
        return self.stage in POOLED_STAGES

    @property
    def task(self) -> str:
        """The step's name with its part (``sample1.shard2``), unique within its stage."""
        return f"{self.name}.{self.part}" if self.part else self.name

    @property
    def label(self) -> str:
        return f"{self.stage} ({self.task})"

    @property
    def tool_missing(self) -> bool:
        """Whether the step's tool is optional and not installed: the step is then skipped."""
        return self.optional_tool and find_tool(self.executable) is None

    @property
    def record_name(self) -> str:
        """The file name of this step's record in :data:`RECORDS`."""
        return Path(keys.STEP_RECORD.format(stage=self.stage, name=self.task)).name

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


def resolve_run_device(spec: str) -> str:
    """The device every GPU-capable step gets: ``auto`` resolved here once (``cuda`` when a CUDA
    GPU is visible, else ``cpu``), as Nextflow resolves it per task from ``task.accelerator``;
    an explicit device is passed on as given, once checked here: ``cuda`` without a visible GPU
    is refused before any step runs (not by the first GPU step, after the CPU steps)."""
    if spec == "cpu":
        return spec
    from scregnet.device import resolve_device

    resolved = resolve_device(spec)
    return resolved.type if spec == "auto" else spec


def multiqc_config(params: dict[str, Any]) -> Path:
    """``multiqc_config`` when given, else the pipeline's own (the file Nextflow's default is)."""
    given = params.get("multiqc_config")
    return Path(given) if given else DEFAULT_MULTIQC_CONFIG


@dataclass
class _Planner:
    """The steps planned so far, and what every step's command line needs besides its slots."""

    params: dict[str, Any]
    outdir: Path
    threads: int
    device: str
    fasta: Path
    fai: Path
    steps: dict[str, list[Step]] = field(default_factory=lambda: {s: [] for s in STAGE_GRAPH})

    def add(
        self,
        stage: str,
        name: str,
        slots: dict[str, Any],
        inputs: list[Path],
        outputs: list[Path],
        part: str = "",
    ) -> Step:
        """A step of ``stage`` whose command line the step table builds from ``slots``."""
        spec = STEPS[stage]
        argv = spec.argv(slots, self.params, threads=self.threads, device=self.device)
        step = Step(stage, name, argv, inputs, outputs, spec.executable, part=part, slots=slots)
        self.steps[stage].append(step)
        return step

    @property
    def motif_files(self) -> list[Path]:
        motifs = self.params.get("motifs")
        return [motifs] if motifs is not None else []


def plan(
    params: dict[str, Any], outdir: Path, *, threads: int = 1, truth: Path | None = None
) -> list[Step]:
    """Expand params + samplesheet into the ordered list of steps; with ``truth`` (a simulated
    world's, the test profile) REPORT scores the results against it first.

    Each step's command line is built from :data:`~scregnet.pipeline.steps.STEPS`; the planning
    below only binds each step's slots (files, shard contigs) and applies the skip rules.
    Samples are taken in sample-id order, as Nextflow sorts them.
    """
    samples: list[Sample] = sorted(read_samplesheet(params["input"]), key=lambda s: s.sample)
    fasta: Path = params["fasta"]
    fai = Path(str(fasta) + ".fai")
    if not fai.exists():
        msg = "FASTA has no .fai index (run `samtools faidx`)"
        raise InputError(msg, fasta)
    check_chromosome_styles(
        samples,
        read_chrom_sizes(fai),
        fai=fai,
        gtf=params.get("gtf"),
        peaks=params.get("peaks"),
    )
    device = resolve_run_device(str(params.get("device") or "auto"))
    p = _Planner(params, outdir, threads, device, fasta, fai)
    frags, clustered = _plan_atac(p, samples)
    imputed = _plan_impute(p, samples)
    tfbind = _plan_tfbind(p, samples, frags, clustered)
    grn = _plan_grn(p, imputed, tfbind)
    _plan_report(p, truth, expected_results(list(clustered), list(tfbind), list(imputed), grn))
    ordered = [step for stage in stage_order() for step in p.steps[stage]]
    extra_files = _add_extra_args(ordered, params)
    external = [*_external_inputs(params, samples), *extra_files]
    check_layout(ordered, samplesheet=Path(params["input"]), external=external)
    return ordered


def _plan_atac(
    p: _Planner, samples: Sequence[Sample]
) -> tuple[dict[str, list[Path]], dict[str, Path]]:
    """FRAGMENTS (BAM samples), PEAKS (unless ``peaks`` is given), COUNT, CLUSTER, TRACKS; returns
    each sample's fragments file with its index, and its clustered h5ad."""
    atac, fai, gtf = p.outdir / "atac", p.fai, p.params["gtf"]
    frags: dict[str, list[Path]] = {}
    clustered: dict[str, Path] = {}
    for s in samples:
        if s.bam is not None:
            frag = atac / f"{s.sample}.fragments.tsv.gz"
            frags[s.sample] = tabix_files(frag, planned=True)
            slots: dict[str, Any] = {"bam": s.bam, "fai": fai, "out": frag}
            p.add("FRAGMENTS", s.sample, slots, [*bam_files(s.bam), fai], frags[s.sample])
        else:
            assert s.fragments is not None
            frag = s.fragments
            frags[s.sample] = tabix_files(frag)
        peaks = p.params.get("peaks")
        if peaks is None:
            peaks = p.outdir / "peaks" / f"{s.sample}.narrowPeak"
            slots = {"fragments": frag, "fai": fai, "out": peaks}
            p.add("PEAKS", s.sample, slots, [*frags[s.sample], fai], [peaks])
        count, qc = atac / f"{s.sample}{keys.ATAC_COUNTS}", atac / f"{s.sample}.qc.tsv"
        slots = {"fragments": frag, "peaks": peaks, "fai": fai, "gtf": gtf, "out": count, "qc": qc}
        p.add("COUNT", s.sample, slots, [*frags[s.sample], peaks, fai, gtf], [count, qc])
        clustered[s.sample] = _result(p.outdir, "atac", s.sample)
        slots = {"atac": count, "out": clustered[s.sample]}
        p.add("CLUSTER", s.sample, slots, [count], [clustered[s.sample]])
        tracks = p.outdir / "tracks" / s.sample
        slots = {"fragments": frag, "clustered": clustered[s.sample], "fai": fai, "out": tracks}
        p.add("TRACKS", s.sample, slots, [*frags[s.sample], clustered[s.sample], fai], [tracks])
    return frags, clustered


def _plan_impute(p: _Planner, samples: Sequence[Sample]) -> dict[str, Path]:
    """IMPUTE for each sample with scRNA; returns the imputed h5ad per sample."""
    imputed: dict[str, Path] = {}
    bulk_rna: Path | None = p.params.get("bulk_rna")
    if bulk_rna is not None and any(s.rna is not None for s in samples):
        check_bulk_rna(bulk_rna)
    for s in samples:
        if s.rna is None:
            continue
        check_rna_file(s.rna)
        imputed[s.sample] = _result(p.outdir, "impute", s.sample)
        slots = {"rna": s.rna, "bulk_rna": bulk_rna, "view": s.view, "out": imputed[s.sample]}
        inputs = [s.rna, *([bulk_rna] if bulk_rna is not None else [])]
        p.add("IMPUTE", s.sample, slots, inputs, [imputed[s.sample]])
    return imputed


def _plan_tfbind(
    p: _Planner,
    samples: Sequence[Sample],
    frags: dict[str, list[Path]],
    clustered: dict[str, Path],
) -> dict[str, Path]:
    """TFBIND_TRAIN (unless ``tfbind_model`` is given; needs ``bulk_sheet``), TFBIND_PREDICT per
    sample and contig shard, TFBIND_MERGE per sample; returns the merged h5ad per sample."""
    tfbind_dir, fasta, motifs = p.outdir / "tfbind", p.fasta, p.params.get("motifs")
    model = p.params.get("tfbind_model")
    if model is None and p.params.get("bulk_sheet") is not None:
        model = tfbind_dir / "model.pt"
        sheet = p.params["bulk_sheet"]
        slots = {
            "fasta": fasta,
            "bulk_sheet": sheet,
            "motifs": motifs,
            "out": model,
            # '_' starts no sample id: no sample's files can be here
            "state": tfbind_dir / "_state" / "tfbind_train.state",
        }
        inputs = [*fasta_files(fasta), *bulk_sheet_files(sheet), *p.motif_files]
        p.add("TFBIND_TRAIN", POOLED, slots, inputs, [model])
    if model is None:
        return {}
    contigs = list(read_chrom_sizes(p.fai).items())
    check_contig_names(contigs, p.fai)
    skip = [c for c in str(p.params.get("tfbind_skip_chroms") or "").split(",") if c]
    n_shards = int(p.params.get("tfbind_shards") or DEFAULTS["tfbind_shards"])
    shards = prediction_shards(contigs, skip, n_shards)
    if not shards:
        return {}
    merged: dict[str, Path] = {}
    for s in samples:
        shard_files = []
        for shard_id, chroms in shards:
            shard = tfbind_dir / SHARDS_DIR / f"{s.sample}.{shard_id}.tfbind.h5ad"
            slots = {
                "model": model,
                "fasta": fasta,
                "atac": clustered[s.sample],
                "fragments": frags[s.sample][0],
                "chroms": chroms,
                "motifs": motifs,
                "out": shard,
            }
            inputs = [model, *fasta_files(fasta), clustered[s.sample], *frags[s.sample]]
            p.add("TFBIND_PREDICT", s.sample, slots, inputs + p.motif_files, [shard], shard_id)
            shard_files.append(shard)
        shard_files.sort(key=lambda path: path.name)  # Nextflow groups them by file name
        merged[s.sample] = _result(p.outdir, "tfbind", s.sample)
        slots = {
            "shards": shard_files,
            "atac": clustered[s.sample],
            "skipped_chroms": skipped_contigs(contigs, skip),
            "out": merged[s.sample],
            "binding": tfbind_dir / s.sample,
        }
        outputs = [merged[s.sample], tfbind_dir / s.sample]
        p.add("TFBIND_MERGE", s.sample, slots, [*shard_files, clustered[s.sample]], outputs)
    return merged


def _plan_grn(p: _Planner, imputed: dict[str, Path], tfbind: dict[str, Path]) -> bool:
    """GRN_TRAIN over every imputed view, supervised by ``grn_labels`` or else the TF-binding
    priors; GRN_SCORE per shard of the TFs (``grn_shards``); GRN_MERGE into the ranked edges.
    Returns whether the GRN is planned."""
    if not imputed:
        return False
    labels: Path | None = p.params.get("grn_labels")
    tfs: Path | None = p.params.get("tfs")
    if labels is None and not tfbind:
        log.warning(
            "GRN skipped: it needs --grn_labels or TF-binding priors (bulk_sheet or tfbind_model)"
        )
        return False
    check_grn_lists(labels, tfs)
    grn_dir = p.outdir / "grn"
    model = grn_dir / "grn_model.pt"
    priors = [] if labels is not None else list(tfbind.values())
    gtf: Path | None = None if labels is not None else p.params["gtf"]
    rna = list(imputed.values())
    supervision = [labels] if labels is not None else [*priors, gtf]
    slots: dict[str, Any] = {
        "rna": rna,
        "labels": labels,
        "priors": priors,
        "gtf": gtf,
        "out": model,
    }
    p.add("GRN_TRAIN", POOLED, slots, [*rna, *supervision], [model])
    n_shards = int(p.params.get("grn_shards") or DEFAULTS["grn_shards"])
    shard_files = []
    for k in range(1, n_shards + 1):
        shard = grn_dir / SHARDS_DIR / f"grn.shard{k}.tsv"
        slots = {
            "model": model,
            "rna": rna,
            "priors": priors,
            "gtf": gtf,
            "tfs": tfs,
            "shard": f"{k}/{n_shards}",
            "out": shard,
        }
        inputs = [model, *rna, *([*priors, gtf] if gtf is not None else [])]
        inputs += [tfs] if tfs is not None else []
        p.add("GRN_SCORE", POOLED, slots, inputs, [shard], f"shard{k}")
        shard_files.append(shard)
    shard_files.sort(key=lambda path: path.name)  # Nextflow groups them by file name
    edges, attention = p.outdir / keys.GRN_EDGES, grn_dir / "grn_attention.tsv"
    slots = {"shards": shard_files, "out": edges, "attention": attention}
    p.add("GRN_MERGE", POOLED, slots, shard_files, [edges, attention])
    return True


def _result(outdir: Path, stage: str, sample: str) -> Path:
    """A sample's result of ``stage`` in the results folder
    (:data:`scregnet.keys.SAMPLE_RESULTS`)."""
    folder, suffix = keys.SAMPLE_RESULTS[stage]
    return outdir / folder / f"{sample}{suffix}"


def expected_results(
    atac: Sequence[str], tfbind: Sequence[str], impute: Sequence[str], grn: bool
) -> list[str]:
    """The planned results as ``scregnet report --expect`` takes them (``atac=s1,s2``, ...,
    ``grn``), in the order the Nextflow workflow's ``expectedResults`` gives them."""
    named = (("atac", atac), ("tfbind", tfbind), ("impute", impute))
    expected = [f"{stage}={','.join(sorted(samples))}" for stage, samples in named if samples]
    return [*expected, "grn"] if grn else expected


def _plan_report(p: _Planner, truth: Path | None, expected: list[str]) -> None:
    """REPORT over the results folder (scored against ``truth`` first when given; naming any of
    the ``expected`` results that are missing), then MultiQC over REPORT's tables and the
    versions YAML."""
    report = p.outdir / "report" / "report.html"
    # the report reads the results folder: every output of the steps above, their records (the
    # commands it lists) and the evaluation when there is one
    before = [step for stage in stage_order() for step in p.steps[stage]]
    upstream = [o for step in before for o in step.outputs]
    upstream += [p.outdir / RECORDS / step.record_name for step in before]
    slots: dict[str, Any] = {"results": p.outdir, "out": report, "expected": expected}
    outputs = [report]
    if truth is None:  # a user's `scregnet evaluate` there
        upstream.append(p.outdir / keys.EVALUATION)
    else:  # the test profile: REPORT scores the results first
        slots["truth"] = truth
        upstream.append(truth)
        outputs.append(p.outdir / keys.EVALUATION)
    p.add("REPORT", POOLED, slots, upstream, outputs)
    # MultiQC reads REPORT's one-row-per-sample tables (report/*_mqc.tsv) and the versions YAML
    config, versions = multiqc_config(p.params), p.outdir / VERSIONS
    slots = {
        "multiqc_config": config,
        "multiqc_files": [report.parent, versions],
        "outdir": p.outdir / "multiqc",
    }
    inputs = [report.parent, versions, config]
    step = p.add("MULTIQC", POOLED, slots, inputs, [p.outdir / "multiqc" / "multiqc_report.html"])
    step.optional_tool = True


def _add_extra_args(steps: Sequence[Step], params: dict[str, Any]) -> list[Path]:
    """Append each ``<process>_args`` param (extra flags, like Nextflow's ext.args) to its steps;
    the existing files they name become inputs. Returns those files."""
    extra_files: list[Path] = []
    for step in steps:
        extra = params.get(f"{step.stage.lower()}_args")
        if extra and step.executable == "scregnet":
            tokens = shlex.split(str(extra))
            step.argv += tokens
            named = _extra_inputs(tokens)
            step.inputs += [path for path in named if path not in step.inputs]
            extra_files += named
    return extra_files


def _external_inputs(params: dict[str, Any], samples: Sequence[Sample]) -> list[Path]:
    """Every input file from outside the pipeline (no step may write over one)."""
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
    return external


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
