"""The house plan of ``cxrlib``: a module imports only from its own floor or the floors below;
and no function is longer than a screen.

The floors are drawn in CONTRIBUTING.md and the README's Layout section. Imports inside
functions count too. Imports within one floor are allowed, but never in a cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cxrlib"

FLOORS = {
    # 1. input/output, the machine, errors, quiet start-up, paper facts and shared names
    "__init__": 1, "errors": 1, "io": 1, "machine": 1, "names": 1, "paper": 1, "paths": 1,
    "quiet": 1, "schemas": 1,
    # 2. images, data tables, splits, models, metrics (and where the data comes from)
    "images": 2, "data": 2, "duplicates": 2, "splits": 2, "models": 2, "metrics": 2, "download": 2,
    "sample": 2,
    # 3. features (the cache), feature series and baselines, training, explanations
    "features": 3, "sequences": 3, "training": 3, "explain": 3,
    # 4. experiments: each prepares, trains, evaluates and saves; what a run will cost
    "prognet": 4, "detector": 4, "cost": 4,
    # 5. readers of finished runs
    "compare": 5, "verdict": 5, "qualitative": 5, "predict": 5, "plots": 5,
    # 6. running notebooks and the command line
    "runs": 6, "batch": 6, "readme": 6, "publish": 6, "book": 6, "cli": 6,
    # what the chapters share: parameters as a Config (1); the runs and images they show (5)
    "params": 1, "chapters": 5,
}


def cxrlib_imports(path: Path) -> set[str]:
    """The ``cxrlib`` modules a file imports, at any depth (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "cxrlib":  # from cxrlib import a, b
                names = [f"cxrlib.{alias.name}" for alias in node.names]
            else:
                names = [node.module]
        else:
            continue
        found |= {name.split(".")[1] for name in names if name.startswith("cxrlib.")}
    return found


GRAPH = {path.stem: cxrlib_imports(path) - {path.stem} for path in sorted(PACKAGE.glob("*.py"))}


def test_every_module_has_a_floor() -> None:
    assert set(GRAPH) == set(FLOORS), "add new modules to FLOORS (and to CONTRIBUTING.md)"


@pytest.mark.parametrize("module", sorted(FLOORS))
def test_imports_point_to_the_same_floor_or_below(module: str) -> None:
    above = {name: FLOORS[name] for name in GRAPH[module] if FLOORS[name] > FLOORS[module]}
    assert not above, f"{module} (floor {FLOORS[module]}) imports from higher floors: {above}"


def test_imports_have_no_cycle() -> None:
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join(path + (module,))}"
        if module in done:
            return
        for name in sorted(GRAPH[module]):
            visit(name, path + (module,))
        done.add(module)

    for module in sorted(GRAPH):
        visit(module, ())


def test_the_checker_sees_function_level_imports() -> None:
    assert "plots" in GRAPH["cli"] and "explain" in GRAPH["plots"]  # both inside functions
    assert "runs" not in GRAPH["prognet"] | GRAPH["detector"] | GRAPH["compare"]
    assert not {"prognet", "detector"} & GRAPH["predict"]  # predict needs no experiment
    assert "plots" not in GRAPH["runs"]


LONGEST = 60


@pytest.mark.parametrize("folder", ["cxrlib", "benchmarks"])
def test_no_function_reaches_sixty_lines(folder: str) -> None:
    """A function is read at once: every function of the library and the benchmarks
    (nested ones included) is shorter than 60 lines."""
    long = []
    for path in sorted((PACKAGE.parent / folder).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines >= LONGEST:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long
