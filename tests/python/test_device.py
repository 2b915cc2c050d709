"""Batches that fit the device: a batch that runs out of device memory is retried at half its
size, every item once and in order (the stages' own tests compare their results with and
without it)."""

from __future__ import annotations

import logging

import pytest
import torch

from scregnet.device import FittingBatch


def _fits(limit: int, seen: list[tuple[int, int]]):  # type: ignore[no-untyped-def]
    """A run() that records each slice it is given and runs out of memory above ``limit``."""

    def run(part: slice) -> list[int]:
        seen.append((part.start, part.stop))
        if part.stop - part.start > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return list(range(part.start, part.stop))

    return run


def test_a_batch_out_of_memory_is_halved_and_the_size_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[int, int]] = []
    fit = FittingBatch(16, "scoring")
    with caplog.at_level(logging.WARNING):
        parts = list(fit.over(37, _fits(5, seen)))
    assert [i for p in parts for i in p] == list(range(37))  # every item once, in order
    assert seen[:3] == [(0, 16), (0, 8), (0, 4)] and fit.size == 4
    assert all(stop - start <= 4 for start, stop in seen[3:])
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "scoring: out of device memory with 16 per batch, going on with 8",
        "scoring: out of device memory with 8 per batch, going on with 4",
    ]
    # a later call starts at the size that fitted
    seen.clear()
    assert [i for p in fit.over(6, _fits(5, seen)) for i in p] == list(range(6))
    assert seen == [(0, 4), (4, 6)]


def test_out_of_memory_with_one_item_per_batch_is_raised() -> None:
    with pytest.raises(torch.OutOfMemoryError):
        list(FittingBatch(4, "scoring").over(3, _fits(0, [])))
    with pytest.raises(ValueError, match="batch size must be >= 1"):
        FittingBatch(0, "scoring")


def test_other_errors_are_not_retried() -> None:
    calls: list[slice] = []

    def run(part: slice) -> None:
        calls.append(part)
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        list(FittingBatch(8, "scoring").over(20, run))
    assert len(calls) == 1
