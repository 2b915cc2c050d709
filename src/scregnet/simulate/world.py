"""The regulatory world: peaks, cell types, TF activity, planted motifs, binding truth and the GRN.

Construction order (each step draws from its own random stream):

1. promoter peaks at every TSS, enhancers linked to genes (within ``max_link_distance``) and
   unlinked intergenic enhancers;
2. TF activity per cell type (lineage TFs on, others off) and per view (shifted levels);
3. the GRN: target genes pick 1-3 regulators; each regulator's motif is planted in the target's
   promoter or one of its linked enhancers; other enhancers get 1-2 "driver" motifs;
4. openness per cell type: constitutive peaks are open everywhere, the others open where one of
   their motifs' TFs is active (90 %), plus rare leaky openings (3 %);
5. motif sequences are sampled from the JASPAR PFMs and written into the genome, plus decoy motifs
   outside peaks (closed chromatin: present but never bound);
6. binding truth = motif present x TF active in the cell type x peak open; a GRN edge is kept only if
   at least one of its sites is bound in some cell type.

A preset with ``realism`` (:mod:`scregnet.simulate.realism`) changes steps 4-6: peaks open where
their motifs' *opening* TFs are active (which differ from the binding-active ones for some pairs),
sites are planted with variants, nucleosomes, AT-rich flanks and cofactor motifs, a site binds only
where those rules allow, and the motif file given to the pipeline is perturbed and incomplete.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scregnet.simulate import realism as real
from scregnet.simulate.genome import Genome
from scregnet.simulate.motifs import Motif, sample_instance
from scregnet.simulate.presets import LINEAGE_TFS, UBIQUITOUS_TFS, Preset

log = logging.getLogger(__name__)

ACTIVE_THRESHOLD = 0.3  # activity above this = the TF is active (binds its open sites)
TSS_EXCLUSION = 2_500  # no enhancer within this distance of any TSS (keeps TSS flanks clean)
SLOT_OFFSETS = (0, -42, 42, -84, 84, -126, 126)  # motif slots around a peak's centre
MAX_MOTIFS_PER_PEAK = len(SLOT_OFFSETS)


@dataclass
class World:
    """Everything the data generators need; all arrays are indexed like the frames they sit beside."""

    preset: Preset
    genome: Genome
    genes: pd.DataFrame  # gene_id gene_name chrom start end strand tss exons is_tf base
    peaks: pd.DataFrame  # peak_id chrom start end center kind gene strength
    motifs: list[Motif]  # the planted PFM of each TF, in ``tfs`` order
    tfs: list[str]
    cell_types: list[str]
    views: list[str]
    activity: np.ndarray  # (n_views, n_cell_types, n_tfs) TF activity level
    active: np.ndarray  # (n_cell_types, n_tfs) bool
    open: np.ndarray  # (n_cell_types, n_peaks) bool
    motif_present: np.ndarray  # (n_peaks, n_tfs) bool
    motif_sites: pd.DataFrame  # chrom start end strand tf peak_id target
    edges: pd.DataFrame  # tf target sign weight hill_k hill_n tf_index gene_index
    edge_bound: np.ndarray  # (n_edges, n_cell_types) bool: some site of the edge bound there
    motif_bindable: np.ndarray  # (n_peaks, n_tfs) bool: a planted site the rules let bind
    given_motifs: list[Motif]  # the motif file the pipeline gets
    opener: np.ndarray  # (n_cell_types, n_tfs) bool: TFs that open their motif peaks there
    site_rules: pd.DataFrame | None  # per planted site: form, cofactor gap, nucleosome, bindable

    @property
    def bound(self) -> np.ndarray:
        """(n_cell_types, n_peaks, n_tfs) binding truth = open x bindable site x TF active."""
        return self.open[:, :, None] & self.motif_bindable[None, :, :] & self.active[:, None, :]


def _tf_weights(tfs: list[str]) -> np.ndarray:
    """Sampling weights for regulators/drivers: lineage TFs 1, ubiquitous TFs 0.4."""
    w = np.array([0.4 if t in UBIQUITOUS_TFS else 1.0 for t in tfs])
    return w / w.sum()


def tf_activity(
    rng: np.random.Generator, preset: Preset, views: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Activity (views x cell types x TFs) and the binary ``active`` (cell types x TFs).

    Lineage TFs of a cell type have activity 0.6-1.0 there, ubiquitous TFs 0.6-1.0 everywhere, and
    all others 0-0.15. Each later view multiplies every TF's level by a factor in [0.6, 1.5]
    (first view = reference), which shifts expression but never crosses the activity threshold.
    """
    cts, tfs = list(preset.cell_types), list(preset.tfs)
    active = np.zeros((len(cts), len(tfs)), dtype=bool)
    for i, ct in enumerate(cts):
        for j, tf in enumerate(tfs):
            active[i, j] = tf in UBIQUITOUS_TFS or tf in LINEAGE_TFS[ct]
    base = np.where(
        active, rng.uniform(0.6, 1.0, active.shape), rng.uniform(0.0, 0.15, active.shape)
    )
    factors = np.ones((len(views), len(tfs)))
    if len(views) > 1:
        factors[1:] = np.clip(np.exp(rng.normal(0.0, 0.35, (len(views) - 1, len(tfs)))), 0.6, 1.5)
    activity = base[None, :, :] * factors[:, None, :]
    return activity, active


