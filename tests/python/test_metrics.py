"""Metrics against scikit-learn and hand-worked examples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from scregnet import stats
from scregnet.evaluate import metrics
from scregnet.evaluate.truth import write_evaluation


def test_auroc_auprc_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = y * 0.5 + rng.normal(size=500)
    assert stats.auroc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert stats.auprc(y, s) == pytest.approx(average_precision_score(y, s))


def test_hand_worked_auroc_auprc() -> None:
    # ranking: pos, neg, pos, neg -> AUROC = 3/4 ; AP = (1/1 + 2/3) / 2
    y = [1, 0, 1, 0]
    s = [0.9, 0.8, 0.7, 0.1]
    assert stats.auroc(y, s) == pytest.approx(0.75)
    assert stats.auprc(y, s) == pytest.approx((1 + 2 / 3) / 2)
    assert stats.auprc_ratio(y, s) == pytest.approx((1 + 2 / 3) / 2 / 0.5)


def test_single_class_is_nan() -> None:
    assert np.isnan(stats.auroc([1, 1], [0.1, 0.2]))
    assert np.isnan(stats.auprc([0, 0], [0.1, 0.2]))


def test_epr_hand_worked() -> None:
    # 2 true edges among 8 -> density 0.25; top-2 has one true -> EP 0.5 -> EPR 2
    y = [1, 0, 0, 1, 0, 0, 0, 0]
    s = [0.9, 0.8, 0.3, 0.2, 0.1, 0.05, 0.04, 0.03]
    assert stats.early_precision_ratio(y, s) == pytest.approx(2.0)


def test_epr_ties_enter_together() -> None:
    # k=2, but three edges tie at the 2nd-highest score: all three are taken -> EP = 2/4
    y = [1, 0, 1, 0, 0, 0, 0, 0]
    s = [0.9, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1]
    assert stats.early_precision_ratio(y, s) == pytest.approx((2 / 4) / 0.25)


def test_epr_zero_scores_are_not_predictions() -> None:
    y = [1, 1, 0, 0]
    s = [0.0, 0.0, 0.0, 0.0]
    assert stats.early_precision_ratio(y, s) == 0.0


def test_masked_recovery_hand_worked() -> None:
    truth = np.array([[1.0, 2.0], [3.0, 4.0]])
    imputed = np.array([[1.0, 0.0], [2.0, 4.0]])
    entries = (np.array([0, 1]), np.array([1, 0]))  # truth 2,3 ; imputed 0,2
    out = metrics.masked_recovery(truth, imputed, entries)
    assert out.rmse == pytest.approx(np.sqrt((4 + 1) / 2))
    assert out.l1 == pytest.approx(1.5)
    assert out.pearson == pytest.approx(1.0)


@pytest.mark.parametrize("sparse", [False, True])
def test_mask_nonzeros_zeroes_exactly_the_fraction(sparse: bool) -> None:
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    x = rng.poisson(0.5, size=(50, 40)).astype(float)
    nnz = int((x != 0).sum())
    masked, (r, c) = metrics.mask_nonzeros(sp.csr_matrix(x) if sparse else x, 0.2, rng)
    assert r.size == round(0.2 * nnz)
    assert (x[r, c] != 0).all() and (masked[r, c] == 0).all()
    untouched = np.ones_like(x, dtype=bool)
    untouched[r, c] = False
    assert np.array_equal(masked[untouched], x[untouched])


def test_clustering_scores() -> None:
    assert metrics.adjusted_rand([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert metrics.normalized_mutual_info([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert metrics.adjusted_rand([0, 0, 1, 1], [0, 1, 0, 1]) < 0


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        stats.auroc([0, 1], [0.1])
    with pytest.raises(ValueError, match="NaN"):
        stats.auroc([0, 1], [0.1, np.nan])


def test_evaluation_json_is_strict(tmp_path: Path) -> None:
    """A NaN score (one class, no truth cells) is written as null: NaN is not JSON."""
    report = {
        "atac": {"samples": {"s1": {"ari": np.float32(0.5), "cell_recall": float("nan")}}},
        "grn": {"auprc": np.float64(np.inf), "n": np.int64(3), "tfs": [np.nan, 1.0]},
    }
    path = write_evaluation(report, tmp_path / "evaluation.json")
    parsed = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert parsed == {
        "atac": {"samples": {"s1": {"ari": 0.5, "cell_recall": None}}},
        "grn": {"auprc": None, "n": 3, "tfs": [None, 1.0]},
    }
