"""The one place that seeds every random number generator the package uses."""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int, *, deterministic: bool = True) -> np.random.Generator:
    """Seed python, numpy and torch (CPU and CUDA); optionally force deterministic cuDNN kernels.

    Returns a numpy ``Generator`` seeded with ``seed`` for code that wants its own stream.
    """
    if seed < 0:
        msg = f"seed must be a non-negative integer, got {seed}"
        raise ValueError(msg)
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 - libraries still draw from the legacy global state
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return np.random.default_rng(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return np.random.default_rng(seed)
