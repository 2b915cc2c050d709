"""Run independent calls in worker processes, and say plainly why when a worker dies.

A worker killed from outside (the kernel's out-of-memory killer sends SIGKILL) leaves
:class:`concurrent.futures.process.BrokenProcessPool` with no cause. :func:`map_in_processes` names
the signal instead, and turns a SIGKILL into :class:`MemoryError`, which the command line reports
with the exit status the OOM killer gives a process (137), so that a workflow manager retries the
task with more memory.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from scregnet.errors import signal_name

T = TypeVar("T")


def map_in_processes(
    function: Callable[..., T],
    calls: Sequence[tuple[Any, ...]],
    threads: int,
    *,
    order: Sequence[int] | None = None,
    what: str = "a worker process",
) -> list[T]:
    """``[function(*args) for args in calls]``, over ``threads`` spawned processes.

    ``order`` is the order the calls are submitted in (e.g. the largest first); the results are in
    the order of ``calls``. A worker that raises re-raises here. A worker killed by SIGKILL raises
    :class:`MemoryError`, by another signal :class:`RuntimeError`; ``what`` names the worker in
    those messages.
    """
    schedule = list(range(len(calls))) if order is None else list(order)
    with ProcessPoolExecutor(
        max_workers=max(1, min(threads, len(calls))), mp_context=get_context("spawn")
    ) as pool:
        futures = {k: pool.submit(function, *calls[k]) for k in schedule}
        # the pool's Process objects (private, so looked up with a fallback): their exit codes
        # say how a worker died
        processes: dict[int, BaseProcess] = dict(getattr(pool, "_processes", None) or {})
        try:
            return [futures[k].result() for k in range(len(calls))]
        except BrokenProcessPool as exc:
            raise _worker_death(list(processes.values()), what) from exc


def _worker_death(processes: Sequence[BaseProcess], what: str) -> Exception:
    """The error for a pool broken by a worker that died: by the signal that killed it."""
    for process in processes:
        process.join(timeout=5)
    killed = sorted({-p.exitcode for p in processes if p.exitcode is not None and p.exitcode < 0})
    if signal.SIGKILL in killed:
        return MemoryError(
            f"{what} was killed by SIGKILL, most likely by the out-of-memory killer; fewer "
            "--threads need less memory"
        )
    # the pool terminates (SIGTERM) the workers left once one died: name the other signal first
    first = [s for s in killed if s != signal.SIGTERM] or killed
    if first:
        return RuntimeError(f"{what} was killed by {signal_name(first[0])}")
    return RuntimeError(f"{what} exited abruptly")
