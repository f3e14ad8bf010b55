"""A small, deterministic, synthetic sample dataset in the exact layouts of the real data.

``write_sample_data(out, seed)`` draws chest X-ray *phantoms* (ellipses, noise, designed
opacities) and writes them in the folder layouts, file names, metadata header and file
formats of the two real datasets, so that every notebook runs end to end without a
download:

- ``out/covid-chestxray-dataset/`` — the Cohen COVID-19 image collection (June 2020
  ``metadata.csv`` header, ``images/``, ``MISSING_IMAGES.txt``).
- ``out/chest-xray-pneumonia/chest_xray/{train,test,val}/{NORMAL,PNEUMONIA}/`` — the
  pediatric pneumonia set (Kermany et al.) with its file-name patterns.

Designed signals (what a model can learn here):

- ProgNet: every labelled patient has a baseline lung opacity; across the time series
  (ordered by ``offset``) it grows for deaths (``survival == "N"``) and shrinks for
  survivors (``"Y"``). The baselines overlap, so the last image alone is only partly
  informative; the trend is the label.
- Detector: COVID-19 shows bilateral, peripheral, patchy ground-glass opacities; pediatric
  pneumonia one dense lobar consolidation; pediatric normals clear lungs. Adult images
  also carry *source cues* (varied frame sizes and contrast, corner markers), as the real
  collection does.

The same seed gives byte-identical files (fixed JPEG quality, no PNG timestamps). The
sample is written into a temporary folder next to ``out`` and moved into place at the
end, so an interrupted run leaves no half dataset. Its marker file records a checksum of
every other file: ``is_intact`` tells whether a folder still holds exactly what was
written, and a sample whose files changed since is written again.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage, special

from cxrlib.errors import DataError

log = logging.getLogger(__name__)

SAMPLE_SEED = 0
"""The seed of the sample data the notebooks use by default."""

SAMPLE_VERSION = 5
"""Bumped whenever the generator changes what it writes (invalidates old samples)."""

COHEN_DIR = "covid-chestxray-dataset"
PEDIATRIC_DIR = "chest-xray-pneumonia"
MANIFEST_NAME = "sample_manifest.csv"
MARKER_NAME = ".cxr-sample.json"

COHEN_COLUMNS = [
    "patientid", "offset", "sex", "age", "finding", "survival", "intubated",
    "intubation_present", "went_icu", "in_icu", "needed_supplemental_O2", "extubated",
    "temperature", "pO2_saturation", "leukocyte_count", "neutrophil_count",
    "lymphocyte_count", "view", "modality", "date", "location", "folder", "filename",
    "doi", "url", "license", "clinical_notes", "other_notes", "",
]
"""Header of the June-2020 ``metadata.csv``; the last, unnamed column is always empty."""

MANIFEST_COLUMNS = [
    "dataset", "path", "split", "finding", "patient", "view", "modality", "offset",
    "survival", "opacity", "mode", "written",
]
"""Columns of the manifest: one row per image (``written`` is False for the missing one)."""

FRONTAL_VIEWS = ("PA", "AP", "AP Supine")
_STR_COLUMNS = ["dataset", "path", "split", "finding", "patient", "view", "modality",
                "survival", "mode"]

# How many adult images get each file format (the rest are mode-L JPEGs, plus exactly
# one CMYK JPEG). PNGs are few because noisy PNGs are large.
_FORMAT_COUNTS = {
    "jpeg-RGB": 30, "png-L": 8, "png-RGB": 4, "png-RGBA": 3, "png-P": 4, "png-I;16": 3,
}
_LOCATIONS = [
    "Wuhan, China", "Milan, Italy", "Seoul, South Korea", "Toronto, Canada",
    "Madrid, Spain", "New York, USA", "Tehran, Iran", "Sydney, Australia",
]
_LICENSES = ["CC BY 4.0", "CC BY-NC-SA 4.0", "CC BY-NC-ND 4.0", "Apache 2.0"]


# --------------------------------------------------------------------------- plan

@dataclass(frozen=True)
class _Look:
    """How one patient's images are acquired: frame, body placement, contrast."""

    h: int
    w: int
    body: tuple[float, float, float, float]  # cy, cx, ry, rx in pixels
    gain: float
    offset: float
    gamma: float
    child: bool
    quality: int
    markers: bool


@dataclass
class _Image:
    """One planned image file and the metadata that goes with it."""

    dataset: str
    path: str  # relative to the sample root, POSIX separators
    finding: str
    patient: str
    kind: str  # "frontal", "lateral" or "ct"
    pattern: str  # "covid", "sars", "lobar", "diffuse" or "clear"
    opacity: float
    look: _Look
    patient_key: int
    fmt: str = "jpeg-L"
    split: str = ""
    view: str = ""
    modality: str = ""
    offset: int | None = None
    survival: str = ""
    written: bool = True
    meta: dict = field(default_factory=dict)


def _adult_look(rng: np.random.Generator) -> _Look:
    """Random acquisition of an adult collection image (varied frames and contrast)."""
    w = int(rng.integers(150, 261))
    h = int(np.clip(w * rng.uniform(0.85, 1.25), 140, 300))
    body = (h * rng.uniform(0.54, 0.60), w * rng.uniform(0.47, 0.53),
            h * rng.uniform(0.50, 0.58), w * rng.uniform(0.40, 0.47))
    return _Look(h, w, body, gain=rng.uniform(0.9, 1.15), offset=rng.uniform(-0.03, 0.06),
                 gamma=rng.uniform(0.85, 1.2), child=False,
                 quality=int(rng.choice([70, 75, 80])), markers=True)


