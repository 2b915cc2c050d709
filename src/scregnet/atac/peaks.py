"""Peak calling on the pseudobulk of a fragments file with MACS3 (``callpeak -f FRAG``).

MACS3 (>= 3.0) reads 10x fragment files directly, piles up every fragment of the selected
barcodes and calls narrow peaks; this module runs it in a scratch directory beside the output,
clips peaks to the chromosome ends, drops those on the mitochondrial genome (a fragments file from
another tool may hold its reads; counting leaves them out) and moves the narrowPeak into place
atomically.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from scregnet.atac.fragments import read_barcode_list
from scregnet.errors import InputError, MissingToolError
from scregnet.io.atomic import atomic_path, make_parent, scratch_dir
from scregnet.io.fragments import FragmentReader
from scregnet.io.genome import MITOCHONDRIAL
from scregnet.io.outputs import writing

log = logging.getLogger(__name__)

GSIZE_SHORTCUTS = ("hs", "mm", "ce", "dm")


def find_macs3() -> str:
    """Path of the ``macs3`` executable (PATH first, then beside this Python)."""
    found = shutil.which("macs3")
    if found:
        return found
    sibling = Path(sys.executable).parent / "macs3"
    if sibling.exists() and os.access(sibling, os.X_OK):
        return str(sibling)
    msg = "the peak caller 'macs3' is not installed (pip install macs3) and no --peaks were given"
    raise MissingToolError(msg)


def call_peaks(
    fragments: str | Path,
    out: str | Path,
    *,
    chrom_sizes: dict[str, int],
    gsize: str | int | None = None,
    qvalue: float = 0.05,
    barcodes: str | Path | None = None,
    name: str | None = None,
) -> Path:
    """Call peaks on ``fragments`` with MACS3 and write them to ``out`` (narrowPeak).

    ``gsize`` is MACS3's effective genome size (a number or hs/mm/ce/dm); by default the total
    length of the genome's chromosomes. ``barcodes`` (a list file, read by
    :func:`~scregnet.atac.fragments.read_barcode_list`) restricts the pileup to those cells; at
    least one of them must be in ``fragments``.
    """
    macs3 = find_macs3()
    fragments, out = Path(fragments), Path(out)
    if not fragments.exists():
        msg = "fragments file does not exist"
        raise InputError(msg, fragments)
    wanted = None if barcodes is None else read_barcode_list(barcodes)
    present = check_fragments_for_macs3(fragments, chrom_sizes)
    if wanted is not None and present.isdisjoint(wanted):
        msg = f"none of its {len(wanted)} barcodes is in the fragments file {fragments}"
        raise InputError(msg, barcodes)
    if gsize is None:
        gsize = int(sum(chrom_sizes.values()))
    name = name or out.name.split(".")[0]
    began = time.perf_counter()
    make_parent(out)
    with (
        writing(out),
        scratch_dir(out, "macs3") as tmp,
    ):
        cmd = [
            macs3, "callpeak", "-f", "FRAG", "-t", str(fragments), "-g", str(gsize),
            "-q", str(qvalue), "-n", name, "--outdir", str(tmp),
        ]  # fmt: skip
        if wanted is not None:
            listed = tmp / "barcodes.txt"
            listed.write_text("".join(f"{b}\n" for b in wanted))
            cmd += ["--barcodes", str(listed)]
        _run_macs3(cmd, fragments)
        produced = tmp / f"{name}_peaks.narrowPeak"
        rows, dropped, mito = _clipped_peaks(produced, chrom_sizes, fragments)
        with atomic_path(out) as part:
            part.write_text("".join(rows))
    log.info(
        "wrote %s: %d peaks (%d outside the genome and %d on the mitochondrial genome dropped) "
        "in %.1f s",
        out,
        len(rows),
        dropped,
        mito,
        time.perf_counter() - began,
    )
    return out


def check_fragments_for_macs3(fragments: Path, chrom_sizes: dict[str, int]) -> set[str]:
    """Read ``fragments`` as ``scregnet count`` does (columns, integers, counts >= 0, chromosomes
    of the genome; in any order, as MACS3 takes it) before MACS3 sees it, and refuse what MACS3
    reads wrongly: no fragment with a count above 0 (a ZeroDivisionError or an assertion in
    MACS3), a last line without a line break (MACS3 never returns). Returns the file's barcodes."""
    reader = FragmentReader(fragments, genome=chrom_sizes, sorted_input=False)
    counted = sum(int(np.count_nonzero(chunk.count > 0)) for chunk in reader)
    if counted == 0:
        msg = "fragments file has no fragments (none with a count above 0)"
        raise InputError(msg, fragments)
    if reader.unterminated:
        msg = (
            "the last line has no line break, which MACS3 cannot read: add one, e.g. "
            "`(zcat F; echo) | bgzip > F2`"
        )
        raise InputError(msg, fragments)
    return set(reader.barcodes.names)


def _run_macs3(cmd: list[str], fragments: Path) -> None:
    """Run MACS3; its last stderr line (or exit status) in the error when it fails."""
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        msg = f"MACS3 failed on this fragments file ({last.strip()})"
        raise InputError(msg, fragments)


def _clipped_peaks(
    produced: Path, chrom_sizes: dict[str, int], fragments: Path
) -> tuple[list[str], int, int]:
    """MACS3's narrowPeak lines with ends clipped to the genome, less those on the mitochondrial
    genome (:data:`~scregnet.io.genome.MITOCHONDRIAL`); the counts of empty and of mitochondrial
    ones dropped."""
    rows = []
    dropped = mito = 0
    with produced.open() as handle:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            if fields[0] in MITOCHONDRIAL:
                mito += 1
                continue
            size = chrom_sizes.get(fields[0])
            if size is None:
                msg = f"MACS3 called a peak on {fields[0]}, which the genome index lacks"
                raise InputError(msg, fragments)
            start, end = int(fields[1]), min(int(fields[2]), size)
            if end <= start:
                dropped += 1
                continue
            fields[2] = str(end)
            rows.append("\t".join(fields) + "\n")
    if not rows:
        msg = (
            f"MACS3 called peaks only on the mitochondrial genome ({mito})"
            if mito
            else "MACS3 called no peaks (too few fragments?)"
        ) + "; pass --peaks instead"
        raise InputError(msg, fragments)
    return rows, dropped, mito
