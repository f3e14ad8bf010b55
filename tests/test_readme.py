"""The README a newcomer reads in five minutes, and what `cxr readme` writes into it."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from cxrlib import cli, readme, verdict

ROOT = Path(__file__).resolve().parents[1]
MAX_README_CHARS = 20_000
MAX_CELL_CHARS = 100
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|root|home)/")


def table_cells(markdown: str) -> list[str]:
    """Every cell of every Markdown table (rows start and end with ``|``), code blocks
    left out."""
    cells, in_code = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("|") and line.rstrip().endswith("|"):
            cells += [c.strip() for c in line.strip()[1:-1].split("|")]
    return cells


def test_the_readme_is_short_and_its_tables_narrow() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text) < MAX_README_CHARS, f"README.md has {len(text)} characters"
    wide = [c for c in table_cells(text) if len(c) > MAX_CELL_CHARS]
    assert not wide, f"{len(wide)} table cell(s) over {MAX_CELL_CHARS} characters: {wide[0][:120]}"


def test_table_cells_are_found() -> None:
    text = "| a | b |\n|---|---|\n| x | " + "y" * 101 + " |\n```\n| in | code |\n```\n"
    assert table_cells(text) == ["a", "b", "---", "---", "x", "y" * 101]


def test_no_tracked_page_names_a_machine_path() -> None:
    listed = subprocess.run(["git", "ls-files", "*.md", "*.ipynb"], cwd=ROOT, capture_output=True,
                            text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    found = [name for name in listed.stdout.split()
             if (ROOT / name).is_file() and MACHINE_PATH.search((ROOT / name).read_text(errors="replace"))]
    assert not found, f"absolute machine paths in {found}"


def _verdict(folder: Path) -> Path:
    (folder / "tables").mkdir(parents=True)
    pd.DataFrame({"paper": ["ProgNet"], "claim": ["a claim"], "paper's value": [0.9], "ours": [0.8],
                  "95% CI": ["[0.700, 0.900]"], "verdict": ["reproduced"],
                  "why": ["a long reason " * 20], "from": ["t"]}).to_csv(
        folder / "tables" / "verdict.csv", index=False)
    return folder


def test_the_readme_keeps_the_compact_verdict_and_the_page_the_reasons(tmp_path: Path) -> None:
    folder = _verdict(tmp_path / "results" / "real")
    compact = readme.compact_verdict(pd.read_csv(folder / "tables" / "verdict.csv"))
    assert list(compact.columns) == ["claim", "paper's value", "ours", "95 % interval", "verdict"]
    target = tmp_path / "README.md"
    target.write_text("top\n<!-- results:start -->\n<!-- results:end -->\nbottom\n")
    assert cli.main(["readme", "--results", f"Real data={folder}", "--readme", str(target)]) == 0
    text, details = target.read_text(), (tmp_path / "docs" / "results.md").read_text()
    assert "### Real data" in text and "| a claim " in text and "a long reason" not in text
    assert "1 reproduced" in text and "[docs/results.md](docs/results.md)" in text
    assert "a long reason" in details and details.startswith("# Results")
    assert not [c for c in table_cells(text) if len(c) > MAX_CELL_CHARS]


def test_the_count_names_every_kind_of_verdict() -> None:
    """The lungs audit's own verdicts are counted as the others are, none dropped."""
    table = pd.DataFrame({"verdict": [*verdict.VERDICTS, "not testable here", "shortcut in the data",
                                      "an unknown kind"]})
    counts = readme.verdict_counts(table)
    assert counts == ("1 reproduced, 1 not reproduced, 1 not distinguishable, 2 not testable here, "
                      "2 shortcut in the data, 1 no shortcut found, 1 an unknown kind")
    assert sum(int(part.split(" ", 1)[0]) for part in counts.split(", ")) == len(table)


def test_the_compact_table_shows_the_verdict_modules_columns_in_short_cells() -> None:
    long_claim = ("ProgNet has the lowest FN and FP rates (Table I read as FN and FP headers swapped "
                  "(sensitivity and specificity))")
    table = pd.DataFrame({"paper": ["ProgNet"], "claim": [long_claim], "paper's value": [None],
                          "ours": [-0.09], "95% CI": ["[-0.217, 0.000]"], "verdict": ["not testable here"],
                          "numbers alone": ["not distinguishable"], "why": ["a reason"], "key": ["k"]})
    full, short = readme.compact_verdict(table), readme.compact_verdict(table, readme.MAX_CELL)
    assert list(full.columns) == [readme.TITLES.get(c, c) for c in verdict.COMPACT]
    assert full["claim"].iloc[0] == long_claim
    assert short["claim"].iloc[0] == ("ProgNet has the lowest FN and FP rates (Table I read as FN and FP "
                                      "headers swapped)")


def test_a_claim_with_no_aside_to_drop_is_cut_at_a_word() -> None:
    claim = "word " * 40
    short = readme.short_claim(claim, 30)
    assert len(short) <= 30 and short.endswith("…") and claim.startswith(short[:-1])
    assert readme.short_claim("short (a (b))", 30) == "short (a (b))"
