"""The spread of the tiny end-to-end summary across CPU kernels and thread counts.

    python bench/golden_spread.py [--workdir DIR] [--variants default,aten-avx2,...]
                                  [--out tests/golden/tiny_spread.json]

Runs the golden test's pipeline (``tests/python/test_end_to_end.py``: the simulator's tiny world,
seed 0, its shortened training) once per variant: the steps ``scregnet run`` plans for the stages
the summary reads, one at a time, each a fresh process under environment variables or thread
counts that change which floating-point kernels run: oneDNN's ISA (``ONEDNN_MAX_CPU_ISA``, torch's
convolutions), torch's SIMD dispatch (``ATEN_CPU_CAPABILITY``), MKL's code path (``MKL_CBWR``),
numpy/scipy's OpenBLAS core (``OPENBLAS_CORETYPE``), numba's target CPU, BLAS and torch threads.
Each variant's summary (``tests/golden_summary.py``) is compared with the first variant's
(this machine's defaults) and with the committed golden file (written on another CPU, where it
was). The largest difference of each kind of number between any two of them (the variants and the
golden file) is written to ``--out``; ``test_golden_summary`` derives its tolerances from it.
Existing runs in ``--workdir`` are reused.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "tiny_summary.json"

#: name -> (environment variables, ``--threads``)
VARIANTS: dict[str, tuple[dict[str, str], int]] = {
    "default": ({}, 1),
    # oneDNN (torch's convolutions) dispatches on its own, not on ATEN_CPU_CAPABILITY
    "onednn-avx2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, 1),
    "onednn-avx512-core": ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, 1),
    "aten-avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, 1),
    "blas-1-thread": ({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}, 1),
    "openblas-haswell": ({"OPENBLAS_CORETYPE": "Haswell"}, 1),
    "mkl-compatible": ({"MKL_CBWR": "COMPATIBLE"}, 1),
    # an Intel AVX-512 CPU's MKL code path, as far as it can be forced here (numpy's OpenBLAS
    # already runs its SkylakeX kernels on this AVX-512 CPU, as on Intel's)
    "intel-like": ({"MKL_CBWR": "AVX512", "MKL_ENABLE_INSTRUCTIONS": "AVX512"}, 1),
    "aten-default": ({"ATEN_CPU_CAPABILITY": "default"}, 1),
    "torch-2-threads": ({}, 2),
    "mkl-avx2": ({"MKL_CBWR": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}, 1),
    "numba-generic": ({"NUMBA_CPU_NAME": "generic"}, 1),
}
#: what each of the tolerance's kinds of number is called in the spread file
KINDS = ("atac_rel", "impute_rel", "tfbind_abs", "grn_score_abs", "grn_overlap")


#: the stages whose outputs the summary reads (tracks, report and MultiQC are left out)
STAGES = ("FRAGMENTS", "PEAKS", "COUNT", "CLUSTER", "IMPUTE", "TFBIND_TRAIN", "TFBIND_PREDICT")
STAGES += ("TFBIND_MERGE", "GRN_TRAIN", "GRN_SCORE", "GRN_MERGE")


def _run_variant(name: str, world: Path, work: Path) -> Path:
    """The pipeline's steps (``scregnet.pipeline.plan``) of the summarised stages, one at a time."""
    sys.path.insert(0, str(REPO / "tests" / "python"))
    from test_end_to_end import tiny_params

    from scregnet.pipeline import plan
    from scregnet.pipeline.params import read_params

    env_vars, threads = VARIANTS[name]
    results = work / name / "results"
    if (results / "grn" / "grn_edges.tsv").exists():
        return results
    results.mkdir(parents=True, exist_ok=True)
    params = read_params(tiny_params(world, work / name / "params.yaml"))
    t0 = time.perf_counter()
    with (work / name / "run.log").open("w") as log:
        for step in plan(params, results, threads=threads):
            if step.stage not in STAGES:
                continue
            for out in step.outputs:
                out.parent.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, **step.env, **env_vars}
            log.write(f"{step.stage} ({step.name}): {' '.join(step.command())}\n")
            log.flush()
            proc = subprocess.run(
                step.command(), env=env, stdout=log, stderr=subprocess.STDOUT, check=False
            )
            if proc.returncode != 0:
                msg = f"{name}: {step.stage} ({step.name}) failed, see {work / name / 'run.log'}"
                raise SystemExit(msg)
    print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return results


