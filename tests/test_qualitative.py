"""Chapter 5's choices of patients and runs, on small constructed predictions and folders."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cxrlib import qualitative
from cxrlib.errors import ConfigError


def _predictions() -> pd.DataFrame:
    """Two backbones, two seeds, four patients: p1 (survived) right everywhere; p2 (died)
    right only with resnet50; p3 (survived) wrong everywhere; p4 (died) right with both."""
    rows = []
    right = {("resnet50", "p1"): 1, ("resnet50", "p2"): 1, ("resnet50", "p3"): 0, ("resnet50", "p4"): 1,
             ("vgg16", "p1"): 1, ("vgg16", "p2"): 0, ("vgg16", "p3"): 0, ("vgg16", "p4"): 1}
    labels = {"p1": 1, "p2": 0, "p3": 1, "p4": 0}
    scores = {"p1": 0.9, "p2": 0.3, "p3": 0.2, "p4": 0.1}
    for (backbone, patient), ok in right.items():
        label = labels[patient]
        for seed in (0, 1):
            rows.append({"patient_id": patient, "label": label, "backbone": backbone, "seed": seed,
                         "predicted": label if ok else 1 - label,
                         "survival_score": scores[patient]})
    return pd.DataFrame(rows)


def test_patient_agreement_has_one_row_per_patient() -> None:
    agreement = qualitative.patient_agreement(_predictions())
    assert agreement["patient_id"].tolist() == ["p1", "p2", "p3", "p4"]
    assert agreement["correct_resnet50"].tolist() == [1.0, 1.0, 0.0, 1.0]
    assert agreement["correct_vgg16"].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert agreement["score_vgg16"].tolist() == [0.9, 0.3, 0.2, 0.1]
    assert list(qualitative.patient_agreement(pd.DataFrame()).columns) == ["patient_id", "label"]


def test_well_classified_picks_the_most_confident_of_each_outcome() -> None:
    agreement = qualitative.patient_agreement(_predictions())
    chosen = qualitative.well_classified(agreement, "resnet50", n=1)
    assert chosen["patient_id"].tolist() == ["p1", "p4"]  # survivors first, then deaths
    assert chosen["confidence"].round(2).tolist() == [0.9, 0.9]
    assert qualitative.well_classified(agreement, "alexnet").empty


def test_only_backbone_right_and_misclassified() -> None:
    agreement = qualitative.patient_agreement(_predictions())
    assert qualitative.only_backbone_right(agreement, "resnet50")["patient_id"].tolist() == ["p2"]
    assert qualitative.only_backbone_right(agreement, "vgg16").empty
    assert qualitative.misclassified(agreement, "vgg16")["patient_id"].tolist() == ["p2", "p3"]
    assert qualitative.misclassified(agreement, "vgg16", n=1)["patient_id"].tolist() == ["p2"]
    assert qualitative.misclassified(agreement, "alexnet").empty


def test_series_panel_titles_the_first_image_with_the_score() -> None:
    agreement = qualitative.patient_agreement(_predictions())
    sequences = pd.DataFrame({"patient_id": ["p1", "p2"],
                              "paths": [["a1", "a2", "a3", "a4"], ["b1", "b2"]]})
    chosen = agreement[agreement["patient_id"].isin(["p1", "p2"])]
    paths, titles = qualitative.series_panel(chosen, sequences, "resnet50")
    assert paths == ["a1", "a2", "a3", "b1", "b2"]
    assert titles == ["p1 (survived) SC 90.0%", "T2", "T3", "p2 (died) SC 30.0%", "T2"]


def _finished(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"metrics": {"accuracy": 1.0}}))
    return folder


def test_missing_and_find_run(tmp_path: Path) -> None:
    seed = _finished(tmp_path / "prognet" / "resnet50" / "seed-1")
    fold = _finished(tmp_path / "detector" / "cnn" / "fold-0")
    (tmp_path / "prognet" / "vgg16" / "seed-0").mkdir(parents=True)  # not finished
    gone = qualitative.missing(tmp_path, ["resnet50", "vgg16"], "resnet50/seed-0",
                               ["cnn", "cnn_lstm"], 0)
    assert gone == ["prognet/vgg16/seed-*", "prognet/resnet50/seed-0", "detector/cnn_lstm/fold-0"]
    assert qualitative.missing(tmp_path, ["resnet50"], "resnet50/seed-1", ["cnn"], 0) == []
    assert qualitative.find_run(tmp_path, "prognet", "resnet50/seed-1") == seed
    assert qualitative.find_run(tmp_path, "prognet", "resnet50/seed-0") == seed  # the first finished
    assert qualitative.find_run(tmp_path, "detector", "cnn/fold-0") == fold
    assert qualitative.find_run(tmp_path / "none", "prognet", "resnet50/seed-0") is None
    _finished(tmp_path / "prognet" / "alexnet" / "seed-0.failed")  # kept aside: not a run
    assert qualitative.find_run(tmp_path, "prognet", "vgg16/seed-0") == seed
    assert qualitative.missing(tmp_path, ["alexnet"]) == ["prognet/alexnet/seed-*"]


def test_a_held_out_patient_is_a_test_patient_of_the_run(tmp_path: Path) -> None:
    """Chapter 6's patient_id: a test patient of the run (as text or a number), else one
    line naming the parameter and the run's test patients."""
    run = tmp_path / "prognet" / "resnet50" / "seed-0"
    run.mkdir(parents=True)
    pd.DataFrame({"patient_id": ["7", "12"]}).to_csv(run / "predictions.csv", index=False)
    sequences = pd.DataFrame({"patient_id": ["3", "7", "12"], "n_images": [5, 3, 4],
                              "paths": [["a"] * 5, ["x"] * 3, ["y"] * 4]})
    assert qualitative.held_out_series(run, sequences)["patient_id"] == "12"  # the longest
    assert qualitative.held_out_series(run, sequences, 7)["patient_id"] == "7"
    with pytest.raises(ConfigError, match=r"patient_id='3' is not a test patient .* 7, 12, or None"):
        qualitative.held_out_series(run, sequences, "3")  # in the cohort, but trained on


def test_the_cam_paths_are_the_images_the_cams_show(tmp_path: Path) -> None:
    for model in ("cnn", "cnn_lstm"):
        run = _finished(tmp_path / "detector" / model / "fold-0")
        pd.DataFrame({"path": ["c1.png", "c2.png", "p1.png", "n1.png"],
                      "class": ["covid19", "covid19", "pneumonia", "normal"]}).to_csv(
            run / "predictions.csv", index=False)
    _finished(tmp_path / "detector" / "cnn" / "fold-1")  # another fold: not shown
    assert qualitative.detector_cam_paths(tmp_path, 0) == ["c1.png", "p1.png", "n1.png"] * 2
    assert qualitative.detector_cam_paths(tmp_path, 0, ("cnn",)) == ["c1.png", "p1.png", "n1.png"]

    run = tmp_path / "prognet" / "resnet50" / "seed-0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"parameters": {"seq_len": 2}}))
    pd.DataFrame({"patient_id": ["7", "3"]}).to_csv(run / "predictions.csv", index=False)
    sequences = pd.DataFrame({"patient_id": ["3", "7"], "paths": [["a", "b", "c"], ["x", "y", "z"]]})
    assert qualitative.prognet_cam_paths(run, sequences) == ["x", "y"]  # first test patient
    assert qualitative.prognet_cam_paths(run, sequences, "3", seq_len=3) == ["a", "b", "c"]
