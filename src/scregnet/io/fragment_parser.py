"""Compiled (numba) parsing of fragment-file text: one pass per block, no Python object per line.

:func:`parse_block` walks the decompressed bytes of a block of whole lines and writes, per
fragment line, ``start``, ``end``, the barcode's integer id and the ``count`` column into
preallocated arrays; it records where the chromosome changes (byte span of the name) so that
the caller can cut the block into per-chromosome pieces. Barcodes get dense ids in order of
first appearance from an open-addressing hash table held in numpy arrays: a slot holds the
barcode's 64-bit hash with its id and length, and the barcode's bytes sit in a fixed-width row
of ``store``; a hash match is confirmed by comparing the bytes, so ids are exact (two memory
reads per lookup: the slot and the row).

The kernel stops at the first line it cannot accept and reports why (a status code and the
line, see the ``E_*`` constants); the caller turns that into an
:class:`~scregnet.errors.InputError`. It also stops, without consuming the line, when the
barcode table is full (``GROW``): the caller enlarges the table with :func:`rehash` and calls
again from where it stopped.

Compiled with ``cache=True``: the first call in a fresh install compiles (a few seconds,
written to ``__pycache__``); later processes load the cached machine code.
"""

from __future__ import annotations

import numpy as np
from numba import njit

OK = 0
GROW = 1  # the barcode table is full: grow it and call again
E_COLUMNS = 2  # not the expected number of tab-separated fields
E_INT = 3  # start, end or count is not an integer (state[S_FIELD]: which column, 1-based)
E_EMPTY = 4  # empty chromosome or barcode field
E_RANGE = 5  # end <= start or negative start (values written at the line's index)
E_UNSORTED = 6  # start below the previous line's on the same chromosome (start written)

# indices into the int64 ``state`` array shared with the caller
S_POS, S_LINE, S_RUNS, S_IDS, S_WIDTH, S_PREV_A, S_PREV_B, S_FIELD = range(8)
STATE_SIZE = 8

_SEED = np.uint64(0x9E3779B97F4A7C15)
_MUL = np.uint64(0xFF51AFD7ED558CCD)
_MUL2 = np.uint64(0xC4CEB9FE1A85EC53)
_TAB, _LF, _CR = 9, 10, 13
_MAX_DIGITS = 18  # |value| < 10^18 fits int64 whatever the digits
_ZERO, _NINE = np.uint64(48), np.uint64(9)


@njit(cache=True, nogil=True)
def count_lines(buf: np.ndarray) -> int:  # pragma: no cover - compiled
    """Number of newline bytes in ``buf`` (an upper bound on the fragment lines)."""
    n = 0
    for i in range(buf.size):
        if buf[i] == _LF:
            n += 1
    return n


@njit(cache=True, nogil=True)
def skip_lines(buf: np.ndarray, pos: int, k: int) -> tuple[int, int]:  # pragma: no cover
    """Position after ``k`` more lines from ``pos`` and how many of them are still to skip."""
    while k > 0 and pos < buf.size:
        if buf[pos] == _LF:
            k -= 1
        pos += 1
    return pos, k


@njit(cache=True, nogil=True, inline="always")
def _parse_int(buf: np.ndarray, pos: int) -> tuple[int, int, bool]:  # pragma: no cover
    """(value, position of the terminating tab / newline, ok) of the integer at ``pos``.

    An optional sign, 1-18 digits, then a tab or a newline (``\\r\\n`` accepted)."""
    neg = False
    c = int(buf[pos])
    if c == 45:  # '-'
        neg = True
        pos += 1
    elif c == 43:  # '+'
        pos += 1
    first = pos
    value = 0
    digit = np.uint64(buf[pos]) - _ZERO  # wraps around below '0': one comparison per byte
    while digit <= _NINE:
        value = value * 10 + np.int64(digit)  # type: ignore[assignment]
        pos += 1
        digit = np.uint64(buf[pos]) - _ZERO
    c = int(buf[pos])
    if c == _CR and buf[pos + 1] == _LF:
        pos += 1
        c = _LF
    ok = 0 < pos - first <= _MAX_DIGITS and (c == _TAB or c == _LF)
    return (-value if neg else value), pos, ok


