"""10x-style fragment files: ``chrom start end barcode count``, bgzip-compressed and tabix-indexed.

Reading streams the file in large blocks of decompressed text, parsed by a compiled kernel
(:mod:`scregnet.io.fragment_parser`), and hands out per-chromosome pieces as numpy arrays with
integer barcode ids, so that callers never hold the whole file in memory. Writing compresses BGZF
blocks with zlib in Python (the bytes htslib writes; a full disk is then an ordinary ``OSError``),
indexes with pysam's tabix and is atomic: the file and its ``.tbi`` appear together or not at all.

Contract checked while reading (each violation is one :class:`~scregnet.errors.InputError`
naming the file and the first offending line): 4 or 5 tab-separated columns (a missing count
column means 1), integer coordinates with ``end > start >= 0``, each chromosome in one
contiguous block and starts non-decreasing inside it (``sort -k1,1 -k2,2n``), a complete gzip
stream. Leading ``#`` header lines (Cell Ranger ATAC 2) are skipped.
"""

from __future__ import annotations

import gzip
import logging
import shutil
import zlib
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scregnet.errors import InputError
from scregnet.io.atomic import atomic_paths
from scregnet.io.quiet import quiet_htslib

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


class BarcodeTable:
    """Barcode <-> dense integer id (order of first appearance), grown while reading.

    The table lives in numpy arrays that the compiled parser
    (:func:`scregnet.io.fragment_parser.parse_block`) reads and fills: an open-addressing slot
    table (each slot: the barcode's 64-bit hash and ``id | length << 32``), and per id a row of
    ``store`` holding the barcode's bytes (8 per uint64 word, little-endian, zero-padded) and
    its length. ``names`` decodes the ids to strings (new ones on demand).
    """

    def __init__(self, path: Path, capacity: int = 1 << 12, width: int = 4) -> None:
        self.path = path
        self.n = 0  # ids assigned
        self.store = np.zeros((capacity, width), dtype=np.uint64)  # 8 bytes per word
        self.lengths = np.zeros(capacity, dtype=np.int64)
        self.slots = np.full(2 * 4 * capacity, -1, dtype=np.int64)  # 4 slots per row
        self._names: list[str] = []

    def grow(self, width: int) -> None:
        """Make room for one more barcode of ``width`` words (8 bytes each): double the rows
        when full (and the slots with them), widen the rows when the barcode is longer."""
        from scregnet.io.fragment_parser import rehash

        rows, old_width = self.store.shape
        if self.n >= rows:
            rows *= 2
            if rows > np.iinfo(np.int32).max:
                msg = "more than 2^31 distinct barcodes"
                raise InputError(msg, self.path)
        if width > old_width:
            width = 1 << (width - 1).bit_length()
        else:
            width = old_width
        if (rows, width) != self.store.shape:
            store = np.zeros((rows, width), dtype=np.uint64)
            store[: self.n, :old_width] = self.store[: self.n]
            self.store = store
            lengths = np.zeros(rows, dtype=np.int64)
            lengths[: self.n] = self.lengths[: self.n]
            self.lengths = lengths
        if 4 * rows > self.slots.size // 2:
            self.slots = rehash(self.slots, 4 * rows)

    @property
    def names(self) -> list[str]:
        """Barcode strings by id (the list grows as the reader goes on)."""
        if len(self._names) < self.n:
            first, width = len(self._names), 8 * self.store.shape[1]
            raw = self.store[first : self.n].astype("<u8", copy=False).tobytes()
            ends = self.lengths[first : self.n].tolist()
            starts = range(0, len(raw), width)
            if raw.isascii():
                text = raw.decode("ascii")
                self._names.extend(text[i : i + n] for i, n in zip(starts, ends, strict=True))
            else:
                try:
                    self._names.extend(
                        raw[i : i + n].decode("utf-8") for i, n in zip(starts, ends, strict=True)
                    )
                except UnicodeDecodeError as exc:
                    msg = f"a barcode is not valid UTF-8 text ({exc})"
                    raise InputError(msg, self.path) from exc
        return self._names

    def __len__(self) -> int:
        return self.n


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


