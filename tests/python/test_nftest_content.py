"""The content the module nf-tests assert (md5s, counts, headers, AnnData shapes and keys) is what
the same commands write on this machine: nf-test cannot run here, so each constant is reproduced
from the module's command (its script block's flags with the module test's ``ext.args``) on the
same simulated world.

The AnnData assertions use the nft-anndata plugin (``nf-test.config``): ``path(f).anndata()`` reads
the h5ad's HDF5 groups on the host and gives ``n_obs``, ``n_vars``, ``obs_names``/``var_names``,
``obs``/``var`` ``colnames``, ``obs.get(col).n_unique()`` and the key sets ``layers``, ``obsm``,
``obsp``, ``uns``. :func:`anndata_problems` reads every such assertion of an nf-test and checks it
against the file the same command wrote, read with anndata; an assertion it does not recognise is
a problem too, so none goes unchecked."""

from __future__ import annotations

import csv
import gzip
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import anndata as ad
import h5py
import pytest

from scregnet import keys
from scregnet.pipeline.params import DEFAULTS
from scregnet.pipeline.steps import STEPS

REPO = Path(__file__).resolve().parents[2]
MODULES = REPO / "modules" / "local"
MD5 = re.compile(r"encodeHex\(\)\.toString\(\) == '([0-9a-f]{32})'")


def nftest(module: str) -> str:
    return (MODULES / module / "tests" / "main.nf.test").read_text()


