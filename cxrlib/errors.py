"""Exceptions raised by cxrlib.

Every error a user can cause (bad input, bad parameter) is a ``CxrError`` with a message
that names the file or parameter at fault, raised before any training starts.
"""
from __future__ import annotations


class CxrError(Exception):
    """Base class for errors caused by input or parameters (not by a bug).

    In IPython, JupyterLab and papermill it is shown as one line, its class and message
    (``_render_traceback_``): the message names what to change, and a traceback into the
    library would only hide it."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class ImageError(CxrError):
    """An image file is missing, empty, truncated or not an image. The message names it."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DataError(CxrError):
    """A dataset folder or metadata table is missing or not in a layout we know."""


class ConfigError(CxrError):
    """A parameter has a value we do not accept (unknown backbone, fold out of range, ...)."""
