"""TF motifs: real JASPAR PFMs from pyjaspar's bundled (offline) database, sampling and writing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scregnet.errors import InputError
from scregnet.io.atomic import atomic_path

JASPAR_RELEASE = "JASPAR2024"
_COMPLEMENT = np.frombuffer(bytes.maketrans(b"ACGT", b"TGCA"), dtype=np.uint8)
_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


@dataclass(frozen=True)
class Motif:
    """A position frequency matrix: ``counts`` is (4, length) over A, C, G, T."""

    matrix_id: str
    name: str
    counts: np.ndarray

    @property
    def length(self) -> int:
        return int(self.counts.shape[1])

    def probabilities(self, pseudocount: float = 0.8) -> np.ndarray:
        """(4, length) column probabilities with a small pseudocount."""
        c = self.counts + pseudocount
        return c / c.sum(axis=0, keepdims=True)


def load_motifs(names: tuple[str, ...] | list[str]) -> list[Motif]:
    """Fetch one vertebrate CORE PFM per TF name from pyjaspar's bundled database (no network).

    Among a TF's vertebrate ``MA`` matrices the shortest one (at most 20 bp) is taken, ties broken by
    matrix id, so the choice is stable for a given JASPAR release.
    """
    from pyjaspar import jaspardb

    db = jaspardb(release=JASPAR_RELEASE)
    out: list[Motif] = []
    for name in names:
        found = [
            m
            for m in (db.fetch_motifs_by_name(name) or [])
            if m.tax_group == "vertebrates"
            and m.matrix_id.startswith("MA")
            and m.name.upper() == name.upper()
        ]
        if not found:
            msg = f"no vertebrate JASPAR motif for TF {name!r} in {JASPAR_RELEASE}"
            raise InputError(msg)
        found.sort(key=lambda m: (m.length > 20, m.length, m.matrix_id))
        best = found[0]
        counts = np.array([best.counts[b] for b in "ACGT"], dtype=np.float64)
        out.append(Motif(best.matrix_id, name, counts))
    return out


def sample_instance(
    motif: Motif, rng: np.random.Generator, *, sharpness: float = 2.0
) -> tuple[np.ndarray, str]:
    """One planted binding site: ASCII bytes sampled from the PFM and the strand it was planted on.

    Columns are raised to ``sharpness`` before sampling, so planted sites are good (but not
    consensus-only) matches, like real bound sites.
    """
    p = motif.probabilities() ** sharpness
    p /= p.sum(axis=0, keepdims=True)
    cum = np.cumsum(p, axis=0)
    draws = rng.random(motif.length)
    idx = (draws[None, :] > cum).sum(axis=0).clip(0, 3)
    seq = _BASES[idx]
    if rng.random() < 0.5:
        return _COMPLEMENT[seq[::-1]], "-"
    return seq, "+"


def write_jaspar(motifs: list[Motif], path: str | Path) -> Path:
    """Write PFMs in JASPAR format: ``>ID NAME`` then rows ``A [ counts ]`` for A, C, G, T."""
    lines: list[str] = []
    for m in motifs:
        lines.append(f">{m.matrix_id} {m.name}")
        integral = bool(np.all(m.counts == np.round(m.counts)))
        for base, row in zip("ACGT", m.counts, strict=True):
            cells = [f"{v:6.0f}" if integral else f"{v:8.3f}" for v in row]
            lines.append(f"{base} [ " + " ".join(cells) + " ]")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return Path(path)


def perturbed(motif: Motif, rng: np.random.Generator, *, concentration: float) -> Motif:
    """The motif as a database would give it: each column's probabilities redrawn from
    Dirichlet(``concentration`` x planted probabilities), as counts out of 100."""
    p = motif.probabilities()
    cols = [rng.dirichlet(concentration * p[:, k] + 1e-3) for k in range(motif.length)]
    return Motif(motif.matrix_id, motif.name, np.round(100 * np.array(cols).T, 1))


def variant(motif: Motif, rng: np.random.Generator) -> Motif:
    """A binding form of the TF that the database lacks.

    Motifs up to 12 bp: a head-to-head dimer (the PFM, 1-3 free bases, its reverse complement).
    Longer motifs: the three most informative columns prefer a rotated base (A->C->G->T->A).
    """
    p = motif.probabilities()
    if motif.length <= 12:
        spacer = np.full((4, int(rng.integers(1, 4))), 0.25)
        counts = np.concatenate([p, spacer, p[::-1, ::-1]], axis=1)
    else:
        counts = p.copy()
        info = (p * np.log2(4 * p)).sum(axis=0)
        for k in np.argsort(-info)[:3]:
            counts[:, k] = np.roll(p[:, k], 1)
    return Motif(f"{motif.matrix_id}_variant", motif.name, 100 * counts)
