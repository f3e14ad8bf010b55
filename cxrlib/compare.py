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

from cxrlib import paper
from cxrlib.names import CLASS_TITLES, CLASSES
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
    """Finished run folders of one experiment (those with a ``metrics.json``)."""
    root = Path(results_dir) / experiment
    return sorted(p.parent for p in root.glob("*/*/metrics.json")) if root.is_dir() else []


def run_inventory(results_dir: str | Path) -> pd.DataFrame:
    """Which finished runs a results folder holds: one row per backbone or detector model,
    with its seeds or folds (what the tables below are built from)."""
    rows = []
    for experiment, prefix in (("prognet", "seed-"), ("detector", "fold-")):
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
                         "findings": parameters.get("findings", "all"),
                         "cohort_patients": payload.get("n_patients"),
                         "scorer": scorer, "folder": str(folder),
                         **{k: values.get(k) for k in PROGNET_SCORES + RATES + ("npv", "tp", "fn", "fp", "tn", "n")}})
    return pd.DataFrame(rows)


def read_tables(results_dir: str | Path, experiment: str, name: str) -> pd.DataFrame:
    """``<name>.csv`` of every finished run, stacked, with the run folder as a column."""
    parts = [pd.read_csv(folder / f"{name}.csv").assign(folder=str(folder))
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
#: column if positive = survival, the paper's column if positive = death).
TABLE_I_RATES = (
    ("tp_rate", "survivors found: TP/(TP+FN)", None, None),
    ("tn_rate", "deaths found: TN/(TN+FP)", None, None),
    ("precision", "predicted survivors who survived: TP/(TP+FP)", "tp_rate", "tn_rate"),
    ("npv", "predicted deaths who died: TN/(TN+FN)", "tn_rate", "tp_rate"),
)


def prognet_table_i(runs: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Table I, one row per backbone and rate (positive = 1 = survival in our code).

    Each rate is named by the class it is about; ours as the mean over seeds and from the
    pooled test patients with a patient-resampled 95 % CI. The paper's Table I rates are
    shares of each *predicted* class (``paper.PROGNET_TABLE_I_NOTE``), so they stand only
    beside the two predicted-class rates, under both readings of its positive class."""
    rows = []
    for backbone, group in runs[runs["scorer"] == "model"].groupby("backbone", sort=False):
        pooled = predictions[predictions["backbone"] == backbone]
        y, s = pooled["label"].to_numpy(), pooled["survival_score"].to_numpy()
        totals, reported = binary_metrics(y, s), paper.PROGNET[backbone]
        for key, name, if_survival, if_death in TABLE_I_RATES:
            value = totals[key]
            rows.append({
                "backbone": backbone, "weights": ", ".join(sorted(group["weights"].unique())),
                "rate": name, "runs": len(group), "test patients (pooled)": len(pooled),
                "mean over seeds": round(float(group[key].astype(float).mean()), 3),
                "pooled": round(value, 3) if value == value else None,
                "95% CI": _ci(binary_scorer(key), y, s, groups=pooled["patient_id"].to_numpy()),
                "paper, if positive = survival": reported[if_survival] if if_survival else None,
                "paper, if positive = death": reported[if_death] if if_death else None,
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


def detector_per_class(runs: pd.DataFrame) -> pd.DataFrame:
    """The paper's Tables 3/4: per model and class, mean +/- std over folds, paper beside."""
    rows = []
    for (model, name), group in runs.groupby(["model", "class"], sort=False):
        row = {"model": model, "base": ", ".join(sorted(group["base"].unique())),
               "weights": ", ".join(sorted(group["weights"].unique())),
               "class": CLASS_TITLES[name], "folds": len(group)}
        for metric in ("specificity", "sensitivity", "f1"):
            values = group[metric].astype(float)
            row[metric] = f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0:.3f}"
            row[f"{metric} (paper)"] = paper.DETECTOR[model][metric][name]
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