def _deflate_codec() -> tuple[
    Callable[..., bytes], Callable[[bytes], int], tuple[type[Exception], ...]
]:
    """Raw-deflate decompressor, CRC-32 and their error types: ISA-L's (``isal``, about 3x
    faster than zlib) when installed, else the standard library's zlib.

    Both produce the same bytes and checksums (DEFLATE decoding is deterministic); only the
    speed differs.
    """
    try:
        from isal import isal_zlib
    except ImportError:  # pragma: no cover - without isal, the standard library's zlib
        return zlib.decompress, zlib.crc32, (zlib.error,)
    isal_error: type[Exception] = isal_zlib.error  # type: ignore[assignment]
    return isal_zlib.decompress, isal_zlib.crc32, (isal_error, zlib.error)


_BGZF_MAGIC = b"\x1f\x8b\x08\x04"
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def _bgzf_blocks(path: Path, data: bytes) -> list[tuple[int, int, int]]:
    """(payload start, payload end, uncompressed size) of every BGZF block in ``data``."""
    blocks = []
    offset, size = 0, len(data)
    while offset < size:
        if size - offset < 18 or data[offset : offset + 4] != _BGZF_MAGIC:
            msg = "truncated or corrupt gzip stream (bad BGZF block header)"
            raise InputError(msg, path)
        xlen = int.from_bytes(data[offset + 10 : offset + 12], "little")
        bsize = int.from_bytes(data[offset + 16 : offset + 18], "little") + 1
        if offset + bsize > size:
            msg = "truncated or corrupt gzip stream (the last BGZF block is cut short)"
            raise InputError(msg, path)
        isize = int.from_bytes(data[offset + bsize - 4 : offset + bsize], "little")
        blocks.append((offset + 12 + xlen, offset + bsize - 8, isize))
        offset += bsize
    return blocks


