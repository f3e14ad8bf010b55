"""``chapters``: the runs a report chapter reads, the source and licence of shown images,
and the exercises' checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrlib import chapters, compare, data


def _finished_run(folder: Path) -> Path:
    run = folder / "prognet" / "alexnet" / "seed-0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    return folder


def test_the_first_default_folder_holding_runs_is_read(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(chapters.RESULTS_VARIABLE, raising=False)
    sample, quick = tmp_path / "sample", _finished_run(tmp_path / "quick")
    (sample / "prognet" / "alexnet" / "seed-0.partial").mkdir(parents=True)  # unfinished
    assert chapters.results_folder(None, [sample, quick]) == quick
    _finished_run(tmp_path / "other")
    assert chapters.results_folder(tmp_path / "other", [sample, quick]) == tmp_path / "other"


def test_the_environment_variable_names_the_folder_when_none_is_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sample, quick = _finished_run(tmp_path / "sample"), _finished_run(tmp_path / "quick")
    monkeypatch.setenv(chapters.RESULTS_VARIABLE, str(quick))
    assert chapters.results_folder(None, [sample, quick]) == quick
    assert chapters.results_folder(sample, [sample, quick]) == sample  # a given folder wins
    monkeypatch.setenv(chapters.RESULTS_VARIABLE, "")
    assert chapters.results_folder(None, [sample, quick]) == sample


def test_no_runs_stops_with_one_line_naming_what_to_run(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(chapters.RESULTS_VARIABLE, raising=False)
    with pytest.raises(chapters.NoRuns, match="make reproduce") as caught:
        chapters.results_folder(None, [tmp_path / "sample", tmp_path / "quick"])
    lines = caught.value._render_traceback_()  # what IPython shows instead of a traceback
    assert len(lines) == 1 and str(tmp_path / "quick") in lines[0]


def test_a_missing_experiment_stops_with_one_line(tmp_path: Path) -> None:
    results = _finished_run(tmp_path / "quick")
    assert chapters.finished_run(results, "prognet", "vgg16/seed-0") == results / "prognet" / "alexnet" / "seed-0"
    with pytest.raises(chapters.NoRuns, match="no finished detector run in"):
        chapters.finished_run(results, "detector", "cnn/fold-0")


def test_a_run_kept_aside_is_not_read(tmp_path: Path) -> None:
    """A notebook that fails after writing metrics.json (in an exercise) leaves it in the
    run kept aside, seed-<k>.failed; a killed one in seed-<k>.partial. Neither is a run:
    a folder holding only those has none, and the reports read the finished runs alone."""
    results = tmp_path / "results"
    for kept in ("prognet/alexnet/seed-1.failed", "detector/cnn/fold-0.partial"):
        (results / kept).mkdir(parents=True)
        (results / kept / "metrics.json").write_text("{}")
    with pytest.raises(chapters.NoRuns):
        chapters.results_folder(results)
    _finished_run(results)
    assert compare.run_folders(results, "prognet") == [results / "prognet" / "alexnet" / "seed-0"]
    assert compare.run_inventory(results)["seeds"].tolist() == ["0"]
    with pytest.raises(chapters.NoRuns, match="no finished detector run"):
        chapters.finished_run(results, "detector", "cnn/fold-0")


def test_each_image_gets_its_collection_source_and_licence(tiny_data: Path) -> None:
    metadata = tiny_data / "covid-chestxray-dataset" / "metadata.csv"
    text = metadata.read_text().replace("images,p1a.png,,,,", "images,p1a.png,,https://x.org/1,CC BY 4.0,")
    metadata.write_text(text)
    frontal, pediatric = data.load_cohen(tiny_data), data.load_pneumonia(tiny_data)
    paths = [*frontal.set_index("filename").loc[["p1a.png", "p1b.png"], "path"], pediatric["path"][0],
             tiny_data / "elsewhere" / "images" / "other.png"]
    table = chapters.image_sources(paths, tiny_data).set_index("image")
    assert table.loc["other.png", "licence"] == chapters.NOT_LISTED
    assert tuple(table.loc["p1a.png", ["source", "licence"]]) == ("https://x.org/1", "CC BY 4.0")
    assert table.loc["p1b.png", "licence"] == chapters.NO_LICENCE  # said, not left blank
    assert tuple(table.iloc[2][["source", "licence"]]) == chapters.PEDIATRIC_SOURCE


def test_leaked_patients_are_those_on_both_sides() -> None:
    ids = ["a", "a", "b", "c", "c"]
    assert chapters.leaked_patients(ids, np.array([0, 2, 3]), np.array([1, 4])) == ["a", "c"]
    assert chapters.leaked_patients(ids, np.array([0, 1]), np.array([2, 3, 4])) == []


def test_heat_outside_the_lungs_is_measured_against_an_even_map() -> None:
    even, border = np.ones((4, 4)), np.zeros((10, 10))
    border[0, :] = 1.0  # the top tenth: above the lungs box (it starts at 0.12)
    table = chapters.heat_outside_lungs([even, border, np.zeros((2, 2))], ["even", "top", "blank"])
    area = table.loc["even", "area outside the lungs"]
    assert 0.2 < area < 0.4 and table.loc["even", "heat outside the lungs"] == pytest.approx(area)
    assert table.loc["top", "heat outside the lungs"] == pytest.approx(1.0)
    assert np.isnan(table.loc["blank", "heat outside the lungs"])
