"""Saved models: a run folder scores new images, reproducing its own predictions exactly.

One tiny batch (AlexNet ProgNet, seeds 0 and 1; CNN detector, fold 0, with its shortcut
audit; 32 px, 3 epochs) is run once per session through the notebooks, as ``cxr batch``
runs them (conftest.tiny_runs); the tests then load the saved models in fresh processes
(``cxr predict ... --json``) with an empty feature cache.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlib import batch, predict, prognet
from cxrlib.errors import ConfigError, CxrError, DataError, ImageError

pytestmark = pytest.mark.xdist_group("tiny_runs")  # the session's tiny_runs: one process

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0"}


def _cxr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cxrlib.cli", "predict", *args], env=ENV,
                          capture_output=True, text=True, timeout=300)


def _prognet_series(run: Path, data_dir: Path) -> pd.DataFrame:
    """The run's test patients with the images it read (the first seq_len of each series)."""
    card = json.loads((run / "model" / "model.json").read_text())
    config = prognet.Config(**card["parameters"]).check()
    by_patient = prognet.cohort(data_dir, config).set_index("patient_id")
    predictions = pd.read_csv(run / "predictions.csv", dtype={"patient_id": str})
    return pd.DataFrame([{"patient_id": pid, "path": path, "offset": t}
                         for pid in predictions["patient_id"]
                         for t, path in enumerate(by_patient.loc[pid, "paths"][:config.seq_len])])


@pytest.mark.slow
def test_saved_prognet_reproduces_its_predictions_in_a_fresh_process(
        tiny_runs: Path, sample_dir: Path, tmp_path: Path) -> None:
    run = tiny_runs / "prognet" / "alexnet" / "seed-0"
    assert {p.name for p in (run / "model" / "fold-0").iterdir()} == {
        "head.keras", "standardization.npz", "baselines.npz"}
    series = tmp_path / "series.csv"
    _prognet_series(run, sample_dir).to_csv(series, index=False)
    result = _cxr("prognet", "--run", str(run), "--series", str(series), "--json",
                  "--cache-dir", str(tmp_path / "empty-cache"))
    assert result.returncode == 0, result.stderr
    scored = pd.DataFrame(json.loads(result.stdout)["predictions"])
    expected = pd.read_csv(run / "predictions.csv", dtype={"patient_id": str})
    merged = expected.merge(scored, on="patient_id", suffixes=("", "_new"))
    assert len(merged) == len(expected) > 0
    for column in ("survival_score", "score_majority", "score_last_image", "score_mean_features"):
        np.testing.assert_allclose(merged[f"{column}_new"], merged[column], atol=1e-6, rtol=0)


@pytest.mark.slow
def test_saved_detector_reproduces_its_predictions_in_a_fresh_process(
        tiny_runs: Path, tmp_path: Path) -> None:
    run = tiny_runs / "detector" / "cnn" / "fold-0"
    card = json.loads((run / "model" / "model.json").read_text())
    assert card["kind"] == "head" and card["base"] == "vgg16"
    expected = pd.read_csv(run / "predictions.csv")
    result = _cxr("detector", "--run", str(run), *expected["path"], "--json",
                  "--gradcam", str(tmp_path / "cam.png"))
    assert result.returncode == 0, result.stderr
    scored = pd.DataFrame(json.loads(result.stdout)["predictions"])
    assert scored["path"].tolist() == expected["path"].tolist()
    columns = [f"p_{c}" for c in card["classes"]]
    np.testing.assert_allclose(scored[columns], expected[columns], atol=1e-6, rtol=0)
    assert scored["predicted"].tolist() == expected["predicted"].tolist()
    assert (tmp_path / "cam.png").stat().st_size > 0


@pytest.mark.slow
def test_bad_input_is_a_clear_error(tiny_runs: Path, sample_dir: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run = tiny_runs / "prognet" / "alexnet" / "seed-0"
    images = _prognet_series(run, sample_dir)["path"].tolist()
    model = predict.load_prognet(run)
    with pytest.raises(ConfigError, match="exactly 3"):
        predict.predict_prognet(model, images[:2])
    with pytest.raises(ConfigError, match="no images"):
        predict.predict_prognet(model, [])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ImageError, match="broken.png"):
        predict.predict_prognet(model, [images[0], str(broken), images[2]])
    with pytest.raises(ConfigError, match="not 'detector'"):
        predict.load_detector(run)
    # a model whose backbone weights changed since training: the features would differ
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(run), str(copy)], check=True)
    card = json.loads((copy / "model" / "model.json").read_text())
    card["feature_spec"]["init_seed"] = 7
    (copy / "model" / "model.json").write_text(json.dumps(card))
    with pytest.raises(ConfigError, match="features changed"):
        predict.load_prognet(copy)
    # given a run folder, the images are checked before the model is loaded (the command
    # reports a wrong count or a broken file without importing TensorFlow)
    with monkeypatch.context() as patched:
        patched.setattr(predict, "_load_file", lambda path: pytest.fail("model loaded"))
        for given, words in ((images[:2], "exactly 3"), ([images[0], str(broken), images[2]],
                                                          "broken.png")):
            with pytest.raises(CxrError, match=words):
                predict.predict_prognet(run, given)
    # the CLI prints the message, no traceback
    result = _cxr("prognet", "--run", str(run), *images[:2])
    assert result.returncode == 2 and "exactly 3" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_score_over_time_slides_the_window(tiny_runs: Path, sample_dir: Path) -> None:
    run = tiny_runs / "prognet" / "alexnet" / "seed-0"
    series = _prognet_series(run, sample_dir)
    paths = series["path"].tolist()[:3] + series["path"].tolist()[3:4]
    table = predict.prognet_over_time(run, paths)
    assert table["images_read"].tolist() == [0, 0, 3, 3]
    assert table["survival_score"].iloc[:2].isna().all()
    first = predict.predict_prognet(run, paths[:3])["survival_score"].iloc[0]
    assert table["survival_score"].iloc[2] == pytest.approx(first, abs=1e-7)
    images, cams, titles = predict.prognet_grad_cams(run, paths[:3])
    assert len(images) == len(cams) == len(titles) == 3
    assert all(cam.shape == (32, 32) and 0 <= cam.min() <= cam.max() <= 1 for cam in cams)


