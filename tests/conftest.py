"""Shared fixtures: a tiny hand-made dataset in the real layouts, and the sample data."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

try:
    import fcntl  # a lock between pytest-xdist processes (not on Windows)
except ImportError:
    fcntl = None

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
REPO_SAMPLE = REPO / "data" / "sample"  # what `make sample` writes (the Makefile's SAMPLE)

COHEN_HEADER_2020 = (
    "patientid,offset,sex,age,finding,survival,intubated,intubation_present,went_icu,in_icu,"
    "needed_supplemental_O2,extubated,temperature,pO2_saturation,leukocyte_count,"
    "neutrophil_count,lymphocyte_count,view,modality,date,location,folder,filename,doi,url,"
    "license,clinical_notes,other_notes,")


def write_gray(path: Path, value: int = 128, size: tuple[int, int] = (40, 32)) -> Path:
    """A small grayscale JPEG/PNG with a gradient, so resizing has something to do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 1, size[0] * size[1]).reshape(size[1], size[0])
    Image.fromarray((ramp * value).astype(np.uint8)).save(path)
    return path


def pytest_configure(config) -> None:
    """Image content hashes are cached in a file of this test session, not in the user's
    cache folder; set before any fixture runs, so the batches and kernels that session
    fixtures start inherit it too (``make test`` sets it for its grid and nbval)."""
    if "CXR_HASH_CACHE" not in os.environ:
        os.environ["CXR_HASH_CACHE"] = str(Path(tempfile.mkdtemp(prefix="cxr-hashes-"))
                                           / "image-hashes.json")


@pytest.fixture(autouse=True)
def image_hash_cache(tmp_path_factory, monkeypatch) -> Path:
    """Each test's image content hashes in a temporary file of its own."""
    path = tmp_path_factory.getbasetemp() / "image-hashes.json"
    monkeypatch.setenv("CXR_HASH_CACHE", str(path))
    return path


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """Cohen + pediatric layouts with a few rows covering the awkward cases."""
    cohen = tmp_path / "covid-chestxray-dataset"
    rows = [
        # patient 1: three dated frontal images, died; listed out of order on purpose
        ("1", "5", "COVID-19", "N", "PA", "X-ray", "p1c.png"),
        ("1", "0", "COVID-19", "N", "PA", "X-ray", "p1a.png"),
        ("1", "2", "COVID-19", "N", "AP Supine", "X-ray", "p1b.png"),
        ("1", "2", "COVID-19", "N", "L", "X-ray", "p1-lateral.png"),
        # patient 2: survived; one image without an offset (goes last), one missing file
        ("2", "", "COVID-19, ARDS", "Y", "AP", "X-ray", "p2-undated.png"),
        ("2", "1", "COVID-19, ARDS", "Y", "AP", "X-ray", "p2a.png"),
        ("2", "3", "COVID-19, ARDS", "Y", "AP", "X-ray", "p2b.png"),
        ("2", "4", "COVID-19, ARDS", "Y", "AP", "X-ray", "p2-missing.png"),
        # patient 3: no survival label
        ("3", "0", "SARS", "", "PA", "X-ray", "p3a.png"),
        ("3", "1", "SARS", "", "PA", "X-ray", "p3b.png"),
        ("3", "2", "SARS", "", "PA", "X-ray", "p3c.png"),
        # a CT row
        ("4", "0", "COVID-19", "Y", "Axial", "CT", "p4-ct.png"),
        # patient 5: empty file
        ("5", "0", "Pneumonia", "Y", "PA", "X-ray", "p5-empty.png"),
    ]
    lines = [COHEN_HEADER_2020]
    for pid, offset, finding, survival, view, modality, name in rows:
        lines.append(f'{pid},{offset},M,50,"{finding}",{survival},,,,,,,,,,,,{view},{modality},'
                     f'2020,,images,{name},,,,,,')
        if name == "p5-empty.png":
            (cohen / "images").mkdir(parents=True, exist_ok=True)
            (cohen / "images" / name).write_bytes(b"")
        elif "missing" not in name:
            # a value per file: each listed file is a different image (content identity)
            write_gray(cohen / "images" / name, value=100 + 10 * int(pid) + len(lines))
    (cohen / "metadata.csv").write_text("\n".join(lines) + "\n")
    pediatric = tmp_path / "chest-xray-pneumonia" / "chest_xray"
    names = [("person1_bacteria_1.jpeg", "PNEUMONIA"), ("person1_bacteria_2.jpeg", "PNEUMONIA"),
             ("person2_virus_3.jpeg", "PNEUMONIA"), ("IM-0001-0001.jpeg", "NORMAL"),
             ("IM-0002-0001-0002.jpeg", "NORMAL"), ("NORMAL2-IM-0003-0001.jpeg", "NORMAL")]
    for value, (name, folder) in enumerate(names, start=60):
        write_gray(pediatric / "train" / folder / name, value=value)
    return tmp_path


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's temporary folder; under pytest-xdist the one all its processes share."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER") and fcntl is not None:
        root = root.parent
    return root


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's synthetic sample data, once per test session: under pytest-xdist
    once for all its processes (the first makes it, the others wait for it). A copy of
    the repository's data/sample when that is intact (``make test`` has just written or
    checked it: same seed and generator version, every file's bytes as the generator
    wrote them), else generated here. Tests only read it."""
    import shutil

    from cxrlib.sample import SAMPLE_SEED, is_intact, write_sample_data

    root = _shared_root(tmp_path_factory)
    out = root / "shared-sample" / "data"
    with open(root / "shared-sample.lock", "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (out.parent / "done").is_file():
            shutil.rmtree(out, ignore_errors=True)  # what an interrupted copy left
            if is_intact(REPO_SAMPLE, SAMPLE_SEED):
                shutil.copytree(REPO_SAMPLE, out)
            write_sample_data(out, seed=SAMPLE_SEED)  # checks the copy; writes if none
            (out.parent / "done").write_text("")
    return out


# A tiny grid: AlexNet ProgNet seeds 0 and 1 and the CNN detector's fold 0, small images,
# few epochs, few detector images (seconds per run).
TINY_GRID = {"backbones": ["alexnet"], "seeds": [0, 1], "models": ["cnn"], "folds": [0]}
TINY = {"epochs": 3, "image_size": 32}
TINY_DETECTOR = {"n_per_class": 10, "shortcut_audit": False, "augment_copies": 0}


def tiny_plan(data_dir: Path, out: Path, cache_dir: Path):
    """The tiny grid as a batch plan (the detector without its shortcut audit)."""
    from cxrlib import batch

    plan = batch.plan("sample", data_dir, out, **TINY_GRID, overrides=TINY, cache_dir=cache_dir)
    for run in plan.runs:
        if run.notebook == "detector":
            run.parameters.update(TINY_DETECTOR)
    return plan


def tiny_batch_args(data_dir: Path, cache_dir: Path) -> list[str]:
    """`cxr batch` options for the tiny grid with the detector's shortcut audit, one worker,
    no reports (the out folder not included)."""
    args = ["--profile", "sample", "--data-dir", str(data_dir), "--workers", "1",
            "--no-reports", "--quiet", "--cache-dir", str(cache_dir)]
    for option, values in TINY_GRID.items():
        args += [f"--{option}", *map(str, values)]
    for name, value in {**TINY, **TINY_DETECTOR, "shortcut_audit": True}.items():
        args += ["-p", name, json.dumps(value)]
    return args


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A feature cache the tiny batches share, across pytest-xdist's processes too (the
    cache's writes are atomic: two processes extracting the same features at once each
    write a whole file). Only tests that do not need a cold cache use it."""
    return _shared_root(tmp_path_factory) / "shared-tiny-cache"