def _child_look(rng: np.random.Generator) -> _Look:
    """Acquisition at the single pediatric hospital: small round thorax, fixed contrast."""
    w = int(rng.integers(200, 261))
    h = int(w * rng.uniform(0.78, 0.92))
    rx = w * rng.uniform(0.27, 0.31)
    ry = min(rx * rng.uniform(1.0, 1.12), 0.44 * h)
    body = (h * rng.uniform(0.52, 0.56), w * rng.uniform(0.48, 0.52), ry, rx)
    return _Look(h, w, body, gain=rng.uniform(0.98, 1.02), offset=0.02, gamma=1.0,
                 child=True, quality=80, markers=False)


def _ct_look(rng: np.random.Generator) -> _Look:
    """An axial CT slice frame (square)."""
    s = int(rng.integers(200, 241))
    return _Look(s, s, (0.5 * s, 0.5 * s, 0.36 * s, 0.44 * s), gain=1.0, offset=0.0,
                 gamma=1.0, child=False, quality=85, markers=False)


def _trajectory(rng: np.random.Generator, n: int, direction: int) -> np.ndarray:
    """``n`` opacity levels from a random baseline, monotone up (+1) or down (-1)."""
    delta = rng.uniform(0.5, 0.7)
    base = rng.uniform(0.1, 0.9)
    base = min(base, 1.0 - delta) if direction > 0 else max(base, delta + 0.05)
    steps = delta * rng.dirichlet(np.full(n - 1, 3.0))
    levels = base + direction * np.concatenate([[0.0], np.cumsum(steps)])
    return np.clip(levels, 0.0, 1.0)


def _offsets(rng: np.random.Generator, n: int) -> list[int]:
    """Increasing day offsets from symptom onset."""
    start = int(rng.integers(0, 8))
    return list(start + np.concatenate([[0], np.cumsum(rng.integers(1, 9, n - 1))]).astype(int))


def _clinical(rng: np.random.Generator, survival: str) -> dict:
    """Plausible, mostly empty clinical fields for one row."""
    dead = survival == "N"

    def yn(p_yes: float, p_empty: float = 0.5) -> str:
        if rng.random() < p_empty:
            return ""
        return "Y" if rng.random() < p_yes else "N"

    return {
        "intubated": yn(0.7 if dead else 0.1), "intubation_present": yn(0.5, 0.8),
        "went_icu": yn(0.8 if dead else 0.2), "in_icu": yn(0.5, 0.8),
        "needed_supplemental_O2": yn(0.8, 0.7), "extubated": yn(0.3, 0.9),
        "temperature": "" if rng.random() < 0.6 else f"{rng.uniform(36.5, 39.8):.1f}",
        "pO2_saturation": "" if rng.random() < 0.6 else str(int(rng.integers(82, 99))),
        "leukocyte_count": "" if rng.random() < 0.7 else f"{rng.uniform(3, 15):.1f}",
        "neutrophil_count": "" if rng.random() < 0.8 else f"{rng.uniform(2, 12):.1f}",
        "lymphocyte_count": "" if rng.random() < 0.8 else f"{rng.uniform(0.3, 2.5):.1f}",
    }


def _date(first_day: dt.date, offset: int | None) -> str:
    """A ``"March 3, 2020"`` style date, or just the year when the offset is unknown."""
    if offset is None:
        return "2020"
    d = first_day + dt.timedelta(days=int(offset))
    return f"{d:%B} {d.day}, {d.year}"


@dataclass
class _Patient:
    """A Cohen patient before ids and file names are assigned."""

    finding: str
    survival: str
    pattern: str
    shots: list[tuple[str, str, int | None, float]]  # (view, modality, offset, opacity)
    missing: int = -1  # index of the shot listed in metadata but not written
    ct: bool = False


