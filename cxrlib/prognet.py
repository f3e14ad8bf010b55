"""The ProgNet experiment: patient time series -> cached CNN features -> LSTM head.

Steps, each returning something a notebook can show as a table:

1. ``Config.check()``: every parameter, before any work (clear errors).
2. ``cohort``: one row per patient with >= ``seq_len`` readable frontal X-rays and a label.
3. ``make_splits``: patient-level stratified hold-out (the paper's 34/8) or k-fold.
4. ``extract``: one feature vector per image, from the on-disk cache.
5. ``train_and_predict``: per split, the LSTM head and the baselines (majority class,
   last image -> logistic regression, mean of the sequence -> logistic regression); a
   predictions table with one row per test patient.
6. ``evaluate``: the paper's metrics for the model and each baseline.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import numpy as np
import pandas as pd
from cxrlib import data, features, io, machine, metrics, models, paper, params, splits, training
from cxrlib.sequences import (BASELINES, apply_standardization, baseline_arrays,  # noqa: F401
                              baseline_scores, feature_stats, standardize, to_array)
from cxrlib.errors import ConfigError, DataError

log = logging.getLogger(__name__)

WINDOWS = ("first", "last", "all")
PROTOCOLS = ("holdout", "kfold")
_PAPER = paper.PROGNET_SETUP
PAPER_TEST_FRACTION = _PAPER["test_sequences"] / _PAPER["patients"]  # 8 of 42 patients
#: The paper's "weight decay 1e-4" (Section IV-A), three ways (``Config.weight_decay_reading``):
#: Keras 2's learning-rate decay, an L2 penalty on the head's kernels, or decoupled weight
#: decay (AdamW). docs/deviations.md (P3) gives the measured effect of each.
WEIGHT_DECAY_READINGS = {
    "lr_decay": "Keras 2's Adam(decay=...): learning rate / (1 + decay x step)",
    "l2": "L2 penalty: decay x sum(w**2) of every kernel added to the loss",
    "decoupled": "decoupled weight decay (AdamW): every weight shrinks by decay x itself each step",
}
#: How the CNN's random initialisation is drawn when it has no pretrained weights
#: (``Config.cnn_draw``): one draw (``init_seed``) for every seed, or one per seed.
CNN_DRAWS = ("shared", "per_seed")


@dataclass
class Config:
    """Every knob of one ProgNet run (the notebook's ``parameters`` cell)."""

    backbone: str = "resnet50"
    seed: int = 0
    weights: str | None = "imagenet"
    weights_note: str = ""
    image_size: int = _PAPER["image_size"]
    epochs: int = _PAPER["epochs"]
    batch_size: int = _PAPER["batch_size"]
    learning_rate: float = _PAPER["learning_rate"]
    weight_decay: float = _PAPER["weight_decay"]
    weight_decay_reading: str = "l2"  # WEIGHT_DECAY_READINGS; docs/deviations.md P3 says why
    lstm_units: int = _PAPER["lstm_units"]
    dropout: float = _PAPER["dropout"]
    seq_len: int | None = _PAPER["seq_len"]
    window: str = "first"
    protocol: str = "holdout"
    test_fraction: float = PAPER_TEST_FRACTION
    n_folds: int = 5
    findings: str = "all"
    finetune: bool = False
    init_seed: int = 0
    cnn_draw: str = "shared"  # CNN_DRAWS: random CNN weights drawn once, or once per seed
    threshold: float = 0.5
    standardize: bool = True

    def check(self) -> "Config":
        """Raise ``ConfigError`` for any value we cannot run; return self."""
        self.backbone = models.check_backbone(self.backbone)
        self.weights = models.check_weights(self.weights, self.backbone)
        params.check_choice("window", self.window, WINDOWS)
        params.check_choice("protocol", self.protocol, PROTOCOLS)
        if self.seq_len is not None:
            params.check_count("seq_len", self.seq_len)
        if self.seq_len is None and self.finetune:
            raise ConfigError("finetune=True needs a fixed seq_len")
        if self.seq_len is None and self.window == "all":
            raise ConfigError("window='all' needs a fixed seq_len (None already uses every image)")
        self.test_fraction = params.check_fraction("test_fraction", self.test_fraction)
        for name in ("epochs", "batch_size", "image_size", "lstm_units"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1")
        params.check_count("n_folds", self.n_folds, minimum=2)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout!r} must be in [0, 1)")
        self.learning_rate = params.check_positive("learning_rate", self.learning_rate)
        if self.image_size < models.MIN_IMAGE_SIZE:
            raise ConfigError(f"image_size must be at least {models.MIN_IMAGE_SIZE}")
        value = self.weight_decay
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"weight_decay must be a number >= 0, not {value!r}")
        params.check_choice("weight_decay_reading", self.weight_decay_reading, WEIGHT_DECAY_READINGS)
        params.check_choice("cnn_draw", self.cnn_draw, CNN_DRAWS)
        return self

    def _decay(self, reading: str) -> float:
        return float(self.weight_decay) if self.weight_decay_reading == reading else 0.0

    @property
    def lr_decay(self) -> float:
        """Keras 2's learning-rate decay (the ``lr_decay`` reading), else 0."""
        return self._decay("lr_decay")

    @property
    def l2(self) -> float:
        """The L2 penalty on the head's kernels (the ``l2`` reading), else 0."""
        return self._decay("l2")

    @property
    def decoupled_decay(self) -> float:
        """Decoupled weight decay per step (the ``decoupled`` reading), else 0."""
        return self._decay("decoupled")

    @property
    def cnn_init_seed(self) -> int:
        """The seed of the CNN's random weights: ``init_seed``, plus the run's seed with
        ``cnn_draw="per_seed"`` (then the spread over seeds includes the CNN's draw)."""
        return self.init_seed + (self.seed if self.cnn_draw == "per_seed" else 0)

    def feature_spec(self) -> features.FeatureSpec:
        return features.FeatureSpec(self.backbone, self.image_size, self.weights,
                                    pooling="avg", init_seed=self.cnn_init_seed)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Trained:
    """What ``train_and_predict`` trained, one entry per fold: the head (the whole model
    with ``finetune``), the (mean, std) its features were standardised with (None without
    ``standardize``) and the fitted baselines. ``model`` is the last fold's head."""

    folds: list = field(default_factory=list)
    heads: list = field(default_factory=list)
    standardization: list = field(default_factory=list)
    baselines: list = field(default_factory=list)

    @property
    def model(self):
        return self.heads[-1]


