"""Did the papers hold up? One verdict per claim (``cxrlib.paper.CLAIMS``), computed from
finished runs, never typed.

Verdicts (``VERDICTS``):

* **reproduced**: our 95 % interval contains the paper's number (and is at most
  ``MAX_CI_WIDTH`` wide), or an ordering holds with a paired interval on the difference
  that excludes 0;
* **not reproduced**: the interval excludes the paper's number, or the ordering is reversed
  (the whole paired interval below 0);
* **not distinguishable**: the interval is too wide to say (its width is shown);
* **not testable here**: the runs needed are missing, or they are not of the setup the
  claim is about (``paper.SETUPS``: e.g. random instead of pretrained weights); what the
  numbers alone would say is given in ``why``. A claim is never *not reproduced* on runs of
  another setup;
* **shortcut in the data** / **no shortcut found**: the lungs audit's own outcomes. It
  trains a *new* model on lungs-blanked images, so it measures the data (can a model
  succeed without the lungs?), not where the paper's network looks.

A claim of several parts (one backbone against three, or two metrics) shows every part in
``why``; its verdict is the weakest part's, a refuting part first (``combine``), and each
part is judged on runs of the claim's setup alone (a random AlexNet makes its own part not
testable, not its neighbours).

Every interval is a percentile bootstrap over patients (``metrics.cluster_bootstrap_ci``);
paired comparisons put model A and model B on the same test patients or images and
resample patients. Reads run folders only (floor 5): it never trains.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from cxrlib import compare, paper
from cxrlib.metrics import binary_scorer, cluster_bootstrap_ci

VERDICTS = ("reproduced", "not reproduced", "not distinguishable", "not testable here",
            "shortcut in the data", "no shortcut found")
#: The compact verdict table (the README's): the long reason stands in its own column, ``why``.
COMPACT = ("claim", "paper's value", "ours", "95% CI", "verdict", "numbers alone")
MAX_CI_WIDTH = 0.20  # wider than 20 points: cannot tell the paper's number from its neighbours
N_RESAMPLES = 1000
PROGNET_SCORES = {"model": "survival_score", "last_image": "score_last_image",
                  "majority": "score_majority", "mean_features": "score_mean_features"}


# --------------------------------------------------------------------------- rules
def value_verdict(estimate: float, low: float, high: float, target: float,
                  max_width: float = MAX_CI_WIDTH) -> tuple[str, str]:
    """Our estimate and interval against the paper's number."""
    if np.isnan(low):
        return "not distinguishable", "the interval is undefined on these runs"
    width = high - low
    if not low <= target <= high:
        side = "above" if low > target else "below"
        return "not reproduced", f"the paper's {target:.3f} lies outside our interval (ours is {side})"
    if width > max_width:
        return "not distinguishable", f"the interval is {width:.2f} wide (> {max_width:.2f})"
    return "reproduced", f"the paper's {target:.3f} lies inside our interval"


def order_verdict(low: float, high: float) -> tuple[str, str]:
    """A paired difference (better - worse) must be > 0."""
    if np.isnan(low):
        return "not distinguishable", "the paired interval is undefined on these runs"
    if low > 0:
        return "reproduced", "the paired interval on the difference is above 0"
    if high < 0:
        return "not reproduced", "reversed: the paired interval on the difference is below 0"
    return "not distinguishable", f"the paired interval includes 0 (width {high - low:.2f})"


def above_verdict(low: float, high: float, bar: float) -> tuple[str, str]:
    """Our interval against a bar it must clear (the best published accuracy)."""
    if np.isnan(low):
        return "not distinguishable", "the interval is undefined on these runs"
    if low > bar:
        return "reproduced", f"our whole interval is above {bar:.3f}"
    if high < bar:
        return "not reproduced", f"our whole interval is below {bar:.3f}"
    return "not distinguishable", f"our interval includes {bar:.3f} (width {high - low:.2f})"


#: Which part's verdict a claim of several parts takes: a refuting part first (a claim one
#: part refutes is refuted, whatever its other parts), then a part that cannot be tested.
COMBINE_ORDER = ("not reproduced", "not testable here", "not distinguishable", "reproduced")


