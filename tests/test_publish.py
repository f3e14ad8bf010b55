"""cxr publish: a batch made portable (no machine path), small, and complete or loud."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from cxrlib import cli, paths, publish
from cxrlib.publish import PublishError, Rewriter

ROOT = Path(__file__).resolve().parents[1]


def _chapter(parameters: dict, output: str, image: bool = False) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    injected = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in parameters.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    shown = nbformat.v4.new_code_cell("print(data_dir)")
    shown.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
    if image:  # base64 that happens to hold "/work/": an image is never rewritten
        shown.outputs.append(nbformat.v4.new_output(
            "display_data", data={"image/png": "iVBORw0KGgo+/work/AAAA", "text/plain": "<Figure>"}))
    notebook.cells = [nbformat.v4.new_markdown_cell("# A chapter"), injected, shown]
    notebook.metadata["papermill"] = {"parameters": parameters, "input_path": str(ROOT / "notebooks" / "x.ipynb"),
                                      "output_path": f"{parameters['results_dir']}/x.partial.ipynb"}
    return notebook


def _batch(folder: Path, data: Path, credits: bool = False) -> Path:
    """A finished batch as `cxr batch` leaves it, with this machine's absolute paths."""
    folder.mkdir(parents=True)
    (folder / "tables").mkdir()
    pd.DataFrame({"claim": ["c"], "verdict": ["reproduced"]}).to_csv(folder / "tables" / "verdict.csv", index=False)
    (folder / "tables" / "verdict.md").write_text("not published: CSV only\n")
    (folder / "figures").mkdir()
    (folder / "figures" / "roc.png").write_bytes(b"\x89PNG fake")
    (folder / "exploration" / "figures").mkdir(parents=True)
    (folder / "exploration" / "figures" / "classes.png").write_bytes(b"\x89PNG fake")
    (folder / "exploration" / "sequences.csv").write_text("patient_id\n1\n")
    params = {"data_dir": str(data), "results_dir": str(folder)}
    for name in ("01_data_exploration", "04_comparisons", "05_qualitative", "06_use_a_model"):
        text = f"{data}\n{folder}/prognet/resnet50/seed-0 was read\n"
        if credits:
            text += "image | source | licence |\n"
        nbformat.write(_chapter(params, text, image=True), folder / f"{name}.ipynb")
    run = folder / "prognet" / "resnet50" / "seed-0"
    run.mkdir(parents=True)
    nbformat.write(_chapter({**params, "out_dir": f"{run}.partial"}, f"saved to {run}.partial/model\n"),
                   run / "02_prognet.ipynb")
    (run / "predictions.csv").write_text("patient_id,survival_score\n1,0.5\n")
    (folder / "batch.json").write_text(json.dumps({"profile": "paper", "data_dir": str(data),
                                                   "environment": {"processor": "CPU"}}))
    pd.DataFrame({"run": ["prognet resnet50 seed 0"], "folder": [str(run)], "notebook": [""]}).to_csv(
        folder / "batch_summary.csv", index=False)
    return folder


def test_rewriter_makes_paths_relative_and_leaves_other_text() -> None:
    rewrite = Rewriter(ROOT / "notebooks", {str(ROOT / "results" / "x"): "../results/x"})
    assert rewrite(f"read {ROOT}/results/x/tables/a.csv.") == "read ../results/x/tables/a.csv."
    assert rewrite(f"'{ROOT}/results/x/prognet/a/seed-0.partial'") == "'../results/x/prognet/a/seed-0'"
    beside = ROOT.parent / "shared" / "data"
    assert rewrite(str(beside)) == "../../shared/data"
    # a machine folder that does not hold the checkout, wherever the clone is
    machine_root = next(Path(f"/{name}") for name in ("srv", "mnt") if Path(f"/{name}") != ROOT.parent)
    elsewhere = machine_root / "not-beside-the-checkout" / "a" / "b"
    assert rewrite(str(elsewhere)) == ".../a/b"
    for kept in ("../data/sample", "https://example.org/work/a", "a/work/b", "1/2", "/usr/lib/x"):
        assert rewrite(kept) == kept


