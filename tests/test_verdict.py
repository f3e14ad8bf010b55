"""The verdict rules on constructed results: a clear win, a clear loss, an interval too
wide, a reversed ordering, a missing run, a setup the paper did not use. Each rule has a
test in which the verdict flips when the rule is broken (the runs of another setup, a
hidden refuting part, a weights file, the two readings of ProgNet's Table I, the lungs
audit's own verdicts)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlib import models, paper, verdict


# --------------------------------------------------------------------------- rules alone
def test_value_rule() -> None:
    assert verdict.value_verdict(0.92, 0.88, 0.96, 0.924)[0] == "reproduced"
    assert verdict.value_verdict(0.70, 0.60, 0.80, 0.924)[0] == "not reproduced"
    wide = verdict.value_verdict(0.80, 0.55, 0.99, 0.924)
    assert wide[0] == "not distinguishable" and "0.44 wide" in wide[1]
    assert verdict.value_verdict(np.nan, np.nan, np.nan, 0.9)[0] == "not distinguishable"


def test_order_and_above_rules() -> None:
    assert verdict.order_verdict(0.01, 0.2)[0] == "reproduced"
    assert verdict.order_verdict(-0.3, -0.05)[0] == "not reproduced"
    assert verdict.order_verdict(-0.1, 0.2)[0] == "not distinguishable"
    assert verdict.above_verdict(0.96, 0.99, 0.954)[0] == "reproduced"
    assert verdict.above_verdict(0.80, 0.90, 0.954)[0] == "not reproduced"
    assert verdict.above_verdict(0.93, 0.97, 0.954)[0] == "not distinguishable"


def test_combine_never_hides_a_refuting_part() -> None:
    ok, reversed_, wide = ("reproduced", "a"), ("not reproduced", "b"), ("not distinguishable", "c")
    untested = ("not testable here", "d")
    assert verdict.combine([ok, ok]) == ("reproduced", "a [reproduced]; a [reproduced]")
    assert verdict.combine([ok, wide])[0] == "not distinguishable"
    assert verdict.combine([ok, wide, reversed_])[0] == "not reproduced"
    assert verdict.combine([ok, untested])[0] == "not testable here"
    # a part that cannot be tested does not hide one that refutes, in either order
    for parts in ([untested, reversed_], [reversed_, untested]):
        result, why = verdict.combine(parts)
        assert result == "not reproduced"
        assert "b [not reproduced]" in why and "d [not testable here]" in why  # every part
    assert verdict.combine([])[0] == "not testable here"


# --------------------------------------------------------------------------- from run folders
def _prognet_run(root: Path, backbone: str, seed: int, y: np.ndarray, score: np.ndarray,
                 last: np.ndarray, weights: str | None = "imagenet",
                 patients: list[str] | None = None) -> None:
    folder = root / "prognet" / backbone / f"seed-{seed}"
    folder.mkdir(parents=True)
    n = len(y)
    pd.DataFrame({"patient_id": patients or [f"p{i}" for i in range(n)], "fold": 0, "label": y,
                  "survival_score": score, "score_majority": 1.0, "score_last_image": last,
                  "score_mean_features": 0.5, "seed": seed, "backbone": backbone}).to_csv(
        folder / "predictions.csv", index=False)
    metric = {k: 0.5 for k in ("accuracy", "precision", "recall", "f1", "specificity",
                               "balanced_accuracy", "roc_auc", "tp_rate", "fn_rate",
                               "fp_rate", "tn_rate", "npv")}
    (folder / "metrics.json").write_text(json.dumps({
        "parameters": {"backbone": backbone, "seed": seed, "weights": weights},
        "pretrained_weights": models.pretrained_weights(weights),
        "metrics": metric, "baselines": {"majority": metric, "last_image": metric}}))


def _detector_run(root: Path, model: str, fold: int, correct: np.ndarray, base: str = "paper",
                  blanked: float = 0.34, keep_blanked: bool = False) -> None:
    folder = root / "detector" / model / f"fold-{fold}"
    folder.mkdir(parents=True)
    n = len(correct)
    label = np.arange(n) % 3
    predicted = np.where(correct, label, (label + 1) % 3)
    proba = np.eye(3)[predicted] * 0.8 + 0.2 / 3
    table = pd.DataFrame({"path": [f"img{fold}-{i}.png" for i in range(n)],
                          "patient_id": [f"q{fold}-{i // 2}" for i in range(n)], "label": label,
                          "model": model, "fold": fold})
    for c, name in enumerate(("covid19", "pneumonia", "normal")):
        table[f"p_{name}"] = proba[:, c]
    table.to_csv(folder / "predictions.csv", index=False)
    if keep_blanked:  # the lungs-blanked model right on a share ``blanked`` of the images
        hit = np.arange(n) < round(blanked * n)
        table.assign(**{"class": [("covid19", "pneumonia", "normal")[i] for i in label]},
                     predicted=[("covid19", "pneumonia", "normal")[(i + (0 if h else 1)) % 3]
                                for i, h in zip(label, hit)]).to_csv(
            folder / "predictions_lungs_blanked.csv", index=False)
    per_class = {c: {"specificity": 1, "sensitivity": 1, "precision": 1, "f1": 1, "support": 1}
                 for c in ("covid19", "pneumonia", "normal")}
    (folder / "metrics.json").write_text(json.dumps({
        "parameters": {"model": model, "fold": fold, "base": base, "weights": None},
        "metrics": {"accuracy": float(correct.mean()), "macro_f1": 1.0, "per_class": per_class},
        "n_per_class": {"test": {"covid19": n // 3, "pneumonia": n // 3, "normal": n - 2 * (n // 3)}},
        "shortcut_audit": {"full_image": float(correct.mean()), "lungs_blanked": blanked,
                           "chance_three_classes": 0.34, "source_thumbnail": 0.5,
                           "source_file_size": 0.5, "source_majority": 0.66}}))


def _row(table: pd.DataFrame, key: str) -> pd.Series:
    return table.set_index("key").loc[key]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """ResNet50 right on 95 of 100 patients per seed; VGG16 on 60; AlexNet only on the
    seeds' first 10 patients (a missing comparison for nothing); a last-image baseline
    that beats the model; the CNN-LSTM better than the CNN; lungs blanked at chance."""
    rng = np.random.default_rng(0)
    y = (rng.random(100) < 0.7).astype(int)
    for seed in (0, 1):
        hit = lambda rate: np.where(rng.random(100) < rate, y, 1 - y).astype(float)  # noqa: E731
        right = np.where(np.arange(100) < 95, y, 1 - y).astype(float)
        _prognet_run(tmp_path, "resnet50", seed, y, right, last=y.astype(float))
        _prognet_run(tmp_path, "vgg16", seed, y, hit(0.6), last=hit(0.6))
        _prognet_run(tmp_path, "vgg19", seed, y, hit(0.6), last=hit(0.6), weights=None)
    for fold in range(2):
        _detector_run(tmp_path, "cnn_lstm", fold, np.arange(150) % 50 != 0, keep_blanked=True)
        _detector_run(tmp_path, "cnn", fold, np.arange(150) % 5 != 0)  # 0.80
    return tmp_path


def test_verdicts_from_constructed_runs(results: Path) -> None:
    table = verdict.verdict_table(results)
    assert list(table["key"]) == [c["key"] for c in paper.CLAIMS]
    assert set(table["verdict"]) <= set(verdict.VERDICTS)
    resnet = _row(table, "prognet.accuracy.resnet50")  # 0.95 [~0.92, ~0.98] holds 0.924
    assert resnet["verdict"] == "reproduced" and resnet["ours"] == pytest.approx(0.95)
    assert "our reading" in resnet["why"]  # ImageNet weights for ProgNet: our inference
    assert _row(table, "prognet.accuracy.vgg16")["verdict"] == "not reproduced"  # ~0.6
    assert _row(table, "prognet.accuracy.alexnet")["why"] == "no alexnet runs"
    weights = _row(table, "prognet.accuracy.vgg19")  # random weights: not the paper's setup
    assert weights["verdict"] == "not testable here" and "vgg19: none" in weights["why"]
    assert "the numbers alone say: not reproduced" in weights["why"]
    outperforms = _row(table, "prognet.outperforms")  # alexnet missing, vgg19 random, vgg16 beaten
    assert outperforms["verdict"] == "not testable here"
    assert all(f"vs {b}" in outperforms["why"] for b in ("alexnet", "vgg16", "vgg19"))
    # a baseline that is perfect beats the model: the ordering is reversed
    series = _row(table, "prognet.series_beats_last_image")
    assert series["verdict"] == "not reproduced" and series["ours"] == pytest.approx(-0.05)
    assert _row(table, "prognet.beats_majority")["verdict"] == "reproduced"
    cnn = _row(table, "detector.outperforms")
    assert cnn["verdict"] == "reproduced" and cnn["ours"] == pytest.approx(0.98 - 0.80)
    assert _row(table, "detector.accuracy.cnn")["verdict"] == "not reproduced"  # 0.80 vs 0.94
    lungs = _row(table, "detector.from_the_lungs")
    assert lungs["verdict"] == "no shortcut found" and "resampling patients" in lungs["why"]
    assert "where the paper's network looks is not measured" in lungs["why"]


def test_compact_table_keeps_the_reason_in_its_own_column(results: Path) -> None:
    compact = verdict.verdict_table(results, compact=True)
    assert list(compact.columns) == ["paper", *verdict.COMPACT, "why", "key"]
    assert compact["why"].str.len().min() > 0


def test_every_claim_names_its_setup_and_why() -> None:
    for claim in paper.CLAIMS:
        assert claim["setup"] in paper.SETUPS, claim["key"]
        assert len(claim["why_setup"]) > 20, claim["key"]
    assert len({c["key"] for c in paper.CLAIMS}) == len(paper.CLAIMS)


def test_a_frozen_base_cannot_test_the_papers_network(tmp_path: Path) -> None:
    _detector_run(tmp_path, "cnn_lstm", 0, np.arange(90) % 30 != 0, base="vgg16", blanked=0.9)
    table = verdict.verdict_table(tmp_path)
    accuracy = _row(table, "detector.accuracy.cnn_lstm")
    assert accuracy["verdict"] == "not testable here" and "base vgg16" in accuracy["why"]
    lungs = _row(table, "detector.from_the_lungs")  # about the data: judged on any base
    assert lungs["verdict"] == "shortcut in the data" and "confounded" in lungs["why"]
    assert "where the paper's network looks is not measured" in lungs["why"]
    assert "Wilson" in lungs["why"]  # no saved blanked predictions: the fallback interval
    assert _row(table, "detector.outperforms")["verdict"] == "not testable here"


@pytest.mark.parametrize("base,expected", [("vgg16", "not testable here"), ("paper", "not reproduced")])
def test_cnn_lstm_against_cnn_is_judged_only_on_the_papers_network(
        tmp_path: Path, base: str, expected: str) -> None:
    """The CNN clearly better than the CNN-LSTM: not reproduced on Table 2's network,
    and on a frozen VGG16 base not testable, with what the numbers say."""
    for fold in range(2):
        _detector_run(tmp_path, "cnn_lstm", fold, np.arange(150) % 5 != 0, base=base)  # 0.80
        _detector_run(tmp_path, "cnn", fold, np.arange(150) % 50 != 0, base=base)  # 0.98
    row = _row(verdict.verdict_table(tmp_path), "detector.outperforms")
    assert row["verdict"] == expected and row["ours"] == pytest.approx(0.80 - 0.98)
    if base == "vgg16":
        assert "the numbers alone say: not reproduced" in row["why"]
        assert row["numbers alone"] == "not reproduced"
    else:  # on the claim's own setup the verdict itself says it
        assert row["numbers alone"] == ""


@pytest.mark.parametrize("weights,expected", [(None, "not testable here"),
                                              ("alexnet.weights.h5", "not reproduced")])
def test_a_pretrained_alexnet_weights_file_counts(tmp_path: Path, weights, expected: str) -> None:
    """AlexNet at 0.60: not reproduced with a pretrained weights file (Keras ships no
    ImageNet AlexNet), not testable with random weights."""
    y = np.arange(100) % 3 != 0
    score = np.where(np.arange(100) < 60, y, ~y).astype(float)
    for seed in (0, 1):
        _prognet_run(tmp_path, "alexnet", seed, y.astype(int), score, last=score, weights=weights)
    row = _row(verdict.verdict_table(tmp_path), "prognet.accuracy.alexnet")
    assert row["verdict"] == expected
    runs = verdict.Runs(tmp_path)
    assert runs.weights("alexnet") == ("none" if weights is None else "file alexnet.weights.h5")
    if weights:  # one more seed with random weights: the runs are no longer all pretrained
        _prognet_run(tmp_path, "alexnet", 2, y.astype(int), score, last=score, weights=None)
        mixed = _row(verdict.verdict_table(tmp_path), "prognet.accuracy.alexnet")
        assert mixed["verdict"] == "not testable here" and "file alexnet.weights.h5, none" in mixed["why"]


def test_a_refuting_part_is_not_hidden_by_an_untestable_one(tmp_path: Path) -> None:
    """ResNet50 clearly worse than a pretrained VGG16: the claim is refuted, though the
    AlexNet part (random weights) cannot be tested; every part is shown."""
    y = (np.arange(100) % 4 != 0).astype(int)
    hit = lambda rate: np.where(np.arange(100) < rate * 100, y, 1 - y).astype(float)  # noqa: E731
    for seed in (0, 1):
        _prognet_run(tmp_path, "resnet50", seed, y, hit(0.6), last=hit(0.6))
        _prognet_run(tmp_path, "vgg16", seed, y, hit(0.95), last=hit(0.6))
        _prognet_run(tmp_path, "alexnet", seed, y, hit(0.95), last=hit(0.6), weights=None)
    row = _row(verdict.verdict_table(tmp_path), "prognet.outperforms")
    assert row["verdict"] == "not reproduced"
    assert "vs alexnet (accuracy)" in row["why"] and "alexnet: none" in row["why"]
    assert "vs vgg16 (accuracy)" in row["why"] and "vs vgg19: no vgg19 runs" in row["why"]


def _confusion_scores(tp: int, fn: int, fp: int, tn: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and hard scores with the given confusion counts (positive = 1)."""
    y = np.array([1] * (tp + fn) + [0] * (fp + tn))
    score = np.array([1] * tp + [0] * fn + [1] * fp + [0] * tn, dtype=float)
    return y, score