def _pick_spaced(
    centers: np.ndarray,
    owner: np.ndarray,
    quota: np.ndarray,
    blocked: np.ndarray,
    min_distance: int,
) -> np.ndarray:
    """Greedy pick (in the given order) of centres >= ``min_distance`` apart and from ``blocked``.

    ``owner[i]`` indexes ``quota``: at most ``quota[o]`` candidates of each owner are kept.
    """
    taken: list[int] = []
    blocked_sorted = np.sort(blocked)
    left = quota.copy()
    kept: list[int] = []
    for i, (c, o) in enumerate(zip(centers.tolist(), owner.tolist(), strict=True)):
        if left[o] <= 0:
            continue
        j = int(np.searchsorted(blocked_sorted, c))
        if j < blocked_sorted.size and blocked_sorted[j] - c < TSS_EXCLUSION:
            continue
        if j > 0 and c - blocked_sorted[j - 1] < TSS_EXCLUSION:
            continue
        k = bisect.bisect_left(taken, c)
        if k < len(taken) and taken[k] - c < min_distance:
            continue
        if k > 0 and c - taken[k - 1] < min_distance:
            continue
        taken.insert(k, c)
        left[o] -= 1
        kept.append(i)
    return np.array(kept, dtype=np.int64)


def place_peaks(
    rng: np.random.Generator, genome: Genome, genes: pd.DataFrame, preset: Preset
) -> pd.DataFrame:
    """Promoter peaks at TSSs, enhancers linked to genes, and unlinked intergenic enhancers.

    Enhancers keep >= 1.2 kb from each other and >= 2.5 kb from every TSS (so TSS flanks stay
    background, as in real genomes at this gene density).
    """
    rows: list[tuple[str, int, str, str]] = []  # chrom, center, kind, linked gene
    for chrom, tss, strand, name in zip(
        genes.chrom.tolist(),
        genes.tss.tolist(),
        genes.strand.tolist(),
        genes.gene_name.tolist(),
        strict=True,
    ):
        shift = round(float(rng.normal(30, 20))) * (-1 if strand == "+" else 1)  # just upstream
        rows.append((chrom, int(tss) + shift, "promoter", name))
    n_inter = round(preset.intergenic_enhancers / len(genome.autosomes))
    for chrom in genome.autosomes:
        length = genome.sequences[chrom].size
        on_chrom = genes[genes.chrom == chrom].reset_index(drop=True)
        names = [*on_chrom.gene_name.tolist(), ""]  # owner index len(on_chrom) = intergenic
        quota = np.append(rng.poisson(preset.enhancers_per_gene, len(on_chrom)), n_inter)
        cand_center: list[int] = []
        cand_owner: list[int] = []
        for gi, (tss, q) in enumerate(zip(on_chrom.tss.tolist(), quota[:-1].tolist(), strict=True)):
            m = 6 * int(q)
            dist = rng.uniform(3_000, preset.max_link_distance, m).astype(np.int64)
            cand_center.extend((tss + dist * rng.choice([-1, 1], m)).tolist())
            cand_owner.extend([gi] * m)
        cand_center.extend(rng.integers(2_000, length - 2_000, 6 * n_inter).tolist())
        cand_owner.extend([len(on_chrom)] * (6 * n_inter))
        centers = np.array(cand_center, dtype=np.int64)
        owner = np.array(cand_owner, dtype=np.int64)
        inside = np.flatnonzero((centers > 2_000) & (centers < length - 2_000))
        order = rng.permutation(inside)
        keep = order[
            _pick_spaced(centers[order], owner[order], quota, on_chrom.tss.to_numpy(), 1_200)
        ]
        for k in np.sort(keep):
            name = names[owner[k]]
            rows.append((chrom, int(centers[k]), "enhancer" if name else "intergenic", name))
    frame = pd.DataFrame(rows, columns=["chrom", "center", "kind", "gene"])
    width = rng.integers(400, 701, len(frame))
    frame["start"] = frame.center - width // 2
    frame["end"] = frame.start + width
    strength = rng.lognormal(0.0, 0.5, len(frame))
    frame["strength"] = np.where(frame.kind == "promoter", 2.0 * strength, strength)
    frame["_chrom_no"] = frame.chrom.str[3:].astype(int)
    frame = (
        frame.sort_values(["_chrom_no", "start"]).drop(columns="_chrom_no").reset_index(drop=True)
    )
    frame.insert(0, "peak_id", [f"peak{i + 1:06d}" for i in range(len(frame))])
    return frame[["peak_id", "chrom", "start", "end", "center", "kind", "gene", "strength"]]


