"""``simulate(outdir, preset=..., seed=...)``: write one coherent world with its ground truth."""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scregnet import __version__, keys
from scregnet.errors import InputError
from scregnet.io.atomic import atomic_dir, check_writable_dir
from scregnet.simulate import atac_reads, bulk, genome, rna
from scregnet.simulate.motifs import load_motifs, write_jaspar
from scregnet.simulate.presets import Preset, get_preset
from scregnet.simulate.realism import COFACTOR_TFS
from scregnet.simulate.world import ACTIVE_THRESHOLD, World, build_world

if TYPE_CHECKING:
    import anndata as ad

log = logging.getLogger(__name__)


def _write_tsv_gz(frame: pd.DataFrame, path: Path) -> None:
    """Gzipped TSV with a fixed header (mtime 0, no file name) so the bytes depend on content only."""
    data = frame.to_csv(sep="\t", index=False).encode()
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(data)


def _write_h5ad(adata: ad.AnnData, path: Path) -> None:
    from scregnet.io.h5ad import write_h5ad

    write_h5ad(adata, path)


def _gene_names(preset: Preset) -> list[str]:
    n_other = preset.n_genes - len(preset.tfs)
    return list(preset.tfs) + [f"GENE{i + 1:04d}" for i in range(n_other)]


def _simulate_sample(
    rng: np.random.Generator,
    world: World,
    model: rna.ExpressionModel,
    out: Path,
    *,
    sample: str,
    view: str,
    n_cells: int,
    command_line: str,
    threads: int,
) -> pd.DataFrame:
    """One sample: BAM (+ index), RNA counts and true expression; returns its cell-type table."""
    cell_type, barcodes, n_noncell, n_fragments = _write_atac(
        rng, world, out, sample, n_cells, command_line=command_line, threads=threads
    )
    cell_barcodes = barcodes[:n_cells]
    zeros = _write_rna(rng, world, model, out, sample, view, cell_type, cell_barcodes)
    log.info(
        "%s (%s): %d cells, %d non-cell barcodes, %d fragments, scRNA %.1f %% zeros",
        sample,
        view,
        n_cells,
        n_noncell,
        n_fragments,
        100 * zeros,
    )
    return pd.DataFrame(
        {
            "sample": sample,
            "barcode": cell_barcodes,
            "cell_type": np.array(world.cell_types)[cell_type],
        }
    )


def _write_atac(
    rng: np.random.Generator,
    world: World,
    out: Path,
    sample: str,
    n_cells: int,
    *,
    command_line: str,
    threads: int,
) -> tuple[np.ndarray, list[str], int, int]:
    """Draw cells and non-cell barcodes, write their BAM: (cell types, barcodes, non-cells, fragments)."""
    preset = world.preset
    n_ct = len(world.cell_types)
    proportions = rng.dirichlet(np.full(n_ct, 4.0))
    cell_type = rng.choice(n_ct, size=n_cells, p=proportions)
    n_noncell = round(n_cells * preset.noncell_barcodes_per_cell)
    barcodes = atac_reads.random_barcodes(rng, n_cells + n_noncell)
    n_frag = np.concatenate(
        [
            np.maximum(
                rng.lognormal(np.log(preset.fragments_per_cell), 0.45, n_cells),
                preset.min_fragments_per_cell,
            ),
            np.clip(rng.lognormal(np.log(20), 1.0, n_noncell), 1, 300),
        ]
    ).astype(np.int64)
    frip = np.concatenate([rng.beta(10, 10, n_cells), rng.beta(3, 27, n_noncell)])
    mito = rng.beta(2, 40, n_cells + n_noncell)
    types = np.concatenate([cell_type, np.full(n_noncell, -1)])
    frags = atac_reads.sample_fragments(rng, world, types, n_frag, frip, mito)
    atac_reads.write_bam(
        rng,
        world,
        frags,
        barcodes,
        out / "samples" / f"{sample}.bam",
        sample=sample,
        command_line=command_line,
        threads=threads,
    )
    return cell_type, barcodes, n_noncell, len(frags)


