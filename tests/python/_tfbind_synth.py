"""A minimal synthetic world for the TF-binding tests (independent of the simulator).

Six 24 kb chromosomes; two TFs with planted motifs; two cell types. TF binding = motif x TF
active in the cell type x site open (bulk bigWig bump, single-cell fragments). Decoy motifs stay
closed and decoy open regions have no motif, so accessibility alone or the motif alone cannot
explain binding; and some GATA1 sites are open in both cell types but bound only where GATA1 is
active (typeA), so motif x accessibility cannot explain it either: the model needs to know which
TFs are active in the sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pyBigWig
import pysam
import scipy.sparse as sp

CONSENSUS = {"CTCF": "CCGCGAGGGGGCGC", "GATA1": "TTATCTGATAAG"}
ACTIVE = {"typeA": ("CTCF", "GATA1"), "typeB": ("CTCF",)}
CHROMS = [f"chr{i}" for i in range(1, 7)]
CHROM_LEN = 24_000


@dataclass
class Synth:
    root: Path
    fasta: Path
    bulk_sheet: Path
    motifs: Path
    atac: Path
    fragments: Path
    sites: pd.DataFrame  # chrom, pos, tf (None for open decoys), kind


def _pfm(consensus: str) -> np.ndarray:
    counts = np.full((4, len(consensus)), 1.0)
    for j, b in enumerate(consensus):
        counts["ACGT".index(b), j] = 17.0
    return counts


def build(root: Path, *, seed: int = 0, cells_per_type: int = 40) -> Synth:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    seqs = {c: rng.choice(list("ACGT"), CHROM_LEN) for c in CHROMS}
    rows = []
    for chrom in CHROMS:
        slots = rng.permutation(np.arange(600, CHROM_LEN - 600, 700))
        kinds = ["CTCF"] * 8 + ["GATA1"] * 8 + ["decoy_motif"] * 4 + ["open"] * 4
        kinds += ["GATA1_open"] * 3
        for pos, kind in zip(slots, kinds, strict=False):
            tf = kind.removesuffix("_open") if kind.removesuffix("_open") in CONSENSUS else None
            if kind == "decoy_motif":
                tf = ["CTCF", "GATA1"][int(rng.integers(2))]
            motif = CONSENSUS[tf] if tf else ""
            if motif:
                if rng.random() < 0.5:
                    motif = motif[::-1].translate(str.maketrans("ACGT", "TGCA"))
                seqs[chrom][pos : pos + len(motif)] = list(motif)
            rows.append({"chrom": chrom, "pos": int(pos), "tf": tf, "kind": kind})
    sites = pd.DataFrame(rows).sort_values(["chrom", "pos"]).reset_index(drop=True)
    fasta = root / "genome.fa"
    with fasta.open("w") as fh:
        for c in CHROMS:
            s = "".join(seqs[c])
            fh.write(f">{c}\n" + "\n".join(s[i : i + 60] for i in range(0, len(s), 60)) + "\n")
    pysam.faidx(str(fasta))
    motifs = root / "motifs.jaspar"
    with motifs.open("w") as fh:
        for i, (tf, cons) in enumerate(CONSENSUS.items()):
            fh.write(f">MA900{i}.1 {tf}\n")
            for b, row in zip("ACGT", _pfm(cons), strict=True):
                fh.write(f"{b} [ {' '.join(str(int(v)) for v in row)} ]\n")

    def open_in(cell_type: str) -> np.ndarray:
        return np.array(
            [
                (k in CONSENSUS and k in ACTIVE[cell_type]) or k in ("open", "GATA1_open")
                for k in sites["kind"]
            ]
        )

    bulk = root / "bulk"
    bulk.mkdir(exist_ok=True)
    sheet = []
    for cell_type, active in ACTIVE.items():
        is_open = open_in(cell_type)
        bw_path = bulk / f"{cell_type}.bw"
        bw = pyBigWig.open(str(bw_path), "w")
        bw.addHeader([(c, CHROM_LEN) for c in CHROMS])
        for chrom in CHROMS:
            signal = np.full(CHROM_LEN, 0.2) + rng.gamma(1.0, 0.1, CHROM_LEN)
            for _, site in sites[(sites.chrom == chrom) & is_open[sites.index]].iterrows():
                x = np.arange(CHROM_LEN) - site.pos
                signal += 15 * np.exp(-0.5 * (x / 80.0) ** 2)
            bw.addEntries(chrom, 0, values=signal.tolist(), span=1, step=1)
        bw.close()
        for tf in CONSENSUS:
            bed = bulk / f"{cell_type}.{tf}.chip.bed"
            bound = sites[sites.kind.isin([tf, f"{tf}_open"]) & (tf in active)]
            with bed.open("w") as fh:
                for _, s in bound.iterrows():
                    fh.write(f"{s.chrom}\t{s.pos - 150}\t{s.pos + 160}\n")
            sheet.append(
                {
                    "tf": tf,
                    "chip_bed": f"{bed.name}",
                    "accessibility_bw": bw_path.name,
                    "cell_type": cell_type,
                }
            )
    bulk_sheet = bulk / "bulk_sheet.csv"
    pd.DataFrame(sheet).to_csv(bulk_sheet, index=False)

    # single cells: peaks = every site +-250 bp
    peaks = sites.assign(start=sites.pos - 250, end=sites.pos + 250)
    peak_ids = [f"peak{i}" for i in range(len(peaks))]
    cells, labels, frags = [], [], []
    for t, cell_type in enumerate(ACTIVE):
        is_open = open_in(cell_type)
        for i in range(cells_per_type):
            bc = f"{cell_type[-1]}{i:03d}-1"
            cells.append(bc)
            labels.append(t)
            for p in np.flatnonzero(is_open):
                for _ in range(int(rng.poisson(1.2))):
                    centre = int(peaks.pos[p] + rng.normal(0, 60))
                    length = int(rng.integers(60, 180))
                    frags.append((peaks.chrom[p], centre - length // 2, centre + length // 2, bc))
            for _ in range(6):
                chrom = CHROMS[int(rng.integers(len(CHROMS)))]
                s = int(rng.integers(0, CHROM_LEN - 300))
                frags.append((chrom, s, s + int(rng.integers(60, 250)), bc))
    frame = pd.DataFrame(frags, columns=["chrom", "start", "end", "barcode"])
    frame["count"] = 1
    frame = frame.sort_values(["chrom", "start", "end", "barcode"]).drop_duplicates(
        ["chrom", "start", "end", "barcode"]
    )
    plain = root / "fragments.tsv"
    frame.to_csv(plain, sep="\t", header=False, index=False)
    fragments = Path(pysam.tabix_index(str(plain), preset="bed", force=True))
    # counts: fragments overlapping each peak
    n_cells, n_peaks = len(cells), len(peaks)
    cell_idx = {bc: i for i, bc in enumerate(cells)}
    x = np.zeros((n_cells, n_peaks), dtype=np.int32)
    for chrom, group in frame.groupby("chrom"):
        pk = peaks[peaks.chrom == chrom]
        for p, prow in pk.iterrows():
            hit = group[(group.end > prow.start) & (group.start < prow.end)]
            for bc in hit.barcode:
                x[cell_idx[bc], p] += 1
    labels_arr = np.array(labels)
    lsi = rng.normal(0, 0.3, (n_cells, 5)) + np.eye(5)[labels_arr] * 2.0
    obs = pd.DataFrame(
        {
            "cluster": pd.Categorical([str(v) for v in labels_arr]),
            "n_fragments": np.bincount([cell_idx[b] for b in frame.barcode], minlength=n_cells),
        },
        index=pd.Index(cells),
    )
    var = pd.DataFrame(
        {
            "chrom": peaks.chrom.to_numpy(),
            "start": peaks.start.to_numpy(),
            "end": peaks.end.to_numpy(),
        },
        index=pd.Index(peak_ids),
    )
    adata = ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=var)
    adata.obsm["X_lsi"] = lsi
    atac = root / "S.clustered.h5ad"
    adata.write_h5ad(atac)
    truth = root / "truth"
    truth.mkdir(exist_ok=True)
    rows_t = []
    for cell_type, active in ACTIVE.items():
        for i, prow in peaks.iterrows():
            row = {
                "peak_id": peak_ids[i],
                "chrom": prow.chrom,
                "start": prow.start,
                "end": prow.end,
                "cell_type": cell_type,
            }
            for tf in CONSENSUS:
                row[tf] = int(prow.kind in (tf, f"{tf}_open") and tf in active)
            rows_t.append(row)
    pd.DataFrame(rows_t).to_csv(truth / "tf_binding.tsv.gz", sep="\t", index=False)
    pd.DataFrame(
        {"sample": "S", "barcode": cells, "cell_type": [list(ACTIVE)[t] for t in labels_arr]}
    ).to_csv(truth / "cell_types.tsv", sep="\t", index=False)
    return Synth(root, fasta, bulk_sheet, motifs, atac, fragments, sites)
