"""Metrics and scoring of stage outputs against simulator truth (and labelled real counts)."""

from scregnet.evaluate.metrics import (
    adjusted_rand,
    mask_nonzeros,
    masked_recovery,
    normalized_mutual_info,
)

__all__ = [
    "adjusted_rand",
    "mask_nonzeros",
    "masked_recovery",
    "normalized_mutual_info",
]