def build_world(
    rng: np.random.Generator,
    preset: Preset,
    genome: Genome,
    genes: pd.DataFrame,
    motifs: list[Motif],
    views: list[str],
    cofactors: list[Motif] | None = None,
) -> World:
    """Peaks, activities, GRN, openness, planted motifs and binding truth (see module docstring).

    ``cofactors`` (the motifs of :data:`scregnet.simulate.realism.COFACTOR_TFS`) are needed when
    the preset has ``realism``.
    """
    tfs = list(preset.tfs)
    cts = list(preset.cell_types)
    peaks = place_peaks(rng, genome, genes, preset)
    activity, active = tf_activity(rng, preset, views)
    forms, opener = _realistic_forms(rng, preset, motifs, cofactors, active)
    drivers, edge_rows, edge_sites = _plant_grn(rng, genes, peaks, tfs)
    open_ = _openness(rng, genes, peaks, drivers, active, opener, tfs)

    # --- plant motif sequences (peaks, then decoys in closed background chromatin)
    present, bindable, site_rows, site_rules, given = _plant_peak_motifs(
        rng, preset, genome, peaks, drivers, motifs, forms
    )
    _plant_decoys(rng, genome, peaks, motifs, tfs, preset.decoy_motifs_per_tf, site_rows)
    sites = pd.DataFrame(site_rows, columns=["chrom", "start", "end", "strand", "tf", "peak_id"])

    bound = open_[:, :, None] & bindable[None, :, :] & active[:, None, :]
    kept, kept_sites, edge_bound = _bound_edges(bound, edge_rows, edge_sites)
    edges = _edge_table(kept, genes, tfs)
    sites["target"] = _site_targets(sites, kept, kept_sites, peaks, genes, tfs)
    world = World(
        preset=preset,
        genome=genome,
        genes=genes,
        peaks=peaks,
        motifs=motifs,
        tfs=tfs,
        cell_types=cts,
        views=views,
        activity=activity,
        active=active,
        open=open_,
        motif_present=present,
        motif_sites=sites,
        edges=edges,
        edge_bound=edge_bound,
        motif_bindable=bindable,
        given_motifs=given,
        opener=opener,
        site_rules=site_rules,
    )
    log.info(
        "world: %d genes, %d peaks (%d promoters), %d TFs, %d cell types, %d GRN edges, %d motif sites",
        len(genes),
        len(peaks),
        int((peaks.kind == "promoter").sum()),
        len(tfs),
        len(cts),
        len(edges),
        len(sites),
    )
    return world


def _realistic_forms(
    rng: np.random.Generator,
    preset: Preset,
    motifs: list[Motif],
    cofactors: list[Motif] | None,
    active: np.ndarray,
) -> tuple[real.Motifs | None, np.ndarray]:
    """With ``realism``: the motif forms and the opening TFs; without: (None, ``active``)."""
    realism = preset.realism
    if realism is None:
        return None, active
    if cofactors is None:
        msg = "a preset with realism needs the cofactor motifs"
        raise ValueError(msg)
    tfs = list(preset.tfs)
    forms = real.realistic_motifs(rng, realism, tfs, motifs, cofactors)
    return forms, real.opening_tfs(rng, realism, active, tfs)


_Edge = tuple[int, int, int, float, float, float]  # tf, gene, sign, weight, hill_k, hill_n


