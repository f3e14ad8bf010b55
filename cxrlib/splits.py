"""Patient-level train/test splits built on scikit-learn's grouped, stratified splitters.

No patient and no image ever sits on both sides of a split: with one row per patient
(ProgNet's sequences table) that follows from splitting rows; with one row per image (the
detector) the splitters group rows by ``patient_id``. Ids alone cannot prove it when one
person was listed under two ids, so ``check_no_leak`` compares the images' content keys
(``cxrlib.duplicates.content_keys``) too, and refuses a split with one image on both sides.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit

from cxrlib.errors import ConfigError, DataError

Split = tuple[np.ndarray, np.ndarray]


def _check_classes(labels: np.ndarray, groups: np.ndarray, n_needed: int, what: str) -> None:
    """Every class needs at least ``n_needed`` patients, or a clear error."""
    per_class = pd.Series(groups).groupby(pd.Series(labels)).nunique()
    if len(per_class) < 2:
        raise DataError(f"{what}: only one class present ({list(per_class.index)}); "
                        "cannot stratify a split")
    short = per_class[per_class < n_needed]
    if len(short):
        raise DataError(f"{what}: too few patients for the split: "
                        + ", ".join(f"class {c!r} has {n}" for c, n in short.items())
                        + f" (need at least {n_needed} each)")


def holdout_split(
    labels: Sequence,
    groups: Sequence | None = None,
    test_size: float | int = 8,
    seed: int = 0,
) -> Split:
    """One stratified patient-level hold-out split: (train positions, test positions).

    With ``groups=None`` every row is its own patient (``StratifiedShuffleSplit``); with
    groups, rows of one patient stay together (``StratifiedGroupKFold`` with about
    1/test_size folds, first fold as the test set). ``test_size`` is a fraction or, without
    groups, a number of rows (the ProgNet paper's 8 test sequences).
    """
    labels = np.asarray(labels)
    if groups is None:
        _check_classes(labels, np.arange(len(labels)), 2, "hold-out split")
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        try:
            train, test = next(splitter.split(np.zeros(len(labels)), labels))
        except ValueError as err:
            raise DataError(f"hold-out split of {len(labels)} rows with test_size="
                            f"{test_size}: {err}") from None
        return np.sort(train), np.sort(test)
    if not 0 < float(test_size) < 1:
        raise ConfigError(f"test_size must be a fraction with groups, not {test_size!r}")
    n_splits = max(2, int(round(1 / float(test_size))))
    return kfold_splits(labels, groups, n_splits=n_splits, seed=seed)[0]


def kfold_splits(
    labels: Sequence,
    groups: Sequence | None = None,
    n_splits: int = 5,
    seed: int = 0,
) -> list[Split]:
    """Stratified k-fold splits grouped by patient (each row its own group if None)."""
    labels = np.asarray(labels)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    if n_splits < 2:
        raise ConfigError(f"n_splits must be at least 2, not {n_splits!r}")
    _check_classes(labels, groups, n_splits, f"{n_splits}-fold split")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = [(np.sort(tr), np.sort(te))
             for tr, te in splitter.split(np.zeros(len(labels)), labels, groups)]
    for train, test in folds:
        check_no_leak(groups[train], groups[test])
    return folds


def shared_patients(train_groups: Sequence, test_groups: Sequence) -> list[str]:
    """The patients (groups, as strings, sorted) with rows on both sides of a split."""
    return sorted(set(map(str, train_groups)) & set(map(str, test_groups)))


def check_no_leak(train_groups: Sequence, test_groups: Sequence,
                  train_images: Sequence | None = None,
                  test_images: Sequence | None = None) -> None:
    """Raise ``DataError`` if any patient, or any image content, is on both sides.

    ``train_images``/``test_images`` are content keys, one per row, or one list of keys per
    row (a ProgNet sequence); the error names the count, the patients on each side and the
    first keys at fault."""
    shared = shared_patients(train_groups, test_groups)
    if shared:
        raise DataError(f"{len(shared)} patient(s) on both sides of a split: {shared[:10]}")
    if train_images is None or test_images is None:
        return
    train_of = _owners(train_groups, train_images)
    test_of = _owners(test_groups, test_images)
    both = sorted(set(train_of) & set(test_of))
    if both:
        examples = "; ".join(f"{key[:16]} (train patient {train_of[key]}, test patient "
                             f"{test_of[key]})" for key in both[:5])
        raise DataError(f"{len(both)} image(s) on both sides of a split, under different "
                        f"patient ids (the same file or picture): {examples}. Merge the ids "
                        "(cxrlib.data merges ids that share an image) before splitting")


def _owners(groups: Sequence, images: Sequence) -> dict[str, str]:
    """{content key: patient id} of one side of a split."""
    owners: dict[str, str] = {}
    for group, keys in zip(groups, images):
        for key in ([keys] if isinstance(keys, str) else keys):
            owners.setdefault(str(key), str(group))
    return owners
