"""The book, built and opened in headless Chromium: every page loads, every image is
displayed (loaded, with a non-zero natural width), no internal link is broken, and the
chapters come in order with navigation and a search box.

The book is built the way `make book` builds it: from the published real-data results
(`results/real`) and, for chapters they lack, a sample batch (`results/sample`) when one
is there. CI installs Debian's chromium (`.ci/run`); elsewhere the browser tests skip when
no chromium is on PATH.
"""
from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import pytest

from chromium import Browser, chromium
from cxrlib import book

pytestmark = pytest.mark.xdist_group("book")  # module fixtures: one process (make test)

ROOT = Path(__file__).resolve().parents[1]
NEEDS_CHROMIUM = pytest.mark.skipif(chromium() is None, reason="no chromium on PATH (CI installs "
                                    "Debian's chromium package; apt-get install chromium)")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The book's HTML folder."""
    index = book.build(tmp_path_factory.mktemp("book"), ROOT / "results" / "real",
                       ROOT / "results" / "sample")
    return index.parent


@pytest.fixture(scope="module")
def visited(built: Path) -> dict[str, dict]:
    """Every page of the book (its HTML files outside Sphinx's own folders), as Chromium
    saw it."""
    pages = sorted(p for p in built.rglob("*.html")
                   if not p.relative_to(built).parts[0].startswith("_"))
    with Browser() as browser:
        return {p.relative_to(built).as_posix(): browser.visit(p.as_uri()) for p in pages}


def test_the_book_has_every_chapter_in_order(built: Path) -> None:
    index = (built / "index.html").read_text()
    for name in book.CHAPTERS:
        assert (built / "chapters" / f"{Path(name).stem}.html").is_file(), name
    positions = [index.find(f"chapters/{Path(name).stem}.html") for name in book.CHAPTERS]
    assert -1 not in positions and positions == sorted(positions)
    for page in ("results.html", "deviations.html", "how-to-run.html", "performance.html"):
        assert (built / page).is_file(), page


def test_the_landing_page_is_generated_from_the_results(built: Path) -> None:
    text = (built / "index.html").read_text()
    assert "What the papers claim" in text and "What we found" in text
    import pandas as pd

    verdicts = pd.read_csv(ROOT / "results" / "real" / "tables" / "verdict.csv")  # committed
    for claim, verdict in zip(verdicts["claim"], verdicts["verdict"]):
        assert claim.replace("&", "&amp;") in text and verdict in text


@NEEDS_CHROMIUM
def test_every_page_loads(visited: dict[str, dict]) -> None:
    assert "index.html" in visited and len(visited) >= len(book.CHAPTERS) + 5
    for page, report in visited.items():
        assert "error" not in report, f"{page}: {report.get('error')}"
        assert report["text"] > 200 and report["title"], page


@NEEDS_CHROMIUM
def test_every_image_is_displayed(visited: dict[str, dict], built: Path) -> None:
    for page, report in visited.items():
        blank = [image["src"][-80:] for image in report["images"] if not image["width"]]
        assert not blank, f"{page}: images not displayed: {blank}"
    executed = [c for c in book.chapter_sources(ROOT / "results" / "real", None) if c.origin != "none"]
    for chapter in executed:  # an executed chapter shows its figures
        assert visited[f"chapters/{Path(chapter.name).stem}.html"]["images"], chapter.name


@NEEDS_CHROMIUM
def test_no_internal_link_is_broken(visited: dict[str, dict], built: Path) -> None:
    root = built.resolve().as_uri()
    broken = []
    for page, report in visited.items():
        for link in report["links"]:
            if not link.startswith("file:"):
                continue
            assert link.startswith(root), f"{page} links outside the book: {link}"
            parsed = urllib.parse.urlparse(link)
            target = Path(urllib.parse.unquote(parsed.path))
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page} -> {link}")
            elif parsed.fragment and target.suffix == ".html":
                html = target.read_text()
                if not re.search(rf"""id=["']{re.escape(urllib.parse.unquote(parsed.fragment))}["']""", html):
                    broken.append(f"{page} -> {link} (no such anchor)")
    assert not broken, "\n".join(broken[:20])


@NEEDS_CHROMIUM
def test_pages_have_navigation_and_a_search_box(visited: dict[str, dict]) -> None:
    for name in book.CHAPTERS:
        report = visited[f"chapters/{Path(name).stem}.html"]
        assert report["search"], name
        linked = {Path(urllib.parse.urlparse(link).path).name for link in report["links"]}
        assert {f"{Path(other).stem}.html" for other in book.CHAPTERS} <= linked, name


@NEEDS_CHROMIUM
def test_the_search_finds_a_chapter(built: Path) -> None:
    with Browser() as browser:
        browser.visit((built / "search.html").as_uri() + "?q=ProgNet")
        found = browser.evaluate("""
            new Promise(resolve => { let tries = 0; const poll = () => {
              const hits = document.querySelectorAll("#search-results li a");
              if (hits.length || ++tries > 600) resolve([...hits].map(a => a.href));
              else setTimeout(poll, 100); }; poll(); })""")
    assert any("chapters/02_prognet.html" in hit for hit in found), found


def test_links_to_repository_pages_point_at_the_book_copies() -> None:
    text = "[d](../docs/deviations.md#t1) [v](../cxrlib/verdict.py) [c](02_prognet.ipynb) [w](https://x.org/a)"
    assert book.book_links(text, "notebooks", 1) == (
        "[d](../deviations.md#t1) v (`cxrlib/verdict.py`) [c](../chapters/02_prognet.ipynb) "
        "[w](https://x.org/a)")


def test_each_chapter_comes_from_real_data_then_sample_data_then_the_bare_notebook(tmp_path: Path) -> None:
    import json

    import nbformat

    real, sample = tmp_path / "real", tmp_path / "sample"
    for folder, names in ((real, book.CHAPTERS[:1]), (sample, book.CHAPTERS[:2])):
        (folder / "chapters").mkdir(parents=True)
        (folder / "batch.json").write_text(json.dumps({"data_dir": f"data-of-{folder.name}"}))
        for name in names:
            nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T")]),
                           folder / "chapters" / name)
    chapters = book.chapter_sources(real, sample)
    assert [c.origin for c in chapters] == ["real", "sample"] + ["none"] * (len(book.CHAPTERS) - 2)
    assert chapters[0].data == "data-of-real"
    shown = book.chapter_notebook(chapters[1])
    assert shown.cells[0].source == "# T" and "synthetic sample data" in shown.cells[1].source
