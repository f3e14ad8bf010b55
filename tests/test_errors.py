"""How project errors look where a reader meets them: in a notebook cell."""
from __future__ import annotations

import re

import pytest

from cxrlib import prognet
from cxrlib.errors import ConfigError, CxrError, DataError


@pytest.mark.parametrize("error", [ConfigError("seq_len must be None or at least 1, not 0"),
                                   DataError("data/x: no Cohen COVID-19 collection")])
def test_a_project_error_is_one_line_in_ipython(error: CxrError, capsys) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.user_ns["error"] = error
    result = shell.run_cell("def deep():\n    raise error\ndeep()")
    assert isinstance(result.error_in_exec, type(error))  # still a failed cell for papermill
    shown = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert shown == [f"{type(error).__name__}: {error}"]


def test_a_parameter_error_from_the_library_is_one_line_in_ipython(capsys) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.user_ns["prognet"] = prognet
    shell.run_cell("prognet.config_from({'seq_len': 0})")
    shown = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(shown) == 1 and shown[0].startswith("ConfigError: ") and "seq_len" in shown[0]


def test_another_exception_keeps_its_traceback(capsys) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.instance().run_cell("def deep():\n    return 1 / 0\ndeep()")
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)  # without colours
    assert "ZeroDivisionError: division by zero" in out and "deep()" in out
    assert len(out.strip().splitlines()) > 3
