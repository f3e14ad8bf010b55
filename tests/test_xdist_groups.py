"""make test relies on pytest-xdist's ``--dist loadgroup``: the tests of one
``xdist_group`` (a module's module-wide fixtures, the session's tiny runs) run in one
process. A pytest/xdist pair that drops the groups would still pass every test, only
slower (each process builds every fixture), so this checks the grouping itself."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

GROUPED = '''import pytest
pytestmark = pytest.mark.xdist_group("together")
def test_1(): pass
def test_2(): pass
def test_3(): pass
'''


def test_a_group_runs_in_one_process(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    for name in ("test_first.py", "test_second.py"):
        (tmp_path / name).write_text(GROUPED)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v",
         "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:nbval", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    workers = re.findall(r"\[(gw\d+)\] .*PASSED", result.stdout)
    assert len(workers) == 6, result.stdout
    assert len(set(workers)) == 1, result.stdout  # all six in one process
