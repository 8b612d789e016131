"""MFCC frontends side by side: librosa (the reference), edge with each FFT
backend (scipy's pocketfft kernel alone, scipy.fft, numpy.fft), and
python_speech_features; then the resident memory each edge backend costs, each
in a fresh interpreter.

    python -m ser_edge.benchmarks.frontend_bench [--repeat N] [--file PATH]

The input is one utterance as the device sees it: decoded with ser_edge.edge.audio.load
(22,050 Hz mono) and fitted to 100,000 samples. Without --file it is an EMO-DB
file from ../shared/datasets when present, else a seeded synthetic signal
(voiced-like harmonics, amplitude modulation and noise). Every method runs once
per round, in a rotating order, so background load hits all of them alike.

python_speech_features is configured as close to librosa as it allows (Hann
window, 2048/512 framing, 128 filters, 39 coefficients, no pre-emphasis, no
lifter, no energy term) and still differs: HTK mel filters on integer FFT bins,
no centred padding (its frame i is librosa's frame i + 2), natural log instead
of dB, no top_db floor. Its difference column shows why it is not on the
device path.

Needs the test extras (librosa, scipy, python_speech_features); not for the Pi.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ser_edge.edge import audio, features, fft
from ser_edge.edge.config import FeatureConfig

CONFIG = FeatureConfig()
SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
DEFAULT_SPEECH = SHARED_DATASETS / "emodb" / "03a01Fa.flac"


def synthetic_signal(seed: int = 0) -> np.ndarray:
    """100,000 samples at 22,050 Hz: a gliding harmonic tone, syllable-rate AM, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(CONFIG.num_samples) / CONFIG.sample_rate
    f0 = 140.0 + 40.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / CONFIG.sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 16))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None) ** 2
    signal = 0.25 * envelope * voiced + 0.01 * rng.standard_normal(t.shape[0])
    return signal.astype(np.float32)


def input_signal(path: str | None) -> tuple[np.ndarray, str]:
    if path is not None:
        signal = audio.load(path)
        return features.fit_length(signal), f"{path} ({signal.shape[0]} samples at 22,050 Hz, fitted)"
    if DEFAULT_SPEECH.is_file():
        signal = audio.load(DEFAULT_SPEECH)
        source = f"EMO-DB {DEFAULT_SPEECH.name} ({signal.shape[0]} samples at 22,050 Hz, fitted)"
        return features.fit_length(signal), source
    return synthetic_signal(), "synthetic harmonics + noise (shared datasets absent), seed 0"


