"""Summaries of repeated measurements: the median and the spread (min..max)."""
from __future__ import annotations

import statistics
import time
from typing import Sequence


def summarize(values: Sequence[float]) -> dict:
    """``{"median", "min", "max", "n", "values"}`` of repeated measurements."""
    values = [float(v) for v in values]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": values}


def per_second(count: int, seconds: Sequence[float]) -> dict:
    """``summarize`` of ``count / s`` for each duration (items per second)."""
    return summarize([count / s for s in seconds])


def linear_fit(x: Sequence[float], y: Sequence[float]) -> dict:
    """Least-squares line ``y = slope * x + intercept`` and its R^2 (None with < 3 points)."""
    if len(x) < 2:
        return {"slope": None, "intercept": None, "r2": None}
    from scipy import stats

    fit = stats.linregress(x, y)
    return {"slope": float(fit.slope), "intercept": float(fit.intercept),
            "r2": float(fit.rvalue ** 2) if len(x) >= 3 else None}


def timed(function, *args, **kwargs) -> tuple[float, object]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result
