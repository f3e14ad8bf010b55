"""Benchmarks of the reproduction: ``python -m benchmarks`` (see ``benchmarks/README.md``).

Timing code lives here, never in ``tests/`` (tests only check the output's structure).
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
"""The repository root (``benchmarks/`` is not installed: run from a clone)."""
