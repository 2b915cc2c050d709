"""The ATAC stage's options that take one of a fixed set of strings (the API checks them with
:func:`scregnet.choices.check_choice`, the CLI offers them as ``choices``). Free of heavy imports,
so ``--help`` stays instant."""

from __future__ import annotations

from typing import Literal

#: duplicate pairs: equal coordinates within one barcode, or across barcodes (``--collapse``)
Collapse = Literal["within", "across"]
#: what counts in a feature: overlapping fragments, Tn5 insertions, or insertions once per
#: fragment (``--strategy``)
Strategy = Literal["fragment", "insertion", "paired-insertion"]
#: the matrix clustering embeds: ``X`` (peaks) or ``obsm['tiles']`` (``--features``)
Features = Literal["peaks", "tiles"]
