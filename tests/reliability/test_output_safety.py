"""Output safety: no command replaces its own inputs, and output folders keep foreign files.

An output that is the same file as an input (directly, through a symlink or a hard link, or as an
input's index) is refused before any work with one line naming it, and the input is unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from scregnet.cli.main import main as cli
from scregnet.errors import InputError
from scregnet.io.atomic import atomic_dir, manifest_name
from scregnet.io.samplesheet import read_samplesheet

Build = Callable[[dict[str, Path], Path], tuple[list[str], Path, list[Path]]]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    return dst


def _digest(paths: list[Path]) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


# Each case returns (argv, the output the error must name, inputs that must stay unchanged).
def fragments_out_is_bam(s, tmp):  # type: ignore[no-untyped-def]
    bam = _copy(s["world"] / "samples" / "sample1.bam", tmp / "a.bam")
    _copy(s["world"] / "samples" / "sample1.bam.bai", tmp / "a.bam.bai")
    return ["fragments", "--bam", str(bam), "--out", str(bam)], bam, [bam]


def fragments_out_is_bam_index(s, tmp):  # type: ignore[no-untyped-def]
    bam = _copy(s["world"] / "samples" / "sample1.bam", tmp / "a.bam")
    bai = _copy(s["world"] / "samples" / "sample1.bam.bai", tmp / "a.bam.bai")
    return ["fragments", "--bam", str(bam), "--out", str(bai)], bai, [bam, bai]


def _count(s: dict[str, Path], peaks: Path, out: Path, qc: Path | None = None) -> list[str]:
    argv = ["count", "--fragments", str(s["fragments"]), "--peaks", str(peaks)]
    argv += ["--genome", str(s["fai"]), "--min-fragments", "500", "--out", str(out)]
    return argv + (["--qc", str(qc)] if qc else [])


def count_qc_is_peaks(s, tmp):  # type: ignore[no-untyped-def]
    peaks = _copy(s["world"] / "peaks.bed", tmp / "peaks.bed")
    return _count(s, peaks, tmp / "x.h5ad", peaks), peaks, [peaks]


def count_out_is_peaks_through_symlink(s, tmp):  # type: ignore[no-untyped-def]
    peaks = _copy(s["world"] / "peaks.bed", tmp / "peaks.bed")
    link = tmp / "link.h5ad"
    link.symlink_to(peaks)
    return _count(s, peaks, link), link, [peaks]


def count_out_and_qc_collide(s, tmp):  # type: ignore[no-untyped-def]
    out = tmp / "x.h5ad"
    return _count(s, s["world"] / "peaks.bed", out, out), out, []


def cluster_out_is_atac_hard_link(s, tmp):  # type: ignore[no-untyped-def]
    atac = _copy(s["atac"], tmp / "a.h5ad")
    twin = tmp / "twin.h5ad"
    os.link(atac, twin)
    return ["cluster", "--atac", str(atac), "--out", str(twin)], twin, [atac]


def cluster_out_is_a_folder(s, tmp):  # type: ignore[no-untyped-def]
    folder = tmp / "c.h5ad"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine\n")
    return (
        ["cluster", "--atac", str(s["atac"]), "--out", str(folder)],
        folder,
        [folder / "keep.txt"],
    )


def tracks_outdir_is_an_input_file(s, tmp):  # type: ignore[no-untyped-def]
    clusters = _copy(s["clustered"], tmp / "c.h5ad")
    argv = ["tracks", "--fragments", str(s["fragments"]), "--clusters", str(clusters)]
    return [*argv, "--genome", str(s["fai"]), "--outdir", str(clusters)], clusters, [clusters]


def peaks_out_is_fragments(s, tmp):  # type: ignore[no-untyped-def]
    frag = _copy(s["fragments"], tmp / "f.tsv.gz")
    _copy(Path(str(s["fragments"]) + ".tbi"), tmp / "f.tsv.gz.tbi")
    argv = ["peaks", "--fragments", str(frag), "--genome", str(s["fai"]), "--out", str(frag)]
    return argv, frag, [frag]


def impute_out_is_rna(s, tmp):  # type: ignore[no-untyped-def]
    rna = _copy(s["world"] / "samples" / "sample1.rna.h5ad", tmp / "r.h5ad")
    return ["impute", "--rna", str(rna), "--out", str(rna)], rna, [rna]


def impute_loss_table_is_bulk(s, tmp):  # type: ignore[no-untyped-def]
    bulk = _copy(s["world"] / "bulk" / "bulk_rna.tsv", tmp / "i.loss.tsv")
    rna = s["world"] / "samples" / "sample1.rna.h5ad"
    argv = ["impute", "--rna", str(rna), "--bulk", str(bulk), "--out", str(tmp / "i.h5ad")]
    return argv, bulk, [bulk]


def _grn(
    s: dict[str, Path], labels: Path, out: Path, *extra: str, rna: Path | None = None
) -> list[str]:
    rna = rna or s["world"] / "samples" / "sample1.rna.h5ad"
    return ["grn", "train", "--rna", str(rna), "--labels", str(labels), "--out", str(out), *extra]


def _grn_score(s: dict[str, Path], out: Path, *extra: str) -> list[str]:
    rna = s["world"] / "samples" / "sample1.rna.h5ad"
    return [
        "grn",
        "score",
        "--model",
        str(s["grn_model"]),
        "--rna",
        str(rna),
        "--out",
        str(out),
        *extra,
    ]


def grn_out_is_labels(s, tmp):  # type: ignore[no-untyped-def]
    labels = _copy(s["world"] / "truth" / "grn_edges.tsv", tmp / "edges.tsv")
    return _grn(s, labels, labels), labels, [labels]


def grn_score_out_is_model(s, tmp):  # type: ignore[no-untyped-def]
    model = _copy(s["grn_model"], tmp / "m.pt")
    rna = s["world"] / "samples" / "sample1.rna.h5ad"
    argv = ["grn", "score", "--model", str(model), "--rna", str(rna), "--out", str(model)]
    return argv, model, [model]


def grn_attention_is_out(s, tmp):  # type: ignore[no-untyped-def]
    out = tmp / "g.tsv"
    return _grn_score(s, out, "--attention-out", str(out)), out, []


def grn_merge_same_shard_twice(s, tmp):  # type: ignore[no-untyped-def]
    shard = tmp / "s1.tsv"
    assert cli([*_grn_score(s, shard, "--shard", "1/1"), "--quiet"]) == 0
    argv = ["grn", "merge", "--shards", str(shard), str(shard), "--out", str(tmp / "m.tsv")]
    return argv, shard, [shard]


def grn_same_rna_twice(s, tmp):  # type: ignore[no-untyped-def]
    rna = _copy(s["world"] / "samples" / "sample1.rna.h5ad", tmp / "r.h5ad")
    link = tmp / "again.h5ad"
    link.symlink_to(rna)
    argv = _grn(s, s["world"] / "truth" / "grn_edges.tsv", tmp / "g.tsv", rna=rna)
    return [*argv, "--rna", str(link)], link, [rna]


def tfbind_train_out_is_a_sheet_file(s, tmp):  # type: ignore[no-untyped-def]
    bulk = tmp / "bulk"
    shutil.copytree(s["world"] / "bulk", bulk)
    chip = bulk / pd.read_csv(bulk / "bulk_sheet.csv").chip_bed[0]
    argv = ["tfbind", "train", "--fasta", str(s["world"] / "genome.fa")]
    return [*argv, "--bulk", str(bulk / "bulk_sheet.csv"), "--out", str(chip)], chip, [chip]


def _tfbind_train(s: dict[str, Path], tmp: Path) -> list[str]:
    argv = ["tfbind", "train", "--fasta", str(s["world"] / "genome.fa")]
    return [*argv, "--bulk", str(s["world"] / "bulk" / "bulk_sheet.csv")]


def tfbind_train_state_is_out(s, tmp):  # type: ignore[no-untyped-def]
    out = tmp / "m.pt"
    return [*_tfbind_train(s, tmp), "--out", str(out), "--state", str(out)], out, []


def tfbind_train_state_is_motifs(s, tmp):  # type: ignore[no-untyped-def]
    motifs = _copy(s["world"] / "motifs.jaspar", tmp / "my.jaspar")
    argv = [*_tfbind_train(s, tmp), "--motifs", str(motifs), "--out", str(tmp / "m.pt")]
    return [*argv, "--state", str(motifs)], motifs, [motifs]


def tfbind_merge_same_shard_twice(s, tmp):  # type: ignore[no-untyped-def]
    shard = _copy(s["clustered"], tmp / "s.chr1.h5ad")
    argv = ["tfbind", "merge", "--shards", str(shard), str(shard), "--atac", str(s["clustered"])]
    return [*argv, "--out", str(tmp / "m.h5ad")], shard, [shard]


def tfbind_merge_out_is_atac(s, tmp):  # type: ignore[no-untyped-def]
    atac = _copy(s["clustered"], tmp / "a.h5ad")
    argv = ["tfbind", "merge", "--shards", str(s["atac"]), "--atac", str(atac)]
    return [*argv, "--out", str(atac)], atac, [atac]


def simulate_outdir_is_a_file(s, tmp):  # type: ignore[no-untyped-def]
    target = tmp / "world"
    target.write_text("not a folder\n")
    return ["simulate", "--preset", "tiny", "--outdir", str(target)], target, [target]


def evaluate_out_is_a_truth_file(s, tmp):  # type: ignore[no-untyped-def]
    truth = tmp / "truth"
    shutil.copytree(s["world"] / "truth", truth)
    edges = truth / "grn_edges.tsv"
    argv = ["evaluate", "--truth", str(truth), "--results", str(s["dir"]), "--out", str(edges)]
    return argv, edges, [edges]


def report_out_is_a_result(s, tmp):  # type: ignore[no-untyped-def]
    results = tmp / "results"
    (results / "atac").mkdir(parents=True)
    clustered = _copy(s["clustered"], results / "atac" / "s1.clustered.h5ad")
    return ["report", "--results", str(results), "--out", str(clustered)], clustered, [clustered]


CASES: dict[str, Build] = {
    f.__name__: f
    for f in (
        fragments_out_is_bam,
        fragments_out_is_bam_index,
        count_qc_is_peaks,
        count_out_is_peaks_through_symlink,
        count_out_and_qc_collide,
        cluster_out_is_atac_hard_link,
        cluster_out_is_a_folder,
        tracks_outdir_is_an_input_file,
        peaks_out_is_fragments,
        impute_out_is_rna,
        impute_loss_table_is_bulk,
        grn_out_is_labels,
        grn_attention_is_out,
        grn_score_out_is_model,
        grn_merge_same_shard_twice,
        grn_same_rna_twice,
        tfbind_train_out_is_a_sheet_file,
        tfbind_train_state_is_out,
        tfbind_train_state_is_motifs,
        tfbind_merge_same_shard_twice,
        tfbind_merge_out_is_atac,
        simulate_outdir_is_a_file,
        evaluate_out_is_a_truth_file,
        report_out_is_a_result,
    )
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_never_replaces_an_input(
    name: str, staged: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, named, inputs = CASES[name](staged, tmp_path)
    before = _digest(inputs)
    listing = sorted(p.name for p in tmp_path.rglob("*"))
    code = cli([*argv, "--quiet"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 1, f"{name}: exit {code}"
    assert len(lines) == 1 and "error" in lines[0] and str(named) in lines[0], lines
    assert _digest(inputs) == before, f"{name}: an input changed"
    assert sorted(p.name for p in tmp_path.rglob("*")) == listing, f"{name}: files appeared"


# ---- output folders ---------------------------------------------------------------------------
def _tracks(s: dict[str, Path], fragments: Path, clusters: Path, outdir: Path) -> int:
    argv = ["tracks", "--fragments", str(fragments), "--clusters", str(clusters)]
    return cli([*argv, "--genome", str(s["fai"]), "--outdir", str(outdir), "--quiet"])


def test_tracks_into_a_folder_holding_its_inputs_keeps_them(
    staged: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "D"
    folder.mkdir()
    frag = _copy(staged["fragments"], folder / "s.tsv.gz")
    _copy(Path(str(staged["fragments"]) + ".tbi"), folder / "s.tsv.gz.tbi")
    clusters = _copy(staged["clustered"], folder / "s.clustered.h5ad")
    (folder / "notes.txt").write_text("mine\n")
    inputs = [frag, Path(str(frag) + ".tbi"), clusters, folder / "notes.txt"]
    before = _digest(inputs)
    assert _tracks(staged, frag, clusters, folder) == 0
    assert _digest(inputs) == before
    assert list(folder.glob("*.bw"))
    # a second run replaces its own tracks and still keeps everything else
    assert _tracks(staged, frag, clusters, folder) == 0
    assert _digest(inputs) == before
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_an_output_that_is_a_pipe_or_device_is_refused(
    staged: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outputs are written whole and renamed into place, which would replace a named pipe or a
    device node (`--out /dev/null`) with a regular file: refused, the node left as it was."""
    import stat

    from scregnet.io.outputs import check_output_file

    fifo = tmp_path / "out.h5ad"
    os.mkfifo(fifo)
    code = cli([*_count(staged, staged["world"] / "peaks.bed", fifo), "--quiet"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and "named pipe, not a regular file" in lines[0]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5ad"]
    with pytest.raises(InputError, match="a device or socket, not a regular file"):
        check_output_file("/dev/null")  # only looked at
    check_output_file(tmp_path / "absent.tsv")
    check_output_file(staged["world"] / "peaks.bed")


def test_tracks_rerun_removes_only_its_own_stale_tracks(
    staged: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "T"
    assert _tracks(staged, staged["fragments"], staged["clustered"], folder) == 0
    own = sorted(p.name for p in folder.glob("*.bw"))
    manifest = folder / manifest_name("tracks")
    assert sorted(manifest.read_text().split()) == own
    # a track of a cluster that no longer exists, written by the earlier run, and a foreign track
    (folder / "99.bw").write_bytes(b"stale")
    manifest.write_text(manifest.read_text() + "99.bw\n")
    (folder / "mine.bw").write_bytes(b"foreign")
    capsys.readouterr()
    assert _tracks(staged, staged["fragments"], staged["clustered"], folder) == 0
    assert "removing 1 file(s)" in capsys.readouterr().err  # said, not silent
    assert not (folder / "99.bw").exists()
    assert (folder / "mine.bw").read_bytes() == b"foreign"
    assert sorted(p.name for p in folder.glob("*.bw")) == sorted([*own, "mine.bw"])


def test_simulate_into_an_existing_folder_keeps_foreign_files(tmp_path: Path) -> None:
    world = tmp_path / "world"
    (world / "samples").mkdir(parents=True)
    (world / "mine.txt").write_text("keep\n")
    (world / "samples" / "mine.bam").write_bytes(b"not the simulator's")
    assert cli(["simulate", "--preset", "tiny", "--outdir", str(world), "--quiet"]) == 0
    assert (world / "mine.txt").read_text() == "keep\n"
    assert (world / "samples" / "mine.bam").read_bytes() == b"not the simulator's"
    assert (world / "params.yaml").exists() and (world / "samples" / "sample1.bam").exists()


# ---- the shared folder writer (atomic_dir) ----------------------------------------------------
def _write(folder: Path, names: dict[str, str], *, protect: tuple[Path, ...] = ()) -> None:
    with atomic_dir(folder, owner="test", protect=protect) as tmp:
        for name, text in names.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)


def test_folder_writer_keeps_foreign_and_other_commands_files(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "foreign.txt").write_text("user")
    with atomic_dir(folder, owner="other") as tmp:
        (tmp / "b.txt").write_text("other command")
    _write(folder, {"a.txt": "1", "sub/c.txt": "2"})
    _write(folder, {"a.txt": "3"})  # sub/c.txt was this command's: removed with its folder
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    assert names == [
        ".scregnet-other.files",
        ".scregnet-test.files",
        "a.txt",
        "b.txt",
        "foreign.txt",
    ]
    assert (folder / "a.txt").read_text() == "3" and (
        folder / "b.txt"
    ).read_text() == "other command"


def test_folder_writer_refuses_to_replace_an_input(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    source = folder / "a.txt"
    source.write_text("input")
    with pytest.raises(InputError, match="replace an input"):
        _write(folder, {"a.txt": "output"}, protect=(source,))
    assert source.read_text() == "input"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_folder_writer_refuses_a_foreign_folder_where_a_file_goes(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    (folder / "a.txt").mkdir(parents=True)
    (folder / "a.txt" / "keep").write_text("mine")
    with pytest.raises(InputError, match="folder stands where"):
        _write(folder, {"a.txt": "output", "b.txt": "output"})
    assert (folder / "a.txt" / "keep").read_text() == "mine" and not (folder / "b.txt").exists()


def test_folder_writer_failure_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    _write(folder, {"a.txt": "1"})
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(RuntimeError), atomic_dir(folder, owner="test") as tmp:
        (tmp / "a.txt").write_text("2")
        raise RuntimeError
    assert sorted(p.name for p in folder.iterdir()) == before
    assert (folder / "a.txt").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# ---- sample ids that would make two outputs share a path ---------------------------------------
@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["all"], "reserved"),
        (["Shards"], "reserved"),
        (["A", "a"], "ignoring case"),
        (["s1", "s1.chr1"], "followed by '.'"),
        (["S1.tfbind.h5ad", "s1"], "followed by '.'"),
        (["a/b"], "must be non-empty letters"),
        ([".hidden"], "must be non-empty letters"),
    ],
)
def test_sample_ids_that_could_share_a_path_are_refused(
    ids: list[str], message: str, staged: dict[str, Path], tmp_path: Path
) -> None:
    bam = staged["world"] / "samples" / "sample1.bam"
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("sample,bam\n" + "".join(f"{sid},{bam}\n" for sid in ids))
    with pytest.raises(InputError, match=message) as exc:
        read_samplesheet(sheet)
    assert str(sheet) in str(exc.value)


def test_distinct_sample_ids_plan_distinct_outputs(staged: dict[str, Path], tmp_path: Path) -> None:
    """Ids that pass validation, however alike, never give two steps one output path."""
    from scregnet.pipeline import plan
    from scregnet.pipeline.params import read_params

    world = staged["world"]
    bam = world / "samples" / "sample1.bam"
    rna = world / "samples" / "sample1.rna.h5ad"
    ids = ["s1", "s1_chr1", "s1-all", "S2", "s2x", "model", "s.1"]
    for sid in ids:  # each sample its own BAM (a link to the same reads)
        (tmp_path / f"{sid}.bam").symlink_to(bam)
        (tmp_path / f"{sid}.bam.bai").symlink_to(f"{bam}.bai")
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("sample,bam,rna\n" + "".join(f"{sid},{sid}.bam,{rna}\n" for sid in ids))
    params = tmp_path / "params.yaml"
    params.write_text(
        f"input: {sheet}\nfasta: {world / 'genome.fa'}\ngtf: {world / 'genes.gtf'}\n"
        f"peaks: {world / 'peaks.bed'}\nbulk_sheet: {world / 'bulk' / 'bulk_sheet.csv'}\n"
    )
    steps = plan(read_params(params), tmp_path / "results")
    outputs = [str(p).casefold() for step in steps for p in step.outputs]
    assert len(outputs) == len(set(outputs))


def test_tfbind_track_folder_keeps_foreign_files_and_makes_labels_safe(tmp_path: Path) -> None:
    """`tfbind merge|predict --out D/x.h5ad` writes tracks into D/x/ without deleting what is there;
    a cluster label with a path separator stays inside the folder."""
    import anndata as ad
    import numpy as np

    from scregnet.tfbind.api import write_outputs

    peaks = pd.DataFrame({"chrom": ["chr1", "chr1"], "start": [100, 500], "end": [300, 700]})
    result = ad.AnnData(np.zeros((2, 2), dtype=np.float32), var=pd.DataFrame(index=["TF1", "TF2"]))
    result.uns["tfbind"] = {
        "peaks": peaks,
        "binding": np.array([[[0.9, 0.1], [0.2, 0.7]], [[0.1, 0.1], [0.8, 0.6]]]),
        "clusters": np.array(["T/NK", "B"], dtype=object),
        "threshold": 0.5,
    }
    out = tmp_path / "D" / "x.h5ad"
    tracks = tmp_path / "D" / "x"
    tracks.mkdir(parents=True)
    (tracks / "notes.txt").write_text("mine\n")
    write_outputs(result, out, tracks, chrom_sizes={"chr1": 1000})
    names = sorted(p.name for p in tracks.iterdir() if not p.name.startswith("."))
    assert names == [
        "B.binding.bed",
        "B.binding.bw",
        "T_NK.binding.bed",
        "T_NK.binding.bw",
        "notes.txt",
    ]
    assert (tracks / "notes.txt").read_text() == "mine\n" and out.exists()
    assert not (tracks / "T").exists()


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_outputs_get_the_usual_permissions_under_the_umask(tmp_path: Path, mask: int) -> None:
    """Files and folders written through a temporary name end with the modes a plain write gives
    (0o666 / 0o777 less the umask), not a temporary file's private 0o600."""
    from scregnet.io.atomic import atomic_path, atomic_paths

    old = os.umask(mask)
    try:
        with atomic_path(tmp_path / "a.tsv") as tmp:
            tmp.write_text("x\n")
        with atomic_paths(tmp_path / "b.bed.gz", tmp_path / "b.bed.gz.tbi") as temps:
            for t in temps:
                t.write_bytes(b"x")
        with atomic_dir(tmp_path / "tracks", owner="test") as folder:
            (folder / "c.bw").write_bytes(b"x")
    finally:
        os.umask(old)
    for name in ("a.tsv", "b.bed.gz", "b.bed.gz.tbi"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask, name
    assert (tmp_path / "tracks").stat().st_mode & 0o777 == 0o777 & ~mask