def test_publish_copies_chapters_tables_and_figures_without_machine_paths(tmp_path: Path,
                                                                         monkeypatch) -> None:
    # A checkout whose folder holds none of tmp_path (a clone may live in the temp folder).
    monkeypatch.setattr(paths, "repository", lambda: Path(ROOT.anchor) / "elsewhere" / "checkout")
    data = tmp_path / "shared" / "data"
    batch = _batch(tmp_path / "checkout" / "results" / "paper-cpu", data)
    out = tmp_path / "checkout" / "results" / "real"
    report = publish.publish(batch, out)
    assert report["chapters"] == ["01_data_exploration.ipynb", "02_prognet.ipynb", "04_comparisons.ipynb",
                                  "05_qualitative.ipynb", "06_use_a_model.ipynb"]
    assert report["missing"] == ["03_detector.ipynb"]
    assert report["credits_missing"] == list(publish.XRAY_CHAPTERS)
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"tables/verdict.csv", "figures/roc.png", "figures/exploration/classes.png",
            "batch.json", "batch_summary.csv", "README.md"} <= files
    assert not any(f.endswith((".md", "predictions.csv", "sequences.csv")) and f != "README.md" for f in files)
    chapter = nbformat.read(out / "chapters" / "02_prognet.ipynb", as_version=4)
    assert str(tmp_path) not in json.dumps(chapter)
    assert "seed-0.partial" not in json.dumps(chapter) and ".partial.ipynb" not in json.dumps(chapter)
    injected = chapter.cells[1].source
    assert "data_dir = '.../shared/data'" in injected  # outside the repository's folder
    images = nbformat.read(out / "chapters" / "01_data_exploration.ipynb", as_version=4).cells[2].outputs[1]
    assert images["data"]["image/png"] == "iVBORw0KGgo+/work/AAAA"
    assert json.loads((out / "batch.json").read_text())["data_dir"].endswith("shared/data")
    assert publish.check_publication(out)["files"] == len(files)


def test_publish_notices_image_credits(tmp_path: Path) -> None:
    batch = _batch(tmp_path / "results" / "b", tmp_path / "data", credits=True)
    assert publish.publish(batch, tmp_path / "results" / "real")["credits_missing"] == []


def test_publish_refuses_what_it_cannot_publish_and_keeps_the_old_folder(tmp_path: Path) -> None:
    out = tmp_path / "real"
    out.mkdir()
    (out / "kept.txt").write_text("old")
    with pytest.raises(PublishError, match="no tables"):
        publish.publish(tmp_path / "nothing", out)
    batch = _batch(tmp_path / "results" / "b", tmp_path / "data")
    (batch / "figures" / "huge.png").write_bytes(b"0" * (publish.MAX_FILE_BYTES + 1))
    with pytest.raises(PublishError, match=r"1 file\(s\) over 5 MB: figures/huge.png"):
        publish.publish(batch, out)
    assert (out / "kept.txt").read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".real.")]  # no staging left


def test_check_publication_finds_a_machine_path_and_a_large_total(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "a.csv").write_text("folder\n/root/results/x\n")
    with pytest.raises(PublishError, match=r"tables/a.csv \(text\) names a machine path"):
        publish.check_publication(tmp_path)
    (tmp_path / "tables" / "a.csv").write_text("folder\nresults/x\n")
    monkeypatch.setattr(publish, "MAX_TOTAL_BYTES", 5)
    with pytest.raises(PublishError, match="over 0 MB"):
        publish.check_publication(tmp_path)


def test_cxr_publish_says_what_it_published(tmp_path: Path, capsys) -> None:
    batch = _batch(tmp_path / "results" / "b", tmp_path / "data")
    assert cli.main(["publish", "--results", str(batch), "--out", str(tmp_path / "real")]) == 0
    printed = capsys.readouterr().out
    assert "published" in printed and "not in the batch: 03_detector.ipynb" in printed
    assert "WARNING" in printed and "licence" in printed
    assert cli.main(["publish", "--results", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 2


def test_a_chapter_too_large_gets_its_figures_in_fewer_colours(tmp_path: Path, monkeypatch) -> None:
    import base64
    import io

    import numpy as np
    from PIL import Image

    batch = _batch(tmp_path / "results" / "b", tmp_path / "data")
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="PNG")
    chapter = nbformat.read(batch / "04_comparisons.ipynb", as_version=4)
    chapter.cells[2].outputs[1]["data"]["image/png"] = base64.b64encode(buffer.getvalue()).decode()
    nbformat.write(chapter, batch / "04_comparisons.ipynb")
    size = (batch / "04_comparisons.ipynb").stat().st_size
    monkeypatch.setattr(publish, "MAX_FILE_BYTES", size * 2 // 3)
    report = publish.publish(batch, tmp_path / "real")
    assert report["shrunk"] == ["04_comparisons.ipynb"]
    published = nbformat.read(tmp_path / "real" / "chapters" / "04_comparisons.ipynb", as_version=4)
    image = Image.open(io.BytesIO(base64.b64decode(published.cells[2].outputs[1]["data"]["image/png"])))
    assert image.mode == "P" and image.size == (200, 200)
    assert "256 colours" in (tmp_path / "real" / "README.md").read_text()
