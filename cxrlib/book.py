"""Floor 6: the book, a static site of the executed chapters and the findings (``cxr book``).

    cxr book                       # -> build/book/_build/html/index.html

Assembles ``book/`` (the Jupyter Book 1 configuration, table of contents and the pages
written by hand) with generated pages into ``<out>/src`` and builds it with Sphinx, the
chapters' execution off: the book shows the outputs the chapters were published with and
runs nothing. Generated from the results, never typed: the landing page (the papers'
claims, what we found, the compact verdict table), the results page (every table and the
reason behind each verdict), the deviations page (``docs/deviations.md``) and the
benchmarks page (``benchmarks/README.md``).

Each chapter comes from the first source that has it (``chapter_sources``): the published
real-data results (``results/real``, ``cxr publish``), then a batch of the sample data
(``results/sample``, published on the fly into the build folder so its paths are cleaned
as well), then the chapter as committed, without outputs. Every chapter page says which.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cxrlib import io, paper, paths, publish, readme, runs
from cxrlib.errors import CxrError

CHAPTERS = tuple(sorted(runs.NOTEBOOKS.values()))
ORIGINS = {
    "real": ("real data", "executed on the real data (`{data}`), from the published results "
                          "in `{folder}`"),
    "sample": ("sample data", "executed on the project's **synthetic sample data**: no "
                              "real-data run of this chapter is published, so its numbers "
                              "are about phantoms, not patients"),
    "none": ("not executed", "shown **without outputs**: neither a real-data nor a "
                             "sample-data run of this chapter was found (`make results` or "
                             "`make reproduce` makes one)"),
}


class BookError(CxrError):
    """The book cannot be built (the tool is missing or Sphinx failed)."""


@dataclass
class Chapter:
    """One chapter of the book and where its executed copy comes from."""

    name: str
    path: Path
    origin: str  # "real", "sample" or "none"
    data: str = ""
    folder: str = ""


def book_dir() -> Path:
    """The repository's ``book/`` folder (configuration and hand-written pages)."""
    return paths.repository() / "book"


def chapter_sources(published: Path | None, sample_publication: Path | None) -> list[Chapter]:
    """Each chapter from the first place that has it: the published real-data results,
    a published sample batch, else the committed chapter without outputs."""
    chapters = []
    places = [(origin, folder, io.read_json(folder / "batch.json", {}))
              for origin, folder in (("real", published), ("sample", sample_publication))
              if folder is not None]
    for name in CHAPTERS:
        for origin, folder, info in places:
            if (folder / "chapters" / name).is_file():
                chapters.append(Chapter(name, folder / "chapters" / name, origin, info.get("data_dir", "?"),
                                        paths.shown_path(folder.resolve())))
                break
        else:
            chapters.append(Chapter(name, runs.notebooks_dir() / name, "none"))
    return chapters


#: Repository pages the book holds: their path in the repository -> their page in the book.
BOOK_PAGES = {"docs/deviations.md": "deviations.md", "docs/results.md": "results.md",
              "benchmarks/README.md": "benchmarks.md"}
LINK = re.compile(r"\[([^\]]+)\]\((?!https?:|mailto:|#)([^)#\s]+)(#[^)\s]*)?\)")


def book_links(markdown: str, home: str, depth: int) -> str:
    """Links of a page from the repository folder ``home`` (``notebooks``, ``docs``)
    pointed at the book's copies (``depth``: folders between the page and the book's root);
    a link to a file the book does not hold becomes its text and the file's path."""
    def target(match: re.Match) -> str:
        text, link, fragment = match.group(1), match.group(2), match.group(3) or ""
        path = os.path.normpath(os.path.join(home, link)).replace(os.sep, "/")
        if path in BOOK_PAGES:
            return f"[{text}]({'../' * depth}{BOOK_PAGES[path]}{fragment})"
        if path.startswith("notebooks/") and path.endswith(".ipynb"):
            return f"[{text}]({'../' * depth}chapters/{Path(path).name}{fragment})"
        return f"{text} (`{path}`)"
    return LINK.sub(target, markdown)


