"""The ATAC stage's options that take one of a fixed set of strings (the API checks them with
:func:`scregnet.choices.check_choice`, the CLI offers them as ``choices``), and the fragments
step's options, whose defaults the CLI shows. Free of heavy imports, so ``--help`` stays instant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scregnet.choices import check_choice
from scregnet.io.genome import MITOCHONDRIAL

#: duplicate pairs: equal coordinates within one barcode, or across barcodes (``--collapse``)
Collapse = Literal["within", "across"]
#: what counts in a feature: overlapping fragments, Tn5 insertions, or insertions once per
#: fragment (``--strategy``)
Strategy = Literal["fragment", "insertion", "paired-insertion"]
#: the matrix clustering embeds: ``X`` (peaks) or ``obsm['tiles']`` (``--features``)
Features = Literal["peaks", "tiles"]


@dataclass(frozen=True)
class FragmentOptions:
    """Filters and collapsing rules for :func:`scregnet.atac.fragments.bam_to_fragments`
    (defaults: 10x / SCIENCE.md §1; ``scregnet fragments`` offers these defaults)."""

    barcode_tag: str = "CB"
    min_mapq: int = 30
    exclude_contigs: tuple[str, ...] = MITOCHONDRIAL
    shift_plus: int = 4
    shift_minus: int = -5
    min_length: int = 1
    max_length: int | None = None
    proper_pair: bool = True
    collapse: Collapse = "within"
    merge_shared_ends: bool = False
    barcodes: frozenset[str] | None = None

    def __post_init__(self) -> None:
        check_choice("collapse", self.collapse, Collapse)