def cohort(data_dir: str | Path, config: Config) -> pd.DataFrame:
    """Patients with >= ``seq_len`` readable frontal X-rays and a survival label."""
    frontal = data.load_cohen(data_dir)
    if config.findings != "all":
        listed = sorted(frontal["finding"].dropna().unique())
        if config.findings not in listed:
            raise DataError(f"findings={config.findings!r}: no frontal X-ray of {data_dir} has "
                            f"that finding; its findings: {', '.join(listed)}, or 'all'")
        frontal = frontal[frontal["finding"] == config.findings]
    labelled = frontal[frontal["survival"].notna() & frontal["exists"]]
    readable = data.drop_undecodable(labelled, "labelled frontal X-ray")
    frontal = frontal[~frontal.index.isin(labelled.index.difference(readable.index))]
    sequences = data.build_sequences(frontal, min_images=config.seq_len or 1)
    if sequences.empty:
        which = "" if config.findings == "all" else f" with finding {config.findings!r}"
        raise DataError(f"{data_dir}: no patient{which} has {config.seq_len or 1}+ readable "
                        f"frontal X-rays and a survival label; {_more_patients(config)}")
    return sequences


def _more_patients(config: Config) -> str:
    """What keeps more patients in the cohort, for an error saying it holds too few."""
    widen = ["a shorter seq_len"] if (config.seq_len or 1) > 1 else []
    widen += ["findings='all'"] if config.findings != "all" else []
    return f"{' or '.join(widen)} keeps more patients" if widen else "the data holds too few patients"


FINDINGS_CHOICES = ("all", "COVID-19")  # the two cohorts stated beside every result


