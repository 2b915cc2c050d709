"""What a run would do, without doing it (``scregnet run --dry-run``): each step of the plan is up
to date (it would be resumed), would run (and why), or would be skipped.

A step runs when its own record says so (:func:`~scregnet.pipeline.state.stale_reason`: no
record, a changed command, input or output) or when a step it depends on runs, since that rewrites
its inputs. Reading the records and the inputs' signatures writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scregnet.pipeline.plan import RECORDS, Step, step_dependencies
from scregnet.pipeline.state import snapshot, stale_reason

#: a step's fate in a preview
RESUMED, RUNS, SKIPPED = "up to date", "runs", "skipped"


@dataclass(frozen=True)
class Planned:
    """One step of a preview: its fate and, when it runs or is skipped, why."""

    step: Step
    fate: str
    why: str = ""


def preview(steps: Sequence[Step], outdir: Path) -> list[Planned]:
    """The fate of each of ``steps`` (in :func:`~scregnet.pipeline.plan.plan`'s order, every step
    after those it needs) if ``outdir`` were run now."""
    deps = step_dependencies(steps)
    runs: set[int] = set()
    out: list[Planned] = []
    for i, step in enumerate(steps):
        upstream = sorted(j for j in deps[i] if j in runs)
        if upstream:  # named: the nearest before it in the plan's order (a direct input)
            reason: str | None = f"it needs {steps[upstream[-1]].label}, which runs"
        else:
            reason = stale_reason(step, outdir / RECORDS / step.record_name, snapshot(step.inputs))
        if reason is None:
            out.append(Planned(step, RESUMED))
        elif step.tool_missing:
            out.append(Planned(step, SKIPPED, f"`{step.executable}` is not installed"))
        else:
            runs.add(i)
            out.append(Planned(step, RUNS, reason))
    return out


def preview_lines(planned: Sequence[Planned]) -> list[str]:
    """One line per step, ``[i/N] STAGE (name): fate[: why]``, then a count of each fate."""
    total = len(planned)
    lines = [
        f"[{i}/{total}] {p.step.label}: {p.fate}" + (f": {p.why}" if p.why else "")
        for i, p in enumerate(planned, 1)
    ]
    counts = {fate: sum(p.fate == fate for p in planned) for fate in (RUNS, RESUMED, SKIPPED)}
    lines.append(
        f"{counts[RUNS]} of {total} step(s) would run, {counts[RESUMED]} are up to date"
        + (f", {counts[SKIPPED]} would be skipped" if counts[SKIPPED] else "")
        + " (dry run: nothing was run or written)"
    )
    return lines
