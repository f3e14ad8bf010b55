"""Comparison tables and the README's generated sections."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlib import cli, compare
from cxrlib.readme import replace_between, results_markdown
from cxrlib.metrics import binary_metrics, binary_scorer


def _results(folder: Path, resumed: int = 0) -> Path:
    tables = folder / "tables"
    tables.mkdir(parents=True)
    pd.DataFrame([{"backbone": "resnet50", "scorer": "model", "runs": 2, "accuracy": "0.800 ± 0.100",
                   "accuracy 95% CI": "[0.6, 0.9]", "f1": "0.8 ± 0.1", "specificity": "0.5 ± 0.1",
                   "roc_auc": "0.7 ± 0.1", "accuracy (paper)": "0.924 ± 0.03"}]).to_csv(
        tables / "prognet_table_ii.csv", index=False)
    pd.DataFrame([{"model": "cnn", "folds": 5, "accuracy": "0.9 ± 0.02"}]).to_csv(
        tables / "detector_overall.csv", index=False)
    counts = {"ok": 3} if not resumed else {"ok": 1, "skipped (finished)": resumed}
    (folder / "batch.json").write_text(json.dumps({
        "profile": "quick", "data_dir": str(folder.parent / "data" / "sample"), "seconds": 120,
        "workers": 2, "counts": counts, "selection": {"overrides": {"weights": None}},
        "environment": {"cpu_count": 2, "processor": "Test CPU", "versions": {"tensorflow": "2.x"}}}))
    return folder


def test_results_markdown_and_readme_markers(tmp_path: Path) -> None:
    fresh = _results(tmp_path / "results" / "quick")
    resumed = _results(tmp_path / "results" / "again", resumed=40)
    text = results_markdown({"Fresh": fresh, "Resumed": resumed, "Empty": tmp_path / "none"})
    assert "### Fresh" in text and "3 runs in 2.0 min with 2 parallel workers" in text
    assert "41 runs (40 already finished; the last invocation ran 1 in 2.0 min)" in text
    assert "| resnet50 " in text and "0.924 ± 0.03" in text and "_No tables in" in text
    readme = tmp_path / "README.md"
    readme.write_text("top\n<!-- results:start -->\nold\n<!-- results:end -->\nbottom\n")
    assert replace_between(readme, "results", "new\n")
    assert readme.read_text() == "top\n<!-- results:start -->\nnew\n<!-- results:end -->\nbottom\n"
    plain = tmp_path / "PLAIN.md"
    plain.write_text("no markers\n")
    assert not replace_between(plain, "results", "x") and plain.read_text() == "no markers\n"
    assert cli.main(["readme", "--results", f"Fresh={fresh}", "--readme", str(readme)]) == 0
    assert "### Fresh" in readme.read_text() and readme.read_text().endswith("bottom\n")
    assert cli.main(["readme", "--results", "no-equals-sign", "--readme", str(readme)]) == 2


@pytest.mark.parametrize("name", ["accuracy", "tp_rate", "fn_rate", "fp_rate", "tn_rate",
                                  "specificity", "f1", "precision", "npv"])
def test_fast_bootstrap_scorers_agree_with_binary_metrics(name: str) -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        y, s = rng.integers(0, 2, 9), rng.random(9)
        fast, slow = binary_scorer(name)(y, s), binary_metrics(y, s)[name]
        assert (np.isnan(fast) and (slow is None or np.isnan(slow))) or fast == pytest.approx(slow)


def test_detector_tables_say_which_base_made_them(tmp_path: Path) -> None:
    from cxrlib import models

    assert set(compare.BASE_TITLES) == set(models.DETECTOR_BASES)
    rows = [{"model": "cnn", "base": "paper", "weights": "none", "fold": fold, "class": name,
             "accuracy": 0.9, "macro_f1": 0.9, "specificity": 0.9, "sensitivity": 0.9,
             "precision": 0.9, "f1": 0.9}
            for fold in (0, 1) for name in compare.CLASSES]
    runs = pd.DataFrame(rows)
    per_class = compare.detector_per_class(runs)
    assert list(per_class.columns[:2]) == ["model", "base"] and set(per_class["base"]) == {"paper"}
    predictions = pd.DataFrame({"model": "cnn", "label": [0, 1, 2], "patient_id": ["a", "b", "c"],
                                "p_covid19": [0.8, 0.1, 0.1], "p_pneumonia": [0.1, 0.8, 0.1],
                                "p_normal": [0.1, 0.1, 0.8]})
    overall = compare.detector_overall(runs, predictions)
    assert overall.loc[0, "base"] == "paper"
    assert "Table 2 base trained end to end" in compare.literature_table(overall, "w")["study"].iloc[-1]
    assert compare.base_caption(["paper, vgg16"]) == (
        "Table 2 base trained end to end (`base=paper`); "
        "frozen Keras VGG16 base, cached features (`base=vgg16`)")
    folder = _results(tmp_path / "results" / "quick")  # a table from before `base` existed
    assert "**Detector** (frozen Keras VGG16 base, cached features;" in results_markdown(
        {"Old": folder})
    overall.to_csv(folder / "tables" / "detector_overall.csv", index=False)
    assert "**Detector** (Table 2 base trained end to end (`base=paper`);" in (
        results_markdown({"New": folder}))
