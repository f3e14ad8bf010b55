"""Every figure of ``cxrlib.plots`` drawn from tiny tables: its axes, titles and labels."""
from __future__ import annotations

from io import BytesIO
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from cxrlib import io, plots  # noqa: E402
from cxrlib.errors import ConfigError  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def xrays(tmp_path: Path) -> list[str]:
    paths = []
    for i in range(3):
        path = tmp_path / f"x{i}.png"
        Image.fromarray(np.full((20, 20), 40 * i, dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_bar_counts_counts_each_value() -> None:
    table = pd.DataFrame({"finding": ["a", "a", "b", None], "sex": ["M", "F", "M", "F"]})
    figure = plots.bar_counts(table, "finding")
    ax = figure.axes[0]
    assert ax.get_title() == "images per finding" and ax.get_xlabel() == "images"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "<missing>"]
    assert [p.get_width() for p in ax.patches] == [2, 1, 1]
    assert plots.bar_counts(table, "finding", hue="sex", title="t").axes[0].get_title() == "t"


def test_series_lengths_and_offset_timeline() -> None:
    sequences = pd.DataFrame({"n_images": [1, 2, 2, 3], "survival": ["Y", "N", None, "Y"]})
    ax = plots.series_lengths(sequences).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("frontal X-rays per patient", "patients")
    images = pd.DataFrame({"patient_id": ["1", "1", "2"], "offset": [0, 3, 1],
                           "survival": ["Y", "Y", None], "view": ["PA", "AP", "PA"]})
    ax = plots.offset_timeline(images, ["2", "1"]).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["2", "1"]
    assert ax.get_ylabel() == "patient"


def test_image_grid_shows_each_file_and_the_error_of_a_bad_one(xrays: list[str]) -> None:
    figure = plots.image_grid([*xrays, "/nonexistent.png"], titles=["a", "b", "c", "d"], ncols=2)
    assert len(figure.axes) == 4
    assert [ax.get_title() for ax in figure.axes] == ["a", "b", "c", "d"]
    assert sum(bool(ax.images) for ax in figure.axes) == 3 and figure.axes[3].texts


def test_size_scatter_and_learning_curves() -> None:
    sizes = pd.DataFrame({"width": [10, 20], "height": [30, 40], "source": ["a", "b"]})
    assert plots.size_scatter(sizes).axes[0].get_title() == "image sizes on disk"
    history = pd.DataFrame({"epoch": [1, 2], "loss": [1.0, 0.5], "val_loss": [1.1, 0.7],
                            "accuracy": [0.5, 0.7]})
    figure = plots.learning_curves(history, title="run")
    loss, accuracy = figure.axes
    assert [line.get_label() for line in loss.lines] == ["train", "validation"]
    assert [line.get_label() for line in accuracy.lines] == ["train"]  # no val_accuracy
    assert accuracy.get_ylabel() == "accuracy" and figure._suptitle.get_text() == "run"


def test_confusion_heatmap_and_roc_curve_plot() -> None:
    ax = plots.confusion_heatmap([[3, 1], [0, 4]], ["a", "b"], title="m").axes[0]
    assert [t.get_text() for t in ax.texts] == ["3", "1", "0", "4"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("predicted", "true", "m")
    curves = pd.DataFrame({"fpr": [0, 0, 1], "tpr": [0, 1, 1], "label": "x (AUC 1.00)"})
    ax = plots.roc_curve_plot(curves, title="ROC of x").axes[0]
    assert ax.get_title() == "ROC of x" and ax.get_xlabel() == "false positive rate"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["x (AUC 1.00)"]


def test_metric_distributions_has_one_panel_per_metric() -> None:
    runs = pd.DataFrame({"backbone": ["a", "a", "b", "b"], "accuracy": [0.5, 0.6, 0.7, 0.8],
                         "f1": [0.1, 0.2, 0.3, 0.4], "scorer": ["m", "n", "m", "n"]})
    figure = plots.metric_distributions(runs, ["accuracy", "f1"])
    assert [ax.get_title() for ax in figure.axes] == ["accuracy", "f1"]
    figure = plots.metric_distributions(runs, ["accuracy"], hue="scorer")
    assert figure.axes[-1].get_legend().get_title().get_text() == "scorer"


def _png(figure) -> bytes:
    buffer = BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def test_metric_distributions_jitter_is_seeded_and_leaves_the_global_state() -> None:
    """The points' jitter comes from the seed, not from NumPy's global generator (which
    seaborn uses): the same table gives the same PNG bytes whatever was drawn before,
    another seed moves the points, and the caller's random numbers are not consumed."""
    runs = pd.DataFrame({"backbone": ["a"] * 5 + ["b"] * 5,
                         "accuracy": [0.5, 0.6, 0.7, 0.8, 0.6, 0.4, 0.5, 0.55, 0.6, 0.7]})
    np.random.seed(1)
    first = _png(plots.metric_distributions(runs, ["accuracy"]))
    np.random.seed(2)
    expected_next = np.random.get_state()[1].copy()
    second = _png(plots.metric_distributions(runs, ["accuracy"]))
    assert first == second
    assert (np.random.get_state()[1] == expected_next).all()
    assert _png(plots.metric_distributions(runs, ["accuracy"], seed=1)) != first


def test_mean_learning_curves_facets_by_metric() -> None:
    histories = pd.DataFrame({"epoch": [1, 2, 1, 2], "loss": [1.0, 0.5, 0.9, 0.4],
                              "accuracy": [0.5, 0.6, 0.5, 0.7], "model": ["cnn"] * 4,
                              "folder": ["f0", "f0", "f1", "f1"]})
    figure = plots.mean_learning_curves(histories, hue="model")
    assert sorted(ax.get_title() for ax in figure.axes) == ["metric = accuracy", "metric = loss"]


def test_score_timeline_says_when_there_are_too_few_images(xrays: list[str]) -> None:
    over_time = pd.DataFrame({"t": [1, 2, 3], "path": xrays,
                              "survival_score": [np.nan, 0.25, 0.75]})
    figure = plots.score_timeline(over_time, title="p1")
    titles = [ax.get_title() for ax in figure.axes]
    assert "not enough images yet" in " ".join(titles) and "SC 75%" in " ".join(titles)


def test_plot_cams_draws_each_map_and_says_when_one_is_blank() -> None:
    gray, cam = np.linspace(0, 1, 64).reshape(8, 8), np.eye(8)
    figure = plots.plot_cams([gray, gray], [cam, np.zeros((8, 8))], ["a", "b"], ncols=2)
    panels = [ax for ax in figure.axes if ax.get_title() in ("a", "b")]
    assert len(panels) == 2 and "blank map" in panels[1].texts[0].get_text()
    with pytest.raises(ConfigError, match="same number"):
        plots.plot_cams([gray], [], ["a"])


def test_save_figure_is_the_io_writer(tmp_path: Path) -> None:
    figure, _ = plt.subplots()
    path = plots.save_figure(figure, tmp_path / "f" / "x.png")
    assert plots.save_figure is io.save_figure and path.read_bytes()[:4] == b"\x89PNG"