def _prognet_patients(rng: np.random.Generator) -> list[_Patient]:
    """90 labelled patients with 3-5 frontal X-rays and a monotone opacity trend (enough
    for the paper's LSTM head to learn the trend rather than memorise patients)."""
    labels = ["Y"] * 54 + ["N"] * 36
    rng.shuffle(labels)
    patients = []
    for i, surv in enumerate(labels):
        n = int(rng.integers(3, 6))
        levels = _trajectory(rng, n, +1 if surv == "N" else -1)
        views = rng.choice(FRONTAL_VIEWS, size=n, p=[0.4, 0.35, 0.25])
        shots = [(str(v), "X-ray", o, float(x)) for v, o, x in zip(views, _offsets(rng, n), levels)]
        if i < 2:  # an extra image with an empty offset, opacity mid-way
            mid = float((levels[0] + levels[-1]) / 2)
            shots.insert(n // 2, (str(views[0]), "X-ray", None, mid))
        if 2 <= i < 6:  # one lateral view on a day that also has a frontal
            j = int(rng.integers(0, n))
            shots.insert(j + 1, ("L", "X-ray", shots[j][2], shots[j][3]))
        finding = "COVID-19, ARDS" if surv == "N" and rng.random() < 0.3 else "COVID-19"
        patients.append(_Patient(finding, surv, "covid", shots))
    return patients


def _other_patients(rng: np.random.Generator) -> list[_Patient]:
    """Unlabelled series, short series, traps (CT / lateral), CT-only and non-COVID."""
    out = []
    for _ in range(3):  # 3+ frontal images but no survival label
        n = int(rng.integers(3, 5))
        levels = _trajectory(rng, n, int(rng.choice([-1, 1])))
        shots = [("PA", "X-ray", o, float(x)) for o, x in zip(_offsets(rng, n), levels)]
        out.append(_Patient("COVID-19", "", "covid", shots))
    for k, n in enumerate([1, 1, 1, 2, 2, 2, 1, 2]):  # short COVID series
        surv = ["Y", "N", ""][k % 3]
        level = rng.uniform(0.3, 0.9)
        shots = [(str(rng.choice(FRONTAL_VIEWS)), "X-ray", o, float(level))
                 for o in _offsets(rng, n)]
        out.append(_Patient("COVID-19", surv, "covid", shots, missing=1 if k == 3 else -1))
    level = rng.uniform(0.3, 0.8)  # trap: 2 frontal X-rays + 1 CT
    out.append(_Patient("COVID-19", "Y", "covid",
                        [("AP", "X-ray", 2, level), ("Axial", "CT", 3, level),
                         ("AP", "X-ray", 6, level)]))
    level = rng.uniform(0.3, 0.8)  # trap: 2 frontal X-rays + 1 lateral
    out.append(_Patient("COVID-19", "N", "covid",
                        [("PA", "X-ray", 1, level), ("L", "X-ray", 1, level),
                         ("PA", "X-ray", 5, level)]))
    for _ in range(2):  # CT only
        out.append(_Patient("COVID-19", "", "covid",
                            [("Axial", "CT", int(rng.integers(0, 10)), rng.uniform(0.4, 0.8))]))
    others = [("Pneumonia", "lobar", [2, 1]), ("SARS", "sars", [2, 1]),
              ("Streptococcus", "lobar", [1, 2]), ("Pneumocystis", "diffuse", [1]),
              ("No Finding", "clear", [1, 1, 1])]
    for finding, pattern, sizes in others:
        for n in sizes:
            surv = str(rng.choice(["Y", "N", ""], p=[0.4, 0.2, 0.4]))
            level = 0.0 if pattern == "clear" else rng.uniform(0.5, 0.9)
            out.append(_Patient(finding, surv, pattern,
                                [("PA", "X-ray", o, float(level)) for o in _offsets(rng, n)]))
    return out


def _file_stem(style: int, pid: str, k: int, view: str, offset: int | None) -> str:
    """A file-name stem in one of the naming styles of the real collection."""
    tag = {"PA": "PA", "AP": "AP", "AP Supine": "AP-supine", "L": "L", "Axial": "CT"}[view]
    day = "x" if offset is None else str(offset)
    return [f"{pid}-{k + 1}",
            f"covid-19-pneumonia-{pid}-{tag}-day{day}-{k + 1}",
            f"synthetic-{int(pid):06d}-{k + 1:03d}",
            f"ryct.2020.{pid}.fig{k + 1}-day{day}"][style]


def _assign_formats(rng: np.random.Generator, n: int) -> list[str]:
    """File formats for ``n`` adult images: every format occurs, exactly one CMYK JPEG."""
    pool = [f for f, c in _FORMAT_COUNTS.items() for _ in range(c)] + ["jpeg-CMYK"]
    pool += ["jpeg-L"] * (n - len(pool))
    rng.shuffle(pool)
    return pool


def _plan_cohen(seed: int) -> list[_Image]:
    """Plan every Cohen image: patients, metadata rows, file names and formats."""
    rng = np.random.default_rng([seed, 0])
    patients = _prognet_patients(rng) + _other_patients(rng)
    order = rng.permutation(len(patients))
    ids = np.cumsum(rng.integers(1, 5, len(patients))) + 2
    images: list[_Image] = []
    for key, (pi, pid_int) in enumerate(zip(order, ids)):
        p, pid = patients[pi], str(int(pid_int))
        look = _adult_look(np.random.default_rng([seed, 1, key]))
        ct_look = _ct_look(np.random.default_rng([seed, 2, key]))
        style = int(rng.integers(0, 4))
        first_day = dt.date(2020, 1, 15) + dt.timedelta(days=int(rng.integers(0, 110)))
        sex = str(rng.choice(["M", "F", ""], p=[0.55, 0.38, 0.07]))
        age = "" if rng.random() < 0.08 else str(int(rng.integers(22, 91)))
        location = str(rng.choice(_LOCATIONS))
        licence = str(rng.choice(_LICENSES))
        for k, (view, modality, offset, level) in enumerate(p.shots):
            ext = ".jpg" if style == 1 else ".jpeg"  # placeholder, fixed after formats
            name = _file_stem(style, pid, k, view, offset) + ext
            kind = "ct" if modality == "CT" else ("lateral" if view == "L" else "frontal")
            meta = {"patientid": pid, "offset": "" if offset is None else str(offset),
                    "sex": sex, "age": age, "finding": p.finding, "survival": p.survival,
                    **_clinical(rng, p.survival), "view": view, "modality": modality,
                    "date": _date(first_day, offset), "location": location,
                    "folder": "images", "filename": name, "doi": "",
                    "url": f"https://example.org/synthetic-cxr/{pid}", "license": licence,
                    "clinical_notes": _notes(p.pattern, view),
                    "other_notes": "synthetic phantom (cxrlib.sample)", "": ""}
            images.append(_Image(
                dataset="cohen", path=f"{COHEN_DIR}/images/{name}", finding=p.finding,
                patient=pid, kind=kind, pattern=p.pattern, opacity=round(float(level), 4),
                look=ct_look if kind == "ct" else look, patient_key=key, view=view,
                modality=modality, offset=offset, survival=p.survival,
                written=k != p.missing, meta=meta))
    written = [im for im in images if im.written]
    for im, fmt in zip(written, _assign_formats(rng, len(written))):
        _set_format(im, fmt, rng)
    for im in images:
        if not im.written:
            _set_format(im, "jpeg-L", rng)
    return images


def _set_format(im: _Image, fmt: str, rng: np.random.Generator) -> None:
    """Give a planned image its format and the matching file extension."""
    stem = im.path.rsplit(".", 1)[0]
    ext = ".png" if fmt.startswith("png") else str(rng.choice([".jpeg", ".jpg"], p=[0.7, 0.3]))
    im.fmt = fmt
    im.path = stem + ext
    im.meta["filename"] = Path(im.path).name


def _notes(pattern: str, view: str) -> str:
    """A short clinical note matching the drawn pattern."""
    text = {"covid": "Bilateral peripheral patchy ground-glass opacities.",
            "sars": "Bilateral perihilar airspace opacities.",
            "lobar": "Focal lobar consolidation, one lung.",
            "diffuse": "Diffuse bilateral interstitial haze.",
            "clear": "Clear lungs."}[pattern]
    return f"Synthetic case, {view} view. {text}"


def _plan_pediatric(seed: int) -> list[_Image]:
    """Plan the pediatric train/test/val images with the real file-name patterns."""
    rng = np.random.default_rng([seed, 3])
    counts = {"train": 48, "test": 8, "val": 4}
    person, counter, im_no, key = int(rng.integers(1, 20)), int(rng.integers(1, 10)), \
        int(rng.integers(1, 40)), 10_000
    images: list[_Image] = []
    three_part_done = False
    for split, n in counts.items():
        for label in ("NORMAL", "PNEUMONIA"):
            made = 0
            while made < n:
                n_img = 2 if (rng.random() < (0.2 if label == "PNEUMONIA" else 0.1)
                              and made + 2 <= n) else 1
                look = _child_look(np.random.default_rng([seed, 4, key]))
                if label == "PNEUMONIA":
                    person += int(rng.integers(1, 12))
                    germ = "virus" if rng.random() < 0.35 else "bacteria"
                    names, patient = [], f"person{person}"
                    for _ in range(n_img):
                        counter += int(rng.integers(1, 6))
                        names.append(f"person{person}_{germ}_{counter}.jpeg")
                else:
                    im_no += int(rng.integers(1, 9))
                    prefix = "NORMAL2-" if rng.random() < 0.5 else ""
                    patient = f"{prefix}IM-{im_no:04d}"
                    names = [f"{patient}-{j + 1:04d}.jpeg" for j in range(n_img)]
                    if n_img == 2 and not prefix and not three_part_done:
                        names[1] = f"{patient}-0001-0001.jpeg"
                        three_part_done = True
                for name in names:
                    images.append(_Image(
                        dataset="pediatric",
                        path=f"{PEDIATRIC_DIR}/chest_xray/{split}/{label}/{name}",
                        finding=label, patient=patient, kind="frontal",
                        pattern="lobar" if label == "PNEUMONIA" else "clear",
                        opacity=1.0 if label == "PNEUMONIA" else 0.0, look=look,
                        patient_key=key, fmt="jpeg-L", split=split))
                made += n_img
                key += 1
    if not three_part_done:  # make sure the IM-XXXX-YYYY-ZZZZ pattern occurs once
        im = next(i for i in images if i.finding == "NORMAL" and i.patient.startswith("IM-"))
        im.path = im.path.replace(".jpeg", "-0001.jpeg")
    for i in rng.choice([i for i, im in enumerate(images) if im.split == "train"], 4,
                        replace=False):
        images[int(i)].fmt = "jpeg-RGB"
    return images


# --------------------------------------------------------------------------- drawing

def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float,
             soft: float = 0.04) -> np.ndarray:
    """Soft-edged ellipse mask in 0..1 (``soft`` is the edge width in radius units)."""
    r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    return 1.0 / (1.0 + np.exp(np.clip((r - 1.0) / soft, -50, 50)))


