"""Floor 6: a finished batch made portable and small enough to commit (``cxr publish``).

    cxr publish --results results/paper-cpu --out results/real

copies what a reader needs to see the findings without running anything:

```
<out>/README.md                  what the folder holds, generated
<out>/batch.json                 the batch's settings and machine (paths made relative)
<out>/batch_summary.csv          every run's status and time
<out>/tables/*.csv               the tables chapter 4 wrote
<out>/figures/*.png|svg          the figures of chapters 4-6; figures/exploration/: chapter 1's
<out>/chapters/0N_*.ipynb        the executed chapters: 01, one run each of 02 and 03, 04-06
```

Its invariant: a published folder names no path of the machine that ran the batch, no file
in it is larger than ``MAX_FILE_BYTES`` and the whole stays under ``MAX_TOTAL_BYTES``
(``check_publication`` proves it, and ``publish`` calls it before it moves the folder into
place). Absolute paths become relative ones: in a chapter, relative to ``notebooks/``,
where papermill runs the chapters (so ``data_dir`` reads as the chapters' own defaults do,
``../data/sample``); in ``batch.json`` and ``batch_summary.csv``, relative to the
repository. Nothing of the datasets is copied: no image file, no metadata table, no
per-patient predictions (the chapters show what they show of the data, with each image's
source and licence).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from cxrlib import io, paths, runs
from cxrlib.errors import ConfigError, CxrError

MAX_FILE_BYTES = 5 * 1024 ** 2
MAX_TOTAL_BYTES = 30 * 1024 ** 2
FIGURE_SUFFIXES = (".png", ".svg")
#: Chapters that show X-rays of the datasets: each must name every image's source and
#: licence, in a table with a ``licence`` column (``credits_missing`` looks for it).
XRAY_CHAPTERS = ("01_data_exploration.ipynb", "05_qualitative.ipynb", "06_use_a_model.ipynb")
#: Beginnings of absolute paths that name a machine's folders; none may remain published.
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|root|home|tmp|Users|mnt|srv|scratch|private)/")
#: An absolute path inside a text (ends at whitespace, quotes, brackets or separators).
ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])(/[^\s'\"<>`,;:()\[\]{}|\\]+)")
TEXT_MIME = ("text/", "application/json", "application/javascript", "image/svg+xml")


class PublishError(CxrError):
    """A batch that cannot be published as it is (what is missing or too large)."""


@dataclass
class Rewriter:
    """Turns the absolute paths of one machine into relative ones.

    ``roots`` maps absolute folders to the text that replaces them; another path that
    names a machine's folders (``MACHINE_PATH``) or lies beside the repository is shown
    as ``paths.shown_path`` shows it, relative to ``base``."""

    base: Path
    roots: dict[str, str] = field(default_factory=dict)

    def path(self, text: str) -> str:
        """One absolute path, relative (``x.partial`` run folders under their final name)."""
        text = text.replace(".partial/", "/").replace(".partial.ipynb", ".ipynb")
        if text.endswith(".partial"):
            text = text[: -len(".partial")]
        for root, replacement in sorted(self.roots.items(), key=lambda kv: -len(kv[0])):
            if text == root or text.startswith(root.rstrip("/") + "/"):
                return replacement + text[len(root.rstrip("/")):]
        if MACHINE_PATH.match(text) or paths.beside_repository(text):
            return paths.shown_path(text, self.base)
        return text

    def __call__(self, text: str) -> str:
        """Every absolute path in ``text`` rewritten."""
        return ABSOLUTE_PATH.sub(lambda m: self.path(m.group(1)), text)


def rewriter_for(results_dir: Path, base: Path, data_dir: str | None = None) -> Rewriter:
    """A ``Rewriter`` relative to ``base`` that also folds the Python installation's prefix
    (warnings name library files) into ``<python>``."""
    roots = {}
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        resolved = Path(prefix).resolve()
        if MACHINE_PATH.match(f"{resolved}/") and not resolved.is_relative_to(paths.repository()):
            roots[str(resolved)] = "<python>"
    rewrite = Rewriter(base, roots)
    if data_dir:
        rewrite.roots[str(Path(data_dir).resolve())] = paths.shown_path(Path(data_dir).resolve(), base)
    rewrite.roots[str(results_dir.resolve())] = paths.shown_path(results_dir.resolve(), base)
    return rewrite


def clean_notebook(notebook: Any, rewrite: Rewriter) -> Any:
    """The notebook with every absolute path rewritten: papermill's injected parameters and
    its metadata, cell sources and text outputs (images are left as they are)."""
    for cell in notebook.cells:
        cell.source = rewrite(cell.source)
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = rewrite(_joined(output["text"]))
            if "traceback" in output:
                output["traceback"] = [rewrite(line) for line in output["traceback"]]
            if "evalue" in output:
                output["evalue"] = rewrite(output["evalue"])
            for mime, value in output.get("data", {}).items():
                if mime.startswith(TEXT_MIME):
                    output["data"][mime] = (_rewrite_json(value, rewrite) if mime == "application/json"
                                            else rewrite(_joined(value)))
    notebook.metadata = _rewrite_json(notebook.metadata, rewrite)
    return notebook


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else value


def _rewrite_json(value: Any, rewrite: Rewriter) -> Any:
    if isinstance(value, str):
        return rewrite(value)
    if isinstance(value, list):
        return [_rewrite_json(v, rewrite) for v in value]
    if isinstance(value, dict):
        return value.__class__((k, _rewrite_json(v, rewrite)) for k, v in value.items())
    return value


def shrink_images(notebook: Any, colours: int = 256) -> int:
    """Re-encode every PNG the notebook shows as a PNG of ``colours`` colours (a palette,
    Pillow's median cut): about a third of the bytes for the figures of these chapters,
    which look the same at that depth. Returns how many images were re-encoded."""
    import base64
    import io as bytes_io

    from PIL import Image

    done = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" not in data:
                continue
            image = Image.open(bytes_io.BytesIO(base64.b64decode(data["image/png"])))
            if image.mode == "P":
                continue
            buffer = bytes_io.BytesIO()
            image.convert("RGB").quantize(colours).save(buffer, format="PNG", optimize=True)
            data["image/png"] = base64.b64encode(buffer.getvalue()).decode("ascii")
            done += 1
    return done


def notebook_texts(notebook: Any) -> Iterable[tuple[str, str]]:
    """(where, text) for every text of a notebook a reader sees or a tool reads."""
    for index, cell in enumerate(notebook.cells):
        yield f"cell {index}", cell.source
        for output in cell.get("outputs", []):
            if "text" in output:
                yield f"cell {index} output", _joined(output["text"])
            for line in output.get("traceback", []):
                yield f"cell {index} traceback", line
            for mime, value in output.get("data", {}).items():
                if mime.startswith(TEXT_MIME):
                    yield f"cell {index} {mime}", json.dumps(value) if not isinstance(value, (str, list)) else _joined(value)
    yield "metadata", json.dumps(notebook.metadata)


def credits_missing(notebook: Any) -> bool:
    """True when a chapter shows no table with a ``licence`` column (the image credits)."""
    for _, text in notebook_texts(notebook):
        if re.search(r"<th[^>]*>\s*licen[cs]e\s*</th>|\blicen[cs]e\b\s*\|", text, re.I):
            return False
    return True


@dataclass
class Source:
    """Where each published chapter comes from, inside a batch's output folder."""

    results_dir: Path
    prognet_run: str = "resnet50/seed-0"
    detector_run: str = "cnn_lstm/fold-0"

    def chapters(self) -> dict[str, Path]:
        out = {}
        for name in ("explore", "comparisons", "qualitative", "use"):
            out[runs.NOTEBOOKS[name]] = self.results_dir / runs.NOTEBOOKS[name]
        out[runs.NOTEBOOKS["prognet"]] = (self.results_dir / "prognet" / self.prognet_run
                                          / runs.NOTEBOOKS["prognet"])
        out[runs.NOTEBOOKS["detector"]] = (self.results_dir / "detector" / self.detector_run
                                           / runs.NOTEBOOKS["detector"])
        return dict(sorted(out.items()))


def publish(results_dir: str | Path, out: str | Path, *, prognet_run: str = "resnet50/seed-0",
            detector_run: str = "cnn_lstm/fold-0") -> dict[str, Any]:
    """Copy a finished batch's tables, figures and executed chapters into ``out`` (replaced
    as a whole, atomically), with the machine's paths made relative; return what was
    published (``files``, ``bytes``, ``chapters``, ``missing``, ``credits_missing``).

    Raises ``PublishError`` when the batch has no tables or the result breaks the size
    limits or still names a machine path; ``out`` is then left untouched."""
    results_dir, out = Path(results_dir).resolve(), Path(out).resolve()
    if not (results_dir / "tables").is_dir():
        raise PublishError(f"{results_dir} has no tables/: run `cxr batch` (with its reports) first")
    info = io.read_json(results_dir / "batch.json", {})
    data_dir = info.get("data_dir")
    repo = paths.repository()
    in_notebooks = rewriter_for(results_dir, repo / "notebooks", data_dir)
    in_repo = rewriter_for(results_dir, repo, data_dir)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        chapters, missing, uncredited, shrunk = _stage_chapters(
            Source(results_dir, prognet_run, detector_run), staging, in_notebooks)
        _stage_tables_and_figures(results_dir, staging)
        info = _stage_batch_record(results_dir, staging, info, in_repo)
        io.write_text(staging / "README.md", folder_readme(info, chapters, missing, prognet_run,
                                                          detector_run, in_repo(str(results_dir)),
                                                          shrunk))
        report = check_publication(staging)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {**report, "chapters": chapters, "missing": missing, "credits_missing": uncredited,
            "shrunk": shrunk}


def _stage_chapters(source: Source, staging: Path,
                    rewrite: Rewriter) -> tuple[list[str], list[str], list[str], list[str]]:
    """Write each executed chapter of ``source`` into ``staging/chapters``, cleaned with
    ``rewrite``; return the chapters written, those missing from the batch, those showing
    X-rays without credits, and those whose figures had to be stored with fewer colours."""
    import nbformat

    chapters, missing, uncredited, shrunk = [], [], [], []
    for name, path in source.chapters().items():
        if not path.is_file():
            missing.append(name)
            continue
        notebook = clean_notebook(nbformat.read(path, as_version=4), rewrite)
        text = nbformat.writes(notebook) + "\n"
        if len(text.encode()) > MAX_FILE_BYTES and shrink_images(notebook):
            text = nbformat.writes(notebook) + "\n"  # still too large: the check says so
            shrunk.append(name)
        io.write_text(staging / "chapters" / name, text)
        chapters.append(name)
        if name in XRAY_CHAPTERS and credits_missing(notebook):
            uncredited.append(name)
    return chapters, missing, uncredited, shrunk


def _stage_tables_and_figures(results_dir: Path, staging: Path) -> None:
    """Copy the batch's tables (CSV) and figures, the exploration's included, into ``staging``."""
    for table in sorted((results_dir / "tables").glob("*.csv")):
        shutil.copyfile(table, _made(staging / "tables" / table.name))
    for folder, target in ((results_dir / "figures", "figures"),
                           (results_dir / "exploration" / "figures", "figures/exploration")):
        for figure in sorted(folder.glob("*")) if folder.is_dir() else []:
            if figure.suffix.lower() in FIGURE_SUFFIXES:
                shutil.copyfile(figure, _made(staging / target / figure.name))


def _stage_batch_record(results_dir: Path, staging: Path, info: dict,
                        rewrite: Rewriter) -> dict:
    """Write the batch's ``batch.json`` (``info``) and ``batch_summary.csv`` into ``staging``
    with paths made relative by ``rewrite``; return the rewritten ``info``."""
    info = _rewrite_json(info, rewrite)
    if info:
        io.write_json(staging / "batch.json", info)
    summary = results_dir / "batch_summary.csv"
    if summary.is_file():
        table = pd.read_csv(summary, dtype=str, keep_default_na=False)
        io.write_csv(staging / "batch_summary.csv", table.map(rewrite))
    return info


def _made(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def check_publication(folder: str | Path) -> dict[str, Any]:
    """Prove the folder's invariant: every file under ``MAX_FILE_BYTES``, all of them under
    ``MAX_TOTAL_BYTES``, no machine path in any text file; ``PublishError`` names the
    first file at fault. Returns ``files`` and ``bytes``."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    sizes = {p: p.stat().st_size for p in files}
    large = [f"{p.relative_to(folder)} ({size / 1024 ** 2:.1f} MB)" for p, size in sizes.items()
             if size > MAX_FILE_BYTES]
    if large:
        raise PublishError(f"{len(large)} file(s) over {MAX_FILE_BYTES // 1024 ** 2} MB: "
                           + ", ".join(large))
    total = sum(sizes.values())
    if total > MAX_TOTAL_BYTES:
        raise PublishError(f"the publication holds {total / 1024 ** 2:.1f} MB, over "
                           f"{MAX_TOTAL_BYTES // 1024 ** 2} MB")
    for path in files:
        if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            continue
        for where, text in _texts_of(path):
            found = MACHINE_PATH.search(text)
            if found:
                snippet = text[max(0, found.start() - 20): found.start() + 60].replace("\n", " ")
                raise PublishError(f"{path.relative_to(folder)} ({where}) names a machine path: "
                                   f"...{snippet}...")
    return {"files": len(files), "bytes": total}


def _texts_of(path: Path) -> Iterable[tuple[str, str]]:
    if path.suffix == ".ipynb":
        import nbformat

        yield from notebook_texts(nbformat.read(path, as_version=4))
    else:
        yield "text", path.read_text(errors="replace")


def folder_readme(info: dict, chapters: list[str], missing: list[str], prognet_run: str,
                  detector_run: str, source: str, shrunk: list[str] = ()) -> str:
    """The published folder's own README: what made it and what it holds."""
    environment = info.get("environment", {})
    overrides = info.get("selection", {}).get("overrides") or {}
    origin = {runs.NOTEBOOKS["prognet"]: f"the run `prognet/{prognet_run}`",
              runs.NOTEBOOKS["detector"]: f"the run `detector/{detector_run}`"}
    lines = ["# Published results", "",
             f"Written by `cxr publish` from `{source}`, the output of `cxr batch --profile "
             f"{info.get('profile', '?')}` on `{info.get('data_dir', '?')}`"
             + (f" with {', '.join(f'`-p {k} {v}`' for k, v in overrides.items())}" if overrides else "")
             + f" ({environment.get('processor', '?')}, {environment.get('cpu_count', '?')} cores, "
             f"TensorFlow {environment.get('versions', {}).get('tensorflow', '?')}). "
             "Regenerate it with `make results`; nothing here is edited by hand.", "",
             "| file | what it is |", "|---|---|"]
    for name in chapters:
        what = origin.get(name, "the whole grid" if name[:2] in ("04", "05", "06")
                           else f"`{info.get('data_dir', '?')}`")
        lines.append(f"| [chapters/{name}](chapters/{name}) | executed on {what} |")
    lines += ["| [tables/](tables) | the comparison tables (CSV) chapter 4 wrote |",
              "| [figures/](figures) | the figures of chapters 4-6; `exploration/`: chapter 1's |",
              "| [batch_summary.csv](batch_summary.csv), [batch.json](batch.json) | every run's "
              "status and time; the batch's settings and machine |", ""]
    if missing:
        lines += [f"Not published (the batch has no such notebook): {', '.join(missing)}.", ""]
    if shrunk:
        lines += [f"The figures inside {', '.join(shrunk)} are stored with 256 colours to keep "
                  f"each file under {MAX_FILE_BYTES // 1024 ** 2} MB; `figures/` holds them as drawn.", ""]
    lines += ["Paths in the chapters are relative to `notebooks/` (where papermill runs them), "
              "the others to the repository.", ""]
    return "\n".join(lines)


def publish_from_args(args) -> int:
    """``cxr publish``: publish, print what it holds, warn about uncredited X-rays."""
    try:
        report = publish(args.results, args.out, prognet_run=args.prognet_run,
                         detector_run=args.detector_run)
    except FileNotFoundError as err:
        raise ConfigError(str(err)) from None
    if report["shrunk"]:
        print(f"figures stored with 256 colours in: {', '.join(report['shrunk'])}")
    print(f"published {report['files']} files ({report['bytes'] / 1024 ** 2:.1f} MB) to {args.out}: "
          + ", ".join(report["chapters"]))
    if report["missing"]:
        print(f"not in the batch: {', '.join(report['missing'])}")
    if report["credits_missing"]:
        print("WARNING: these chapters show X-rays but no table with a 'licence' column naming "
              f"each image's source and licence: {', '.join(report['credits_missing'])}")
    return 0
