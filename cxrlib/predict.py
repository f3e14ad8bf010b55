"""Score new X-rays with the model a finished run saved (``<run>/model/``).

A run folder is enough: the saved head (or whole model), the feature standardisation and
the baselines, and ``model.json`` with the backbone, weights, image size and pixel scale
to rebuild the frozen CNN exactly. Nothing is trained here.

    model = predict.load_prognet("results/sample/prognet/resnet50/seed-0")
    predict.predict_prognet(model, {"patient 7": [day1, day3, day6]})
    predict.prognet_over_time(model, [day1, day3, day6, day9])
    model = predict.load_detector("results/sample/detector/cnn_lstm/fold-0")
    predict.predict_detector(model, ["xray.png"])
"""
from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from cxrlib import features, models, sequences, training
from cxrlib.errors import ConfigError, CxrError, DataError
from cxrlib.images import load_image


class NoModelError(CxrError):
    """A run folder holds no saved model (an older run, or one that did not finish)."""


@dataclass
class SavedModel:
    """A run's saved model, loaded: ``card`` is ``model.json``; ``model`` the Keras model
    (head or whole); ProgNet also has ``standardization`` (mean, std) and ``baselines``."""

    run_dir: Path
    card: dict
    model: object
    standardization: tuple | None = None
    baselines: dict | None = None

    @property
    def spec(self) -> features.FeatureSpec:
        return features.FeatureSpec(**self.card["feature_spec"])


# --------------------------------------------------------------------------- loading
def read_card(run_dir: str | Path, experiment: str) -> dict:
    """``<run_dir>/model/model.json``, checked: right experiment, and the backbone,
    weights and feature spec still give the features the model was trained on."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NoModelError(f"{run_dir}: no such run folder")
    path = run_dir / "model" / "model.json"
    if not path.is_file():
        raise NoModelError(f"{run_dir}: the run folder holds no saved model ({path.name} missing "
                           "under model/); runs made before models were saved, or unfinished "
                           "ones, must be run again")
    try:
        card = json.loads(path.read_text())
    except ValueError as err:
        raise NoModelError(f"{path}: not readable JSON ({err})") from err
    if card.get("experiment") != experiment:
        raise ConfigError(f"{run_dir} is a {card.get('experiment')!r} run, not {experiment!r}")
    _check_spec(card, run_dir)
    return card


def _check_spec(card: dict, run_dir: Path) -> None:
    """The saved feature spec must still name the same features (e.g. same weights file)."""
    spec = features.FeatureSpec(**card["feature_spec"])
    if spec.backbone != card.get("backbone", spec.backbone):
        raise ConfigError(f"{run_dir}: model.json names backbone {card['backbone']!r} but its "
                          f"feature spec {spec.backbone!r}")
    try:
        key = spec.key()
    except ConfigError as err:
        raise ConfigError(f"{run_dir}: the model needs its backbone weights: {err}") from err
    if key != card["feature_key"]:
        raise ConfigError(f"{run_dir}: the backbone's features changed since training (feature "
                          f"spec {key} instead of {card['feature_key']}; e.g. a different "
                          f"weights file {spec.weights!r})")


def _fold_entry(card: dict, fold: int | None, run_dir: Path) -> dict:
    entries = {entry["fold"]: entry for entry in card["folds"]}
    if fold is None:
        return card["folds"][0]
    if fold not in entries:
        raise ConfigError(f"{run_dir}: no model for fold {fold}; saved folds: {sorted(entries)}")
    return entries[fold]


def _load_file(path: Path):
    if not path.is_file():
        raise NoModelError(f"{path}: saved model file missing")
    return training.load_keras(path)


def load_prognet(run_dir: str | Path, fold: int | None = None,
                 card: dict | None = None) -> SavedModel:
    """A ProgNet run's saved head, standardisation and baselines (``fold``: k-fold runs
    save one head per fold; the first by default). ``card``: the run's ``read_card``,
    when it was read already."""
    run_dir = Path(run_dir)
    card = read_card(run_dir, "prognet") if card is None else card
    entry = _fold_entry(card, fold, run_dir)
    folder = run_dir / "model"
    model = _load_file(folder / entry["model"])
    if card["kind"] == "head" and model.input_shape[-1] != card["feature_dim"]:
        raise ConfigError(f"{run_dir}: the head takes {model.input_shape[-1]} features but "
                          f"{card['backbone']} gives {card['feature_dim']}")
    stats = None
    if entry.get("standardization"):
        with np.load(folder / entry["standardization"]) as arrays:
            stats = (arrays["mean"], arrays["std"])
    with np.load(folder / entry["baselines"]) as arrays:
        baselines = sequences.baselines_from_arrays(dict(arrays))
    return SavedModel(run_dir, {**card, "fold": entry["fold"]}, model, stats, baselines)


def load_detector(run_dir: str | Path) -> SavedModel:
    """A detector run's saved head (frozen base) or whole model (trained base)."""
    run_dir = Path(run_dir)
    card = read_card(run_dir, "detector")
    return SavedModel(run_dir, card, _load_file(run_dir / "model" / card["file"]))


