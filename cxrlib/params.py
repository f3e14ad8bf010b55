"""A notebook's parameters as an experiment's ``Config``.

A chapter's ``parameters`` cell assigns plain names (papermill overrides them); the
experiment wants one checked ``Config`` dataclass. ``config_from`` picks the names that are
fields of the dataclass from any mapping (a dict of parameters, or a notebook's
``globals()``), leaves the others out (``data_dir``, ``out_dir``, imported modules), and
runs the dataclass's ``check``. Fields the mapping does not name keep the dataclass's
defaults, which are the paper's values. Both experiments use it, so the rule is written
once: ``prognet.config_from`` and ``detector.config_from`` call it with their ``Config``.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Collection, Mapping, TypeVar

from cxrlib.errors import ConfigError

T = TypeVar("T")


def config_from(config_class: type[T], parameters: Mapping[str, Any]) -> T:
    """A checked ``config_class`` built from the entries of ``parameters`` that are its
    fields; every other entry is ignored."""
    names = {field.name for field in fields(config_class)}
    return config_class(**{k: v for k, v in parameters.items() if k in names}).check()


def check_choice(name: str, value: Any, choices: Collection) -> None:
    """Raise ``ConfigError`` naming the parameter and the known values unless ``value`` is
    one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not known; choose one of "
                          f"{', '.join(map(str, choices))}")


def check_count(name: str, value: Any, minimum: int = 1) -> None:
    """Raise ``ConfigError`` naming the parameter unless ``value`` is a whole number of at
    least ``minimum`` (True and 2.0 are not counts)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value!r} is not allowed; it must be a whole number of at "
                          f"least {minimum}")


def check_fraction(name: str, value: Any) -> float:
    """``value`` as a float when it is a number strictly between 0 and 1 (a share of the
    patients or images: some must be left on each side); else ``ConfigError`` naming the
    parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"{name}={value!r} is not allowed; it must be a number between 0 and 1")
    return float(value)


def check_positive(name: str, value: Any) -> float:
    """``value`` as a float when it is a number above 0; else ``ConfigError`` naming the
    parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{name}={value!r} is not allowed; it must be a number above 0")
    return float(value)