def _write_rna(
    rng: np.random.Generator,
    world: World,
    model: rna.ExpressionModel,
    out: Path,
    sample: str,
    view: str,
    cell_type: np.ndarray,
    cell_barcodes: list[str],
) -> float:
    """Write the cells' scRNA counts and true expression; the fraction of zero counts."""
    import anndata as ad

    n_cells = len(cell_barcodes)
    view_index = world.views.index(view)
    p = rna.relative_rates(rng, world, model, cell_type, view_index)
    truth, counts, library = rna.single_cell_counts(rng, p, world.preset.umis_per_cell)
    obs = pd.DataFrame(
        {"sample": pd.Categorical([sample] * n_cells), keys.VIEW: pd.Categorical([view] * n_cells)},
        index=pd.Index(cell_barcodes, name="barcode"),
    )
    var = pd.DataFrame(
        {"gene_id": world.genes.gene_id.to_numpy()},
        index=pd.Index(world.genes.gene_name.to_numpy(), name="gene"),
    )
    _write_h5ad(ad.AnnData(X=counts, obs=obs, var=var), out / "samples" / f"{sample}.rna.h5ad")
    t_obs = obs.copy()
    t_obs["cell_type"] = pd.Categorical(
        np.array(world.cell_types)[cell_type], categories=world.cell_types
    )
    t_obs["library_size"] = library.astype(np.float32)
    _write_h5ad(
        ad.AnnData(X=truth, obs=t_obs, var=var.copy()),
        out / "truth" / "expression" / f"{sample}.h5ad",
    )
    return float(1.0 - counts.nnz / (counts.shape[0] * counts.shape[1]))


def _write_truth(world: World, out: Path, cell_types: pd.DataFrame) -> None:
    truth = out / "truth"
    cell_types.to_csv(truth / "cell_types.tsv", sep="\t", index=False)
    peaks = world.peaks
    bound = world.bound
    blocks = []
    for k, ct in enumerate(world.cell_types):
        block = peaks[["peak_id", "chrom", "start", "end"]].copy()
        block.insert(4, "cell_type", ct)
        for j, tf in enumerate(world.tfs):
            block[tf] = bound[k, :, j].astype(np.int8)
        blocks.append(block)
    _write_tsv_gz(pd.concat(blocks, ignore_index=True), truth / "tf_binding.tsv.gz")
    rows = []
    for v, view in enumerate(world.views):
        for k, ct in enumerate(world.cell_types):
            rows.append([ct, view, *np.round(world.activity[v, k], 4).tolist()])
    pd.DataFrame(rows, columns=["cell_type", "view", *world.tfs]).to_csv(
        truth / "tf_activity.tsv", sep="\t", index=False
    )
    edges = world.edges.assign(sign=np.where(world.edges.sign > 0, "+", "-"))
    edges[["tf", "target", "sign"]].to_csv(truth / "grn_edges.tsv", sep="\t", index=False)
    open_ = peaks[["peak_id", "chrom", "start", "end", "kind"]].copy()
    open_["linked_gene"] = peaks.gene.replace("", ".")
    for k, ct in enumerate(world.cell_types):
        open_[ct] = world.open[k].astype(np.int8)
    _write_tsv_gz(open_, truth / "peak_open.tsv.gz")
    _write_tsv_gz(world.motif_sites, truth / "motif_sites.tsv.gz")
    if world.site_rules is not None:
        _write_tsv_gz(world.site_rules, truth / "site_rules.tsv.gz")
        write_jaspar(world.motifs, truth / "planted_motifs.jaspar")
        opener = pd.DataFrame(world.opener.astype(np.int8), columns=world.tfs)
        opener.insert(0, "cell_type", world.cell_types)
        opener.to_csv(truth / "tf_opens_peaks.tsv", sep="\t", index=False)


