"""MFCC frontend in numpy, numerically matching librosa's defaults.

``mfcc(signal)`` equals ``librosa.feature.mfcc(y=signal, sr=22050, n_mfcc=39).T``
(centred frames with zero padding, periodic Hann window, power spectrum,
128 Slaney mel bands, ``power_to_db(ref=1, amin=1e-10, top_db=80)``, DCT-II
ortho) to about 1e-4: the power spectrum and the mel projection run in
float32 as in librosa (an sgemm rather than a dgemm), the log
and the DCT in float64, where librosa stays in float32. The real FFT comes from
``ser_edge.edge.fft``: scipy's pocketfft kernel where installed, which makes the whole
MFCC more than twice as fast as ``numpy.fft`` (see README); numpy is the
fallback.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from ser_edge.edge import fft
from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.errors import SerEdgeError

FFT_BACKEND, _rfft = fft.best_available()
DEFAULT_CONFIG = FeatureConfig()


def use_fft_backend(name: str) -> None:
    """Select "pocketfft", "scipy" or "numpy" for the STFT (tests and benchmarks use this)."""
    global _rfft, FFT_BACKEND
    _rfft = fft.backend(name)
    FFT_BACKEND = name


def fit_length(signal: np.ndarray, config: FeatureConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Centre ``signal`` in ``config.num_samples``: zero-pad both sides or crop the middle."""
    length = config.num_samples
    count = signal.shape[0]
    if count >= length:
        start = (count - length) // 2
        return signal[start : start + length]
    missing = length - count
    return np.pad(signal, (missing // 2, missing - missing // 2))


def mfcc(signal: np.ndarray, config: FeatureConfig = DEFAULT_CONFIG) -> np.ndarray:
    """MFCCs of a mono float signal at ``config.sample_rate``: (frames, n_mfcc) float32."""
    signal = _checked_signal(signal)
    power = _power_spectrogram(signal, config, in_frame_buffer=True)  # read once, just below
    mel = power @ mel_filterbank(config).T  # (frames, n_mels) float32, as librosa's
    log_mel = 10.0 * np.log10(np.maximum(mel.astype(np.float64), config.amin))  # ref = 1.0
    if config.top_db is not None:
        log_mel = np.maximum(log_mel, log_mel.max() - config.top_db)
    return (log_mel @ dct_matrix(config.n_mfcc, config.n_mels).T).astype(np.float32)


def utterance_features(signal: np.ndarray, config: FeatureConfig = DEFAULT_CONFIG) -> np.ndarray:
    """The model's MFCC matrix for a whole utterance: fit to length, then ``mfcc``."""
    return mfcc(fit_length(_checked_signal(signal), config), config)


def model_inputs(features: np.ndarray, config: FeatureConfig = DEFAULT_CONFIG,
                 speaker: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Forward and reversed inputs, keyed by model input name, standardised where the model says so.

    ``features`` is (frames, n_mfcc) or a batch (n, frames, n_mfcc); the
    result has a trailing channel axis and a batch axis: (n, frames, n_mfcc, 1).
    ``speaker`` is the voice's (mean, std) for a model with per-speaker statistics (``standardize``).
    """
    batch = features[np.newaxis] if features.ndim == 2 else features
    expected = (config.num_frames, config.n_mfcc)
    if batch.shape[1:] != expected:
        raise SerEdgeError(f"features have shape {batch.shape[1:]}, the model expects {expected}")
    forward = standardize(batch, config, speaker)[..., np.newaxis].astype(np.float32, copy=False)
    axis = 1 if config.reverse_axis == "time" else 2
    backward = np.ascontiguousarray(np.flip(forward, axis=axis))
    forward_name, backward_name = config.input_names
    return {forward_name: np.ascontiguousarray(forward), backward_name: backward}


def standardize(features: np.ndarray, config: FeatureConfig = DEFAULT_CONFIG,
                speaker: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The model's input normalisation of (frames, n_mfcc) or (n, frames, n_mfcc) MFCCs.

    In this order, each where the model says so: the speaker's statistics
    (``speaker``'s (mean, std) per coefficient; without it the training
    speakers' pooled ``FeatureConfig.speaker_mean``), the level (c0 shifted so the
    loudest frame's c0 is ``FeatureConfig.level_reference``), each utterance's
    own mean over its frames (``utterance_mean``), then (mfcc - mean) / std per
    coefficient with the training set's statistics (``input_mean``).
    """
    if config.speaker_mean is not None:
        mean, std = speaker if speaker is not None else (config.speaker_mean, config.speaker_std)
        features = ((features - np.asarray(mean, np.float64)) / np.asarray(std, np.float64)).astype(np.float32)
    elif speaker is not None:
        raise SerEdgeError("speaker statistics given for a model trained without them")
    if config.level_reference is not None:
        features = np.array(features, dtype=np.float32)  # a copy: the caller's matrix stays as it was
        c0 = features[..., 0]
        c0 += config.level_reference - c0.max(axis=-1, keepdims=True)
    if config.utterance_mean:
        features = features - features.mean(axis=-2, keepdims=True, dtype=np.float64).astype(np.float32)
    if config.input_mean is None:
        return features
    return (features - np.asarray(config.input_mean, np.float32)) / np.asarray(config.input_std, np.float32)


def power_spectrogram(signal: np.ndarray, config: FeatureConfig = DEFAULT_CONFIG) -> np.ndarray:
    """|STFT|^2 with centred, zero-padded frames: (frames, n_fft // 2 + 1) float32."""
    return _power_spectrogram(signal, config, in_frame_buffer=False)


def _power_spectrogram(signal: np.ndarray, config: FeatureConfig, in_frame_buffer: bool) -> np.ndarray:
    """``power_spectrogram``; with ``in_frame_buffer``, written over this thread's frame buffer as the frames
    are used up (no 0.8 MB array per call), so only valid until this thread's next call."""
    n_fft, hop = config.n_fft, config.hop_length
    padded = np.pad(signal.astype(np.float32, copy=False), (n_fft // 2, n_fft // 2))
    if padded.shape[0] < n_fft:  # librosa pads short inputs the same way
        raise SerEdgeError(f"signal of {signal.shape[0]} samples is too short for n_fft={n_fft}")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    windowed = np.multiply(frames, hann_window(n_fft), out=_frame_buffer(frames.shape))
    power = None
    # The FFT a few frames at a time: the complex spectrum of all 196 frames (1.6 MB) would exist only to
    # be squared, and that transient set the daemon's peak memory (benchmarks/memory_bench.py).
    for start in range(0, windowed.shape[0], FFT_CHUNK_FRAMES):
        stop = start + FFT_CHUNK_FRAMES
        spectrum = _rfft(windowed[start:stop])
        # |X|^2 in place over the spectrum's (real, imaginary) pairs: no complex-sized temporaries.
        pairs = spectrum.view(spectrum.real.dtype)
        np.multiply(pairs, pairs, out=pairs)
        if power is None:
            shape = (windowed.shape[0], pairs.shape[-1] // 2)
            if in_frame_buffer and pairs.dtype == windowed.dtype:
                # Row i of the power lies before frame row i + 1 (n_fft // 2 + 1 <= n_fft values a row):
                # each chunk overwrites only frames already transformed.
                power = windowed.reshape(-1)[:shape[0] * shape[1]].reshape(shape)
            else:
                power = np.empty(shape, pairs.dtype)
        np.add(pairs[..., 0::2], pairs[..., 1::2], out=power[start:stop])
    return power


# Frames per FFT call. Every frame's numbers are those of one call over all frames: pocketfft transforms
# frames in SIMD batches of at most 16 (float32, AVX-512) and the rest one by one, and 32 is a multiple of
# every batch width, so each frame takes the same path (tests/test_features.py checks bit-identity).
FFT_CHUNK_FRAMES = 32


_workspace = threading.local()


def _frame_buffer(shape: tuple[int, ...]) -> np.ndarray:
    """This thread's reused buffer for the windowed frames (196 x 2048 float32 at the defaults).

    A fresh 1.6 MB array per call costs its page faults: with this buffer and the
    float32 mel projection, ``python -m ser_edge.benchmarks.frontend_bench``'s
    default MFCC went from 2.37 to 1.45 ms in the run that introduced them (issue 12;
    benchmarks/results/frontend.md holds the latest run).
    """
    buffer = getattr(_workspace, "frames", None)
    if buffer is None or buffer.shape != shape:
        buffer = _workspace.frames = np.empty(shape, np.float32)
    return buffer


@functools.lru_cache(maxsize=8)
def hann_window(n_fft: int) -> np.ndarray:
    """Periodic Hann window (scipy.signal.get_window('hann', n, fftbins=True))."""
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    window = window.astype(np.float32)
    window.flags.writeable = False
    return window


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asanyarray(hz, dtype=np.float64)
    linear_step = 200.0 / 3
    log_start_hz, log_start_mel = 1000.0, 1000.0 / linear_step
    log_step = np.log(6.4) / 27.0
    mel = hz / linear_step
    above = hz >= log_start_hz
    return np.where(above, log_start_mel + np.log(np.maximum(hz, 1e-12) / log_start_hz) / log_step, mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of ``hz_to_mel``."""
    mel = np.asanyarray(mel, dtype=np.float64)
    linear_step = 200.0 / 3
    log_start_hz, log_start_mel = 1000.0, 1000.0 / linear_step
    log_step = np.log(6.4) / 27.0
    hz = mel * linear_step
    above = mel >= log_start_mel
    return np.where(above, log_start_hz * np.exp(log_step * (mel - log_start_mel)), hz)


def mel_filterbank(config: FeatureConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Slaney-normalised triangular filters: (n_mels, n_fft // 2 + 1) float32 (librosa's dtype)."""
    return _mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax_hz)


@functools.lru_cache(maxsize=8)
def _mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    fft_hz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges_hz)
    area_norm = 2.0 / (edges_hz[2:] - edges_hz[:-2])  # Slaney
    weights = np.empty((n_mels, fft_hz.size))
    # One band at a time: the same element-wise arithmetic as whole-matrix expressions, without their
    # (bands x bins) float64 temporaries, which raised the daemon's peak resident memory by about 6 MiB.
    for band in range(n_mels):
        rising = (fft_hz - edges_hz[band]) / widths[band]
        falling = (edges_hz[band + 2] - fft_hz) / widths[band + 1]
        weights[band] = np.maximum(0.0, np.minimum(rising, falling)) * area_norm[band]
    # librosa stores its filters as float32; so do we, and the projection multiplies in float32.
    weights = weights.astype(np.float32)
    weights.flags.writeable = False
    return weights


@functools.lru_cache(maxsize=8)
def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """The first ``n_mfcc`` rows of the orthonormal DCT-II: (n_mfcc, n_mels) float64."""
    k = np.arange(n_mfcc)[:, np.newaxis]
    n = np.arange(n_mels)[np.newaxis, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    basis.flags.writeable = False
    return basis


def _checked_signal(signal: np.ndarray) -> np.ndarray:
    signal = np.asarray(signal)
    if signal.ndim != 1:
        raise SerEdgeError(f"expected a mono 1-D signal, got shape {signal.shape}")
    if signal.shape[0] == 0:
        raise SerEdgeError("signal has no samples")
    if not np.issubdtype(signal.dtype, np.floating):
        raise SerEdgeError(f"expected float samples in [-1, 1], got dtype {signal.dtype}")
    if not np.isfinite(signal).all():
        raise SerEdgeError("signal contains NaN or infinite samples")
    return signal
