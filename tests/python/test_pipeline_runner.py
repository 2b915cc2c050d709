"""The single-machine runner's mechanics: DAG order, resume, failure reporting."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from scregnet.errors import InputError
from scregnet.pipeline import STAGE_GRAPH, Step, run_steps, stage_order


def test_stage_order_is_topological() -> None:
    order = stage_order()
    assert sorted(order) == sorted(STAGE_GRAPH)
    for stage, upstream in STAGE_GRAPH.items():
        for up in upstream:
            assert order.index(up) < order.index(stage), (up, stage)


def _copy_step(src: Path, dst: Path, tag: str = "") -> Step:
    code = f"import shutil,sys; shutil.copy({str(src)!r}, {str(dst)!r}); open({str(dst)!r},'a').write({tag!r})"
    return Step("COUNT", "s1", ["-c", code], [src], [dst], executable=sys.executable)


def test_resume_skips_fresh_steps_and_reruns_stale_ones(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("a")
    lines: list[str] = []
    assert run_steps([_copy_step(src, dst)], tmp_path, on_progress=lines.append) == ["COUNT:s1"]
    assert run_steps([_copy_step(src, dst)], tmp_path, on_progress=lines.append) == []
    assert any("skipped (resume)" in line for line in lines)
    # a newer input makes the step stale
    future = time.time() + 5
    os.utime(src, (future, future))
    assert run_steps([_copy_step(src, dst)], tmp_path) == ["COUNT:s1"]
    # a different command makes it stale too
    assert run_steps([_copy_step(src, dst, tag="x")], tmp_path) == ["COUNT:s1"]
    assert dst.read_text() == "ax"
    # a missing output makes it stale
    dst.unlink()
    assert run_steps([_copy_step(src, dst, tag="x")], tmp_path) == ["COUNT:s1"]


def test_failed_step_raises_with_its_last_error_line(tmp_path: Path) -> None:
    bad = Step(
        "COUNT",
        "s1",
        [
            "-c",
            "import sys; sys.stderr.write('noise\\nscregnet count: error: x.bed: empty\\n'); sys.exit(1)",
        ],
        [],
        [tmp_path / "never.txt"],
        executable=sys.executable,
    )
    with pytest.raises(
        InputError, match=r"COUNT \(s1\) failed: scregnet count: error: x.bed: empty"
    ):
        run_steps([bad], tmp_path)
    assert not (tmp_path / "pipeline_info" / "steps" / "COUNT.s1.json").exists()
