"""The one place that resolves ``--device auto|cpu|cuda[:N]`` and mixed precision."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from scregnet.errors import InputError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn a user's device string into a ``torch.device``.

    ``auto`` picks the first CUDA GPU when one is visible, else the CPU. Asking for ``cuda`` on a
    machine without one is an error (a silent CPU fallback would hide a misconfigured GPU node).
    """
    import torch

    spec = spec.strip().lower()
    if not _DEVICE_RE.match(spec):
        msg = f"--device must be auto, cpu, cuda or cuda:N, got {spec!r}"
        raise InputError(msg)
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            msg = f"--device {spec} was asked for but no CUDA GPU is visible (use --device cpu or auto)"
            raise InputError(msg)
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            msg = f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) visible"
            raise InputError(msg)
    device = torch.device(spec)
    log.debug("using device %s", device)
    return device


def autocast(
    device: torch.device, *, enabled: bool = True
) -> contextlib.AbstractContextManager[None]:
    """Automatic mixed precision (bfloat16/float16) on CUDA; a no-op on CPU for exact reproducibility."""
    import torch

    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)
    return contextlib.nullcontext()


def grad_scaler(device: torch.device, *, enabled: bool = True) -> torch.amp.GradScaler:
    """A gradient scaler that is active only for float16 autocast on CUDA."""
    import torch

    active = device.type == "cuda" and enabled and not torch.cuda.is_bf16_supported()
    return torch.amp.GradScaler("cuda", enabled=active)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Limit torch's intra-op threads for the duration of a block (``--threads``)."""
    import torch

    if not n:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
