"""The papers as written: published numbers pinned to the texts, the profiles' runs
checkable offline, the Keras preprocessing matched, intervals that resample patients."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlib import batch, compare, detector, paper, prognet, runs
from cxrlib.errors import ConfigError
from cxrlib.images import scale_pixels
from cxrlib.metrics import bootstrap_ci, cluster_bootstrap_ci

PAPERS = Path(__file__).resolve().parents[2] / "shared" / "papers"
needs_papers = pytest.mark.skipif(not PAPERS.is_dir(),
                                  reason=f"{PAPERS} is absent (the papers' texts sit in ../shared)")


def _text(name: str) -> str:
    return re.sub(r"\s+", " ", (PAPERS / name).read_text(errors="replace"))


# --------------------------------------------------------------------------- paper.py
@needs_papers
@pytest.mark.parametrize("backbone,title", [("alexnet", "AlexNet"), ("vgg16", "VGG16"),
                                            ("vgg19", "VGG19"), ("resnet50", "ProNet")])
def test_prognet_table_i_matches_the_paper_text(backbone: str, title: str) -> None:
    row = paper.PROGNET[backbone]
    match = re.search(rf"{title} ([\d.]+)% ([\d.]+)% ([\d.]+)% ([\d.]+)%", _text("prognet-2020.txt"))
    assert match, title
    printed = [float(v) / 100 for v in match.groups()]
    assert printed == pytest.approx([row[k] for k in ("tp_rate", "fn_rate", "fp_rate", "tn_rate")])


@needs_papers
def test_prognet_table_ii_and_setup_match_the_paper_text() -> None:
    text = _text("prognet-2020.txt")
    accuracies = " ".join(f"{paper.PROGNET[b]['accuracy'][0]:.3f} ±{paper.PROGNET[b]['accuracy'][1]:.2f}"
                          for b in ("alexnet", "vgg16", "vgg19", "resnet50"))
    assert f"Accuracy {accuracies}" in text
    setup = paper.PROGNET_SETUP
    assert f"data for {setup['patients']} patients" in text
    assert f"{setup['train_sequences']} sequences for training" in text
    assert f"{setup['test_sequences']} sequences for the test" in text
    assert f"{setup['lstm_units']} hidden units" in text and f"dropout layer of {setup['dropout']}" in text
    assert f"batch size was {setup['batch_size']} and {setup['epochs']} epochs" in text
    assert "FC-" + ", FC-".join(map(str, setup["dense_units"])) in text.replace(", and FC-", ", FC-")


def test_table_i_rates_are_shares_of_predicted_classes() -> None:
    """TP% + FP% = 100 and FN% + TN% = 100 in every row: what PROGNET_TABLE_I_NOTE says."""
    for row in paper.PROGNET.values():
        assert row["tp_rate"] + row["fp_rate"] == pytest.approx(1.0, abs=2e-4)
        assert row["fn_rate"] + row["tn_rate"] == pytest.approx(1.0, abs=2e-4)
    assert "TP% + FP% = 100" in paper.PROGNET_TABLE_I_NOTE


@needs_papers
@pytest.mark.parametrize("model", ["cnn", "cnn_lstm"])
def test_detector_tables_match_the_paper_text(model: str) -> None:
    text = _text("cnn-lstm-detector-2020.txt")
    entry = paper.DETECTOR[model]
    pct = lambda v: f"{round(v * 100)}%"  # noqa: E731
    assert f"is {pct(entry['accuracy'])} for COVID-19, pneumonia, and normal cases" in text \
        or f"accuracy is {pct(entry['accuracy'])} for COVID-19, pneumonia, and normal" in text
    specificity = [pct(entry["specificity"][c]) for c in detector.CLASSES]
    assert f"{specificity[0]}, {specificity[1]}, and {specificity[2]} for COVID-19" in text
    if model == "cnn":
        sensitivity = [pct(entry["sensitivity"][c]) for c in detector.CLASSES]
        assert f"achieved {sensitivity[0]}, {sensitivity[1]}, and {sensitivity[2]}" in text
        f1 = [pct(entry["f1"][c]) for c in detector.CLASSES]
        assert f"obtained {f1[0]}, {f1[1]}, {f1[2]}" in text
    assert f"{entry['misclassified']} misclassified images for CNN" in text \
        or f"{entry['misclassified']} misclassified images for CNN-LSTM" in text \
        or f"{['zero', 'one', 'two', 'three', 'four'][entry['misclassified']]} misclassified images for " \
           f"{'CNN-LSTM' if model == 'cnn_lstm' else 'CNN'}" in text


@needs_papers
def test_detector_setup_and_table_5_match_the_paper_texts() -> None:
    text, cord = _text("cnn-lstm-detector-2020.txt"), _text("cnn-lstm-detector-2020-cord19.txt")
    setup = paper.DETECTOR_SETUP
    assert "learning rate is 0.0001" in text and f"maximum epochs number is {setup['max_epochs']}" in text
    counts = setup["images"]
    assert f"{counts['covid19']} X-ray images of COVID-19" in cord
    assert f"{counts['pneumonia']} X-ray images of pneumonia" in cord
    assert f"{counts['normal']} X-ray images of normal" in cord
    assert f"all {setup['test_covid19']} images of COVID-19" in text
    assert f"among {setup['test_images']} images" in text
    for study, model, accuracy in paper.LITERATURE:
        if study.startswith("Rahimzadeh"):  # its row lost its number in both extractions
            assert "Xception and ResNet50V2" in text and f"{accuracy * 100:.1f}%" in text
            continue
        name = "Proposed System" if study.startswith("Islam") else study
        pattern = rf"{re.escape(name)} (\[\d+\] )?{re.escape(model)} {accuracy * 100:.1f}"
        assert re.search(pattern, cord, flags=re.IGNORECASE), (study, model, accuracy)


def test_impossible_cnn_lstm_row_is_flagged() -> None:
    """Read as true specificity: sensitivity 1.00 on 22 COVID-19 images with F1 1.00 leaves
    no false COVID-19 call, but specificity 0.91 on the other 42 means about 4."""
    row, setup = paper.DETECTOR["cnn_lstm"], paper.DETECTOR_SETUP
    others = setup["test_images"] - setup["test_covid19"]
    false_calls = round(others * (1 - row["specificity"]["covid19"]))
    tp = setup["test_covid19"]
    f1 = 2 * tp / (2 * tp + false_calls)
    assert round(f1, 2) < row["f1"]["covid19"] and false_calls > row["misclassified"]
    assert "impossible" in paper.DETECTOR_NOTES["cnn_lstm"]
    assert "precision" in paper.DETECTOR_NOTES["cnn"]


def _shown(value: float) -> set[int]:
    return {round(100 * value), int(100 * value + 1e-9)}


def test_the_matrix_found_for_table_3_reproduces_it_read_as_precision() -> None:
    """The search's matrix checked by plain arithmetic: read as precision, one matrix of
    the 64 test images gives every entry of Table 3; read as specificity, fewer."""
    best, found = compare.published_confusions("cnn")
    assert best == len(compare.published_entry_names()) and len(found) == 1
    matrix, printed = found[0], paper.DETECTOR["cnn"]
    assert matrix.sum() == paper.DETECTOR_SETUP["test_images"]
    assert matrix[0].sum() == paper.DETECTOR_SETUP["test_covid19"]
    for c, name in enumerate(detector.CLASSES):
        hit, called, true = matrix[c, c], matrix[:, c].sum(), matrix[c].sum()
        assert round(100 * printed["specificity"][name]) in _shown(hit / called)
        assert round(100 * printed["sensitivity"][name]) in _shown(hit / true)
        assert round(100 * printed["f1"][name]) in _shown(2 * hit / (called + true))
    assert matrix.sum() - np.trace(matrix) == printed["misclassified"]
    assert compare.published_confusions("cnn", first="specificity")[0] < best


def test_a_changed_entry_is_flagged_as_a_misprint(monkeypatch) -> None:
    """Table 3 as printed has no misprint; change one number and it is the one flagged."""
    assert not compare.published_entries("cnn").filter(like="misprint").any().any()
    changed = {**paper.DETECTOR["cnn"], "f1": {**paper.DETECTOR["cnn"]["f1"], "normal": 0.99}}
    monkeypatch.setitem(paper.DETECTOR, "cnn", changed)
    entries = compare.published_entries("cnn")
    flagged = entries[entries.filter(like="misprint").any(axis=1)]
    assert flagged[["entry", "class"]].values.tolist() == [["f1", "normal"]]


def test_no_matrix_reproduces_all_of_table_4() -> None:
    """Every best matrix of Table 4 leaves entries out; each family names them, and the
    entries table marks exactly those."""
    families = compare.published_families("cnn_lstm")
    assert families and all(f["reproduces"] < len(compare.published_entry_names()) and f["left out"]
                           for f in families)
    entries = compare.published_entries("cnn_lstm")
    for k, family in enumerate(families, start=1):
        assert entries[f"misprint if matrix {k}"].sum() == len(family["left out"])


# --------------------------------------------------------------------------- profiles
@pytest.mark.parametrize("profile", sorted(batch.PROFILES))
def test_every_run_of_every_profile_checks_offline(profile: str, tmp_path: Path) -> None:
    plan = batch.plan(profile, tmp_path / "data", tmp_path / "out")
    assert plan.runs
    for run in plan.runs:
        merged = {**runs.notebook_defaults(run.notebook), **run.parameters}
        cls = prognet.Config if run.notebook == "prognet" else detector.Config
        config = cls(**{k: v for k, v in merged.items() if k in cls.__dataclass_fields__}).check()
        if profile == "paper" and run.notebook == "prognet":
            if config.backbone == "alexnet":
                assert config.weights is None and "alexnet" in config.weights_note
            else:
                assert config.weights == "imagenet" and not config.weights_note
    if profile == "paper":
        assert {r.parameters["backbone"] for r in plan.runs if r.notebook == "prognet"} == set(batch.BACKBONES)


def test_weights_per_backbone_and_the_alexnet_fallback(tmp_path: Path) -> None:
    weights = tmp_path / "alexnet.weights.h5"
    plan = batch.plan("paper", tmp_path, tmp_path / "out", seeds=[0],
                      overrides={"weights": {"alexnet": str(weights)}})
    chosen = {r.parameters["backbone"]: r.parameters["weights"] for r in plan.runs
              if r.notebook == "prognet"}
    assert chosen == {"alexnet": str(weights), "vgg16": "imagenet", "vgg19": "imagenet",
                      "resnet50": "imagenet"}
    assert batch.resolve_weights("alexnet", "imagenet")["weights"] is None
    assert batch.resolve_weights("vgg16", None) == {"weights": None}


def test_a_run_failing_its_check_is_recorded_and_the_batch_goes_on(tmp_path: Path, monkeypatch) -> None:
    plan = batch.plan("quick", tmp_path, tmp_path / "out", backbones=["alexnet"], seeds=[0, 1],
                      models=["cnn"], folds=[0])
    plan.runs[0].parameters["weights"] = str(tmp_path / "missing.weights.h5")
    extracted = []
    monkeypatch.setattr(prognet, "cohort", lambda data_dir, config: "cohort")
    monkeypatch.setattr(prognet, "extract", lambda *a, **k: extracted.append("prognet"))
    monkeypatch.setattr(detector, "dataset", lambda data_dir, config: "table")
    monkeypatch.setattr(detector, "extract", lambda *a, **k: extracted.append("detector"))
    batch.prepare_features(plan, progress=False)
    bad, good, det = plan.runs
    assert bad.status == "failed" and "missing.weights.h5" in bad.error and not bad.checked_ok
    assert good.status == "pending" and det.status == "pending"
    assert extracted == ["prognet", "detector", "detector"]  # the good ones were prepared
    assert batch.execute(bad) is bad and bad.status == "failed"  # never started


# --------------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize("backbone", ["vgg16", "vgg19", "resnet50"])
def test_caffe_scaling_equals_keras_preprocess_input(backbone: str) -> None:
    import keras

    from cxrlib import models

    module = {"vgg16": keras.applications.vgg16, "vgg19": keras.applications.vgg19,
              "resnet50": keras.applications.resnet50}[backbone]
    pixels = np.random.default_rng(3).integers(0, 256, size=(2, 17, 23, 3)).astype(np.float32)
    ours = scale_pixels(pixels, models.input_scale(backbone))
    theirs = np.asarray(module.preprocess_input(pixels.copy()))
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


# --------------------------------------------------------------------------- intervals
def _accuracy(y: np.ndarray, s: np.ndarray) -> float:
    return float(((s >= 0.5) == y).mean())


def test_repeated_rows_do_not_narrow_a_patient_interval() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 33)
    s = np.where(rng.random(33) < 0.8, y, 1 - y).astype(float)
    patients = np.arange(33)
    once = cluster_bootstrap_ci(_accuracy, y, s, groups=patients, n_resamples=500)
    tenfold = cluster_bootstrap_ci(_accuracy, np.tile(y, 10), np.tile(s, 10),
                                   groups=np.tile(patients, 10), n_resamples=500)
    assert once == pytest.approx(tenfold)
    rows = bootstrap_ci(_accuracy, np.tile(y, 10), np.tile(s, 10), n_resamples=500)
    assert rows[1] - rows[0] < 0.6 * (once[1] - once[0])  # what resampling rows pretended


def test_table_i_names_each_rate_and_sets_the_paper_beside_the_matching_one() -> None:
    y = np.array([1, 1, 1, 0, 0, 1, 1, 0])
    s = np.array([.9, .8, .3, .2, .7, .9, .6, .1])
    predictions = pd.DataFrame({"backbone": "vgg16", "label": y, "survival_score": s,
                                "patient_id": [f"p{i % 5}" for i in range(8)]})
    runs_table = pd.DataFrame([{"backbone": "vgg16", "scorer": "model", "weights": "none",
                                "tp_rate": 0.8, "tn_rate": 2 / 3, "precision": 0.8, "npv": 2 / 3}])
    table = compare.prognet_table_i(runs_table, predictions).set_index("rate")
    assert table.loc["survivors found: TP/(TP+FN)", "pooled"] == 0.8
    assert table.loc["deaths found: TN/(TN+FP)", "pooled"] == pytest.approx(0.667, abs=1e-3)
    shares = {p: compare.TABLE_I_COLUMNS[("predicted_shares", p)] for p in ("survival", "death")}
    swapped = {p: compare.TABLE_I_COLUMNS[("swapped_headers", p)] for p in ("survival", "death")}
    found = table.loc["survivors found: TP/(TP+FN)"]
    assert pd.isna(found[shares["survival"]])  # a sensitivity is no share of a predicted class
    assert found[swapped["survival"]] == paper.PROGNET["vgg16"]["tp_rate"]
    assert found[swapped["death"]] == paper.PROGNET["vgg16"]["tn_rate"]
    ppv = table.loc["predicted survivors who survived: TP/(TP+FP)"]
    assert ppv[shares["survival"]] == paper.PROGNET["vgg16"]["tp_rate"]
    assert ppv[shares["death"]] == paper.PROGNET["vgg16"]["tn_rate"]
    assert pd.isna(ppv[swapped["survival"]])


def test_lr_decay_is_keras_2_decay() -> None:
    from cxrlib import training

    optimizer = training.make_optimizer(1e-4, lr_decay=1e-4)
    schedule = optimizer.learning_rate if callable(optimizer.learning_rate) else optimizer._learning_rate
    for step in (0, 1, 120, 10_000):
        assert float(schedule(step)) == pytest.approx(1e-4 / (1 + 1e-4 * step), rel=1e-6)
    assert float(training.make_optimizer(1e-4).learning_rate) == pytest.approx(1e-4)


def test_l2_reading_adds_a_penalty_and_bad_values_are_refused() -> None:
    from cxrlib import models

    plain, penalised = models.build_prognet_head(8), models.build_prognet_head(8, l2=1e-4)
    assert not plain.losses and len(penalised.losses) >= 5
    with pytest.raises(ConfigError, match="l2"):
        models.build_prognet_head(8, l2=-1)
    with pytest.raises(ConfigError, match="weight_decay"):
        prognet.Config(weight_decay=-1.0, weights=None).check()
    with pytest.raises(ConfigError, match="weight_decay_reading"):
        prognet.Config(weight_decay_reading="adam", weights=None).check()


def test_decoupled_decay_shrinks_each_weight_by_the_decay_per_step() -> None:
    """AdamW as Loshchilov & Hutter define it: with a zero gradient (no Adam step), one
    step multiplies every weight by 1 - decay, whatever the learning rate."""
    import keras

    from cxrlib import training

    for learning_rate in (1e-4, 1e-2):
        weight = keras.Variable(np.full((3,), 2.0, dtype="float32"))
        optimizer = training.make_optimizer(learning_rate, decoupled_decay=1e-2)
        optimizer.apply_gradients([(keras.ops.zeros((3,)), weight)])
        assert np.asarray(weight) == pytest.approx(2.0 * (1 - 1e-2), rel=1e-6)
    plain = keras.Variable(np.full((3,), 2.0, dtype="float32"))
    training.make_optimizer(1e-4).apply_gradients([(keras.ops.zeros((3,)), plain)])
    assert np.asarray(plain) == pytest.approx(2.0)  # no reading on: the weight stays


@pytest.mark.parametrize("reading", sorted(prognet.WEIGHT_DECAY_READINGS))
def test_one_number_three_readings(reading: str) -> None:
    """The paper's 1e-4 goes to exactly one of the three mechanisms."""
    config = prognet.Config(weights=None, weight_decay_reading=reading).check()
    used = {name: getattr(config, name) for name in ("lr_decay", "l2", "decoupled_decay")}
    on = {"lr_decay": "lr_decay", "l2": "l2", "decoupled": "decoupled_decay"}[reading]
    assert used == {name: (paper.PROGNET_SETUP["weight_decay"] if name == on else 0.0) for name in used}


