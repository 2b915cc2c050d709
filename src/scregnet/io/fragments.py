"""10x-style fragment files: ``chrom start end barcode count``, bgzip-compressed and tabix-indexed.

Reading streams the file in large blocks parsed by pyarrow's CSV reader and hands out
per-chromosome pieces as numpy arrays with integer barcode ids, so that callers never hold the
whole file in memory. Writing goes through pysam (BGZF + tabix) and is atomic: the file and its
``.tbi`` appear together or not at all.

Contract checked while reading (each violation is one :class:`~scregnet.errors.InputError`
naming the file and the first offending line): 4 or 5 tab-separated columns (a missing count
column means 1), integer coordinates with ``end > start >= 0``, each chromosome in one
contiguous block and starts non-decreasing inside it (``sort -k1,1 -k2,2n``), a complete gzip
stream. Leading ``#`` header lines (Cell Ranger ATAC 2) are skipped.
"""

from __future__ import annotations

import gzip
import itertools
import logging
import shutil
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scregnet.errors import InputError
from scregnet.io.atomic import atomic_paths

log = logging.getLogger(__name__)

FRAGMENT_COLUMNS = ("chrom", "start", "end", "barcode", "count")
_BLOCK_SIZE = 1 << 24  # bytes of text parsed per batch: the speed / memory trade-off


@dataclass
class FragmentChunk:
    """Consecutive fragments of one chromosome (a chromosome may span several chunks)."""

    chrom: str
    start: np.ndarray  # int64, 0-based
    end: np.ndarray  # int64, exclusive
    barcode: np.ndarray  # int32 ids into FragmentReader.barcodes
    count: np.ndarray  # int32 reads supporting the fragment (duplicates + 1)

    def __len__(self) -> int:
        return int(self.start.size)


@dataclass
class BarcodeTable:
    """Barcode string <-> dense integer id, grown as new barcodes appear."""

    names: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)

    def ids(self, values: Sequence[str]) -> np.ndarray:
        """Global ids of ``values`` (adding unseen ones); int32."""
        index, names = self.index, self.names
        out = np.empty(len(values), dtype=np.int32)
        for i, v in enumerate(values):
            j = index.get(v)
            if j is None:
                j = len(names)
                index[v] = j
                names.append(v)
            out[i] = j
        return out

    def __len__(self) -> int:
        return len(self.names)


def _sniff(path: Path) -> tuple[int, int]:
    """Number of leading ``#`` lines and of columns in the first data line."""
    skip = 0
    try:
        with gzip.open(path, "rt") as handle:
            for line in handle:
                if line.startswith("#"):
                    skip += 1
                    continue
                if not line.strip():
                    msg = f"line {skip + 1} is empty"
                    raise InputError(msg, path)
                return skip, len(line.rstrip("\n").split("\t"))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        msg = f"not a readable gzip/bgzip fragments file ({exc})"
        raise InputError(msg, path) from exc
    msg = "fragments file has no fragments"
    raise InputError(msg, path)


class FragmentReader:
    """Stream a fragments file as :class:`FragmentChunk` pieces, validating order as it goes.

    ``barcodes`` (the :class:`BarcodeTable`) maps the ``barcode`` ids of every chunk to strings;
    it is complete once iteration has finished. ``chromosomes`` lists the chromosomes in file
    order, ``n_lines`` the number of fragment lines read.
    """

    def __init__(
        self, path: str | Path, *, block_size: int = _BLOCK_SIZE, threads: int = 1
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            msg = "fragments file does not exist"
            raise InputError(msg, self.path)
        if self.path.stat().st_size == 0:
            msg = "fragments file is empty"
            raise InputError(msg, self.path)
        self.block_size = block_size
        self.threads = threads
        self.barcodes = BarcodeTable()
        self.chromosomes: list[str] = []
        self.n_lines = 0
        self._skip, self._ncols = _sniff(self.path)
        if self._ncols < 4:
            msg = f"expected 4 or 5 tab-separated columns (chrom start end barcode [count]), found {self._ncols}"
            raise InputError(msg, self.path)

    def _batches(self) -> Iterator[object]:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        names = [*FRAGMENT_COLUMNS[: min(self._ncols, 5)]]
        extra = [f"extra{i}" for i in range(self._ncols - len(names))]
        column_types = {
            "chrom": pa.dictionary(pa.int32(), pa.string()),
            "start": pa.int64(),
            "end": pa.int64(),
            "barcode": pa.dictionary(pa.int32(), pa.string()),
        }
        if "count" in names:
            column_types["count"] = pa.int32()
        stream = pa.input_stream(str(self.path), compression="gzip")
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(
                    column_names=names + extra,
                    skip_rows=self._skip,
                    block_size=self.block_size,
                    use_threads=self.threads > 1,
                ),
                parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
                convert_options=pacsv.ConvertOptions(
                    column_types=column_types, include_columns=names
                ),
            )
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                yield batch
        except (pa.ArrowInvalid, OSError) as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            lowered = text.lower()
            if any(w in lowered for w in ("zlib", "gzip", "inflate", "compress", "truncat")):
                msg = f"truncated or corrupt gzip stream ({text})"
            else:
                msg = f"malformed fragment line after line {self.n_lines + self._skip} ({text})"
            raise InputError(msg, self.path) from exc
        finally:
            stream.close()

    def __iter__(self) -> Iterator[FragmentChunk]:
        seen: set[str] = set()
        current: str | None = None
        last_start = -1
        for batch in self._batches():
            n = batch.num_rows  # type: ignore[attr-defined]
            if n == 0:
                continue
            cols = {name: batch.column(name) for name in batch.schema.names}  # type: ignore[attr-defined]
            chrom_codes = cols["chrom"].indices.to_numpy(zero_copy_only=False)
            chrom_names = cols["chrom"].dictionary.to_pylist()
            start = cols["start"].to_numpy(zero_copy_only=False)
            end = cols["end"].to_numpy(zero_copy_only=False)
            if cols["start"].null_count or cols["end"].null_count or cols["chrom"].null_count:
                msg = f"empty field in a fragment line after line {self.n_lines + self._skip}"
                raise InputError(msg, self.path)
            bc_local = self.barcodes.ids(cols["barcode"].dictionary.to_pylist())
            barcode = bc_local[cols["barcode"].indices.to_numpy(zero_copy_only=False)]
            if "count" in cols:
                count = cols["count"].to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
            else:
                count = np.ones(n, dtype=np.int32)
            bad = np.flatnonzero((end <= start) | (start < 0))
            if bad.size:
                i = int(bad[0])
                msg = f"line {self.n_lines + self._skip + i + 1}: fragment end <= start or negative start ({start[i]}-{end[i]})"
                raise InputError(msg, self.path)
            # runs of equal chromosome inside the batch
            cuts = np.flatnonzero(np.diff(chrom_codes)) + 1
            bounds = np.concatenate([[0], cuts, [n]])
            for a, b in itertools.pairwise(bounds.tolist()):
                a, b = int(a), int(b)
                name = chrom_names[int(chrom_codes[a])]
                if name != current:
                    if name in seen:
                        msg = (
                            f"line {self.n_lines + self._skip + a + 1}: fragments are not sorted "
                            f"({name} appears again after other chromosomes; sort with "
                            "`sort -k1,1 -k2,2n` and bgzip)"
                        )
                        raise InputError(msg, self.path)
                    seen.add(name)
                    self.chromosomes.append(name)
                    current = name
                    last_start = -1
                s = start[a:b]
                if s[0] < last_start or (s.size > 1 and np.any(s[1:] < s[:-1])):
                    prev = np.concatenate([[last_start], s[:-1]])
                    i = int(np.flatnonzero(s < prev)[0])
                    msg = (
                        f"line {self.n_lines + self._skip + a + i + 1}: fragments are not sorted by "
                        f"position ({name}:{s[i]} after {prev[i]}; sort with `sort -k1,1 -k2,2n` and bgzip)"
                    )
                    raise InputError(msg, self.path)
                last_start = int(s[-1])
                yield FragmentChunk(name, s, end[a:b], barcode[a:b], count[a:b])
            self.n_lines += n


