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