def test_runs_recorded_with_the_old_knobs_keep_their_reading() -> None:
    assert prognet.config_from({"weights": None, "lr_decay": 1e-4, "l2": 0.0}).lr_decay == 1e-4
    old_l2 = prognet.config_from({"weights": None, "lr_decay": 0.0, "l2": 1e-3})
    assert (old_l2.weight_decay_reading, old_l2.l2, old_l2.lr_decay) == ("l2", 1e-3, 0.0)


def test_a_per_seed_cnn_draw_gives_each_seed_its_own_random_cnn() -> None:
    shared = [prognet.Config(weights=None, seed=k).check().feature_spec() for k in (0, 3)]
    own = [prognet.Config(weights=None, seed=k, cnn_draw="per_seed").check().feature_spec()
           for k in (0, 3)]
    assert shared[0].key() == shared[1].key()
    assert own[0].key() != own[1].key() and own[1].init_seed == 3
    with pytest.raises(ConfigError, match="cnn_draw"):
        prognet.Config(weights=None, cnn_draw="each").check()


def test_cohort_summary_states_both_cohorts(tiny_data: Path) -> None:
    config = prognet.Config(weights=None, seq_len=2).check()
    table = prognet.cohort_summary(tiny_data, config).set_index("findings")
    assert list(table.index) == ["all", "COVID-19"]
    assert table.loc["all", "used by this run"] and not table.loc["COVID-19", "used by this run"]
    assert (table["patients"] == table["deaths"] + table["survivors"]).all()
    assert table.loc["COVID-19", "not COVID-19"] == 0


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent (real data sits in ../shared)")
def test_the_readme_states_the_real_cohorts_as_the_data_has_them() -> None:
    config = prognet.Config(weights=None).check()
    table = prognet.cohort_summary(SHARED_DATA, config).set_index("findings")
    every, covid = table.loc["all"], table.loc["COVID-19"]
    readme = re.sub(r"\s+", " ", (Path(__file__).resolve().parents[1] / "README.md").read_text())
    assert (f"{every['patients']} patients with {every['deaths']} deaths when every finding is kept"
            in readme)
    assert f"{every['not COVID-19']} of them are not COVID-19 cases" in readme
    assert f"leaves {covid['patients']} patients with {covid['deaths']} deaths" in readme
    assert (every["patients"], every["deaths"], covid["patients"], covid["deaths"]) == (32, 7, 20, 4)


@pytest.mark.parametrize("notebook", sorted(p.name for p in (Path(__file__).resolve().parents[1]
                                                            / "notebooks").glob("*.ipynb")))
def test_papermill_reads_every_parameter_of_every_notebook(notebook: str) -> None:
    """A parameters line papermill cannot parse is invisible to `-p` and to the batch."""
    import ast

    import nbformat
    import papermill

    path = Path(__file__).resolve().parents[1] / "notebooks" / notebook
    cell = next(c for c in nbformat.read(path, 4).cells if "parameters" in c.metadata.get("tags", []))
    assigned = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert set(papermill.inspect_notebook(str(path))) == assigned
