"""Gather finished runs into tidy tables: the papers' comparison tables, ours beside theirs.

Reads ``results/<profile>/prognet/<backbone>/seed-<k>/`` and
``results/<profile>/detector/<model>/fold-<k>/`` (``metrics.json``, ``predictions.csv``,
``history.csv``); never trains anything. Confidence intervals are 95 % percentile bootstrap
intervals over the pooled test predictions that resample *patients*
(``metrics.cluster_bootstrap_ci``): a patient who is in the test set of several seeds, or
who has several images, counts once per draw, so pooling seeds adds no false precision.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from cxrlib import models, paper
from cxrlib.names import CLASS_TITLES, CLASSES, RUN_PREFIXES
from cxrlib.errors import DataError
from cxrlib.io import write_csv, write_text
from cxrlib.metrics import binary_metrics, binary_scorer, cluster_bootstrap_ci, multiclass_metrics

PROGNET_SCORES = ("accuracy", "precision", "recall", "f1", "specificity", "balanced_accuracy",
                  "roc_auc")
RATES = ("tp_rate", "fn_rate", "fp_rate", "tn_rate")
BASELINE_TITLES = {"model": "model", "majority": "baseline: majority class",
                   "last_image": "baseline: last image + logistic regression",
                   "mean_features": "baseline: mean of series + logistic regression"}
BASE_TITLES = {"vgg16": "frozen Keras VGG16 base, cached features",
               "paper": "Table 2 base trained end to end"}
"""What produced a detector table's numbers, by ``base`` (``models.DETECTOR_BASES``)."""


def run_folders(results_dir: str | Path, experiment: str) -> list[Path]:
    """Finished run folders of one experiment: ``<name>/seed-<k>`` (``fold-<k>``) with a
    ``metrics.json`` (``names.RUN_PREFIXES``). A run kept aside as ``seed-<k>.failed``
    may hold one too (its notebook failed after writing it): it is not read."""
    root, prefix = Path(results_dir) / experiment, RUN_PREFIXES[experiment]
    found = root.glob(f"*/{prefix}*/metrics.json") if root.is_dir() else []
    return sorted(p.parent for p in found if _is_number(p.parent.name.removeprefix(prefix)))


def _is_number(text: str) -> bool:
    return text.removeprefix("-").isdecimal()


def run_inventory(results_dir: str | Path) -> pd.DataFrame:
    """Which finished runs a results folder holds: one row per backbone or detector model,
    with its seeds or folds (what the tables below are built from)."""
    rows = []
    for experiment, prefix in RUN_PREFIXES.items():
        groups: dict[str, list[str]] = {}
        for folder in run_folders(results_dir, experiment):
            groups.setdefault(folder.parent.name, []).append(folder.name.removeprefix(prefix))
        rows += [{"experiment": experiment, "backbone or model": name, "runs": len(found),
                  prefix.rstrip("-") + "s": ", ".join(sorted(found, key=int))}
                 for name, found in groups.items()]
    if not rows:
        raise DataError(f"{results_dir}: no finished runs; make some first, e.g. "
                        f"cxr batch --profile quick --data-dir data/sample --out {results_dir}")
    return pd.DataFrame(rows).fillna("")