def test_a_folder_without_a_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(predict.NoModelError, match=str(tmp_path)):
        predict.load_prognet(tmp_path)
    with pytest.raises(CxrError, match="no such run folder"):
        predict.load_detector(tmp_path / "nope")


def test_series_table_checks_its_columns(tmp_path: Path) -> None:
    csv = tmp_path / "series.csv"
    csv.write_text("patient_id,path\n1,a.png\n")
    with pytest.raises(DataError, match="offset"):
        predict.read_series(csv)
    (tmp_path / "b.png").write_bytes(b"")
    csv.write_text("patient_id,path,offset\n1,a.png,5\n1,b.png,2\n2,c.png,0\n")
    series = predict.read_series(csv)
    assert series == {"1": [str(tmp_path / "b.png"), "a.png"], "2": ["c.png"]}


@pytest.mark.slow
def test_reports_read_a_subset_of_runs_and_say_what_is_missing(
        tiny_runs: Path, sample_dir: Path, tmp_path: Path) -> None:
    """One backbone and one detector model: chapters 4-6 run, and chapter 5 lists what it
    asked for and did not find (resnet50, cnn_lstm) instead of failing. Both calls share
    one warm kernel, as a batch's reports do."""
    plan = batch.plan("sample", sample_dir, tiny_runs, backbones=["alexnet"], seeds=[0],
                      models=["cnn"], folds=[0])
    with batch.Workers(1) as pool:
        done = batch.run_reports(plan, reports=("comparisons", "qualitative", "use"), pool=pool)
        assert [r.status for r in done] == ["ok", "ok", "ok"], [r.error for r in done]
        # an empty results folder: the report fails, and names the notebook holding the error
        (failed,) = batch.run_reports(batch.plan("sample", sample_dir, tmp_path / "empty"),
                                      reports=("comparisons",), pool=pool)
    chapter5 = (tiny_runs / "05_qualitative.ipynb").read_text()
    assert "detector/cnn_lstm/fold-0" in chapter5 and "prognet/resnet50/seed-*" in chapter5
    assert (tiny_runs / "figures" / "use_prognet_over_time.png").is_file()
    assert (tiny_runs / "figures" / "gradcam_detector.png").is_file()
    assert failed.status == "failed" and "no finished runs" in failed.error
    assert Path(failed.failed_notebook).is_file()
    assert failed.failed_notebook.endswith("04_comparisons.failed.ipynb")


@pytest.mark.slow
def test_reports_on_detector_runs_alone(tiny_runs: Path, sample_dir: Path, tmp_path: Path) -> None:
    """A folder of detector runs only: chapters 4 and 5 run every cell, exercises included,
    and say the ProgNet parts are left out; chapter 6, which needs a run of each experiment,
    stops at its first cell in one line. One warm kernel, as a batch's reports."""
    import shutil

    from cxrlib import runs

    results = tmp_path / "results"
    shutil.copytree(tiny_runs / "detector", results / "detector")
    data = {"data_dir": str(sample_dir)}
    with runs.WarmKernel() as kernel:
        for name, extra in (("comparisons", {}), ("qualitative", data)):
            executed = runs.execute_in_place(name, tmp_path / f"{name}.ipynb",
                                             {"results_dir": str(results), **extra}, kernel=kernel)
            text = executed.read_text()
            assert '"output_type": "error"' not in text, name
            assert "no ProgNet run" in text
        with pytest.raises(Exception, match="NoRuns"):
            runs.execute_in_place("use", tmp_path / "use.ipynb",
                                  {"results_dir": str(results), **data}, kernel=kernel)
    cells = json.loads((tmp_path / "use.failed.ipynb").read_text())["cells"]
    errors = [o for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert len(errors) == 1 and len(errors[0]["traceback"]) == 1
    assert "no finished prognet run" in errors[0]["traceback"][0]
