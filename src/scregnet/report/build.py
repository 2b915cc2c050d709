"""Assemble ``report.html`` from a results directory (layout: docs/output.md).

Every section is always present; a stage that did not run says so instead of showing figures.
Figures are embedded as base64 PNGs so the file is self-contained (it can be mailed or archived).
"""

from __future__ import annotations

import html
import logging
import platform
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scregnet import __version__, keys
from scregnet.errors import InputError, first_line
from scregnet.io.atomic import atomic_paths
from scregnet.io.h5ad import read_h5ad
from scregnet.io.outputs import sample_files
from scregnet.io.tables import read_ranking, read_table
from scregnet.io.text import json_text, read_json
from scregnet.report import figures

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger(__name__)

SECTIONS = (
    ("atac-qc", "ATAC quality control"),
    ("clusters", "Clusters"),
    ("imputation", "Imputation"),
    ("tf-activity", "TF activity"),
    ("grn", "Gene regulatory network"),
    ("evaluation", "Evaluation against truth"),
    ("parameters", "Parameters"),
    ("versions", "Software versions"),
)

#: sections that show a stage's results (a report without any is refused)
RESULT_SECTIONS = ("atac-qc", "clusters", "imputation", "tf-activity", "grn", "evaluation")
#: the MultiQC custom-content table written beside the report
MULTIQC_TABLE = "scregnet_atac_qc_mqc.tsv"

PACKAGES = (
    "scregnet",
    "numpy",
    "pandas",
    "scipy",
    "anndata",
    "scanpy",
    "pysam",
    "pyBigWig",
    "torch",
    "scikit-learn",
)


@dataclass
class Section:
    key: str
    title: str
    parts: list[str] = field(default_factory=list)
    #: what the section says when it has nothing to show
    absent: str = "This stage produced no outputs in this run."

    def image(self, b64: str, alt: str) -> None:
        self.parts.append(
            f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"/></figure>'
        )

    def text(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, frame: pd.DataFrame, *, index: bool = False) -> None:
        self.parts.append(
            frame.to_html(index=index, border=0, classes="table", float_format=lambda v: f"{v:.4g}")
        )

    def render(self) -> str:
        body = "\n".join(self.parts) or f"<p class='absent'>{html.escape(self.absent)}</p>"
        return f'<section id="{self.key}"><h2>{html.escape(self.title)}</h2>\n{body}\n</section>'


#: the pipeline trace's statuses of steps whose outputs are this run's (``pipeline_info/trace.tsv``)
FINISHED = (keys.STEP_COMPLETED, keys.STEP_CACHED)
#: the statuses of steps that did not finish
UNFINISHED = (keys.STEP_FAILED, keys.STEP_NOT_RUN, keys.STEP_ABORTED)


def _folder_and_name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


@dataclass(frozen=True)
class Results:
    """A results folder and, when ``scregnet run`` wrote it, the trace of its last run: only the
    outputs of that run's finished steps are reported (an earlier run's outputs of samples since
    dropped from the samplesheet, or of steps that failed or did not run this time, are not)."""

    root: Path
    trace: pd.DataFrame | None = None  # stage, name, status (strings)
    #: the finished steps' outputs as ``folder/file``: a record holds the paths the run was
    #: given, which may be relative or name the results folder before it was moved
    outputs: frozenset[str] | None = None

    @classmethod
    def read(cls, root: Path) -> Results:
        path = root / keys.TRACE
        if not path.exists():
            return cls(root)
        trace = read_table(path, ("stage", "name", "status"), dtype=str, keep_default_na=False)
        outputs: set[str] = set()
        for row in trace[trace["status"].isin(FINISHED)].itertuples():
            record = cls.record(root, row.stage, row.name)
            data = read_json(record) if record.exists() else None
            if not isinstance(data, dict) or not isinstance(data.get("outputs"), dict):
                log.warning(
                    "%s: no record of the outputs of %s (%s), which the trace says finished: "
                    "reporting every result in the folder",
                    record,
                    row.stage,
                    row.name,
                )
                return cls(root, trace)
            outputs.update(_folder_and_name(Path(o)) for o in data["outputs"])
        return cls(root, trace, frozenset(outputs))

    @staticmethod
    def record(root: Path, stage: Any, name: Any) -> Path:
        """A step's record (:mod:`scregnet.pipeline.state`), :data:`scregnet.keys.STEP_RECORD`."""
        return root / keys.STEP_RECORD.format(stage=stage, name=name)

    def current(self, path: Path) -> bool:
        """Whether ``path`` exists and, with a trace, a finished step of the last run wrote it."""
        if not path.exists():
            return False
        return self.outputs is None or _folder_and_name(path) in self.outputs

    def samples(self, folder: str, suffix: str) -> dict[str, Path]:
        """``sample -> path`` of the files ``<folder>/<sample><suffix>`` that are :meth:`current`."""
        found = sample_files(self.root / folder, suffix)
        return {sample: p for sample, p in found.items() if self.current(p)}