def _radius(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float,
            rx: float) -> np.ndarray:
    """Normalised elliptical radius (1 on the ellipse)."""
    return np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation."""
    n = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, truncate=3.0)
    return n / (n.std() + 1e-9)


def _rank01(a: np.ndarray) -> np.ndarray:
    """Replace values by their rank scaled to 0..1 (a uniform, same-shape field)."""
    ranks = np.empty(a.size)
    ranks[np.argsort(a, axis=None, kind="stable")] = np.linspace(0.0, 1.0, a.size)
    return ranks.reshape(a.shape)


@functools.lru_cache(maxsize=4)
def _patient_field(seed: int, key: int, look: _Look) -> np.ndarray:
    """A patchy field fixed per patient, so disease stays in the same places over time."""
    rng = np.random.default_rng([seed, 5, key])
    return _smooth_noise(rng, (look.h, look.w), 0.03 * look.w)


def _lesion_layer(pattern: str, level: float, yy: np.ndarray, xx: np.ndarray,
                  lungs: list[tuple[float, float, float, float]], lung_mask: np.ndarray,
                  texture: np.ndarray, side: int, upper: bool) -> np.ndarray:
    """Brightness added inside the lungs by the disease pattern at opacity ``level``."""
    if pattern == "clear" or level <= 0:
        return np.zeros_like(yy)
    radius = np.minimum(*[_radius(yy, xx, *lung) for lung in lungs])
    if pattern in ("covid", "sars"):
        where = np.clip(radius, 0, 1) if pattern == "covid" else 1 - np.clip(radius, 0, 1)
        inside = lung_mask > 0.5  # rank inside the lungs: covered share = 0.8 * level
        score = np.zeros_like(texture)
        score[inside] = _rank01(0.6 * texture[inside] + 0.4 * where[inside])
        patch = np.clip((score - (1.0 - 0.8 * level)) / 0.08, 0.0, 1.0)
        return (0.2 + 0.12 * level) * ndimage.gaussian_filter(patch, 1.0) * lung_mask
    if pattern == "diffuse":
        return (0.08 + 0.12 * texture) * level * lung_mask
    cy, cx, ry, rx = lungs[side]  # lobar: one dense consolidation in one lobe
    lobe_cy = cy - 0.4 * ry if upper else cy + 0.35 * ry
    lobe = _ellipse(yy, xx, lobe_cy, cx, 0.55 * ry, 1.0 * rx, soft=0.12)
    one_lung = _ellipse(yy, xx, cy, cx, ry, rx, soft=0.05)
    return 0.42 * level * lobe * one_lung * (0.85 + 0.15 * texture)


def _frontal(look: _Look, yy: np.ndarray, xx: np.ndarray, pattern: str, level: float,
             texture: np.ndarray, side: int, upper: bool) -> tuple[np.ndarray, np.ndarray]:
    """A frontal chest phantom (0..1) and its body mask, before noise and contrast."""
    by, bx, bry, brx = look.body
    body = _ellipse(yy, xx, by, bx, bry, brx, soft=0.03)
    lcy = by - (0.08 if look.child else 0.14) * bry
    lry, lrx = (0.58 if look.child else 0.55) * bry, (0.38 if look.child else 0.35) * brx
    dx = (0.45 if look.child else 0.47) * brx
    lungs = [(lcy, bx - dx, lry, lrx), (lcy, bx + dx, lry, lrx)]
    lung_mask = np.maximum(*[_ellipse(yy, xx, *lung, soft=0.06) for lung in lungs])
    heart = _ellipse(yy, xx, by + 0.16 * bry, bx + 0.1 * brx, 0.24 * bry, 0.30 * brx, 0.1)
    spine_edge = (np.abs(xx - bx) - 0.08 * brx) / (0.01 * look.w)
    spine = body / (1.0 + np.exp(np.clip(spine_edge, -50, 50)))
    img = 0.04 + 0.46 * body
    img = img * (1.0 - 0.6 * lung_mask)
    if not look.child:  # ribs: faint curved bands inside the lungs
        phase = (yy - 0.25 * (xx - bx) ** 2 / brx) / (0.11 * bry)
        img += 0.05 * np.clip(2.0 * (np.cos(2 * np.pi * phase) - 0.4), 0, 1) * lung_mask
    img += _lesion_layer(pattern, level, yy, xx, lungs, lung_mask, texture, side, upper)
    img = img * (1.0 - heart) + 0.62 * heart
    img = img * (1.0 - 0.7 * spine) + 0.6 * 0.7 * spine
    return img, body


def _lateral(look: _Look, yy: np.ndarray, xx: np.ndarray, level: float,
             texture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A lateral chest phantom: one lung field, spine at the back, heart in front."""
    by, bx, bry, brx = look.body
    body = _ellipse(yy, xx, by, bx, bry, 0.95 * brx, soft=0.03)
    lung = _ellipse(yy, xx, by - 0.1 * bry, bx - 0.05 * brx, 0.6 * bry, 0.55 * brx, 0.06)
    spine = _ellipse(yy, xx, by, bx + 0.62 * brx, 0.9 * bry, 0.1 * brx, 0.1)
    heart = _ellipse(yy, xx, by + 0.2 * bry, bx - 0.35 * brx, 0.28 * bry, 0.3 * brx, 0.1)
    img = (0.04 + 0.5 * body) * (1.0 - 0.55 * lung)
    img += (0.1 + 0.14 * level) * np.clip((texture - (1.0 - 0.6 * level)) / 0.1, 0, 1) * lung
    img = img * (1 - heart) + 0.6 * heart
    img = img * (1 - spine) + 0.7 * spine
    return img, body


