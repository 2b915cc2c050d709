"""``scregnet count``: MAESTRO and SnapATAC2 golden matrices, QC by hand, every flag, bad inputs."""

from __future__ import annotations

import gzip
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pysam
import pytest
import scipy.sparse as sp

from scregnet.atac.count import count_fragments, tile_names
from scregnet.cli import main as cli
from scregnet.io.bed import read_bed
from scregnet.io.h5ad import read_h5ad


def write_fragments(
    path: Path, rows: list[tuple[str, int, int, str, int]], *, index: bool = True
) -> Path:
    plain = path.with_suffix("")
    plain.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    if index:
        pysam.tabix_index(str(path), preset="bed", force=True)
    return path


def run(*argv: str | Path) -> int:
    return cli.main(["count", "--quiet", *map(str, argv)])


@pytest.fixture(scope="module")
def maestro(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """MAESTRO's chr22 fragments, sorted by position (the shipped file is sorted by barcode)."""
    d = testdata / "maestro_chr22"
    frame = pd.read_csv(d / "test.fragments.tsv.gz", sep="\t", header=None)
    frame = frame.sort_values([0, 1, 2, 3], kind="stable")
    out = tmp_path_factory.mktemp("maestro") / "frags.tsv.gz"
    write_fragments(out, list(frame.itertuples(index=False, name=None)))
    with h5py.File(d / "test_peak_count.h5") as h5:
        m = h5["matrix"]
        shape = tuple(m["shape"][:])
        expected = sp.csc_matrix((m["data"][:], m["indices"][:], m["indptr"][:]), shape=shape)
        barcodes = [b.decode() for b in m["barcodes"][:]]
        features = [f.decode() for f in m["features"]["name"][:]]
    genome = out.parent / "chr22.sizes"
    genome.write_text("chr22\t50818468\n")
    barcode_file = out.parent / "barcodes.txt"
    barcode_file.write_text("\n".join(barcodes) + "\n")
    return {
        "fragments": out,
        "peaks": d / "test.peak.narrowPeak.gz",
        "genome": genome,
        "expected": expected.T.tocsr(),
        "barcodes": barcodes,
        "barcode_file": barcode_file,
        "features": features,
    }


def test_maestro_binary_peak_matrix_golden(maestro: dict[str, object], tmp_path: Path) -> None:
    out = tmp_path / "m.h5ad"
    code = run(
        "--fragments", maestro["fragments"], "--peaks", maestro["peaks"], "--genome", maestro["genome"],
        "--out", out, "--strategy", "fragment", "--min-fragments", "0", "--barcodes", maestro["barcode_file"],
    )  # fmt: skip
    assert code == 0
    adata = read_h5ad(out)
    assert list(adata.obs_names) == maestro["barcodes"]
    assert [
        f"{c}_{s}_{e}"
        for c, s, e in zip(adata.var.chrom, adata.var.start, adata.var.end, strict=True)
    ] == maestro["features"]
    assert adata.X.dtype == np.int32 and sp.isspmatrix_csr(adata.X)
    binary = (adata.X > 0).astype(np.float32)
    expected = maestro["expected"]
    assert binary.shape == expected.shape  # type: ignore[attr-defined]
    assert (binary != expected).nnz == 0
    assert binary.nnz == 29773
    # the DESIGN.md contract
    for column in ("n_fragments", "tss_enrichment", "frip", "nucleosome_signal", "duplicate_rate"):
        assert column in adata.obs
    assert list(adata.var.columns[:3]) == ["chrom", "start", "end"]
    assert adata.obsm["tiles"].shape == (100, (50818468 + 4999) // 5000)


def test_snapatac2_tile_and_peak_matrices_equal(maestro: dict[str, object], tmp_path: Path) -> None:
    snap = pytest.importorskip("snapatac2")
    sizes = {"chr22": 50818468}
    peaks = read_bed(maestro["peaks"])  # type: ignore[arg-type]
    bed = tmp_path / "p.bed"
    peaks[["chrom", "start", "end"]].to_csv(bed, sep="\t", header=False, index=False)
    theirs = snap.pp.import_fragments(
        str(maestro["fragments"]),
        chrom_sizes=sizes,
        file=None,
        min_num_fragments=0,
        sorted_by_barcode=False,
    )
    for strategy in ("paired-insertion", "insertion", "fragment"):
        snap.pp.add_tile_matrix(theirs, bin_size=500, counting_strategy=strategy)
        peak_matrix = snap.pp.make_peak_matrix(
            theirs, peak_file=str(bed), counting_strategy=strategy
        )
        ours = count_fragments(
            maestro["fragments"],
            peaks,
            sizes,
            tile_size=500,
            strategy=strategy,
            min_fragments=0,  # type: ignore[arg-type]
        ).adata[list(theirs.obs_names)]
        assert tile_names(ours) == list(theirs.var_names)
        assert abs(ours.obsm["tiles"] - theirs.X).sum() == 0
        assert list(ours.var_names) == list(peak_matrix.var_names)
        assert abs(ours.X - peak_matrix.X).sum() == 0
        np.testing.assert_array_equal(ours.obs["n_fragments"], theirs.obs["n_fragment"])
        np.testing.assert_allclose(ours.obs["duplicate_rate"], theirs.obs["frac_dup"])


# --- a hand-checked toy ---------------------------------------------------------------------

GENOME = "chr1\t20000\nchr2\t10000\nchrM\t1000\n"
PEAKS = "chr1\t1000\t1500\tp1\nchr1\t1400\t2000\tp2\nchr2\t500\t700\tp3\n"
GTF = 'chr1\tt\tgene\t5001\t6000\t.\t+\t.\tgene_id "g1"; gene_name "G1";\n'
TOY = [
    ("chr1", 1100, 1200, "A", 3),  # inside p1: ins 1100, 1199
    ("chr1", 1300, 1700, "B", 1),  # ins 1300 in p1, 1699 in p2
    ("chr1", 1450, 1460, "A", 1),  # p1 & p2 overlap zone: both insertions in p1 and p2
    ("chr1", 4990, 5010, "B", 1),  # TSS window (TSS at 5000): both insertions
    ("chr1", 6950, 6960, "B", 1),  # flank 1901..2000 downstream: both insertions
    ("chr1", 9000, 9400, "C", 2),
    ("chr2", 100, 600, "C", 1),  # ins 599 in p3
    ("chrM", 10, 200, "C", 5),
]


@pytest.fixture
def toy(tmp_path: Path) -> dict[str, Path]:
    frags = write_fragments(tmp_path / "toy.tsv.gz", TOY)
    (tmp_path / "g.sizes").write_text(GENOME)
    (tmp_path / "p.bed").write_text(PEAKS)
    (tmp_path / "genes.gtf").write_text(GTF)
    return {
        "fragments": frags,
        "genome": tmp_path / "g.sizes",
        "peaks": tmp_path / "p.bed",
        "gtf": tmp_path / "genes.gtf",
    }


def toy_run(toy: dict[str, Path], tmp_path: Path, *extra: str) -> object:
    out = tmp_path / "toy.h5ad"
    args = [
        "--fragments",
        toy["fragments"],
        "--peaks",
        toy["peaks"],
        "--genome",
        toy["genome"],
        "--out",
        out,
    ]
    assert run(*args, "--min-fragments", "1", *extra) == 0
    return read_h5ad(out)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("fragment", {"A": [2, 1, 0], "B": [1, 1, 0], "C": [0, 0, 1]}),
        ("insertion", {"A": [4, 2, 0], "B": [1, 1, 0], "C": [0, 0, 1]}),
        ("paired-insertion", {"A": [2, 1, 0], "B": [1, 1, 0], "C": [0, 0, 1]}),
    ],
)
def test_strategies_on_a_toy(
    toy: dict[str, Path], tmp_path: Path, strategy: str, expected: dict[str, list[int]]
) -> None:
    adata = toy_run(toy, tmp_path, "--strategy", strategy)
    assert list(adata.obs_names) == ["A", "B", "C"]  # type: ignore[attr-defined]
    assert adata.X.toarray().tolist() == [expected[b] for b in "ABC"]  # type: ignore[attr-defined]


