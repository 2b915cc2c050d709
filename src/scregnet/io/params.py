"""Pipeline parameters (``params.yaml``): the same file Nextflow takes with ``-params-file``.

Path-valued keys are resolved against the params file's directory when relative, so a simulated
world can be moved as a whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scregnet.errors import InputError

PATH_KEYS = (
    "input",
    "fasta",
    "gtf",
    "peaks",
    "bulk_sheet",
    "bulk_rna",
    "motifs",
    "tfs",
    "grn_labels",
    "tfbind_model",
)

DEFAULTS: dict[str, Any] = {
    "peaks": None,
    "bulk_sheet": None,
    "bulk_rna": None,
    "motifs": None,
    "tfs": None,
    "grn_labels": None,
    "tfbind_model": None,
    "seed": 0,
    "min_fragments": 1000,
    "tile_size": 5000,
    "min_mapq": 30,
    "barcode_tag": "CB",
    "impute_epochs": None,
    "tfbind_epochs": None,
    "grn_epochs": None,
    "device": "auto",
}


def read_params(path: str | Path) -> dict[str, Any]:
    """Read ``params.yaml``; fill defaults; resolve relative paths; require input, fasta and gtf."""
    import yaml

    path = Path(path)
    if not path.exists():
        msg = "params file does not exist"
        raise InputError(msg, path)
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        msg = f"not valid YAML ({str(exc).splitlines()[0]})"
        raise InputError(msg, path) from exc
    if not isinstance(loaded, dict):
        msg = "params file must be a YAML mapping of parameter: value"
        raise InputError(msg, path)
    params = {**DEFAULTS, **loaded}
    for key in ("input", "fasta", "gtf"):
        if not params.get(key):
            msg = f"required parameter '{key}' is missing"
            raise InputError(msg, path)
    for key in PATH_KEYS:
        value = params.get(key)
        if value in (None, ""):
            params[key] = None
            continue
        resolved = Path(str(value))
        if not resolved.is_absolute():
            resolved = path.parent / resolved
        if not resolved.exists():
            msg = f"parameter '{key}' points to {resolved}, which does not exist"
            raise InputError(msg, path)
        params[key] = resolved
    return params