def combine(parts: list[tuple[str, str]]) -> tuple[str, str]:
    """One verdict for a claim made of several comparisons: every part must hold, a part
    that refutes it is never hidden, and every part is shown (``part: verdict, why``)."""
    if not parts:
        return "not testable here", "no part of the claim could be computed"
    verdicts = {v for v, _ in parts}
    verdict = next(v for v in COMBINE_ORDER if v in verdicts)
    return verdict, "; ".join(f"{w} [{v}]" for v, w in parts)


# --------------------------------------------------------------------------- metrics
def _accuracy_binary(y: np.ndarray, s: np.ndarray) -> float:
    return float(((s >= 0.5) == (y == 1)).mean())


def _binary(name: str) -> Callable:
    return _accuracy_binary if name == "accuracy" else binary_scorer(name)


def _accuracy_multi(y: np.ndarray, proba: np.ndarray) -> float:
    return float((proba.argmax(axis=1) == y).mean())


def _covid_sensitivity(y: np.ndarray, proba: np.ndarray) -> float:
    covid = y == 0
    return float((proba[covid].argmax(axis=1) == 0).mean()) if covid.any() else float("nan")


DETECTOR_METRICS = {"accuracy": _accuracy_multi, "covid19_sensitivity": _covid_sensitivity}


def _interval(metric: Callable, *arrays, groups) -> tuple[float, float, float]:
    """(estimate, low, high) with a patient-resampled 95 % interval."""
    estimate = float(metric(*arrays))
    low, high = cluster_bootstrap_ci(metric, *arrays, groups=groups, n_resamples=N_RESAMPLES)
    return estimate, low, high


def _paired(metric: Callable, y, a, b, groups) -> tuple[float, float, float]:
    difference = lambda y_, a_, b_: metric(y_, a_) - metric(y_, b_)  # noqa: E731
    return _interval(difference, y, a, b, groups=groups)


# --------------------------------------------------------------------------- the runs
class Runs:
    """The finished runs of one results folder, as the verdicts need them."""

    def __init__(self, results_dir: str | Path):
        self.results_dir = Path(results_dir)
        #: Judge every claim as if these runs were of its setup (``numbers_alone``).
        self.ignore_setup = False
        self.prognet = compare.read_tables(results_dir, "prognet", "predictions")
        self.prognet_runs = compare.prognet_runs(results_dir)
        self.detector = compare.read_tables(results_dir, "detector", "predictions")
        self.detector_runs = compare.detector_runs(results_dir)
        self.audits = _audits(results_dir)
        self.blanked = compare.read_tables(results_dir, "detector", "predictions_lungs_blanked")

    def backbone(self, name: str) -> pd.DataFrame:
        return self.prognet[self.prognet["backbone"] == name] if len(self.prognet) else self.prognet

    def model(self, name: str) -> pd.DataFrame:
        return self.detector[self.detector["model"] == name] if len(self.detector) else self.detector

    def weights(self, backbone: str) -> str:
        """The pretrained weights of a backbone's runs ("imagenet", "file <name>", "none")."""
        runs = self.prognet_runs
        chosen = runs[runs["backbone"] == backbone]["pretrained"].unique() if len(runs) else []
        return ", ".join(sorted(chosen)) or "?"

    def base(self, model: str) -> str:
        runs = self.detector_runs
        chosen = runs[runs["model"] == model]["base"].unique() if len(runs) else []
        return ", ".join(sorted(chosen)) or "?"


def _audits(results_dir: str | Path) -> pd.DataFrame:
    """Per detector run: model, test images, and the shortcut audit's accuracies."""
    rows = []
    for folder in compare.run_folders(results_dir, "detector"):
        payload = compare._read(folder)
        audit = payload.get("shortcut_audit")
        if audit:
            n = int(sum(payload["n_per_class"]["test"].values()))
            rows.append({"model": payload["parameters"]["model"], "n": n, **audit})
    return pd.DataFrame(rows)


IMAGENET_INFERENCE = ("ImageNet weights are our reading: the ProgNet paper names no "
                      "pre-training")


PRETRAINED_GAP = "the paper's CNNs were pretrained"