def cohort_summary(data_dir: str | Path, config: Config) -> pd.DataFrame:
    """Patients, deaths and findings of the cohort under each ``findings`` choice (one row
    each), the run's own choice marked: which patients a result is about."""
    rows = []
    for findings in dict.fromkeys((*FINDINGS_CHOICES, config.findings)):
        variant = Config(**{**config.as_dict(), "findings": findings})
        try:
            sequences = cohort(data_dir, variant)
        except DataError:
            sequences = pd.DataFrame(columns=["label", "finding"])
        rows.append({"findings": findings, "used by this run": findings == config.findings,
                     "patients": len(sequences), "deaths": int((sequences["label"] == 0).sum()),
                     "survivors": int((sequences["label"] == 1).sum()),
                     "not COVID-19": int((sequences["finding"] != "COVID-19").sum())})
    return pd.DataFrame(rows)


def make_splits(sequences: pd.DataFrame, config: Config) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(fold, train rows, test rows) of the sequences table; patient-level by construction."""
    labels = sequences["label"].to_numpy()
    if len(np.unique(labels)) < 2:
        outcome = "survived" if labels[0] == 1 else "died"
        raise DataError(f"all {len(labels)} patient(s) of the cohort {outcome} (seq_len="
                        f"{config.seq_len}, findings={config.findings!r}): a split needs both "
                        f"outcomes; {_more_patients(config)}")
    if config.protocol == "holdout":
        train, test = splits.holdout_split(labels, test_size=config.test_fraction,
                                           seed=config.seed)
        folds = [(0, train, test)]
    else:
        folds = [(k, tr, te) for k, (tr, te) in enumerate(
            splits.kfold_splits(labels, n_splits=config.n_folds, seed=config.seed))]
    for _, train, test in folds:
        splits.check_no_leak(sequences["patient_id"].iloc[train],
                             sequences["patient_id"].iloc[test],
                             *((sequences["contents"].iloc[train], sequences["contents"].iloc[test])
                               if "contents" in sequences else ()))
        if len(np.unique(labels[train])) < 2:
            raise DataError("a training set has one class only: too few patients for the split")
    return folds


def split_table(sequences: pd.DataFrame, folds: list) -> pd.DataFrame:
    """Survivors and deaths on each side of each split (one row per fold and side)."""
    labels = sequences["label"]
    return pd.DataFrame([{"fold": k, "side": side, "survived": int((labels.iloc[rows] == 1).sum()),
                          "died": int((labels.iloc[rows] == 0).sum())}
                         for k, train, test in folds for side, rows in (("train", train), ("test", test))])


def extract(sequences: pd.DataFrame, config: Config, cache_dir: str | Path,
            progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Feature vectors of every image of the cohort (cached on disk)."""
    paths = [p for row in sequences["paths"] for p in row]
    return features.extract_features(paths, config.feature_spec(), cache_dir, progress=progress)


def config_from(parameters: Mapping[str, Any]) -> Config:
    """A checked ``Config`` from a notebook's parameters (names that are not Config
    fields, such as ``data_dir`` or ``out_dir``, are left out). Runs recorded with the
    separate ``lr_decay`` and ``l2`` knobs are read as the reading that was on."""
    parameters = dict(parameters)
    if "weight_decay_reading" not in parameters and ("lr_decay" in parameters or "l2" in parameters):
        l2 = parameters.get("l2") or 0.0
        parameters["weight_decay_reading"] = "l2" if l2 else "lr_decay"
        parameters["weight_decay"] = l2 or parameters.get("lr_decay") or 0.0
    return params.config_from(Config, parameters)


def prepare(parameters: Mapping[str, Any], data_dir: str | Path, cache_dir: str | Path,
            done: Collection[tuple] = (), progress: bool = True) -> tuple:
    """Check one run's parameters and extract (and cache) the features it needs, before
    its notebook starts; returns the key of that work, skipped when ``done`` holds it.
    A run that cannot start raises ``ConfigError`` or ``DataError``."""
    config = config_from(parameters)
    key = ("prognet", config.feature_spec().key())
    if key not in done:
        extract(cohort(data_dir, config), config, cache_dir, progress=progress)
    return key


def windows(paths: Sequence[str], seq_len: int | None, window: str) -> list[list[str]]:
    """The sequences of ``seq_len`` images one patient contributes."""
    paths = list(paths)
    if seq_len is None:
        return [paths]
    if window == "first":
        return [paths[:seq_len]]
    if window == "last":
        return [paths[-seq_len:]]
    return [paths[i:i + seq_len] for i in range(len(paths) - seq_len + 1)]