def ext_args(module: str, process: str) -> list[str]:
    """``ext.args`` the module test's nextflow.config gives ``process`` (split on spaces)."""
    config = (MODULES / module / "tests" / "nextflow.config").read_text()
    m = re.search(rf"withName: '{process}' \{{ ext\.args = '([^']*)' \}}", config)
    return m.group(1).split() if m else []


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def scregnet(argv: list[str], cwd: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bin" / "scregnet"), *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.fixture(scope="module")
def module_outputs(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FRAGMENTS then COUNT on sample1 of the tiny world (seed 0, as the SIMULATE setup runs)."""
    assert ext_args("fragments", "SIMULATE") == ["--seed", "0"]
    work = tmp_path_factory.mktemp("nftest")
    # FRAGMENTS keeps conf/modules.config's ext.args (the module test config does not set them)
    assert ext_args("fragments", "FRAGMENTS") == []
    bam = tiny_world / "samples" / "sample1.bam"
    argv = STEPS["FRAGMENTS"].argv(
        {"bam": bam, "fai": tiny_world / "genome.fa.fai", "out": "sample1.fragments.tsv.gz"},
        DEFAULTS,
        threads=2,
    )
    scregnet(argv, work)
    scregnet(
        [
            "count",
            "--fragments", "sample1.fragments.tsv.gz",
            "--peaks", str(tiny_world / "peaks.bed"),
            "--genome", str(tiny_world / "genome.fa.fai"),
            "--tss", str(tiny_world / "genes.gtf"),
            "--out", "sample1.atac.h5ad",
            "--qc", "sample1.qc.tsv",
            "--threads", "2",
            *ext_args("count", "COUNT"),
        ],
        work,
    )  # fmt: skip
    return work


def test_fragments_md5_is_the_commands_output(module_outputs: Path) -> None:
    (expected,) = MD5.findall(nftest("fragments"))
    with gzip.open(module_outputs / "sample1.fragments.tsv.gz", "rt") as fh:
        records = [line for line in fh.read().split("\n") if line and not line.startswith("#")]
    assert md5("\n".join(records)) == expected


def test_count_qc_content_is_the_commands_output(module_outputs: Path) -> None:
    text = nftest("count")
    (expected_md5,) = MD5.findall(text)
    header = re.search(r"readLines\(\)\[0\]\.split\('\\t'\)\.toList\(\) == \[([^\]]*)\]", text)
    cells = re.search(r"== 'True' \} == (\d+) \}", text)
    assert header and cells
    with open(module_outputs / "sample1.qc.tsv", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    assert rows[0] == re.findall(r"'([^']+)'", header.group(1))
    assert sum(r[7] == "True" for r in rows[1:]) == int(cells.group(1))
    assert md5("\n".join("\t".join(r[:3]) for r in rows)) == expected_md5


# ---- AnnData outputs (nft-anndata assertions) ------------------------------------------------

#: the groups nft-anndata requires at the file's root (it refuses a file that lacks one; X may be absent)
PLUGIN_GROUPS = ("layers", "obs", "var", "obsm", "varm", "obsp", "varp", "uns")

#: what each stage's AnnData promises (its module docstring; the keys from scregnet.keys): the
#: module's main.nf.test must assert these keys, every test that reads the AnnData only existing ones
CONTRACT: dict[str, dict[str, list[str]]] = {
    "count": {
        # scregnet.atac.count: obs = the per-cell QC (scregnet.atac.qc)
        "obs.colnames": [
            "n_fragments", "n_reads", "duplicate_rate", "frip", "nucleosome_signal",
            "tss_enrichment",
        ],
        "obsm": ["tiles"],
        "uns": ["count", "tiles"],
    },
    "cluster": {"obs.colnames": [keys.CLUSTER], "obsm": [keys.LSI, keys.UMAP, "tiles"]},
    "impute": {
        "layers": [keys.IMPUTED, keys.IMPUTED_EXPECTED, keys.IMPUTED_DETECTED, keys.FILL_RULE],
        "var.colnames": [keys.IMPUTED],
        "uns": [keys.IMPUTE_UNS],
    },
    "tfbind_predict": {"uns": [keys.TFBIND_SHARD]},
    "tfbind_merge": {
        "layers": [keys.SCFAN_ACTIVITY],
        "obsm": [keys.CHROMVAR],
        "uns": [keys.TFBIND_UNS],
    },
}  # fmt: skip

ASSERTION = re.compile(r"assert (h5ad\..*?) \}(?:,)?\s*$", re.MULTILINE)
SHAPE = re.compile(r"h5ad\.(n_obs|n_vars) == (\d+)")
KEYS = re.compile(
    r"h5ad\.(obs\.colnames|var\.colnames|layers|obsm|obsp|uns)(?:\.toList\(\))?"
    r"\.containsAll\(\[([^\]]*)\]\)"
)
NAMES = re.compile(r"h5ad\.(obs_names|var_names)\.toList\(\) == \[([^\]]*)\]")
SORTED = re.compile(
    r"h5ad\.(obs_names|var_names)\.toList\(\) == h5ad\.\1\.toList\(\)\.sort\(false\)"
)
PREFIX = re.compile(r"h5ad\.(obs_names|var_names)\.every \{ n -> n\.startsWith\('([^']*)'\) \}")
NUNIQUE = re.compile(r"h5ad\.obs\.get\('(\w+)'\)\.n_unique\(\) > (\d+)")


def quoted(items: str) -> list[str]:
    return re.findall(r"'([^']*)'", items)


def anndata_keys(adata: ad.AnnData) -> dict[str, list[str]]:
    return {
        "obs.colnames": list(adata.obs.columns),
        "var.colnames": list(adata.var.columns),
        "layers": list(adata.layers),
        "obsm": list(adata.obsm),
        "obsp": list(adata.obsp),
        "uns": list(adata.uns),
    }


def asserted_keys(text: str) -> dict[str, list[str]]:
    """The keys an nf-test asserts, per field (``containsAll`` lists)."""
    found: dict[str, list[str]] = {}
    for field, items in KEYS.findall(text):
        found.setdefault(field, []).extend(quoted(items))
    return found


def anndata_problems(text: str, h5ad: Path) -> list[str]:
    """Every ``h5ad.…`` assertion of an nf-test that the AnnData file contradicts, or that is not
    one of the forms checked here."""
    adata = ad.read_h5ad(h5ad)
    names = {"obs_names": list(adata.obs_names), "var_names": list(adata.var_names)}
    present = anndata_keys(adata)
    problems = []
    with h5py.File(h5ad, "r") as fh:
        missing = [g for g in PLUGIN_GROUPS if g not in fh]
    if missing:
        problems.append(f"{h5ad.name}: nft-anndata cannot open it (no {', '.join(missing)})")
    for line in ASSERTION.findall(text):
        if m := SHAPE.fullmatch(line):
            got = getattr(adata, m.group(1))
            if got != int(m.group(2)):
                problems.append(f"{line}: the command wrote {m.group(1)} = {got}")
        elif m := KEYS.fullmatch(line):
            absent = [k for k in quoted(m.group(2)) if k not in present[m.group(1)]]
            if absent:
                problems.append(f"{line}: {m.group(1)} has no {absent}")
        elif m := NAMES.fullmatch(line):
            if quoted(m.group(2)) != names[m.group(1)]:
                problems.append(f"{line}: the command wrote {names[m.group(1)]}")
        elif m := SORTED.fullmatch(line):
            if names[m.group(1)] != sorted(names[m.group(1)]):
                problems.append(f"{line}: {m.group(1)} not sorted")
        elif m := PREFIX.fullmatch(line):
            if not all(n.startswith(m.group(2)) for n in names[m.group(1)]):
                problems.append(f"{line}: not every name starts with {m.group(2)!r}")
        elif m := NUNIQUE.fullmatch(line):
            got = adata.obs[m.group(1)].nunique()
            if not got > int(m.group(2)):
                problems.append(f"{line}: {m.group(1)} has {got} distinct values")
        else:
            problems.append(f"{line}: not an assertion this check reproduces")
    return problems


@pytest.fixture(scope="module")
def h5ad_outputs(module_outputs: Path, tiny_world: Path) -> dict[str, Path]:
    """CLUSTER, IMPUTE, TFBIND_TRAIN, TFBIND_PREDICT (the predict test's chr1 shard and the merge
    test's all-chromosome shard) and TFBIND_MERGE after COUNT, as the module tests run them: each
    module's script-block flags, then the module test's ``ext.args`` where it sets them, else
    conf/modules.config's (``--seed`` with the default seed)."""
    work = module_outputs
    seed = ["--seed", str(DEFAULTS["seed"])]
    for module, process in [
        ("cluster", "CLUSTER"), ("tfbind_predict", "TFBIND_PREDICT"),
        ("tfbind_merge", "TFBIND_MERGE"),
    ]:  # fmt: skip
        assert ext_args(module, process) == []
    world = {
        name: str(tiny_world / name) for name in ("genome.fa", "genome.fa.fai", "motifs.jaspar")
    }
    scregnet(
        ["cluster", "--atac", "sample1.atac.h5ad", "--out", "sample1.clustered.h5ad",
         "--threads", "2", *seed],
        work,
    )  # fmt: skip
    scregnet(
        ["impute", "--rna", str(tiny_world / "samples" / "sample1.rna.h5ad"),
         "--out", "sample1.imputed.h5ad", "--device", "cpu", "--threads", "2",
         *ext_args("impute", "IMPUTE")],
        work,
    )  # fmt: skip
    scregnet(
        ["tfbind", "train", "--fasta", world["genome.fa"],
         "--bulk", str(tiny_world / "bulk" / "bulk_sheet.csv"), "--out", "model.pt",
         "--state", "tfbind_train.state", "--device", "cpu", "--threads", "2",
         "--motifs", world["motifs.jaspar"], *ext_args("tfbind_train", "TFBIND_TRAIN")],
        work,
    )  # fmt: skip
    chroms = {"predict": "chr1", "merge": "chr1,chr2,chr3,chr4,chr5,chr6"}
    for name, contigs in chroms.items():
        (work / name).mkdir()
        scregnet(
            ["tfbind", "predict", "--model", "model.pt", "--fasta", world["genome.fa"],
             "--atac", "sample1.clustered.h5ad", "--fragments", "sample1.fragments.tsv.gz",
             "--chrom", contigs, "--motifs", world["motifs.jaspar"],
             "--out", f"{name}/sample1.shard1.tfbind.h5ad", "--device", "cpu",
             "--threads", "2", *seed],
            work,
        )  # fmt: skip
    scregnet(
        ["tfbind", "merge", "--shards", "merge/sample1.shard1.tfbind.h5ad",
         "--atac", "sample1.clustered.h5ad", "--skip-chroms", "chrM",
         "--out", "tfbind/sample1.tfbind.h5ad", "--tracks-outdir", "tfbind/sample1",
         "--threads", "2", *seed],
        work,
    )  # fmt: skip
    return {
        "count": work / "sample1.atac.h5ad",
        "cluster": work / "sample1.clustered.h5ad",
        "impute": work / "sample1.imputed.h5ad",
        "tfbind_predict": work / "predict" / "sample1.shard1.tfbind.h5ad",
        "tfbind_merge": work / "tfbind" / "sample1.tfbind.h5ad",
    }


def nftest_files(module: str) -> list[Path]:
    tests = MODULES / module / "tests"
    return [p for p in (tests / "main.nf.test", tests / "gpu.nf.test") if p.exists()]


def test_h5ad_modules_are_the_contract() -> None:
    """Every module that emits an .h5ad has a contract here, and only those."""
    emits = {
        m.parent.name
        for m in MODULES.glob("*/main.nf")
        if re.search(r'path\("[^"]*\.h5ad"\)', m.read_text())
    }
    assert emits == set(CONTRACT)


@pytest.mark.slow
def test_nftest_anndata_assertions_are_the_commands_output(h5ad_outputs: dict[str, Path]) -> None:
    for module, contract in CONTRACT.items():
        for path in nftest_files(module):
            text = path.read_text()
            assert "anndata()" in text, f"{path}: reads no AnnData"
            assert anndata_problems(text, h5ad_outputs[module]) == [], path
        main = asserted_keys(nftest(module))
        for field, wanted in contract.items():
            assert set(wanted) <= set(main.get(field, [])), (module, field)
        assert SHAPE.search(nftest(module)), f"{module}: asserts no shape"


@pytest.mark.slow
def test_anndata_check_fails_on_a_broken_copy(h5ad_outputs: dict[str, Path]) -> None:
    """A wrong shape, a misspelt key, the wrong TF order, an unsorted claim and an assertion the
    check does not know: each is reported."""
    text = nftest("tfbind_merge")
    broken = (
        text.replace("h5ad.n_obs == 85", "h5ad.n_obs == 84")
        .replace("[ 'chromvar' ]", "[ 'chromVAR' ]")
        .replace("[ 'CTCF', 'NRF1',", "[ 'NRF1', 'CTCF',")
        .replace(
            "{ assert h5ad.uns.containsAll",
            "{ assert h5ad.var_names.toList() == h5ad.var_names.toList().sort(false) },\n"
            "                { assert h5ad.n_vars >= 6 },\n"
            "                { assert h5ad.uns.containsAll",
        )
    )
    problems = anndata_problems(broken, h5ad_outputs["tfbind_merge"])
    assert [p.split(": ", 1)[1] for p in problems] == [
        "the command wrote n_obs = 85",
        "the command wrote ['CTCF', 'NRF1', 'SPI1', 'PAX5', 'CEBPA', 'TCF7']",
        "obsm has no ['chromVAR']",
        "var_names not sorted",
        "not an assertion this check reproduces",
    ]
    assert anndata_problems(text, h5ad_outputs["tfbind_merge"]) == []