def _setup_gap(claim: dict, runs: Runs, subjects: tuple = (), short: bool = False) -> str:
    """Why these runs are not of the setup ``claim`` is about ('' if they are): for a
    ProgNet claim about its networks, every backbone among ``subjects`` (default: the
    claim's own) must carry pretrained weights; for a detector claim, the runs must have
    trained Table 2's network end to end. ``short``: without the reason (one part of a
    claim whose reason is given once)."""
    if claim["setup"] != "paper" or runs.ignore_setup:
        return ""
    if claim["paper"] == "prognet":
        backbones = subjects or (claim.get("backbone") or claim["better"], *claim.get("worse", ()))
        gaps = sorted({f"{b}: {runs.weights(b)}" for b in backbones  # any random run: a gap
                       if b in paper.PROGNET and {"none", "?"} & set(runs.weights(b).split(", "))})
        if not gaps:
            return ""
        reason = "" if short else f"{PRETRAINED_GAP} ({IMAGENET_INFERENCE}); "
        return f"{reason}these runs' weights: {', '.join(gaps)}"
    base = runs.base(claim.get("model") or claim["better"])
    if base != "paper":
        return (f"the paper trained Table 2's network end to end; these runs used base {base} "
                "(frozen features, the CPU mode)")
    return ""


def _not_testable(gap: str, verdict: str, why: str) -> tuple[str, str]:
    """A result on runs of another setup: not testable here, with what the numbers say."""
    return "not testable here", f"{gap}; the numbers alone say: {verdict} ({why})"


def _pretrained_note(claim: dict, runs: Runs) -> str:
    """The reminder every verdict resting on ImageNet weights for ProgNet carries."""
    if claim["paper"] != "prognet" or claim["setup"] != "paper":
        return ""
    backbones = (claim.get("backbone") or claim["better"], *claim.get("worse", ()))
    return IMAGENET_INFERENCE if any(runs.weights(b) == "imagenet" for b in backbones
                                     if b in paper.PROGNET) else ""


# --------------------------------------------------------------------------- one claim
def _prognet_value(claim: dict, runs: Runs) -> dict:
    rows = runs.backbone(claim["backbone"])
    if rows.empty:
        return {"verdict": "not testable here", "why": f"no {claim['backbone']} runs"}
    estimate, low, high = _interval(_binary(claim["metric"]), rows["label"].to_numpy(),
                                    rows["survival_score"].to_numpy(),
                                    groups=rows["patient_id"].to_numpy())
    verdict, why = value_verdict(estimate, low, high, claim["target"])
    return {"ours": estimate, "low": low, "high": high, "verdict": verdict, "why": why}


def _prognet_pairs(claim: dict, runs: Runs) -> list[tuple[str, pd.DataFrame, str, str]]:
    """(name, rows with both scores, score column A, score column B) per comparison."""
    better = runs.backbone(claim["better"])
    pairs = []
    for worse in claim["worse"]:
        if worse in PROGNET_SCORES:  # a baseline of the same runs: same rows
            pairs.append((worse, better, "survival_score", PROGNET_SCORES[worse]))
            continue
        other = runs.backbone(worse)[["seed", "patient_id", "survival_score"]]
        merged = better.merge(other, on=["seed", "patient_id"], suffixes=("", "_other"))
        pairs.append((worse, merged, "survival_score", "survival_score_other"))
    return pairs


def _prognet_order(claim: dict, runs: Runs) -> dict:
    """Each comparison (and metric) is a part with its own verdict; a part whose runs are
    not of the claim's setup is not testable, and says what its numbers show."""
    if runs.backbone(claim["better"]).empty:
        return {"verdict": "not testable here", "why": f"no {claim['better']} runs"}
    metrics = claim["metric"] if isinstance(claim["metric"], tuple) else (claim["metric"],)
    parts, shown, gaps = [], None, False
    for worse, rows, a, b in _prognet_pairs(claim, runs):
        if rows.empty:
            parts.append(("not testable here", f"vs {worse}: no {worse} runs on the same seeds"))
            continue
        subjects = (claim["better"],) + ((worse,) if worse in paper.PROGNET else ())
        gap = _setup_gap(claim, runs, subjects, short=True)
        gaps = gaps or bool(gap)
        for name in metrics:
            estimate, low, high = _paired(_binary(name), rows["label"].to_numpy(),
                                          rows[a].to_numpy(), rows[b].to_numpy(),
                                          rows["patient_id"].to_numpy())
            verdict, why = order_verdict(low, high)
            numbers = f"{estimate:+.3f} [{low:+.3f}, {high:+.3f}]"
            why = numbers if verdict == "reproduced" else f"{numbers}, {why}"
            if gap:
                verdict, why = _not_testable(gap, verdict, why)
            parts.append((verdict, f"vs {worse} ({name}): {why}"))
            shown = shown or (estimate, low, high)
    verdict, why = combine(parts)
    if gaps:
        why = f"{why} ({PRETRAINED_GAP}: {IMAGENET_INFERENCE})"
    estimate, low, high = shown or (np.nan, np.nan, np.nan)
    return {"ours": estimate, "low": low, "high": high, "verdict": verdict, "why": why,
            "measure": "paired difference (first part)" if len(parts) > 1 else "paired difference"}


