"""Pick patients and images to look at, and rebuild a run's trained head for Grad-CAM.

Runs keep predictions, not weights: a head trains in seconds from the cached features and
training is deterministic for a seed, so ``retrain_*`` rebuilds exactly the model a run
had from its ``metrics.json`` parameters.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib import detector, prognet


def patient_agreement(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per patient and backbone: the share of seeds that classified the patient correctly,
    the mean survival score, and the label (one row per patient, backbones as columns)."""
    scored = predictions.assign(correct=(predictions["predicted"] == predictions["label"]))
    wide = scored.pivot_table(index=["patient_id", "label"], columns="backbone",
                              values="correct", aggfunc="mean")
    wide.columns = [f"correct_{c}" for c in wide.columns]
    scores = scored.pivot_table(index=["patient_id", "label"], columns="backbone",
                                values="survival_score", aggfunc="mean")
    scores.columns = [f"score_{c}" for c in scores.columns]
    return wide.join(scores).reset_index()


def well_classified(agreement: pd.DataFrame, backbone: str, n: int = 2) -> pd.DataFrame:
    """The ``n`` most confidently right survivors and deaths (the paper's Fig. 7)."""
    right = agreement[agreement[f"correct_{backbone}"] >= 0.5].copy()
    score = right[f"score_{backbone}"]
    right["confidence"] = np.where(right["label"] == 1, score, 1 - score)
    picked = right.sort_values("confidence", ascending=False).groupby("label").head(n)
    return picked.sort_values(["label", "confidence"], ascending=[False, False])


def only_backbone_right(agreement: pd.DataFrame, backbone: str, n: int = 2) -> pd.DataFrame:
    """Patients ``backbone`` gets right (most seeds) where every other backbone fails
    (the paper's Fig. 8)."""
    others = [c for c in agreement if c.startswith("correct_") and c != f"correct_{backbone}"]
    mask = agreement[f"correct_{backbone}"] >= 0.5
    for column in others:
        mask &= agreement[column] < 0.5
    return agreement[mask].head(n)


def misclassified(agreement: pd.DataFrame, backbone: str, n: int = 2) -> pd.DataFrame:
    """Patients ``backbone`` gets wrong in most seeds (the paper's Fig. 9)."""
    return agreement[agreement[f"correct_{backbone}"] < 0.5].head(n)


def series_panel(chosen: pd.DataFrame, sequences: pd.DataFrame, backbone: str,
                 steps: int = 3) -> tuple[list[str], list[str]]:
    """Paths and titles for ``plots.image_grid``: one row per patient, T1..T``steps``,
    the survival score (SC) in the first title."""
    by_patient = sequences.set_index("patient_id")
    paths, titles = [], []
    for row in chosen.itertuples():
        series = by_patient.loc[str(row.patient_id), "paths"][:steps]
        outcome = "survived" if row.label == 1 else "died"
        score = getattr(row, f"score_{backbone}")
        for t, path in enumerate(series):
            paths.append(path)
            titles.append(f"{row.patient_id} ({outcome}) SC {100 * score:.1f}%" if t == 0 else f"T{t + 1}")
    return paths, titles


def _parameters(run_dir: str | Path) -> tuple[dict, dict]:
    payload = json.loads((Path(run_dir) / "metrics.json").read_text())
    return payload["parameters"], payload.get("paths", {})


def retrain_prognet(run_dir: str | Path, data_dir: str | Path, cache_dir: str | Path):
    """The run's config, cohort, splits, features and its trained head (re-trained)."""
    parameters, _ = _parameters(run_dir)
    config = prognet.Config(**parameters).check()
    sequences = prognet.cohort(data_dir, config)
    folds = prognet.make_splits(sequences, config)
    _, found = prognet.extract(sequences, config, cache_dir, progress=False)
    predictions, _, model = prognet.train_and_predict(sequences, folds, found, config)
    return config, sequences, folds, found, model, predictions


def retrain_detector(run_dir: str | Path, data_dir: str | Path, cache_dir: str | Path):
    """The run's config, images table, split, features and its trained head (re-trained)."""
    parameters, _ = _parameters(run_dir)
    config = detector.Config(**parameters).check()
    table = detector.dataset(data_dir, config)
    train, test = detector.make_split(table, config)
    _, found = detector.extract(table, config, cache_dir, progress=False)
    predictions, _, model = detector.train_and_predict(table, train, test, found, config)
    return config, table, train, test, model, predictions


def prognet_training_stats(config, sequences: pd.DataFrame, folds: list, found: dict):
    """(mean, std) of the first fold's training features, as the head saw them; None
    when the run did not standardise."""
    from cxrlib.explain import feature_stats

    if not config.standardize:
        return None
    _, train, _ = folds[0]
    rows = prognet.sequence_rows(sequences, train, config)
    steps = config.seq_len or max(len(p) for p in rows["paths"])
    return feature_stats(prognet.to_array(rows, found, steps), rows["paths"].map(len).to_numpy())


def load_series(paths: list[str], image_size: int, backbone: str) -> np.ndarray:
    """A patient's images as (T, H, W, 3) in the backbone's input scale."""
    from cxrlib.images import load_image
    from cxrlib.models import input_scale

    return np.stack([load_image(p, image_size, 3, input_scale(backbone)) for p in paths])


def detector_parts(config, trained):
    """(conv base, head) of a trained detector: the network's own parts when it trained end
    to end, else the frozen base rebuilt with the run's settings and the trained head."""
    from cxrlib import models

    if config.trainable:
        network = trained.get_layer(f"detector_{config.model}")
        return network.get_layer("conv_base"), network.get_layer(f"detector_head_{config.model}")
    return models.build_conv_base(config.image_size, config.weights, config.init_seed), trained


def detector_cams(results_dir: str | Path, data_dir: str | Path, cache_dir: str | Path,
                  fold: int = 0, models_: tuple[str, ...] = ("cnn", "cnn_lstm")):
    """Grad-CAM of one test image per class for each detector model of ``fold``:
    (images, heat maps, titles) for ``explain.plot_cams``."""
    from cxrlib import explain, models
    from cxrlib.images import load_image

    images, cams, titles = [], [], []
    for model in models_:
        run = Path(results_dir) / "detector" / model / f"fold-{fold}"
        config, _, _, _, trained, predictions = retrain_detector(run, data_dir, cache_dir)
        base, head = detector_parts(config, trained)
        scale = models.detector_input_scale(config.base)
        for row in predictions.groupby("class").head(1).to_dict("records"):
            image = load_image(row["path"], config.image_size, 3, scale)
            images.append(image)
            cams.append(explain.detector_grad_cam(base, head, image))
            titles.append(f"{model}: {row['class']} -> {row['predicted']}")
    return images, cams, titles
