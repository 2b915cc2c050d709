"""The one place that resolves ``--device auto|cpu|cuda[:N]`` and mixed precision."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from scregnet.errors import InputError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

T = TypeVar("T")

#: the device strings every subcommand and `scregnet run` take
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn a user's device string into a ``torch.device``.

    ``auto`` picks the first CUDA GPU when one is visible, else the CPU. Asking for ``cuda`` on a
    machine without one is an error (a silent CPU fallback would hide a misconfigured GPU node).
    """
    import torch

    spec = spec.strip().lower()
    if not DEVICE_PATTERN.match(spec):
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


class FittingBatch:
    """A batch size for inference that halves when the device runs out of memory.

    :meth:`over` runs ``run(slice)`` on consecutive slices covering ``range(n)``; a slice that
    raises PyTorch's out-of-memory error is retried at half its length once the device's cache is
    emptied, down to one item, and the smaller size is kept for every later call, with a
    warning. Only for work whose results do not depend on how it is batched (inference, not
    training): a GPU with less memory then gives the same results (up to float rounding, which
    depends on the batch size), more slowly, instead of stopping an unattended run.
    """

    def __init__(self, size: int, what: str) -> None:
        if size < 1:
            msg = f"batch size must be >= 1, got {size}"
            raise ValueError(msg)
        self.size = size
        self.what = what

    def over(self, n: int, run: Callable[[slice], T]) -> Iterator[T]:
        import torch

        start = 0
        while start < n:
            stop = min(n, start + self.size)
            out_of_memory = False
            try:
                result = run(slice(start, stop))
            except torch.OutOfMemoryError:
                if stop - start == 1:
                    raise
                out_of_memory = True
            if out_of_memory:  # outside the handler, so the failed batch's tensors are freed
                self.size = (stop - start) // 2
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                log.warning(
                    "%s: out of device memory with %d per batch, going on with %d",
                    self.what,
                    stop - start,
                    self.size,
                )
                continue
            yield result
            start = stop
