"""How the cost grows with the data: one cached ProgNet run on the cohort repeated 1x, 2x,
4x (new patient ids, byte-distinct copies of the same pixels: the cache computes every
copy again), and a least-squares line of the seconds against patients.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import pandas as pd

from benchmarks import free_models
from benchmarks.stats import linear_fit, summarize

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
    """The cohort ``factor`` times: copy k > 0 has ids ``<id>-copy<k>`` and distinct files
    (with their own content keys, so no image is on both sides of a split)."""
    from cxrlib.duplicates import content_keys

    copies = [sequences]
    for copy in range(1, factor):
        target = Path(folder) / f"copy{copy}"
        renamed = {}
        for index, path in enumerate(dict.fromkeys(p for ps in sequences["paths"] for p in ps)):
            new = target / f"{index:05d}-{Path(path).name}"
            renamed[path] = str(new if new.exists() else distinct_copy(Path(path), new,
                                                                        f"cxr-copy-{copy}"))
        paths = [[renamed[p] for p in ps] for ps in sequences["paths"]]
        copies.append(sequences.assign(
            patient_id=sequences["patient_id"].astype(str) + f"-copy{copy}", paths=paths,
            contents=[content_keys(ps) for ps in paths]))
    return pd.concat(copies, ignore_index=True)


def measure_size(sequences: pd.DataFrame, config, backbone, work_dir: Path, repeats: int,
                 batch_size: int) -> dict:
    """Cold extraction + ``train_and_predict`` of one cohort, ``repeats`` times (the
    cached side of ``cached_vs_naive``)."""
    from benchmarks.cached_vs_naive import cached_side

    block, _ = cached_side(sequences, config, backbone, work_dir, repeats, batch_size)
    extraction, training = block["extraction_s"], block["train_and_predict_s_per_seed"]
    total = summarize([e + t for e, t in zip(extraction["values"], training["values"])])
    return {"n_patients": len(sequences), "n_images": block["images"],
            "distinct_images": len({c for cs in sequences["contents"] for c in cs}),
            "extraction_s": extraction, "training_s": training, "total_s": total,
            "s_per_patient": total["median"] / len(sequences)}


def run(settings: dict, data_dir: str | Path, work_dir: Path, log=print) -> dict:
    """Time per cached ProgNet run at each cohort size of ``settings["factors"]``, and a
    least-squares line of the total seconds against patients."""
    from benchmarks.cached_vs_naive import load_cohort
    from cxrlib import models, prognet

    s, name = settings, settings["scaling_backbone"]
    config = prognet.Config(backbone=name, weights=None, image_size=s["image_size"],
                            epochs=s["cached_epochs"]).check()
    base = load_cohort(data_dir, config, s["max_patients"])
    cohorts = {f: scaled_cohort(base, f, Path(work_dir) / "copies") for f in s["factors"]}
    backbone = models.build_backbone(name, s["image_size"], None, "avg", config.init_seed)
    sizes = {}
    for factor in s["factors"]:
        sizes[str(factor)] = block = measure_size(cohorts[factor], config, backbone, work_dir,
                                                  s["repeats"], s["batch_size"])
        log(f"patients x{factor}: {block['n_patients']} patients, "
            f"{block['total_s']['median']:.1f} s")
    del backbone
    free_models()
    n = [b["n_patients"] for b in sizes.values()]
    return {"backbone": name, "image_size": s["image_size"], "epochs": s["cached_epochs"],
            "repeats": s["repeats"], "factors": s["factors"], "sizes": sizes,
            "fit_total_s": linear_fit(n, [b["total_s"]["median"] for b in sizes.values()])}
