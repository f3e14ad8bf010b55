"""Pick patients and images to look at, and draw Grad-CAM with the models runs saved.

Reads finished run folders only (``predictions.csv``, ``metrics.json``, ``model/``):
nothing is trained here. Every function copes with a partial batch: a missing backbone,
model or fold gives an empty result, and ``missing`` says what is absent.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from cxrlib import compare, explain, predict, prognet
from cxrlib.errors import ConfigError
from cxrlib.images import load_image

DISPLAY_SIZE = 256  # pixels of the X-rays under a heat map (the map is stretched to it)


def patient_agreement(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per patient and backbone: the share of seeds that classified the patient correctly,
    the mean survival score, and the label (one row per patient, backbones as columns)."""
    if predictions.empty:
        return pd.DataFrame(columns=["patient_id", "label"])
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
    if f"correct_{backbone}" not in agreement:
        return agreement.iloc[:0]
    right = agreement[agreement[f"correct_{backbone}"] >= 0.5].copy()
    score = right[f"score_{backbone}"]
    right["confidence"] = np.where(right["label"] == 1, score, 1 - score)
    picked = right.sort_values("confidence", ascending=False).groupby("label").head(n)
    return picked.sort_values(["label", "confidence"], ascending=[False, False])


def only_backbone_right(agreement: pd.DataFrame, backbone: str, n: int = 2) -> pd.DataFrame:
    """Patients ``backbone`` gets right (most seeds) where every other backbone fails
    (the paper's Fig. 8)."""
    if f"correct_{backbone}" not in agreement:
        return agreement.iloc[:0]
    others = [c for c in agreement if c.startswith("correct_") and c != f"correct_{backbone}"]
    mask = agreement[f"correct_{backbone}"] >= 0.5
    for column in others:
        mask &= agreement[column] < 0.5
    return agreement[mask].head(n)


def misclassified(agreement: pd.DataFrame, backbone: str, n: int = 2) -> pd.DataFrame:
    """Patients ``backbone`` gets wrong in most seeds (the paper's Fig. 9)."""
    if f"correct_{backbone}" not in agreement:
        return agreement.iloc[:0]
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


def missing(results_dir: str | Path, backbones: Sequence[str] = (), prognet_run: str = "",
            detector_models: Sequence[str] = (), detector_fold: int = 0) -> list[str]:
    """What this chapter asks for that the results folder does not hold (finished runs)."""
    results = Path(results_dir)
    backbones_run = {run.parent.name for run in compare.run_folders(results, "prognet")}
    gone = [f"prognet/{b}/seed-*" for b in backbones if b not in backbones_run]
    if prognet_run and not (results / "prognet" / prognet_run / "metrics.json").is_file():
        gone.append(f"prognet/{prognet_run}")
    gone += [f"detector/{m}/fold-{detector_fold}" for m in detector_models
             if not (results / "detector" / m / f"fold-{detector_fold}" / "metrics.json").is_file()]
    return gone


def find_run(results_dir: str | Path, experiment: str, wanted: str) -> Path | None:
    """``<results>/<experiment>/<wanted>`` if finished, else the first finished run of the
    experiment (None when there is none)."""
    root = Path(results_dir) / experiment
    if (root / wanted / "metrics.json").is_file():
        return root / wanted
    finished = compare.run_folders(results_dir, experiment)
    return finished[0] if finished else None


def run_cohort(run_dir: str | Path, data_dir: str | Path) -> pd.DataFrame:
    """The cohort (one row per patient, image paths in time order) a ProgNet run read."""
    parameters = json.loads((Path(run_dir) / "metrics.json").read_text())["parameters"]
    return prognet.cohort(data_dir, prognet.Config(**parameters).check())


def display_image(path: str, size: int = DISPLAY_SIZE) -> np.ndarray:
    """An X-ray as gray pixels at ``size`` for drawing under a heat map."""
    return load_image(path, size, 1, "unit")[..., 0]


