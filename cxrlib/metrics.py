"""Metrics as the two papers report them, plus bootstrap confidence intervals.

- ``binary_metrics``: ProgNet, positive class = 1 = survival. Table I rates (TP/FN/FP/TN
  rates) and Table II scores (accuracy, precision, recall, F1), plus ROC AUC.
- ``multiclass_metrics``: the detector paper, per class one-vs-rest (accuracy,
  specificity, sensitivity, F1) and overall accuracy / confusion matrix.
- ``bootstrap_ci``: paired percentile bootstrap of any metric (scipy), resampling rows.
- ``cluster_bootstrap_ci``: the same, resampling patients (all rows of a patient at once):
  the interval to use whenever a patient contributes several rows.

All results are plain Python ints/floats/lists (JSON-serialisable); undefined rates are NaN.
"""
from __future__ import annotations

import logging
import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import scipy.stats
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from cxrlib.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

NAN = float("nan")


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else NAN


def binary_metrics(
    y_true: Sequence[int], score: Sequence[float], threshold: float = 0.5
) -> dict[str, Any]:
    """Binary metrics with positive = 1 = survival; predicted positive iff score >= threshold.

    Rates per true class: tp_rate = TP/(TP+FN) (survivors found), fn_rate = FN/(TP+FN),
    fp_rate = FP/(FP+TN), tn_rate = TN/(FP+TN) (deaths found) (NaN if the denominator is
    0). Per predicted class: precision = TP/(TP+FP) (predicted survivors who survived) and
    npv = TN/(TN+FN) (predicted deaths who died). ProgNet's Table I is *not* the first
    kind: its TP% + FP% = 100 (see ``cxrlib.paper.PROGNET_TABLE_I_NOTE``).
    precision / recall / f1 / specificity (recall of deaths) follow scikit-learn with
    zero_division=0; balanced_accuracy = (tp_rate + tn_rate) / 2 and roc_auc are NaN when
    a class is absent from y_true.
    """
    y = np.asarray(y_true)
    s = np.asarray(score, dtype=float).reshape(-1)
    if y.ndim != 1 or y.shape[0] != s.shape[0] or y.shape[0] == 0:
        raise DataError(
            f"y_true and score must be non-empty and of equal length; got {y.shape} and {s.shape}"
        )
    if not np.isin(y, (0, 1)).all():
        values = sorted(set(y.tolist()), key=str)[:5]
        raise DataError(f"y_true must hold 0 (death) / 1 (survival); got values {values}")
    if not np.isfinite(s).all():
        raise DataError("score contains NaN or infinite values")
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold={threshold!r} must be in [0, 1]")
    y = y.astype(int)
    pred = (s >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in skm.confusion_matrix(y, pred, labels=[0, 1]).ravel())
    tp_rate, tn_rate = _ratio(tp, tp + fn), _ratio(tn, fp + tn)
    both_classes = tp + fn > 0 and fp + tn > 0
    kw = {"zero_division": 0}
    return {
        "n": int(y.size),
        "n_pos": tp + fn,
        "n_neg": fp + tn,
        "threshold": float(threshold),
        "tp": tp, "fn": fn, "fp": fp, "tn": tn,
        "tp_rate": tp_rate,
        "fn_rate": _ratio(fn, tp + fn),
        "fp_rate": _ratio(fp, fp + tn),
        "tn_rate": tn_rate,
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": float(skm.precision_score(y, pred, pos_label=1, **kw)),
        "npv": _ratio(tn, tn + fn),
        "recall": float(skm.recall_score(y, pred, pos_label=1, **kw)),
        "f1": float(skm.f1_score(y, pred, pos_label=1, **kw)),
        "specificity": float(skm.recall_score(y, pred, pos_label=0, **kw)),
        "balanced_accuracy": (tp_rate + tn_rate) / 2 if both_classes else NAN,
        "roc_auc": float(skm.roc_auc_score(y, s)) if both_classes else NAN,
    }