def test_both_readings_of_table_i_are_judged(tmp_path: Path) -> None:
    """ResNet50 better on both shares of predicted classes (precision and NPV) but worse
    on sensitivity: 'the lowest FN and FP rates' holds under one reading of Table I and
    is refuted under the other."""
    y, better = _confusion_scores(tp=40, fn=40, fp=0, tn=20)  # precision 1, NPV 0.33
    y_other, worse = _confusion_scores(tp=75, fn=5, fp=20, tn=0)  # precision 0.79, NPV 0
    assert (y == y_other).all()
    for seed in (0, 1):
        _prognet_run(tmp_path, "resnet50", seed, y, better, last=better)
        for backbone in ("alexnet", "vgg16", "vgg19"):
            _prognet_run(tmp_path, backbone, seed, y, worse, last=worse,
                         weights="alexnet.weights.h5" if backbone == "alexnet" else "imagenet")
    table = verdict.verdict_table(tmp_path)
    shares = _row(table, "prognet.lowest_fn_fp.predicted_shares")
    swapped = _row(table, "prognet.lowest_fn_fp.swapped_headers")
    assert shares["verdict"] == "reproduced"
    assert swapped["verdict"] == "not reproduced" and "(tp_rate)" in swapped["why"]


@pytest.mark.parametrize("blanked,expected", [(0.9, "shortcut in the data"),
                                              (0.34, "no shortcut found")])
