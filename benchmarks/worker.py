"""One thread setting of the scaling benchmark, in its own process.

    python -m benchmarks.worker --threads N --backbone B --image-size S --images K \
        --repeats R --data-dir DIR --work-dir DIR

TensorFlow reads its thread settings once, when it starts, so each setting needs a fresh
process. Prints the result as one JSON line (the last line of stdout).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--image-size", type=int, required=True)
    parser.add_argument("--images", type=int, required=True)
    parser.add_argument("--repeats", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path, required=True)
    return parser.parse_args(argv)


def limit_threads(threads: int) -> dict:
    """Pin this process to ``threads`` CPUs and size TensorFlow's pools to match."""
    cpus = None
    if hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        cpus = allowed[:threads]
        os.sched_setaffinity(0, cpus)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    return {"cpus": cpus,
            "tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            "decode_threads": threads}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    limits = limit_threads(args.threads)
    from benchmarks import extraction

    paths = extraction.pick_paths(args.data_dir, args.images)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    try:
        block = extraction.measure_backbone(args.backbone, paths, args.image_size,
                                            args.repeats, args.work_dir, args.batch_size,
                                            threads=args.threads)
    finally:
        shutil.rmtree(args.work_dir, ignore_errors=True)
    print(json.dumps({**block, **limits}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
