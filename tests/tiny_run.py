"""The tiny world's end-to-end run as the tests make it: its params and the `scregnet` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: training shortened with ``*_epochs`` and ``*_args`` params (the knobs Nextflow's ext.args uses),
#: fewer shards
FAST = {
    "impute_epochs": 3,
    "tfbind_epochs": 2,
    "grn_epochs": 3,
    "min_fragments": 500,
    "device": "cpu",
    "tfbind_train_args": "--filters 16,16,16 --hidden 32",
    # a 2-epoch model on the tiny world predicts calibrated but low probabilities (max ~0.25)
    "grn_train_args": "--prior-threshold 0.1",
    # two prediction and two scoring shards: merging is exercised with half the processes
    # (the same results as four, within the golden tolerances)
    "tfbind_shards": 2,
    "grn_shards": 2,
}


def tiny_params(world: Path, dest: Path) -> Path:
    """params.yaml for the tiny world with absolute paths and the fast training settings."""
    import yaml

    params = yaml.safe_load((world / "params.yaml").read_text())
    for key, value in list(params.items()):
        if isinstance(value, str) and (world / value).exists():
            params[key] = str(world / value)
    params.update(FAST)
    dest.write_text(yaml.safe_dump(params, sort_keys=True))
    return dest


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """``bin/scregnet ARGS`` with this interpreter, exactly as a user runs it."""
    return subprocess.run(
        [sys.executable, str(REPO / "bin" / "scregnet"), *args],
        capture_output=True,
        text=True,
        check=False,
        **kwargs,
    )  # type: ignore[call-overload]
