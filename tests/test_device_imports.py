"""The device side must import without TensorFlow, Keras, librosa or numba.

Each check runs in a fresh interpreter (this pytest process has librosa loaded
by other tests). Modules are globbed from edge/*.py when the tests are
collected, so modules added later (edge/cli.py, edge/daemon.py, ...) are
covered without editing this file.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ser_edge import benchmarks
from ser_edge import export
from ser_edge import models

EDGE_DIR = Path(__file__).resolve().parents[1] / "edge"
FORBIDDEN = ("tensorflow", "keras", "librosa", "numba", "tf_keras")
SIBLINGS = (benchmarks.__name__, export.__name__, models.__name__)  # edge imports none of them
CORE_MODULES = [
    "ser_edge.edge.features",
    "ser_edge.edge.audio",
    "ser_edge.edge.classifier",
    "ser_edge.edge.datasets",
    "ser_edge.edge.registry",
    "ser_edge.edge.model_file",
    "ser_edge.edge.litert",
]


def edge_modules() -> list[str]:
    """The device package and every module in it, by their import names."""
    from ser_edge import edge

    return [edge.__name__, *sorted(m.name for m in pkgutil.iter_modules(edge.__path__, f"{edge.__name__}."))]


def run_fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=EDGE_DIR.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_imports_cleanly(modules: list[str]) -> None:
    code = f"""
        import importlib, sys
        for name in {modules!r}:
            importlib.import_module(name)
        heavy = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})
        assert not heavy, f"device imports pulled in: {{heavy[:10]}}"
        siblings = sorted(m for m in sys.modules if any(m == s or m.startswith(s + '.') for s in {SIBLINGS!r}))
        assert not siblings, f"the device side imports the training side or the benchmarks: {{siblings[:10]}}"
        print("ok")
    """
    result = run_fresh(code)
    assert result.returncode == 0, f"importing {modules} failed:\n{result.stderr}"
    assert result.stdout.strip() == "ok"


def test_core_device_modules_together():
    assert_imports_cleanly(CORE_MODULES)


def test_the_listed_modules_exist():
    existing = set(edge_modules())
    assert set(CORE_MODULES) <= existing, sorted(set(CORE_MODULES) - existing)


@pytest.mark.parametrize("module", edge_modules())
def test_each_edge_module_alone(module):
    assert_imports_cleanly([module])


def test_features_fall_back_to_numpy_fft_without_scipy():
    """The frontend still works where scipy is missing: it falls back to numpy.fft."""
    code = """
        import sys
        sys.modules["scipy"] = None  # makes `import scipy...` raise ImportError
        import numpy as np
        from ser_edge.edge import features
        from ser_edge.edge.config import FeatureConfig
        assert features.FFT_BACKEND == "numpy", features.FFT_BACKEND
        config = FeatureConfig()
        y = np.random.default_rng(0).standard_normal(config.num_samples).astype(np.float32)
        out = features.utterance_features(y)
        assert out.shape == (config.num_frames, config.n_mfcc) and out.dtype == np.float32
        np.save(sys.stdout.buffer, out)
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=EDGE_DIR.parent, capture_output=True, timeout=120
    )
    assert result.returncode == 0, result.stderr.decode()

    import io

    import numpy as np

    from ser_edge.edge import features
    from ser_edge.edge.config import FeatureConfig

    without_scipy = np.load(io.BytesIO(result.stdout))
    y = np.random.default_rng(0).standard_normal(FeatureConfig().num_samples).astype(np.float32)
    assert np.abs(without_scipy - features.utterance_features(y)).max() <= 1e-3


def test_fast_fft_without_importing_scipy():
    """The pocketfft kernel is loaded alone: importing scipy.fft would pull scipy.special and OpenBLAS."""
    pytest.importorskip("scipy")
    code = """
        import sys
        import numpy as np
        from ser_edge.edge import features
        from ser_edge.edge.config import FeatureConfig
        features.utterance_features(np.zeros(FeatureConfig().num_samples, np.float32))
        assert features.FFT_BACKEND == "pocketfft", features.FFT_BACKEND
        loaded = sorted(name for name in sys.modules if name == "scipy" or name.startswith("scipy."))
        assert not loaded, loaded
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=EDGE_DIR.parent,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_listening_to_a_microphone_loads_no_file_decoder_and_no_numpy_random():
    """Memory (benchmarks/memory_bench.py): soundfile (libsndfile) only where a file is decoded, and nothing
    on the device path imports numpy.random (with hashlib and OpenSSL, about 6 MiB resident)."""
    code = """
        import sys
        import numpy as np
        import ser_edge.edge.cli, ser_edge.edge.daemon, ser_edge.edge.sources
        from ser_edge.edge.classifier import EmotionClassifier
        from ser_edge.edge.registry import resolve_model
        classifier = EmotionClassifier(resolve_model("ravdess"))
        classifier.classify(np.sin(np.arange(50_000, dtype=np.float32) * 0.05))
        from ser_edge.edge.threads import limit
        limit(1)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "soundfile" or m.startswith("numpy.random"))
        assert not loaded, loaded
        from ser_edge.edge import audio  # decoding a file still works, importing soundfile then
        print("ok" if "soundfile" not in sys.modules else "early")
    """
    result = run_fresh(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# What `ser-edge listen` must not load (benchmarks/memory_bench.py measured each in the daemon): hashlib's
# OpenSSL (_hashlib maps libcrypto, about 3.5 MiB; model checksums use CPython's builtin sha256),
# importlib.metadata with email and csv (about 3 MiB, once only for the speech gate's version string) and
# importlib.resources with zipfile (the shipped models' folder).
NOT_WHILE_LISTENING = ("_hashlib", "hashlib", "importlib.metadata", "email", "csv", "importlib.resources",
                       "zipfile", "soundfile", "numpy.random")


def test_a_listening_daemon_loads_neither_openssl_nor_package_metadata(tmp_path):
    """A real `ser-edge listen` (stdin, espeak-ng speech, the Silero gate, a classification) in a fresh
    interpreter: at exit none of NOT_WHILE_LISTENING is imported and libcrypto is not mapped."""
    from tests.fixtures import RATE, SENTENCES, espeak

    speech = espeak(SENTENCES[0], tmp_path / "speech.wav")
    silence = np.zeros(RATE, np.float32)
    pcm = np.clip(np.round(np.concatenate([silence, speech, silence]) * 32768), -32768, 32767).astype("<i2")
    code = f"""
        import atexit, json, os, sys
        def report():
            loaded = sorted(m for m in {NOT_WHILE_LISTENING!r} if m in sys.modules)
            maps = open("/proc/self/maps").read() if os.path.exists("/proc/self/maps") else ""
            sys.stderr.write("LOADED " + json.dumps({{"modules": loaded, "libcrypto": "libcrypto" in maps}}) + "\\n")
        atexit.register(report)
        from ser_edge.edge.cli import main
        sys.exit(main(["listen", "--model", "ravdess", "--input", "-", "--input-rate", "{RATE}"]))
    """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=EDGE_DIR.parent, input=pcm.tobytes(),
                          capture_output=True, timeout=120)
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    assert len([line for line in done.stdout.decode().splitlines() if line.strip()]) == 1, stderr  # classified
    assert '"speech_gate": "silero"' in stderr  # the real gate ran
    report = json.loads(next(line for line in stderr.splitlines() if line.startswith("LOADED "))[7:])
    assert report == {"modules": [], "libcrypto": False}
