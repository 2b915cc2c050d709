"""Rank averaging of co-expression and binding evidence (``scregnet grn --prior``)."""

from __future__ import annotations

import numpy as np
import pytest

from scregnet.stats import fractional_rank, rank_mean


def test_fractional_rank_shares_ties() -> None:
    np.testing.assert_allclose(
        fractional_rank(np.array([0.1, 0.5, 0.5, 0.9])), [0.25, 0.625, 0.625, 1.0]
    )


def test_an_edge_needs_both_kinds_of_evidence_to_rank_first() -> None:
    expression = np.array([0.9, 0.8, 0.1, 0.2])
    binding = np.array([0.0, 0.7, 0.9, 0.1])
    combined = rank_mean(expression, binding)
    # pair 1 (second on expression, second on binding) beats pair 0 (first on expression, unbound)
    assert np.argmax(combined) == 1
    np.testing.assert_allclose(combined, [(1.0 + 0.25) / 2, 0.75, (0.25 + 1.0) / 2, 0.5])
    # scale-free: any monotone transform of either score gives the same result
    np.testing.assert_allclose(rank_mean(np.exp(5 * expression), binding**3), combined)
    # float64: the top ranks of a genome-wide run (~3e7 pairs) stay distinct, as in float32
    # they would not (spacing 6e-8 below 1)
    assert combined.dtype == np.float64


def test_pairs_without_binding_evidence_keep_their_expression_rank() -> None:
    expression = np.array([0.9, 0.1, 0.5])
    combined = rank_mean(expression, np.array([np.nan, 0.2, 0.8]))
    assert combined[0] == pytest.approx(1.0)
    np.testing.assert_allclose(combined[1:], [(1 / 3 + 0.5) / 2, (2 / 3 + 1.0) / 2])
    with pytest.raises(ValueError, match="differ in shape"):
        rank_mean(expression, np.zeros(2))