def sequence_rows(sequences: pd.DataFrame, positions: np.ndarray, config: Config) -> pd.DataFrame:
    """One row per (patient, window) for the chosen patients."""
    rows = []
    for position in positions:
        patient = sequences.iloc[position]
        for index, paths in enumerate(windows(patient["paths"], config.seq_len, config.window)):
            rows.append({"patient_id": patient["patient_id"], "label": patient["label"],
                         "window": index, "paths": paths})
    return pd.DataFrame(rows)


def network(config: Config, vectors: dict | None):
    """The untrained network ``train_and_predict`` fits, afresh on each split: the LSTM
    head over the cached feature vectors (their length is its input width), or with
    ``finetune`` the backbone and the head as one model reading the images."""
    if config.finetune:
        return models.build_prognet_end_to_end(config.backbone, config.seq_len, config.image_size,
                                               weights=config.weights, finetune=True,
                                               init_seed=config.cnn_init_seed,
                                               lstm_units=config.lstm_units,
                                               dropout=config.dropout, l2=config.l2)
    feature_dim = int(next(iter(vectors.values())).shape[-1])
    return models.build_prognet_head(feature_dim, seq_len=config.seq_len,
                                     lstm_units=config.lstm_units, dropout=config.dropout,
                                     l2=config.l2)


def train_and_predict(sequences: pd.DataFrame, folds: list, vectors: dict,
                      config: Config) -> tuple[pd.DataFrame, pd.DataFrame, Trained]:
    """Train the head on each split; return (predictions, history, what was trained).

    Predictions: one row per test patient and fold with ``survival_score`` (P(survival))
    and each baseline's score. With ``window='all'`` a patient's score is the mean over
    its windows. The test set is watched during training only to draw the paper's test
    curves (``history.csv``): it chooses nothing.
    """
    predictions, histories, trained = [], [], Trained()
    for fold, train_pos, test_pos in folds:
        train_rows = sequence_rows(sequences, train_pos, config)
        test_rows = sequence_rows(sequences, test_pos, config)
        train_x, test_x = _padded_arrays(train_rows, test_rows, vectors, config)
        train_y = train_rows["label"].to_numpy("float32")
        test_y = test_rows["label"].to_numpy("float32")
        train_x, test_x, stats = _standardized(train_x, test_x, train_rows, test_rows, config)
        model, history, score = _train_head(fold, train_rows, test_rows, train_x, train_y,
                                            test_x, test_y, vectors, config)
        baselines, fitted = baseline_scores(train_x, train_y, test_x, _lengths(test_rows),
                                             _lengths(train_rows), config.seed)
        for name, value in (("folds", fold), ("heads", model), ("standardization", stats),
                            ("baselines", fitted)):
            getattr(trained, name).append(value)
        per_patient = _patient_scores(test_rows, score, baselines, fold)
        per_patient["n_train"] = len(train_pos)
        per_patient["n_test"] = len(test_pos)
        predictions.append(per_patient)
        histories.append(history.assign(fold=fold))
    table = _prediction_table(predictions, sequences, config)
    return table, pd.concat(histories, ignore_index=True), trained


def _lengths(rows: pd.DataFrame) -> np.ndarray:
    """How many images each row's sequence holds (before padding)."""
    return rows["paths"].map(len).to_numpy()


def _padded_arrays(train_rows: pd.DataFrame, test_rows: pd.DataFrame, vectors: dict,
                   config: Config) -> tuple[np.ndarray, np.ndarray]:
    """Both splits' feature sequences as arrays of one length: ``config.seq_len``, or with
    ``seq_len=None`` the longest sequence of the two."""
    steps = config.seq_len or max(len(p) for p in pd.concat([train_rows, test_rows])["paths"])
    return to_array(train_rows, vectors, steps), to_array(test_rows, vectors, steps)


def _standardized(train_x: np.ndarray, test_x: np.ndarray, train_rows: pd.DataFrame,
                  test_rows: pd.DataFrame, config: Config) -> tuple:
    """(train_x, test_x, stats): with ``config.standardize`` both splits scaled by the
    training split's (mean, std), which come third; otherwise unchanged, and None."""
    if not config.standardize:
        return train_x, test_x, None
    stats = feature_stats(train_x, _lengths(train_rows))
    train_x = apply_standardization(train_x, _lengths(train_rows), *stats)
    test_x = apply_standardization(test_x, _lengths(test_rows), *stats)
    return train_x, test_x, stats


