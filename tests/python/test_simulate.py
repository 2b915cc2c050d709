"""The ground-truth simulator: files in real formats, the biology holds, determinism, bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest

from scregnet.cli import main as cli

SAMPLES = ("sample1", "sample2")


def _fragments(bam: Path, cells: set[str]) -> pd.DataFrame:
    """Deduplicated Tn5-shifted fragments of real cells (proper pairs, MAPQ >= 30, no chrM)."""
    rows = []
    with pysam.AlignmentFile(str(bam)) as handle:
        for r in handle:
            if (
                r.is_proper_pair
                and r.is_read1
                and not r.is_secondary
                and r.mapping_quality >= 30
                and r.reference_name != "chrM"
                and r.has_tag("CB")
            ):
                cb = r.get_tag("CB")
                if cb not in cells:
                    continue
                left = min(r.reference_start, r.next_reference_start)
                rows.append((r.reference_name, left + 4, left + abs(r.template_length) - 5, cb))
    return pd.DataFrame(rows, columns=["chrom", "start", "end", "barcode"]).drop_duplicates()


@pytest.fixture(scope="module")
def tiny_fragments(tiny_world: Path) -> pd.DataFrame:
    cells = pd.read_csv(tiny_world / "truth" / "cell_types.tsv", sep="\t")
    frames = []
    for sample in SAMPLES:
        own = set(cells.barcode[cells["sample"] == sample])
        frames.append(
            _fragments(tiny_world / "samples" / f"{sample}.bam", own).assign(sample=sample)
        )
    return pd.concat(frames, ignore_index=True)


def test_tiny_world_has_every_file_of_the_contract(tiny_world: Path) -> None:
    import anndata as ad
    import pyBigWig
    from Bio import motifs

    from scregnet.io.bed import check_within_bounds, read_bed
    from scregnet.io.genome import read_chrom_sizes
    from scregnet.io.gtf import read_tss
    from scregnet.io.samplesheet import read_samplesheet
    from scregnet.pipeline.params import read_params

    sizes = read_chrom_sizes(tiny_world / "genome.fa.fai")
    autosomes = [c for c in sizes if c != "chrM"]
    assert autosomes == [f"chr{i}" for i in range(1, len(autosomes) + 1)] and len(autosomes) >= 6
    assert "chrM" in sizes
    with pysam.FastaFile(str(tiny_world / "genome.fa")) as fasta:
        seq = fasta.fetch("chr3", 0, 100_000)
    gc = (seq.count("G") + seq.count("C")) / len(seq)
    assert 0.38 < gc < 0.46

    tfs = (tiny_world / "tfs.txt").read_text().split()
    genes = read_tss(tiny_world / "genes.gtf")
    assert set(tfs) <= set(genes.gene_name) and genes.gene_id.is_unique
    peaks = read_bed(tiny_world / "peaks.bed", min_fields=4)
    check_within_bounds(peaks, sizes, path="peaks.bed")
    assert peaks.name.is_unique
    order = peaks.assign(n=peaks.chrom.str[3:].astype(int)).sort_values(["n", "start"]).index
    assert list(order) == list(peaks.index)
    with open(tiny_world / "motifs.jaspar") as handle:
        pfms = list(motifs.parse(handle, "jaspar"))
    assert [m.name for m in pfms] == tfs and all(m.matrix_id.startswith("MA") for m in pfms)

    samples = read_samplesheet(tiny_world / "samplesheet.csv")
    assert [s.sample for s in samples] == list(SAMPLES)
    assert len({s.view for s in samples}) >= 2
    params = read_params(tiny_world / "params.yaml")
    assert params["seed"] == 0 and Path(params["fasta"]).name == "genome.fa"

    cell_types = pd.read_csv(tiny_world / "truth" / "cell_types.tsv", sep="\t")
    for s in samples:
        rna = ad.read_h5ad(s.rna)
        assert rna.X.dtype.kind == "i" and rna.X.format == "csr"
        own = cell_types[cell_types["sample"] == s.sample]
        assert list(rna.obs_names) == list(own.barcode)
        assert list(rna.var_names) == list(
            genes.set_index("gene_id").loc[rna.var.gene_id].gene_name
        )
        assert set(rna.obs["view"]) == {s.view}
        truth = ad.read_h5ad(tiny_world / "truth" / "expression" / f"{s.sample}.h5ad")
        assert list(truth.obs_names) == list(rna.obs_names)
        assert list(truth.var_names) == list(rna.var_names)
        # the BAM: sorted, indexed, CB-tagged, with every kind of noise a real one has
        assert s.bam is not None
        with pysam.AlignmentFile(str(s.bam)) as bam:
            assert bam.header.to_dict()["HD"]["SO"] == "coordinate"
            assert bam.check_index()
            reads = list(bam.fetch("chr1")) + list(bam.fetch("chrM"))
        barcodes = {r.get_tag("CB") for r in reads if r.has_tag("CB")}
        assert set(own.barcode) < barcodes  # plus barcodes that are not cells
        assert all(len(b) == 18 and b.endswith("-1") for b in barcodes)
        assert any(r.reference_name == "chrM" for r in reads)
        assert any(r.mapping_quality < 30 for r in reads)
        assert any(r.is_secondary for r in reads)
        assert any(not r.is_proper_pair for r in reads)
        assert any(not r.has_tag("CB") for r in reads)
        keys = [
            (r.reference_start, r.next_reference_start, r.get_tag("CB"))
            for r in reads
            if r.is_read1 and r.has_tag("CB")
        ]
        assert len(set(keys)) < len(keys)  # PCR duplicates

    sheet = pd.read_csv(tiny_world / "bulk" / "bulk_sheet.csv")
    assert list(sheet.columns) == ["tf", "chip_bed", "accessibility_bw", "cell_type"]
    assert set(sheet.tf) == set(tfs) and set(sheet.cell_type) == set(cell_types.cell_type)
    for row in sheet.itertuples():
        chip = read_bed(tiny_world / "bulk" / row.chip_bed)
        check_within_bounds(chip, sizes, path=row.chip_bed)
        bw = pyBigWig.open(str(tiny_world / "bulk" / row.accessibility_bw))
        assert bw.chroms() == sizes and bw.stats("chr1")[0] > 0
        bw.close()
    bulk_rna = pd.read_csv(tiny_world / "bulk" / "bulk_rna.tsv", sep="\t")
    assert bulk_rna.columns[0] == "gene" and set(bulk_rna.gene) == set(genes.gene_name)
    assert all(bulk_rna[c].dtype.kind == "i" for c in bulk_rna.columns[1:])
    assert bulk_rna.shape[1] - 1 >= 2 * cell_types.cell_type.nunique()

    world = json.loads((tiny_world / "truth" / "world.json").read_text())
    assert world["preset"] == "tiny" and world["seed"] == 0
    assert world["chromosomes"] == list(sizes)
    binding = pd.read_csv(tiny_world / "truth" / "tf_binding.tsv.gz", sep="\t")
    assert list(binding.columns) == ["peak_id", "chrom", "start", "end", "cell_type", *tfs]
    assert len(binding) == len(peaks) * len(world["cell_types"])
    activity = pd.read_csv(tiny_world / "truth" / "tf_activity.tsv", sep="\t")
    assert list(activity.columns) == ["cell_type", "view", *tfs]
    edges = pd.read_csv(tiny_world / "truth" / "grn_edges.tsv", sep="\t")
    assert list(edges.columns) == ["tf", "target", "sign"] and len(edges) > 20
    assert set(edges.sign) == {"+", "-"} and set(edges.tf) <= set(tfs)


def test_fragment_lengths_show_nucleosome_periodicity(tiny_fragments: pd.DataFrame) -> None:
    lengths = (tiny_fragments.end - tiny_fragments.start).to_numpy()
    hist = np.bincount(lengths, minlength=1001)[:1001].astype(float)
    smooth = np.convolve(hist, np.ones(11) / 11, mode="same")
    nfr_mode = int(np.argmax(smooth[:147]))
    mono_mode = 147 + int(np.argmax(smooth[147:300]))
    trough = smooth[140:180].min()
    assert nfr_mode < 147
    assert 180 <= mono_mode <= 230
    assert trough < 0.8 * smooth[mono_mode] and trough < 0.8 * smooth[nfr_mode]
    di_mode = 300 + int(np.argmax(smooth[300:500]))
    assert 360 <= di_mode <= 420  # the ladder continues (di-nucleosomes)


def test_cells_have_tss_enrichment_above_5(tiny_world: Path, tiny_fragments: pd.DataFrame) -> None:
    from scregnet.io.gtf import read_tss

    tss = read_tss(tiny_world / "genes.gtf")
    scores = []
    for (_, _barcode), frags in tiny_fragments.groupby(["sample", "barcode"]):
        centre = flank = 0
        for chrom, sites in tss.groupby("chrom"):
            on = frags[frags.chrom == chrom]
            ins = np.sort(np.concatenate([on.start.to_numpy(), on.end.to_numpy() - 1]))
            t = sites.tss.to_numpy()
            centre += int((np.searchsorted(ins, t + 51) - np.searchsorted(ins, t - 50)).sum())
            for lo in (-2000, 1901):
                flank += int(
                    (np.searchsorted(ins, t + lo + 100) - np.searchsorted(ins, t + lo)).sum()
                )
        # ArchR: per-bp density at TSS +-50 over the per-bp density of the two 100 bp flanks
        scores.append((centre / 101) / (max(flank, 1) / 200))
    assert len(scores) == 160
    assert np.median(scores) >= 5
    assert np.mean(np.array(scores) >= 5) > 0.9


def test_small_rna_has_80_to_95_percent_zeros(small_world: Path) -> None:
    import anndata as ad

    for path in sorted((small_world / "samples").glob("*.rna.h5ad")):
        x = ad.read_h5ad(path).X
        zeros = 1 - x.nnz / (x.shape[0] * x.shape[1])
        assert 0.80 <= zeros <= 0.95, (path.name, zeros)


def _binding_inputs(world: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    binding = pd.read_csv(world / "truth" / "tf_binding.tsv.gz", sep="\t")
    sites = pd.read_csv(world / "truth" / "motif_sites.tsv.gz", sep="\t")
    opened = pd.read_csv(world / "truth" / "peak_open.tsv.gz", sep="\t")
    info = json.loads((world / "truth" / "world.json").read_text())
    return binding, sites, opened, info


def test_binding_truth_is_motif_times_activity_times_openness(tiny_world: Path) -> None:
    binding, sites, opened, info = _binding_inputs(tiny_world)
    tfs = info["tfs"]
    activity = pd.read_csv(tiny_world / "truth" / "tf_activity.tsv", sep="\t")
    in_peaks = sites[sites.peak_id != "."]
    present = (
        pd.crosstab(in_peaks.peak_id, in_peaks.tf).reindex(
            index=opened.peak_id, columns=tfs, fill_value=0
        )
        > 0
    )
    n_unbound_closed = n_unbound_inactive = 0
    for ct in info["cell_types"]:
        acts = activity[activity.cell_type == ct][tfs].to_numpy()
        active = acts > info["active_threshold"]
        assert (active == active[0]).all()  # views shift levels, never across the threshold
        is_open = opened[ct].to_numpy().astype(bool)
        expected = present.to_numpy() & active[0][None, :] & is_open[:, None]
        got = binding[binding.cell_type == ct].set_index("peak_id").loc[opened.peak_id, tfs]
        np.testing.assert_array_equal(got.to_numpy().astype(bool), expected)
        n_unbound_closed += int((present.to_numpy() & active[0][None, :] & ~is_open[:, None]).sum())
        n_unbound_inactive += int(
            (present.to_numpy() & ~active[0][None, :] & is_open[:, None]).sum()
        )
    # not trivial: some motif sites are closed, some belong to inactive TFs, and decoys exist
    assert n_unbound_closed > 0 and n_unbound_inactive > 0
    assert (sites.peak_id == ".").sum() > 0


def test_every_grn_edge_is_backed_by_planted_binding_near_its_target(tiny_world: Path) -> None:
    from Bio import motifs

    from scregnet.io.gtf import read_tss

    binding, sites, opened, info = _binding_inputs(tiny_world)
    edges = pd.read_csv(tiny_world / "truth" / "grn_edges.tsv", sep="\t")
    tss = read_tss(tiny_world / "genes.gtf").set_index("gene_name")
    with open(tiny_world / "motifs.jaspar") as handle:
        pssm = {
            m.name: m.counts.normalize(pseudocounts=0.5).log_odds()
            for m in motifs.parse(handle, "jaspar")
        }
    bound_any = binding.groupby("peak_id")[info["tfs"]].max()
    peaks = opened.set_index("peak_id")
    with pysam.FastaFile(str(tiny_world / "genome.fa")) as fasta:
        for e in edges.itertuples():
            gene = tss.loc[e.target]
            mid = (peaks.start + peaks.end) // 2
            near = peaks.index[
                (peaks.chrom == gene.chrom) & ((mid - gene.tss).abs() <= info["max_link_distance"])
            ]
            backed = [p for p in near if bound_any.loc[p, e.tf] == 1]
            assert backed, f"edge {e.tf} -> {e.target} has no bound {e.tf} site near the target"
            # and the motif really is in the genome sequence there
            planted = sites[(sites.tf == e.tf) & sites.peak_id.isin(backed)]
            m = pssm[e.tf]
            scores = [
                max(float(m.calculate(seq)), float(m.reverse_complement().calculate(seq)))
                for seq in (fasta.fetch(s.chrom, s.start, s.end) for s in planted.itertuples())
            ]
            assert max(scores) > 0.5 * m.max, (e.tf, e.target, scores, m.max)


def _digest(world: Path) -> dict[str, str]:
    return {
        str(p.relative_to(world)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(world.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_files_whatever_the_threads(
    tiny_world: Path, tmp_path: Path
) -> None:
    from scregnet.simulate import simulate

    again = simulate(tmp_path / "again", preset="tiny", seed=0, threads=2)
    first, second = _digest(tiny_world), _digest(again)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_cli_seed_changes_the_world(tiny_world: Path, tmp_path: Path) -> None:
    code = cli.main(
        ["simulate", "--preset", "tiny", "--seed", "1", "--outdir", str(tmp_path / "w")]
    )
    assert code == 0
    info = json.loads((tmp_path / "w" / "truth" / "world.json").read_text())
    assert info["seed"] == 1 and info["preset"] == "tiny"
    first, other = _digest(tiny_world), _digest(tmp_path / "w")
    assert first.keys() == other.keys()
    changed = [k for k in first if first[k] != other[k]]
    assert "genome.fa" in changed and "samples/sample1.bam" in changed
    assert "truth/grn_edges.tsv" in changed


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--preset", "tiny", "--seed", "-3"], "--seed must be >= 0"),
    ],
)
def test_bad_preset_or_seed_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    out = tmp_path / "world"
    try:
        code = cli.main(["simulate", "--outdir", str(out), *args])
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert expected in err[-1]
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unwritable_outdir_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    code = cli.main(["simulate", "--preset", "tiny", "--outdir", str(blocker / "world")])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a writable directory" in err[0] and "a_file" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_bulk_data_follow_the_truth(tiny_world: Path) -> None:
    import anndata as ad
    import pyBigWig
    from scipy.stats import spearmanr

    from scregnet.io.bed import read_bed

    binding, _, opened, info = _binding_inputs(tiny_world)
    sheet = pd.read_csv(tiny_world / "bulk" / "bulk_sheet.csv")
    for ct in info["cell_types"]:
        bw = pyBigWig.open(str(tiny_world / "bulk" / f"{ct}.accessibility.bw"))
        signal = np.array(
            [bw.stats(r.chrom, r.start, r.end)[0] or 0.0 for r in opened.itertuples()]
        )
        bw.close()
        is_open = opened[ct].to_numpy().astype(bool)
        assert signal[is_open].mean() > 3 * signal[~is_open].mean()
        bound = binding[binding.cell_type == ct].set_index("peak_id")
        for row in sheet[sheet.cell_type == ct].itertuples():
            chip = read_bed(tiny_world / "bulk" / row.chip_bed)
            truth = opened[bound.loc[opened.peak_id, row.tf].to_numpy() == 1]
            mids = (chip.start + chip.end).to_numpy() // 2
            hits = [
                ((truth.chrom == c) & (truth.start <= m) & (truth.end > m)).any()
                for c, m in zip(chip.chrom, mids, strict=True)
            ]
            if len(truth) >= 10:  # an active TF: most ChIP peaks are true sites, most sites found
                assert np.mean(hits) >= 0.8 and sum(hits) >= 0.7 * len(truth)
            else:  # an inactive TF: only a few noise peaks
                assert len(chip) <= 10
    # bulk RNA of a cell type matches the single-cell truth of that cell type
    bulk_rna = pd.read_csv(tiny_world / "bulk" / "bulk_rna.tsv", sep="\t", index_col="gene")
    truth = ad.read_h5ad(tiny_world / "truth" / "expression" / "sample1.h5ad")
    for ct in info["cell_types"]:
        pseudo = np.asarray(truth[truth.obs.cell_type == ct].X.mean(axis=0)).ravel()
        rep = bulk_rna.loc[truth.var_names, f"{ct}_rep1"].to_numpy()
        assert spearmanr(pseudo, rep)[0] > 0.8


def test_write_bigwig_binned_round_trip(tmp_path: Path) -> None:
    import pyBigWig

    from scregnet.io.tracks import write_bigwig_binned

    sizes = {"chr1": 100, "chrM": 45}
    tracks = [("chr1", np.arange(5, dtype=float)), ("chrM", np.array([1.0, 2.0, 3.5]))]
    path = write_bigwig_binned(tmp_path / "x.bw", sizes, tracks, bin_size=20)
    bw = pyBigWig.open(str(path))
    assert bw.chroms() == sizes
    assert bw.values("chr1", 0, 100)[::20] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert bw.values("chrM", 38, 45) == [2.0, 2.0, 3.5, 3.5, 3.5, 3.5, 3.5]
    bw.close()
    with pytest.raises(ValueError, match="expected 5 bins"):
        write_bigwig_binned(tmp_path / "y.bw", sizes, [("chr1", np.ones(4))], bin_size=20)
    assert not (tmp_path / "y.bw").exists()
