"""Metrics: hand-computed confusion counts, the papers' rates, degenerate cases, bootstrap."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from cxrlib.errors import ConfigError, DataError
from cxrlib.metrics import binary_metrics, bootstrap_ci, multiclass_metrics

# 10 patients, 1 = survived. Predictions at 0.5:    1 1 1 0 0 | 0 0 0 1 1
Y = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0])
S = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.2, 0.1, 0.3, 0.55, 0.5])
# survivors: scores .9 .8 .7 .6 -> TP=4, .4 .2 -> FN=2; deaths: .1 .3 -> TN=2, .55 .5 -> FP=2


def test_binary_counts_and_table_one_rates() -> None:
    m = binary_metrics(Y, S)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (4, 2, 2, 2)
    assert (m["n"], m["n_pos"], m["n_neg"]) == (10, 6, 4)
    assert m["tp_rate"] == pytest.approx(4 / 6)
    assert m["fn_rate"] == pytest.approx(2 / 6)
    assert m["fp_rate"] == pytest.approx(2 / 4)
    assert m["tn_rate"] == pytest.approx(2 / 4)
    assert m["tp_rate"] + m["fn_rate"] == pytest.approx(1)
    assert m["accuracy"] == pytest.approx(6 / 10)
    assert m["precision"] == pytest.approx(4 / 6)
    assert m["recall"] == pytest.approx(m["tp_rate"])
    assert m["f1"] == pytest.approx(2 * 4 / (2 * 4 + 2 + 2))
    assert m["specificity"] == pytest.approx(m["tn_rate"])
    assert m["balanced_accuracy"] == pytest.approx((4 / 6 + 2 / 4) / 2)


def test_binary_agrees_with_sklearn() -> None:
    m = binary_metrics(Y, S, threshold=0.5)
    pred = (S >= 0.5).astype(int)
    assert m["precision"] == pytest.approx(skm.precision_score(Y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(Y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(Y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(Y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(Y, S))


def test_binary_threshold_and_json() -> None:
    m = binary_metrics(Y, S, threshold=0.65)
    assert (m["tp"], m["fp"]) == (3, 0)
    json.dumps(m)  # plain Python types
    assert all(type(v) in (int, float) for v in m.values())


def test_binary_single_class_is_nan_not_crash() -> None:
    m = binary_metrics([1, 1, 1], [0.9, 0.2, 0.7])
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 0, 0)
    assert math.isnan(m["roc_auc"]) and math.isnan(m["fp_rate"]) and math.isnan(m["tn_rate"])
    assert math.isnan(m["balanced_accuracy"])
    assert m["specificity"] == 0.0  # sklearn zero_division=0
    m = binary_metrics([0, 0], [0.9, 0.8])
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0
    assert math.isnan(m["tp_rate"]) and m["fp_rate"] == 1.0


@pytest.mark.parametrize("y,s", [
    ([1, 2], [0.5, 0.5]), ([1, 0], [0.5]), ([], []), ([1, 0], [np.nan, 0.2]),
])
def test_binary_bad_input(y, s) -> None:
    with pytest.raises(DataError):
        binary_metrics(y, s)


# Hand-made 3-class example. Rows = true, columns = predicted:
#              covid pneu normal
#   covid        3    0    0
#   pneumonia    1    2    1
#   normal       0    1    2
CLASSES = ["covid", "pneumonia", "normal"]
Y3 = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
P3 = [0, 0, 0, 0, 1, 1, 2, 1, 2, 2]


def test_multiclass_confusion_and_per_class() -> None:
    m = multiclass_metrics(Y3, P3, CLASSES)
    assert m["confusion_matrix"] == [[3, 0, 0], [1, 2, 1], [0, 1, 2]]
    assert m["n"] == 10 and m["misclassified"] == 3
    assert m["accuracy"] == pytest.approx(0.7)
    covid = m["per_class"]["covid"]
    assert (covid["tp"], covid["fp"], covid["fn"], covid["tn"]) == (3, 1, 0, 6)
    assert covid["sensitivity"] == pytest.approx(1.0)
    assert covid["specificity"] == pytest.approx(6 / 7)
    assert covid["accuracy"] == pytest.approx(9 / 10)
    assert covid["f1"] == pytest.approx(6 / 7)
    pneu = m["per_class"]["pneumonia"]
    assert (pneu["tp"], pneu["fp"], pneu["fn"], pneu["tn"]) == (2, 1, 2, 5)
    assert pneu["sensitivity"] == pytest.approx(2 / 4)
    assert pneu["specificity"] == pytest.approx(5 / 6)
    assert pneu["precision"] == pytest.approx(2 / 3)
    normal = m["per_class"]["normal"]
    assert normal["sensitivity"] == pytest.approx(2 / 3)
    assert normal["specificity"] == pytest.approx(6 / 7)
    assert [m["per_class"][c]["support"] for c in CLASSES] == [3, 4, 3]
    # agrees with scikit-learn
    assert m["macro_f1"] == pytest.approx(skm.f1_score(Y3, P3, average="macro"))
    for i, c in enumerate(CLASSES):
        assert m["per_class"][c]["f1"] == pytest.approx(skm.f1_score(Y3, P3, average=None)[i])
        recall = skm.recall_score(Y3, P3, average=None)[i]
        assert m["per_class"][c]["sensitivity"] == pytest.approx(recall)
    json.dumps(m)


def test_multiclass_names_and_probabilities_give_the_same_result() -> None:
    proba = np.eye(3)[P3] * 0.6 + 0.1  # argmax = P3
    by_index = multiclass_metrics(Y3, P3, CLASSES)
    assert multiclass_metrics([CLASSES[i] for i in Y3], proba, CLASSES) == by_index
    assert multiclass_metrics(Y3, [CLASSES[i] for i in P3], CLASSES) == by_index


def test_multiclass_absent_class_and_bad_input() -> None:
    m = multiclass_metrics([0, 0, 1], [0, 1, 1], CLASSES)
    normal = m["per_class"]["normal"]
    assert normal["support"] == 0 and math.isnan(normal["sensitivity"]) and normal["f1"] == 0.0
    assert normal["specificity"] == 1.0
    with pytest.raises(DataError, match="flu"):
        multiclass_metrics(["flu"], [0], CLASSES)
    with pytest.raises(DataError, match="columns"):
        multiclass_metrics([0], np.ones((1, 2)), CLASSES)
    with pytest.raises(ConfigError):
        multiclass_metrics([0], [0], ["only"])


def _accuracy(y, s) -> float:
    return float(np.mean((s >= 0.5) == y))


def test_bootstrap_ci_contains_estimate_and_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    s = np.clip(y * 0.4 + rng.uniform(0, 0.6, 60), 0, 1)
    low, high = bootstrap_ci(_accuracy, y, s, n_resamples=300, seed=3)
    assert low <= _accuracy(y, s) <= high and low < high
    assert (low, high) == bootstrap_ci(_accuracy, y, s, n_resamples=300, seed=3)
    assert (low, high) != bootstrap_ci(_accuracy, y, s, n_resamples=300, seed=4)
    auc = lambda yy, ss: skm.roc_auc_score(yy, ss)  # noqa: E731
    a_low, a_high = bootstrap_ci(auc, y, s, n_resamples=300)
    assert a_low <= skm.roc_auc_score(y, s) <= a_high


def test_bootstrap_ci_pairs_rows_of_2d_arrays() -> None:
    y = np.array(Y3)
    proba = np.eye(3)[P3]
    acc = lambda yy, pp: float(np.mean(pp.argmax(axis=1) == yy))  # noqa: E731
    low, high = bootstrap_ci(acc, y, proba, n_resamples=200)
    assert 0 <= low <= 0.7 <= high <= 1
    # perfectly paired data stays perfect in every resample
    assert bootstrap_ci(acc, y, np.eye(3)[y], n_resamples=50) == (1.0, 1.0)


def test_bootstrap_ci_degenerate_is_nan() -> None:
    auc = lambda yy, ss: skm.roc_auc_score(yy, ss)  # noqa: E731
    low, high = bootstrap_ci(auc, np.ones(10, int), np.linspace(0, 1, 10), n_resamples=50)
    assert math.isnan(low) and math.isnan(high)
    assert all(math.isnan(v) for v in bootstrap_ci(_accuracy, np.ones(1), np.ones(1)))
    # undefined on some resamples only (8 rows, 1 death): those resamples are dropped
    y = np.array([1, 1, 1, 1, 1, 1, 1, 0])
    low, high = bootstrap_ci(auc, y, np.linspace(0.1, 0.9, 8)[::-1], n_resamples=200)
    assert 0 <= low <= high <= 1
    with pytest.raises(DataError):
        bootstrap_ci(_accuracy, np.ones(3), np.ones(4))