def detector_cams(results_dir: str | Path, fold: int = 0,
                  detector_models: tuple[str, ...] = ("cnn", "cnn_lstm")) -> tuple[list, list, list]:
    """Grad-CAM of one test image per class for each saved detector model of ``fold``:
    (X-rays at ``DISPLAY_SIZE``, heat maps, titles) for ``plots.plot_cams``; models
    without a finished run are left out (see ``missing``)."""
    images, cams, titles = [], [], []
    for model, run in _detector_runs(results_dir, fold, detector_models):
        saved = predict.load_detector(run)
        base, head = predict.detector_parts(saved)
        for row in _cam_examples(run):
            pixels = load_image(row["path"], saved.card["image_size"], 3, saved.card["scale"])
            cams.append(explain.detector_grad_cam(base, head, pixels))
            images.append(display_image(row["path"]))
            titles.append(f"{model}\ntrue {row['class']}, predicted {row['predicted']}")
    return images, cams, titles


def _detector_runs(results_dir: str | Path, fold: int,
                   detector_models: tuple[str, ...]) -> list[tuple[str, Path]]:
    """(model, run folder) of each finished detector run of ``fold``."""
    runs = [(model, Path(results_dir) / "detector" / model / f"fold-{fold}")
            for model in detector_models]
    return [(model, run) for model, run in runs if (run / "metrics.json").is_file()]


def _cam_examples(run: Path) -> list[dict]:
    """The test images a detector run's Grad-CAM shows: the first of each class."""
    return pd.read_csv(run / "predictions.csv", dtype={"patient_id": str}).groupby("class", sort=False).head(1).to_dict("records")


def detector_cam_paths(results_dir: str | Path, fold: int = 0,
                       detector_models: tuple[str, ...] = ("cnn", "cnn_lstm")) -> list[str]:
    """The X-rays ``detector_cams`` shows, in its order (to name their sources)."""
    return [row["path"] for _, run in _detector_runs(results_dir, fold, detector_models)
            for row in _cam_examples(run)]


def prognet_cam_paths(run_dir: str | Path, sequences: pd.DataFrame,
                      patient_id: str | None = None, seq_len: int | None = None) -> list[str]:
    """The X-rays ``prognet_cams`` shows: the first ``seq_len`` of one test patient's series
    (the run's first test patient by default; ``seq_len`` as the run recorded it)."""
    run_dir = Path(run_dir)
    if seq_len is None:
        seq_len = json.loads((run_dir / "metrics.json").read_text())["parameters"]["seq_len"]
    tested = pd.read_csv(run_dir / "predictions.csv", dtype={"patient_id": str})
    patient_id = str(patient_id or tested["patient_id"].iloc[0])
    return list(sequences.set_index("patient_id").loc[patient_id, "paths"][:seq_len])


def prognet_cams(run_dir: str | Path, sequences: pd.DataFrame, patient_id: str | None = None
                 ) -> tuple[list, list, list]:
    """Grad-CAM of one test patient's series with the run's saved head (the first test
    patient by default): (X-rays, heat maps, titles), one per time point."""
    saved = predict.load_prognet(run_dir)
    tested = pd.read_csv(Path(run_dir) / "predictions.csv", dtype={"patient_id": str})
    patient_id = str(patient_id or tested["patient_id"].iloc[0])
    paths = prognet_cam_paths(run_dir, sequences, patient_id, saved.card["seq_len"])
    images, cams, titles = predict.prognet_grad_cams(saved, paths)
    return images, cams, [f"patient {patient_id}, {t}" for t in titles]


def held_out_series(run_dir: str | Path, sequences: pd.DataFrame,
                    patient_id: str | None = None) -> pd.Series:
    """A test patient of the run (never seen in training): the one with the longest
    series by default. Returns its cohort row (patient_id, paths, label, survival...)."""
    tested = pd.read_csv(Path(run_dir) / "predictions.csv", dtype={"patient_id": str})["patient_id"]
    cohort = sequences[sequences["patient_id"].isin(set(tested))]
    if patient_id is not None:
        if str(patient_id) not in set(cohort["patient_id"]):
            names = sorted(cohort["patient_id"], key=lambda p: (len(p), p))
            raise ConfigError(f"patient_id={patient_id!r} is not a test patient of {run_dir}; "
                              f"choose one of {', '.join(names)}, or None")
        cohort = cohort[cohort["patient_id"] == str(patient_id)]
    return cohort.sort_values(["n_images", "patient_id"], ascending=[False, True]).iloc[0]