def _train_head(fold: int, train_rows: pd.DataFrame, test_rows: pd.DataFrame,
                train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                test_y: np.ndarray, vectors: dict, config: Config) -> tuple:
    """Seed, train and score one split's network: (model, history, P(survival) of each
    test row). The seed is ``config.seed + 1000 * fold``."""
    seed = config.seed + 1000 * fold
    training.set_seed(seed)
    if config.finetune:
        return _finetune(train_rows, test_rows, train_y, test_y, config, seed=seed)
    model = network(config, vectors)
    history = training.fit(model, train_x, train_y, loss="binary_crossentropy",
                           epochs=config.epochs, batch_size=config.batch_size,
                           learning_rate=config.learning_rate,
                           lr_decay=config.lr_decay,
                           decoupled_decay=config.decoupled_decay,
                           validation=(test_x, test_y),
                           seed=seed)
    return model, history, training.predict(model, test_x)[:, 0]


def _patient_scores(test_rows: pd.DataFrame, score: np.ndarray, baselines: dict,
                    fold: int) -> pd.DataFrame:
    """One row per test patient of a split: label, number of windows, fold, and the
    model's and each baseline's score averaged over the patient's windows."""
    scored = test_rows.assign(survival_score=score,
                              **{f"score_{k}": v for k, v in baselines.items()})
    score_columns = ["survival_score"] + [f"score_{k}" for k in BASELINES]
    per_patient = scored.groupby("patient_id", sort=False).agg(
        label=("label", "first"), n_windows=("window", "size"),
        **{c: (c, "mean") for c in score_columns}).reset_index()
    per_patient.insert(2, "fold", fold)
    return per_patient


def _prediction_table(predictions: list, sequences: pd.DataFrame,
                      config: Config) -> pd.DataFrame:
    """Every split's patient rows as one table, with the thresholded prediction, the run
    (seed, backbone) and each patient's ``n_images`` and ``survival``."""
    table = pd.concat(predictions, ignore_index=True)
    table["predicted"] = (table["survival_score"] >= config.threshold).astype(int)
    table["split"] = "test"
    table["seed"] = config.seed
    table["backbone"] = config.backbone
    info = sequences.set_index("patient_id")[["n_images", "survival"]]
    return table.join(info, on="patient_id")


def _finetune(train_rows, test_rows, train_y, test_y, config: Config, seed: int):
    """End-to-end training through the backbone (TimeDistributed): for GPU users."""
    from cxrlib.images import load_image

    scale = models.input_scale(config.backbone)
    load = lambda rows: np.stack([np.stack([load_image(p, config.image_size, 3, scale)  # noqa: E731
                                            for p in paths]) for paths in rows["paths"]])
    model = network(config, None)
    train_x, test_x = load(train_rows), load(test_rows)
    history = training.fit(model, train_x, train_y, loss="binary_crossentropy",
                           epochs=config.epochs, batch_size=config.batch_size,
                           learning_rate=config.learning_rate, lr_decay=config.lr_decay,
                           decoupled_decay=config.decoupled_decay,
                           validation=(test_x, test_y), seed=seed)
    return model, history, training.predict(model, test_x)[:, 0]


def evaluate(predictions: pd.DataFrame, threshold: float = 0.5) -> dict:
    """The paper's metrics (positive = survival) for the model and every baseline."""
    y = predictions["label"].to_numpy()
    result = {"model": metrics.binary_metrics(y, predictions["survival_score"], threshold)}
    for name in BASELINES:
        result[name] = metrics.binary_metrics(y, predictions[f"score_{name}"], threshold)
    return result


def metrics_table(evaluation: dict) -> pd.DataFrame:
    """Model and baselines side by side (rows = metrics)."""
    keep = ["accuracy", "precision", "recall", "f1", "specificity", "balanced_accuracy",
            "roc_auc", "tp_rate", "fn_rate", "fp_rate", "tn_rate", "tp", "fn", "fp", "tn"]
    return pd.DataFrame({name: {k: values.get(k) for k in keep}
                         for name, values in evaluation.items()})


