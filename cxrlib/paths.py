"""Floor 1: where the checkout is, and a machine's path as a reader of the repository sees it.

A results folder, a data folder or a run names absolute paths of the machine that made it
(``/home/me/cxr-repro/results/paper``, ``/srv/data/shared``). What the repository shows
(the README's run line, the book, a published batch) must name none of them. Its
invariant: ``shown_path`` never returns the absolute path of a folder beside the
checkout or elsewhere on the machine; a path in the repository or in a folder next to it
(``../shared/data``) becomes relative, wherever the checkout lives (a developer's
``/work/main``, CI's ``/check/work/main``), and any other keeps only its last two names
(``.../a/b``), which say what it is without naming the machine's folders.
``tests/test_paths.py`` checks each case.
"""
from __future__ import annotations

import os
from pathlib import Path


def repository() -> Path:
    """The checkout ``cxrlib`` is imported from (its ``notebooks/``, ``docs/``, ``book/``)."""
    return Path(__file__).resolve().parents[1]


def beside_repository(path: str | Path) -> bool:
    """Whether ``path`` is absolute and lies in the repository or in a folder next to it
    (``../shared``). A checkout at the top of the file system has no such folder."""
    path, parent = Path(path), repository().parent
    return path.is_absolute() and parent != Path(parent.anchor) and path.is_relative_to(parent)


def shown_path(path: str | Path, base: str | Path | None = None) -> str:
    """``path`` as the repository shows it: relative to ``base`` (default: the repository)
    when it lies beside the repository; ``.../`` and its last two names when it is
    absolute and elsewhere; a relative path as it is (it names no machine)."""
    if not Path(path).is_absolute():
        return os.fspath(path)
    if beside_repository(path):
        return os.path.relpath(path, repository() if base is None else base)
    return ".../" + "/".join(Path(path).parts[-2:])
