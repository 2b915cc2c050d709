"""BAM -> 10x-style fragments: pair reads, Tn5-shift, filter, collapse duplicates per cell.

A fragment is one read pair whose two mates pass the filters (mapped, primary, not QC-failed,
properly paired unless ``proper_pair=False``, MAPQ >= ``min_mapq``) on a contig that is not
excluded. Its coordinates are the Tn5 insertion sites: the + strand read's start shifted by
``shift_plus`` (+4) and the - strand read's end shifted by ``shift_minus`` (-5), 0-based
half-open. The cell barcode is the ``barcode_tag`` of the first mate (or of the second when the
first has none). Reads flagged as duplicates are *not* dropped: duplicates are collapsed here, and
column 5 of the output counts the read pairs behind each fragment.

Duplicate collapsing (``collapse``):

* ``within`` (default, Cell Ranger / SnapATAC2 / ``sinto --collapse_within``): pairs with the
  same chrom, start, end *and* barcode are one fragment.
* ``across`` (sinto's default): pairs with the same chrom, start and end are one fragment even
  across barcodes; it is assigned to the barcode with the most pairs (ties: the barcode seen first)
  and counts all of them.

``merge_shared_ends=True`` reproduces sinto (>= 0.8): before the step above, fragments of one cell
that share their start (then, in a second pass, their end) are merged into the best-supported one
(ties: the one seen first in the BAM), e.g. a pair whose mate was soft-clipped.

Contigs are processed independently (in parallel with ``threads``), each worker writing its
sorted fragments as a BGZF part; parts are concatenated in BAM header order and tabix-indexed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from scregnet.atac.options import Collapse, FragmentOptions
from scregnet.errors import InputError
from scregnet.io.atomic import make_parent, scratch_dir
from scregnet.io.fragments import format_fragments, write_bgzf, write_fragment_parts
from scregnet.io.outputs import writing
from scregnet.worker_pool import map_in_processes

log = logging.getLogger(__name__)

# unmapped, mate unmapped, secondary, QC fail, supplementary
_DROP_FLAGS = 0x4 | 0x8 | 0x100 | 0x200 | 0x800
_PROPER_PAIR = 0x2
_REVERSE = 0x10
_PRUNE_EVERY = 1 << 18


@dataclass
class ContigStats:
    """What happened to the reads of one contig."""

    contig: str
    reads: int = 0
    reads_passing: int = 0
    reads_tagged: int = 0
    #: tagged reads whose barcode is one of ``FragmentOptions.barcodes`` (all tagged ones without)
    reads_listed: int = 0
    pairs: int = 0
    pairs_wrong_length: int = 0
    pairs_no_barcode: int = 0
    fragments: int = 0

    def add(self, other: ContigStats) -> None:
        for key, value in asdict(other).items():
            if key != "contig":
                setattr(self, key, getattr(self, key) + value)


@dataclass
class FragmentsResult:
    """Summary of a :func:`bam_to_fragments` run."""

    path: Path
    stats: ContigStats
    per_contig: list[ContigStats] = field(default_factory=list)


def open_bam(path: str | Path) -> object:
    """Open a coordinate-sorted, indexed BAM; an :class:`InputError` for each way it can be unusable."""
    import pysam

    from scregnet.io.quiet import quiet_htslib

    path = Path(path)
    if not path.exists():
        msg = "BAM file does not exist"
        raise InputError(msg, path)
    if path.is_dir():
        msg = "is a folder, not a BAM file"
        raise InputError(msg, path)
    try:
        with quiet_htslib():
            bam = pysam.AlignmentFile(str(path), "rb")
    except (ValueError, OSError) as exc:
        msg = f"not a readable BAM file ({exc})"
        raise InputError(msg, path) from exc
    order = bam.header.to_dict().get("HD", {}).get("SO")
    if order is not None and order != "coordinate":
        bam.close()
        msg = f"BAM is not coordinate-sorted (@HD SO:{order}); run `samtools sort` then `samtools index`"
        raise InputError(msg, path)
    if not bam.has_index():
        bam.close()
        msg = "BAM has no index (.bai/.csi); run `samtools index` on it"
        raise InputError(msg, path)
    try:  # an index that is not a BAM index fails on the first fetch
        with quiet_htslib():
            for contig in bam.references:
                for _ in bam.fetch(contig):
                    break
    except (ValueError, OSError) as exc:
        with contextlib.suppress(OSError):
            bam.close()
        msg = f"BAM cannot be read through its index ({exc}); rebuild it with `samtools index`"
        raise InputError(msg, path) from exc
    return bam


def _group_starts(*keys: np.ndarray) -> np.ndarray:
    """Indices where any of the (already sorted) ``keys`` changes, starting with 0."""
    n = keys[0].size
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(change)


def _collapse_exact(
    start: np.ndarray, end: np.ndarray, bc: np.ndarray, order: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Unique (start, end, barcode) with their pair count and first-seen order."""
    idx = np.lexsort((order, bc, end, start))
    start, end, bc, order = start[idx], end[idx], bc[idx], order[idx]
    first = _group_starts(start, end, bc)
    count = np.diff(np.append(first, start.size))
    return start[first], end[first], bc[first], count, order[first]


