"""TensorFlow's harmless native lines stay off the terminal; every other line gets through."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cxrlib import quiet

REPO = Path(__file__).resolve().parents[1]


CHILD = """
import os, subprocess, sys
from cxrlib.quiet import quiet_native_stderr

with quiet_native_stderr():
    os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\\n")
    subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write("
                    "'[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.\\\\n"
                    "a real problem from a kernel\\\\n')"])
    print("a Python warning", file=sys.stderr)
os.write(2, b"after: failed call to cuInit\\n")
"""


def test_quiet_stderr_drops_only_known_harmless_lines(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert "a real problem from a kernel" in result.stderr
    assert "a Python warning" in result.stderr
    assert "KeyboardInterrupt" not in result.stderr
    assert result.stderr.count("cuInit") == 1  # filtered inside, untouched after


IMPORT_FIRST = """
import sys
import cxrlib
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)  # still settable after the probe
print(float(tf.reduce_sum(tf.ones(3))), tf.config.threading.get_intra_op_parallelism_threads())
sys.stderr.write("a Python warning\\n")
"""


def test_importing_cxrlib_quiets_tensorflow_however_a_chapter_runs(tmp_path: Path) -> None:
    """As in a papermill kernel or a plain script, with no log level set outside:
    TensorFlow's CUDA probe and start-up notices are dropped, other lines are kept."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", IMPORT_FIRST], capture_output=True,
                            text=True, timeout=300, env={**env, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3.0", "1"]
    assert "a Python warning" in result.stderr, result.stderr
    kept = [marker for marker in quiet.HARMLESS_STDERR if marker in result.stderr]
    assert not kept, result.stderr


TRAIN_AND_PREDICT = """
import numpy as np
import cxrlib
from cxrlib import training
import keras
training.set_seed(0)  # turns TensorFlow's op determinism on, as every run does
x = np.random.default_rng(0).random((20, 4))
y = (x[:, 0] > 0.5).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
training.fit(model, x.astype("float32"), y, loss="binary_crossentropy", epochs=2, batch_size=8,
             learning_rate=1e-3, seed=0)
print(training.predict(model, x, batch_size=8).shape)
"""
NATIVE_NOISE = ("E0000", "W0000", "NodeDef", "use_unbounded_threadpool", "cuInit", "oneDNN",
                "absl")


def test_a_training_and_a_prediction_print_no_native_lines(tmp_path: Path) -> None:
    """What a chapter does after its imports, run as papermill runs it (no log level set
    outside, no filter of the process's stderr): seeding, training and predicting write
    no TensorFlow line to stderr (Keras' own pipeline for arrays made TensorFlow print a
    "NodeDef mentions attribute use_unbounded_threadpool" error when predicting)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", TRAIN_AND_PREDICT], capture_output=True,
                            text=True, timeout=300, env={**env, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["(20,", "1)"]
    noise = [marker for marker in NATIVE_NOISE if marker in result.stderr]
    assert not noise, result.stderr