def _read(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def weights_label(parameters: dict) -> str:
    """How a run's CNN was initialised, for the tables' ``weights`` column: "imagenet",
    "none" (random, seeded), a weights file's name, plus "(ImageNet n/a)" when the profile
    asked for ImageNet weights that do not exist for that backbone."""
    if parameters.get("base") == "paper":
        return "none (trained end to end)"
    weights = parameters.get("weights")
    label = "none" if weights is None else Path(str(weights)).name if weights != "imagenet" else "imagenet"
    return f"{label} (ImageNet n/a)" if parameters.get("weights_note") else label


def pretrained(payload: dict) -> str | None:
    """A run's pretrained weights ("imagenet", "file <name>") or None (random init), from
    ``metrics.json`` (runs written before it recorded them: from their ``weights``)."""
    if "pretrained_weights" in payload:
        return payload["pretrained_weights"]
    parameters = payload["parameters"]
    return None if parameters.get("base") == "paper" else models.pretrained_weights(parameters.get("weights"))


def prognet_runs(results_dir: str | Path) -> pd.DataFrame:
    """One row per (run, scorer): backbone, seed, scorer (model or a baseline), metrics."""
    rows = []
    for folder in run_folders(results_dir, "prognet"):
        payload = _read(folder)
        parameters = payload["parameters"]
        scorers = {"model": payload["metrics"], **payload.get("baselines", {})}
        for scorer, values in scorers.items():
            rows.append({"backbone": parameters["backbone"], "seed": parameters["seed"],
                         "weights": weights_label(parameters),
                         "pretrained": pretrained(payload) or "none",
                         "findings": parameters.get("findings", "all"),
                         "cohort_patients": payload.get("n_patients"),
                         "scorer": scorer, "folder": str(folder),
                         **{k: values.get(k) for k in PROGNET_SCORES + RATES + ("npv", "tp", "fn", "fp", "tn", "n")}})
    return pd.DataFrame(rows)


#: Columns read as text whatever they look like: the collection has patient ids such as
#: "311a" beside "311", which a number column would merge or mangle.
ID_COLUMNS = {"patient_id": str}


def read_tables(results_dir: str | Path, experiment: str, name: str) -> pd.DataFrame:
    """``<name>.csv`` of every finished run, stacked, with the run folder as a column
    (patient ids as text, ``ID_COLUMNS``)."""
    parts = [pd.read_csv(folder / f"{name}.csv", dtype=ID_COLUMNS).assign(folder=str(folder))
             for folder in run_folders(results_dir, experiment) if (folder / f"{name}.csv").exists()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _ci(metric: Callable, *arrays: np.ndarray, groups: np.ndarray, seed: int = 0) -> str:
    """A 95 % interval resampling patients (``groups``), as text."""
    low, high = cluster_bootstrap_ci(metric, *arrays, groups=groups, n_resamples=1000, seed=seed)
    return "n/a" if np.isnan(low) else f"[{low:.3f}, {high:.3f}]"


#: Our rates renamed by the class they are about (positive = survival in our code).
CLASS_NAMED = {"recall": "recall (survivors found)", "specificity": "specificity (deaths found)",
               "specificity 95% CI": "specificity (deaths found) 95% CI"}


def prognet_table_ii(runs: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Table II: mean +/- std over seeds, a pooled-prediction 95 % bootstrap CI and the
    paper's value, per backbone; the baselines in extra rows."""
    rows = []
    score_column = {"model": "survival_score", "majority": "score_majority",
                    "last_image": "score_last_image", "mean_features": "score_mean_features"}
    for (backbone, scorer), group in runs.groupby(["backbone", "scorer"], sort=False):
        pooled = predictions[predictions["backbone"] == backbone]
        row = {"backbone": backbone, "weights": ", ".join(sorted(group["weights"].unique())),
               "findings": ", ".join(sorted(group["findings"].astype(str).unique())),
               "cohort patients": ", ".join(sorted(group["cohort_patients"].astype(str).unique())),
               "scorer": BASELINE_TITLES.get(scorer, scorer), "runs": len(group)}
        for name in ("accuracy", "precision", "recall", "f1", "specificity", "roc_auc"):
            values = group[name].astype(float)
            row[name] = f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0:.3f}"
            if name in ("accuracy", "f1", "specificity"):
                row[f"{name} 95% CI"] = _ci(binary_scorer(name), pooled["label"].to_numpy(),
                                            pooled[score_column[scorer]].to_numpy(),
                                            groups=pooled["patient_id"].to_numpy())
        if scorer == "model":
            reported = paper.PROGNET[backbone]
            for name in ("accuracy", "precision", "recall", "f1"):
                row[f"{name} (paper)"] = f"{reported[name][0]:.3f} ± {reported[name][1]:.2f}"
        rows.append(row)
    order = {b: i for i, b in enumerate(paper.PROGNET)}
    table = pd.DataFrame(rows).rename(columns=CLASS_NAMED)
    return table.sort_values(["backbone", "scorer"], key=lambda c: c.map(order) if c.name == "backbone"
                             else c.map(lambda s: (s != "model", s))).reset_index(drop=True)


#: Table I's quantities, each named by the class it is about: (key, name, the paper's
#: column beside it under each reading of Table I (``paper.TABLE_I_READINGS``) and each
#: positive class, as {(reading, positive): column}).
TABLE_I_RATES = (
    ("tp_rate", "survivors found: TP/(TP+FN)",
     {("swapped_headers", "survival"): "tp_rate", ("swapped_headers", "death"): "tn_rate"}),
    ("tn_rate", "deaths found: TN/(TN+FP)",
     {("swapped_headers", "survival"): "tn_rate", ("swapped_headers", "death"): "tp_rate"}),
    ("precision", "predicted survivors who survived: TP/(TP+FP)",
     {("predicted_shares", "survival"): "tp_rate", ("predicted_shares", "death"): "tn_rate"}),
    ("npv", "predicted deaths who died: TN/(TN+FN)",
     {("predicted_shares", "survival"): "tn_rate", ("predicted_shares", "death"): "tp_rate"}),
)
TABLE_I_COLUMNS = {(reading, positive): f"paper, {spec['title']}, positive = {positive}"
                   for reading, spec in paper.TABLE_I_READINGS.items()
                   for positive in ("survival", "death")}


def prognet_table_i(runs: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Table I, one row per backbone and rate (positive = 1 = survival in our code).

    Each rate is named by the class it is about; ours as the mean over seeds and from the
    pooled test patients with a patient-resampled 95 % CI. The paper's Table I has two
    readings (``paper.TABLE_I_READINGS``): shares of each *predicted* class (its numbers
    stand beside our precision and NPV) or swapped FN/FP headers (beside our sensitivity
    and specificity); each under both choices of its positive class."""
    rows = []
    for backbone, group in runs[runs["scorer"] == "model"].groupby("backbone", sort=False):
        pooled = predictions[predictions["backbone"] == backbone]
        y, s = pooled["label"].to_numpy(), pooled["survival_score"].to_numpy()
        totals, reported = binary_metrics(y, s), paper.PROGNET[backbone]
        for key, name, beside in TABLE_I_RATES:
            value = totals[key]
            rows.append({
                "backbone": backbone, "weights": ", ".join(sorted(group["weights"].unique())),
                "rate": name, "runs": len(group), "test patients (pooled)": len(pooled),
                "mean over seeds": round(float(group[key].astype(float).mean()), 3),
                "pooled": round(value, 3) if value == value else None,
                "95% CI": _ci(binary_scorer(key), y, s, groups=pooled["patient_id"].to_numpy()),
                **{title: reported[beside[case]] if case in beside else None
                   for case, title in TABLE_I_COLUMNS.items()},
            })
    return pd.DataFrame(rows)


def detector_runs(results_dir: str | Path) -> pd.DataFrame:
    """One row per (detector run, class) with the per-class metrics, plus overall ones."""
    rows = []
    for folder in run_folders(results_dir, "detector"):
        payload = _read(folder)
        parameters, values = payload["parameters"], payload["metrics"]
        for name, per_class in values["per_class"].items():
            rows.append({"model": parameters["model"], "fold": parameters["fold"],
                         "base": parameters.get("base", "vgg16"),
                         "weights": weights_label(parameters),
                         "class": name, "accuracy": values["accuracy"],
                         "macro_f1": values["macro_f1"], "folder": str(folder),
                         **{k: per_class.get(k) for k in ("specificity", "sensitivity", "precision", "f1",
                                                          "support")}})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the papers' Tables 3 and 4
PUBLISHED_ENTRIES = ("specificity", "sensitivity", "f1")
_OFF_DIAGONAL = [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]


def _printed(value: np.ndarray, percent: int) -> np.ndarray:
    """Whether a value prints as ``percent`` (rounded or cut to a whole percent: the
    papers' tables do both)."""
    with np.errstate(invalid="ignore"):
        return (np.round(100 * value) == percent) | (np.floor(100 * value + 1e-9) == percent)


def _matrices(sizes: tuple[int, int, int], max_errors: int) -> np.ndarray:
    """Every 3x3 confusion matrix (rows = true class) with these row sums and at most
    ``max_errors`` off-diagonal images."""
    import itertools

    off = [np.bincount(c, minlength=6) for e in range(max_errors + 1)
           for c in itertools.combinations_with_replacement(range(6), e)]
    off = np.array(off)
    found = np.zeros((len(off), 3, 3), dtype=int)
    for k, (i, j) in enumerate(_OFF_DIAGONAL):
        found[:, i, j] = off[:, k]
    for i in range(3):
        found[:, i, i] = sizes[i] - found[:, i].sum(axis=1)
    return found[(found >= 0).all(axis=(1, 2))]


def _entry_values(found: np.ndarray, first: str) -> dict[str, np.ndarray]:
    """Per matrix: each published entry's value ((matrices, 3) arrays per metric, and the
    accuracy and error count), ``first`` being what the "specificity" column is read as."""
    n = found.sum(axis=(1, 2))[:, None]
    hits = found[:, [0, 1, 2], [0, 1, 2]]
    called, true = found.sum(axis=1), found.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = {"specificity": hits / called if first == "precision"
                  else (n - true - called + hits) / (n - true),
                  "sensitivity": hits / true, "f1": 2 * hits / (called + true)}
    values["accuracy"] = hits.sum(axis=1) / n[:, 0]
    values["misclassified"] = n[:, 0] - hits.sum(axis=1)
    return values


def _matches(values: dict, model: str) -> np.ndarray:
    """(matrices, entries) booleans: which published entries each matrix reproduces."""
    reported = paper.DETECTOR[model]
    columns = [_printed(values[metric][:, c], round(100 * reported[metric][name]))
               for metric in PUBLISHED_ENTRIES for c, name in enumerate(CLASSES)]
    columns.append(_printed(values["accuracy"], round(100 * reported["accuracy"])))
    columns.append(values["misclassified"] == reported["misclassified"])
    return np.stack(columns, axis=1)


def published_confusions(model: str, first: str = "precision",
                         max_errors: int = 8) -> tuple[int, list[np.ndarray]]:
    """The confusion matrices of the paper's test set (``paper.DETECTOR_SETUP``: 64
    images, 22 of them COVID-19, the other 42 split in every way between pneumonia and
    normal) that reproduce the most entries of its Table 3 (``cnn``) or 4 (``cnn_lstm``):
    (how many of the 11 entries they reproduce, the matrices). ``first`` is what the
    column printed "specificity" is read as: "precision" or "specificity"."""
    setup = paper.DETECTOR_SETUP
    covid, others = setup["test_covid19"], setup["test_images"] - setup["test_covid19"]
    best, chosen = -1, []
    for pneumonia in range(1, others):
        found = _matrices((covid, pneumonia, others - pneumonia), max_errors)
        score = _matches(_entry_values(found, first), model).sum(axis=1)
        if score.max() > best:
            best, chosen = int(score.max()), []
        if score.max() == best:
            chosen += list(found[score == best])
    return best, chosen


def published_entry_names() -> list[tuple[str, str | None]]:
    """The entries of the detector paper's Tables 3 and 4: (metric, class) for each
    per-class column, then the overall accuracy and the misclassified count."""
    return [(m, c) for m in PUBLISHED_ENTRIES for c in CLASSES] + [("accuracy", None),
                                                                   ("misclassified", None)]


def published_families(model: str, first: str = "precision") -> list[dict]:
    """The best matrices of ``published_confusions`` grouped by the entries they leave
    out (matrices that differ only in how the 42 others split between pneumonia and
    normal fall together): per family, the entries it cannot reproduce (misprints if it
    is the true matrix) and its matrices, the most even split first."""
    best, found = published_confusions(model, first)
    matched = _matches(_entry_values(np.array(found), first), model)
    families: dict[tuple, list] = {}
    for matrix, row in zip(found, matched):
        left_out = tuple(f"{metric}:{name or 'all'}"
                         for (metric, name), ok in zip(published_entry_names(), row) if not ok)
        families.setdefault(left_out, []).append(matrix)
    return [{"reproduces": best, "left out": list(left_out),
             "matrices": sorted(ms, key=lambda m: abs(int(m[1].sum()) - int(m[2].sum())))}
            for left_out, ms in families.items()]


def published_entries(model: str, first: str = "precision",
                      families: list[dict] | None = None) -> pd.DataFrame:
    """Each entry of the paper's Table 3 (``cnn``) or 4 (``cnn_lstm``) as printed, beside
    what the first matrix of each family (``published_families``) gives it; ``misprint
    if matrix k`` marks the entries that matrix cannot reproduce (no such mark: one matrix
    reproduces the whole table). ``families``: ``published_families(model, first)`` if
    already computed."""
    families = published_families(model, first) if families is None else families
    reported, rows = paper.DETECTOR[model], []
    for metric, name in published_entry_names():
        title = (f"{first} (printed 'specificity')" if metric == "specificity" else metric)
        row = {"entry": title, "class": CLASS_TITLES[name] if name else "all",
               "printed": reported[metric][name] if name else reported[metric]}
        for k, family in enumerate(families, start=1):
            values = _entry_values(family["matrices"][0][None], first)[metric]
            value = values[0, CLASSES.index(name)] if name else values[0]
            row[f"matrix {k}"] = int(value) if metric == "misclassified" else round(float(value), 3)
            row[f"misprint if matrix {k}"] = f"{metric}:{name or 'all'}" in family["left out"]
        rows.append(row)
    return pd.DataFrame(rows)


def confusion_frame(matrix: np.ndarray) -> pd.DataFrame:
    """A confusion matrix with its classes named (rows = true, columns = predicted)."""
    titles = [CLASS_TITLES[c] for c in CLASSES]
    return pd.DataFrame(np.asarray(matrix), index=pd.Index(titles, name="true"),
                        columns=pd.Index(titles, name="predicted"))


#: Our metric beside each column of the paper's Tables 3 and 4: the column printed
#: "specificity" is precision (``published_confusions``: read as precision, one matrix
#: reproduces the whole of Table 3; read as specificity, none does).
PAPER_COLUMNS = {"precision": "specificity", "sensitivity": "sensitivity", "f1": "f1"}


def detector_per_class(runs: pd.DataFrame) -> pd.DataFrame:
    """The paper's Tables 3/4: per model and class, mean +/- std over folds, paper beside
    (our precision beside its column printed "specificity", ``PAPER_COLUMNS``); our true
    specificity is shown too, with nothing beside it."""
    rows = []
    for (model, name), group in runs.groupby(["model", "class"], sort=False):
        row = {"model": model, "base": ", ".join(sorted(group["base"].unique())),
               "weights": ", ".join(sorted(group["weights"].unique())),
               "class": CLASS_TITLES[name], "folds": len(group)}
        for metric in ("precision", "sensitivity", "f1", "specificity"):
            values = group[metric].astype(float)
            row[metric] = f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0:.3f}"
            if metric in PAPER_COLUMNS:
                printed = PAPER_COLUMNS[metric]
                title = f"{metric} (paper)" if printed == metric else f"{metric} (paper's '{printed}')"
                row[title] = paper.DETECTOR[model][printed][name]
        row["note on the paper's row"] = paper.DETECTOR_NOTES[model] if name == "covid19" else ""
        rows.append(row)
    return pd.DataFrame(rows)


def detector_overall(runs: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Overall accuracy per model: mean +/- std over folds, pooled 95 % CI, the paper's."""
    rows = []
    for model, group in runs.drop_duplicates(["model", "fold"]).groupby("model", sort=False):
        pooled = predictions[predictions["model"] == model]
        y = pooled["label"].to_numpy()
        proba = pooled[[f"p_{c}" for c in CLASSES]].to_numpy()
        accuracy = lambda t, p: float((p.argmax(axis=1) == t).mean())  # noqa: E731
        rows.append({"model": model, "base": ", ".join(sorted(group["base"].unique())),
                     "weights": ", ".join(sorted(group["weights"].unique())),
                     "folds": len(group),
                     "accuracy": f"{group['accuracy'].mean():.3f} ± {group['accuracy'].std(ddof=1) if len(group) > 1 else 0:.3f}",
                     "accuracy 95% CI (pooled)": _ci(accuracy, y, proba,
                                                     groups=pooled["patient_id"].to_numpy()),
                     "misclassified (pooled)": int((proba.argmax(axis=1) != y).sum()),
                     "test images (pooled)": len(pooled),
                     "accuracy (paper)": paper.DETECTOR[model]["accuracy"]})
    return pd.DataFrame(rows)


def base_caption(bases) -> str:
    """Which base produced a detector table, in words (``BASE_TITLES``)."""
    names = sorted({b.strip() for text in bases for b in str(text).split(",")})
    return "; ".join(f"{BASE_TITLES.get(n, n)} (`base={n}`)" for n in names)


def detector_confusion(predictions: pd.DataFrame, model: str) -> list[list[int]]:
    """The confusion matrix summed over folds (rows = true class)."""
    pooled = predictions[predictions["model"] == model]
    proba = pooled[[f"p_{c}" for c in CLASSES]].to_numpy()
    return multiclass_metrics(pooled["label"].to_numpy(), proba, list(CLASSES))["confusion_matrix"]


def shortcut_table(results_dir: str | Path) -> pd.DataFrame:
    """The shortcut audit of every detector run, mean over folds per model."""
    rows = []
    for folder in run_folders(results_dir, "detector"):
        payload = _read(folder)
        if payload.get("shortcut_audit"):
            rows.append({"model": payload["parameters"]["model"], **payload["shortcut_audit"]})
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).groupby("model").mean().round(3)


def literature_table(overall: pd.DataFrame, weights_note: str) -> pd.DataFrame:
    """The detector paper's Table 5 with our models' pooled accuracy added."""
    table = paper.literature_table()
    ours = [{"study": f"this reproduction ({BASE_TITLES.get(row.base, row.base)}; "
                      f"{weights_note})", "model": row.model,
             "accuracy": float(row.accuracy.split(" ")[0])} for row in overall.itertuples()]
    return pd.concat([table, pd.DataFrame(ours)], ignore_index=True)


def roc_curves(predictions: pd.DataFrame, by: str, score: str, positive_label: int = 1) -> pd.DataFrame:
    """ROC points of the pooled predictions, one curve per value of ``by``."""
    parts = []
    for value, group in predictions.groupby(by, sort=False):
        y = (group["label"] == positive_label).astype(int)
        if y.nunique() < 2:
            continue
        fpr, tpr, _ = skm.roc_curve(y, group[score])
        auc = skm.roc_auc_score(y, group[score])
        parts.append(pd.DataFrame({"fpr": fpr, "tpr": tpr, "label": f"{value} (AUC {auc:.2f})"}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["fpr", "tpr", "label"])


def write_table(table: pd.DataFrame, folder: str | Path, name: str) -> None:
    """Write a table as CSV, Markdown and LaTeX (atomically)."""
    folder = Path(folder)
    write_csv(folder / f"{name}.csv", table)
    write_text(folder / f"{name}.md", table.to_markdown(index=False) + "\n")
    write_text(folder / f"{name}.tex", table.to_latex(index=False, escape=True) + "\n")
