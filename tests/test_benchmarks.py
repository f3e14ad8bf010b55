"""The benchmark runner: structure of its JSON and Markdown (never its speed)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import FIXED_EPOCH_S_AT_BATCH_4

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # benchmarks/ is not installed: it runs from the clone
    sys.path.insert(0, str(REPO))

from benchmarks import patients, render, stats  # noqa: E402

STAT_KEYS = {"median", "min", "max", "n", "values"}


def test_summarize_and_fit() -> None:
    summary = stats.summarize([3.0, 1.0, 2.0])
    assert summary["median"] == 2.0 and (summary["min"], summary["max"]) == (1.0, 3.0)
    fit = stats.linear_fit([1, 2, 4], [2.0, 4.0, 8.0])
    assert fit["slope"] == pytest.approx(2.0) and fit["r2"] == pytest.approx(1.0)


@pytest.mark.parametrize("suffix", [".jpeg", ".png"])
def test_distinct_copy_keeps_pixels_and_changes_bytes(tmp_path: Path, suffix: str) -> None:
    source = tmp_path / f"x{suffix}"
    Image.fromarray(np.arange(48 * 40, dtype=np.uint8).reshape(40, 48)).save(source)
    copy = patients.distinct_copy(source, tmp_path / "copy" / source.name, "cxr-copy-1")
    assert copy.read_bytes() != source.read_bytes()
    assert np.array_equal(np.asarray(Image.open(copy)), np.asarray(Image.open(source)))


@pytest.mark.slow
def test_quick_benchmark_writes_json_and_markdown(sample_dir: Path, tmp_path: Path) -> None:
    from benchmarks.suite import DEFAULT_SECTIONS, main

    out = tmp_path / "bench" / "results.json"
    # every default section but paper_detector, whose two Table 2 networks take half a
    # minute to build and trace (test_paper_detector_section_measures_and_renders)
    only = [name for name in DEFAULT_SECTIONS if name != "paper_detector"]
    assert main(["--quick", "--data-dir", str(sample_dir), "--out", str(out),
                 "--work-dir", str(tmp_path), "--only", *only]) == 0
    result = json.loads(out.read_text())
    assert {"paper_detector", "whole"}.isdisjoint(result)
    assert all(result[name]["status"] == "ok" for name in only)
    assert {"cpu_model", "instruction_set", "usable_cores", "memory_gb"} <= set(result["machine"])
    assert {"python", "tensorflow", "keras", "numpy"} <= set(result["versions"])

    for name in result["settings"]["backbones"]:
        block = result["extraction"]["backbones"][name]
        for key in ("extract_images_per_s", "predict_images_per_s", "ratio"):
            assert STAT_KEYS <= set(block[key]) and block[key]["median"] > 0
        assert 0 < block["ratio_ceiling"] <= 1 and block["share_of_ceiling"] > 0
        naive = result["cached_vs_naive"]["backbones"][name]
        assert naive["target"]["speedup"] > 0
        assert naive["equivalent"] and naive["max_abs_diff"] <= naive["atol"]
        assert naive["naive"]["equivalence"]["feature_relative_diff"] < 1e-3

    sizes = list(result["patients"]["sizes"].values())
    assert [b["n_patients"] for b in sizes] == [sizes[0]["n_patients"] * f
                                               for f in result["settings"]["factors"]]
    assert all(b["distinct_images"] == b["n_images"] for b in sizes)  # copies miss the cache
    assert set(result["patients"]["fit_total_s"]) == {"slope", "intercept", "r2"}
    trainers = result["trainers"]
    assert STAT_KEYS <= set(trainers["kept_s"]) and trainers["kept_s"]["n"] == 1
    assert trainers["saved_s_per_training"] == pytest.approx(
        trainers["dropped_s"]["median"] - trainers["kept_s"]["median"])

    markdown = out.with_suffix(".md").read_text()
    assert markdown == render.render_markdown(result)
    assert "| alexnet |" in markdown and "Speed-up" in markdown and "per training" in markdown
    assert "**The detector as published**: not run." in markdown


def test_ceiling_is_the_overlap_bound() -> None:
    from benchmarks.extraction import ceiling

    block = {"predict_images_per_s": {"median": 200.0}, "decode_images_per_s": {"median": 400.0},
             "ratio": {"median": 0.72}}
    bound = ceiling(block, cores=2)
    # convolution 2/200 = 10 ms of CPU per image, decoding 2.5 ms: at best 10 / 12.5
    assert bound["ratio_ceiling"] == pytest.approx(0.8)
    assert bound["share_of_ceiling"] == pytest.approx(0.9)
    assert ceiling(block, cores=8)["ratio_ceiling"] == pytest.approx(40 / 42.5)


def _whole_block(profile: str) -> dict:
    return {"profile": profile, "data_dir_shown": "data/sample", "weights": "none",
            "selection": [], "runs": {mode: {
                "wall_s": 120.0, "exit_code": 0, "workers": 2, "run_counts": {"ok": 52},
                "command": f"cxr batch --profile {profile} --data-dir data/sample -p weights none",
                "phases_s": {"prepare_features": 30.0, "runs": 60.0, "reports": 6.0},
                "budget": {}} for mode in ("cold", "warm")}}


def test_update_measures_only_the_chosen_section_and_keeps_the_rest(
        sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import suite, whole

    earlier = tmp_path / "results.json"
    kept = {"benchmark": "cxr-repro", "extraction": {"status": "ok", "image_size": 224,
                                                      "images": 4, "repeats": 1, "goal": 0.9,
                                                      "backbones": {}}}
    earlier.write_text(json.dumps(kept))
    calls = []
    monkeypatch.setattr(whole, "run", lambda settings, *args, log=print: calls.append(
        settings["whole_profile"]) or _whole_block(settings["whole_profile"]))
    code = suite.main(["--update", str(earlier), "--only", "whole", "--whole-profile", "sample",
                       "--data-dir", str(sample_dir), "--work-dir", str(tmp_path)])
    assert code == 0 and calls == ["sample"]
    result = json.loads(earlier.read_text())  # written back in place
    assert result["extraction"] == kept["extraction"]
    assert result["whole"]["status"] == "ok" and result["whole"]["runs"]["warm"]["wall_s"] == 120
    assert result["settings"]["sections"] == ["whole"]
    markdown = earlier.with_suffix(".md").read_text()
    assert "| cold | 2.00 | 0.50 | 1.00 | 0.10 | 52 ok |" in markdown


def test_batch_counts_reads_what_cxr_batch_wrote(tmp_path: Path) -> None:
    from benchmarks.whole import batch_counts

    assert batch_counts(tmp_path) == {}  # no batch.json: nothing to add
    (tmp_path / "batch.json").write_text(json.dumps(
        {"counts": {"ok": 4}, "workers": 2, "seconds": 99.0, "phases_s": {"runs": 90.0}}))
    (tmp_path / "batch_summary.csv").write_text(
        "run,status,seconds,folder,error\nprognet alexnet seed 0,ok,10.0,a,\n")
    counts = batch_counts(tmp_path)
    assert counts["run_counts"] == {"ok": 4} and counts["workers"] == 2
    assert counts["phases_s"] == {"runs": 90.0, "batch_s": 99.0}
    assert counts["budget"] == {}  # the run's notebook is not there: nothing to split


def test_paper_detector_section_measures_and_renders(fixed_step_cost: list) -> None:
    """The section measures each end-to-end model once with its own settings and
    extrapolates to the paper's grid (the measurement answers fixed seconds: conftest's
    ``fixed_step_cost``)."""
    from benchmarks import paper_detector

    settings = {"image_size": 32, "batch_size": 4, "paper_steps": 3}
    block = paper_detector.run(settings, log=lambda m: None)
    assert [call[:5] + call[6:] for call in fixed_step_cost] == [
        (kind, "paper", True, 32, 4, 3, 1) for kind in ("cnn", "cnn_lstm")]
    assert set(block["models"]) == {"cnn", "cnn_lstm"} and block["epochs"] == 200
    assert block["n_images"] == 421 and block["n_folds"] == 5
    # 200 epochs, 5 runs per model, twice with the shortcut audit
    epoch_s = FIXED_EPOCH_S_AT_BATCH_4
    for model in block["models"].values():
        assert STAT_KEYS <= set(model["train_step_s"]) and model["train_step_s"]["median"] == 0.5
        assert model["train_steps_per_epoch"] == 84 and model["epoch_s"] == epoch_s
        assert model["folds_s"] == pytest.approx(5 * 200 * epoch_s)
        assert model["folds_with_audit_s"] == pytest.approx(2 * model["folds_s"])
    grid = block["grid"]
    assert grid["with_audit_s"] == pytest.approx(
        sum(m["folds_with_audit_s"] for m in block["models"].values()))
    assert grid["without_audit_hours"] == pytest.approx(grid["without_audit_s"] / 3600)
    lines = "\n".join(render.section("Detector", {"status": "ok", **block},
                                     render.paper_detector_lines))
    assert "| cnn_lstm |" in lines and "5-fold × 2-model grid" in lines
    assert render.section("Detector", None, render.paper_detector_lines) == [
        "**Detector**: not run."]
    assert render.section("Detector", {"status": "failed: X"}, render.paper_detector_lines) == [
        "**Detector**: failed: X."]


def test_rendered_commands_name_no_machine_path() -> None:
    shown = render.shown_command("python -m benchmarks --only whole --work-dir /work/x "
                                 "--out results/b.json /tmp/y")
    assert shown == "python -m benchmarks --only whole --work-dir PATH --out results/b.json PATH"
