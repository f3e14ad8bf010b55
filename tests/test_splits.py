"""Patient-level splits: no patient on both sides, stratification, clear errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrlib.errors import DataError
from cxrlib.splits import check_no_leak, holdout_split, kfold_splits, shared_patients


def _images(n_patients: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        label = ["covid19", "pneumonia", "normal"][p % 3]
        for _ in range(rng.integers(1, 5)):
            rows.append({"patient_id": f"p{p}", "label": label})
    return pd.DataFrame(rows)


def test_grouped_kfold_never_puts_a_patient_on_both_sides() -> None:
    images = _images()
    folds = kfold_splits(images["label"], images["patient_id"], n_splits=5, seed=3)
    assert len(folds) == 5
    seen = np.concatenate([test for _, test in folds])
    assert sorted(seen) == list(range(len(images)))  # every image tested exactly once
    for train, test in folds:
        assert not set(images["patient_id"].iloc[train]) & set(images["patient_id"].iloc[test])
        assert images["label"].iloc[test].nunique() == 3  # stratified


def test_folds_are_seeded() -> None:
    images = _images()
    tests = lambda seed: [test.tolist() for _, test in  # noqa: E731
                          kfold_splits(images["label"], images["patient_id"], 5, seed)]
    assert tests(1) == tests(1) and tests(1) != tests(2)


def test_patient_level_holdout_has_the_paper_sizes() -> None:
    labels = np.array([1] * 26 + [0] * 16)  # 42 patients
    for seed in range(10):
        train, test = holdout_split(labels, test_size=8, seed=seed)
        assert len(test) == 8 and len(train) == 34
        assert not set(train) & set(test)
        assert 0 < labels[test].sum() < 8  # both classes in the test set


def test_grouped_holdout_fraction() -> None:
    images = _images(70)
    train, test = holdout_split(images["label"], images["patient_id"], test_size=0.15, seed=0)
    check_no_leak(images["patient_id"].iloc[train], images["patient_id"].iloc[test])
    assert 0.08 < len(test) / len(images) < 0.25


def test_too_few_patients_give_a_clear_error() -> None:
    labels = ["a"] * 10 + ["b"] * 3
    with pytest.raises(DataError, match="class 'b' has 3"):
        kfold_splits(labels, n_splits=5)
    with pytest.raises(DataError, match="only one class"):
        holdout_split([1, 1, 1, 1], test_size=2)


def test_check_no_leak_raises() -> None:
    with pytest.raises(DataError, match="both sides"):
        check_no_leak(["a", "b"], ["b", "c"])


def test_a_split_with_one_image_under_two_ids_is_refused() -> None:
    """Ids 285 and 339 list the same X-ray: ids differ, so only content can see the leak."""
    images = pd.DataFrame({
        "patient_id": ["285", "285", "339", "7", "8", "9"],
        "content": ["sha-a", "sha-b", "sha-a", "sha-c", "sha-d", "sha-e"]})
    train, test = np.array([0, 1, 3, 4]), np.array([2, 5])
    check_no_leak(images["patient_id"].iloc[train], images["patient_id"].iloc[test])  # ids pass
    with pytest.raises(DataError, match=r"1 image\(s\) on both sides of a split.*sha-a "
                                        r"\(train patient 285, test patient 339\)"):
        check_no_leak(images["patient_id"].iloc[train], images["patient_id"].iloc[test],
                      images["content"].iloc[train], images["content"].iloc[test])


def test_the_content_check_reads_sequences_and_passes_a_clean_split() -> None:
    ids = pd.Series(["1", "2", "3"])
    sequences = pd.Series([["a", "b"], ["c"], ["d", "a"]])
    check_no_leak(ids.iloc[[0, 2]], ids.iloc[[1]], sequences.iloc[[0, 2]], sequences.iloc[[1]])
    with pytest.raises(DataError, match=r"1 image\(s\) on both sides.*test patient 3"):
        check_no_leak(ids.iloc[[0, 1]], ids.iloc[[2]], sequences.iloc[[0, 1]], sequences.iloc[[2]])


def test_shared_patients_are_named_once_in_order() -> None:
    assert shared_patients(["7", 7, "2", "x"], ["2", "7", "9"]) == ["2", "7"]
    assert shared_patients(["1"], ["2"]) == []
