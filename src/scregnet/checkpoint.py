"""The one checkpoint format of the package's models (imputation, TF binding, GRN).

A checkpoint is a ``torch.save`` of a dict ``{"kind", "version", "config", "state_dict", ...}``:
``kind`` names the model (``scregnet.impute``, ...), ``version`` its layout, ``config`` the plain
data (dataclasses become dicts) that rebuilds the network, ``state_dict`` its tensors; a model may
add plain-data fields of its own. :func:`load` reads it with ``torch.load(weights_only=True)``, so
a file holding any other pickled object is refused rather than run.

``digest`` is the SHA-256 of everything else in the checkpoint (:func:`content_digest`): torch's
archive does not check its own contents, so a file damaged on disk or in transfer would otherwise
load with wrong weights. :func:`load` recomputes it and refuses a mismatch; a checkpoint written
without one is read as it is.
"""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from scregnet.errors import InputError

if TYPE_CHECKING:
    import torch
    from torch import nn

#: the fields every checkpoint has
FIELDS = ("kind", "version", "config", "state_dict")

M = TypeVar("M", bound="nn.Module")


def plain(value: Any) -> Any:
    """``value`` as plain data ``torch.load(weights_only=True)`` reads back: dataclasses become
    dicts, numpy scalars and arrays Python numbers and lists, paths strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def _feed(h: Any, value: Any) -> None:
    """Add ``value`` to the hash ``h``: tensors by dtype, shape and bytes, mappings by sorted key,
    sequences in order, anything else by its ``repr``."""
    import torch

    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, Mapping):
        h.update(b"{")
        for key in sorted(value, key=str):
            h.update(repr(str(key)).encode())
            _feed(h, value[key])
        h.update(b"}")
    elif isinstance(value, list | tuple):
        h.update(b"[")
        for item in value:
            _feed(h, item)
        h.update(b"]")
    else:
        h.update(repr(value).encode())


def content_digest(ckpt: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of a checkpoint's fields other than ``digest``."""
    import hashlib

    h = hashlib.sha256()
    _feed(h, {k: v for k, v in ckpt.items() if k != "digest"})
    return h.hexdigest()


def save(
    path: str | Path,
    kind: str,
    version: int,
    config: Any,
    state_dict: Mapping[str, torch.Tensor],
    **extra: Any,
) -> Path:
    """Write a checkpoint of ``kind`` and layout ``version`` to ``path`` (tensors moved to the CPU)."""
    import torch

    payload = {
        "kind": kind,
        "version": int(version),
        "config": plain(config),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        **{k: plain(v) for k, v in extra.items()},
    }
    payload["digest"] = content_digest(payload)
    # a file object, not the path: torch.save names the archive inside after a path it is given
    # (often a temporary name), which would make the same model differ byte for byte
    with open(path, "wb") as handle:
        torch.save(payload, handle)
    return Path(path)


def load(path: str | Path, kind: str, version: int) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save`; InputError naming ``path`` unless it is a
    ``kind`` checkpoint of layout ``version``."""
    import torch

    path = Path(path)
    if not path.exists():
        msg = "checkpoint does not exist"
        raise InputError(msg, path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        # a disk error goes on as it is; torch's archive reader reports a cut file as EINVAL
        corrupt = exc.errno in (None, errno.EINVAL) if isinstance(exc, OSError) else True
        if not corrupt and not isinstance(exc, FileNotFoundError):
            raise
        msg = (
            f"not a readable {kind} checkpoint: it is truncated, corrupt or holds objects other "
            f"than tensors and plain data ({type(exc).__name__})"
        )
        raise InputError(msg, path) from exc
    if not isinstance(ckpt, dict) or not set(FIELDS) <= set(ckpt):
        msg = f"not a scregnet checkpoint (needs the fields {', '.join(FIELDS)})"
        raise InputError(msg, path)
    if ckpt["kind"] != kind:
        msg = f"a {ckpt['kind']} checkpoint, not a {kind} one"
        raise InputError(msg, path)
    if ckpt["version"] != version:
        msg = f"{kind} checkpoint version {ckpt['version']} is not supported (expected {version}); retrain"
        raise InputError(msg, path)
    if "digest" in ckpt and ckpt["digest"] != content_digest(ckpt):
        msg = (
            f"{kind} checkpoint is damaged: its contents do not match the digest written with "
            "them (changed on disk or in transfer); copy it again or retrain"
        )
        raise InputError(msg, path)
    return ckpt


def restore(build: Callable[[], M], ckpt: dict[str, Any], path: str | Path | None = None) -> M:
    """The network ``build()`` makes, with the checkpoint's weights, in eval mode; InputError
    naming ``path`` when the two do not fit (a checkpoint of another version of the model)."""
    try:
        model = build()
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, KeyError, RuntimeError, ValueError) as exc:
        msg = f"{ckpt.get('kind', 'the')} checkpoint does not match this scregnet version's model ({type(exc).__name__})"
        raise InputError(msg, path) from exc
    return model.eval()