def _fragment_lengths(path: Path, limit: int = 2_000_000) -> np.ndarray:
    """Fragments by length (as ``uns['fragment_lengths']`` of ``scregnet count``) over the first
    ``limit`` fragments of a fragments file: for counts written before ``count`` kept them. A file
    that is not gzipped fragments with whole-number positions is an :class:`InputError` naming it."""
    try:
        frame = pd.read_csv(
            path, sep="\t", header=None, usecols=[1, 2], nrows=limit, comment="#", dtype=np.int64
        )
    except (OSError, EOFError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        msg = f"not a readable fragments file ({first_line(exc)})"
        raise InputError(msg, path) from exc
    lengths = np.clip((frame[2] - frame[1]).to_numpy(), 0, keys.MAX_FRAGMENT_LENGTH_BIN)
    return np.bincount(lengths, minlength=keys.MAX_FRAGMENT_LENGTH_BIN + 1)


#: per-cell QC columns of scregnet count whose per-sample medians the QC table reports
QC_MEDIANS = ("n_fragments", "tss_enrichment", "frip", "duplicate_rate", "nucleosome_signal")


def atac_sections(results: Results, qc: Section, clusters: Section) -> pd.DataFrame | None:
    rows = []
    for sample, path in results.samples(*keys.SAMPLE_RESULTS["atac"]).items():
        adata = read_h5ad(path)
        obs = adata.obs
        if keys.CLUSTER not in obs:
            msg = f"no obs[{keys.CLUSTER!r}]: not an output of `scregnet cluster`"
            raise InputError(msg, path)
        # one row per sample (the MultiQC table): per-cell QC medians; per-barcode tables stay in atac/
        medians = {
            f"median_{column.removeprefix('n_')}": float(np.median(obs[column]))
            if column in obs and adata.n_obs
            else np.nan
            for column in QC_MEDIANS
        }
        rows.append(
            {
                "sample": sample,
                "cells": adata.n_obs,
                "peaks": adata.n_vars,
                **medians,
                "clusters": int(obs[keys.CLUSTER].nunique()),
            }
        )
        for column, title, log_x in (
            ("n_fragments", "Unique fragments per cell", True),
            ("tss_enrichment", "TSS enrichment", False),
            ("frip", "Fraction of fragments in peaks", False),
        ):
            if column in obs:
                qc.image(
                    figures.histogram(
                        obs[column].to_numpy(),
                        title=f"{sample}: {title}",
                        xlabel=column,
                        log_x=log_x,
                    ),
                    f"{sample} {column}",
                )
        # counted by `scregnet count`; from the fragments file for counts made before it kept them
        frag = results.root / "atac" / f"{sample}.fragments.tsv.gz"
        by_length = adata.uns.get(keys.FRAGMENT_LENGTHS)
        if by_length is None and results.current(frag):
            by_length = _fragment_lengths(frag)
        if by_length is not None:
            qc.image(
                figures.fragment_lengths(np.asarray(by_length, dtype=np.int64)),
                f"{sample} fragment lengths",
            )
        if keys.UMAP in adata.obsm:
            clusters.image(
                figures.scatter_by_label(
                    np.asarray(adata.obsm[keys.UMAP]),
                    obs[keys.CLUSTER].astype(str).tolist(),
                    title=f"{sample}: UMAP by cluster",
                ),
                f"{sample} UMAP",
            )
    if not rows:
        return None
    table = pd.DataFrame(rows)
    qc.table(table)
    return table


def imputation_section(results: Results, section: Section, *, max_cells: int = 5000) -> None:
    import scipy.sparse as sp

    for sample, path in results.samples(*keys.SAMPLE_RESULTS["impute"]).items():
        adata = read_h5ad(path)
        if keys.IMPUTED not in adata.layers:
            msg = f"no layer {keys.IMPUTED!r}: not an output of `scregnet impute`"
            raise InputError(msg, path)
        keep = np.sort(np.random.default_rng(0).permutation(adata.n_obs)[:max_cells])
        raw_x = adata.X[keep]
        raw = raw_x.toarray() if sp.issparse(raw_x) else np.asarray(raw_x)
        imputed = np.asarray(adata.layers[keys.IMPUTED][keep])
        detected = (raw > 0).mean(axis=0)
        lib = np.maximum(raw.sum(axis=1, keepdims=True), 1)
        observed = np.log1p(raw / lib * 1e4)
        oc = observed - observed.mean(axis=0)
        ic = imputed - imputed.mean(axis=0)
        denom = np.sqrt((oc**2).sum(axis=0) * (ic**2).sum(axis=0))
        corr = np.divide((oc * ic).sum(axis=0), denom, out=np.zeros_like(denom), where=denom > 0)
        section.image(
            figures.imputation_diagnostics(detected, corr), f"{sample} imputation diagnostics"
        )
        section.text(
            f"{sample}: {adata.n_obs} cells x {adata.n_vars} genes; zeros in observed counts "
            f"(up to {max_cells} cells shown) "
            f"{(raw == 0).mean():.1%}; median per-gene correlation of imputed with observed {np.median(corr):.3f}."
        )
        record = adata.uns.get(keys.IMPUTE_UNS, {})
        source = str(record.get("bulk_source", ""))
        if source in keys.BULK_SOURCES:
            section.text(f"{sample}: bulk stage {keys.BULK_SOURCES[source]}.")
        if record.get("kept_epoch"):
            section.text(
                f"{sample}: {record['epochs']} fusion epochs trained; the model uses the weights of "
                f"epoch {record['kept_epoch']}."
            )
        # written beside the imputed cells by the same step (current with them)
        loss = path.with_name(path.name.replace(".imputed.h5ad", ".imputed.loss.tsv"))
        if loss.exists():
            section.table(read_table(loss).tail(5))


def tf_activity_section(results: Results, section: Section) -> None:
    for sample, path in results.samples(*keys.SAMPLE_RESULTS["tfbind"]).items():
        adata = read_h5ad(path)
        dropped = adata.uns.get(keys.TFBIND_UNS, {}).get("dropped_tfs")
        if dropped is not None and len(dropped):
            section.text(
                f"{sample}: no binding prediction for TF(s) {', '.join(map(str, dropped))}: "
                "`tfbind train` dropped them (too few ChIP positives to learn and calibrate)."
            )
        constant = adata.uns.get(keys.TFBIND_UNS, {}).get(keys.BASE_RATE_TFS)
        if constant is not None and len(constant):
            section.text(
                f"{sample}: the binding probability of TF(s) {', '.join(map(str, constant))} is "
                "a constant, their base rate: in training the model's logits did not rank their "
                "held-out windows, so their binding and activity carry no binding information."
            )
        if keys.CLUSTER not in adata.obs:
            continue
        values = np.asarray(
            adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X, dtype=float
        )
        frame = (
            pd.DataFrame(values, columns=adata.var_names)
            .groupby(adata.obs[keys.CLUSTER].astype(str).to_numpy())
            .mean()
        )
        z = (frame - frame.mean()) / frame.std(ddof=0).replace(0, 1)
        section.image(
            figures.heatmap(
                z.to_numpy(),
                list(z.index),
                list(z.columns),
                title=f"{sample}: TF activity per cluster (X: read deviation in predicted-bound peaks)",
                label="z-score",
            ),
            f"{sample} TF activity heatmap",
        )


def grn_section(results: Results, section: Section, *, top: int = 50) -> None:
    path = results.root / keys.GRN_EDGES
    if not results.current(path):
        return
    edges = read_ranking(path, ("tf", "target", "score", "rank"))
    head = edges.sort_values("rank").head(top)
    if "method" in head and head["method"].nunique() == 1:
        # one read-out produced every score: said once, in words, above the figure
        section.text(f"Published score: {head['method'].iloc[0]}.")
        head = head.drop(columns="method")
    section.image(
        figures.network(
            list(zip(head.tf, head.target, head.score, strict=True)), title=f"Top {len(head)} edges"
        ),
        "GRN network",
    )
    section.table(head)


def evaluation_section(
    results: Path, section: Section, report: Mapping[str, Any] | None = None
) -> None:
    """The evaluation table: of ``report`` when given, else of ``<results>/evaluation.json``."""
    path = results / keys.EVALUATION
    if report is None:
        if not path.exists():
            return
        report = read_json(path)
    if not isinstance(report, dict):
        msg = "not an evaluation report (a JSON object of stages)"
        raise InputError(msg, path)
    rows = [
        {"stage": stage, "metric": key, "value": value}
        for stage, metrics in report.items()
        for key, value in _flatten(metrics)
    ]
    section.table(pd.DataFrame(rows))


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        out: list[tuple[str, Any]] = []
        for key, value in obj.items():
            out.extend(_flatten(value, f"{prefix}{key}."))
        return out
    return [(prefix.rstrip("."), obj)]


def _argv(record: Path) -> list[str]:
    """The command line a step's record (``pipeline_info/steps/<step>.json``) holds."""
    data = read_json(record)
    argv = data.get("argv") if isinstance(data, dict) else None
    if not isinstance(argv, list):
        msg = "step record has no 'argv' list"
        raise InputError(msg, record)
    return [str(a) for a in argv]


def missing_results(
    results: Results, expected: Mapping[str, Sequence[str]]
) -> list[tuple[str, str]]:
    """The ``(stage, sample)`` results that ``expected`` names and the folder lacks (sample ``""``
    for the GRN): ``expected`` maps a stage of :data:`scregnet.keys.RESULT_STAGES` to the
    samples the run was given for it (the GRN: any value). In stage order, then by sample."""
    missing = []
    for stage in (s for s in keys.RESULT_STAGES if s in expected):
        if stage == "grn":
            if not results.current(results.root / keys.GRN_EDGES):
                missing.append((stage, ""))
            continue
        present = results.samples(*keys.SAMPLE_RESULTS[stage])
        missing += [(stage, s) for s in sorted(set(expected[stage])) if s not in present]
    return missing


def run_status(results: Results, missing: Sequence[tuple[str, str]] = ()) -> str:
    """A section naming the steps of the last ``scregnet run`` that did not finish (its trace) and
    the expected results that are missing; empty when there are none."""
    bad = (
        results.trace[results.trace["status"].isin(UNFINISHED)]
        if results.trace is not None
        else pd.DataFrame()
    )
    if bad.empty and not missing:
        return ""
    section = Section("run-status", "Incomplete run")
    if not bad.empty:
        counts = bad["status"].value_counts()
        section.text(
            f"This report shows only what finished: {counts.get(keys.STEP_FAILED, 0)} step(s) "
            "failed"
            + (f", {counts[keys.STEP_ABORTED]} were stopped" if keys.STEP_ABORTED in counts else "")
            + f" and {counts.get(keys.STEP_NOT_RUN, 0)} were not run. Their outputs are left out "
            "of the sections below, including any an earlier run wrote. The logs are in "
            "pipeline_info/logs/."
        )
        section.table(bad[["stage", "name", "status"]].rename(columns={"name": "sample or task"}))
    if missing:
        section.text(
            f"{len(missing)} result(s) that the samplesheet asks for are missing: their tasks "
            "failed or did not run. Every section below, and the GRN and the MultiQC table where "
            "they were built, holds only the samples that are there. (A Nextflow run goes on past "
            "a failed task only under errorStrategy 'ignore'.)"
        )
        rows = [{"stage": stage, "sample": sample or "(all samples)"} for stage, sample in missing]
        section.table(pd.DataFrame(rows))
    return section.render()


def parameters_section(results: Results, section: Section) -> None:
    if results.trace is None or results.outputs is None:
        steps = sorted((results.root / keys.STEP_RECORD).parent.glob("*.json"))
    else:
        finished = results.trace[results.trace["status"].isin(FINISHED)]
        steps = sorted(Results.record(results.root, r.stage, r.name) for r in finished.itertuples())
    if not steps:
        return
    rows = [{"step": p.stem, "command": "scregnet " + " ".join(_argv(p))} for p in steps]
    section.table(pd.DataFrame(rows))


def versions() -> pd.DataFrame:
    rows = [{"software": "python", "version": platform.python_version()}]
    for package in PACKAGES:
        try:
            rows.append(
                {
                    "software": package,
                    "version": __version__ if package == "scregnet" else version(package),
                }
            )
        except PackageNotFoundError:
            rows.append({"software": package, "version": "not installed"})
    return pd.DataFrame(rows)


CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{border-bottom:2px solid #3b6ea8}section{margin:2em 0}figure{display:inline-block;margin:.5em}
img{max-width:520px}.table{border-collapse:collapse;font-size:.85em}.table td,.table th{padding:.2em .6em;border-bottom:1px solid #ddd}
.absent{color:#888;font-style:italic}
"""


def build_report(
    results: str | Path,
    out: str | Path,
    *,
    expected: Mapping[str, Sequence[str]] | None = None,
    evaluation: dict[str, Any] | None = None,
) -> Path:
    """Write the self-contained report for ``results`` to ``out`` and, when the results have
    clustered ATAC samples, their QC table for MultiQC (:data:`MULTIQC_TABLE`) beside it; both are
    written atomically, together.

    ``evaluation``: a fresh evaluation of the results (:func:`scregnet.evaluate.truth.evaluate`);
    the report shows it and writes it to ``<results>/evaluation.json`` together with the report,
    so that a failed report leaves any earlier evaluation in place.

    ``expected``: the results the run should have written (:func:`missing_results`); the report
    opens with the ones that are missing, and each is logged as a warning. Without any result the
    report is written only when some are expected (it then lists them all as missing); else that
    is an error."""
    results, out = Path(results), Path(out)
    found = Results.read(results)
    missing = missing_results(found, expected or {})
    for stage, sample in missing:
        log.warning("%s: no %s result%s", results, stage, f" for sample {sample}" if sample else "")
    sections = {key: Section(key, title) for key, title in SECTIONS}
    sections["evaluation"].absent = (
        "No evaluation.json: the results were not scored against a simulated world's truth "
        "(`scregnet evaluate --truth`; the test profile's report does it itself)."
    )
    qc_table = atac_sections(found, sections["atac-qc"], sections["clusters"])
    imputation_section(found, sections["imputation"])
    tf_activity_section(found, sections["tf-activity"])
    grn_section(found, sections["grn"])
    evaluation_section(results, sections["evaluation"], evaluation)
    if not missing and not any(sections[key].parts for key in RESULT_SECTIONS):
        where = [f"{folder}/*{suffix}" for folder, suffix in keys.SAMPLE_RESULTS.values()]
        msg = (
            f"no scregnet results found ({', '.join(where)}, {keys.GRN_EDGES} or {keys.EVALUATION})"
        )
        raise InputError(msg, results)
    parameters_section(found, sections["parameters"])
    sections["versions"].table(versions())
    body = "\n".join(
        [run_status(found, missing), *(s.render() for s in sections.values())]
    ).lstrip()
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>scregnet report</title>"
        f"<style>{CSS}</style></head><body><h1>scregnet report</h1>"
        f"<p>Results: {html.escape(str(results))} — scregnet {__version__}</p>\n{body}\n</body></html>\n"
    )
    texts: dict[Path, Callable[[], str]] = {out: lambda: page}
    if qc_table is not None:
        texts[out.parent / MULTIQC_TABLE] = lambda: multiqc_table(qc_table)
    if evaluation is not None:
        texts[results / keys.EVALUATION] = lambda: json_text(evaluation)
    with atomic_paths(*texts) as temps:  # the report, its MultiQC table, the evaluation together
        for tmp, text in zip(temps, texts.values(), strict=True):
            tmp.write_text(text())
    log.info("report written to %s", out)
    return out


def multiqc_table(qc: pd.DataFrame) -> str:
    """Per-sample ATAC QC as MultiQC custom content (general-stats style table)."""
    header = (
        "# id: 'scregnet_atac_qc'\n# section_name: 'scregnet ATAC QC'\n"
        "# description: 'Cells called and per-cell QC medians from scregnet count'\n# plot_type: 'table'\n"
    )
    return header + qc.to_csv(sep="\t", index=False)
