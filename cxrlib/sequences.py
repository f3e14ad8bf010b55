"""Floor 3: a patient's series of cached feature vectors as arrays, their
standardisation, and the baselines beside ProgNet's head.

Shared by the experiment that fits them (``prognet``) and the reader that applies a
saved run to new images (``predict``), so both compute the same numbers: padded steps
stay all-zero through standardisation (masking still finds them), and fitted baselines
survive a round trip through plain arrays to the bit (``tests/test_predict.py``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cxrlib import features

BASELINES = ("majority", "last_image", "mean_features")


def to_array(rows: pd.DataFrame, vectors: dict, length: int | None = None) -> np.ndarray:
    """(n, steps, feature_dim) features; shorter sequences are zero-padded at the end."""
    steps = length or max(len(p) for p in rows["paths"])
    first = next(iter(vectors.values()))
    array = np.zeros((len(rows), steps, first.shape[-1]), np.float32)
    for i, paths in enumerate(rows["paths"]):
        array[i, :len(paths)] = features.stack(vectors, paths)
    return array


def standardize(train_x: np.ndarray, test_x: np.ndarray, train_lengths: np.ndarray,
                test_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Z-score every feature with the training set's real (unpadded) steps; padded steps
    stay all-zero so masking still finds them."""
    mean, std = feature_stats(train_x, train_lengths)
    return (apply_standardization(train_x, train_lengths, mean, std),
            apply_standardization(test_x, test_lengths, mean, std))


def feature_stats(x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std + 1e-6) of every feature over the real (unpadded) steps of ``x``."""
    real = np.concatenate([row[:n] for row, n in zip(x, lengths)])
    return real.mean(axis=0), real.std(axis=0) + 1e-6


def apply_standardization(x: np.ndarray, lengths: np.ndarray, mean: np.ndarray,
                          std: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` on the real steps; padded steps stay all-zero."""
    out = np.zeros_like(x)
    for i, n in enumerate(lengths):
        out[i, :n] = (x[i, :n] - mean) / std
    return out


def summarise(x: np.ndarray, lengths: np.ndarray, how: str) -> np.ndarray:
    """One vector per sequence for a baseline: the last real step, or the mean of them."""
    if how == "last_image":
        return x[np.arange(len(x)), lengths - 1]
    return x.sum(axis=1) / lengths[:, None]


def baseline_scores(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                     test_lengths: np.ndarray, train_lengths: np.ndarray,
                     seed: int) -> tuple[dict, dict]:
    """P(survival) of the three baselines for the test rows, and the fitted baselines
    (``majority``: the constant score; the others: scaler + logistic regression)."""
    majority = float(train_y.mean() >= 0.5)
    scores, fitted = {"majority": np.full(len(test_x), majority)}, {"majority": majority}
    for name in ("last_image", "mean_features"):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed))
        model.fit(summarise(train_x, train_lengths, name), train_y)
        scores[name] = model.predict_proba(summarise(test_x, test_lengths, name))[:, 1]
        fitted[name] = model
    return scores, fitted


def baseline_arrays(fitted: dict) -> dict[str, np.ndarray]:
    """The fitted baselines as plain arrays (portable across machines, unlike a pickle):
    the majority score, and each regression's scaler and coefficients."""
    arrays = {"majority": np.asarray(fitted["majority"])}
    for name in ("last_image", "mean_features"):
        scaler, regression = fitted[name].named_steps.values()
        arrays.update({f"{name}.mean": scaler.mean_, f"{name}.scale": scaler.scale_,
                       f"{name}.coef": regression.coef_, f"{name}.intercept": regression.intercept_,
                       f"{name}.classes": regression.classes_})
    return arrays


def baselines_from_arrays(arrays: dict) -> dict:
    """Rebuild the fitted baselines of ``baseline_arrays`` (same predictions, to the bit)."""
    fitted = {"majority": float(arrays["majority"])}
    for name in ("last_image", "mean_features"):
        scaler, regression = StandardScaler(), LogisticRegression()
        scaler.mean_, scaler.scale_ = arrays[f"{name}.mean"], arrays[f"{name}.scale"]
        scaler.var_ = scaler.scale_ ** 2
        regression.coef_, regression.intercept_ = arrays[f"{name}.coef"], arrays[f"{name}.intercept"]
        regression.classes_ = arrays[f"{name}.classes"]
        scaler.n_features_in_ = regression.n_features_in_ = scaler.mean_.shape[0]
        fitted[name] = make_pipeline(scaler, regression)
    return fitted