def binary_scorer(name: str, threshold: float = 0.5) -> Callable[[np.ndarray, np.ndarray], float]:
    """One ``binary_metrics`` value as a fast NumPy-only function of (y, score), for the
    thousands of bootstrap draws (a test keeps it equal to ``binary_metrics``). Names:
    accuracy, tp/fn/fp/tn_rate, specificity, precision, npv, f1."""
    def score(y: np.ndarray, s: np.ndarray) -> float:
        y, predicted = np.asarray(y) == 1, np.asarray(s) >= threshold
        tp, fn = float(np.sum(y & predicted)), float(np.sum(y & ~predicted))
        fp, tn = float(np.sum(~y & predicted)), float(np.sum(~y & ~predicted))
        values = {"accuracy": _ratio(tp + tn, len(y)), "tp_rate": _ratio(tp, tp + fn),
                  "fn_rate": _ratio(fn, tp + fn), "fp_rate": _ratio(fp, fp + tn),
                  "tn_rate": _ratio(tn, fp + tn), "specificity": _ratio(tn, fp + tn),
                  "precision": _ratio(tp, tp + fp) if tp + fp else 0.0,
                  "npv": _ratio(tn, tn + fn),
                  "f1": _ratio(2 * tp, 2 * tp + fp + fn) if tp + fp + fn else 0.0}
        return values[name]
    return score


def _as_indices(values: Any, classes: Sequence[str], what: str) -> np.ndarray:
    """Class names or integer indices -> integer indices into ``classes``."""
    arr = np.asarray(values).reshape(-1)
    k = len(classes)
    whole_floats = arr.dtype.kind == "f" and np.all(arr == np.round(arr))
    if arr.dtype.kind in "iu" or whole_floats:
        idx = arr.astype(int)
        if idx.size and (idx.min() < 0 or idx.max() >= k):
            raise DataError(f"{what} holds class indices outside 0..{k - 1}")
        return idx
    lookup = {name: i for i, name in enumerate(classes)}
    unknown = sorted({str(v) for v in arr.tolist() if v not in lookup})
    if unknown:
        raise DataError(f"{what} holds classes {unknown[:5]} not in classes={list(classes)}")
    return np.array([lookup[v] for v in arr.tolist()], dtype=int)


def multiclass_metrics(
    y_true: Sequence[int | str], proba_or_pred: Any, classes: Sequence[str]
) -> dict[str, Any]:
    """Overall and per-class (one-vs-rest) metrics as in the detector paper.

    ``y_true``: class indices or names. ``proba_or_pred``: probabilities (n, k) (argmax is
    the prediction) or predicted indices/names (n,). For class c: TP = c predicted as c,
    FP = others predicted as c, FN = c predicted as others, TN = the rest; accuracy =
    (TP+TN)/n, specificity = TN/(TN+FP), sensitivity = TP/(TP+FN) (NaN if undefined),
    precision (0 if nothing predicted as c), f1 = 2TP/(2TP+FP+FN) (0 if undefined, as
    scikit-learn with zero_division=0, so macro_f1 is their mean).
    """
    classes = list(classes)
    k = len(classes)
    if k < 2 or len(set(classes)) != k:
        raise ConfigError(f"classes={classes!r} must hold at least two distinct names")
    y = _as_indices(y_true, classes, "y_true")
    p = np.asarray(proba_or_pred)
    if p.ndim == 2:
        if p.shape[1] != k:
            raise DataError(f"probabilities have {p.shape[1]} columns but there are {k} classes")
        pred = p.argmax(axis=1)
    else:
        pred = _as_indices(p, classes, "predictions")
    if y.size == 0 or y.size != pred.size:
        raise DataError(f"y_true ({y.size}) and predictions ({pred.size}) must be non-empty "
                        "and of equal length")
    cm = skm.confusion_matrix(y, pred, labels=list(range(k)))
    n = int(cm.sum())
    per_class = {}
    for c, name in enumerate(classes):
        tp = int(cm[c, c])
        fp = int(cm[:, c].sum()) - tp
        fn = int(cm[c, :].sum()) - tp
        tn = n - tp - fp - fn
        per_class[name] = {
            "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "support": tp + fn,
            "accuracy": (tp + tn) / n,
            "specificity": _ratio(tn, tn + fp),
            "sensitivity": _ratio(tp, tp + fn),
            "precision": _ratio(tp, tp + fp) if tp + fp else 0.0,
            "f1": _ratio(2 * tp, 2 * tp + fp + fn) if tp + fp + fn else 0.0,
        }
    correct = int(np.trace(cm))
    return {
        "n": n,
        "classes": classes,
        "accuracy": correct / n,
        "misclassified": n - correct,
        "macro_f1": float(np.mean([m["f1"] for m in per_class.values()])),
        "confusion_matrix": cm.astype(int).tolist(),
        "per_class": per_class,
    }