def text_chunks(path: Path, target: int, *, threads: int = 1) -> Iterator[bytes | memoryview]:
    """Decompressed text of a (b)gzip file in pieces of about ``target`` bytes ending at a newline
    (the last piece ends as the file does, with or without one).

    BGZF files (bgzip/tabix) are inflated block by block with zlib (in ``threads`` threads: zlib
    releases the GIL), faster than a generic gzip stream; other gzip files are streamed. A file cut
    short, a corrupt block or a missing BGZF end-of-file marker is an :class:`InputError` (raised
    after the complete text has been handed out, so callers must not commit output before the
    iterator is exhausted).
    """
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != _BGZF_MAGIC:
        yield from _gzip_chunks(path, target)
        return
    from concurrent.futures import ThreadPoolExecutor

    inflate = _block_inflater(path)
    pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
    read_size = max(target // 4, 1 << 16)
    carry, pending = b"", b""
    last_isize = -1
    try:
        with path.open("rb") as handle:
            while True:
                raw = handle.read(read_size)
                data = pending + raw
                if not data:
                    break
                offset = _whole_blocks_end(data)
                whole, pending = data[:offset], data[offset:]
                if not raw and pending:
                    msg = "truncated or corrupt gzip stream (the last BGZF block is cut short)"
                    raise InputError(msg, path)
                blocks = _bgzf_blocks(path, whole)
                if not blocks:
                    continue
                last_isize = blocks[-1][2]
                view = memoryview(whole)
                jobs = [(view, a, b, n) for a, b, n in blocks]
                pieces = list(pool.map(inflate, jobs)) if pool else [inflate(j) for j in jobs]
                pieces.insert(0, carry)
                text = b"".join(pieces)
                newline = text.rfind(b"\n")
                if newline < 0:
                    carry = text
                    continue
                carry = text[newline + 1 :]
                yield memoryview(text)[: newline + 1]
    finally:
        if pool is not None:
            pool.shutdown()
    if carry:
        yield carry
    if last_isize != 0:
        msg = "truncated gzip stream (no BGZF end-of-file block: the file was cut short)"
        raise InputError(msg, path)


def _block_inflater(path: Path) -> Callable[[tuple[memoryview, int, int, int]], bytes]:
    """Inflate one BGZF block ``(view, start, end, isize)``, checking its size and CRC-32 (the
    4 bytes after the payload); errors name ``path``."""
    decompress, crc32, errors = _deflate_codec()

    def inflate(args: tuple[memoryview, int, int, int]) -> bytes:
        view, start, end, isize = args
        try:
            out = decompress(view[start:end], -15)
        except errors as exc:
            msg = f"truncated or corrupt gzip stream ({exc})"
            raise InputError(msg, path) from exc
        if len(out) != isize:
            msg = "truncated or corrupt gzip stream (BGZF block size mismatch)"
            raise InputError(msg, path)
        if crc32(out) != int.from_bytes(view[end : end + 4], "little"):
            msg = "corrupt gzip stream (BGZF block CRC-32 mismatch: the data changed on disk)"
            raise InputError(msg, path)
        return out

    return inflate


def _whole_blocks_end(data: bytes) -> int:
    """Where the whole BGZF blocks at the start of ``data`` end (by their BSIZE fields)."""
    offset = 0
    while offset + 18 <= len(data):
        bsize = int.from_bytes(data[offset + 16 : offset + 18], "little") + 1
        if offset + bsize > len(data):
            break
        offset += bsize
    return offset


def _gzip_chunks(path: Path, target: int) -> Iterator[bytes | memoryview]:
    """Plain (possibly multi-member) gzip, streamed; see :func:`text_chunks`."""
    inflater = zlib.decompressobj(31)
    buffered: list[bytes] = []
    size = 0
    carry = b""
    read_size = min(1 << 20, max(target // 4, 1 << 12))
    with path.open("rb") as handle:
        while True:
            raw = handle.read(read_size)
            if not raw:
                break
            while raw:
                try:
                    out = inflater.decompress(raw)
                except zlib.error as exc:
                    msg = f"truncated or corrupt gzip stream ({exc})"
                    raise InputError(msg, path) from exc
                buffered.append(out)
                size += len(out)
                if inflater.eof and inflater.unused_data:
                    raw = inflater.unused_data
                    inflater = zlib.decompressobj(31)
                else:
                    raw = b""
            if size >= target:
                text = carry + b"".join(buffered)
                buffered, size = [], 0
                newline = text.rfind(b"\n")
                carry, text = (
                    (text, b"") if newline < 0 else (text[newline + 1 :], text[: newline + 1])
                )
                if text:
                    yield text
    text = carry + b"".join(buffered)
    if text:
        yield text
    if not inflater.eof:
        msg = "truncated gzip stream (the file was cut short)"
        raise InputError(msg, path)


class FragmentReader:
    """Stream a fragments file as :class:`FragmentChunk` pieces, validating order as it goes.

    ``barcodes`` (the :class:`BarcodeTable`) maps the ``barcode`` ids of every chunk to strings;
    it is complete once iteration has finished. ``chromosomes`` lists the chromosomes in file
    order, ``n_lines`` the number of fragment lines read. With ``genome`` (chromosome sizes),
    every chromosome of the file that is not in ``exclude`` must be one of the genome's: checked
    from the tabix index (when there is one) before anything is read, and again as each new
    chromosome appears (one :class:`InputError` showing both naming styles, e.g. chr1 vs 1).
    ``sorted_input=False`` reads a file in any order (MACS3's input), checking all the rest.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        block_size: int = _BLOCK_SIZE,
        threads: int = 1,
        genome: Mapping[str, int] | None = None,
        exclude: Iterable[str] = (),
        sorted_input: bool = True,
    ) -> None:
        self.path = Path(path)
        self.sorted_input = sorted_input
        if not self.path.exists():
            msg = "fragments file does not exist"
            raise InputError(msg, self.path)
        if self.path.stat().st_size == 0:
            msg = "fragments file is empty"
            raise InputError(msg, self.path)
        self.block_size = block_size
        self.threads = threads
        self.barcodes = BarcodeTable(self.path)
        self.chromosomes: list[str] = []
        self.n_lines = 0
        #: the file's last line has no line break (read as if it had one)
        self.unterminated = False
        #: per chromosome, the fragments that end past its end in ``genome``
        self.past_end: dict[str, int] = {}
        self._skip, self._ncols = _sniff(self.path)
        if self._ncols < 4:
            msg = f"expected 4 or 5 tab-separated columns (chrom start end barcode [count]), found {self._ncols}"
            raise InputError(msg, self.path)
        self.genome = genome
        self.exclude = frozenset(exclude)
        if genome is not None:
            self._check_indexed_chromosomes()

    def _check_chromosomes(self, names: Iterable[str]) -> None:
        """Chromosomes of the fragments (not excluded ones) must be in ``genome``."""
        if self.genome is None:
            return
        from scregnet.io.genome import check_same_chromosomes

        check_same_chromosomes(
            [n for n in names if n not in self.exclude],
            self.genome,
            what="fragments",
            ref_what="genome index",
            path=self.path,
        )

    def _check_indexed_chromosomes(self) -> None:
        """With a tabix index, check the chromosome names before reading anything."""
        contigs = indexed_chromosomes(self.path)
        if contigs:
            self._check_chromosomes(contigs)

    def _blocks(self) -> Iterator[tuple[np.ndarray, int]]:
        """Decompressed blocks of whole lines as uint8 arrays, with the position of the first
        fragment line (past the leading ``#`` header lines)."""
        from scregnet.io.fragment_parser import skip_lines

        skip = self._skip
        for text in text_chunks(self.path, self.block_size, threads=self.threads):
            if bytes(text[-1:]) != b"\n":  # the last line of a file without a final line break
                self.unterminated = True
                text = bytes(text) + b"\n"
            buf = np.frombuffer(text, dtype=np.uint8)
            pos = 0
            if skip:
                pos, skip = skip_lines(buf, 0, skip)
            if pos < buf.size:
                yield buf, pos

    def _fail(
        self, status: int, buf: np.ndarray, state: np.ndarray, arrays: tuple[np.ndarray, np.ndarray]
    ) -> None:
        """Raise the :class:`InputError` for a line the parser refused."""
        from scregnet.io import fragment_parser as fp

        i = int(state[fp.S_LINE])
        number = self.n_lines + self._skip + i + 1
        start, end = arrays[0], arrays[1]
        if status == fp.E_RANGE:
            msg = f"line {number}: fragment end <= start or negative start ({start[i]}-{end[i]})"
            raise InputError(msg, self.path)
        if status == fp.E_UNSORTED:
            name = self.chromosomes[-1]
            msg = (
                f"line {number}: fragments are not sorted by position ({name}:{start[i]} after "
                f"{start[i - 1]}; sort with `sort -k1,1 -k2,2n` and bgzip)"
            )
            raise InputError(msg, self.path)
        pos = int(state[fp.S_POS])
        stop = pos + int(np.argmax(buf[pos:] == 10))
        text = buf[pos:stop].tobytes().decode("utf-8", "replace").rstrip("\r")
        shown = text if len(text) <= 80 else text[:77] + "..."
        found = len(text.split("\t"))
        if status == fp.E_COLUMNS:
            why = f"expected {self._ncols} tab-separated columns, found {found}"
        elif status == fp.E_INT:
            column = FRAGMENT_COLUMNS[int(state[fp.S_FIELD]) - 1]
            why = f"{column} is not an integer"
        else:
            why = "empty chromosome or barcode field"
        msg = f"line {number}: malformed fragment line ({why}): {shown!r}"
        raise InputError(msg, self.path)

    def __iter__(self) -> Iterator[FragmentChunk]:
        from scregnet.io import fragment_parser as fp

        order = _RunOrder()
        for buf, pos in self._blocks():
            block = self._parse(buf, pos)
            n, n_runs = int(block.state[fp.S_LINE]), int(block.state[fp.S_RUNS])
            block.run_line[n_runs] = n
            for r in range(n_runs):
                a, b = int(block.run_line[r]), int(block.run_line[r + 1])
                name = self._run_chromosome(buf[block.run_a[r] : block.run_b[r]], a)
                self._check_run(order, name, a, int(block.start[a]))
                self._check_values(name, block, a, b)
                order.last_start = int(block.start[b - 1])
                yield FragmentChunk(
                    name, block.start[a:b], block.end[a:b], block.barcode[a:b], block.count[a:b]
                )
            if block.status != fp.OK:
                self._fail(block.status, buf, block.state, (block.start, block.end))
            self.n_lines += n
        if self.past_end and self.genome is not None:
            log.warning(
                "%s: fragments end past the chromosome's end in the genome index (%s): are the "
                "fragments and the genome the same assembly?",
                self.path,
                ", ".join(f"{c}: {n} past {self.genome[c]} bp" for c, n in self.past_end.items()),
            )

    def _parse(self, buf: np.ndarray, pos: int) -> _ParsedBlock:
        """Parse one block from ``pos``, growing the barcode table as the parser asks; the
        status is OK or the error of the line the parser stopped at."""
        from scregnet.io import fragment_parser as fp

        table = self.barcodes
        n_max = fp.count_lines(buf) + 1
        block = _ParsedBlock(
            start=np.empty(n_max, dtype=np.int64),
            end=np.empty(n_max, dtype=np.int64),
            barcode=np.empty(n_max, dtype=np.int32),
            count=np.empty(n_max, dtype=np.int32),
            run_line=np.empty(n_max + 1, dtype=np.int64),
            run_a=np.empty(n_max, dtype=np.int64),
            run_b=np.empty(n_max, dtype=np.int64),
            state=np.zeros(fp.STATE_SIZE, dtype=np.int64),
        )
        state = block.state
        state[fp.S_POS], state[fp.S_PREV_A], state[fp.S_PREV_B] = pos, -1, -1
        while True:
            state[fp.S_IDS] = table.n
            block.status = fp.parse_block(
                buf, self._ncols, state, block.start, block.end, block.barcode, block.count,
                block.run_line, block.run_a, block.run_b, table.slots, table.store, table.lengths,
                self.sorted_input,
            )  # fmt: skip
            table.n = int(state[fp.S_IDS])
            if block.status != fp.GROW:
                return block
            table.grow(int(state[fp.S_WIDTH]))

    def _run_chromosome(self, raw: np.ndarray, line: int) -> str:
        """The chromosome name of a run of lines starting at block line ``line``."""
        try:
            return raw.tobytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            msg = f"line {self.n_lines + self._skip + line + 1}: chromosome name is not UTF-8 text"
            raise InputError(msg, self.path) from exc

    def _check_values(self, name: str, block: _ParsedBlock, a: int, b: int) -> None:
        """Lines ``a`` to ``b`` of the block (one chromosome's run): no count is negative; with a
        genome, fragments that end past the chromosome's end are counted in :attr:`past_end`
        (counting clips them; many suggest another assembly than the genome's)."""
        length = None if self.genome is None else self.genome.get(name)
        if length is not None:
            beyond = int(np.count_nonzero(block.end[a:b] > length))
            if beyond:
                self.past_end[name] = self.past_end.get(name, 0) + beyond
        if int(block.count[a:b].min()) < 0:
            i = a + int(np.argmax(block.count[a:b] < 0))
            msg = f"line {self.n_lines + self._skip + i + 1}: negative count {block.count[i]}"
            raise InputError(msg, self.path)

    def _check_run(self, order: _RunOrder, name: str, line: int, first_start: int) -> None:
        """A run of one chromosome's lines must continue the sort order (chromosomes grouped,
        positions ascending) and, with a genome, name one of its chromosomes."""
        number = self.n_lines + self._skip + line + 1
        if not self.sorted_input:
            if name not in order.seen:
                if self.genome is not None and name not in self.genome:
                    self._check_chromosomes([name])
                order.seen.add(name)
                self.chromosomes.append(name)
            return
        if name == order.current:
            if first_start < order.last_start:
                msg = (
                    f"line {number}: fragments are not sorted by position ({name}:{first_start} "
                    f"after {order.last_start}; sort with `sort -k1,1 -k2,2n` and bgzip)"
                )
                raise InputError(msg, self.path)
            return
        if self.genome is not None and name not in self.genome:
            self._check_chromosomes([name])
        if name in order.seen:
            msg = (
                f"line {number}: fragments are not sorted ({name} appears again after other "
                "chromosomes; sort with `sort -k1,1 -k2,2n` and bgzip)"
            )
            raise InputError(msg, self.path)
        order.seen.add(name)
        self.chromosomes.append(name)
        order.current = name


@dataclass
class _ParsedBlock:
    """One block's parse: per line start, end, barcode id and count; the runs of lines with one
    chromosome name (first line, name's byte span); the parser state and status."""

    start: np.ndarray
    end: np.ndarray
    barcode: np.ndarray
    count: np.ndarray
    run_line: np.ndarray
    run_a: np.ndarray
    run_b: np.ndarray
    state: np.ndarray
    status: int = 0


@dataclass
class _RunOrder:
    """What the sort check remembers across blocks: the chromosomes seen, the current one and
    the last start position read."""

    seen: set[str] = field(default_factory=set)
    current: str | None = None
    last_start: int = -1


def check_cells_found(found: bool, fragments: str | Path) -> None:
    """An :class:`InputError` naming ``fragments`` unless ``found``: some of its fragments belong
    to clustered cells."""
    if not found:
        msg = (
            "no fragment belongs to a clustered cell (do the barcodes match the clustered AnnData?)"
        )
        raise InputError(msg, fragments)


def fragment_fields(fragments: str | Path, n: int) -> Iterator[list[str]]:
    """The gzipped fragments file's lines, comment lines skipped, each split at its first ``n``
    tabs (line end removed); a file that cannot be read as gzipped text is an
    :class:`InputError` naming it."""
    path = Path(fragments)
    try:
        with gzip.open(path, "rt") as handle:
            for line in handle:
                if not line.startswith("#"):
                    yield line.rstrip("\r\n").split("\t", n)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        msg = f"not a readable fragments file ({type(exc).__name__})"
        raise InputError(msg, path) from exc


def has_barcode(fragments: str | Path, barcodes: Container[str]) -> bool:
    """Whether a fragment of the gzipped fragments file belongs to one of ``barcodes``; reads up to
    the first such fragment (the whole file when there is none)."""
    return any(len(f) > 3 and f[3] in barcodes for f in fragment_fields(fragments, 4))


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


#: uncompressed bytes per BGZF block (htslib's size: its deflate output always fits a block)
_BGZF_BLOCK = 0xFF00


def bgzf_block(data: bytes, *, level: int = 6) -> bytes:
    """One BGZF block (a gzip member whose ``BC`` extra field gives its size) holding ``data``."""
    deflater = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = deflater.compress(data) + deflater.flush()
    size = 18 + len(body) + 8
    header = (
        _BGZF_MAGIC
        + b"\x00\x00\x00\x00\x00\xff\x06\x00BC\x02\x00"
        + (size - 1).to_bytes(2, "little")
    )
    trailer = zlib.crc32(data).to_bytes(4, "little") + len(data).to_bytes(4, "little")
    return header + body + trailer


class BgzfWriter:
    """Write a BGZF file through Python's own file object, so that a failed write (a full disk)
    is one ``OSError`` naming the file, with nothing printed by a C library."""

    def __init__(self, path: str | Path) -> None:
        self._handle = open(path, "wb")
        self._pending = bytearray()

    def write(self, data: bytes) -> None:
        self._pending += data
        while len(self._pending) >= _BGZF_BLOCK:
            self._handle.write(bgzf_block(bytes(self._pending[:_BGZF_BLOCK])))
            del self._pending[:_BGZF_BLOCK]

    def close(self) -> None:
        try:
            if self._pending:
                self._handle.write(bgzf_block(bytes(self._pending)))
                self._pending.clear()
            self._handle.write(_BGZF_EOF)
        finally:
            self._handle.close()

    def __enter__(self) -> BgzfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_bgzf(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` as a BGZF file (htslib-sized blocks, EOF marker)."""
    with BgzfWriter(path) as handle:
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

    with quiet_htslib():
        pysam.tabix_index(str(path), preset="bed", force=True, index=str(index))


def write_fragment_parts(parts: Sequence[Path], out: str | Path) -> Path:
    """Join per-contig BGZF parts (in order) into ``out`` and index it; atomic with its ``.tbi``."""
    out = Path(out)
    with atomic_paths(out, Path(str(out) + ".tbi")) as (tmp_gz, tmp_tbi):
        concat_bgzf(parts, tmp_gz)
        tabix_index(tmp_gz, tmp_tbi)
    return out


def indexed_chromosomes(path: str | Path) -> list[str]:
    """The chromosome names the tabix index of a fragments file lists; empty without an index or
    when it cannot be read (the streaming reader then reports what is wrong with the file)."""
    import pysam

    for suffix in (".tbi", ".csi"):
        if Path(str(path) + suffix).exists():
            try:
                with pysam.TabixFile(str(path)) as tbx:
                    return [str(c) for c in tbx.contigs]
            except (OSError, ValueError):
                return []
    return []


def check_tabix(path: str | Path) -> Path:
    """The path of the fragments file's tabix index; an :class:`InputError` when it is missing."""
    path = Path(path)
    for suffix in (".tbi", ".csi"):
        index = Path(str(path) + suffix)
        if index.exists():
            return index
    msg = "fragments file has no tabix index (.tbi/.csi); run `tabix -p bed` on it"
    raise InputError(msg, path)
