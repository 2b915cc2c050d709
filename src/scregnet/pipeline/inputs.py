"""Checks of the run's input files that take seconds at most and would otherwise fail a step hours
in: every sample's BAM or fragments file, the GTF and the given peaks must name their chromosomes
in the genome index's style (UCSC's ``chr1`` or Ensembl's ``1``); the bulk RNA matrix, the GRN
labels and the TF list are read as their steps read them (before TF-binding training, which runs
first and takes hours).

A file sharing no chromosome name with the genome index is refused in one line naming it. Files
sharing some are left to the steps, which check every name against the genome as they read.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from scregnet.io.fragments import indexed_chromosomes
from scregnet.io.genome import check_bam_genome, check_shared_chromosomes
from scregnet.io.samplesheet import Sample
from scregnet.io.text import reading

#: a GTF or BED is read for its chromosome names until this many distinct names (a file that
#: starts with unplaced contigs the genome index lacks still reaches its chromosomes) ...
SNIFF_NAMES = 5
#: ... or this many data lines (a sorted human GTF's chr1 is about 250,000)
SNIFF_LINES = 1_000_000


def first_column(path: Path, *, names: int = SNIFF_NAMES, lines: int = SNIFF_LINES) -> list[str]:
    """The distinct first fields of a text table's data lines, in order, until ``names`` of them
    or ``lines`` lines (gzip by its name; ``#``, ``track`` and ``browser`` lines skipped)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    found: dict[str, None] = {}
    seen = 0
    with reading(path), opener(path, "rt") as handle:
        for line in handle:
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            found[line.split("\t", 1)[0].strip()] = None
            seen += 1
            if len(found) >= names or seen >= lines:
                break
    return list(found)


def check_chromosome_styles(
    samples: Sequence[Sample],
    genome: Mapping[str, int],
    *,
    fai: Path,
    gtf: Path | None = None,
    peaks: Path | None = None,
) -> None:
    """Every sample's BAM (header) or fragments (tabix index), the GTF and the peaks (their first
    chromosomes, :func:`first_column`) share at least one chromosome name with the genome index
    ``fai`` (chromosome -> length ``genome``), and a BAM's header gives each chromosome it shares
    with the index the index's length."""
    names = set(genome)
    ref = f"genome index {fai.name}"
    for s in samples:
        if s.bam is not None:
            check_bam_genome(s.bam, genome, ref_what=ref)
        if s.fragments is not None:
            found = indexed_chromosomes(s.fragments)
            check_shared_chromosomes(found, names, what="fragments", ref_what=ref, path=s.fragments)
    for path, what in ((gtf, "GTF"), (peaks, "peaks")):
        if path is not None and path.exists():
            check_shared_chromosomes(first_column(path), names, what=what, ref_what=ref, path=path)


@contextlib.contextmanager
def _without_info() -> Iterator[None]:
    """The readers' "read N ..." lines are the steps' to log, not the planning's."""
    logger = logging.getLogger("scregnet")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def check_bulk_rna(path: Path) -> None:
    """The bulk RNA matrix, read as IMPUTE reads it (:func:`scregnet.impute.data.read_bulk_tsv`);
    its genes are matched to each sample's cells by the step."""
    from scregnet.impute.data import read_bulk_tsv

    with _without_info():
        read_bulk_tsv(path)


def check_grn_lists(labels: Path | None, tfs: Path | None) -> None:
    """The GRN labels and the TF list, read as GRN_TRAIN and GRN_SCORE read them; their names
    are matched to the expression data's genes by the steps."""
    with _without_info():
        if labels is not None:
            from scregnet.grn.data import read_labels

            read_labels(labels)
        if tfs is not None:
            from scregnet.grn.api import read_tf_list

            read_tf_list(str(tfs))