def test_the_lungs_audit_says_what_it_measured(tmp_path: Path, blanked: float, expected: str) -> None:
    for fold in range(2):
        _detector_run(tmp_path, "cnn_lstm", fold, np.arange(150) % 50 != 0, blanked=blanked,
                      keep_blanked=True)
    row = _row(verdict.verdict_table(tmp_path), "detector.from_the_lungs")
    assert row["verdict"] == expected
    assert "a new model trained and tested with the lungs blanked" in row["why"]
    assert row["verdict"] not in ("reproduced", "not reproduced")


def test_patient_ids_are_read_as_text(tmp_path: Path) -> None:
    """'007' and '7' are two patients (a number column would merge them): the interval
    resamples 100 patients, not 99."""
    y = (np.arange(100) % 4 != 0).astype(int)
    ids = ["007", "7"] + [f"{i}a" if i % 2 else str(i) for i in range(2, 100)]
    _prognet_run(tmp_path, "resnet50", 0, y, y.astype(float), last=y.astype(float), patients=ids)
    predictions = verdict.Runs(tmp_path).prognet
    assert predictions["patient_id"].nunique() == 100 and "007" in set(predictions["patient_id"])


def test_empty_results_are_all_not_testable(tmp_path: Path) -> None:
    table = verdict.verdict_table(tmp_path)
    assert (table["verdict"] == "not testable here").all() and len(table) == len(paper.CLAIMS)
