"""Score a results directory against a simulator ``truth/`` directory.

Each stage has its own scorer module (``scregnet.evaluate.score_<stage>``) exposing
``score(truth_dir: Path, results_dir: Path) -> dict | None``; it returns ``None`` when the stage's
outputs are absent. Scorers read files only: evaluation never imports a stage.
"""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Any

from scregnet.errors import InputError
from scregnet.io.atomic import atomic_path
from scregnet.io.text import json_text

log = logging.getLogger(__name__)

STAGES = ("atac", "impute", "tfbind", "grn")


def evaluate(truth_dir: str | Path, results_dir: str | Path) -> dict[str, Any]:
    """Score every stage whose outputs exist in ``results_dir``."""
    truth_dir, results_dir = Path(truth_dir), Path(results_dir)
    for folder, what in ((truth_dir, "truth"), (results_dir, "results")):
        if not folder.is_dir():
            why = "is a file, not a folder" if folder.exists() else "does not exist"
            msg = f"{what} directory {why}"
            raise InputError(msg, folder)
    report: dict[str, Any] = {}
    for stage in STAGES:
        name = f"scregnet.evaluate.score_{stage}"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        result = module.score(truth_dir, results_dir)
        if result is None:
            log.info("%s: no outputs found, not scored", stage)
            continue
        report[stage] = result
        log.info("%s: %s", stage, json.dumps(result, default=float)[:300])
    return report


def write_evaluation(report: dict[str, Any], path: str | Path) -> Path:
    """``report`` as strict JSON (:func:`scregnet.io.text.json_text`), written atomically."""
    text = json_text(report)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
