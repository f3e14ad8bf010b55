"""The CNN-LSTM detector experiment: COVID-19 / pneumonia / normal from one X-ray.

Steps, each returning a table a notebook can show:

1. ``Config.check()``: every parameter, before any work.
2. ``dataset``: COVID-19 frontal X-rays from the Cohen collection and pneumonia / normal
   images from the pediatric set, ``n_per_class`` drawn with the seed.
3. ``make_split``: stratified k-fold grouped by patient (or the paper's 85/15 hold-out);
   one patient's images never on both sides.
4. ``extract``: the frozen VGG16 conv base's 7x7x512 map of every image, and of augmented
   views of it, from the on-disk cache (the CPU mode, ``base="vgg16"``). Nothing to extract
   when the network trains end to end (``trainable``; always with ``base="paper"``).
5. ``train_and_predict``: the CNN or CNN-LSTM head on cached maps, or the whole network
   (paper's Table 2 base, or VGG16) on images augmented inside the graph; a predictions
   table.
6. ``evaluate``: the paper's Tables 3/4 (per-class accuracy, specificity, sensitivity, F1).
7. ``shortcut_audit``: the same pipeline on images with the lungs blanked out, and a plain
   classifier telling the two sources apart.

What an end-to-end run will cost is measured before it runs by ``cxrlib.cost``.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Collection, Mapping

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cxrlib import data, features, io, machine, metrics, models, paper, splits, training
from cxrlib.names import CLASS_TITLES, CLASSES
from cxrlib.errors import ConfigError, DataError
from cxrlib.images import blank_center, load_image, scale_pixels
from cxrlib import params

log = logging.getLogger(__name__)

PAPER_COUNTS = dict(paper.DETECTOR_SETUP["images"])
PROTOCOLS = ("kfold", "holdout")
REGIONS = ("full", "border")  # whole image, or lungs blanked (images.blank_center)


@dataclass
class Config:
    """Every knob of one detector run (the notebook's ``parameters`` cell)."""

    model: str = "cnn_lstm"
    base: str = "vgg16"  # "vgg16": frozen Keras VGG16, cached maps; "paper": Table 2, end to end
    fold: int = 0
    n_folds: int = paper.DETECTOR_SETUP["folds"]
    protocol: str = "kfold"
    test_fraction: float = paper.DETECTOR_SETUP["test_fraction"]
    seed: int = 0
    n_per_class: object = field(default_factory=lambda: dict(PAPER_COUNTS))
    weights: str | None = "imagenet"
    trainable: bool = False
    image_size: int = paper.DETECTOR_SETUP["image_size"]
    epochs: int = paper.DETECTOR_SETUP["max_epochs"]
    batch_size: int = 32
    learning_rate: float = paper.DETECTOR_SETUP["learning_rate"]
    lstm_units: int = 64
    dropout: float = 0.0  # the paper mentions no dropout
    augment_copies: int = 2
    early_stopping: int | None = None
    val_fraction: float = 0.15
    init_seed: int = 0
    shortcut_audit: bool = True

    def check(self) -> "Config":
        """Raise ``ConfigError`` for any value we cannot run; return self."""
        models.check_detector(self.model)
        models.check_detector_base(self.base)
        self.weights = models.check_weights(self.weights, "vgg16")
        if self.base == "paper":  # Table 2's network, as published: end to end, random init
            if not self.trainable:
                log.info("base='paper' is Table 2's network as published: trained end to end")
            if self.weights == "imagenet":
                log.warning("base='paper' has no ImageNet weights (Table 2's network is not "
                            "Keras' VGG16): random initialisation (init_seed) instead")
            self.trainable = True
            self.weights = None if self.weights == "imagenet" else self.weights
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout!r} must be in [0, 1)")
        params.check_choice("protocol", self.protocol, PROTOCOLS)
        params.check_count("n_folds", self.n_folds, minimum=2)
        self.test_fraction = params.check_fraction("test_fraction", self.test_fraction)
        self.val_fraction = params.check_fraction("val_fraction", self.val_fraction)
        if self.early_stopping is not None:
            params.check_count("early_stopping", self.early_stopping)
        self.learning_rate = params.check_positive("learning_rate", self.learning_rate)
        n_folds = self.n_folds if self.protocol == "kfold" else 1
        if not isinstance(self.fold, int) or not 0 <= self.fold < n_folds:
            raise ConfigError(f"fold={self.fold!r} is outside 0..{n_folds - 1} "
                              f"({self.protocol} with n_folds={self.n_folds})")
        self.n_per_class = self.class_counts()
        if self.image_size < models.MIN_IMAGE_SIZE:
            raise ConfigError(f"image_size must be at least {models.MIN_IMAGE_SIZE}")
        params.check_count("augment_copies", self.augment_copies, minimum=0)
        for name in ("epochs", "batch_size", "lstm_units"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1")
        return self

    def class_counts(self) -> dict:
        """``n_per_class`` as {class: count or 'all'} (a number applies to every class)."""
        value = self.n_per_class
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            value = {c: value for c in CLASSES}
        if not isinstance(value, dict) or set(value) != set(CLASSES):
            raise ConfigError(f"n_per_class must be a number, 'all', or a dict with keys "
                              f"{list(CLASSES)}; got {self.n_per_class!r}")
        for name, count in value.items():
            if count != "all" and (not isinstance(count, int) or count < 1):
                raise ConfigError(f"n_per_class[{name!r}] must be a positive number or 'all'")
        return dict(value)

    def feature_spec(self, region: str = "full") -> features.FeatureSpec:
        """What the cached path extracts (the frozen VGG16 base only)."""
        return features.FeatureSpec("vgg16", self.image_size, self.weights, pooling=None,
                                    init_seed=self.init_seed, region=region)

    def as_dict(self) -> dict:
        return asdict(self)


def available(data_dir: str | Path) -> pd.DataFrame:
    """Every usable image of the three classes (one row per image)."""
    cohen = data.load_cohen(data_dir)
    covid = cohen[(cohen["finding"] == "COVID-19") & cohen["exists"]]
    pediatric = data.load_pneumonia(data_dir)
    missing = int((~pediatric["exists"]).sum()) + int(
        ((cohen["finding"] == "COVID-19") & ~cohen["exists"]).sum())
    if missing:
        log.warning("left out %d listed image(s) whose file is missing or empty", missing)
    pediatric = pediatric[pediatric["exists"]]
    table = pd.concat([
        pd.DataFrame({"path": covid["path"], "patient_id": "cohen:" + covid["patient_id"],
                      "class": "covid19", "source": "cohen", "content": covid["content"]}),
        pd.DataFrame({"path": pediatric["path"], "patient_id": pediatric["patient_id"],
                      "class": pediatric["class"], "source": "pediatric",
                      "content": pediatric["content"]}),
    ], ignore_index=True)
    return table


def dataset(data_dir: str | Path, config: Config) -> pd.DataFrame:
    """``n_per_class`` images per class, drawn with the seed; one row per image."""
    pool = available(data_dir)
    parts = []
    for name, count in config.class_counts().items():
        images = pool[pool["class"] == name]
        if count != "all" and len(images) < count:
            raise DataError(f"too few {CLASS_TITLES[name]} images: {len(images)} available, "
                            f"n_per_class asks for {count}")
        drawn = images if count == "all" else images.sample(n=count, random_state=config.seed)
        parts.append(data.drop_undecodable(drawn, CLASS_TITLES[name]).sort_values("path"))
    table = pd.concat(parts, ignore_index=True)
    table["label"] = table["class"].map({c: i for i, c in enumerate(CLASSES)})
    return table


def make_split(table: pd.DataFrame, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows) of the chosen fold, grouped by patient, stratified by class."""
    if config.protocol == "holdout":
        train, test = splits.holdout_split(table["label"], table["patient_id"],
                                           test_size=config.test_fraction, seed=config.seed)
    else:
        train, test = splits.kfold_splits(table["label"], table["patient_id"],
                                          n_splits=config.n_folds, seed=config.seed)[config.fold]
    splits.check_no_leak(table["patient_id"].iloc[train], table["patient_id"].iloc[test],
                         table["content"].iloc[train], table["content"].iloc[test])
    return train, test


def config_from(parameters: Mapping[str, Any]) -> Config:
    """A checked ``Config`` from a notebook's parameters (``params.config_from``)."""
    return params.config_from(Config, parameters)


def prepare(parameters: Mapping[str, Any], data_dir: str | Path, cache_dir: str | Path,
            done: Collection[tuple] = (), progress: bool = True) -> tuple:
    """Check one run's parameters and extract (and cache) the maps it needs, and those of
    its shortcut audit, before its notebook starts; returns the key of that work, skipped
    when ``done`` holds it. End-to-end runs (``trainable``) need no features."""
    config = config_from(parameters)
    if config.trainable:  # end to end from images: nothing to cache
        return ("detector", "end to end")
    key = ("detector", config.feature_spec().key(), config.seed, str(config.n_per_class))
    if key not in done:
        table = dataset(data_dir, config)
        extract(table, config, cache_dir, progress=progress)
        if config.shortcut_audit:
            extract(table, config, cache_dir, region="border", progress=progress)
    return key


def extract(table: pd.DataFrame, config: Config, cache_dir: str | Path, region: str = "full",
            progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Conv-base maps of every image, plus ``augment_copies`` augmented views of each.
    Nothing (an empty table and dict) when the network trains end to end on images."""
    if config.trainable:
        return pd.DataFrame(columns=["path", "view", "status"]), {}
    views = tuple(range(config.augment_copies + 1))
    return features.extract_features(table["path"].tolist(), config.feature_spec(region),
                                     cache_dir, views=views, aug_seed=config.seed,
                                     progress=progress)


def _training_arrays(table: pd.DataFrame, rows: np.ndarray, vectors: dict, views: range):
    """Stack the maps of ``rows`` for each view; labels repeated per view."""
    paths = table["path"].iloc[rows].tolist()
    x = np.concatenate([features.stack(vectors, paths, view) for view in views])
    y = np.tile(table["label"].iloc[rows].to_numpy(), len(views))
    return x, y


def network(config: Config, vectors: dict):
    """The untrained network ``train_and_predict`` fits: the head over the cached conv-base
    maps (their shape is its input), or with ``trainable`` the whole network reading the
    images (``end_to_end_model``)."""
    if config.trainable:
        return end_to_end_model(config)
    map_shape = next(iter(vectors.values())).shape
    return models.build_detector_head(config.model, map_shape, len(CLASSES),
                                      config.lstm_units, config.dropout)


def train_and_predict(table: pd.DataFrame, train: np.ndarray, test: np.ndarray, vectors: dict,
                      config: Config, region: str = "full"
                      ) -> tuple[pd.DataFrame, pd.DataFrame, object]:
    """Train the head on the training rows (and their augmented views) or, with
    ``config.trainable``, the whole network on their images (``region`` "border": lungs
    blanked); predict the test rows. Returns (predictions, history, model).

    Without ``early_stopping`` the test fold is only watched for the curves, as the paper
    shows them; with it, a patient-grouped validation split of the training fold decides
    when to stop and the test fold is not looked at.
    """
    fit_rows, val_rows = train, test
    if config.early_stopping:
        inner_train, inner_val = splits.holdout_split(
            table["label"].iloc[train], table["patient_id"].iloc[train],
            test_size=config.val_fraction, seed=config.seed)
        fit_rows, val_rows = train[inner_train], train[inner_val]
    training.set_seed(config.seed + 1000 * config.fold)
    if config.trainable:
        model, history, proba = _train_end_to_end(table, fit_rows, val_rows, test, config,
                                                  region)
    else:
        x_fit, y_fit = _training_arrays(table, fit_rows, vectors, range(config.augment_copies + 1))
        x_val, y_val = _training_arrays(table, val_rows, vectors, range(1))
        x_test = features.stack(vectors, table["path"].iloc[test].tolist())
        model = network(config, vectors)
        history = training.fit(model, x_fit, y_fit, loss="sparse_categorical_crossentropy",
                               epochs=config.epochs, batch_size=config.batch_size,
                               learning_rate=config.learning_rate,
                               validation=(x_val, y_val), early_stopping=config.early_stopping,
                               seed=config.seed + 1000 * config.fold)
        proba = training.predict(model, x_test)
    predictions = table.iloc[test][["path", "patient_id", "source", "class", "label"]].copy()
    for i, name in enumerate(CLASSES):
        predictions[f"p_{name}"] = proba[:, i]
    predictions["predicted"] = [CLASSES[i] for i in proba.argmax(axis=1)]
    predictions["fold"] = config.fold
    predictions["model"] = config.model
    predictions["seed"] = config.seed
    return predictions.reset_index(drop=True), history, model


def load_images(paths, config: Config, region: str = "full") -> np.ndarray:
    """Images of ``paths`` in the base's input scale; ``region="border"`` blanks the lungs
    (``images.blank_center``, as the cached audit does)."""
    if region not in REGIONS:
        raise ConfigError(f"region={region!r}: choose one of {', '.join(REGIONS)}")
    scale = models.detector_input_scale(config.base)
    if region == "full":
        return np.stack([load_image(p, config.image_size, 3, scale) for p in paths])
    return np.stack([scale_pixels(blank_center(load_image(p, config.image_size, 3, "raw")),
                                  scale) for p in paths])


def end_to_end_model(config: Config):
    """The whole trainable network: augmentation (active in training only) -> conv base
    (``config.base``) -> head. Built from ``config.init_seed``."""
    import keras

    detector = models.build_detector(config.model, config.image_size, config.weights,
                                     trainable=True, init_seed=config.init_seed,
                                     lstm_units=config.lstm_units, dropout=config.dropout,
                                     base=config.base)
    augment = models.augmentation_layers(
        config.seed, value_range=models.detector_input_scale(config.base),
        input_shape=detector.input_shape[1:])
    inputs = keras.Input(detector.input_shape[1:], name="image")
    return keras.Model(inputs, detector(augment(inputs)), name=f"{detector.name}_augmented")


def _train_end_to_end(table, fit_rows, val_rows, test_rows, config: Config,
                      region: str = "full"):
    """Conv base + head trained together from images, augmentation inside the model."""
    load = lambda rows: load_images(table["path"].iloc[rows], config, region)  # noqa: E731
    model = end_to_end_model(config)
    history = training.fit(model, load(fit_rows), table["label"].iloc[fit_rows].to_numpy(),
                           loss="sparse_categorical_crossentropy", epochs=config.epochs,
                           batch_size=config.batch_size, learning_rate=config.learning_rate,
                           validation=(load(val_rows), table["label"].iloc[val_rows].to_numpy()),
                           early_stopping=config.early_stopping,
                           seed=config.seed + 1000 * config.fold)
    return model, history, training.predict(model, load(test_rows))


def evaluate(predictions: pd.DataFrame) -> dict:
    """The paper's Tables 3/4: overall accuracy, macro F1, per-class metrics, confusion."""
    proba = predictions[[f"p_{c}" for c in CLASSES]].to_numpy()
    return metrics.multiclass_metrics(predictions["label"].to_numpy(), proba, list(CLASSES))


def per_class_table(evaluation: dict) -> pd.DataFrame:
    """Per-class metrics as a table (rows = classes), the layout of the paper's Table 4.

    The paper repeats the overall accuracy in each row; ``accuracy (one-vs-rest)`` is this
    class against the rest, a different number, and ``accuracy (overall)`` the paper's."""
    table = pd.DataFrame(evaluation["per_class"]).T
    keep = ["accuracy", "specificity", "sensitivity", "precision", "f1", "support"]
    table = table[keep].rename(index=CLASS_TITLES, columns={"accuracy": "accuracy (one-vs-rest)"})
    table.insert(0, "accuracy (overall)", evaluation["accuracy"])
    return table


def class_counts(table: pd.DataFrame, train: np.ndarray, test: np.ndarray) -> dict:
    """Images per class in the training and test rows."""
    count = lambda rows: table["class"].iloc[rows].value_counts().reindex(CLASSES, fill_value=0)  # noqa: E731
    return {"train": {k: int(v) for k, v in count(train).items()},
            "test": {k: int(v) for k, v in count(test).items()}}


def source_classifier(table: pd.DataFrame, seed: int = 0, size: int = 32,
                      n_splits: int = 5) -> dict:
    """How well a plain logistic regression on tiny gray thumbnails (``size`` px) tells Cohen images
    from pediatric ones (out-of-fold, grouped by patient) - no deep learning involved.
    Also reports the same on file-level facts alone (width, height, aspect ratio)."""
    from cxrlib.images import read_sizes

    y = (table["source"] == "cohen").to_numpy().astype(int)
    thumbnails = np.stack([load_image(p, size, 1, "unit").ravel() for p in table["path"]])
    sizes = pd.DataFrame(read_sizes(table["path"]))
    facts = np.column_stack([sizes["width"], sizes["height"], sizes["width"] / sizes["height"]])
    folds = splits.kfold_splits(y, table["patient_id"].to_numpy(), n_splits=n_splits, seed=seed)
    result = {}
    for name, x in (("thumbnail", thumbnails), ("file_size_only", facts.astype(float))):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed))
        predicted = cross_val_predict(model, x, y, cv=folds)
        result[name] = float((predicted == y).mean())
    result["majority_rate"] = float(max(y.mean(), 1 - y.mean()))
    result["thumbnail_size"] = size
    return result


