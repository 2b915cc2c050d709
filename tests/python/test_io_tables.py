"""Tab-separated tables: a GRN ranking cut short inside its last row is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from scregnet.errors import InputError
from scregnet.io.tables import read_ranking

HEADER = "tf\ttarget\tscore\trank\tmethod\n"
ROWS = [f"T{i}\tG{i}\t0.{9 - i}\t{i + 1}\ttarget prior\n" for i in range(5)]


def test_ranking_cut_inside_its_last_row_is_refused(tmp_path: Path) -> None:
    whole = tmp_path / "grn_edges.tsv"
    whole.write_text(HEADER + "".join(ROWS))
    assert len(read_ranking(whole)) == 5
    # no line break after a complete last row (written by hand): read
    unterminated = tmp_path / "by_hand.tsv"
    unterminated.write_text((HEADER + "".join(ROWS)).rstrip("\n"))
    assert read_ranking(unterminated)["method"].iloc[-1] == "target prior"
    # a copy cut inside row 5, after its score: the score parses, the row is short
    cut = tmp_path / "cut.tsv"
    cut.write_text(HEADER + "".join(ROWS[:4]) + "T4\tG4\t0.5")
    with pytest.raises(InputError, match=r"cut\.tsv: data row 5 has 3 field\(s\), the header 5"):
        read_ranking(cut)
