"""ProgNet experiment: parameter checks, cohort, windows, splits, training, determinism and
whether the model finds the signal designed into the sample data.

Fast tests only read tables. Tests marked slow train the LSTM head on cached features
(AlexNet at 48 px, a few epochs), except ``test_learns_the_designed_signal``, which runs
the measured configuration (ResNet50 at 64 px, 60 epochs, 5 folds; about 45 s).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxrlib import prognet
from cxrlib.errors import ConfigError, CxrError, DataError
from cxrlib.prognet import Config
from cxrlib.io import to_jsonable

pytestmark = pytest.mark.xdist_group("prognet")  # module fixtures: one process (make test)

FAST = dict(backbone="alexnet", weights=None, image_size=48, epochs=5, protocol="holdout",
            seed=0)


def _pipeline(data_dir: Path, config: Config, cache_dir: Path):
    """cohort -> splits -> features -> head -> predictions, as the notebook chains them."""
    config.check()
    sequences = prognet.cohort(data_dir, config)
    folds = prognet.make_splits(sequences, config)
    _, found = prognet.extract(sequences, config, cache_dir, progress=False)
    predictions, history, _ = prognet.train_and_predict(sequences, folds, found, config)
    return sequences, folds, predictions, history, prognet.evaluate(predictions, config.threshold)


@pytest.fixture(scope="module")
def sequences(sample_dir: Path) -> pd.DataFrame:
    return prognet.cohort(sample_dir, Config(**FAST).check())


@pytest.fixture(scope="module")
def holdout_run(sample_dir: Path, tmp_path_factory):
    return _pipeline(sample_dir, Config(**FAST), tmp_path_factory.mktemp("prognet-cache"))


# --------------------------------------------------------------------------- Config.check
@pytest.mark.parametrize("changes, words", [
    (dict(backbone="resnet18"), "backbone"),
    (dict(window="middle"), "window"),
    (dict(protocol="loo"), "protocol"),
    (dict(backbone="alexnet", weights="imagenet"), "alexnet"),
    (dict(weights="/no/such/file.weights.h5"), "weights"),
    (dict(seq_len=0), "seq_len"),
    (dict(seq_len=-2), "seq_len"),
    (dict(seq_len=2.5), "seq_len"),
    (dict(seq_len=None, finetune=True), "finetune"),
    (dict(seq_len=None, window="all"), "window"),
    (dict(test_fraction=1.0), "test_fraction"),
    (dict(epochs=0), "epochs"),
    (dict(image_size=16), "image_size"),
    # each of these failed deep in a cell of chapter 2, after the features were extracted
    (dict(seq_len=True), "seq_len"),
    (dict(protocol="kfold", n_folds=1), "n_folds"),
    (dict(dropout=1.0), "dropout"),
    (dict(dropout=-0.1), "dropout"),
    (dict(learning_rate=0), "learning_rate"),
])
def test_check_rejects_bad_parameters_naming_them(changes, words):
    with pytest.raises(ConfigError, match=words):
        Config(**changes).check()


def test_check_accepts_and_normalises_good_parameters():
    assert Config().check().backbone == "resnet50"  # imagenet is only named, not fetched
    config = Config(backbone=" AlexNet ", weights="None", seq_len=None).check()
    assert config.backbone == "alexnet" and config.weights is None
    config = Config(weights=None, learning_rate=1, dropout=0).check()
    assert type(config.learning_rate) is float  # Keras' Adam refuses a whole number
    assert config.feature_spec().pooling == "avg"


# --------------------------------------------------------------------------- cohort
def test_cohort_without_the_dataset_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="metadata.csv"):
        prognet.cohort(tmp_path, Config(**FAST))


def test_cohort_with_nobody_long_enough_is_a_data_error(tiny_data):
    with pytest.raises(DataError, match="7"):
        prognet.cohort(tiny_data, Config(**FAST, seq_len=7))


def test_a_cohort_the_findings_filter_empties_says_so(tiny_data):
    """Chapter 2 stops at its cohort or split cell with one line naming the parameters,
    not at a split that cannot stratify."""
    with pytest.raises(DataError, match=r"findings='covid-19'.*its findings: COVID-19, Pneumonia"):
        prognet.cohort(tiny_data, Config(**FAST, findings="covid-19"))  # not as listed
    with pytest.raises(DataError, match="no patient with finding 'SARS' has 3"):
        prognet.cohort(tiny_data, Config(**FAST, findings="SARS"))  # none labelled
    config = Config(**FAST, findings="COVID-19")
    sequences = prognet.cohort(tiny_data, config)
    survivors = sequences[sequences["label"] == 1]  # what a longer seq_len can leave
    with pytest.raises(DataError, match=r"all 1 patient\(s\) of the cohort survived .*seq_len=3"):
        prognet.make_splits(survivors, config)


@pytest.mark.parametrize("protocol", ["holdout", "kfold"])
def test_too_few_patients_for_the_split_is_a_data_error(tiny_data, protocol):
    config = Config(**{**FAST, "protocol": protocol})
    sequences = prognet.cohort(tiny_data, config)
    assert sorted(sequences["patient_id"]) == ["1", "2"]  # one death, one survivor
    with pytest.raises(DataError, match="too few patients"):
        prognet.make_splits(sequences, config)


def test_sample_cohort_has_both_outcomes_and_long_enough_series(sequences):
    assert len(sequences) >= 40
    assert sequences["patient_id"].is_unique
    assert set(sequences["label"]) == {0, 1}
    assert (sequences["n_images"] >= 3).all()
    assert (sequences["paths"].map(len) == sequences["n_images"]).all()


# --------------------------------------------------------------------------- windows
PATHS = ["t1", "t2", "t3", "t4", "t5"]


@pytest.mark.parametrize("seq_len, window, expected", [
    (3, "first", [["t1", "t2", "t3"]]),
    (3, "last", [["t3", "t4", "t5"]]),
    (3, "all", [["t1", "t2", "t3"], ["t2", "t3", "t4"], ["t3", "t4", "t5"]]),
    (5, "all", [PATHS]),
    (1, "last", [["t5"]]),
    (None, "first", [PATHS]),
    (None, "last", [PATHS]),
])
def test_windows(seq_len, window, expected):
    assert prognet.windows(PATHS, seq_len, window) == expected


def test_sequence_rows_follow_the_window(sequences):
    positions = np.arange(5)
    rows = prognet.sequence_rows(sequences, positions, Config(**FAST, window="all"))
    expected = sum(n - 2 for n in sequences["n_images"].iloc[:5])
    assert len(rows) == expected
    assert (rows["paths"].map(len) == 3).all()
    assert set(rows["patient_id"]) == set(sequences["patient_id"].iloc[:5])


# --------------------------------------------------------------------------- splits
def test_holdout_split_is_patient_level_and_seeded(sequences):
    [(fold, train, test)] = prognet.make_splits(sequences, Config(**FAST))
    ids = sequences["patient_id"]
    assert fold == 0
    assert not set(ids.iloc[train]) & set(ids.iloc[test])
    assert sorted(np.concatenate([train, test])) == list(range(len(sequences)))
    assert len(test) == pytest.approx(len(sequences) * prognet.PAPER_TEST_FRACTION, abs=1)
    assert set(sequences["label"].iloc[test]) == {0, 1}
    [(_, _, again)] = prognet.make_splits(sequences, Config(**FAST))
    [(_, _, other)] = prognet.make_splits(sequences, Config(**{**FAST, "seed": 1}))
    np.testing.assert_array_equal(again, test)
    assert set(other) != set(test)


def test_kfold_covers_every_patient_once(sequences):
    folds = prognet.make_splits(sequences, Config(**{**FAST, "protocol": "kfold", "n_folds": 5}))
    assert [fold for fold, _, _ in folds] == list(range(5))
    ids = sequences["patient_id"]
    tested = np.concatenate([test for _, _, test in folds])
    assert sorted(tested) == list(range(len(sequences)))
    for _, train, test in folds:
        assert not set(ids.iloc[train]) & set(ids.iloc[test])
        assert len(train) + len(test) == len(sequences)


# --------------------------------------------------------------------------- training
@pytest.mark.slow
def test_predictions_table_and_history(holdout_run):
    sequences, folds, predictions, history, evaluation = holdout_run
    [(_, _, test)] = folds
    assert sorted(predictions["patient_id"]) == sorted(sequences["patient_id"].iloc[test])
    assert predictions["patient_id"].is_unique
    for column in ("patient_id", "label", "survival_score", "score_majority",
                   "score_last_image", "score_mean_features", "fold"):
        assert column in predictions.columns, column
    truth = sequences.set_index("patient_id")["label"]
    assert (predictions["label"].to_numpy() == truth[predictions["patient_id"]].to_numpy()).all()
    for column in ("survival_score", "score_last_image", "score_mean_features"):
        assert predictions[column].between(0, 1).all(), column
    assert predictions["score_majority"].isin([0.0, 1.0]).all()
    assert predictions["score_majority"].nunique() == 1
    assert (predictions["fold"] == 0).all()
    assert (predictions["predicted"] == (predictions["survival_score"] >= 0.5)).all()
    assert list(history["epoch"]) == [1, 2, 3, 4, 5]
    assert {"loss", "val_loss"} <= set(history.columns)
    assert np.isfinite(history[["loss", "val_loss"]].to_numpy()).all()
    assert set(evaluation) == {"model", *prognet.BASELINES}
    assert 0 <= evaluation["model"]["accuracy"] <= 1


@pytest.mark.slow
def test_variable_length_sequences_with_masking(sample_dir, tmp_path):
    config = Config(**{**FAST, "seq_len": None, "epochs": 2})
    sequences, folds, predictions, history, _ = _pipeline(sample_dir, config, tmp_path)
    assert (sequences["n_images"] >= 1).all()
    assert sequences["n_images"].nunique() > 1  # really variable lengths
    [(_, _, test)] = folds
    assert len(predictions) == len(test)
    assert (predictions["n_windows"] == 1).all()
    assert predictions["survival_score"].between(0, 1).all()
    assert len(history) == 2


@pytest.mark.slow
def test_same_config_same_results(holdout_run, sample_dir, tmp_path):
    _, _, first, first_history, first_metrics = holdout_run
    _, _, second, second_history, second_metrics = _pipeline(sample_dir, Config(**FAST),
                                                             tmp_path / "fresh-cache")
    pd.testing.assert_frame_equal(second, first)
    pd.testing.assert_frame_equal(second_history, first_history)
    assert to_jsonable(second_metrics) == to_jsonable(first_metrics)  # NaN-safe


@pytest.mark.slow
def test_window_all_scores_each_patient_once(sample_dir, tmp_path):
    config = Config(**{**FAST, "window": "all", "epochs": 1})
    sequences, _, predictions, _, _ = _pipeline(sample_dir, config, tmp_path)
    assert predictions["patient_id"].is_unique
    n_images = sequences.set_index("patient_id")["n_images"]
    expected = (n_images[predictions["patient_id"]] - 2).to_numpy()
    np.testing.assert_array_equal(predictions["n_windows"].to_numpy(), expected)


def test_an_undecodable_image_in_the_cohort_is_not_a_crash(sequences, tmp_path):
    broken = tmp_path / "truncated.png"
    original = Path(sequences["paths"].iloc[0][0])
    with Image.open(original) as image:  # re-encode as PNG, then cut it short
        image.convert("L").resize((200, 200)).save(tmp_path / "whole.png")
    whole = (tmp_path / "whole.png").read_bytes()
    broken.write_bytes(whole[: len(whole) // 3])
    damaged = sequences.copy()
    damaged["paths"] = [list(p) for p in damaged["paths"]]
    damaged.at[0, "paths"][0] = str(broken)
    config = Config(**{**FAST, "image_size": 32, "epochs": 1})
    folds = prognet.make_splits(damaged, config)
    _, found = prognet.extract(damaged, config, tmp_path / "cache", progress=False)
    try:
        predictions, _, _ = prognet.train_and_predict(damaged, folds, found, config)
    except CxrError as err:  # a clear error naming the file is fine too
        assert "truncated.png" in str(err)
    else:
        assert len(predictions) > 0


@pytest.mark.slow
def test_learns_the_designed_signal(sample_dir, tmp_path):
    """The sample's label is the opacity trend across the series; the head must beat the
    majority class. Measured with 5 folds: accuracy 0.72 vs 0.60 and ROC AUC 0.74 after
    30 epochs, the same after the notebook's 60 (0.71, 0.74) at 1.6 times the cost; 20
    epochs are not enough (0.68, 0.70)."""
    config = Config(backbone="resnet50", weights=None, image_size=64, epochs=30,
                    protocol="kfold", n_folds=5, seed=0)
    sequences, _, predictions, _, evaluation = _pipeline(sample_dir, config, tmp_path)
    assert sorted(predictions["patient_id"]) == sorted(sequences["patient_id"])
    model, majority = evaluation["model"], evaluation["majority"]
    assert model["accuracy"] >= majority["accuracy"] + 0.08, (model, majority)
    assert model["roc_auc"] >= 0.65, model