def compare_with_paper(evaluation: dict, model: str) -> pd.DataFrame:
    """Per-class specificity, sensitivity and F1: ours beside the paper's (Table 3 / 4)."""
    from cxrlib import paper

    ours = per_class_table(evaluation)[["specificity", "sensitivity", "f1"]]
    theirs = paper.detector_table(model).rename(index=CLASS_TITLES)
    return ours.join(theirs, rsuffix=" (paper)")[
        ["specificity", "specificity (paper)", "sensitivity", "sensitivity (paper)",
         "f1", "f1 (paper)"]]


def shortcut_audit(table: pd.DataFrame, train: np.ndarray, test: np.ndarray, config: Config,
                   cache_dir: str | Path, full_accuracy: float,
                   progress: bool = True) -> tuple[dict, pd.DataFrame]:
    """Train the same pipeline on lungs-blanked images; fit a plain source classifier.

    Returns accuracies: ``full_image`` (the run's model), ``lungs_blanked`` (same pipeline,
    same fold, images with the lung region set to black; an end-to-end run trains its own
    network on them), ``source_thumbnail`` and
    ``source_file_size`` (logistic regression telling Cohen from pediatric images), and the
    chance levels they should be read against; and the lungs-blanked model's predictions
    of the test images (saved as ``predictions_lungs_blanked.csv``, so the verdict can put a
    patient-resampled interval on them).
    """
    _, vectors = extract(table, config, cache_dir, region="border", progress=progress)
    blanked, history, _ = train_and_predict(table, train, test, vectors, config, region="border")
    sources = source_classifier(table, seed=config.seed)
    test_classes = table["class"].iloc[test]
    return {
        "full_image": full_accuracy,
        "lungs_blanked": float((blanked["predicted"] == blanked["class"]).mean()),
        "chance_three_classes": float(test_classes.value_counts(normalize=True).max()),
        "source_thumbnail": sources["thumbnail"],
        "source_file_size": sources["file_size_only"],
        "source_majority": sources["majority_rate"],
    }, blanked