def read_fragments(path: str | Path) -> tuple[list[FragmentChunk], list[str]]:
    """Read a whole (small) fragments file: per-chromosome chunks and the barcode names."""
    reader = FragmentReader(path)
    chunks = list(reader)
    return chunks, reader.barcodes.names


def format_fragments(
    chrom: str,
    start: np.ndarray,
    end: np.ndarray,
    barcodes: Sequence[str],
    barcode: np.ndarray,
    count: np.ndarray,
) -> bytes:
    """Fragment lines (tab-separated, newline-terminated) as bytes."""
    if start.size == 0:
        return b""
    names = np.asarray(barcodes, dtype=object)[barcode]
    lines = [
        f"{chrom}\t{s}\t{e}\t{b}\t{c}\n"
        for s, e, b, c in zip(
            start.tolist(), end.tolist(), names.tolist(), count.tolist(), strict=True
        )
    ]
    return "".join(lines).encode()


def write_bgzf(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` as a BGZF file (htslib blocks, EOF marker)."""
    import pysam

    with pysam.BGZFile(str(path), "wb") as handle:  # type: ignore[call-arg]
        if payload:
            handle.write(payload)


def concat_bgzf(parts: Iterable[Path], out: Path) -> None:
    """Concatenate BGZF files (valid BGZF: empty EOF blocks in the middle are allowed)."""
    with out.open("wb") as dst:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, dst, 1 << 22)


def tabix_index(path: str | Path, index: str | Path) -> None:
    """Tabix-index a bgzipped fragments file (BED preset: 0-based, chrom/start/end in 1/2/3)."""
    import pysam

    pysam.tabix_index(str(path), preset="bed", force=True, index=str(index))


def write_fragment_parts(parts: Sequence[Path], out: str | Path) -> Path:
    """Join per-contig BGZF parts (in order) into ``out`` and index it; atomic with its ``.tbi``."""
    out = Path(out)
    with atomic_paths(out, Path(str(out) + ".tbi")) as (tmp_gz, tmp_tbi):
        concat_bgzf(parts, tmp_gz)
        tabix_index(tmp_gz, tmp_tbi)
    return out


def write_fragments(chunks: Iterable[tuple[FragmentChunk, Sequence[str]]], out: str | Path) -> Path:
    """Write ``(chunk, barcode_names)`` pairs (sorted, chromosome-contiguous) as bgzip + tabix."""
    import pysam

    out = Path(out)
    with atomic_paths(out, Path(str(out) + ".tbi")) as (tmp_gz, tmp_tbi):
        with pysam.BGZFile(str(tmp_gz), "wb") as handle:  # type: ignore[call-arg]
            for chunk, names in chunks:
                handle.write(
                    format_fragments(
                        chunk.chrom, chunk.start, chunk.end, names, chunk.barcode, chunk.count
                    )
                )
        tabix_index(tmp_gz, tmp_tbi)
    return out


def check_tabix(path: str | Path) -> Path:
    """The path of the fragments file's tabix index; an :class:`InputError` when it is missing."""
    path = Path(path)
    for suffix in (".tbi", ".csi"):
        index = Path(str(path) + suffix)
        if index.exists():
            return index
    msg = "fragments file has no tabix index (.tbi/.csi); run `tabix -p bed` on it"
    raise InputError(msg, path)