def simulate(outdir: str | Path, *, preset: str = "small", seed: int = 0, threads: int = 1) -> Path:
    """Simulate a world (see ``docs/simulator.md``) into ``outdir``, which appears atomically.

    An existing ``outdir`` keeps the files that the simulator did not write there.

    ``threads`` only speeds up BAM compression; the files are the same for any value.
    Raises :class:`InputError` for an unknown preset, a negative seed or an unwritable ``outdir``.
    """
    spec = get_preset(preset)
    if not isinstance(seed, int | np.integer) or seed < 0:
        msg = f"seed must be a non-negative integer, got {seed!r}"
        raise InputError(msg)
    outdir = check_writable_dir(outdir)
    started = time.perf_counter()
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8)]
    r_genome, r_world, r_expr, r_samples, r_bulk, r_bulkrna = streams[:6]
    command_line = f"scregnet simulate --preset {spec.name} --seed {seed}"
    views = list(dict.fromkeys(s.view for s in spec.samples))

    with atomic_dir(outdir, owner="simulate") as out:
        for sub in ("samples", "bulk", "truth/expression"):
            (out / sub).mkdir(parents=True)
        world = _build_world(r_genome, r_world, spec, views)
        log.info("genome, genes, peaks and GRN built in %.1f s", time.perf_counter() - started)
        _write_references(world, out)
        model = rna.expression_model(r_expr, world)
        del r_samples  # each sample has its own stream, spawned after the eight above
        cell_types = _write_samples(world, model, out, seed, command_line, threads)
        log.info("samples written after %.1f s", time.perf_counter() - started)
        _write_bulk(world, model, out, r_bulk, r_bulkrna)
        _write_samplesheet(spec, out)
        _write_params(out, seed)
        _write_truth(world, out, cell_types)
        _write_world_json(world, out, seed, cell_types)
    log.info(
        "simulated the %s world (seed %d) into %s in %.1f s",
        spec.name,
        seed,
        outdir,
        time.perf_counter() - started,
    )
    return Path(outdir)


def _build_world(
    r_genome: np.random.Generator, r_world: np.random.Generator, spec: Preset, views: list[str]
) -> World:
    """The genome (genes placed, promoters GC-enriched) and the regulatory world on it."""
    motifs = load_motifs(spec.tfs)
    gen = genome.random_genome(r_genome, spec.n_chromosomes, spec.chromosome_length)
    genes = genome.place_genes(r_genome, gen, _gene_names(spec))
    genes["is_tf"] = genes.gene_name.isin(spec.tfs)
    genome.enrich_promoter_gc(r_genome, gen, genes)
    cofactors = load_motifs(COFACTOR_TFS) if spec.realism is not None else None
    return build_world(r_world, spec, gen, genes, motifs, views, cofactors)


def _write_references(world: World, out: Path) -> None:
    """The genome FASTA, genes GTF, peaks BED, given motifs and TF list."""
    genome.write_fasta(world.genome, out / "genome.fa")
    genome.write_gtf(world.genes, out / "genes.gtf")
    world.peaks[["chrom", "start", "end", "peak_id"]].to_csv(
        out / "peaks.bed", sep="\t", header=False, index=False
    )
    write_jaspar(world.given_motifs, out / "motifs.jaspar")
    (out / "tfs.txt").write_text("\n".join(world.tfs) + "\n")


def _write_samples(
    world: World,
    model: rna.ExpressionModel,
    out: Path,
    seed: int,
    command_line: str,
    threads: int,
) -> pd.DataFrame:
    """Every sample of the preset, each from its own random stream; their cell-type tables."""
    spec = world.preset
    tables = []
    sample_rngs = [
        np.random.default_rng(s)
        for s in np.random.SeedSequence(seed).spawn(8 + len(spec.samples))[8:]
    ]
    for s, rng in zip(spec.samples, sample_rngs, strict=True):
        tables.append(
            _simulate_sample(
                rng,
                world,
                model,
                out,
                sample=s.name,
                view=s.view,
                n_cells=s.n_cells,
                command_line=command_line,
                threads=threads,
            )
        )
    return pd.concat(tables, ignore_index=True)


