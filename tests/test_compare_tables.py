"""The comparison tables built from small constructed run folders (the pattern of
``test_verdict.py``): inventories, ProgNet's Tables I and II, the detector's tables."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_verdict import _detector_run, _prognet_run

from cxrlib import compare, paper
from cxrlib.errors import DataError


@pytest.fixture
def results(tmp_path: Path) -> Path:
    y = np.array([1, 1, 1, 0, 0, 1, 0, 1])
    right = np.where(y == 1, 0.8, 0.2)
    for seed in (0, 1):
        _prognet_run(tmp_path, "resnet50", seed, y, right, last=np.full(8, 0.5))
    _prognet_run(tmp_path, "alexnet", 0, y, 1 - right, last=np.full(8, 0.5), weights=None)
    for path in (tmp_path / "prognet").glob("*/*/metrics.json"):  # as real runs record it
        path.write_text(json.dumps({**json.loads(path.read_text()), "n_patients": 8}))
    for fold in (0, 1):
        _detector_run(tmp_path, "cnn", fold, np.arange(6) < 5, base="vgg16")
    return tmp_path


def test_run_inventory_and_run_folders(results: Path, tmp_path: Path) -> None:
    inventory = compare.run_inventory(results).set_index("backbone or model")
    assert inventory.loc["resnet50", "runs"] == 2 and inventory.loc["resnet50", "seeds"] == "0, 1"
    assert inventory.loc["cnn", "folds"] == "0, 1" and inventory.loc["alexnet", "runs"] == 1
    assert len(compare.run_folders(results, "detector")) == 2
    with pytest.raises(DataError, match="no finished runs"):
        compare.run_inventory(tmp_path / "empty")


def test_weights_label() -> None:
    assert compare.weights_label({"weights": "imagenet"}) == "imagenet"
    assert compare.weights_label({"weights": None}) == "none"
    assert compare.weights_label({"weights": "/x/my.weights.h5"}) == "my.weights.h5"
    assert compare.weights_label({"weights": None, "weights_note": "n/a"}) == "none (ImageNet n/a)"
    assert compare.weights_label({"base": "paper"}) == "none (trained end to end)"


def test_prognet_runs_and_read_tables(results: Path) -> None:
    runs = compare.prognet_runs(results)
    assert len(runs) == 3 * 3  # three runs, each the model and two baselines
    assert set(runs["scorer"]) == {"model", "majority", "last_image"}
    assert set(runs.loc[runs["backbone"] == "alexnet", "weights"]) == {"none"}
    predictions = compare.read_tables(results, "prognet", "predictions")
    assert len(predictions) == 3 * 8 and predictions["folder"].nunique() == 3
    assert compare.read_tables(results, "prognet", "absent").empty


def test_prognet_table_ii_pools_seeds_and_shows_the_paper(results: Path) -> None:
    runs = compare.prognet_runs(results)
    predictions = compare.read_tables(results, "prognet", "predictions")
    table = compare.prognet_table_ii(runs, predictions)
    assert table["backbone"].tolist()[:1] == ["alexnet"]  # the paper's order
    model = table[(table["backbone"] == "resnet50") & (table["scorer"] == "model")].iloc[0]
    assert model["runs"] == 2 and model["accuracy (paper)"] == "0.924 ± 0.03"
    assert model["accuracy 95% CI"] == "[1.000, 1.000]"  # right on every patient
    assert "specificity (deaths found)" in table.columns


def test_prognet_table_i_names_each_rate_by_its_class(results: Path) -> None:
    runs = compare.prognet_runs(results)
    predictions = compare.read_tables(results, "prognet", "predictions")
    table = compare.prognet_table_i(runs, predictions)
    assert len(table) == 2 * len(compare.TABLE_I_RATES)
    alexnet = table[table["backbone"] == "alexnet"].set_index("rate")
    assert alexnet.loc["survivors found: TP/(TP+FN)", "pooled"] == 0.0  # wrong on everyone
    resnet = table[table["backbone"] == "resnet50"].set_index("rate")
    precision = resnet.loc["predicted survivors who survived: TP/(TP+FP)"]
    assert precision["pooled"] == 1.0 and precision["test patients (pooled)"] == 16
    shares = compare.TABLE_I_COLUMNS[("predicted_shares", "survival")]
    assert precision[shares] == paper.PROGNET["resnet50"]["tp_rate"]


def test_detector_tables_from_run_folders(results: Path) -> None:
    runs = compare.detector_runs(results)
    assert len(runs) == 2 * 3 and set(runs["base"]) == {"vgg16"}
    per_class = compare.detector_per_class(runs)
    assert per_class["class"].tolist() == ["COVID-19", "pneumonia", "normal"]
    predictions = compare.read_tables(results, "detector", "predictions")
    overall = compare.detector_overall(runs, predictions).iloc[0]
    assert overall["folds"] == 2 and overall["misclassified (pooled)"] == 2
    assert overall["test images (pooled)"] == 12 and overall["accuracy"] == "0.833 ± 0.000"
    matrix = compare.detector_confusion(predictions, "cnn")
    assert np.trace(matrix) == 10 and np.sum(matrix) == 12
    shortcut = compare.shortcut_table(results)
    assert shortcut.loc["cnn", "lungs_blanked"] == 0.34


def test_roc_curves_one_per_group_and_write_table(tmp_path: Path) -> None:
    predictions = pd.DataFrame({"backbone": ["a"] * 4 + ["b"] * 2, "label": [1, 0, 1, 0, 1, 1],
                                "survival_score": [0.9, 0.1, 0.8, 0.3, 0.5, 0.6]})
    curves = compare.roc_curves(predictions, "backbone", "survival_score")
    assert set(curves["label"]) == {"a (AUC 1.00)"}  # b has one class only: no curve
    compare.write_table(pd.DataFrame({"x": [1]}), tmp_path / "t", "one")
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["one.csv", "one.md", "one.tex"]