def _plant_grn(
    rng: np.random.Generator, genes: pd.DataFrame, peaks: pd.DataFrame, tfs: list[str]
) -> tuple[list[list[int]], list[_Edge], list[list[int]]]:
    """Draw the GRN and each peak's driver TFs: (drivers, candidate edges, each edge's sites)."""
    n_tf = len(tfs)
    gene_index = {g: i for i, g in enumerate(genes.gene_name)}
    weights = _tf_weights(tfs)
    drivers: list[list[int]] = [[] for _ in range(len(peaks))]
    promoter_of = {g: i for i, g in enumerate(peaks.gene) if peaks.kind.iloc[i] == "promoter"}
    enhancers_of: dict[str, list[int]] = {}
    for i, (kind, g) in enumerate(zip(peaks.kind, peaks.gene, strict=True)):
        if kind == "enhancer":
            enhancers_of.setdefault(g, []).append(i)

    # --- the GRN: regulators planted at target promoters / linked enhancers
    edge_rows: list[_Edge] = []
    edge_sites: list[list[int]] = []
    for g_name in genes.gene_name[~genes.is_tf]:
        if rng.random() > 0.65:
            continue
        k = min(1 + rng.poisson(0.8), 3)
        regs = rng.choice(n_tf, size=k, replace=False, p=weights)
        candidates = [promoter_of[g_name], *enhancers_of.get(g_name, [])]
        for t in regs:
            site = (
                candidates[0]
                if rng.random() < 0.5 or len(candidates) == 1
                else int(rng.choice(candidates[1:]))
            )
            if len(drivers[site]) >= MAX_MOTIFS_PER_PEAK or t in drivers[site]:
                continue
            drivers[site].append(int(t))
            sign = 1 if rng.random() < 0.75 else -1
            edge_rows.append(
                (
                    int(t),
                    gene_index[g_name],
                    sign,
                    rng.uniform(0.5, 1.5),
                    rng.uniform(0.25, 0.6),
                    float(rng.choice([1, 2, 3])),
                )
            )
            edge_sites.append([site])
    # --- drivers for enhancers without regulators: bound sites near genes that are not edges
    for i, kind in enumerate(peaks.kind):
        if kind != "promoter" and not drivers[i]:
            k = 1 + int(rng.random() < 0.4)
            drivers[i].extend(int(t) for t in rng.choice(n_tf, size=k, replace=False, p=weights))
    return drivers, edge_rows, edge_sites


def _openness(
    rng: np.random.Generator,
    genes: pd.DataFrame,
    peaks: pd.DataFrame,
    drivers: list[list[int]],
    active: np.ndarray,
    opener: np.ndarray,
    tfs: list[str],
) -> np.ndarray:
    """(n_cell_types, n_peaks) openness: TF promoters, constitutive, driven and leaky peaks."""
    n_ct = active.shape[0]
    tf_index = {t: j for j, t in enumerate(tfs)}
    is_tf_gene = dict(zip(genes.gene_name, genes.is_tf, strict=True))
    open_ = np.zeros((n_ct, len(peaks)), dtype=bool)
    for i, (kind, g) in enumerate(zip(peaks.kind, peaks.gene, strict=True)):
        if kind == "promoter" and is_tf_gene[g]:
            # a TF's own promoter is open where the TF is active (it is expressed there)
            open_[:, i] = active[:, tf_index[g]] | (rng.random(n_ct) < 0.1)
        elif (kind == "promoter" and rng.random() < 0.75) or rng.random() < 0.1:
            open_[:, i] = True  # constitutive
        elif drivers[i]:
            driven = opener[:, drivers[i]].any(axis=1)
            open_[:, i] = (driven & (rng.random(n_ct) < 0.9)) | (rng.random(n_ct) < 0.03)
        else:
            open_[:, i] = rng.random(n_ct) < 0.5
        if not open_[:, i].any():  # every listed peak is open somewhere
            open_[rng.integers(n_ct), i] = True
    return open_


def _plant_decoys(
    rng: np.random.Generator,
    genome: Genome,
    peaks: pd.DataFrame,
    motifs: list[Motif],
    tfs: list[str],
    per_tf: int,
    site_rows: list[real.SiteRow],
) -> None:
    """Write ``per_tf`` instances of each motif outside peaks; append their rows to ``site_rows``."""
    peak_starts = {c: peaks.start[peaks.chrom == c].to_numpy() for c in genome.autosomes}
    peak_ends = {c: peaks.end[peaks.chrom == c].to_numpy() for c in genome.autosomes}
    for t in range(len(tfs)):
        placed = 0
        while placed < per_tf:
            chrom = genome.autosomes[int(rng.integers(len(genome.autosomes)))]
            seq = genome.sequences[chrom]
            s = int(rng.integers(5_000, seq.size - 5_000))
            if np.any((peak_starts[chrom] - 300 < s) & (peak_ends[chrom] + 300 > s)):
                continue
            inst, strand = sample_instance(motifs[t], rng)
            seq[s : s + inst.size] = inst
            site_rows.append((chrom, s, s + inst.size, strand, tfs[t], "."))
            placed += 1


