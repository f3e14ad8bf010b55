"""cxrlib: helpers behind the cxr-repro notebooks.

One concern per module: ``data`` (dataset tables), ``images`` (decoding), ``splits``
(patient-level splits), ``sample`` (synthetic sample data), ``download`` (real data),
``models`` (Keras models), ``features`` (feature cache), ``training``, ``metrics``,
``plots``, ``runs`` / ``batch`` (papermill execution) and ``cli``.
"""
from __future__ import annotations

__version__ = "0.1.0"

from cxrlib.quiet import quiet_tensorflow_import

quiet_tensorflow_import()  # before any module of the package can load TensorFlow

from cxrlib.errors import CxrError, ConfigError, DataError, ImageError  # noqa: E402,F401
