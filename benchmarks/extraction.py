"""Extraction efficiency: ``extract_features`` (files -> cached vectors, from an empty
cache each time) against the bare ``predict_on_batch`` of the same built backbone on the
same images already in memory, both warmed up once and alternating across repetitions.
"""
from __future__ import annotations

import shutil
from itertools import islice
from pathlib import Path

import numpy as np

from benchmarks import free_models
from benchmarks.stats import per_second, summarize, timed
from cxrlib.machine import usable_cpus

RATIO_GOAL = 0.9


def pick_paths(data_dir: str | Path, count: int, seed: int = 0) -> list[str]:
    """``count`` readable frontal X-rays of the Cohen collection (a seeded sample, so every
    backbone and every process sees the same files); fewer if the collection is smaller."""
    from cxrlib import data
    from cxrlib.images import image_problem

    table = data.load_cohen(data_dir)
    paths = sorted(table.loc[table["exists"], "path"])
    shuffled = (paths[i] for i in np.random.default_rng(seed).permutation(len(paths)))
    return list(islice((p for p in shuffled if image_problem(p) is None), count))


def memory_batches(paths: list[str], backbone: str, image_size: int,
                   batch_size: int) -> list[np.ndarray]:
    """The images decoded in the backbone's input scale, split as ``extract_features``
    splits them."""
    from cxrlib.images import load_images
    from cxrlib.models import input_scale

    stacked, _, _ = load_images(paths, image_size, 3, input_scale(backbone))
    return [stacked[i:i + batch_size] for i in range(0, len(stacked), batch_size)]


def predict_all(model, batches: list[np.ndarray]) -> None:
    """Run the model on every batch (outputs as NumPy, as extraction keeps them)."""
    for batch in batches:
        np.asarray(model.predict_on_batch(batch), dtype=np.float32)


def extract_cold(paths: list[str], spec, model, cache_dir: Path, batch_size: int,
                 threads: int = 2) -> tuple[float, dict]:
    """(seconds, features) of one extraction of every path into an empty cache folder."""
    from cxrlib.features import extract_features

    shutil.rmtree(cache_dir, ignore_errors=True)
    seconds, (table, vectors) = timed(extract_features, paths, spec, cache_dir,
                                      batch_size=batch_size, threads=threads,
                                      progress=False, model=model)
    shutil.rmtree(cache_dir, ignore_errors=True)
    if (table["status"] == "hit").any():
        raise RuntimeError(f"{cache_dir}: the cache was not cold")
    return seconds, vectors


def warm_up(paths: list[str], spec, model, cache_dir: Path, batch_size: int) -> None:
    """Trace the backbone for the full and the last (partial) batch shapes, untimed."""
    extract_cold(paths[:batch_size + len(paths) % batch_size], spec, model, cache_dir,
                 batch_size)


def measure_backbone(backbone: str, paths: list[str], image_size: int, repeats: int,
                     work_dir: Path, batch_size: int = 32) -> dict:
    """Images per second of both paths for one backbone, and their ratio."""
    from cxrlib.features import FeatureSpec
    from cxrlib.models import build_backbone

    model = build_backbone(backbone, image_size, None, "avg", 0)
    spec = FeatureSpec(backbone, image_size, None, pooling="avg", init_seed=0)
    batches = memory_batches(paths, backbone, image_size, batch_size)
    cache = Path(work_dir) / f"extraction-cache-{backbone}"
    warm_up(paths, spec, model, cache, batch_size)
    predict_all(model, [batches[0]] + [b for b in batches[-1:] if len(b) != len(batches[0])])
    extract_s, predict_s = [], []
    steps = [lambda: extract_s.append(extract_cold(paths, spec, model, cache, batch_size)[0]),
             lambda: predict_s.append(timed(predict_all, model, batches)[0])]
    for repeat in range(repeats):  # the two paths alternate in order
        for step in steps[::1 if repeat % 2 == 0 else -1]:
            step()
    decode_s = [timed(memory_batches, paths, backbone, image_size, batch_size)[0]
                for _ in range(repeats)]
    del model
    free_models()
    extract, predict = per_second(len(paths), extract_s), per_second(len(paths), predict_s)
    ratio = summarize([p / e for e, p in zip(extract_s, predict_s)])  # paired repetitions
    result = {"images": len(paths), "extract_images_per_s": extract,
              "predict_images_per_s": predict, "ratio": ratio,
              "meets_goal": ratio["median"] >= RATIO_GOAL,
              "decode_images_per_s": per_second(len(paths), decode_s)}
    return {**result, **ceiling(result, usable_cpus())}


def ceiling(block: dict, cores: int) -> dict:
    """The best ratio this machine allows when decoding shares the cores with the model.

    If ``predict_on_batch`` kept all ``cores`` busy, one image costs ``cores / predict``
    core-seconds of convolution and ``1 / decode`` core-seconds of decoding (measured on
    one thread), so no overlap can beat ``conv / (conv + decode)``. It is an upper bound:
    a model that leaves a core idle has cheaper convolutions than assumed here.
    """
    predict = block["predict_images_per_s"]["median"]
    decode = block["decode_images_per_s"]["median"]
    conv_core_s, decode_core_s = cores / predict, 1.0 / decode
    bound = conv_core_s / (conv_core_s + decode_core_s)
    return {"ceiling_cores": cores, "ratio_ceiling": bound,
            "share_of_ceiling": block["ratio"]["median"] / bound}


def run(settings: dict, data_dir: str | Path, work_dir: Path, log=print) -> dict:
    """The extraction-efficiency section for every backbone of ``settings``."""
    s = settings
    paths = pick_paths(data_dir, s["images"])
    result = {"image_size": s["image_size"], "images": len(paths), "repeats": s["repeats"],
              "batch_size": s["batch_size"], "goal": RATIO_GOAL, "backbones": {}}
    for backbone in s["backbones"]:
        block = measure_backbone(backbone, paths, s["image_size"], s["repeats"], work_dir,
                                 s["batch_size"])
        log(f"extraction {backbone}: ratio {block['ratio']['median']:.2f} "
            f"(ceiling {block['ratio_ceiling']:.2f})")
        result["backbones"][backbone] = block
    return result