def test_toy_qc_by_hand(toy: dict[str, Path], tmp_path: Path) -> None:
    adata = toy_run(toy, tmp_path, "--tss", str(toy["gtf"]), "--tile-size", "1000")
    obs = adata.obs  # type: ignore[attr-defined]
    assert obs.n_fragments.tolist() == [2, 3, 2]  # chrM excluded
    assert obs.duplicate_rate.tolist() == pytest.approx([1 - 2 / 4, 0.0, 1 - 2 / 3])
    assert obs.frip.tolist() == pytest.approx([1.0, 1 / 3, 0.5])
    # lengths: A 100, 10 -> 0 mono; B 400, 20, 10 (+400) -> mono 0 (400 >= 294), nfr 2
    assert obs.nucleosome_signal.tolist() == pytest.approx([0.0, 0.0, 0.0])
    # B: 2 insertions in the +-50 window, 2 in the flanks: 2 * (2/101) / max(2/100, 0.2)
    assert obs.tss_enrichment["B"] == pytest.approx(2 * (2 / 101) / 0.2)
    assert obs.tss_enrichment["A"] == 0.0
    tiles = adata.obsm["tiles"]  # type: ignore[attr-defined]
    assert tiles.shape == (3, 20 + 10)
    names = tile_names(adata)  # type: ignore[arg-type]
    assert names[1] == "chr1:1000-2000" and names[20] == "chr2:0-1000"
    assert tiles[0, 1] == 2  # A: both fragments in tile 1000-2000 (paired-insertion: once each)


