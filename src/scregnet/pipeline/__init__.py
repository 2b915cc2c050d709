"""Single-machine runner: every stage in DAG order, from the same samplesheet and params as Nextflow.

:mod:`~scregnet.pipeline.steps` defines each process once (command line, label, device, upstream),
for this runner and as the reference the Nextflow modules are checked against;
:mod:`~scregnet.pipeline.params` reads and checks the params file (the same file Nextflow takes with
``-params-file``); :mod:`~scregnet.pipeline.plan` expands params and samplesheet into steps (command
line, every file it reads, every file it writes); :mod:`~scregnet.pipeline.execute` runs them as
child processes, ``jobs`` at a time; :mod:`~scregnet.pipeline.state` decides what is up to date
(resume), and :mod:`~scregnet.pipeline.lock` keeps one run per results folder.
"""

from __future__ import annotations

from scregnet.pipeline.execute import (
    STOP_GRACE_S,
    TRACE_COLUMNS,
    prepare_test_data,
    remove_leftovers,
    run_pipeline,
    run_steps,
    temp_leftovers,
)
from scregnet.pipeline.lock import LOCK_NAME, outdir_lock
from scregnet.pipeline.plan import (
    POOLED,
    Step,
    check_layout,
    find_tool,
    package_digest,
    plan,
    stage_order,
    step_dependencies,
    step_priorities,
)
from scregnet.pipeline.state import RECORD_FIELDS, signature, stale_reason
from scregnet.pipeline.steps import (
    POOLED_STAGES,
    STAGE_COST,
    STAGE_GRAPH,
    STEPS,
    TEST_PROFILE,
)

__all__ = [
    "LOCK_NAME",
    "POOLED",
    "POOLED_STAGES",
    "RECORD_FIELDS",
    "STAGE_COST",
    "STAGE_GRAPH",
    "STEPS",
    "STOP_GRACE_S",
    "TEST_PROFILE",
    "TRACE_COLUMNS",
    "Step",
    "check_layout",
    "find_tool",
    "outdir_lock",
    "package_digest",
    "plan",
    "prepare_test_data",
    "remove_leftovers",
    "run_pipeline",
    "run_steps",
    "signature",
    "stage_order",
    "stale_reason",
    "step_dependencies",
    "step_priorities",
    "temp_leftovers",
]
