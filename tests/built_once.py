"""Session folders that every pytest-xdist worker of one run shares: the first worker to ask builds
the folder while holding a lock, the others wait and then read it. For inputs that tests only read
(simulated worlds, staged stage outputs); each would otherwise be built once per worker."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

#: written last, after ``build`` returned: a folder without it is rebuilt
DONE = ".built"


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """``<run's temporary root>/shared-<run id>-<name>``, filled by ``build(folder)`` once per test
    run (per worker's temporary folder when not under xdist)."""
    base = factory.getbasetemp()
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    root, tag = (base.parent, run_id) if run_id else (base, "local")
    folder = root / f"shared-{tag}-{name}"
    with (root / f"shared-{tag}-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / DONE).exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / DONE).touch()
    return folder
