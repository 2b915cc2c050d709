"""Genome references: chromosome sizes (``.fai`` or ``chrom.sizes``), FASTA access, and the checks
that another file (a BAM header, an annotation, counted data) names and sizes its chromosomes as
the genome does."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from scregnet.errors import InputError, first_line
from scregnet.io.quiet import quiet_htslib
from scregnet.io.text import reading

if TYPE_CHECKING:
    import pysam


def read_chrom_sizes(path: str | Path) -> dict[str, int]:
    """Chromosome -> length from a FASTA index (``.fai``), a ``chrom.sizes`` file, or a FASTA with an index."""
    path = Path(path)
    if not path.exists():
        msg = "genome index does not exist"
        raise InputError(msg, path)
    if path.suffix in {".fa", ".fasta", ".fna"} or path.name.endswith((".fa.gz", ".fasta.gz")):
        fai = Path(str(path) + ".fai")
        if not fai.exists():
            msg = "FASTA has no .fai index (run `samtools faidx`)"
            raise InputError(msg, path)
        check_index_fits(path, fai)
        path = fai
    sizes: dict[str, int] = {}
    with reading(path), path.open() as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2:
                fields = line.split()
            try:
                name, length = fields[0], int(fields[1])
            except (IndexError, ValueError) as exc:
                msg = f"line {lineno} is not 'name<TAB>length'"
                raise InputError(msg, path) from exc
            if length <= 0:
                msg = f"line {lineno}: chromosome {name} has length {length}; lengths must be > 0"
                raise InputError(msg, path)
            if name in sizes:
                msg = f"line {lineno}: chromosome {name} is listed twice"
                raise InputError(msg, path)
            sizes[name] = length
    if not sizes:
        msg = "genome index lists no chromosomes"
        raise InputError(msg, path)
    return sizes


def check_index_fits(fasta: Path, fai: Path) -> None:
    """An :class:`InputError` when an uncompressed FASTA's size is not what its ``.fai`` says (the
    last record's offset plus its bytes, give or take a line end): the FASTA was changed after it
    was indexed, so the index would read other bases or lengths. A compressed FASTA is not
    checked (its offsets are not file positions)."""
    if fasta.name.endswith(".gz"):
        return
    stamps = [(p.stat().st_size, p.stat().st_mtime_ns) for p in (fasta, fai)]
    _check_fits(str(fasta), str(fai), *stamps)


@functools.lru_cache(maxsize=16)
def _check_fits(fasta_name: str, fai_name: str, *_stamps: tuple[int, int]) -> None:
    """:func:`check_index_fits` once per process for the same two files (sizes and times in
    ``_stamps``): a command opens its FASTA several times."""
    fasta, fai = Path(fasta_name), Path(fai_name)
    last: tuple[int, ...] | None = None
    with reading(fai), fai.open() as handle:
        for line in handle:
            fields = line.split("\t")
            try:
                record = tuple(int(f) for f in fields[1:5])
            except ValueError:
                return  # not a samtools index (read_chrom_sizes reports a malformed one)
            if len(record) == 4 and (last is None or record[1] > last[1]):
                last = record
    if last is None:
        return
    length, offset, bases, width = last
    if bases <= 0 or width < bases:
        return
    end = (
        offset
        + (length // bases) * width
        + (length % bases)
        + (width - bases) * bool(length % bases)
    )
    size = fasta.stat().st_size
    if not end - (width - bases) <= size <= end + width:
        msg = (
            f"FASTA is {size} bytes where its index {fai.name} says about {end}: it changed after "
            "it was indexed (run `samtools faidx` again)"
        )
        raise InputError(msg, fasta)


def open_fasta(path: str | Path) -> pysam.FastaFile:
    """Open an indexed FASTA (builds the ``.fai`` when it is missing and the directory is writable)."""
    import pysam

    path = Path(path)
    if not path.exists():
        msg = "FASTA does not exist"
        raise InputError(msg, path)
    if _plain_gzip(path):
        msg = "compressed with gzip, not bgzip: recompress it with `bgzip` (or gunzip it)"
        raise InputError(msg, path)
    fai = Path(str(path) + ".fai")
    if fai.exists():
        check_index_fits(path, fai)
    try:
        with quiet_htslib():
            return pysam.FastaFile(str(path))
    except (OSError, ValueError) as exc:
        msg = f"cannot open FASTA ({exc})"
        raise InputError(msg, path) from exc


def _plain_gzip(path: Path) -> bool:
    """``path`` is gzip-compressed but not BGZF (no ``BC`` extra field), which htslib cannot
    index or seek."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    return head[:2] == b"\x1f\x8b" and not (head[3] & 4 and head[12:14] == b"BC")