def test_nucleosome_signal_counts_mono_over_nfr(tmp_path: Path) -> None:
    rows = [
        ("chr1", 100 + i, 100 + i + n, "X", 1) for i, n in enumerate([50, 60, 200, 250, 150, 400])
    ]
    frags = write_fragments(tmp_path / "n.tsv.gz", rows)
    (tmp_path / "g.sizes").write_text("chr1\t5000\n")
    (tmp_path / "p.bed").write_text("chr1\t0\t1000\n")  # every fragment in the one peak
    out = tmp_path / "n.h5ad"
    assert (
        run(
            "--fragments",
            frags,
            "--peaks",
            tmp_path / "p.bed",
            "--genome",
            tmp_path / "g.sizes",
            "--out",
            out,
            "--min-fragments",
            "1",
        )
        == 0
    )
    assert read_h5ad(out).obs.nucleosome_signal["X"] == pytest.approx(3 / 2)


def test_flags_change_the_output(toy: dict[str, Path], tmp_path: Path) -> None:
    assert "tiles" not in toy_run(toy, tmp_path, "--tile-size", "0").obsm  # type: ignore[attr-defined]
    assert toy_run(toy, tmp_path, "--tile-size", "5000").obsm["tiles"].shape == (3, 4 + 2)  # type: ignore[attr-defined]
    assert list(toy_run(toy, tmp_path, "--min-fragments", "3").obs_names) == ["B"]  # type: ignore[attr-defined]
    wl = tmp_path / "wl.txt"
    wl.write_text("C\nA\nZ\n")
    assert list(toy_run(toy, tmp_path, "--barcodes", str(wl)).obs_names) == ["C", "A"]  # type: ignore[attr-defined]
    with_m = toy_run(toy, tmp_path, "--exclude-chroms", "")
    assert with_m.obs.n_fragments["C"] == 3  # type: ignore[attr-defined]
    assert np.isnan(toy_run(toy, tmp_path).obs.tss_enrichment).all()  # type: ignore[attr-defined]
    qc = tmp_path / "qc.tsv"
    toy_run(toy, tmp_path, "--qc", str(qc), "--min-fragments", "3")
    table = pd.read_csv(qc, sep="\t", index_col=0)
    assert table.is_cell.to_dict() == {"A": False, "B": True, "C": False}


def test_knee_calls_the_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    rows = []
    cells = [f"cell{i:03d}" for i in range(60)]
    noise = [f"bg{i:04d}" for i in range(600)]
    for bc in cells:
        rows += [
            ("chr1", int(p), int(p) + 150, bc, 1)
            for p in rng.integers(0, 90_000, rng.integers(300, 600))
        ]
    for bc in noise:
        rows += [
            ("chr1", int(p), int(p) + 150, bc, 1)
            for p in rng.integers(0, 90_000, rng.integers(1, 15))
        ]
    rows.sort(key=lambda r: (r[1], r[2], r[3]))
    frags = write_fragments(tmp_path / "k.tsv.gz", rows)
    (tmp_path / "g.sizes").write_text("chr1\t100000\n")
    (tmp_path / "p.bed").write_text("chr1\t0\t5000\n")
    out = tmp_path / "k.h5ad"
    args = (
        "--fragments",
        frags,
        "--peaks",
        tmp_path / "p.bed",
        "--genome",
        tmp_path / "g.sizes",
        "--out",
        out,
    )
    assert run(*args, "--min-fragments", "knee") == 0
    assert sorted(read_h5ad(out).obs_names) == cells
    assert "knee" not in capsys.readouterr().err  # a clear cliff: no warning
    assert run(*args, "--min-fragments", "5") == 0
    assert read_h5ad(out).n_obs > 60


@pytest.mark.parametrize(
    ("barcodes", "words"),
    [
        # two real cells: no curve to find a cliff on
        ({"A": 400, "B": 300}, "only 2 barcodes, too few"),
        # 30 barcodes of one fragment each: no background tail, all called
        ({f"b{i:02d}": 1 for i in range(30)}, "no cliff (no background barcodes)"),
    ],
)
def test_knee_without_a_cliff_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], barcodes: dict[str, int], words: str
) -> None:
    rows = sorted(
        ("chr1", 10 * i, 10 * i + 150, bc, 1) for bc, n in barcodes.items() for i in range(n)
    )
    frags = write_fragments(tmp_path / "k.tsv.gz", rows)
    (tmp_path / "g.sizes").write_text("chr1\t100000\n")
    (tmp_path / "p.bed").write_text("chr1\t0\t5000\n")
    out = tmp_path / "k.h5ad"
    args = ("--fragments", frags, "--peaks", tmp_path / "p.bed", "--genome", tmp_path / "g.sizes")
    assert run(*args, "--out", out, "--min-fragments", "knee") == 0
    err = capsys.readouterr().err
    assert words in err and "give --min-fragments N" in err


