"""Figures for the notebooks, built with seaborn and matplotlib.

Each function takes a DataFrame (or arrays) and returns the matplotlib ``Figure`` so a
notebook can show it and ``save_figure`` (``cxrlib.io``) can write it under ``results/``.
``plot_cams`` draws the heat maps that ``cxrlib.explain`` computes.
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from cxrlib.errors import ConfigError
from cxrlib.images import load_image
from cxrlib.io import save_figure  # noqa: F401  (notebooks call plots.save_figure)

sns.set_theme(style="whitegrid", context="notebook")


def bar_counts(table: pd.DataFrame, column: str, hue: str | None = None,
               title: str | None = None, top: int = 20) -> plt.Figure:
    """Horizontal bar chart of how often each value of ``column`` occurs."""
    values = table[column].fillna("<missing>").astype(str)
    order = values.value_counts().index[:top]
    frame = table.assign(**{column: values})
    if hue is not None:
        frame[hue] = frame[hue].fillna("<missing>").astype(str)
    figure, ax = plt.subplots(figsize=(7, 0.3 * len(order) + 1.2))
    sns.countplot(data=frame[frame[column].isin(order)], y=column, hue=hue, order=order, ax=ax)
    for bars in ax.containers:  # counts on the bars: small ones stay readable beside large
        ax.bar_label(bars, fontsize=8, padding=2)
    if ax.get_legend() is not None:
        sns.move_legend(ax, "center left", bbox_to_anchor=(1, 0.5), fontsize=9)
    ax.set_title(title or f"images per {column}")
    ax.set_xlabel("images")
    figure.tight_layout()
    return figure


def series_lengths(sequences: pd.DataFrame) -> plt.Figure:
    """Histogram of images per patient, coloured by survival."""
    figure, ax = plt.subplots(figsize=(7, 3.5))
    frame = sequences.assign(survival=sequences["survival"].fillna("unknown"))
    bins = np.arange(0.5, frame["n_images"].max() + 1.5)
    sns.histplot(data=frame, x="n_images", hue="survival", multiple="stack", bins=bins, ax=ax)
    ax.set_xlabel("frontal X-rays per patient")
    ax.set_ylabel("patients")
    figure.tight_layout()
    return figure


def offset_timeline(images: pd.DataFrame, patients: Sequence[str]) -> plt.Figure:
    """One line per patient: the day (offset) of each of its X-rays, coloured by survival."""
    frame = images[images["patient_id"].isin(list(patients))].copy()
    frame["survival"] = frame["survival"].fillna("unknown")
    order = list(dict.fromkeys(patients))
    frame["y"] = frame["patient_id"].map({p: i for i, p in enumerate(order)})
    figure, ax = plt.subplots(figsize=(8, 0.22 * len(order) + 1.5))
    for _, group in frame.groupby("patient_id"):
        ax.plot(group["offset"], group["y"], color="0.8", zorder=1)
    sns.scatterplot(data=frame, x="offset", y="y", hue="survival", style="view", ax=ax, zorder=2)
    ax.set_yticks(range(len(order)), order, fontsize=7)
    ax.set_xlabel("offset (days since symptoms or admission)")
    ax.set_ylabel("patient")
    ax.legend(loc="center left", bbox_to_anchor=(1, 0.5), fontsize=8)
    figure.tight_layout()
    return figure


def image_grid(paths: Sequence[str], titles: Sequence[str] | None = None, ncols: int = 4,
               size: int = 160, cell: float = 2.2) -> plt.Figure:
    """Thumbnails of X-ray files in a grid (unreadable files show their error)."""
    nrows = max(1, int(np.ceil(len(paths) / ncols)))
    figure, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, cell * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, path in enumerate(paths):
        ax = axes.flat[i]
        try:
            ax.imshow(load_image(path, size, channels=1)[..., 0], cmap="gray", vmin=0, vmax=255)
        except Exception as err:  # show the problem instead of failing the whole grid
            ax.text(0.5, 0.5, str(err)[-60:], ha="center", va="center", wrap=True, fontsize=7)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    figure.tight_layout()
    return figure


def size_scatter(sizes: pd.DataFrame, hue: str = "source") -> plt.Figure:
    """Width against height of the files, coloured by ``hue``."""
    figure, ax = plt.subplots(figsize=(6, 4.5))
    sns.scatterplot(data=sizes, x="width", y="height", hue=hue, style=hue, alpha=0.7, ax=ax)
    ax.set_title("image sizes on disk")
    figure.tight_layout()
    return figure


def learning_curves(history: pd.DataFrame, title: str = "") -> plt.Figure:
    """Loss and accuracy per epoch, train and validation (the papers' Fig. 5/6, 7/8)."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            if prefix + metric in history:
                ax.plot(history["epoch"], history[prefix + metric], label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def confusion_heatmap(matrix: Sequence[Sequence[int]], classes: Sequence[str],
                      title: str = "") -> plt.Figure:
    """Confusion matrix as a heatmap, rows = true class (the detector paper's Fig. 6)."""
    figure, ax = plt.subplots(figsize=(4.6, 3.8))
    sns.heatmap(np.asarray(matrix), annot=True, fmt="d", cmap="Blues", cbar=False,
                xticklabels=classes, yticklabels=classes, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    figure.tight_layout()
    return figure


def roc_curve_plot(curves: pd.DataFrame, title: str = "ROC") -> plt.Figure:
    """ROC curves from a table with columns fpr, tpr and a ``label`` per curve."""
    figure, ax = plt.subplots(figsize=(4.8, 4.2))
    sns.lineplot(data=curves, x="fpr", y="tpr", hue="label", estimator=None, ax=ax,
                 drawstyle="steps-post")
    ax.plot([0, 1], [0, 1], ls="--", color="0.6")
    if ax.get_legend() is not None:
        ax.get_legend().set_title(None)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    figure.tight_layout()
    return figure


@contextlib.contextmanager
def _numpy_global_seed(seed: int):
    """NumPy's global generator seeded with ``seed`` inside the block, its state put back
    after: seaborn's stripplot jitters its points with the global generator and takes no
    generator of its own, so a figure drawn in a fresh process would differ from one drawn
    after training (which seeds it) and from every other fresh one."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def metric_distributions(runs: pd.DataFrame, metrics: Sequence[str], by: str = "backbone",
                         hue: str | None = None, seed: int = 0) -> plt.Figure:
    """Box plot plus one point per run for each metric (distributions over seeds/folds).

    The points' sideways jitter is drawn from ``seed``, so the same table gives the same
    figure byte for byte, whatever the caller drew before; the caller's global NumPy
    state is left as it was."""
    long = runs.melt(id_vars=[c for c in (by, hue) if c], value_vars=list(metrics),
                     var_name="metric", value_name="value")
    long["value"] = long["value"].astype(float)
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        subset = long[long["metric"] == metric]
        grey = {"palette": ["0.9"] * long[hue].nunique()} if hue else {"color": "0.9"}
        sns.boxplot(data=subset, x=by, y="value", hue=hue, ax=ax, showfliers=False,
                    legend=False, **grey)
        with _numpy_global_seed(seed):
            sns.stripplot(data=subset, x=by, y="value", hue=hue, ax=ax, dodge=hue is not None,
                          alpha=0.7, legend=hue is not None)  # the legend shows the points' colours
        ax.set_title(metric)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=30)
        if ax.get_legend() is not None:  # one legend, beside the last panel, not over data
            ax.get_legend().remove()
    if hue is not None:
        handles, labels = axes.flat[-1].get_legend_handles_labels()
        axes.flat[-1].legend(handles, labels, title=hue, loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.tight_layout()
    return figure


def mean_learning_curves(histories: pd.DataFrame, hue: str) -> plt.Figure:
    """Mean loss and accuracy per epoch with a +/- 1 std band, one line per ``hue``."""
    long = histories.melt(id_vars=["epoch", hue, "folder"],
                          value_vars=[c for c in ("loss", "val_loss", "accuracy", "val_accuracy")
                                      if c in histories],
                          var_name="curve", value_name="value")
    long["split"] = np.where(long["curve"].str.startswith("val_"), "test/validation", "train")
    long["metric"] = long["curve"].str.replace("val_", "", regex=False)
    grid = sns.relplot(data=long, x="epoch", y="value", hue=hue, style="split", col="metric",
                       kind="line", errorbar="sd", facet_kws={"sharey": False}, height=3.4,
                       aspect=1.3)
    return grid.figure


def score_timeline(over_time: pd.DataFrame, title: str = "", threshold: float = 0.5,
                   size: int = 160) -> plt.Figure:
    """A patient's X-rays in time order with the survival score after each (the ProgNet
    paper's Fig. 7 idea): thumbnails on top, the score as a line below. ``over_time`` has
    columns t, path, survival_score (NaN while the model has too few images)."""
    n = len(over_time)
    figure = plt.figure(figsize=(max(6.0, 2.0 * n), 5.2), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=[1.1, 1])
    axes = top.subplots(1, n, squeeze=False)[0]
    for ax, row in zip(axes, over_time.itertuples()):
        ax.imshow(load_image(row.path, size, channels=1)[..., 0], cmap="gray", vmin=0, vmax=255)
        ax.axis("off")
        score = "not enough images yet" if np.isnan(row.survival_score) else f"SC {100 * row.survival_score:.0f}%"
        ax.set_title(f"T{row.t}\n{score}", fontsize=9)
    ax = bottom.subplots()
    ax.plot(over_time["t"], over_time["survival_score"], marker="o")
    ax.axhline(threshold, ls="--", color="0.6", label=f"threshold {threshold:g}")
    ax.set_xticks(over_time["t"], [f"T{t}" for t in over_time["t"]])
    ax.set_xlim(0.5, n + 0.5)
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("survival score P(survival)")
    ax.set_xlabel("X-ray in time order (the score uses the images up to it)")
    ax.legend(loc="lower right", fontsize=8)
    figure.suptitle(title)
    return figure


CAM_LABEL = ("Grad-CAM, scaled 0-1 within each map\n"
             "1 = strongest support for the output explained")


def plot_cams(images: Sequence[np.ndarray], cams: Sequence[np.ndarray],
              titles: Sequence[str] | None = None, ncols: int = 4, alpha: float = 0.4,
              cmap: str = "jet") -> plt.Figure:
    """A grid of X-rays with their heat maps overlaid (one panel per image).

    Each map is stretched to its X-ray's resolution (pass the X-ray at the size it should
    be seen); an all-zero map is not drawn: its panel shows the X-ray and says the map is
    blank. Titles may hold line breaks; one colour bar explains the scale.
    """
    from cxrlib.explain import overlay, to_gray_unit  # Grad-CAM's maths (TensorFlow)

    images, cams = list(images), list(cams)
    if len(images) != len(cams) or not images:
        raise ConfigError(f"got {len(images)} images and {len(cams)} heat maps; need the "
                          "same number, at least one")
    titles = list(titles) if titles is not None else [""] * len(images)
    if len(titles) != len(images):
        raise ConfigError(f"got {len(titles)} titles for {len(images)} images")
    ncols = max(1, min(int(ncols), len(images)))
    nrows = math.ceil(len(images) / ncols)
    lines = max(str(t).count("\n") + 1 for t in titles)
    figure, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols + 1.2, (3.0 + 0.2 * lines) * nrows),
                                squeeze=False, layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, cam, title in zip(axes.ravel(), images, cams, titles):
        blank = float(np.max(cam)) <= 0.0
        ax.imshow(to_gray_unit(image) if blank else overlay(image, cam, alpha, cmap),
                  cmap="gray" if blank else None, vmin=0, vmax=1)
        if blank:
            ax.text(0.5, 0.5, "blank map:\nno place supports\nthe output", ha="center",
                    va="center", transform=ax.transAxes, fontsize=9,
                    bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.5"})
        ax.set_title(title, fontsize=9)
    bar = figure.colorbar(matplotlib.cm.ScalarMappable(cmap=cmap), ax=axes.ravel().tolist(),
                          shrink=0.8)
    bar.set_label(CAM_LABEL, fontsize=9)
    bar.ax.tick_params(labelsize=8)
    return figure