def _write_bulk(
    world: World,
    model: rna.ExpressionModel,
    out: Path,
    r_bulk: np.random.Generator,
    r_bulkrna: np.random.Generator,
) -> None:
    """Bulk accessibility tracks and ChIP peaks per cell type (+ their sheet) and bulk RNA."""
    spec = world.preset
    sheet = []
    for k, ct in enumerate(world.cell_types):
        bw = f"{ct}.accessibility.bw"
        bulk.accessibility_track(r_bulk, world, k, spec.bulk_fragments, out / "bulk" / bw)
        for j, tf in enumerate(world.tfs):
            bed = f"{ct}.{tf}.chip.bed"
            bulk.chip_peaks(r_bulk, world, k, j, out / "bulk" / bed)
            sheet.append({"tf": tf, "chip_bed": bed, "accessibility_bw": bw, "cell_type": ct})
    pd.DataFrame(sheet).to_csv(out / "bulk" / "bulk_sheet.csv", index=False)
    profiles = rna.bulk_profiles(r_bulkrna, world, model)
    counts = rna.bulk_counts(
        r_bulkrna, profiles, replicates=spec.bulk_replicates, depth=spec.bulk_rna_depth
    )
    bulk.write_bulk_rna(counts, world, out / "bulk" / "bulk_rna.tsv")


def _write_samplesheet(spec: Preset, out: Path) -> None:
    """The pipeline's sample sheet of the simulated samples (BAM and RNA per sample)."""
    pd.DataFrame(
        {
            "sample": [s.name for s in spec.samples],
            "bam": [f"samples/{s.name}.bam" for s in spec.samples],
            "fragments": ["" for _ in spec.samples],
            "rna": [f"samples/{s.name}.rna.h5ad" for s in spec.samples],
            "view": [s.view for s in spec.samples],
        }
    ).to_csv(out / "samplesheet.csv", index=False)


def _write_params(out: Path, seed: int) -> None:
    import yaml

    params = {
        "input": "samplesheet.csv",
        "fasta": "genome.fa",
        "gtf": "genes.gtf",
        "peaks": "peaks.bed",
        "bulk_sheet": "bulk/bulk_sheet.csv",
        "bulk_rna": "bulk/bulk_rna.tsv",
        "motifs": "motifs.jaspar",
        "tfs": "tfs.txt",
        "seed": seed,
    }
    (out / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _write_world_json(world: World, out: Path, seed: int, cell_types: pd.DataFrame) -> None:
    spec = world.preset
    info = {
        "scregnet_version": __version__,
        "preset": spec.name,
        "seed": seed,
        "chromosomes": list(world.genome.sizes),
        "chromosome_sizes": world.genome.sizes,
        "cell_types": world.cell_types,
        "views": world.views,
        "samples": [
            {
                "sample": s.name,
                "view": s.view,
                "n_cells": s.n_cells,
            }
            for s in spec.samples
        ],
        "tfs": world.tfs,
        "motifs": {m.name: m.matrix_id for m in world.motifs},
        "sizes": {
            "n_genes": len(world.genes),
            "n_peaks": len(world.peaks),
            "n_promoter_peaks": int((world.peaks.kind == "promoter").sum()),
            "n_grn_edges": len(world.edges),
            "n_cells": len(cell_types),
            "n_motif_sites": len(world.motif_sites),
        },
        "active_threshold": ACTIVE_THRESHOLD,
        "max_link_distance": spec.max_link_distance,
        "read_length": spec.read_length,
        "bigwig_bin": bulk.BIGWIG_BIN,
    }
    if spec.realism is not None:
        info["realism"] = dataclasses.asdict(spec.realism)
        given = {m.name for m in world.given_motifs}
        info["tfs_without_given_motif"] = [t for t in world.tfs if t not in given]
    (out / "truth" / "world.json").write_text(json.dumps(info, indent=2) + "\n")
