"""Atomic writers and JSON conversion (``cxrlib.io``)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from cxrlib import io  # noqa: E402


# --------------------------------------------------------------------------- write_json
def test_write_json_converts_numpy_and_nan(tmp_path):
    payload = {
        "int": np.int64(3), "float32": np.float32(0.5), "float64": np.float64(0.25),
        "nan": float("nan"), "np_nan": np.float64("nan"), "array": np.array([1, 2]),
        "nested": {"values": [np.float32(1.5), np.nan], 7: (np.int32(1), "x")},
        "path": Path("a/b"), "na": pd.NA, "flag": True, "none": None,
    }
    path = io.write_json(tmp_path / "out" / "metrics.json", payload)
    text = path.read_text()
    assert "NaN" not in text  # strict JSON
    assert json.loads(text) == {
        "int": 3, "float32": 0.5, "float64": 0.25, "nan": None, "np_nan": None,
        "array": [1, 2], "nested": {"values": [1.5, None], "7": [1, "x"]},
        "path": "a/b", "na": None, "flag": True, "none": None,
    }
    assert os.listdir(path.parent) == ["metrics.json"]  # no temporary file left


def test_write_json_converts_numpy_booleans(tmp_path):
    path = io.write_json(tmp_path / "m.json", {"ok": np.bool_(True), "n": np.array([True])})
    assert json.loads(path.read_text()) == {"ok": True, "n": [True]}


def test_write_json_never_leaves_a_half_written_file(tmp_path, monkeypatch):
    path = io.write_json(tmp_path / "metrics.json", {"version": 1})
    with pytest.raises(TypeError):  # not serialisable: nothing written
        io.write_json(path, {"version": 2, "bad": object()})
    assert json.loads(path.read_text()) == {"version": 1}

    def write_half_then_fail(self, data, *args, **kwargs):
        with open(self, "w") as handle:
            handle.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        io.write_json(path, {"version": 3, "padding": "x" * 1000})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"version": 1}  # old content intact
    io.write_json(path, {"version": 4})
    assert json.loads(path.read_text()) == {"version": 4}
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["metrics.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_write_csv_is_atomic_and_readable(tmp_path):
    table = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    path = io.write_csv(tmp_path / "t" / "predictions.csv", table)
    pd.testing.assert_frame_equal(pd.read_csv(path), table)
    assert os.listdir(path.parent) == ["predictions.csv"]


def test_save_arrays_and_npy_round_trip(tmp_path):
    path = io.save_arrays(tmp_path / "m" / "a.npz", mean=np.arange(3.0), std=np.ones(2))
    loaded = np.load(path)
    assert loaded["mean"].tolist() == [0.0, 1.0, 2.0] and loaded["std"].tolist() == [1.0, 1.0]
    npy = io.write_npy(tmp_path / "x.npy", np.eye(2, dtype=np.float32))
    assert np.load(npy).dtype == np.float32 and sorted(os.listdir(tmp_path)) == ["m", "x.npy"]


def test_write_run_writes_tables_figures_then_metrics(tmp_path):
    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    io.write_run(tmp_path / "run", {"metrics": {"accuracy": np.float64(0.5)}},
                 tables={"predictions": pd.DataFrame({"a": [1]})}, figures={"curve": figure})
    plt.close(figure)
    names = sorted(str(p.relative_to(tmp_path / "run")) for p in (tmp_path / "run").rglob("*"))
    assert names == ["figures", "figures/curve.png", "metrics.json", "predictions.csv"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == {"metrics": {"accuracy": 0.5}}