def run_metrics(config: Config, evaluation: dict, table: pd.DataFrame, train: np.ndarray,
                test: np.ndarray, feature_table: pd.DataFrame, audit: dict | None,
                timings: dict, paths: dict) -> dict:
    """Everything ``metrics.json`` holds for one detector run."""
    return {
        "experiment": "detector",
        "parameters": config.as_dict(),
        "paths": paths,
        "metrics": evaluation,
        "n_per_class": class_counts(table, train, test),
        "n_patients": {"train": int(table["patient_id"].iloc[train].nunique()),
                       "test": int(table["patient_id"].iloc[test].nunique())},
        "shortcut_audit": audit,
        "features": feature_table["status"].value_counts().to_dict(),
        "timings_s": timings,
        "environment": machine.environment(),
        "cohen_collection": data.cohen_version(paths.get("data_dir")),  # snapshot, schema, hash
    }


def paper_accuracy(model: str) -> float:
    """The overall accuracy the paper reports for ``cnn`` or ``cnn_lstm``."""
    from cxrlib import paper

    return paper.DETECTOR[model]["accuracy"]


# --------------------------------------------------------------------------- saved model
MODEL_DIR = "model"
MODEL_FORMAT = 1


def model_card(config: Config) -> dict:
    """``model/model.json``: everything needed to score new images with the saved file.

    ``kind="head"``: the conv base was frozen, only the head is saved and the base is
    rebuilt from ``base``/``weights``/``init_seed`` (the same weights, bit for bit);
    ``kind="whole"``: the base was trained too, the saved model takes images.
    """
    whole = bool(config.trainable) or getattr(config, "base", "vgg16") != "vgg16"
    spec = config.feature_spec()
    return {
        "experiment": "detector", "format": MODEL_FORMAT, "kind": "whole" if whole else "head",
        "model": config.model, "base": getattr(config, "base", "vgg16"),
        "classes": list(CLASSES), "class_titles": CLASS_TITLES,
        "output": "class probabilities, in the order of 'classes'",
        "weights": config.weights, "weights_id": spec.weights_id(),
        "image_size": config.image_size, "scale": models.detector_input_scale(getattr(config, "base", "vgg16")),
        "init_seed": config.init_seed, "feature_spec": asdict(spec),
        "feature_key": spec.key(), "file": "model.keras" if whole else "head.keras",
        "parameters": config.as_dict(),
    }


def save_model(out_dir: str | Path, config: Config, model) -> Path:
    """Write the trained head (or the whole model when the base was trained) and
    ``model.json`` under ``<out_dir>/model/``, atomically, the JSON last."""
    folder = Path(out_dir) / MODEL_DIR
    card = model_card(config)
    training.save_keras(model, folder / card["file"])
    io.write_json(folder / "model.json", card)
    return folder