def _loaded(run: str | Path | SavedModel, loader) -> SavedModel:
    return run if isinstance(run, SavedModel) else loader(run)


# --------------------------------------------------------------------------- images
def check_images(paths: Sequence[str | Path], image_size: int) -> list[str]:
    """The paths as strings, each decoded once: an empty list, a missing or unreadable
    file raises a ``CxrError`` naming it (before any model runs)."""
    paths = [str(p) for p in paths]
    if not paths:
        raise ConfigError("no images given: pass one or more image files")
    for path in paths:
        load_image(path, image_size, 3, "raw")  # ImageError names the file
    return paths


@contextmanager
def _cache(cache_dir: str | Path | None) -> Iterator[Path]:
    """The feature cache to use: the given folder, or a temporary one (removed after)."""
    if cache_dir is not None:
        yield Path(cache_dir)
        return
    with tempfile.TemporaryDirectory(prefix="cxr-predict-") as folder:
        yield Path(folder)


def image_features(saved: SavedModel, paths: Sequence[str], cache_dir=None) -> dict:
    """{(path, 0): features} from the run's frozen CNN, rebuilt from ``model.json``."""
    with _cache(cache_dir) as cache:
        _, vectors = features.extract_features(paths, saved.spec, cache, progress=False)
    missing = [p for p in paths if (p, 0) not in vectors]
    if missing:
        raise DataError(f"{missing[0]}: no features could be computed for this image")
    return vectors


def _pixels(saved: SavedModel, paths: Sequence[str]) -> np.ndarray:
    return np.stack([load_image(p, saved.card["image_size"], 3, saved.card["scale"]) for p in paths])


# --------------------------------------------------------------------------- ProgNet
def check_patients(card: dict, patients: Mapping[str, Sequence] | Sequence) -> dict[str, list[str]]:
    """``patients`` (``{patient_id: [image paths in time order]}``, or one patient's list
    of paths) as ``{patient_id: [paths]}``, checked against a ProgNet run's ``card``
    (``read_card``) before its model is loaded: every file decodes, and each patient has
    as many images as the model reads; else a ``CxrError`` saying which."""
    if not isinstance(patients, Mapping):
        patients = {"patient": list(patients)}
    if not patients:
        raise ConfigError("no patients given")
    size, seq_len = card["image_size"], card["seq_len"]
    patients = {str(k): check_images(v, size) if len(v) else [] for k, v in patients.items()}
    for patient, paths in patients.items():
        if not paths:
            raise ConfigError(f"patient {patient!r}: no images given")
        if seq_len is not None and len(paths) != seq_len:
            raise ConfigError(f"patient {patient!r}: {len(paths)} image(s) given, but this model "
                              f"reads exactly {seq_len} per patient (seq_len={seq_len}), in time order")
    return patients


def checked_prognet(run_dir: str | Path, patients: Mapping[str, Sequence] | Sequence,
                    fold: int | None = None) -> tuple[SavedModel, dict[str, list[str]]]:
    """The run's saved model (``load_prognet``) and ``patients`` checked against its card
    (``check_patients``) before the model is loaded, so that a wrong image count or an
    unreadable file is reported without importing TensorFlow."""
    card = read_card(run_dir, "prognet")
    patients = check_patients(card, patients)
    return load_prognet(run_dir, fold, card), patients


def predict_prognet(run: str | Path | SavedModel, patients: Mapping[str, Sequence] | Sequence,
                    cache_dir: str | Path | None = None) -> pd.DataFrame:
    """P(survival) of each patient's series (``{patient_id: [image paths in time order]}``,
    or one patient's list of paths), and the baselines' scores; one row per patient.
    Given a run folder, the images are checked before its model is loaded
    (``checked_prognet``)."""
    if isinstance(run, SavedModel):
        return score_prognet(run, check_patients(run.card, patients), cache_dir)
    return score_prognet(*checked_prognet(run, patients), cache_dir)


