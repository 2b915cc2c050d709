"""Simulator presets: the sizes and rates of each world (``tiny``, ``small``, ``large``, and the
``tiny_real`` / ``small_real`` worlds with :class:`Realism` switched on)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from scregnet.errors import InputError

# Cell types and the lineage TFs active in each (names follow real haematopoietic / liver biology).
# Ubiquitous TFs (CTCF, NRF1, YY1, SP1) are active in every cell type.
UBIQUITOUS_TFS = ("CTCF", "NRF1", "YY1", "SP1")
LINEAGE_TFS: dict[str, tuple[str, ...]] = {
    "B_cell": ("PAX5", "EBF1", "SPI1", "IRF4"),
    "monocyte": ("SPI1", "CEBPA", "IRF8", "CEBPB"),
    "T_cell": ("TCF7", "RUNX1", "GATA3", "ETS1"),
    "erythroid": ("GATA1", "KLF1", "NFE2", "RUNX1"),
    "hepatocyte": ("FOXA2", "HNF4A", "HNF1A", "CEBPB"),
}


@dataclass(frozen=True)
class Sample:
    """One sequenced sample: a name, its view (condition / time point) and its number of cells."""

    name: str
    view: str
    n_cells: int


@dataclass(frozen=True)
class Realism:
    """How binding departs from "planted motif x TF active x peak open" (see ``docs/simulator.md``).

    The defaults here are the only definition of these rates; a preset switches them on with
    ``realism=Realism()``.
    """

    #: the given motif file's PFM columns ~ Dirichlet(concentration x planted column probabilities)
    motif_concentration: float = 8.0
    #: planted sites drawn from the TF's variant (a head-to-head dimer, or a changed core), which
    #: is not in the given motif file
    variant_share: float = 0.3
    #: non-ubiquitous TFs (chosen at random) left out of the given motif file
    tfs_without_motif: int = 1
    #: share of non-ubiquitous TFs whose sites bind only with their cofactor's motif nearby
    cofactor_tf_share: float = 0.5
    #: sites of such TFs that get the cofactor motif within ``cofactor_window`` bp
    cofactor_rate: float = 0.5
    #: sites of such TFs that get it 30-60 bp away (outside the window: no help)
    far_cofactor_rate: float = 0.25
    #: largest gap (bp) between a site and its cofactor motif that still lets the TF bind
    cofactor_window: int = 12
    #: sites whose +-30 bp flanks are AT-rich (20 % GC): never bound
    at_rich_share: float = 0.12
    #: sites under a positioned nucleosome (147 bp, 10 bp AA/TT vs GC phasing): never bound, nor
    #: any other site of the peak inside the same 147 bp
    nucleosome_share: float = 0.1
    #: (cell type, non-ubiquitous TF) pairs where the TF's motif peaks open although it is
    #: inactive, or stay closed (open only for other reasons) although it is active
    decoupled_share: float = 0.3


@dataclass(frozen=True)
class Preset:
    """All sizes and rates of one simulated world."""

    name: str
    n_chromosomes: int
    chromosome_length: int  # bp per autosome
    n_genes: int  # including the TF genes
    cell_types: tuple[str, ...]
    tfs: tuple[str, ...]
    samples: tuple[Sample, ...]
    enhancers_per_gene: float  # mean linked enhancers per gene (Poisson)
    intergenic_enhancers: int  # unlinked distal peaks
    fragments_per_cell: int  # median unique fragments of a cell (log-normal)
    min_fragments_per_cell: int  # floor, so that cells are clearly cells
    noncell_barcodes_per_cell: float  # background barcodes per real cell
    umis_per_cell: int  # median scRNA library size
    bulk_fragments: int  # fragments per bulk accessibility profile
    bulk_replicates: int  # bulk RNA replicates per cell type
    bulk_rna_depth: int  # reads per bulk RNA sample
    decoy_motifs_per_tf: int  # motif instances planted outside peaks (closed, never bound)
    max_link_distance: int = 50_000  # enhancer-gene link distance (bp)
    read_length: int = 50
    realism: Realism | None = None  # None: binding truth = motif x TF active x peak open


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny",
        n_chromosomes=6,
        chromosome_length=400_000,
        n_genes=240,
        cell_types=("B_cell", "monocyte", "T_cell"),
        tfs=("CTCF", "NRF1", "SPI1", "PAX5", "CEBPA", "TCF7"),
        samples=(Sample("sample1", "ctrl", 80), Sample("sample2", "stim", 80)),
        enhancers_per_gene=2.0,
        intergenic_enhancers=60,
        fragments_per_cell=1400,
        min_fragments_per_cell=1100,
        noncell_barcodes_per_cell=1.5,
        umis_per_cell=250,
        bulk_fragments=100_000,
        bulk_replicates=3,
        bulk_rna_depth=2_000_000,
        decoy_motifs_per_tf=20,
        max_link_distance=20_000,
    ),
    "small": Preset(
        name="small",
        n_chromosomes=8,
        chromosome_length=1_500_000,
        n_genes=1200,
        cell_types=("B_cell", "monocyte", "T_cell", "erythroid", "hepatocyte"),
        tfs=(
            "CTCF",
            "NRF1",
            "YY1",
            "SPI1",
            "PAX5",
            "EBF1",
            "CEBPA",
            "IRF8",
            "TCF7",
            "RUNX1",
            "GATA3",
            "GATA1",
            "KLF1",
            "FOXA2",
            "HNF4A",
        ),
        samples=(
            Sample("sample1", "ctrl", 800),
            Sample("sample2", "stim", 800),
        ),
        enhancers_per_gene=2.0,
        intergenic_enhancers=600,
        fragments_per_cell=1400,
        min_fragments_per_cell=1100,
        noncell_barcodes_per_cell=1.5,
        umis_per_cell=1500,
        bulk_fragments=400_000,
        bulk_replicates=3,
        bulk_rna_depth=10_000_000,
        decoy_motifs_per_tf=150,
    ),
    "large": Preset(
        name="large",
        n_chromosomes=12,
        chromosome_length=4_000_000,
        n_genes=3000,
        cell_types=("B_cell", "monocyte", "T_cell", "erythroid", "hepatocyte"),
        tfs=(
            "CTCF",
            "NRF1",
            "YY1",
            "SP1",
            "SPI1",
            "PAX5",
            "EBF1",
            "IRF4",
            "CEBPA",
            "CEBPB",
            "IRF8",
            "TCF7",
            "RUNX1",
            "GATA3",
            "ETS1",
            "GATA1",
            "KLF1",
            "NFE2",
            "FOXA2",
            "HNF4A",
            "HNF1A",
        ),
        samples=(
            Sample("sample1", "ctrl", 5500),
            Sample("sample2", "stim", 5500),
            Sample("sample3", "stim2", 5500),
        ),
        enhancers_per_gene=2.5,
        intergenic_enhancers=3000,
        fragments_per_cell=1200,
        min_fragments_per_cell=1000,
        noncell_barcodes_per_cell=1.0,
        umis_per_cell=3000,
        bulk_fragments=3_000_000,
        bulk_replicates=3,
        bulk_rna_depth=20_000_000,
        decoy_motifs_per_tf=500,
    ),
}


PRESETS["tiny_real"] = replace(PRESETS["tiny"], name="tiny_real", realism=Realism())
PRESETS["small_real"] = replace(PRESETS["small"], name="small_real", realism=Realism())


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name is an :class:`InputError` listing the valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        msg = f"unknown preset {name!r} (choose one of: {', '.join(PRESETS)})"
        raise InputError(msg) from None