@pytest.fixture(scope="session")
def tiny_runs(sample_dir: Path, tiny_cache: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results folder of the tiny batch (tiny_batch_args), run once per session as
    `cxr batch` runs it (the detector, then both seeds, in one warm kernel): three
    finished runs, their models saved. Tests that use it join the xdist group
    "tiny_runs" (one process builds and reads it). The reports some of them run write
    beside the runs, never into them."""
    from cxrlib import cli

    out = tmp_path_factory.mktemp("runs") / "results"
    args = cli.build_parser().parse_args(
        ["batch", *tiny_batch_args(sample_dir, tiny_cache), "--out", str(out)])
    assert cli.cmd_batch(args) == 0
    return out


# What `fixed_step_cost` says one end-to-end step costs, and what that makes an epoch of
# the paper's detector grid at batch 4: 421 images in 5 folds leave 85 held out (22
# prediction batches of 4) and 336 trained on (84 steps).
FIXED_TRAIN_STEP_S, FIXED_PREDICT_STEP_S = 0.5, 0.25
FIXED_EPOCH_S_AT_BATCH_4 = 84 * FIXED_TRAIN_STEP_S + 22 * FIXED_PREDICT_STEP_S


@pytest.fixture
def fixed_step_cost(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """``cost.measure_step_cost`` answering fixed seconds (``FIXED_*``) instead of
    building and tracing Table 2's networks, so the cost arithmetic of ``cxr batch`` and
    of the paper_detector benchmark can be checked exactly. The real measurement is
    test_detector's ``test_cost_estimate_from_real_steps``. Returns the calls it got, as
    (model, base, trainable, image size, batch size, epochs, steps, warmup)."""
    from cxrlib import cost

    calls: list[tuple] = []

    def measure(config, steps: int = 3, warmup: int = 1, tick=None) -> dict:
        calls.append((config.model, config.base, config.trainable, config.image_size,
                      config.batch_size, config.epochs, steps, warmup))
        return {"model": config.model, "base": config.base, "image_size": config.image_size,
                "batch_size": config.batch_size, "train_step_s": FIXED_TRAIN_STEP_S,
                "predict_step_s": FIXED_PREDICT_STEP_S, "first_step_s": 2.0,
                "train_step_times": [0.4, FIXED_TRAIN_STEP_S, 0.6],
                "predict_step_times": [FIXED_PREDICT_STEP_S] * 3}

    monkeypatch.setattr(cost, "measure_step_cost", measure)
    return calls
