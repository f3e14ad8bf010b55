"""Extraction efficiency: ``extract_features`` (files -> cached vectors) against the bare
``predict_on_batch`` of the same backbone on the same images already in memory.

Both paths use the same built backbone (build time excluded), the same batches and the
same process; each is warmed up once (first-call tracing) before timing, and the two
alternate in order across repetitions. Every repetition of ``extract_features`` starts
from an empty feature cache (a fresh folder); the image files themselves are then in the
operating system's page cache, as they are on any second run of a notebook.
"""
from __future__ import annotations

import gc
import shutil
from pathlib import Path

import numpy as np

from cxrlib.machine import usable_cpus
from benchmarks.stats import per_second, summarize, timed

RATIO_GOAL = 0.9


def pick_paths(data_dir: str | Path, count: int, seed: int = 0) -> list[str]:
    """``count`` readable frontal X-rays of the Cohen collection (a seeded sample, so every
    backbone and every process sees the same files); fewer if the collection is smaller."""
    from cxrlib import data
    from cxrlib.images import image_problem

    table = data.load_cohen(data_dir)
    paths = sorted(table.loc[table["exists"], "path"])
    chosen = []
    for index in np.random.default_rng(seed).permutation(len(paths)):
        if image_problem(paths[index]) is None:
            chosen.append(paths[index])
        if len(chosen) == count:
            break
    return chosen


def memory_batches(paths: list[str], backbone: str, image_size: int,
                   batch_size: int) -> list[np.ndarray]:
    """The images decoded in the backbone's input scale, split as ``extract_features``
    splits them."""
    from cxrlib.images import load_images
    from cxrlib.models import input_scale

    stacked, _, _ = load_images(paths, image_size, 3, input_scale(backbone))
    return [stacked[i:i + batch_size] for i in range(0, len(stacked), batch_size)]


def predict_all(model, batches: list[np.ndarray]) -> int:
    """Run the model on every batch (outputs as NumPy, as extraction keeps them)."""
    for batch in batches:
        np.asarray(model.predict_on_batch(batch), dtype=np.float32)
    return sum(len(b) for b in batches)


def extract_cold(paths: list[str], spec, model, cache_dir: Path, batch_size: int,
                 threads: int) -> tuple[float, int]:
    """(seconds, images computed) of one extraction into an empty cache folder."""
    from cxrlib.features import extract_features

    shutil.rmtree(cache_dir, ignore_errors=True)
    seconds, (table, _) = timed(extract_features, paths, spec, cache_dir,
                                batch_size=batch_size, threads=threads, progress=False,
                                model=model)
    shutil.rmtree(cache_dir, ignore_errors=True)
    if (table["status"] == "hit").any():
        raise RuntimeError(f"{cache_dir}: the cache was not cold")
    return seconds, int((table["status"] == "computed").sum())


def measure_backbone(backbone: str, paths: list[str], image_size: int, repeats: int,
                     work_dir: Path, batch_size: int = 32, threads: int = 2) -> dict:
    """Images per second of both paths for one backbone, and their ratio."""
    import keras

    from cxrlib.features import FeatureSpec
    from cxrlib.models import build_backbone

    build_s, model = timed(build_backbone, backbone, image_size, None, "avg", 0)
    spec = FeatureSpec(backbone, image_size, None, pooling="avg", init_seed=0)
    batches = memory_batches(paths, backbone, image_size, batch_size)
    cache = Path(work_dir) / f"extraction-cache-{backbone}"
    # warm-up (tracing): one batch of each shape the timed runs will see
    extract_cold(paths[:batch_size + len(paths) % batch_size], spec, model, cache,
                 batch_size, threads)
    predict_all(model, [batches[0]] + [b for b in batches[-1:] if len(b) != len(batches[0])])
    extract_s, predict_s, count = [], [], 0
    for repeat in range(repeats):
        for step in (("extract", "predict") if repeat % 2 == 0 else ("predict", "extract")):
            if step == "extract":
                seconds, count = extract_cold(paths, spec, model, cache, batch_size, threads)
                extract_s.append(seconds)
            else:
                predict_s.append(timed(predict_all, model, batches)[0])
    decode_s = [timed(memory_batches, paths, backbone, image_size, batch_size)[0]
                for _ in range(repeats)]
    n_memory = sum(len(b) for b in batches)
    if count != n_memory:
        raise RuntimeError(f"{backbone}: extraction computed {count} images, memory path "
                           f"holds {n_memory}")
    del model
    keras.backend.clear_session()
    gc.collect()
    result = backbone_result(count, build_s, extract_s, predict_s)
    result["decode_images_per_s"] = per_second(count, decode_s)
    result.update(ceiling(result, usable_cpus()))
    return result


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


def backbone_result(count: int, build_s: float, extract_s: list[float],
                    predict_s: list[float]) -> dict:
    """The JSON block of one backbone; ``ratio`` pairs the repetitions (same order).
    (``decode_images_per_s``, added by the caller, is ``load_images`` on one thread: what
    the convolution has to hide; ``ceiling`` turns it into the best reachable ratio.)"""
    extract = per_second(count, extract_s)
    predict = per_second(count, predict_s)
    ratio = summarize([p / e for e, p in zip(extract_s, predict_s)])
    return {
        "images": count,
        "build_s": build_s,
        "extract_images_per_s": extract,
        "predict_images_per_s": predict,
        "ratio": ratio,
        "ratio_of_medians": extract["median"] / predict["median"],
        "meets_goal": ratio["median"] >= RATIO_GOAL,
    }


def run(data_dir: str | Path, backbones: list[str], image_size: int, images: int,
        repeats: int, work_dir: Path, batch_size: int = 32, threads: int = 2,
        log=print) -> dict:
    """The extraction-efficiency section for every backbone."""
    paths = pick_paths(data_dir, images)
    result = {"image_size": image_size, "images": len(paths), "batch_size": batch_size,
              "decode_threads": threads, "repeats": repeats, "goal": RATIO_GOAL,
              "backbones": {}}
    for backbone in backbones:
        block = measure_backbone(backbone, paths, image_size, repeats, work_dir,
                                 batch_size, threads)
        log(f"extraction {backbone}: {block['extract_images_per_s']['median']:.1f} img/s vs "
            f"predict {block['predict_images_per_s']['median']:.1f} img/s, "
            f"ratio {block['ratio']['median']:.2f} (ceiling {block['ratio_ceiling']:.2f})")
        result["backbones"][backbone] = block
    return result
