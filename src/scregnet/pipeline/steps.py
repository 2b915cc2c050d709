"""The step table: one definition per pipeline process, shared by both runners.

For every process it gives the command, the flags and what fills each one, the resource label,
whether it takes a device (GPU processes) and the processes it reads from. ``scregnet run``
builds its command lines from it (:func:`Process.argv`, called by :mod:`~scregnet.pipeline.plan`);
the Nextflow modules (``modules/local/*/main.nf`` script blocks with ``conf/modules.config``'s
``ext.args``) are rendered for the same inputs by ``tests/python/test_nextflow_argv.py`` and must
give the same flags with the same values. An input slot has the name of the module's input it
binds (``bulk_sheet``, ``chroms``, ``results`` and ``multiqc_files`` are what the module builds from
its inputs: the staged sheet, the shard's contigs, the staged results and files folder).

A flag's value comes from one of:

- ``input``/``output``: a file (or list) bound by the planner to the slot of that name;
- ``value``: a value (not a file) bound by the planner to the slot of that name (REPORT's
  expected results; Nextflow: a ``val`` input of the same name);
- ``param``: a pipeline parameter (``params.yaml`` key; ``conf/modules.config`` ``ext.args``);
- ``const``: always given (a switch such as MultiQC's ``--force``);
- ``seed``, ``threads``, ``device``: the run's seed, threads per step (Nextflow: ``task.cpus``)
  and resolved device (``cpu`` or ``cuda``; Nextflow: from ``task.accelerator``).

``arity``: ``one`` (flag value), ``each`` (the flag repeated per item), ``list`` (the flag, then
every item), ``comma`` (items joined by ','), ``switch`` (the flag alone), ``positional``.
An ``optional`` flag is left out when its value is absent (``None``, empty list, empty string).
``runner_only`` flags exist only in ``scregnet run`` (Nextflow gets the same from the task
directory, e.g. MultiQC's output folder).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Source = Literal["input", "output", "value", "param", "seed", "threads", "device", "const"]
Arity = Literal["one", "each", "list", "comma", "switch", "positional"]


@dataclass(frozen=True)
class Arg:
    flag: str
    source: Source
    slot: str = ""
    arity: Arity = "one"
    optional: bool = False
    runner_only: bool = False

    def value(
        self, slots: Mapping[str, Any], params: Mapping[str, Any], run: Mapping[str, Any]
    ) -> Any:
        if self.source in ("input", "output", "value"):
            return slots.get(self.slot)
        if self.source == "param":
            return params.get(self.slot)
        if self.source == "const":
            return True
        return run[self.source]


def _in(flag: str, slot: str, **kw: Any) -> Arg:
    return Arg(flag, "input", slot, **kw)


def _out(flag: str, slot: str = "out", **kw: Any) -> Arg:
    return Arg(flag, "output", slot, **kw)


def _param(flag: str, key: str, **kw: Any) -> Arg:
    return Arg(flag, "param", key, **kw)


SEED = Arg("--seed", "seed")
THREADS = Arg("--threads", "threads")
DEVICE = Arg("--device", "device")


@dataclass(frozen=True)
class Process:
    """One Nextflow process / one kind of runner step."""

    name: str
    command: tuple[str, ...]  # after the executable
    label: str  # conf/base.config resource label
    upstream: tuple[str, ...]  # processes whose outputs it reads
    args: tuple[Arg, ...]
    executable: str = "scregnet"
    pooled: bool = False  # one step over all samples
    #: tools whose versions it reports (the modules' `versions` topic outputs)
    tools: tuple[str, ...] = ("scregnet",)
    #: rough seconds one step takes (CPU test profile); only decides which ready step the runner
    #: starts first (the longest remaining chain first), never what it computes
    cost: float = 1.0

    @property
    def gpu(self) -> bool:
        """Runs on a GPU when one is given (``process_gpu``); takes ``--device``."""
        return self.label == "process_gpu"

    def argv(
        self,
        slots: Mapping[str, Any],
        params: Mapping[str, Any],
        *,
        threads: int,
        device: str = "cpu",
    ) -> list[str]:
        """The command line after the executable."""
        run = {"seed": params.get("seed", 0), "threads": threads, "device": device}
        argv = list(self.command)
        for arg in self.args:
            value = arg.value(slots, params, run)
            if value is None or value == "" or value == [] or value is False:
                if arg.optional:
                    continue
                msg = f"{self.name}: no value for {arg.flag or arg.slot} ({arg.source} {arg.slot})"
                raise ValueError(msg)
            items = [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
            if arg.arity == "one":
                argv += [arg.flag, items[0]]
            elif arg.arity == "each":
                for item in items:
                    argv += [arg.flag, item]
            elif arg.arity == "list":
                argv += [arg.flag, *items]
            elif arg.arity == "comma":
                argv += [arg.flag, ",".join(items)]
            elif arg.arity == "switch":
                argv.append(arg.flag)
            else:
                argv += items
        return argv


def _table(*processes: Process) -> dict[str, Process]:
    return {p.name: p for p in processes}


STEPS: dict[str, Process] = _table(
    Process(
        "FRAGMENTS",
        ("fragments",),
        "process_medium",
        (),
        (
            _in("--bam", "bam"),
            _in("--genome", "fai"),
            _out("--out"),
            THREADS,
            _param("--min-mapq", "min_mapq"),
            _param("--barcode-tag", "barcode_tag"),
            SEED,
        ),
        cost=13,
    ),
    Process(
        "PEAKS",
        ("peaks",),
        "process_low",
        ("FRAGMENTS",),
        (_in("--fragments", "fragments"), _in("--genome", "fai"), _out("--out"), THREADS, SEED),
        tools=("scregnet", "macs3"),
        cost=20,
    ),
    Process(
        "COUNT",
        ("count",),
        "process_medium",
        ("FRAGMENTS", "PEAKS"),
        (
            _in("--fragments", "fragments"),
            _in("--peaks", "peaks"),
            _in("--genome", "fai"),
            _in("--tss", "gtf"),
            _out("--out"),
            _out("--qc", "qc"),
            THREADS,
            _param("--min-fragments", "min_fragments"),
            _param("--tile-size", "tile_size"),
            SEED,
        ),
        cost=5,
    ),
    Process(
        "CLUSTER",
        ("cluster",),
        "process_low",
        ("COUNT",),
        (_in("--atac", "atac"), _out("--out"), THREADS, SEED),
        cost=18,
    ),
    Process(
        "TRACKS",
        ("tracks",),
        "process_low",
        ("FRAGMENTS", "CLUSTER"),
        (
            _in("--fragments", "fragments"),
            _in("--clusters", "clustered"),
            _in("--genome", "fai"),
            _out("--outdir"),
            THREADS,
            SEED,
        ),
        cost=7,
    ),
    Process(
        "IMPUTE",
        ("impute",),
        "process_gpu",
        (),
        (
            _in("--rna", "rna"),
            _in("--bulk", "bulk_rna", optional=True),
            # the sample's view from the samplesheet, carried to the GRN in the imputed h5ad
            _in("--view", "view"),
            _out("--out"),
            DEVICE,
            THREADS,
            SEED,
            _param("--epochs", "impute_epochs", optional=True),
        ),
        cost=40,
    ),
    Process(
        "TFBIND_TRAIN",
        ("tfbind", "train"),
        "process_gpu",
        (),
        (
            _in("--fasta", "fasta"),
            _in("--bulk", "bulk_sheet"),
            _out("--out"),
            # training state after each epoch: a retried (preempted or killed) step resumes from it
            _out("--state", "state"),
            DEVICE,
            THREADS,
            _in("--motifs", "motifs", optional=True),
            SEED,
            _param("--epochs", "tfbind_epochs", optional=True),
        ),
        pooled=True,
        cost=180,
    ),
    Process(
        "TFBIND_PREDICT",
        ("tfbind", "predict"),
        "process_gpu",
        ("TFBIND_TRAIN", "FRAGMENTS", "CLUSTER"),
        (
            _in("--model", "model"),
            _in("--fasta", "fasta"),
            _in("--atac", "atac"),
            _in("--fragments", "fragments"),
            # one shard: a balanced group of contigs (scregnet.pipeline.contigs)
            _in("--chrom", "chroms", arity="comma"),
            _in("--motifs", "motifs", optional=True),
            _out("--out"),
            DEVICE,
            THREADS,
            SEED,
        ),
        cost=22,
    ),
    Process(
        "TFBIND_MERGE",
        ("tfbind", "merge"),
        "process_low",
        ("TFBIND_PREDICT", "CLUSTER"),
        (
            _in("--shards", "shards", arity="list"),  # by file name
            _in("--atac", "atac"),
            # the contigs left out of prediction on purpose (tfbind_skip_chroms and minor contigs)
            _in("--skip-chroms", "skipped_chroms", arity="comma", optional=True),
            _out("--out"),
            _out("--tracks-outdir", "binding"),
            THREADS,
            SEED,
        ),
        cost=6,
    ),
    Process(
        "GRN_TRAIN",
        ("grn", "train"),
        "process_gpu",
        ("IMPUTE", "TFBIND_MERGE"),
        (
            # views and priors in sample-id order: the GRN takes its gene order from the first
            _in("--rna", "rna", arity="each"),
            # supervision: known edges, else the TF-binding priors with the GTF
            _in("--labels", "labels", optional=True),
            _in("--prior", "priors", arity="each", optional=True),
            _in("--gtf", "gtf", optional=True),
            _out("--out"),
            DEVICE,
            THREADS,
            SEED,
            _param("--epochs", "grn_epochs", optional=True),
        ),
        pooled=True,
        cost=120,
    ),
    Process(
        "GRN_SCORE",
        ("grn", "score"),
        "process_gpu",
        ("GRN_TRAIN", "IMPUTE", "TFBIND_MERGE"),
        (
            _in("--model", "model"),
            _in("--rna", "rna", arity="each"),
            # a model trained on binding priors publishes the rank mean with their binding
            _in("--prior", "priors", arity="each", optional=True),
            _in("--gtf", "gtf", optional=True),
            _in("--tfs", "tfs", optional=True),
            # one shard: the K-th of N equal groups of the TFs (K/N)
            _in("--shard", "shard"),
            _out("--out"),
            DEVICE,
            THREADS,
            # no SEED: scoring is deterministic and uses the seed stored in the model
        ),
        pooled=True,
        cost=45,
    ),
    Process(
        "GRN_MERGE",
        ("grn", "merge"),
        "process_low",
        ("GRN_SCORE",),
        (
            _in("--shards", "shards", arity="list"),  # by file name
            _out("--out"),
            _out("--attention-out", "attention"),
            THREADS,
        ),
        pooled=True,
        cost=5,
    ),
    Process(
        "REPORT",
        ("report",),
        "process_single",
        ("COUNT", "CLUSTER", "TRACKS", "IMPUTE", "TFBIND_MERGE", "GRN_MERGE"),
        (
            _in("--results", "results"),
            _out("--out"),
            _in("--truth", "truth", optional=True, runner_only=True),
            # the results the samplesheet asks for: the report names any that are missing
            Arg("--expect", "value", "expected", arity="each", optional=True),
            THREADS,
            SEED,
        ),
        pooled=True,
        cost=8,
    ),
    Process(
        "MULTIQC",
        (),
        "process_single",
        ("REPORT",),
        (
            Arg("--force", "const", arity="switch"),
            _in("--config", "multiqc_config", optional=True),
            _param("--title", "multiqc_title", optional=True),
            _out("--outdir", "outdir", runner_only=True),
            # REPORT's one-row-per-sample tables and the software versions YAML
            _in("", "multiqc_files", arity="positional"),
        ),
        executable="multiqc",
        pooled=True,
        tools=(),  # MultiQC reads the versions topic; its own version is not in it
        cost=5,
    ),
)

#: process -> upstream processes; the Nextflow workflow's DAG must be this graph (a test checks it)
STAGE_GRAPH: dict[str, tuple[str, ...]] = {name: p.upstream for name, p in STEPS.items()}
#: process -> rough seconds per step (the scheduler's priorities)
STAGE_COST: dict[str, float] = {name: p.cost for name, p in STEPS.items()}
#: the processes that pool every sample into one step
POOLED_STAGES = frozenset(name for name, p in STEPS.items() if p.pooled)

#: The test profile (``scregnet run --profile test``; Nextflow's ``-profile test``): the
#: simulator's ``small`` world with short training. Its one definition: ``conf/test.config``'s
#: params must equal these keys, and the flags Nextflow then renders must equal the runner's
#: (tests/python/test_nextflow_argv.py).
TEST_PROFILE: dict[str, Any] = {
    "simulate_preset": "small",
    "seed": 0,
    "min_fragments": 500,
    "impute_epochs": 10,
    "tfbind_epochs": 4,
    # two epochs: on this world more epochs give the same edge scores, and the demo stays short
    "grn_epochs": 2,
    # CPU-sized TF-binding network (the default is the paper's 160/240/240 + 919, meant for a GPU)
    "tfbind_train_args": "--filters 16,24,24 --hidden 32 --lr 3e-3 --negative-ratio 2",
    # the calibrated CPU-sized model predicts low probabilities; take weaker binding as a prior
    "grn_train_args": "--prior-threshold 0.05",
}


def mermaid(steps: Mapping[str, Process] = STEPS) -> str:
    """The pipeline's DAG as a Mermaid flowchart (the README's picture is this text).

    A node names its process and its command; GPU processes are marked ``GPU``, processes that pool
    every sample are drawn as stadiums, per-sample processes as rectangles.
    """
    lines = ["flowchart TD"]
    for name, p in steps.items():
        text = " ".join((p.executable, *p.command))
        label = f"{name}<br/><code>{text}</code>" + ("<br/>GPU" if p.gpu else "")
        lines.append(f'    {name}(["{label}"])' if p.pooled else f'    {name}["{label}"]')
    for name, p in steps.items():
        lines += [f"    {up} --> {name}" for up in p.upstream]
    return "\n".join(lines) + "\n"
