"""Pipeline parameters (``params.yaml``): the same file Nextflow takes with ``-params-file``.

Path-valued keys are resolved against the params file's directory when relative, so a simulated
world can be moved as a whole.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
from pathlib import Path
from typing import Any

from scregnet.device import DEVICE_PATTERN
from scregnet.errors import InputError
from scregnet.pipeline.steps import STAGE_GRAPH

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
    "multiqc_config",
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
    "tfbind_skip_chroms": None,
    "tfbind_shards": 4,
    "grn_shards": 4,
    "multiqc_config": None,
    "multiqc_title": None,
    "device": "auto",
}


#: Nextflow's own parameters (nextflow_schema.json) that `scregnet run` accepts and ignores, so
#: that one params file serves both: name -> allowed values (``None``: any string)
NEXTFLOW_ONLY: dict[str, tuple[Any, ...] | None] = {
    "outdir": None,
    "simulate_preset": ("tiny", "small", "large", "tiny_real", "small_real"),
    "simulate_drop": None,
    "publish_dir_mode": ("symlink", "rellink", "link", "copy", "copyNoFollow", "move"),
    "aws_queue": None,
    "aws_region": None,
    "gpu_queue": None,
    "gpu_type": None,
    "gpu_machine_type": None,
    "slurm_queue": None,
    "slurm_options": None,
    "aws_cli_path": None,
    "trace_report_suffix": None,
    "config_profile_name": None,
    "config_profile_description": None,
}
#: Nextflow parameters that take true/false
NEXTFLOW_FLAGS = ("validate_params", "help", "gpu")

#: integer parameters: name -> (smallest allowed value, whether null means "the default")
INTEGERS: dict[str, tuple[int, bool]] = {
    "seed": (0, False),
    "min_mapq": (0, False),
    "min_fragments": (1, False),
    "tile_size": (100, False),
    "impute_epochs": (1, True),
    "tfbind_epochs": (1, True),
    "grn_epochs": (1, True),
    "tfbind_shards": (1, True),
    "grn_shards": (1, True),
}


class _DuplicateKeyError(Exception):
    def __init__(self, key: object, first: int, second: int) -> None:
        super().__init__(f"duplicate key {key!r} (lines {first} and {second})")


def _loader() -> type:
    """A safe YAML loader that refuses a mapping holding one key twice (PyYAML keeps the last)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            lines: dict[object, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                if isinstance(key, str | int | float | bool) and key in lines:
                    raise _DuplicateKeyError(key, lines[key], line)
                if isinstance(key, str | int | float | bool):
                    lines[key] = line
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def known_keys() -> list[str]:
    """Every parameter a params file may set."""
    args = [f"{stage.lower()}_args" for stage in STAGE_GRAPH]
    return sorted(
        {
            "input",
            "fasta",
            "gtf",
            *PATH_KEYS,
            *DEFAULTS,
            *INTEGERS,
            *NEXTFLOW_ONLY,
            *NEXTFLOW_FLAGS,
            *args,
        }
    )


def _check_keys(loaded: dict[Any, Any], path: Path) -> None:
    known = known_keys()
    for key in loaded:
        if not isinstance(key, str) or key not in known:
            # a misspelt `<process>_args` is matched against the other `_args` keys first
            same_kind = [k for k in known if k.endswith("_args") == str(key).endswith("_args")]
            close = difflib.get_close_matches(str(key), same_kind, n=1, cutoff=0.6)
            close = close or difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            msg = f"unknown parameter {str(key)!r}{hint}"
            raise InputError(msg, path)


def _check_values(params: dict[str, Any], path: Path) -> None:
    """Types and ranges (those of nextflow_schema.json); out of range is an error, not a default."""
    for key, (low, nullable) in INTEGERS.items():
        value = params.get(key)
        if value is None and nullable:
            continue
        if key == "min_fragments" and value == "knee":
            continue
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            extra = " or 'knee'" if key == "min_fragments" else ""
            msg = f"parameter '{key}' must be an integer{extra}, got {value!r}"
            raise InputError(msg, path)
        if value < low:
            default = " (leave it out or null for the default)" if nullable else ""
            msg = f"parameter '{key}' must be >= {low}, got {value}{default}"
            raise InputError(msg, path)
        params[key] = value
    for key in (
        *PATH_KEYS,
        "input",
        "fasta",
        "gtf",
        "barcode_tag",
        "device",
        "multiqc_title",
        "tfbind_skip_chroms",
    ):
        value = params.get(key)
        if value is not None and not isinstance(value, str | Path):
            msg = f"parameter '{key}' must be a string, got {value!r}"
            raise InputError(msg, path)
    tag = params.get("barcode_tag")
    if not isinstance(tag, str) or len(tag) != 2:
        msg = f"parameter 'barcode_tag' must be a two-character SAM tag, got {tag!r}"
        raise InputError(msg, path)
    device = params.get("device")
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        msg = f"parameter 'device' must be auto, cpu, cuda or cuda:N, got {device!r}"
        raise InputError(msg, path)
    for key, value in params.items():
        if key.endswith("_args") and value is not None:
            if not isinstance(value, str):
                msg = f"parameter '{key}' must be a string of command-line flags, got {value!r}"
                raise InputError(msg, path)
            try:
                shlex.split(value)
            except ValueError as exc:
                msg = f"parameter '{key}' is not a valid command line ({exc}): {value!r}"
                raise InputError(msg, path) from exc
        allowed = NEXTFLOW_ONLY.get(key)
        if key in NEXTFLOW_ONLY and value is not None:
            if not isinstance(value, str):
                msg = f"parameter '{key}' must be a string, got {value!r}"
                raise InputError(msg, path)
            if allowed is not None and value not in allowed:
                msg = f"parameter '{key}' must be one of {', '.join(allowed)}, got {value!r}"
                raise InputError(msg, path)
        if key in NEXTFLOW_FLAGS and not isinstance(value, bool):
            msg = f"parameter '{key}' must be true or false, got {value!r}"
            raise InputError(msg, path)


def read_params(path: str | Path) -> dict[str, Any]:
    """Read ``params.yaml``; fill defaults; resolve relative paths; require input, fasta and gtf.

    Unknown keys (with the closest known one suggested), keys given twice, values of the wrong
    type and values out of range are errors (:class:`InputError`) naming the file.
    """
    import yaml

    from scregnet.io.text import read_text

    path = Path(path)
    if not path.exists():
        msg = "params file does not exist"
        raise InputError(msg, path)
    try:
        loaded = yaml.load(read_text(path), Loader=_loader()) or {}
    except _DuplicateKeyError as exc:
        raise InputError(str(exc), path) from exc
    except yaml.YAMLError as exc:
        msg = f"not valid YAML ({str(exc).splitlines()[0]})"
        raise InputError(msg, path) from exc
    if not isinstance(loaded, dict):
        msg = "params file must be a YAML mapping of parameter: value"
        raise InputError(msg, path)
    _check_keys(loaded, path)
    params = {**DEFAULTS, **loaded}
    for key in ("input", "fasta", "gtf"):
        if not params.get(key):
            msg = f"required parameter '{key}' is missing"
            raise InputError(msg, path)
    _check_values(params, path)
    for key in PATH_KEYS:
        value = params.get(key)
        if value in (None, ""):
            params[key] = None
            continue
        # absolute and normalised: a step's recorded command is the same from any launch folder
        resolved = Path(os.path.abspath(path.parent / str(value)))
        if not resolved.exists():
            msg = f"parameter '{key}' points to {resolved}, which does not exist"
            raise InputError(msg, path)
        params[key] = resolved
    return params
