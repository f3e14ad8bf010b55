"""The benchmark runner: structure of its JSON and Markdown (never its speed)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # benchmarks/ is not installed: it runs from the clone
    sys.path.insert(0, str(REPO))

from benchmarks import render, scaling, stats  # noqa: E402

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
    copy = scaling.distinct_copy(source, tmp_path / "copy" / source.name, "cxr-copy-1")
    assert copy.read_bytes() != source.read_bytes()
    assert np.array_equal(np.asarray(Image.open(copy)), np.asarray(Image.open(source)))


def test_update_readme_needs_both_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{render.START}\nold\n{render.END}\n\nrest\n")
    assert "updated" in render.update_readme(readme, "| a |\n")
    assert readme.read_text() == f"# Title\n\n{render.START}\n| a |\n{render.END}\n\nrest\n"
    plain = tmp_path / "PLAIN.md"
    plain.write_text("# No markers\n")
    assert "untouched" in render.update_readme(plain, "| a |\n")
    assert plain.read_text() == "# No markers\n"


@pytest.mark.slow
def test_quick_benchmark_writes_json_and_markdown(sample_dir: Path, tmp_path: Path) -> None:
    from benchmarks.suite import main

    out = tmp_path / "bench" / "benchmark.json"
    assert main(["--quick", "--data-dir", str(sample_dir), "--out", str(out),
                 "--work-dir", str(tmp_path)]) == 0
    result = json.loads(out.read_text())
    assert result["complete"] is True
    assert {"cpu_model", "logical_cores", "usable_cores", "memory_gb"} <= set(result["machine"])
    assert {"python", "tensorflow", "keras", "numpy"} <= set(result["versions"])
    assert result["spread"] == "min-max"

    backbones = result["settings"]["backbones"]
    for name in backbones:
        block = result["extraction"]["backbones"][name]
        for key in ("extract_images_per_s", "predict_images_per_s", "ratio"):
            assert STAT_KEYS <= set(block[key]) and block[key]["median"] > 0
        naive = result["cached_vs_naive"]["backbones"][name]
        assert naive["target"]["speedup"] > 0
        assert naive["equivalent"] and naive["max_abs_diff"] <= naive["atol"]

    threads = result["scaling"]["threads"]["settings"]
    assert set(threads) == {str(n) for n in result["settings"]["threads"]}
    assert all(STAT_KEYS <= set(b["extract_images_per_s"]) for b in threads.values())
    patients = result["scaling"]["patients"]
    sizes = list(patients["sizes"].values())
    assert [b["n_patients"] for b in sizes] == [sizes[0]["n_patients"] * f
                                               for f in result["settings"]["factors"]]
    assert all(b["distinct_images"] == b["n_images"] for b in sizes)  # copies miss the cache
    assert set(patients["fit_total_s"]) == {"slope", "intercept", "r2"}
    assert result["whole"]["status"].startswith("skipped")

    markdown = out.with_suffix(".md").read_text()
    assert markdown == render.render_markdown(result)
    assert "| alexnet |" in markdown and "Speed-up" in markdown