def _bound_edges(
    bound: np.ndarray, edge_rows: list[_Edge], edge_sites: list[list[int]]
) -> tuple[list[_Edge], list[list[int]], np.ndarray]:
    """The edges bound at one of their sites in some cell type, their sites, and where bound."""
    kept: list[_Edge] = []
    kept_sites: list[list[int]] = []
    eb: list[np.ndarray] = []
    for row, sites_e in zip(edge_rows, edge_sites, strict=True):
        b = np.asarray(bound[:, sites_e, row[0]].any(axis=1))
        if b.any():
            kept.append(row)
            kept_sites.append(sites_e)
            eb.append(b)
    return kept, kept_sites, np.array(eb, dtype=bool).reshape(len(kept), bound.shape[0])


def _plant_peak_motifs(
    rng: np.random.Generator,
    preset: Preset,
    genome: Genome,
    peaks: pd.DataFrame,
    drivers: list[list[int]],
    motifs: list[Motif],
    forms: real.Motifs | None,
) -> tuple[np.ndarray, np.ndarray, list[real.SiteRow], pd.DataFrame | None, list[Motif]]:
    """Plant the drivers' motifs in the peaks: (present, bindable, site rows, rules, given motifs)."""
    tfs = list(preset.tfs)
    if preset.realism is not None and forms is not None:
        present, bindable, site_rows, site_rules = real.plant(
            rng, preset.realism, genome, peaks, drivers, motifs, forms, tfs, SLOT_OFFSETS
        )
        return present, bindable, site_rows, site_rules, forms.given
    present, site_rows = _plant_sites(rng, genome, peaks, drivers, motifs, tfs)
    return present, present, site_rows, None, motifs


def _edge_table(kept: list[_Edge], genes: pd.DataFrame, tfs: list[str]) -> pd.DataFrame:
    """The kept edges as a frame: tf, target, then the drawn edge parameters."""
    edges = pd.DataFrame(
        kept, columns=["tf_index", "gene_index", "sign", "weight", "hill_k", "hill_n"]
    )
    edges.insert(0, "target", genes.gene_name.to_numpy()[edges.gene_index.to_numpy()])
    edges.insert(0, "tf", np.array(tfs)[edges.tf_index.to_numpy()])
    return edges


def _site_targets(
    sites: pd.DataFrame,
    kept: list[_Edge],
    kept_sites: list[list[int]],
    peaks: pd.DataFrame,
    genes: pd.DataFrame,
    tfs: list[str],
) -> np.ndarray:
    """Each planted site's target gene where it backs a kept edge ('.' elsewhere)."""
    site_key = {(r.peak_id, r.tf): k for k, r in enumerate(sites.itertuples()) if r.peak_id != "."}
    target_col = np.full(len(sites), ".", dtype=object)
    for row, sites_e in zip(kept, kept_sites, strict=True):
        for site in sites_e:
            target_col[site_key[(peaks.peak_id.iloc[site], tfs[row[0]])]] = genes.gene_name.iloc[
                row[1]
            ]
    return target_col


def _plant_sites(
    rng: np.random.Generator,
    genome: Genome,
    peaks: pd.DataFrame,
    drivers: list[list[int]],
    motifs: list[Motif],
    tfs: list[str],
) -> tuple[np.ndarray, list[tuple[str, int, int, str, str, str]]]:
    """Write each peak's driver motifs into its slots; ``present`` (peaks x TFs) and site rows."""
    present = np.zeros((len(peaks), len(tfs)), dtype=bool)
    site_rows: list[tuple[str, int, int, str, str, str]] = []
    peak_cols = zip(
        peaks.chrom.tolist(), peaks.center.tolist(), peaks.peak_id.tolist(), strict=True
    )
    for i, (p_chrom, p_center, p_id) in enumerate(peak_cols):
        seq = genome.sequences[p_chrom]
        for slot, t in enumerate(drivers[i]):
            inst, strand = sample_instance(motifs[t], rng)
            mid = int(p_center) + SLOT_OFFSETS[slot] + int(rng.integers(-4, 5))
            s = mid - inst.size // 2
            seq[s : s + inst.size] = inst
            present[i, t] = True
            site_rows.append((p_chrom, s, s + inst.size, strand, tfs[t], p_id))
    return present, site_rows
