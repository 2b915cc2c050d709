"""TF-binding prediction shards (workflows/scregnet.nf: predictionShards, isMinorContig), run with the
language server's Groovy on a GRCh38-style .fai: a handful of balanced groups of the primary
chromosomes, minor and mitochondrial contigs skipped by rule, unsafe contig names refused; `scregnet run`'s shards
(scregnet.pipeline.contigs) are the same. The GRN's scoring shards (grnShards) are every K of N."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from nfcheck.functions import call
from scregnet.io.genome import MITOCHONDRIAL
from scregnet.pipeline.contigs import is_minor_contig, prediction_shards, skipped_contigs

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "workflows" / "scregnet.nf"

#: GRCh38 primary chromosome lengths (UCSC hg38)
PRIMARY = {
    "chr1": 248956422, "chr2": 242193529, "chr3": 198295559, "chr4": 190214555,
    "chr5": 181538259, "chr6": 170805979, "chr7": 159345973, "chr8": 145138636,
    "chr9": 138394717, "chr10": 133797422, "chr11": 135086622, "chr12": 133275309,
    "chr13": 114364328, "chr14": 107043718, "chr15": 101991189, "chr16": 90338345,
    "chr17": 83257441, "chr18": 80373285, "chr19": 58617616, "chr20": 64444167,
    "chr21": 46709983, "chr22": 50818468, "chrX": 156040895, "chrY": 57227415,
}  # fmt: skip
#: minor contigs of GRCh38 analysis sets and Ensembl/1000 Genomes builds, one of each kind
MINOR = {
    "chr1_KI270706v1_random": 175055,
    "chrUn_KI270302v1": 2274,
    "chr6_GL000250v2_alt": 4672374,
    "chr1_KN196472v1_fix": 186494,
    "chrUn_JTFH01000001v1_decoy": 25139,
    "chrEBV": 171823,
    "HLA-A*01:01:01:01": 3503,
    "KI270728.1": 1872759,
    "GL000195.1": 182896,
    "hs37d5": 35477943,
}
#: mitochondrial genomes under every name scregnet knows (UCSC, Ensembl/NCBI)
MITO = dict.fromkeys(MITOCHONDRIAL, 16569)
FAI = [[name, length] for name, length in {**PRIMARY, **MITO, **MINOR}.items()]


def reference_shards(contigs: list[list[Any]], skip: list[str], n: int) -> list[dict[str, Any]]:
    """The documented rule, written independently: longest first, each to the lightest group
    (ties to the first), groups in .fai order."""
    kept = [
        (c[0], int(c[1]), i) for i, c in enumerate(contigs) if c[0] in PRIMARY and c[0] not in skip
    ]
    groups: list[dict[str, Any]] = [{"total": 0, "members": []} for _ in range(min(n, len(kept)))]
    for name, length, i in sorted(kept, key=lambda c: (-c[1], c[2])):
        lightest = min(range(len(groups)), key=lambda g: (groups[g]["total"], g))
        groups[lightest]["total"] += length
        groups[lightest]["members"].append((name, i))
    return [
        {"id": f"shard{k + 1}", "chroms": [m[0] for m in sorted(g["members"], key=lambda m: m[1])]}
        for k, g in enumerate(g for g in groups if g["members"])
    ]


def shard_problems(shards: list[dict[str, Any]], n: int) -> list[str]:
    problems = []
    if len(shards) > n:
        problems.append(f"{len(shards)} shards, want at most {n}")
    chroms = [c for s in shards for c in s["chroms"]]
    if sorted(chroms) != sorted(PRIMARY):
        problems.append(f"shards cover {sorted(set(chroms) ^ set(PRIMARY))} wrongly")
    totals = [sum(PRIMARY.get(c, 0) for c in s["chroms"]) for s in shards]
    if totals and max(totals) > 1.1 * (sum(totals) / max(len(totals), 1)):
        problems.append(f"unbalanced shard lengths {totals}")
    return problems


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    """Every Groovy evaluation of this module in one JVM start."""
    value = call(
        WORKFLOW,
        "[ four: predictionShards(fai, [], 4), one: predictionShards(fai, [], 1),"
        "  many: predictionShards(fai, [], 100), minor: fai.collect { c -> isMinorContig(c[0]) },"
        "  skipped: skippedContigs(fai, []), four_y: predictionShards(fai, ['chrY'], 4),"
        "  skipped_y: skippedContigs(fai, ['chrY']), grn: grnShards(4), grn_one: grnShards('1') ]",
        fai=FAI,
    )
    assert isinstance(value, dict)
    return value


def test_shards_are_a_handful_of_balanced_primary_chromosome_groups(
    results: dict[str, Any],
) -> None:
    assert shard_problems(results["four"], 4) == []
    assert results["four"] == reference_shards(FAI, [], 4)
    assert results["one"] == [{"id": "shard1", "chroms": list(PRIMARY)}]
    assert len(results["many"]) == len(PRIMARY)  # never more shards than chromosomes


def test_minor_and_mitochondrial_contigs_are_skipped_by_rule(results: dict[str, Any]) -> None:
    flagged = {c[0] for c, minor in zip(FAI, results["minor"], strict=True) if minor}
    assert flagged == set(MINOR) | set(MITO)


def test_named_contigs_are_skipped_as_well(results: dict[str, Any]) -> None:
    assert results["skipped_y"] == ["chrY", *MITO, *MINOR]
    assert all("chrY" not in s["chroms"] for s in results["four_y"])
    assert results["four_y"] == reference_shards(FAI, ["chrY"], 4)


def test_merge_is_told_every_skipped_contig(results: dict[str, Any]) -> None:
    """TFBIND_MERGE accepts peaks without a prediction on exactly the contigs no shard has."""
    assert results["skipped"] == [*MITO, *MINOR]
    in_shards = {c for s in results["four"] for c in s["chroms"]}
    assert in_shards.isdisjoint(results["skipped"])
    assert in_shards | set(results["skipped"]) == {c[0] for c in FAI}


def test_the_runner_shards_like_the_workflow(results: dict[str, Any]) -> None:
    """`scregnet run` (scregnet.pipeline.contigs) gives the same shards and skipped contigs."""
    contigs = [(c[0], int(c[1])) for c in FAI]
    for key, skip, n in (
        ("four", [], 4),
        ("one", [], 1),
        ("many", [], 100),
        ("four_y", ["chrY"], 4),
    ):
        ours = [{"id": i, "chroms": c} for i, c in prediction_shards(contigs, skip, n)]
        assert ours == results[key], key
    assert [is_minor_contig(c[0]) for c in FAI] == results["minor"]
    assert skipped_contigs(contigs, []) == results["skipped"]
    assert skipped_contigs(contigs, ["chrY"]) == results["skipped_y"]


def test_grn_scoring_shards_are_every_k_of_n(results: dict[str, Any]) -> None:
    """GRN_SCORE runs once per K = 1..N with `--shard K/N` (grn_shards; the runner's GRN_SCORE
    steps are the same, tests/python/test_nextflow_argv.py compares their command lines)."""
    assert results["grn"] == [{"id": f"shard{k}", "index": k, "count": 4} for k in range(1, 5)]
    assert results["grn_one"] == [{"id": "shard1", "index": 1, "count": 1}]


def test_unsafe_contig_names_are_refused() -> None:
    with pytest.raises(ValueError, match="chr 2 contain a quote, a comma or white space"):
        call(WORKFLOW, "predictionShards([['chr1', 10], ['chr 2', 5]], [], 2)")


def test_shard_check_fails_on_a_broken_copy(tmp_path: Path) -> None:
    """One task per contig, the fan-out of issue 16 (about 195 GPU tasks per sample on GRCh38)."""
    broken = tmp_path / "scregnet.nf"
    shutil.copy(WORKFLOW, broken)
    text = broken.read_text()
    old = "Math.max(1, Math.min(n as int, order.size()))"
    assert old in text
    broken.write_text(text.replace(old, "order.size()"))
    shards = call(broken, "predictionShards(fai, ['chrM'], 4)", fai=FAI)
    assert shard_problems(shards, 4)[0] == f"{len(PRIMARY)} shards, want at most 4"