def _merge_groups(
    keys: tuple[np.ndarray, ...],
    start: np.ndarray,
    end: np.ndarray,
    bc: np.ndarray,
    count: np.ndarray,
    order: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Merge fragments sharing ``keys`` into the one with the most pairs (ties: seen first)."""
    # lexsort: last key is primary -> group keys, then -count, then first-seen order
    idx = np.lexsort((order, -count, *keys[::-1]))
    start, end, bc, count, order = start[idx], end[idx], bc[idx], count[idx], order[idx]
    first = _group_starts(*(k[idx] for k in keys))
    total = np.add.reduceat(count, first)
    return start[first], end[first], bc[first], total, order[first]


def collapse_fragments(
    start: np.ndarray,
    end: np.ndarray,
    bc: np.ndarray,
    order: np.ndarray,
    *,
    collapse: Collapse = "within",
    merge_shared_ends: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Collapse read pairs of one contig into fragments ``(start, end, barcode, count)``.

    ``order`` is the position of each pair's first read in the BAM (breaks ties the way sinto
    does). Output is in no particular order.
    """
    if start.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    s, e, b, c, o = _collapse_exact(start, end, bc, order)
    if merge_shared_ends:
        s, e, b, c, o = _merge_groups((b, s), s, e, b, c, o)
        s, e, b, c, o = _merge_groups((b, e), s, e, b, c, o)
    if collapse == "across":
        s, e, b, c, o = _merge_groups((s, e), s, e, b, c, o)
    return s, e, b, c


def _contig_fragments(
    bam_path: str, contig: str, options: FragmentOptions, part: str
) -> ContigStats:
    """Worker: fragments of one contig, sorted, written as a BGZF part file.

    A BAM that cannot be read (e.g. its index belongs to another file) is an error naming the BAM.
    """
    from scregnet.io.outputs import write_error
    from scregnet.io.quiet import quiet_htslib

    try:
        with quiet_htslib():
            return _read_contig(bam_path, contig, options, part)
    except (OSError, ValueError) as exc:
        if write_error(exc, part) is not None:
            raise  # the part file could not be written: reported for the output
        msg = f"BAM cannot be read on {contig} ({exc}); is the index of this BAM? rebuild it with `samtools index`"
        raise InputError(msg, bam_path) from exc


def _read_contig(bam_path: str, contig: str, options: FragmentOptions, part: str) -> ContigStats:
    import pysam

    stats = ContigStats(contig)
    tag = options.barcode_tag
    min_mapq = options.min_mapq
    need_proper = options.proper_pair
    shift_plus, shift_minus = options.shift_plus, options.shift_minus
    min_len = options.min_length
    max_len = options.max_length if options.max_length is not None else np.iinfo(np.int64).max
    whitelist = options.barcodes
    pending: dict[str, tuple[int, int, str | None, int, int]] = {}
    starts, ends, bcs, orders = array("q"), array("q"), array("i"), array("q")
    bc_index: dict[str, int] = {}
    bc_names: list[str] = []
    last = -1
    reads = passing = tagged = listed = pairs = wrong_len = no_bc = 0
    with pysam.AlignmentFile(bam_path, "rb") as bam:
        for i, read in enumerate(bam.fetch(contig)):
            reads += 1
            pos0 = read.reference_start
            if pos0 < last:
                msg = f"BAM is not coordinate-sorted ({contig}:{pos0 + 1} after {last + 1}); run `samtools sort`"
                raise InputError(msg, bam_path)
            last = pos0
            if i & (_PRUNE_EVERY - 1) == 0 and pending:
                # mates expected upstream of here can no longer arrive
                pending = {k: v for k, v in pending.items() if v[4] >= pos0}
            flag = read.flag
            if flag & _DROP_FLAGS or (need_proper and not flag & _PROPER_PAIR):
                continue
            if read.mapping_quality < min_mapq:
                continue
            try:
                bc: str | None = read.get_tag(tag)  # type: ignore[assignment]
                tagged += 1
            except KeyError:
                bc = None
            if bc is not None:
                if whitelist is not None and bc not in whitelist:
                    continue
                listed += 1
            passing += 1
            qname = read.query_name
            rev = flag & _REVERSE
            site = read.reference_end + shift_minus if rev else pos0 + shift_plus  # type: ignore[operator]
            mate = pending.pop(qname, None)  # type: ignore[arg-type]
            if mate is None:
                mate_start = read.next_reference_start
                if read.next_reference_id == read.reference_id and mate_start >= pos0:
                    pending[qname] = (rev, site, bc, i, mate_start)  # type: ignore[index]
                continue
            mate_rev, mate_site, mate_bc, first_seen, _ = mate
            if mate_rev == rev:
                continue
            pairs += 1
            frag_start, frag_end = (mate_site, site) if rev else (site, mate_site)
            length = frag_end - frag_start
            if length < min_len or length > max_len:
                wrong_len += 1
                continue
            if mate_bc is None:
                mate_bc = bc
            if mate_bc is None:
                no_bc += 1
                continue
            j = bc_index.get(mate_bc)
            if j is None:
                j = bc_index[mate_bc] = len(bc_names)
                bc_names.append(mate_bc)
            starts.append(frag_start)
            ends.append(frag_end)
            bcs.append(j)
            orders.append(first_seen)
    s, e, b, c = collapse_fragments(
        np.frombuffer(starts, dtype=np.int64),
        np.frombuffer(ends, dtype=np.int64),
        np.frombuffer(bcs, dtype=np.int32),
        np.frombuffer(orders, dtype=np.int64),
        collapse=options.collapse,
        merge_shared_ends=options.merge_shared_ends,
    )
    # output order: start, end, barcode string
    rank = np.argsort(np.argsort(np.asarray(bc_names, dtype=object))) if bc_names else b
    idx = np.lexsort((rank[b] if bc_names else b, e, s))
    s, e, b, c = s[idx], e[idx], b[idx], c[idx]
    write_bgzf(part, format_fragments(contig, s, e, bc_names, b, c))
    stats.reads, stats.reads_passing, stats.reads_tagged = reads, passing, tagged
    stats.reads_listed = listed
    stats.pairs, stats.pairs_wrong_length, stats.pairs_no_barcode = pairs, wrong_len, no_bc
    stats.fragments = int(s.size)
    return stats


def read_barcode_list(path: str | Path) -> list[str]:
    """Barcodes, one per line (first tab/comma-separated field; plain or gzipped)."""
    import gzip

    path = Path(path)
    if not path.exists():
        msg = "barcode list does not exist"
        raise InputError(msg, path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt") as handle:
            names = [
                line.strip().replace(",", "\t").split("\t")[0]
                for line in handle
                if line.strip() and not line.startswith("#")
            ]
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        msg = f"cannot read barcode list ({exc})"
        raise InputError(msg, path) from exc
    if not names:
        msg = "barcode list is empty"
        raise InputError(msg, path)
    return list(dict.fromkeys(names))


def bam_to_fragments(
    bam: str | Path,
    out: str | Path,
    *,
    options: FragmentOptions | None = None,
    threads: int = 1,
) -> FragmentsResult:
    """Write the fragments of ``bam`` to ``out`` (bgzip + ``.tbi``), atomically."""
    options = options or FragmentOptions()
    bam, out = Path(bam), Path(out)
    contigs, size = _contig_sizes(bam, options)
    began = time.perf_counter()
    log.info(
        "reading %s: %d contig(s), tag %s, MAPQ >= %d, collapse %s%s, %d thread(s)",
        bam,
        len(contigs),
        options.barcode_tag,
        options.min_mapq,
        options.collapse,
        " + shared ends" if options.merge_shared_ends else "",
        threads,
    )
    total = ContigStats("all")
    per_contig: list[ContigStats] = []
    make_parent(out)
    with (
        writing(out),
        scratch_dir(out, "parts") as tmp,
    ):
        parts = [tmp / f"{k:05d}.gz" for k in range(len(contigs))]
        for stats in _all_contig_fragments(bam, contigs, size, parts, options, threads):
            per_contig.append(stats)
            total.add(stats)
        _check_totals(total, options, bam)
        write_fragment_parts(parts, out)
    log.info(
        "wrote %s: %d fragments from %d read pairs (%d reads, %d pass filters) in %.1f s",
        out,
        total.fragments,
        total.pairs,
        total.reads,
        total.reads_passing,
        time.perf_counter() - began,
    )
    return FragmentsResult(out, total, per_contig)


def _contig_sizes(bam: Path, options: FragmentOptions) -> tuple[list[str], dict[str, int]]:
    """The BAM's contigs left after ``exclude_contigs``, and every contig's length."""
    handle = open_bam(bam)
    references: Sequence[str] = handle.references  # type: ignore[attr-defined]
    lengths: Sequence[int] = handle.lengths  # type: ignore[attr-defined]
    excluded = set(options.exclude_contigs)
    _log_left_out(handle, [c for c in references if c in excluded])
    handle.close()  # type: ignore[attr-defined]
    contigs = [c for c in references if c not in excluded]
    if not contigs:
        msg = "every contig of the BAM is excluded"
        raise InputError(msg, bam)
    return contigs, dict(zip(references, lengths, strict=True))


def _log_left_out(handle: object, left_out: list[str]) -> None:
    """Log the share of mapped reads on the contigs ``left_out`` (the mitochondrial share, by
    default), from the BAM index's counts; nothing when the index holds none."""
    if not left_out:
        return
    try:
        stats = handle.get_index_statistics()  # type: ignore[attr-defined]
    except (ValueError, OSError):
        return
    mapped = {s.contig: s.mapped for s in stats}
    total = sum(mapped.values())
    out = sum(mapped.get(c, 0) for c in left_out)
    log.info(
        "%s left out (--exclude-contigs): %d of %d mapped reads (%.1f %%)",
        ", ".join(left_out),
        out,
        total,
        100.0 * out / max(total, 1),
    )


def _all_contig_fragments(
    bam: Path,
    contigs: list[str],
    size: dict[str, int],
    parts: list[Path],
    options: FragmentOptions,
    threads: int,
) -> list[ContigStats]:
    """Each contig's fragments into its part file (largest first over ``threads`` processes)."""
    if threads > 1 and len(contigs) > 1:
        return map_in_processes(
            _contig_fragments,
            [
                (str(bam), contig, options, str(part))
                for contig, part in zip(contigs, parts, strict=True)
            ],
            threads,
            order=sorted(range(len(contigs)), key=lambda k: -size[contigs[k]]),
            what="a fragments worker process",
        )
    return [
        _contig_fragments(str(bam), contig, options, str(part))
        for contig, part in zip(contigs, parts, strict=True)
    ]


def _check_totals(total: ContigStats, options: FragmentOptions, bam: Path) -> None:
    """Refuse a BAM whose reads carry no barcode tag, none of the listed barcodes, or whose reads
    give no fragment."""
    if total.reads_passing and not total.reads_tagged:
        msg = f"no read carries the cell barcode tag {options.barcode_tag!r} (see --barcode-tag)"
        raise InputError(msg, bam)
    if options.barcodes is not None and total.reads_tagged and not total.reads_listed:
        msg = (
            f"none of the {len(options.barcodes)} barcode(s) of --barcodes is in the BAM's "
            f"{options.barcode_tag} tag ({total.reads_tagged} reads passing flags/MAPQ carry "
            "other barcodes)"
        )
        raise InputError(msg, bam)
    if total.fragments == 0:
        msg = (
            f"no fragment passed the filters ({total.reads} reads, {total.reads_passing} "
            f"passing flags/MAPQ, {total.pairs} pairs, {total.reads_tagged} tagged reads)"
        )
        raise InputError(msg, bam)