@njit(cache=True, nogil=True, inline="always")
def _pack(buf: np.ndarray, a: int, b: int, words: np.ndarray) -> np.uint64:  # pragma: no cover
    """64-bit hash of ``buf[a:b]``; its bytes packed little-endian into ``words`` (8 per word,
    zero-padded; only as many words as ``words`` holds). One multiply per 8 bytes, murmur3's
    finaliser at the end."""
    h = _SEED ^ np.uint64(b - a)
    j = 0
    k = a
    while k < b:
        word = np.uint64(0)
        for t in range(min(8, b - k)):
            word |= np.uint64(buf[k + t]) << np.uint64(8 * t)
        if j < words.size:
            words[j] = word
        h = (h ^ word) * _MUL
        h ^= h >> np.uint64(32)
        j += 1
        k += 8
    h ^= h >> np.uint64(33)
    h *= _MUL2
    h ^= h >> np.uint64(33)
    return h


@njit(cache=True, nogil=True)
def parse_block(
    buf: np.ndarray,
    ncols: int,
    state: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    barcode: np.ndarray,
    count: np.ndarray,
    run_line: np.ndarray,
    run_a: np.ndarray,
    run_b: np.ndarray,
    slots: np.ndarray,
    store: np.ndarray,
    lengths: np.ndarray,
    check_order: bool,
) -> int:  # pragma: no cover - compiled
    """Parse the lines of ``buf`` (uint8, ends with a newline) from ``state[S_POS]``; with
    ``check_order``, a start below the previous line's on the same chromosome is ``E_UNSORTED``.

    Fragment ``i`` of the block (``i`` from ``state[S_LINE]``) goes to ``start[i]``,
    ``end[i]``, ``barcode[i]`` (id) and ``count[i]`` (1 when ``ncols == 4``). Run ``r``
    (``state[S_RUNS]`` of them) of equal chromosome begins at fragment ``run_line[r]``, its name
    is ``buf[run_a[r]:run_b[r]]``. Barcode table: ``slots`` (int64, pairs ``hash, id | length
    << 32`` for a power-of-two number of slots, ``-1`` = free), ``store`` (uint64, one row per
    id: the barcode's bytes packed 8 per word, little-endian, zero-padded) and ``lengths`` (per
    id, bytes). On ``GROW``, ``state[S_WIDTH]`` is the number of words the pending barcode
    needs per row.
    Empty lines are skipped. Returns ``OK`` or a status code; ``state`` is updated in place.
    """
    pos = state[S_POS]
    line = state[S_LINE]
    nruns = state[S_RUNS]
    nids = state[S_IDS]
    prev_a = state[S_PREV_A]
    prev_b = state[S_PREV_B]
    mask = slots.size // 2 - 1
    width = store.shape[1]  # words per row
    capacity = store.shape[0]
    words = np.zeros(width, dtype=np.uint64)
    n = buf.size
    status = OK
    line_start = pos
    while pos < n:
        c = buf[pos]
        if c == _LF:
            pos += 1
            continue
        if c == _CR and buf[pos + 1] == _LF:
            pos += 2
            continue
        line_start = pos
        # chrom
        a = pos
        while buf[pos] != _TAB and buf[pos] != _LF:
            pos += 1
        b = pos
        if buf[pos] == _LF:
            status = E_COLUMNS
            break
        if b == a:
            status = E_EMPTY
            break
        # start, end
        s, pos, ok = _parse_int(buf, pos + 1)
        if not ok:
            status = E_INT
            state[S_FIELD] = 2
            break
        if buf[pos] == _LF:
            status = E_COLUMNS
            break
        e, pos, ok = _parse_int(buf, pos + 1)
        if not ok:
            status = E_INT
            state[S_FIELD] = 3
            break
        if buf[pos] == _LF:
            status = E_COLUMNS
            break
        # barcode
        pos += 1
        ba = pos
        while buf[pos] != _TAB and buf[pos] != _LF:
            pos += 1
        bb = pos
        if ncols == 4:
            if buf[pos] == _TAB:
                status = E_COLUMNS
                break
            if bb > ba and buf[bb - 1] == _CR:
                bb -= 1
            cnt = 1
        else:
            if buf[pos] == _LF:
                status = E_COLUMNS
                break
            cnt, pos, ok = _parse_int(buf, pos + 1)
            if not ok:
                status = E_INT
                state[S_FIELD] = 5
                break
            if cnt < -2147483648 or cnt > 2147483647:
                status = E_INT
                state[S_FIELD] = 5
                break
            tabs = 0
            while buf[pos] != _LF:
                if buf[pos] == _TAB:
                    tabs += 1
                pos += 1
            # ncols - 5 further fields follow the count, each after one tab
            if tabs != ncols - 5:
                status = E_COLUMNS
                break
        if bb == ba:
            status = E_EMPTY
            break
        # barcode id (exact: hash, then bytes)
        size = bb - ba
        need = (size + 7) // 8
        h = _pack(buf, ba, bb, words)
        key = np.int64(h)
        slot = np.int64(h & np.uint64(mask))
        while True:
            meta = slots[2 * slot + 1]
            if meta < 0:
                if nids >= capacity or need > width or 2 * (nids + 1) > mask + 1:
                    status = GROW
                    state[S_WIDTH] = max(need, width)
                    break
                slots[2 * slot] = key
                slots[2 * slot + 1] = nids | (size << 32)
                for j in range(need):
                    store[nids, j] = words[j]
                lengths[nids] = size
                ident = nids
                nids += 1
                break
            if slots[2 * slot] == key and (meta >> 32) == size:
                ident = meta & 0xFFFFFFFF
                same = True
                for j in range(need):
                    if store[ident, j] != words[j]:
                        same = False
                        break
                if same:
                    break
            slot = (slot + 1) & mask
        if status == GROW:
            pos = line_start
            break
        start[line] = s
        end[line] = e
        if e <= s or s < 0:
            status = E_RANGE
            break
        # chromosome runs and order within a run
        new_run = prev_a < 0 or (b - a) != (prev_b - prev_a)
        if not new_run:
            for k in range(b - a):
                if buf[a + k] != buf[prev_a + k]:
                    new_run = True
                    break
        if new_run:
            run_line[nruns] = line
            run_a[nruns] = a
            run_b[nruns] = b
            nruns += 1
            prev_a = a
            prev_b = b
        elif check_order and s < start[line - 1]:
            status = E_UNSORTED
            break
        barcode[line] = ident
        count[line] = cnt
        line += 1
        pos += 1  # past the newline
    if status != OK and status != GROW:
        pos = line_start
    state[S_POS] = pos
    state[S_LINE] = line
    state[S_RUNS] = nruns
    state[S_IDS] = nids
    state[S_PREV_A] = prev_a
    state[S_PREV_B] = prev_b
    return status


@njit(cache=True, nogil=True)
def rehash(slots: np.ndarray, n_slots: int) -> np.ndarray:  # pragma: no cover - compiled
    """The entries of ``slots`` in a fresh table of ``n_slots`` (a power of two) slots."""
    out = np.full(2 * n_slots, -1, dtype=np.int64)
    mask = n_slots - 1
    for j in range(slots.size // 2):
        meta = slots[2 * j + 1]
        if meta < 0:
            continue
        key = slots[2 * j]
        slot = np.int64(np.uint64(key) & np.uint64(mask))
        while out[2 * slot + 1] >= 0:
            slot = (slot + 1) & mask
        out[2 * slot] = key
        out[2 * slot + 1] = meta
    return out
