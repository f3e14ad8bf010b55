"""How the cost grows with the data: one cached ProgNet run (cold extraction +
``train_and_predict``) on the cohort repeated 1x, 2x, 4x, and a least-squares line.

Larger cohorts repeat the real one: each copy gets new patient ids and byte-distinct
copies of the image files (a JPEG comment or a PNG text chunk is added; the pixels are
unchanged), so the feature cache sees new content and recomputes every copy.
"""
from __future__ import annotations

import gc
import zlib
from pathlib import Path

import pandas as pd

from benchmarks.stats import linear_fit, summarize, timed

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def distinct_copy(source: Path, target: Path, tag: str) -> Path:
    """Copy an image file with a metadata difference only: same pixels, new bytes.

    JPEG gets a comment segment after its start marker, PNG a ``tEXt`` chunk after its
    header chunk; any other file gets ``tag`` appended (decoders ignore trailing bytes).
    """
    payload = Path(source).read_bytes()
    note = tag.encode()
    if payload[:2] == b"\xff\xd8":
        segment = b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note
        payload = payload[:2] + segment + payload[2:]
    elif payload[:8] == PNG_SIGNATURE:
        body = b"tEXt" + b"Comment\x00" + note
        chunk = (len(body) - 4).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
        header_end = 8 + 12 + int.from_bytes(payload[8:12], "big")
        payload = payload[:header_end] + chunk + payload[header_end:]
    else:
        payload += note
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    return target


def scaled_cohort(sequences: pd.DataFrame, factor: int, folder: Path) -> pd.DataFrame:
    """The cohort ``factor`` times: copy k > 0 has ids ``<id>-copy<k>`` and distinct files."""
    copies = [sequences]
    for copy in range(1, factor):
        target = Path(folder) / f"copy{copy}"
        renamed = {}
        for index, path in enumerate(dict.fromkeys(p for ps in sequences["paths"] for p in ps)):
            new = target / f"{index:05d}-{Path(path).name}"
            renamed[path] = str(new if new.exists() else distinct_copy(Path(path), new,
                                                                        f"cxr-copy-{copy}"))
        copies.append(sequences.assign(
            patient_id=sequences["patient_id"].astype(str) + f"-copy{copy}",
            paths=[[renamed[p] for p in ps] for ps in sequences["paths"]]))
    return pd.concat(copies, ignore_index=True)


def distinct_contents(paths: list[str]) -> int:
    """How many different file contents (SHA-1) the paths hold."""
    from cxrlib.features import file_hash

    return len({file_hash(p) for p in paths})


def measure_size(sequences: pd.DataFrame, config, backbone, cache: Path, repeats: int,
                 batch_size: int) -> dict:
    """Cold extraction + ``train_and_predict`` of one cohort, ``repeats`` times."""
    from benchmarks.prognet_cost import cohort_paths, extract_cold
    from cxrlib import prognet

    spec = config.feature_spec()
    paths = cohort_paths(sequences)
    extraction_s, training_s = [], []
    for _ in range(repeats):
        seconds, vectors = extract_cold(paths, spec, backbone, cache, batch_size)
        extraction_s.append(seconds)
        training_s.append(timed(lambda: prognet.train_and_predict(
            sequences, prognet.make_splits(sequences, config), vectors, config))[0])
    total = summarize([e + t for e, t in zip(extraction_s, training_s)])
    return {"n_patients": len(sequences), "n_images": len(paths),
            "distinct_images": distinct_contents(paths),
            "extraction_s": summarize(extraction_s), "training_s": summarize(training_s),
            "total_s": total, "s_per_patient": total["median"] / len(sequences)}


def run(data_dir: str | Path, backbone_name: str, image_size: int,
                 factors: list[int], repeats: int, epochs: int, work_dir: Path,
                 batch_size: int = 32, max_patients: int | None = None, log=print) -> dict:
    """Time per cached ProgNet run at each cohort size, and a linear fit."""
    import keras

    from benchmarks.prognet_cost import cohort_paths, load_cohort, warm_up_extraction
    from cxrlib import models, prognet

    config = prognet.Config(backbone=backbone_name, weights=None, image_size=image_size,
                            epochs=epochs).check()
    base = load_cohort(data_dir, config, max_patients)
    cohorts = {f: scaled_cohort(base, f, Path(work_dir) / "copies") for f in factors}
    backbone = models.build_backbone(backbone_name, image_size, None, "avg", config.init_seed)
    cache = Path(work_dir) / "patients-cache"
    warm_up_extraction(cohort_paths(base), config.feature_spec(), backbone, cache, batch_size)
    sizes = {}
    for factor in factors:
        sizes[str(factor)] = block = measure_size(cohorts[factor], config, backbone, cache,
                                                  repeats, batch_size)
        log(f"patients x{factor}: {block['n_patients']} patients, "
            f"{block['total_s']['median']:.1f} s ({block['s_per_patient']:.2f} s/patient)")
    del backbone
    keras.backend.clear_session()
    gc.collect()
    n = [b["n_patients"] for b in sizes.values()]
    return {"backbone": backbone_name, "image_size": image_size, "epochs": epochs,
            "repeats": repeats, "factors": factors, "sizes": sizes,
            "fit_total_s": linear_fit(n, [b["total_s"]["median"] for b in sizes.values()]),
            "fit_extraction_s": linear_fit(n, [b["extraction_s"]["median"]
                                               for b in sizes.values()]),
            "fit_training_s": linear_fit(n, [b["training_s"]["median"] for b in sizes.values()])}
