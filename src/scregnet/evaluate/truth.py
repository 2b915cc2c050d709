"""Score a results directory against a simulator ``truth/`` directory.

Each stage has its own scorer module (``scregnet.evaluate.score_<stage>``) exposing
``score(truth_dir: Path, results_dir: Path) -> dict | None``; it returns ``None`` when the stage's
outputs are absent. Scorers read files only: evaluation never imports a stage.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
from pathlib import Path
from typing import Any

from scregnet.errors import InputError
from scregnet.io.atomic import atomic_path

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


def strict_json(value: Any) -> Any:
    """``value`` as standard JSON takes it: numpy numbers as Python numbers, and a score that
    is not finite (NaN, e.g. a metric with one class) as ``null`` (``NaN`` is not JSON: jq and
    R's jsonlite refuse it)."""
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_evaluation(report: dict[str, Any], path: str | Path) -> Path:
    """``report`` as strict JSON (:func:`strict_json`), written atomically."""
    text = json.dumps(strict_json(report), indent=2, sort_keys=True, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")
    return Path(path)