def _detector_arrays(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return rows["label"].to_numpy(), rows[[f"p_{c}" for c in compare.CLASSES]].to_numpy()


def _detector_value(claim: dict, runs: Runs) -> dict:
    rows = runs.model(claim["model"])
    if rows.empty:
        return {"verdict": "not testable here", "why": f"no {claim['model']} runs"}
    y, proba = _detector_arrays(rows)
    estimate, low, high = _interval(DETECTOR_METRICS[claim["metric"]], y, proba,
                                    groups=rows["patient_id"].to_numpy())
    if claim["test"] == "above":
        verdict, why = above_verdict(low, high, claim["target"])
    else:
        verdict, why = value_verdict(estimate, low, high, claim["target"])
    return {"ours": estimate, "low": low, "high": high, "verdict": verdict, "why": why}


def _detector_order(claim: dict, runs: Runs) -> dict:
    better, worse = runs.model(claim["better"]), runs.model(claim["worse"][0])
    if better.empty or worse.empty:
        return {"verdict": "not testable here", "why": "the runs of both models are needed"}
    columns = ["fold", "path"] + [f"p_{c}" for c in compare.CLASSES]
    merged = better.merge(worse[columns], on=["fold", "path"], suffixes=("", "_other"))
    if merged.empty:
        return {"verdict": "not testable here", "why": "the two models share no test image"}
    y, a = _detector_arrays(merged)
    b = merged[[f"p_{c}_other" for c in compare.CLASSES]].to_numpy()
    estimate, low, high = _interval(
        lambda y_, a_, b_: _accuracy_multi(y_, a_) - _accuracy_multi(y_, b_), y, a, b,
        groups=merged["patient_id"].to_numpy())
    verdict, why = order_verdict(low, high)
    return {"ours": estimate, "low": low, "high": high, "verdict": verdict,
            "why": f"{why} ({len(merged)} paired test images)", "measure": "paired difference"}


def _lungs(claim: dict, runs: Runs) -> dict:
    """The shortcut audit: a new model trained and tested on lungs-blanked images. Above
    chance, the data let a model succeed without the lungs ("shortcut in the data"); at
    chance, this shortcut is not there ("no shortcut found"). Either way it is about the
    data, not about where the paper's network looks."""
    audits = runs.audits[runs.audits["model"] == claim["model"]] if len(runs.audits) else runs.audits
    if audits.empty:
        return {"verdict": "not testable here", "why": "no shortcut audit in these runs"}
    n = int(audits["n"].sum())
    chance = float((audits["chance_three_classes"] * audits["n"]).sum() / n)
    source = float((audits["source_thumbnail"] * audits["n"]).sum() / n)
    blanked = runs.blanked[runs.blanked["model"] == claim["model"]] if len(runs.blanked) else runs.blanked
    if len(blanked) == n:  # every run kept its lungs-blanked predictions: resample patients
        correct = (blanked["predicted"] == blanked["class"]).to_numpy()
        estimate, low, high = _interval(lambda c: float(np.mean(c)), correct,
                                        groups=blanked["patient_id"].to_numpy())
        how = "interval resampling patients"
    else:  # older runs keep only each fold's accuracy: images taken as independent
        from scipy.stats import binomtest

        hits = int(round(float((audits["lungs_blanked"] * audits["n"]).sum())))
        interval = binomtest(hits, n).proportion_ci(confidence_level=0.95, method="wilson")
        estimate, low, high = hits / n, float(interval.low), float(interval.high)
        how = "Wilson interval, test images taken as independent"
    measured = (f"a new model trained and tested with the lungs blanked reaches {estimate:.3f} "
                f"(chance {chance:.3f})")
    if low > chance:
        verdict, why = "shortcut in the data", (
            f"{measured}, and 32-px thumbnails tell the image sources apart {source:.0%} of "
            "the time: these images let a model succeed without the lungs (a confounded "
            "data set); where the paper's network looks is not measured")
    elif high <= chance + MAX_CI_WIDTH / 2:
        verdict, why = "no shortcut found", (
            f"{measured}: without the lungs a model does no better than chance here; where "
            "the paper's network looks is not measured")
    else:
        verdict, why = "not distinguishable", f"{measured}; the interval reaches from chance upwards"
    return {"ours": estimate, "low": low, "high": high, "verdict": verdict,
            "why": f"{why} ({how})", "measure": "accuracy, lungs blanked (new model)"}


def judge(claim: dict, runs: Runs) -> dict:
    """The verdict on one claim, with the numbers behind it: judged only on runs of the
    setup the claim is about (else "not testable here" and what the numbers say)."""
    if claim["paper"] == "prognet":
        if claim["test"] == "value":
            result = _prognet_value(claim, runs)
        else:  # each part checks its own setup
            result = _prognet_order(claim, runs)
            note = _pretrained_note(claim, runs)
            if note and note not in result["why"]:
                result["why"] = f"{result['why']} ({note})"
            return result
    elif claim["test"] == "order":
        result = _detector_order(claim, runs)
    elif claim["test"] == "lungs":
        result = _lungs(claim, runs)
    else:
        result = _detector_value(claim, runs)
    gap = _setup_gap(claim, runs)
    if gap and result["verdict"] != "not testable here":
        result["verdict"], result["why"] = _not_testable(gap, result["verdict"], result["why"])
    note = _pretrained_note(claim, runs)
    if note and note not in result["why"]:
        result["why"] = f"{result['why']} ({note})"
    return result


def numbers_alone(claim: dict, runs: Runs, verdict: str) -> str:
    """Where ``verdict`` is *not testable here* because the runs are not of the claim's
    setup: the verdict the same rules give on these runs as if they were ('' otherwise).
    What our numbers say, never a verdict on the paper."""
    if verdict != "not testable here" or not _setup_gap(claim, runs):
        return ""
    runs.ignore_setup = True
    try:
        alone = judge(claim, runs)["verdict"]
    finally:
        runs.ignore_setup = False
    return "" if alone == "not testable here" else alone


SOURCES = {"prognet": "prognet_table_ii / prognet_table_i", "detector": "detector_overall"}


def verdict_table(results_dir: str | Path, compact: bool = False) -> pd.DataFrame:
    """One row per claim: the claim, the paper's number, ours with its 95 % interval and
    the verdict (``COMPACT``), then the long reason (``why``) and the details (source,
    measure, setup, interval width, the table it comes from, the claim's key).
    ``compact=True`` keeps the compact columns and ``why``."""
    runs, rows = Runs(results_dir), []
    for claim in paper.CLAIMS:
        result = judge(claim, runs)
        low, high = result.get("low", np.nan), result.get("high", np.nan)
        rows.append({
            "paper": paper.PAPER_TITLES[claim["paper"]],
            "claim": claim["claim"],
            "paper's value": claim.get("target"),
            "ours": None if np.isnan(result.get("ours", np.nan)) else round(result["ours"], 3),
            "95% CI": "" if np.isnan(low) else f"[{low:.3f}, {high:.3f}]",
            "verdict": result["verdict"],
            "numbers alone": numbers_alone(claim, runs, result["verdict"]),
            "why": result["why"],
            "source": claim["source"],
            "measure": result.get("measure", claim["metric"] if isinstance(claim["metric"], str)
                                  else " & ".join(claim["metric"])),
            "setup": claim["setup"],
            "CI width": None if np.isnan(low) else round(high - low, 3),
            "from": "shortcut_audit" if claim["test"] == "lungs" else SOURCES[claim["paper"]],
            "key": claim["key"],
        })
    table = pd.DataFrame(rows)
    return compact_columns(table) if compact else table


def compact_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The compact columns of a ``verdict_table`` (``COMPACT``, ``why``, ``key``): the same
    verdicts, nothing judged again."""
    return table[["paper", *COMPACT, "why", "key"]]