def check_shared_chromosomes(
    names: Iterable[str], reference: Iterable[str], *, what: str, ref_what: str, path: str | Path
) -> None:
    """Fail with both naming styles shown when no name of ``names`` is in ``reference``: an
    annotation of another naming style (Ensembl's ``1`` against UCSC's ``chr1``) or assembly,
    which would otherwise match nothing and give empty results without an error."""
    names = list(dict.fromkeys(str(n) for n in names))
    ref = set(reference)
    if not names or any(n in ref for n in names):
        return
    msg = (
        f"no chromosome name of the {what} is in the {ref_what} "
        f"(e.g. {', '.join(names[:3])} vs {', '.join(sorted(ref)[:3])})"
    )
    raise InputError(msg, path)


def check_same_chromosomes(
    names: Iterable[str], reference: Iterable[str], *, what: str, ref_what: str, path: str | Path
) -> None:
    """Fail with both naming styles shown when ``names`` are not found in ``reference``.

    Typical case: ``chr1`` in a peaks file against ``1`` in a genome index.
    """
    names = list(dict.fromkeys(names))
    ref = set(reference)
    missing = [n for n in names if n not in ref]
    if not missing:
        return
    example_ref = ", ".join(sorted(ref)[:3])
    msg = (
        f"{len(missing)} chromosome name(s) in the {what} are not in the {ref_what} "
        f"(e.g. {', '.join(missing[:3])} vs {example_ref})"
    )
    raise InputError(msg, path)


#: mitochondrial contig names (UCSC, Ensembl/NCBI): the one list that :func:`check_same_lengths`
#: ignores and that fragments, counts, tracks, TF-binding training and TF-binding prediction shards
#: leave out by default (``pipeline.contigs`` and ``workflows/scregnet.nf`` repeat it)
MITOCHONDRIAL = ("chrM", "MT", "M", "chrMT")


def check_same_lengths(
    lengths: Mapping[str, int],
    reference: Mapping[str, int],
    *,
    what: str,
    ref_what: str,
    path: str | Path,
) -> None:
    """Fail when a chromosome named in both has another length in each: the two come from
    different assemblies that name their chromosomes alike (hg19's ``chr1`` is 249,250,621 bp,
    hg38's 248,956,422), so positions in one are other bases in the other. Names in only one of
    them are not checked here, nor the mitochondrial genome (:data:`MITOCHONDRIAL`): builds of
    one assembly differ there (UCSC hg19's ``chrM`` is 16,571 bp, the rCRS 16,569) and single-cell
    ATAC leaves it out."""
    differ = [
        (name, int(n), int(reference[name]))
        for name, n in lengths.items()
        if name in reference and name not in MITOCHONDRIAL and int(n) != int(reference[name])
    ]
    if not differ:
        return
    name, n, ref = differ[0]
    msg = (
        f"{len(differ)} chromosome(s) have another length in the {what} than in the {ref_what} "
        f"(e.g. {name}: {n:,} vs {ref:,} bp): they come from different genome assemblies"
    )
    raise InputError(msg, path)


def bam_reference_lengths(path: str | Path) -> dict[str, int]:
    """Reference name -> length from a BAM's header; an unreadable BAM is an :class:`InputError`."""
    import pysam

    try:
        with quiet_htslib(), pysam.AlignmentFile(str(path), "rb", check_sq=False) as bam:
            return dict(zip(bam.references, map(int, bam.lengths), strict=True))
    except (OSError, ValueError) as exc:
        msg = f"not a readable BAM ({first_line(exc)})"
        raise InputError(msg, path) from exc


def check_bam_genome(bam: str | Path, genome: Mapping[str, int], *, ref_what: str) -> None:
    """The BAM was aligned to ``genome`` (chromosome -> length): its header shares chromosome
    names with it (:func:`check_shared_chromosomes`) and gives them its lengths
    (:func:`check_same_lengths`)."""
    header = bam_reference_lengths(bam)
    check_shared_chromosomes(header, genome, what="BAM header", ref_what=ref_what, path=bam)
    check_same_lengths(header, genome, what="BAM header", ref_what=ref_what, path=bam)