def bootstrap_ci(
    metric: Callable[..., float],
    *arrays: Any,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``metric(*arrays)``, resampling rows of all arrays together.

    Uses ``scipy.stats.bootstrap(paired=True, vectorized=False, method="percentile")`` on
    the row indices (so arrays may be 2-D, e.g. probabilities, or hold class names).
    Resamples on which the metric is undefined (raises ValueError or returns NaN, e.g. ROC
    AUC of a single class) are dropped and counted in the log. Returns (nan, nan) when the
    metric is undefined on the data itself or on every resample.
    """
    if not arrays:
        raise ConfigError("bootstrap_ci needs at least one array")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence={confidence!r} must be in (0, 1)")
    data = [np.asarray(a) for a in arrays]
    n = len(data[0])
    if any(len(a) != n for a in data):
        raise DataError(f"arrays must have the same number of rows; got {[len(a) for a in data]}")
    return _resample(metric, data, [np.array([i]) for i in range(n)], n_resamples,
                     confidence, seed, "bootstrap_ci")


def cluster_bootstrap_ci(
    metric: Callable[..., float],
    *arrays: Any,
    groups: Sequence,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``metric(*arrays)`` that resamples *groups*, not rows.

    Rows sharing a value of ``groups`` (a patient) are drawn together: with replacement,
    one draw of a patient brings all of its rows. Rows that repeat a patient (ProgNet
    predictions pooled over seeds, several images of one patient in the detector) then add
    no false confidence: an interval over n patients is as wide as n patients allow, however
    many rows they contribute. Paired: the arrays' rows move together, so ``metric`` may
    compare two scorers on the same rows (a paired interval on a difference). Otherwise as
    ``bootstrap_ci`` (scipy percentile bootstrap, undefined resamples dropped and logged).
    """
    if not arrays:
        raise ConfigError("cluster_bootstrap_ci needs at least one array")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence={confidence!r} must be in (0, 1)")
    data = [np.asarray(a) for a in arrays]
    keys = np.asarray(groups)
    n = len(data[0])
    if any(len(a) != n for a in data) or len(keys) != n:
        raise DataError(f"arrays and groups must have the same number of rows; got "
                        f"{[len(a) for a in data]} and {len(keys)}")
    _, codes = np.unique(keys, return_inverse=True)
    members = [np.flatnonzero(codes == g) for g in range(codes.max() + 1 if n else 0)]
    return _resample(metric, data, members, n_resamples, confidence, seed,
                     "cluster_bootstrap_ci")


def _resample(metric: Callable[..., float], data: list[np.ndarray], members: list[np.ndarray],
              n_resamples: int, confidence: float, seed: int, name: str) -> tuple[float, float]:
    """The percentile bootstrap both intervals share: draw ``members`` (each an array of
    row indices) with replacement, score ``metric`` on their rows; resamples where the
    metric is undefined (ValueError, NaN) are dropped and counted in the log."""
    def statistic(clusters: np.ndarray) -> float:
        idx = np.concatenate([members[int(c)] for c in clusters])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            try:
                return float(metric(*(a[idx] for a in data)))
            except (ValueError, ZeroDivisionError, FloatingPointError):
                return NAN

    n_clusters = len(members)
    if n_clusters < 2 or math.isnan(statistic(np.arange(n_clusters))):
        return NAN, NAN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.stats.DegenerateDataWarning)
        res = scipy.stats.bootstrap(
            (np.arange(n_clusters),), statistic, n_resamples=n_resamples,
            confidence_level=confidence, paired=True, vectorized=False, method="percentile",
            random_state=seed,
        )
    dist = np.asarray(res.bootstrap_distribution, dtype=float)
    undefined = int(np.isnan(dist).sum())
    if undefined == dist.size:
        return NAN, NAN
    if not undefined:
        return float(res.confidence_interval.low), float(res.confidence_interval.high)
    logger.info("%s: metric undefined on %d of %d resamples (dropped)", name, undefined,
                dist.size)
    alpha = (1.0 - confidence) / 2
    low, high = np.nanpercentile(dist, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)