def test_threads_same_result(maestro: dict[str, object], tmp_path: Path) -> None:
    peaks = read_bed(maestro["peaks"])  # type: ignore[arg-type]
    sizes = {"chr22": 50818468}
    one = count_fragments(maestro["fragments"], peaks, sizes, min_fragments=0).adata  # type: ignore[arg-type]
    two = count_fragments(maestro["fragments"], peaks, sizes, min_fragments=0, threads=2).adata  # type: ignore[arg-type]
    assert (one.X != two.X).nnz == 0 and list(one.obs_names) == list(two.obs_names)


# --- bad input ------------------------------------------------------------------------------


def fails(capsys: pytest.CaptureFixture[str], out: Path, code: int, *words: str) -> None:
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for w in words:
        assert w in err[0], err[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_bad_inputs(
    toy: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bad.h5ad"
    base = {
        "--fragments": toy["fragments"],
        "--peaks": toy["peaks"],
        "--genome": toy["genome"],
        "--out": out,
    }

    def go(**replace: object) -> int:
        args = {
            **base,
            **{k.replace("_", "-"): v for k, v in replace.items() if k.startswith("--")},
        }
        flat = [str(x) for kv in args.items() for x in kv]
        return run(*flat, "--min-fragments", str(replace.get("min_fragments", 1)))

    # chromosome naming: genome '1' vs fragments/peaks 'chr1'
    ensembl = tmp_path / "ensembl.sizes"
    ensembl.write_text("1\t20000\n2\t10000\nMT\t1000\n")
    fails(capsys, out, go(**{"--genome": ensembl}), "p.bed", "chr1", "vs 1")
    peaks_ok = tmp_path / "p1.bed"
    peaks_ok.write_text("1\t1000\t1500\n")
    fails(
        capsys, out, go(**{"--genome": ensembl, "--peaks": peaks_ok}), "toy.tsv.gz", "chr1", "vs 1"
    )
    # a GTF of another naming style: every cell's TSS enrichment would be 0
    ensembl_gtf = tmp_path / "ensembl.gtf"
    ensembl_gtf.write_text(toy["gtf"].read_text().replace("chr1\t", "1\t"))
    assert "chr1\t" in toy["gtf"].read_text()
    fails(capsys, out, go(**{"--tss": ensembl_gtf}), "ensembl.gtf", "GTF", "1 vs chr1")
    # unsorted fragments (no index possible)
    unsorted = write_fragments(
        tmp_path / "unsorted.tsv.gz", [TOY[1], TOY[0], *TOY[2:]], index=False
    )
    fails(capsys, out, go(**{"--fragments": unsorted}), "unsorted.tsv.gz", "not sorted")
    # a chromosome appearing twice
    split = write_fragments(tmp_path / "split.tsv.gz", [TOY[0], TOY[6], TOY[1]], index=False)
    fails(capsys, out, go(**{"--fragments": split}), "split.tsv.gz", "not sorted")
    # truncated gzip
    data = toy["fragments"].read_bytes()
    big = write_fragments(
        tmp_path / "big.tsv.gz", [("chr1", i, i + 100, f"B{i % 97}", 1) for i in range(0, 19000, 1)]
    )
    truncated = tmp_path / "trunc.tsv.gz"
    truncated.write_bytes(big.read_bytes()[: len(big.read_bytes()) // 2])
    fails(capsys, out, go(**{"--fragments": truncated}), "trunc.tsv.gz", "gzip")
    assert data  # the toy file itself is intact
    # empty peaks, inverted peak
    empty = tmp_path / "empty.bed"
    empty.write_text("")
    fails(capsys, out, go(**{"--peaks": empty}), "empty.bed", "no intervals")
    inverted = tmp_path / "inv.bed"
    inverted.write_text("chr1\t100\t200\nchr1\t500\t500\n")
    fails(capsys, out, go(**{"--peaks": inverted}), "inv.bed", "end <= start")
    # peaks that no cell's fragment overlaps: on the excluded chrM, or where no fragment lies
    on_m = tmp_path / "chrM.bed"
    on_m.write_text("chrM\t0\t500\tm1\nchrM\t600\t900\tm2\n")
    fails(capsys, out, go(**{"--peaks": on_m}), "chrM.bed", "no fragment of the 3 cells",
          "2 of them lie on excluded chromosomes")  # fmt: skip
    far = tmp_path / "far.bed"
    far.write_text("chr2\t5000\t6000\n")
    fails(capsys, out, go(**{"--peaks": far}), "far.bed", "overlaps any of its 1 peaks",
          "another genome or region")  # fmt: skip
    # zero cells pass
    fails(capsys, out, go(min_fragments=100), "toy.tsv.gz", "no cell passes", "best barcode has 3")
    # not gzip at all
    plain = tmp_path / "plain.tsv.gz"
    plain.write_text("chr1\t1\t2\tA\t1\n")
    fails(capsys, out, go(**{"--fragments": plain}), "plain.tsv.gz", "gzip")
    # missing file
    fails(
        capsys,
        out,
        go(**{"--fragments": tmp_path / "none.tsv.gz"}),
        "none.tsv.gz",
        "does not exist",
    )


def test_gzip_reading_of_header_lines(tmp_path: Path) -> None:
    path = tmp_path / "h.tsv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("# id=x\n# description=y\nchr1\t10\t100\tA\t1\nchr1\t20\t90\tA\t2\n")
    (tmp_path / "g.sizes").write_text("chr1\t1000\n")
    (tmp_path / "p.bed").write_text("chr1\t0\t50\n")
    result = count_fragments(path, read_bed(tmp_path / "p.bed"), {"chr1": 1000}, min_fragments=1)
    assert result.adata.obs.n_fragments.tolist() == [2]
    assert result.adata.obs.duplicate_rate.tolist() == pytest.approx([1 / 3])


def test_four_column_fragments_count_once(tmp_path: Path) -> None:
    path = tmp_path / "four.tsv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("chr1\t10\t100\tA\nchr1\t20\t90\tA\nchr1\t30\t80\tB\n")
    result = count_fragments(
        path, read_bed_text(tmp_path, "chr1\t0\t50\n"), {"chr1": 1000}, min_fragments=1
    )
    assert result.adata.obs.n_fragments.tolist() == [2, 1]
    assert result.adata.obs.duplicate_rate.tolist() == [0.0, 0.0]
    assert result.adata.X.toarray().ravel().tolist() == [2, 1]


def read_bed_text(tmp_path: Path, text: str) -> pd.DataFrame:
    bed = tmp_path / "p.bed"
    bed.write_text(text)
    return read_bed(bed)


def _brute_force(
    frags: list[tuple[str, int, int, str, int]],
    peaks: list[tuple[str, int, int]],
    tss: dict[str, list[int]],
    sizes: dict[str, int],
    tile_size: int,
    strategy: str,
) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int], dict[str, list[int]]]:
    """Peak and tile counts per (barcode, column) and QC sums per barcode, fragment by fragment."""
    offsets, total = {}, 0
    for c, n in sizes.items():
        offsets[c] = total
        total += (n + tile_size - 1) // tile_size
    peak_counts: dict[tuple[str, int], int] = {}
    tile_counts: dict[tuple[str, int], int] = {}
    qc: dict[str, list[int]] = {}
    for c, s, e, b, n in frags:
        ins = [s, e - 1]
        hit = [j for j, (pc, ps, pe) in enumerate(peaks) if pc == c and ps < e and pe > s]
        if strategy == "fragment":
            pk = hit
        else:
            per = [[j for j in hit if peaks[j][1] <= x < peaks[j][2]] for x in ins]
            pk = per[0] + per[1] if strategy == "insertion" else sorted(set(per[0] + per[1]))
        n_tiles = (sizes[c] + tile_size - 1) // tile_size
        if strategy == "fragment":
            tl = list(range(s // tile_size, (e - 1) // tile_size + 1))
        else:
            tl = [x // tile_size for x in ins]
            tl = tl if strategy == "insertion" else sorted(set(tl))
        for j in pk:
            peak_counts[b, j] = peak_counts.get((b, j), 0) + 1
        for t in tl:
            if t < n_tiles:
                key = (b, offsets[c] + t)
                tile_counts[key] = tile_counts.get(key, 0) + 1
        sites = np.array(sorted(set(tss.get(c, []))), dtype=np.int64)
        d = np.abs(np.array(ins)[:, None] - sites[None, :])
        row = qc.setdefault(b, [0] * 7)
        length = e - s
        for k, v in enumerate(
            [
                1,
                n,
                int(bool(hit)),
                int(length < 147),
                int(147 <= length < 294),
                int((d <= 50).sum()),
                int(((d >= 1901) & (d <= 2000)).sum()),
            ]
        ):
            row[k] += v
    return peak_counts, tile_counts, qc


@pytest.mark.parametrize("strategy", ["fragment", "insertion", "paired-insertion"])
def test_counts_equal_brute_force(strategy: str, tmp_path: Path) -> None:
    """Matrices and QC sums of ``count`` equal a per-fragment brute force: overlapping, nested,
    touching and 1 bp peaks, fragments spanning many peaks (more pairs than the kernel's first
    buffers hold), fragments hanging over the chromosome end, insertions near several TSSs, at
    window and flank edges, a chromosome without peaks or TSSs; with and without a whitelist."""
    from scregnet.io.gtf import read_tss

    rng = np.random.default_rng(7)
    sizes = {"chr1": 60_000, "chr2": 30_000, "chr3": 9_000}
    peaks = []
    for c, n in (("chr1", 150), ("chr2", 300)):
        starts = rng.integers(0, sizes[c] - 2000, n)
        widths = rng.choice([1, 50, 300, 1500], n)
        peaks += [(c, int(a), int(a + w)) for a, w in zip(starts, widths, strict=True)]
    peaks += [("chr1", 5000, 5100), ("chr1", 5100, 5200), ("chr1", 5000, 5200)]  # touching, nested
    peaks = sorted(set(peaks))
    barcodes = [f"BC{i:03d}" for i in range(40)]
    frags = []
    for c, n in (("chr1", 3000), ("chr2", 40), ("chr3", 200)):
        starts = np.sort(rng.integers(0, sizes[c] - 10, n))
        widths = rng.choice([1, 2, 60, 150, 200, 400, 3000], n)
        if c == "chr2":
            widths[:] = 20_000  # each over ~200 peaks
        for a, w in zip(starts.tolist(), widths.tolist(), strict=True):
            frags.append((c, a, a + w, barcodes[rng.integers(0, 40)], int(rng.integers(1, 4))))
    frags.append(("chr3", sizes["chr3"] - 5, sizes["chr3"] + 700, "BC000", 1))  # over the end
    tss = {"chr1": [int(x) for x in rng.integers(2500, 57_000, 30)] + [10_000, 10_030, 11_980]}
    frags += [
        ("chr1", 10_000 + d, 10_000 + d + 1, "BC001", 1) for d in (-2001, -2000, -1901, -1900)
    ]
    frags += [("chr1", 10_050, 10_052, "BC002", 1), ("chr1", 9_949, 10_051, "BC003", 1)]
    frags.sort(key=lambda r: (r[0], r[1], r[2]))
    path = write_fragments(tmp_path / "f.tsv.gz", frags, index=False)
    bed = tmp_path / "p.bed"
    bed.write_text("".join(f"{c}\t{a}\t{b}\n" for c, a, b in peaks))
    gtf = tmp_path / "g.gtf"
    gtf.write_text(
        "".join(
            f'chr1\tt\tgene\t{t + 1}\t{t + 500}\t.\t+\t.\tgene_id "g{i}"; gene_name "G{i}";\n'
            for i, t in enumerate(tss["chr1"])
        )
    )
    table = read_bed(bed)
    order = [
        (c, int(a), int(b)) for c, a, b in zip(table.chrom, table.start, table.end, strict=True)
    ]
    want_peaks, want_tiles, want_qc = _brute_force(frags, order, tss, sizes, 1000, strategy)
    for whitelist in (None, barcodes[::3]):
        result = count_fragments(
            path, table, sizes, tss=read_tss(gtf), tile_size=1000, strategy=strategy,  # type: ignore[arg-type]
            min_fragments=1, barcodes=whitelist,
        )  # fmt: skip
        adata = result.adata
        cells = list(adata.obs_names)
        assert cells == (whitelist or sorted({f[3] for f in frags}))
        for matrix, want in ((adata.X, want_peaks), (adata.obsm["tiles"], want_tiles)):
            coo = matrix.tocoo()
            got = {
                (cells[r], int(c)): int(v)
                for r, c, v in zip(coo.row, coo.col, coo.data, strict=True)
            }
            assert got == {k: v for k, v in want.items() if k[0] in cells}
            assert matrix.has_sorted_indices and matrix.dtype == np.int32
        qc = result.qc
        for b, row in want_qc.items():
            n_frag, reads, in_peak, nfr, mono, win, flank = row
            assert qc.loc[b, "n_fragments"] == n_frag and qc.loc[b, "n_reads"] == reads
            assert qc.loc[b, "frip"] == pytest.approx(in_peak / n_frag)
            assert qc.loc[b, "nucleosome_signal"] == pytest.approx(mono / max(nfr, 1))
            expected = 2 * (win / 101) / max(flank / 100, 0.2)
            assert qc.loc[b, "tss_enrichment"] == pytest.approx(expected)
        # every fragment of the file by length (the last bin: 1000 bp and longer), all barcodes
        by_length = np.bincount(
            np.minimum([e - a for _, a, e, _, _ in frags], 1000), minlength=1001
        )
        np.testing.assert_array_equal(adata.uns["fragment_lengths"], by_length)
    assert max(v for k, v in want_peaks.items()) >= 2 and sum(r[5] for r in want_qc.values()) > 0


def test_excluded_contig_need_not_be_in_the_genome(
    toy: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """chrM is excluded by default, so a genome index without it is fine (tabix index present or
    not); once chrM is counted (--exclude-chroms '') its absence is the naming error."""
    no_m = tmp_path / "no_m.sizes"
    no_m.write_text("chr1\t20000\nchr2\t10000\n")
    plain = write_fragments(tmp_path / "noidx.tsv.gz", TOY, index=False)
    for frags in (toy["fragments"], plain):
        adata = toy_run({**toy, "genome": no_m, "fragments": frags}, tmp_path)
        assert adata.obs.n_fragments.tolist() == [2, 3, 2]  # type: ignore[attr-defined]
    for frags in (toy["fragments"], plain):
        out = tmp_path / "m.h5ad"
        code = run(
            "--fragments", frags, "--peaks", toy["peaks"], "--genome", no_m,
            "--out", out, "--min-fragments", "1", "--exclude-chroms", "",
        )  # fmt: skip
        assert code == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and frags.name in err[0] and "chrM" in err[0], err
        assert not out.exists()


def test_zlib_fallback_reads_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without isal the BGZF blocks are inflated by zlib: same text, and a corrupt deflate
    payload is the same one-line error (the inflater's own exception, mapped by both paths)."""
    import zlib

    import scregnet.io.fragments as frag_io
    from scregnet.errors import InputError

    rows = [("chr1", i, i + 100, f"B{i % 97}", 1 + i % 3) for i in range(0, 60_000, 2)]
    path = write_fragments(tmp_path / "f.tsv.gz", rows, index=False)
    # first block's payload starts with a deflate header: 0xff = final block of reserved type 3
    data = bytearray(path.read_bytes())
    payload = 12 + int.from_bytes(data[10:12], "little")
    data[payload] = 0xFF
    bad = tmp_path / "bad.tsv.gz"
    bad.write_bytes(bytes(data))

    def read(p: Path) -> bytes:
        return b"".join(bytes(t) for t in frag_io.text_chunks(p, 1 << 16))

    fast = read(path)
    with pytest.raises(InputError, match=r"corrupt gzip stream \(") as fast_err:
        read(bad)
    monkeypatch.setattr(
        frag_io, "_deflate_codec", lambda: (zlib.decompress, zlib.crc32, (zlib.error,))
    )
    slow = read(path)
    with pytest.raises(InputError, match=r"corrupt gzip stream \(") as slow_err:
        read(bad)
    assert fast == slow == gzip.decompress(path.read_bytes())
    assert "BGZF" not in str(fast_err.value) and "BGZF" not in str(slow_err.value)
    # a block whose deflate data still inflates to the right size but whose text changed (here:
    # its stored CRC-32 no longer matches) is refused, not read as different text
    data = bytearray(path.read_bytes())
    bsize = int.from_bytes(data[16:18], "little") + 1
    data[bsize - 8] ^= 0x01
    flipped = tmp_path / "flipped.tsv.gz"
    flipped.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"CRC-32 mismatch") as crc_err:
        read(flipped)
    assert "flipped.tsv.gz" in str(crc_err.value)


def _gzip_text(path: Path, text: str) -> Path:
    with gzip.open(path, "wb") as handle:
        handle.write(text.encode())
    return path


@pytest.mark.parametrize("ncols", [4, 5, 6])
def test_reader_parses_like_python(ncols: int, tmp_path: Path) -> None:
    """The compiled parser against a plain Python split: header lines, CRLF and empty lines,
    4-6 columns, UTF-8 barcodes, 6,000 distinct barcodes and a 70-byte one (the barcode table
    grows several times and widens its rows), blocks cut mid-chromosome (block_size 4 kB)."""
    from scregnet.io.fragments import FragmentReader

    rng = np.random.default_rng(3)
    names = [f"{''.join(rng.choice(list('ACGT'), 12))}-{i}" for i in range(6000)] + [
        "ßé-1",
        "L" * 70,
    ]
    lines = []
    for c in ("chr1", "chr10", "chr2"):
        for s in np.sort(rng.integers(0, 10**9, 3000)).tolist():
            fields = [
                c,
                str(s),
                str(s + int(rng.integers(1, 900))),
                names[rng.integers(len(names))],
            ]
            fields += [str(int(rng.integers(1, 9)))] * (ncols >= 5) + ["x"] * (ncols - 5)
            lines.append("\t".join(fields))
    body = "".join(line + ("\r\n" if i % 7 == 0 else "\n") for i, line in enumerate(lines))
    body = body.replace("\n", "\n\n", 5)  # empty lines are skipped
    path = _gzip_text(tmp_path / "f.tsv.gz", "# header\n#x\n" + body)
    reader = FragmentReader(path, block_size=1 << 12)
    chunks = list(reader)
    assert len(chunks) > 30  # many blocks
    got = [
        (ch.chrom, int(s), int(e), reader.barcodes.names[b], int(n))
        for ch in chunks
        for s, e, b, n in zip(ch.start, ch.end, ch.barcode, ch.count, strict=True)
    ]
    want = [
        (f[0], int(f[1]), int(f[2]), f[3], int(f[4]) if ncols >= 5 else 1)
        for f in (line.split("\t") for line in lines)
    ]
    assert got == want
    assert reader.chromosomes == ["chr1", "chr10", "chr2"] and reader.n_lines == len(lines)
    first_seen = list(dict.fromkeys(f[3] for f in want))
    assert reader.barcodes.names == first_seen  # ids in order of first appearance


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("chr1\t1\t5\tA\t1\nchr1\tx\t9\tA\t1\n", ["line 2", "start is not an integer"]),
        ("chr1\t1\t5\tA\t1\nchr1\t2\t\tA\t1\n", ["line 2", "end is not an integer"]),
        ("chr1\t1\t5\tA\t1\nchr1\t2\t9\tA\t1.5\n", ["line 2", "count is not an integer"]),
        ("chr1\t1\t5\tA\t1\nchr1\t2\t9\tA\t3000000000\n", ["line 2", "count is not an integer"]),
        ("chr1\t1\t5\tA\t1\nchr1\t2\t9\tA\n", ["line 2", "expected 5", "found 4"]),
        ("chr1\t1\t5\tA\t1\nchr1\t2\t9\tA\t1\t7\n", ["line 2", "expected 5", "found 6"]),
        ("chr1\t1\t5\tA\t1\nchr1\t2\n", ["line 2", "expected 5", "found 2"]),
        ("chr1\t1\t5\tA\t1\nchr1\t2\t9\t\t1\n", ["line 2", "empty chromosome or barcode"]),
        ("chr1\t1\t5\tA\t1\n\t2\t9\tA\t1\n", ["line 2", "empty chromosome or barcode"]),
        ("chr1\t1\t5\tA\t1\nchr1\t9\t9\tA\t1\n", ["line 2", "end <= start", "9-9"]),
        ("chr1\t1\t5\tA\t1\nchr1\t-3\t9\tA\t1\n", ["line 2", "negative start"]),
        ("chr1\t4\t5\tA\t1\nchr1\t2\t9\tA\t1\n", ["line 2", "not sorted by position", "2 after 4"]),
        (
            "chr1\t4\t5\tA\t1\nchr2\t2\t9\tA\t1\nchr1\t9\t19\tA\t1\n",
            ["line 3", "chr1 appears again"],
        ),
        ("#h\nchr1\t1\t5\tA\t1\nchr1\tx\t9\tA\t1\n", ["line 3", "start is not an integer"]),
    ],
)
def test_reader_rejects_malformed_lines(text: str, words: list[str], tmp_path: Path) -> None:
    from scregnet.errors import InputError
    from scregnet.io.fragments import FragmentReader

    path = _gzip_text(tmp_path / "bad.tsv.gz", text)
    with pytest.raises(InputError) as err:
        list(FragmentReader(path))
    message = str(err.value)
    assert "bad.tsv.gz" in message and "\n" not in message
    for w in words:
        assert w in message, message


def test_reader_unsorted_across_blocks(tmp_path: Path) -> None:
    """The order check carries over from one block of text to the next."""
    from scregnet.errors import InputError
    from scregnet.io.fragments import FragmentReader

    rows = [f"chr1\t{i}\t{i + 50}\tA\t1\n" for i in range(0, 2000)]
    rows.insert(1500, "chr1\t10\t60\tA\t1\n")
    path = _gzip_text(tmp_path / "u.tsv.gz", "".join(rows))
    with pytest.raises(InputError, match=r"line 1501: fragments are not sorted by position"):
        list(FragmentReader(path, block_size=1 << 12))


def test_barcodes_only_on_an_excluded_chromosome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """chrM last, read in several blocks, with barcodes seen only there: they get a QC row with
    no fragments and are never cells."""
    from scregnet.io.fragments import FragmentReader

    monkeypatch.setitem(FragmentReader.__init__.__kwdefaults__, "block_size", 1)  # type: ignore[index]
    rng = np.random.default_rng(0)
    rows = [("chr1", 10 * i, 10 * i + 100, f"A{i:04d}", 1) for i in range(1100)]
    rows += [("chrM", i, i + 50, rng.bytes(16).hex(), 1) for i in range(5000)]
    frags = write_fragments(tmp_path / "m.tsv.gz", rows, index=False)
    result = count_fragments(
        frags, read_bed_text(tmp_path, "chr1\t0\t5000\n"), {"chr1": 20000}, min_fragments=1
    )
    assert result.adata.n_obs == 1100
    assert result.qc.shape[0] == 6100
    assert result.qc.n_fragments.iloc[1100:].eq(0).all()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            'chr1\tx\tgene\tabc\t200\t.\t+\t.\tgene_id "B";',
            "line 3: start 'abc' is not a whole number",
        ),
        (
            'chr1\tx\tgene\t100\t2e3\t.\t+\t.\tgene_id "B";',
            "line 3: end '2e3' is not a whole number",
        ),
        ("chr1\tx\tgene\t100", "line 3: GTF lines need 9 tab-separated fields, found 4"),
    ],
)
def test_gtf_with_a_bad_line_is_refused_naming_it(tmp_path: Path, line: str, problem: str) -> None:
    from scregnet.errors import InputError
    from scregnet.io.gtf import read_tss

    gtf = tmp_path / "genes.gtf"
    good = 'chr1\tx\tgene\t10\t20\t.\t-\t.\tgene_id "A"; gene_name "GA";'
    gtf.write_text(f"#!genome-build x\n{good}\r\n{line}\n")
    with pytest.raises(InputError, match=None) as err:
        read_tss(gtf)
    assert str(err.value) == f"{gtf}: {problem}"
    gtf.write_text(f"#!genome-build x\n{good}\r\n")  # CRLF line ends: read
    assert read_tss(gtf).to_dict("records") == [
        {"gene_id": "A", "gene_name": "GA", "chrom": "chr1", "tss": 19, "strand": "-"}
    ]