def chapter_notebook(chapter: Chapter):
    """The chapter as the book shows it: a note on its origin after its title."""
    import nbformat

    notebook = nbformat.read(chapter.path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = book_links(cell.source, "notebooks", 1)
    label, text = ORIGINS[chapter.origin]
    note = nbformat.v4.new_markdown_cell(
        f":::{{admonition}} {label.capitalize()}\n:class: note\nThis chapter is "
        + text.format(data=chapter.data, folder=chapter.folder) + ".\n:::")
    note.metadata["tags"] = ["book-origin"]
    first = notebook.cells[0] if notebook.cells else None
    at = 1 if first is not None and first.cell_type == "markdown" and first.source.lstrip().startswith("# ") else 0
    notebook.cells.insert(at, note)
    return notebook


def landing_page(results: dict[str, Path], chapters: list[Chapter]) -> str:
    """The landing page: the papers' claims, what we found (from the first results folder
    that has a verdict table), and where each chapter comes from."""
    intro = (book_dir() / "intro.md").read_text().rstrip()
    lines = [intro, "", "## What the papers claim", "",
             "Every claim the reproduction tests (`cxrlib.paper.CLAIMS`), with the paper's "
             "number where it gives one:", ""]
    claims = pd.DataFrame([{"paper": paper.PAPER_TITLES[c["paper"]],
                            "claim": c["claim"], "where in the paper": c["source"],
                            "paper's value": c.get("target", "")}
                           for c in paper.CLAIMS]).fillna("")
    lines += [claims.to_markdown(index=False), "", "## What we found", ""]
    found = next(((title, folder) for title, folder in results.items()
                  if (folder / "tables" / "verdict.csv").is_file()), None)
    if found is None:
        lines += ["_No results yet: `make results` (real data) or `make reproduce` (sample "
                  "data) makes them._", ""]
    else:
        title, folder = found
        table = pd.read_csv(folder / "tables" / "verdict.csv")
        if title.startswith("Sample"):
            lines += [":::{warning}\nNo real-data results are published yet: these are the "
                      "synthetic sample data's numbers, which test the code, not the papers.\n:::", ""]
        lines += [f"**{title}**: {readme.run_line(folder)}", "",
                  f"Verdict per claim ({readme.verdict_counts(table)}), computed by "
                  "`cxrlib.verdict` from the runs; intervals resample patients. The reason "
                  "behind each verdict and every table are on the [results page](results.md); "
                  "chapter 4 shows how they are computed.", "",
                  readme.compact_verdict(table).to_markdown(index=False), ""]
    lines += ["## The chapters", "", "| chapter | executed on |", "|---|---|"]
    for chapter in chapters:
        lines.append(f"| [{_title(chapter.path)}](chapters/{Path(chapter.name).stem}.ipynb) "
                     f"| {ORIGINS[chapter.origin][0]} |")
    lines += ["", "Where we depart from the papers, and why: [deviations](deviations.md). "
              "How to run it yourself: [how to run](how-to-run.md).", ""]
    return "\n".join(lines)


def _title(path: Path) -> str:
    """A chapter's first heading."""
    import nbformat

    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if match:
                return match.group(1).strip()
    return path.stem


def results_page(results: dict[str, Path]) -> str:
    """Every results folder's tables, the verdict with its reasons first."""
    lines = ["# Results", "",
             "Generated from the published results by `cxr book`; the same text is in "
             "`docs/results.md` (`cxr readme`). The chapters show how each table is made.", ""]
    present = {title: folder for title, folder in results.items() if (folder / "tables").is_dir()}
    if not present:
        return "\n".join(lines + ["_No results yet._", ""])
    return "\n".join(lines) + readme.results_markdown(present, headings="##")


def repository_page(source: Path) -> str:
    """A Markdown file of the repository as a book page at the book's root, its links
    pointed at the book's pages (``book_links``)."""
    home = source.parent.relative_to(paths.repository()).as_posix()
    return book_links(source.read_text(), home, 0)


def assemble(out: Path, published: Path | None, sample_results: Path | None) -> Path:
    """Write the book's source folder ``<out>/src``; return it."""
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(book_dir(), src, ignore=shutil.ignore_patterns("_build"))
    sample_publication = None
    if sample_results is not None and (sample_results / "tables").is_dir():
        sample_publication = out / "sample-publication"
        publish.publish(sample_results, sample_publication)
    chapters = chapter_sources(published, sample_publication)
    import nbformat

    for chapter in chapters:
        target = src / "chapters" / chapter.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(chapter_notebook(chapter), target)
    results = {title: folder for title, folder in
               (("Real data", published), ("Sample data (synthetic)", sample_publication))
               if folder is not None and folder.is_dir()}
    (src / "index.md").write_text(landing_page(results, chapters))
    (src / "results.md").write_text(results_page(results))
    repo = paths.repository()
    (src / "deviations.md").write_text(repository_page(repo / "docs" / "deviations.md"))
    (src / "benchmarks.md").write_text(repository_page(repo / "benchmarks" / "README.md"))
    return src


def build(out: str | Path = "build/book", published: str | Path | None = "results/real",
          sample_results: str | Path | None = "results/sample", quiet: bool = True) -> Path:
    """Assemble and build the book; return the landing page's HTML file."""
    out = Path(out).resolve()
    published = Path(published).resolve() if published else None
    sample_results = Path(sample_results).resolve() if sample_results else None
    src = assemble(out, published, sample_results)
    tool = Path(sys.executable).with_name("jupyter-book")
    if not tool.is_file():
        raise BookError(f"{tool} not found: install the book extra (pip install -e '.[book]')")
    html = out / "_build" / "html"
    if html.exists():
        shutil.rmtree(html)
    command = [str(tool), "build", str(src), "--path-output", str(out), "--builder", "html",
               "--all"] + (["-q"] if quiet else [])
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not (html / "index.html").is_file():
        raise BookError(f"jupyter-book build failed (exit {done.returncode}):\n"
                        + (done.stdout + done.stderr)[-3000:])
    return html / "index.html"


def book_from_args(args) -> int:
    index = build(args.out, args.published, args.sample_results)
    print(f"book: {index}")
    return 0
