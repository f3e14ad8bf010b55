"""cxrlib.paths: a machine's path as the repository shows it, wherever the checkout lives."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxrlib import book, paths, readme

ROOT = Path(__file__).resolve().parents[1]


def test_the_repository_is_the_checkout_of_the_tests() -> None:
    assert paths.repository() == ROOT
    assert (paths.repository() / "notebooks" / "01_data_exploration.ipynb").is_file()


def test_in_and_beside_the_repository_become_relative() -> None:
    assert paths.shown_path(ROOT / "results" / "real") == "results/real"
    assert paths.shown_path(str(ROOT / "results" / "real")) == "results/real"
    assert paths.shown_path(ROOT / "results" / "real", ROOT / "notebooks") == "../results/real"
    beside = ROOT.parent / "shared" / "data"
    assert paths.shown_path(beside) == "../shared/data"
    assert paths.shown_path(beside, ROOT / "notebooks") == "../../shared/data"
    assert paths.beside_repository(beside) and paths.beside_repository(ROOT)


def test_elsewhere_keeps_only_its_last_two_names_and_relative_stays() -> None:
    machine_root = next(Path(f"/{name}") for name in ("srv", "mnt") if Path(f"/{name}") != ROOT.parent)
    elsewhere = machine_root / "not-beside-the-checkout" / "a" / "b"
    assert not paths.beside_repository(elsewhere)
    assert paths.shown_path(elsewhere) == ".../a/b"
    for kept in ("../data/sample", "data/sample", "?"):
        assert paths.shown_path(kept) == kept
        assert not paths.beside_repository(kept)


@pytest.mark.parametrize("checkout", ["/check/work/main", "/work/main", "/home/me/src/cxr-repro"])
def test_wherever_the_checkout_lives(checkout: str, monkeypatch) -> None:
    """CI clones into /check/work/main with the data at /check/work/shared: beside the
    checkout is relative there too, and the developers' usual folders are not special."""
    monkeypatch.setattr(paths, "repository", lambda: Path(checkout))
    parent = Path(checkout).parent
    assert paths.shown_path(parent / "shared" / "data") == "../shared/data"
    assert paths.shown_path(Path(checkout) / "results" / "sample") == "results/sample"
    other = Path("/opt") / "other" / "shared" / "data"
    assert paths.shown_path(other) == ".../shared/data"


def test_a_checkout_at_the_top_has_nothing_beside_it(monkeypatch) -> None:
    monkeypatch.setattr(paths, "repository", lambda: Path("/main"))
    assert not paths.beside_repository(Path("/srv/data"))
    assert paths.shown_path(Path("/srv/shared/data")) == ".../shared/data"


def test_the_readme_and_the_book_show_paths_through_it(tmp_path: Path, monkeypatch) -> None:
    """The README's run line names the data folder, the book each chapter's folder, as
    ``shown_path`` does, in a checkout wherever it lives (here: in the temp folder)."""
    checkout = tmp_path / "work" / "main"
    (checkout / "notebooks").mkdir(parents=True)
    monkeypatch.setattr(paths, "repository", lambda: checkout)
    published = checkout / "results" / "real"
    (published / "chapters").mkdir(parents=True)
    (published / "chapters" / book.CHAPTERS[0]).write_text("{}")
    (published / "batch.json").write_text(json.dumps(
        {"profile": "paper", "data_dir": str(tmp_path / "work" / "shared" / "data")}))
    assert "Profile `paper` on `../shared/data`" in readme.run_line(published)
    assert book.chapter_sources(published, None)[0].folder == "results/real"
