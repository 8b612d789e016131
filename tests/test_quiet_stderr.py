"""stderr is for what a user needs to read: LiteRT's and TensorFlow's own notices stay off it by default."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from tests.fixtures import espeak, model_path

SER_EDGE = [sys.executable, "-m", "ser_edge.edge.cli"]
XNNPACK_LINE = "Created TensorFlow Lite XNNPACK delegate"


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "SER_EDGE_VERBOSE"}
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env={**environment, **env})


def test_classify_and_info_print_no_litert_notice_unless_verbose(tmp_path):
    wav = tmp_path / "speech.wav"
    espeak("What a wonderful surprise, thank you so much.", wav)
    model = str(model_path("ravdess"))
    quiet = run([*SER_EDGE, "classify", "--model", model, str(wav)])
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    loud = run([*SER_EDGE, "--verbose", "classify", "--model", model, str(wav)])
    assert loud.returncode == 0 and XNNPACK_LINE in loud.stderr
    by_env = run([*SER_EDGE, "classify", "--model", model, str(wav)], SER_EDGE_VERBOSE="1")
    assert XNNPACK_LINE in by_env.stderr
    # Same results either way: only stderr changes.
    assert [line.split()[:3] for line in quiet.stdout.splitlines()] == \
        [line.split()[:3] for line in loud.stdout.splitlines()]


def test_the_filter_keeps_real_messages_and_their_order():
    code = textwrap.dedent("""
        import os, sys
        from ser_edge.edge import native_stderr
        with native_stderr.filtered():
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
            os.write(2, b"ERROR: the model needs op FOO, which this runtime lacks\\n")
            print("a Python warning", file=sys.stderr)
        print("after", file=sys.stderr)
    """)
    done = run([sys.executable, "-c", code])
    assert done.returncode == 0
    assert done.stderr.splitlines() == ["ERROR: the model needs op FOO, which this runtime lacks",
                                        "a Python warning", "after"]


def test_the_filter_writes_back_what_it_caught_when_the_body_fails():
    code = textwrap.dedent("""
        import os
        from ser_edge.edge import native_stderr
        try:
            with native_stderr.filtered():
                os.write(2, b"E0000 runtime.cc:1] something a user must see\\n")
                raise RuntimeError("boom")
        except RuntimeError:
            os.write(2, b"handled\\n")
    """)
    done = run([sys.executable, "-c", code])
    assert done.stderr.splitlines() == ["E0000 runtime.cc:1] something a user must see", "handled"]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="TensorFlow (the train extra) is absent")
def test_tensorflow_import_notices_are_filtered():
    code = "from ser_edge.edge import native_stderr\nwith native_stderr.filtered():\n    import tensorflow as tf\n" \
           "    tf.config.list_physical_devices()\n"
    loud = run([sys.executable, "-c", code], SER_EDGE_VERBOSE="1")
    if not loud.stderr:
        pytest.skip("this TensorFlow build prints no notices at import")
    quiet = run([sys.executable, "-c", code])
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