RATE_NAMES = {"tp_rate": "survivors found (tp_rate)", "fn_rate": "survivors missed (fn_rate)",
              "fp_rate": "deaths missed (fp_rate)", "tn_rate": "deaths found (tn_rate)",
              "specificity": "specificity (deaths found)"}


def compare_with_paper(evaluation: dict, backbone: str) -> pd.DataFrame:
    """Our model, the baselines and the paper's value, one row per metric.

    The paper's value stands only beside its Table II scores (accuracy, precision, recall,
    F1); its Table I "rates" are shares of each predicted class, not these rates (see
    ``paper.PROGNET_TABLE_I_NOTE``). Rate rows are named by the class they are about."""
    table = metrics_table(evaluation).drop(index=["tp", "fn", "fp", "tn"])
    reported = paper.prognet_row(backbone)
    table["paper"] = [reported[m] if m in paper.PROGNET_TABLE_II else None for m in table.index]
    return table.rename(index=RATE_NAMES)


def run_metrics(config: Config, evaluation: dict, predictions: pd.DataFrame,
                sequences: pd.DataFrame, feature_table: pd.DataFrame, timings: dict,
                paths: dict) -> dict:
    """Everything ``metrics.json`` holds for one run."""
    return {
        "experiment": "prognet",
        "parameters": config.as_dict(),
        "pretrained_weights": models.pretrained_weights(config.weights),
        "paths": paths,
        "metrics": evaluation["model"],
        "baselines": {k: v for k, v in evaluation.items() if k != "model"},
        "n_patients": len(sequences),
        "n_train": int(predictions["n_train"].iloc[0]) if config.protocol == "holdout" else None,
        "n_test": int(predictions["patient_id"].nunique()),
        "n_deaths_test": int((predictions["label"] == 0).sum()),
        "features": feature_table["status"].value_counts().to_dict(),
        "timings_s": timings,
        "environment": machine.environment(),
        "cohen_collection": data.cohen_version(paths.get("data_dir")),  # snapshot, schema, hash
    }


# --------------------------------------------------------------------------- saved model
MODEL_DIR = "model"
MODEL_FORMAT = 1


def model_card(config: Config, trained: Trained) -> dict:
    """``model/model.json``: everything needed to score new images with the saved files."""
    spec = config.feature_spec()
    return {
        "experiment": "prognet", "format": MODEL_FORMAT,
        "kind": "whole" if config.finetune else "head",
        "output": "survival_score = P(survival)", "labels": {"1": "survived", "0": "died"},
        "backbone": config.backbone, "weights": config.weights, "weights_id": spec.weights_id(),
        "image_size": config.image_size, "scale": models.input_scale(config.backbone),
        "init_seed": config.cnn_init_seed, "feature_spec": asdict(spec), "feature_key": spec.key(),
        "feature_dim": models.feature_dim(config.backbone), "seq_len": config.seq_len,
        "window": config.window, "standardize": config.standardize,
        "threshold": config.threshold, "baselines": list(BASELINES),
        "folds": [{"fold": int(fold), "model": f"fold-{fold}/{'model' if config.finetune else 'head'}.keras",
                   "standardization": f"fold-{fold}/standardization.npz" if stats else None,
                   "baselines": f"fold-{fold}/baselines.npz"}
                  for fold, stats in zip(trained.folds, trained.standardization)],
        "parameters": config.as_dict(),
    }


def save_model(out_dir: str | Path, config: Config, trained: Trained) -> Path:
    """Write what the run trained under ``<out_dir>/model/`` (each file atomically,
    ``model.json`` last): per fold the head (``.keras``), the standardisation and the
    baselines. Returns the folder."""
    folder = Path(out_dir) / MODEL_DIR
    card = model_card(config, trained)
    for entry, head, stats, fitted in zip(card["folds"], trained.heads, trained.standardization,
                                          trained.baselines):
        training.save_keras(head, folder / entry["model"])
        if stats is not None:
            io.save_arrays(folder / entry["standardization"], mean=stats[0], std=stats[1])
        io.save_arrays(folder / entry["baselines"], **baseline_arrays(fitted))
    io.write_json(folder / "model.json", card)
    return folder