def score_prognet(saved: SavedModel, patients: dict[str, list[str]],
                  cache_dir: str | Path | None = None) -> pd.DataFrame:
    """``predict_prognet`` for patients that ``check_patients`` has checked already."""
    rows = pd.DataFrame({"patient_id": list(patients), "paths": list(patients.values())})
    vectors = image_features(saved, [p for paths in patients.values() for p in paths], cache_dir)
    steps = saved.card["seq_len"] or int(rows["paths"].map(len).max())
    x, lengths = sequences.to_array(rows, vectors, steps), rows["paths"].map(len).to_numpy()
    if saved.standardization is not None:
        x = sequences.apply_standardization(x, lengths, *saved.standardization)
    if saved.card["kind"] == "whole":
        score = training.predict(saved.model, np.stack([_pixels(saved, p) for p in rows["paths"]]))
    else:
        score = training.predict(saved.model, x)
    table = rows[["patient_id"]].assign(n_images=lengths, survival_score=score[:, 0])
    table["predicted"] = np.where(table["survival_score"] >= saved.card["threshold"],
                                  "survived", "died")
    table["score_majority"] = saved.baselines["majority"]
    for name in ("last_image", "mean_features"):
        summary = sequences.summarise(x, lengths, name)
        table[f"score_{name}"] = saved.baselines[name].predict_proba(summary)[:, 1]
    return table


def prognet_over_time(run: str | Path | SavedModel, paths: Sequence[str | Path],
                      cache_dir: str | Path | None = None) -> pd.DataFrame:
    """The survival score as a patient's series grows, one row per image: at image t the
    model reads the images up to t (the last ``seq_len`` of them for a fixed-length
    model; rows before it has enough images have no score)."""
    saved = _loaded(run, load_prognet)
    paths = check_images(paths, saved.card["image_size"])
    seq_len = saved.card["seq_len"]
    windows = {f"T{t}": paths[max(0, t - (seq_len or t)):t] for t in range(1, len(paths) + 1)
               if seq_len is None or t >= seq_len}
    scores = predict_prognet(saved, windows, cache_dir).set_index("patient_id") if windows else None
    rows = []
    for t, path in enumerate(paths, start=1):
        row = {"t": t, "path": path, "images_read": 0, "survival_score": np.nan}
        if scores is not None and f"T{t}" in scores.index:
            row.update(images_read=int(scores.loc[f"T{t}", "n_images"]),
                       survival_score=float(scores.loc[f"T{t}", "survival_score"]))
        rows.append(row)
    return pd.DataFrame(rows)


def prognet_parts(saved: SavedModel) -> tuple:
    """(CNN up to its last map, head, standardisation the head's input gets) of a saved
    ProgNet, for Grad-CAM. A head on cached features: the CNN of ``model.json`` (the one
    ``predict_prognet`` just used) and the run's standardisation. A model trained end to
    end (``finetune``): its own trained CNN and head, which read unstandardised features."""
    if saved.card["kind"] == "head":
        return models.without_pooling(features.backbone(saved.spec)), saved.model, saved.standardization
    per_image, head = _nested(saved.model, "per_image_cnn"), _nested(saved.model, "prognet_head")
    if per_image is None or head is None:
        raise ConfigError(f"{saved.run_dir}: the saved model has no per_image_cnn / prognet_head "
                          "parts for Grad-CAM")
    return models.without_pooling(per_image.layer), head, None


def prognet_grad_cams(run: str | Path | SavedModel, paths: Sequence[str | Path],
                      display_size: int = 256) -> tuple[list, list, list]:
    """Grad-CAM of one patient's series (``seq_len`` images in time order) with the saved
    model, a head or one trained end to end (``prognet_parts``): (X-rays at
    ``display_size`` px, one map per time point, titles)."""
    from cxrlib import explain

    saved = _loaded(run, load_prognet)
    card = saved.card
    score = float(predict_prognet(saved, list(paths))["survival_score"].iloc[0])
    series = _pixels(saved, [str(p) for p in paths])
    maps, head, standardize = prognet_parts(saved)
    cams = explain.prognet_grad_cam(card["backbone"], card["image_size"], card["weights"],
                                    card["init_seed"], head, series, standardize=standardize,
                                    threshold=card["threshold"], map_model=maps)
    titles = [f"T{t + 1}\n{Path(p).name}" + (f"\nsurvival score {100 * score:.0f}%" if t == 0 else "\n")
              for t, p in enumerate(paths)]
    return [load_image(p, display_size, 1, "unit")[..., 0] for p in paths], list(cams), titles