def librosa_mfcc(signal: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.feature.mfcc(y=signal, sr=CONFIG.sample_rate, n_mfcc=CONFIG.n_mfcc).T


def edge_mfcc(backend: str) -> Callable[[np.ndarray], np.ndarray]:
    def run(signal: np.ndarray) -> np.ndarray:
        features.use_fft_backend(backend)
        return features.mfcc(signal, CONFIG)

    return run


def speech_features_mfcc(signal: np.ndarray) -> np.ndarray:
    import python_speech_features

    window = features.hann_window(CONFIG.n_fft)
    return python_speech_features.mfcc(
        signal,
        samplerate=CONFIG.sample_rate,
        winlen=CONFIG.n_fft / CONFIG.sample_rate,
        winstep=CONFIG.hop_length / CONFIG.sample_rate,
        numcep=CONFIG.n_mfcc,
        nfilt=CONFIG.n_mels,
        nfft=CONFIG.n_fft,
        lowfreq=0,
        highfreq=None,
        preemph=0.0,
        ceplifter=0,
        appendEnergy=False,
        winfunc=lambda n: window[:n],
    )


def difference(result: np.ndarray, reference: np.ndarray) -> tuple[float, str]:
    """Max abs difference to librosa, aligning uncentred frames (frame i = librosa's i + 2)."""
    if result.shape == reference.shape:
        return float(np.abs(result - reference).max()), "all frames"
    offset = CONFIG.n_fft // 2 // CONFIG.hop_length
    count = min(result.shape[0], reference.shape[0] - offset)
    diff = np.abs(result[:count] - reference[offset : offset + count]).max()
    return float(diff), f"{count} aligned frames"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200, help="timed calls per method (default 200)")
    parser.add_argument("--file", help="audio file to use instead of EMO-DB / the synthetic signal")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="numpy's BLAS threads for every method (default 1, as on the device; 0 leaves the "
                             "library's own default)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.blas_threads < 0:
        parser.error("--blas-threads must not be negative")

    # Imported before anything is timed, so "first call" is the call, not the import.
    import librosa
    import python_speech_features  # noqa: F401
    import scipy

    from ser_edge.edge import threads

    pools = threads.limit(args.blas_threads) if args.blas_threads else threads.pools()
    signal, source = input_signal(args.file)
    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "librosa.feature.mfcc (reference)": librosa_mfcc,
        "edge mfcc, pocketfft kernel (default)": edge_mfcc("pocketfft"),
        "edge mfcc, scipy.fft": edge_mfcc("scipy"),
        "edge mfcc, numpy.fft": edge_mfcc("numpy"),
        "python_speech_features.mfcc": speech_features_mfcc,
    }
    previous_backend = features.FFT_BACKEND
    first_ms: dict[str, float] = {}
    results: dict[str, np.ndarray] = {}
    try:
        for name, method in methods.items():  # first call: imports, caches, plans
            start = time.perf_counter()
            results[name] = method(signal)
            first_ms[name] = (time.perf_counter() - start) * 1e3
        times: dict[str, list[float]] = {name: [] for name in methods}
        names = list(methods)
        for round_index in range(args.repeat):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                methods[name](signal)
                times[name].append((time.perf_counter() - start) * 1e3)
    finally:
        features.use_fft_backend(previous_backend)

    reference = results["librosa.feature.mfcc (reference)"]
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print("# MFCC frontend benchmark")
    print()
    print(f"- input: {source}; {signal.shape[0]} samples -> {reference.shape[0]} x {reference.shape[1]} MFCCs")
    print(f"- {args.repeat} timed calls per method after one untimed first call, rotating order")
    print(
        f"- Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"librosa {librosa.__version__}; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} at the end"
    )
    print(f"- BLAS threads: {threads.describe(pools)}"
          f"{'' if args.blas_threads else ' (the library default, --blas-threads 0)'}")
    print()
    print("| method | first call ms | median ms | p95 ms | output | max abs diff to librosa |")
    print("|---|---:|---:|---:|---|---:|")
    for name in methods:
        values = np.asarray(times[name])
        diff, compared = difference(results[name], reference)
        shape = "x".join(str(n) for n in results[name].shape)
        print(
            f"| {name} | {first_ms[name]:.1f} | {np.median(values):.2f} | {np.percentile(values, 95):.2f} "
            f"| {shape} | {diff:.3g} ({compared}) |"
        )
    print()
    print(
        "First call: after the imports; librosa's includes loading its lazily imported "
        "submodules, edge's builds its cached window, mel filters and DCT matrix."
    )
    print()
    print("Peak resident memory of a fresh interpreter that imports `ser_edge.edge.features`, selects the backend "
          "and computes one MFCC matrix:")
    print()
    print("| FFT backend | peak RSS MiB | scipy modules imported |")
    print("|---|---:|---:|")
    for backend in fft.BACKENDS:
        peak, scipy_modules = backend_memory(backend)
        print(f"| {backend} | {peak:.1f} | {scipy_modules} |")
    return 0


BACKEND_MEMORY_SCRIPT = """
import re, sys
import numpy as np
from ser_edge.edge import features
features.use_fft_backend(sys.argv[1])
features.utterance_features(np.zeros(100_000, np.float32))
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1)) / 1024,
      sum(1 for name in sys.modules if name == "scipy" or name.startswith("scipy.")))
"""


def backend_memory(backend: str) -> tuple[float, int]:
    import subprocess

    done = subprocess.run([sys.executable, "-c", BACKEND_MEMORY_SCRIPT, backend], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[1])
    peak, modules = done.stdout.split()
    return float(peak), int(modules)


if __name__ == "__main__":
    sys.exit(main())