def _axial_ct(look: _Look, yy: np.ndarray, xx: np.ndarray, level: float,
              texture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An axial CT phantom: round body, two dark lungs, bright vertebra, GGO patches."""
    h, w = look.h, look.w
    body = _ellipse(yy, xx, 0.5 * h, 0.5 * w, 0.36 * h, 0.44 * w, soft=0.02)
    lungs = [(0.47 * h, 0.3 * w, 0.25 * h, 0.15 * w), (0.47 * h, 0.7 * w, 0.25 * h, 0.15 * w)]
    lung_mask = np.maximum(*[_ellipse(yy, xx, *lung, soft=0.04) for lung in lungs])
    img = 0.45 * body * (1.0 - 0.9 * lung_mask)
    img += _lesion_layer("covid", level, yy, xx, lungs, lung_mask, texture, 0, True)
    vertebra = _ellipse(yy, xx, 0.8 * h, 0.5 * w, 0.07 * h, 0.06 * w, 0.08)
    heart = _ellipse(yy, xx, 0.42 * h, 0.52 * w, 0.14 * h, 0.1 * w, 0.1)
    img = img * (1 - heart) + 0.55 * heart
    img = img * (1 - vertebra) + 0.95 * vertebra
    return img, body


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """PIL's built-in font at ``size`` pixels (cached)."""
    return ImageFont.load_default(size=size)


_DRAW_LOCK = threading.Lock()  # one cached font object is shared by the drawing threads


def _marker(look: _Look, rng: np.random.Generator, kind: str) -> np.ndarray:
    """A white corner marker ("L", "R" or a small rectangle) as a 0..1 mask."""
    mask = Image.new("L", (look.w, look.h), 0)
    draw = ImageDraw.Draw(mask)
    size = max(12, look.h // 12)
    pad = int(rng.integers(4, 10))
    top = bool(rng.random() < 0.5)
    left = bool(rng.random() < 0.5)
    x = pad if left else look.w - pad - size
    y = pad if top else look.h - pad - size
    with _DRAW_LOCK:
        if kind == "rect":
            draw.rectangle([x, y, x + size, y + size // 2], fill=255)
        else:
            draw.text((x, y), kind, fill=255, font=_font(size))
    return np.asarray(mask, dtype=np.float64) / 255.0


def _render(im: _Image, seed: int, index: int) -> np.ndarray:
    """Draw one planned image as float64 in 0..1 (noise, contrast and marker included)."""
    look = im.look
    rng = np.random.default_rng([seed, 6, index])
    pat = np.random.default_rng([seed, 7, im.patient_key])
    side, upper = int(pat.integers(0, 2)), bool(pat.random() < 0.5)
    shift_y, shift_x = rng.uniform(-0.015, 0.015, 2) * (look.h, look.w)
    yy, xx = np.mgrid[0: look.h, 0: look.w].astype(np.float64)
    yy, xx = yy - shift_y, xx - shift_x
    field = 0.85 * _patient_field(seed, im.patient_key, look) \
        + 0.15 * _smooth_noise(rng, (look.h, look.w), 0.03 * look.w)
    texture = special.ndtr(field / field.std())  # roughly uniform in 0..1
    if im.kind == "ct":
        img, body = _axial_ct(look, yy, xx, im.opacity, texture)
    elif im.kind == "lateral":
        img, body = _lateral(look, yy, xx, im.opacity, texture)
    else:
        img, body = _frontal(look, yy, xx, im.pattern, im.opacity, texture, side, upper)
    img = img + 0.015 * _smooth_noise(rng, img.shape, 1.0) * (0.3 + body)
    gain = look.gain * rng.uniform(0.99, 1.01)
    offset = look.offset + rng.uniform(-0.004, 0.004)
    img = np.clip(img * gain + offset, 0.0, 1.0) ** look.gamma
    kind = "rect" if im.fmt == "png-I;16" else None
    if look.markers and kind is None:  # one hospital marks all of a patient's films alike
        kind = pat.choice(["L", "R", "rect", ""], p=[0.2, 0.2, 0.15, 0.45])
    if kind:
        img = np.maximum(img, _marker(look, np.random.default_rng([seed, 8, im.patient_key]),
                                      str(kind)))
    return img


def _save(img: np.ndarray, fmt: str, path: Path, quality: int) -> str:
    """Encode a 0..1 image in ``fmt`` (e.g. ``"png-I;16"``) and return the PIL mode."""
    a8 = np.round(img * 255).astype(np.uint8)
    h, w = a8.shape
    kind, mode = fmt.split("-", 1)
    if mode == "L":
        pil = Image.fromarray(a8)
    elif mode == "RGB":
        pil = Image.fromarray(np.stack([a8] * 3, axis=-1))
    elif mode == "RGBA":
        pil = Image.fromarray(np.stack([a8] * 3 + [np.full_like(a8, 255)], axis=-1))
    elif mode == "P":  # 64 grey levels in a palette
        pil = Image.frombytes("P", (w, h), (a8 // 4).tobytes())
        pil.putpalette([v for i in range(64) for v in (i * 4 + 2,) * 3])
    elif mode == "I;16":  # 10-bit detector data stretched to the full 16-bit range
        levels = np.round((img - img.min()) / (img.max() - img.min()) * 1023)
        pil = Image.fromarray(np.round(levels * 65535 / 1023).astype(np.uint16))
    elif mode == "CMYK":
        cmyk = np.zeros((h, w, 4), np.uint8)
        cmyk[..., 3] = 255 - a8
        pil = Image.frombytes("CMYK", (w, h), cmyk.tobytes())
    else:
        raise ValueError(f"unknown format {fmt!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "png":
        pil.save(path, format="PNG", compress_level=9)
    else:
        pil.save(path, format="JPEG", quality=quality, optimize=False, progressive=False)
    return pil.mode


# --------------------------------------------------------------------------- writing

def _relisted(images: list[_Image]) -> list[dict]:
    """Metadata rows listing one labelled patient's images again under a new id, as the
    real collection lists patient 285 again as 339: the first labelled patient with 3+
    dated frontal X-rays, appended at the end under the next free id."""
    cohen = [im for im in images if im.dataset == "cohen"]
    frontal = {}
    for im in cohen:
        if im.kind == "frontal" and im.survival and im.offset is not None and im.written:
            frontal.setdefault(im.patient, []).append(im)
    undated = {im.patient for im in cohen if im.offset is None}
    patient = next(p for p, shots in frontal.items() if len(shots) >= 3 and p not in undated)
    new_id = str(max(int(im.patient) for im in cohen) + 1)
    return [{**im.meta, "patientid": new_id} for im in cohen if im.patient == patient]


def _write_cohen_tables(root: Path, images: list[_Image]) -> None:
    """Write ``metadata.csv`` (with one patient listed twice) and ``MISSING_IMAGES.txt``."""
    rows = [im.meta for im in images if im.dataset == "cohen"] + _relisted(images)
    table = pd.DataFrame(rows, columns=COHEN_COLUMNS, dtype=object)
    base = root / COHEN_DIR
    table.to_csv(base / "metadata.csv", index=False, lineterminator="\n")
    missing = [f"images/{Path(im.path).name}" for im in images
               if im.dataset == "cohen" and not im.written]
    (base / "MISSING_IMAGES.txt").write_text("\n".join(missing) + "\n", encoding="utf-8")


def _manifest(images: list[_Image], modes: list[str]) -> pd.DataFrame:
    """The manifest table (one row per planned image)."""
    return pd.DataFrame([{
        "dataset": im.dataset, "path": im.path, "split": im.split, "finding": im.finding,
        "patient": im.patient, "view": im.view, "modality": im.modality,
        "offset": "" if im.offset is None else str(im.offset), "survival": im.survival,
        "opacity": im.opacity, "mode": mode, "written": im.written,
    } for im, mode in zip(images, modes)], columns=MANIFEST_COLUMNS)


def read_manifest(out: str | Path) -> pd.DataFrame:
    """Read the manifest of a written sample (``offset`` as nullable Int64, '' for blanks)."""
    path = Path(out) / MANIFEST_NAME
    if not path.is_file():
        raise DataError(f"{path}: no sample manifest (run write_sample_data first)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table["offset"] = pd.to_numeric(table["offset"].replace("", None)).astype("Int64")
    table["opacity"] = table["opacity"].astype(float)
    table["written"] = table["written"] == "True"
    return table


def _readme(seed: int, manifest: pd.DataFrame) -> str:
    """Text of ``out/README.md``: what the sample is, then what ``manifest`` counts."""
    return _readme_description(seed) + _readme_counts(manifest)


def _readme_description(seed: int) -> str:
    """The README's fixed part: what the sample is, its layout, how to regenerate it,
    the signals designed into it and its edge cases."""
    return f"""# Synthetic sample data (not real patients)

Every image here is a **synthetic phantom** drawn by `cxrlib.sample.write_sample_data`
(seed {seed}, generator version {SAMPLE_VERSION}). Nothing comes from a patient; do not
use it for anything clinical. The folders copy the *layouts* of the real datasets so the
notebooks run end to end without a download:

- `{COHEN_DIR}/` — layout of the Cohen et al. COVID-19 image collection (June 2020):
  `metadata.csv` with the real header (including the trailing unnamed column),
  `images/`, and `MISSING_IMAGES.txt` naming the one listed-but-missing image.
- `{PEDIATRIC_DIR}/chest_xray/{{train,test,val}}/{{NORMAL,PNEUMONIA}}/` — layout and file-name
  patterns of the pediatric pneumonia set (Kermany et al.).
- `{MANIFEST_NAME}` — one row per image with the designed signal (`opacity`).

Regenerate with `cxr data sample --out <dir> --seed {seed}` or
`cxrlib.sample.write_sample_data('<dir>', seed={seed})`; the same seed gives
byte-identical files (with the same Pillow and libjpeg versions).

## Designed signals
- **Prognosis (ProgNet):** each labelled COVID-19 patient has a random baseline lung
  opacity (0.1-0.9, `opacity` in the manifest). Ordered by `offset`, it **grows** for
  deaths (`survival` N) and **shrinks** for survivors (Y) by 0.5-0.7 in total (the
  covered share of the lungs is 0.8 x opacity, densest at the lung edges). Baselines
  overlap, so the last image alone is only partly informative; the trend is the label.
- **COVID-19:** bilateral, peripheral, patchy ground-glass opacities (more area and
  density with higher opacity). SARS: bilateral perihilar; Pneumonia / Streptococcus:
  one lobar consolidation; Pneumocystis: diffuse haze; No Finding: clear lungs.
- **Pediatric:** PNEUMONIA has one dense lobar consolidation; NORMAL has clear lungs.
  Child-sized, rounder thorax, one "hospital" (frame 200-260 px, fixed contrast, no
  markers).
- **Source cues:** adult images vary in frame size, contrast and gamma, carry corner
  markers ("L", "R", a white rectangle) and come as JPEG/PNG in modes L, RGB, RGBA, P,
  I;16 (16-bit) and one CMYK JPEG. A model can tell the two sources apart from these
  cues alone, as with the real data.

## Edge cases (as in the real data)
- 3 COVID-19 patients with 3+ frontal images but no survival label.
- 2 labelled patients with one image whose `offset` is empty (its opacity is mid-way).
- Lateral (`L`) images for a few labelled patients; 3 CT rows (`Axial`, modality CT).
- A labelled patient with 2 frontal X-rays + 1 CT, and one with 2 frontal + 1 lateral:
  neither has 3 frontal X-rays.
- Short series (1-2 images) and one listed-but-missing file.
- One labelled patient listed again at the end of `metadata.csv` under a new id, with the
  same files (as patients 285 and 339 of the real collection): one person, one cohort
  member, once the ids are merged by image content.

"""


def _readme_counts(manifest: pd.DataFrame) -> str:
    """The README's ``Counts`` section: rows, patients and files of each dataset, per
    finding (Cohen) and per split and class (pediatric)."""
    cohen = manifest[manifest.dataset == "cohen"]
    ped = manifest[manifest.dataset == "pediatric"]
    ped_counts = ped.groupby(["split", "finding"]).size()
    ped_lines = "\n".join(f"  - {s}/{f}: {n}" for (s, f), n in ped_counts.items())
    per_finding = cohen.groupby("finding").agg(images=("path", "size"),
                                               patients=("patient", "nunique"))
    findings = "\n".join(f"  - {f}: {r.images} image(s), {r.patients} patient(s)"
                         for f, r in per_finding.iterrows())
    return f"""## Counts
- Cohen: {len(cohen)} rows, {cohen.patient.nunique()} patients, {int(cohen.written.sum())} files.
{findings}
- Pediatric: {len(ped)} images, {ped.patient.nunique()} patients.
{ped_lines}
"""


def checksum(root: str | Path) -> str:
    """sha256 over every file under ``root`` but the marker: relative paths and bytes."""
    root, digest = Path(root), hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MARKER_NAME):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _read_marker(out: Path) -> dict:
    try:
        return json.loads((out / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _marker_ok(out: Path, seed: int) -> bool:
    """True when ``out``'s marker names a complete sample of this seed and version."""
    info = _read_marker(out)
    return (info.get("seed") == seed and info.get("version") == SAMPLE_VERSION
            and (out / MANIFEST_NAME).is_file())


def is_intact(out: str | Path, seed: int = SAMPLE_SEED) -> bool:
    """True when ``out`` holds a sample of this seed and generator version whose files are
    byte for byte what was written (the marker's checksum; about 20 ms for the sample)."""
    out = Path(out)
    return _marker_ok(out, seed) and _read_marker(out).get("sha256") == checksum(out)


def _write_all(root: Path, seed: int, threads: int) -> None:
    """Generate every file of the sample under ``root`` (marker file last)."""
    images = _plan_cohen(seed) + _plan_pediatric(seed)
    (root / COHEN_DIR / "images").mkdir(parents=True)

    def draw_and_save(i: int) -> str:  # the PIL mode written ("" for a missing image)
        im = images[i]
        if not im.written:
            return ""
        return _save(_render(im, seed, i), im.fmt, root / im.path, im.look.quality)

    # Each image draws from random generators of its own ([seed, kind, index or patient]),
    # so drawing them in parallel threads (NumPy, SciPy and Pillow release the GIL for most
    # of the work) writes the same bytes as one after another, in 60% of the time on 2 cores.
    with ThreadPoolExecutor(max_workers=threads) as pool:
        modes = list(pool.map(draw_and_save, range(len(images))))
    _write_cohen_tables(root, images)
    manifest = _manifest(images, modes)
    manifest.to_csv(root / MANIFEST_NAME, index=False, lineterminator="\n")
    (root / "README.md").write_text(_readme(seed, read_manifest(root)), encoding="utf-8")
    marker = {"generator": "cxrlib.sample", "seed": seed, "version": SAMPLE_VERSION,
              "images": int(manifest.written.sum()), "sha256": checksum(root)}
    (root / MARKER_NAME).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")


def write_sample_data(out: str | Path, seed: int = SAMPLE_SEED,
                      threads: int | None = None) -> pd.DataFrame:
    """Write the synthetic sample dataset to ``out`` and return its manifest.

    The manifest has one row per image (``MANIFEST_COLUMNS``): dataset (``cohen`` or
    ``pediatric``), path relative to ``out``, split, finding/class, patient, view,
    modality, offset, survival, the designed ``opacity`` level, the PIL mode written and
    ``written`` (False for the one listed-but-missing Cohen image). If ``out`` already
    holds an intact sample of the same seed (``is_intact``), nothing is rewritten. A
    sample of another seed or version, or one whose files changed since it was written,
    is replaced (with a warning for the latter); any other non-empty folder raises
    ``DataError``.
    ``threads``: how many images are drawn at once (default: the cores, at most 4); the
    files are the same whatever it is.
    """
    out = Path(out)
    if _marker_ok(out, seed):
        if is_intact(out, seed):
            return read_manifest(out)
        log.warning("%s: the sample's files changed since it was written (or its marker "
                    "has no checksum); writing it again", out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not (out / MARKER_NAME).exists():
        raise DataError(f"{out}: folder exists and is not a cxrlib sample; refusing to "
                        "overwrite it (choose an empty or new folder)")
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the sample is meant to be shared
    try:
        _write_all(tmp, seed, threads or min(4, os.cpu_count() or 1))
        _swap_into_place(tmp, out, seed)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote synthetic sample (seed %d) to %s in %.1f s", seed, out,
             time.perf_counter() - start)
    return read_manifest(out)


def _swap_into_place(tmp: Path, out: Path, seed: int) -> None:
    """Move the finished ``tmp`` folder to ``out`` (replacing an old sample atomically)."""
    old = None
    if out.exists() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / "sample")
    try:
        os.replace(tmp, out)
    except OSError:
        if not _marker_ok(out, seed):  # another process did not finish the same sample
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


__all__ = ["SAMPLE_SEED", "SAMPLE_VERSION", "COHEN_COLUMNS", "MANIFEST_COLUMNS",
           "MANIFEST_NAME", "write_sample_data", "read_manifest", "checksum", "is_intact"]