def spread(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """The largest difference of each kind of number between two summaries (see KINDS)."""
    out = dict.fromkeys(KINDS, 0.0)
    out["grn_overlap"] = 1.0
    out["integer_mismatches"] = 0.0
    for sample, sa in a["atac"].items():
        sb = b["atac"][sample]
        for key, va in sa.items():
            if key in {"shape", "sum", "nnz", "clusters"}:
                out["integer_mismatches"] += float(va != sb[key])
            else:
                rel = abs(va - sb[key]) / max(abs(va), abs(sb[key]), 1e-300)
                out["atac_rel"] = max(out["atac_rel"], rel)
    for sample, sa in a["impute"].items():
        sb = b["impute"][sample]
        out["integer_mismatches"] += float(sa["shape"] != sb["shape"])
        for key in ("imputed_sum", "imputed_mean"):
            rel = abs(sa[key] - sb[key]) / max(abs(sa[key]), abs(sb[key]))
            out["impute_rel"] = max(out["impute_rel"], rel)
    for sample, sa in a["tfbind"].items():
        sb = b["tfbind"][sample]
        for cluster, rows in sa["top_activity_per_cluster"].items():
            other = {tf: v for tf, v in sb["top_activity_per_cluster"][cluster]}
            for tf, v in rows:
                if tf in other:
                    out["tfbind_abs"] = max(out["tfbind_abs"], abs(v - other[tf]))
    ea = {(t, g): s for t, g, s in a["grn"]["top_edges"]}
    eb = {(t, g): s for t, g, s in b["grn"]["top_edges"]}
    for key in set(ea) & set(eb):
        out["grn_score_abs"] = max(out["grn_score_abs"], abs(ea[key] - eb[key]))
    out["grn_overlap"] = len(set(ea) & set(eb)) / max(len(eb), 1)
    return out


def _versions() -> dict[str, str]:
    names = ("torch", "numpy", "scipy", "scikit-learn", "scanpy", "anndata", "numba", "pandas")
    return {n: metadata.version(n) for n in names}


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _report(summaries: dict[str, Any], golden: dict[str, Any]) -> dict[str, Any]:
    reference = summaries["default"]
    per_variant = {n: spread(s, reference) for n, s in summaries.items() if n != "default"}
    per_variant["golden file"] = spread(golden, reference)
    # a run on one CPU is compared with a golden written on another: the spread that matters is
    # the largest difference between any two runs (the variants and the golden file)
    runs = [*summaries.values(), golden]
    pairs = [spread(a, b) for i, a in enumerate(runs) for b in runs[i + 1 :]]
    worst = {k: (min if k == "grn_overlap" else max)(p[k] for p in pairs) for k in KINDS}
    return {
        "what": "spread: the largest difference of each kind of number between any two tiny "
        "end-to-end summaries, each run under one variant, and the committed golden file; "
        "per_variant: each against this machine's defaults (bench/golden_spread.py)",
        "date": datetime.date.today().isoformat(),
        "cpu": _cpu(),
        "versions": _versions(),
        "variants": {n: {"env": VARIANTS[n][0], "threads": VARIANTS[n][1]} for n in summaries},
        "per_variant": per_variant,
        "spread": worst,
        "grn_top_edges": len(reference["grn"]["top_edges"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "out" / "golden_spread")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=None, help="write the spread JSON here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "tests"))
    from golden_summary import summarize
    from scregnet.simulate import simulate

    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or names[0] != "default":
        parser.error(f"variants must start with 'default' and be among {', '.join(VARIANTS)}")
    work = args.workdir
    world = work / "world"
    if not (world / "params.yaml").exists():
        simulate(world, preset="tiny", seed=0)
    golden = json.loads(GOLDEN.read_text())
    summaries: dict[str, Any] = {}
    for name in names:  # the report is rewritten after each variant: stop at any time
        summaries[name] = summarize(_run_variant(name, world, work))
        report = _report(summaries, golden)
        text = json.dumps(report, indent=1, sort_keys=True) + "\n"
        if args.out:
            args.out.write_text(text)
    print(text)
    print("| variant | " + " | ".join(KINDS) + " | integer mismatches |")
    print("|---" * (len(KINDS) + 2) + "|")
    for n, v in report["per_variant"].items():
        cells = " | ".join(f"{v[k]:.3g}" for k in KINDS)
        print(f"| {n} | {cells} | {v['integer_mismatches']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