def read_series(csv: str | Path) -> dict[str, list[str]]:
    """``{patient_id: [paths sorted by offset]}`` from a CSV with columns patient_id, path,
    offset; a relative path is looked up beside the CSV first, then from the working folder."""
    csv = Path(csv)
    try:
        table = pd.read_csv(csv, dtype={"patient_id": str})
    except (OSError, ValueError) as err:
        raise DataError(f"{csv}: cannot read the series table ({err})") from err
    missing = {"patient_id", "path", "offset"} - set(table.columns)
    if missing:
        raise DataError(f"{csv}: missing column(s) {sorted(missing)}; expected patient_id, path, offset")
    if table.empty:
        raise DataError(f"{csv}: no rows")
    table["path"] = [_beside(csv, p) for p in table["path"]]
    table = table.sort_values(["patient_id", "offset"], kind="stable")
    return {pid: group["path"].tolist() for pid, group in table.groupby("patient_id", sort=False)}


def _beside(csv: Path, path: str) -> str:
    """A relative path from the CSV's folder when the file is there, else as given."""
    candidate = csv.parent / str(path)
    return str(candidate) if not Path(path).is_absolute() and candidate.exists() else str(path)


# --------------------------------------------------------------------------- detector
def predict_detector(run: str | Path | SavedModel, paths: Sequence[str | Path],
                     cache_dir: str | Path | None = None) -> pd.DataFrame:
    """Class probabilities of each image (one row per image) and the predicted class."""
    saved = _loaded(run, load_detector)
    paths = check_images(paths, saved.card["image_size"])
    if saved.card["kind"] == "whole":
        proba = training.predict(saved.model, _pixels(saved, paths))
    else:
        proba = training.predict(saved.model, features.stack(image_features(saved, paths, cache_dir), paths))
    classes = saved.card["classes"]
    table = pd.DataFrame({"path": paths})
    for i, name in enumerate(classes):
        table[f"p_{name}"] = proba[:, i]
    table["predicted"] = [classes[i] for i in proba.argmax(axis=1)]
    return table


def _nested(model, name: str):
    """The sub-model called ``name`` anywhere inside ``model`` (None if absent)."""
    for layer in getattr(model, "layers", []):
        if layer.name == name:
            return layer
        found = _nested(layer, name)
        if found is not None:
            return found
    return None


def detector_parts(saved: SavedModel) -> tuple:
    """(conv base, head) of a saved detector, for Grad-CAM: the base rebuilt from
    ``model.json`` when only the head was saved, else both taken out of the whole model."""
    card = saved.card
    if card["kind"] == "head":
        return models.build_conv_base(card["image_size"], card["weights"], card["init_seed"]), saved.model
    base, head = _nested(saved.model, "conv_base"), _nested(saved.model, f"detector_head_{card['model']}")
    if base is None or head is None:
        raise ConfigError(f"{saved.run_dir}: the saved model has no conv_base / head parts for Grad-CAM")
    return base, head


def detector_grad_cams(run: str | Path | SavedModel, paths: Sequence[str | Path],
                       display_size: int = 256) -> tuple[list, list, list]:
    """(X-rays at ``display_size`` px, Grad-CAM maps of the predicted class, titles) for
    ``plots.plot_cams``; each map is computed at the model's input size."""
    from cxrlib import explain

    saved = _loaded(run, load_detector)
    scored = predict_detector(saved, paths)
    base, head = detector_parts(saved)
    cams = [explain.detector_grad_cam(base, head, image)
            for image in _pixels(saved, scored["path"].tolist())]
    images = [load_image(p, display_size, 1, "unit")[..., 0] for p in scored["path"]]
    titles = [f"{Path(p).name}\npredicted {c} ({scored.loc[i, f'p_{c}']:.0%})"
              for i, (p, c) in enumerate(zip(scored["path"], scored["predicted"]))]
    return images, cams, titles
