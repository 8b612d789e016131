"""The numpy MFCC frontend against librosa, the reference it must match.

Tolerance: max abs difference <= 1e-3 on MFCC values that reach ~1,100 in
magnitude. Measured (librosa 0.11, numpy 2.4, scipy 1.17): 1e-5 .. 2.5e-4 on the
generated signals below with either FFT backend and 6e-5 .. 1.2e-4 on
EMO-DB / RAVDESS speech; the residue is librosa's float32 mel/log steps versus
the frontend's float64 ones.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

librosa = pytest.importorskip("librosa")

from ser_edge.edge import features, fft  # noqa: E402
from ser_edge.edge.config import FeatureConfig  # noqa: E402
from ser_edge.edge.errors import SerEdgeError  # noqa: E402

CONFIG = FeatureConfig()  # test_config_defaults pins its numbers to the thesis's
SR = CONFIG.sample_rate
N = CONFIG.num_samples
SHAPE = (CONFIG.num_frames, CONFIG.n_mfcc)
TOLERANCE = 1e-3

# A few utterances per corpus: EMO-DB (22,050 Hz mono, 2.0 s) and RAVDESS
# (48 kHz; the second one is one of the five stereo files).
SPEECH_FILES = [
    "emodb/03a01Fa.flac",
    "emodb/09b02Wd.flac",
    "emodb/16b10Td.flac",
    "ravdess/Actor_01/03-01-01-01-01-01-01.flac",
    "ravdess/Actor_01/03-01-02-01-01-02-01.flac",
    "ravdess/Actor_12/03-01-05-02-01-01-12.flac",
]


def librosa_mfcc(y: np.ndarray) -> np.ndarray:
    return librosa.feature.mfcc(y=y, sr=SR, n_mfcc=CONFIG.n_mfcc).T


def assert_matches_librosa(y: np.ndarray) -> None:
    got = features.mfcc(y)
    want = librosa_mfcc(y)
    assert got.dtype == np.float32
    assert got.shape == want.shape == (1 + y.shape[0] // CONFIG.hop_length, CONFIG.n_mfcc)
    assert np.isfinite(got).all()
    diff = float(np.abs(got - want).max())
    assert diff <= TOLERANCE, f"max abs MFCC difference to librosa {diff:.3g} > {TOLERANCE}"


def _time(n: int = N) -> np.ndarray:
    return np.arange(n) / SR


def _tone(freq: float, n: int = N, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * _time(n))).astype(np.float32)


# --- generated signals, both FFT backends ------------------------------------------


def test_silence(fft_backend):
    y = np.zeros(N, dtype=np.float32)
    assert_matches_librosa(y)
    # All bins sit on the amin floor: -100 dB everywhere, so only c0 is non-zero.
    got = features.mfcc(y)
    np.testing.assert_allclose(got[:, 0], -100.0 * np.sqrt(128), rtol=1e-6)
    np.testing.assert_allclose(got[:, 1:], 0.0, atol=1e-3)


def test_clipped_sine(fft_backend):
    y = np.clip(3.0 * np.sin(2 * np.pi * 440.0 * _time()), -1.0, 1.0).astype(np.float32)
    assert np.abs(y).max() == 1.0 and (np.abs(y) == 1.0).mean() > 0.5
    assert_matches_librosa(y)


@pytest.mark.parametrize("freq", [50.0, 440.0, 1000.0, 3000.0, 8000.0, 11000.0])
def test_pure_tone(fft_backend, freq):
    assert_matches_librosa(_tone(freq))


@pytest.mark.parametrize("amplitude", [1.0, 0.1, 1e-5])
def test_white_noise(fft_backend, rng, amplitude):
    y = (amplitude * rng.uniform(-1.0, 1.0, N)).astype(np.float32)
    assert_matches_librosa(y)


@pytest.mark.filterwarnings("ignore:n_fft=.*is too large:UserWarning")
@pytest.mark.parametrize("length", [1, 511, 1000, 2048, 3000, 44_100, 99_999, 100_001])
def test_short_and_odd_lengths(fft_backend, rng, length):
    y = (0.1 * rng.standard_normal(length)).astype(np.float32)
    assert_matches_librosa(y)


def test_full_fitted_signal(fft_backend, rng):
    """The exact input the model sees: N samples -> SHAPE."""
    t = _time()
    speechlike = np.sin(2 * np.pi * 150 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    y = (0.3 * speechlike + 0.05 * rng.standard_normal(N)).astype(np.float32)
    y = features.fit_length(y)
    assert y.shape == (N,)
    assert_matches_librosa(y)
    np.testing.assert_allclose(features.utterance_features(y), librosa_mfcc(y), atol=TOLERANCE, rtol=0)


def test_float64_input_matches(fft_backend, rng):
    y = 0.1 * rng.standard_normal(N)
    assert_matches_librosa(y)


def test_backends_agree(rng):
    y = (0.1 * rng.standard_normal(N)).astype(np.float32)
    previous = features.FFT_BACKEND
    results = {}
    try:
        for name in fft.BACKENDS:
            features.use_fft_backend(name)
            results[name] = features.mfcc(y)
    finally:
        features.use_fft_backend(previous)
    for name in fft.BACKENDS:
        assert np.abs(results[name] - results["numpy"]).max() <= TOLERANCE, name


def test_fastest_backend_is_the_default_where_scipy_is_installed():
    pytest.importorskip("scipy")
    assert features.FFT_BACKEND == "pocketfft"


def test_switching_backends_reuses_the_loaded_kernel():
    # frontend_bench switches backend before every timed call; a reload there was timed as FFT work.
    from ser_edge.edge import fft

    assert fft.backend("pocketfft") is fft.backend("pocketfft")


def test_unknown_fft_backend_is_refused():
    previous = features.FFT_BACKEND
    with pytest.raises(SerEdgeError, match="unknown FFT backend"):
        features.use_fft_backend("fftw")
    assert features.FFT_BACKEND == previous


# --- real speech -------------------------------------------------------------------


@pytest.mark.datasets
@pytest.mark.parametrize("relative", SPEECH_FILES)
def test_real_speech(shared_datasets, fft_backend, relative):
    path = shared_datasets / relative
    if not path.is_file():
        pytest.skip(f"{path} is not in the shared datasets")
    y, sr = librosa.load(path)
    assert sr == SR
    assert_matches_librosa(y)
    fitted = features.fit_length(y)
    got = features.utterance_features(y)
    assert got.shape == SHAPE and got.dtype == np.float32
    assert np.abs(got - librosa_mfcc(fitted)).max() <= TOLERANCE


# --- utterance_features and fit_length ----------------------------------------------




def test_the_reused_frame_buffer_never_leaks_into_a_returned_spectrum(fft_backend, rng):
    """power_spectrogram reuses one buffer per thread: an earlier result must not change."""
    first_signal, second_signal = (rng.standard_normal(N).astype(np.float32) for _ in range(2))
    first = features.power_spectrogram(first_signal)
    kept = first.copy()
    second = features.power_spectrogram(second_signal)
    np.testing.assert_array_equal(first, kept)
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(features.power_spectrogram(first_signal), kept)


def _one_fft_over_all_frames(signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The power spectrogram and MFCCs as computed before the FFT was chunked (one call over all frames)."""
    n_fft, hop = features.DEFAULT_CONFIG.n_fft, features.DEFAULT_CONFIG.hop_length
    padded = np.pad(signal.astype(np.float32), (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop] * features.hann_window(n_fft)
    spectrum = features._rfft(np.ascontiguousarray(frames))
    pairs = spectrum.view(spectrum.real.dtype)
    power = pairs[..., 0::2] ** 2 + pairs[..., 1::2] ** 2
    mel = power @ features.mel_filterbank().T
    log_mel = 10.0 * np.log10(np.maximum(mel.astype(np.float64), features.DEFAULT_CONFIG.amin))
    log_mel = np.maximum(log_mel, log_mel.max() - features.DEFAULT_CONFIG.top_db)
    dct = features.dct_matrix(features.DEFAULT_CONFIG.n_mfcc, features.DEFAULT_CONFIG.n_mels)
    return power, (log_mel @ dct.T).astype(np.float32)


@pytest.mark.parametrize("samples", [N, N - 1, 2048, 512 * features.FFT_CHUNK_FRAMES, 512 * 33 + 7, 3 * N])
def test_the_chunked_fft_gives_the_numbers_of_one_call_over_all_frames(fft_backend, rng, samples):
    """Memory: the STFT runs FFT_CHUNK_FRAMES frames a call, and mfcc writes the power over the used-up
    frame buffer. Neither may change a single bit (frame counts below, at and above a chunk boundary)."""
    y = (0.3 * rng.standard_normal(samples)).astype(np.float32)
    power, mfcc = _one_fft_over_all_frames(y)
    np.testing.assert_array_equal(features.power_spectrogram(y), power)
    np.testing.assert_array_equal(features.mfcc(y), mfcc)


def test_mfcc_leaves_no_spectrum_sized_temporaries(rng):
    """The power spectrogram inside mfcc lives in the frame buffer; power_spectrogram's own result does not."""
    y = (0.1 * rng.standard_normal(N)).astype(np.float32)
    features.mfcc(y)
    frames = features._workspace.frames
    inside = features._power_spectrogram(y, features.DEFAULT_CONFIG, in_frame_buffer=True)
    assert np.shares_memory(inside, frames)
    assert not np.shares_memory(features.power_spectrogram(y), frames)


def test_threads_computing_features_at_once_get_each_their_own_result(rng):
    import concurrent.futures

    signals = [rng.standard_normal(N).astype(np.float32) * scale for scale in (0.01, 0.1, 0.5, 1.0)]
    expected = [features.mfcc(signal) for signal in signals]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(5):
            got = list(pool.map(features.mfcc, signals * 4))
            for index, matrix in enumerate(got):
                np.testing.assert_array_equal(matrix, expected[index % len(signals)])


@pytest.mark.parametrize("length", [3000, 44_100, N, 150_001])
def test_utterance_features_shape(rng, length):
    y = (0.1 * rng.standard_normal(length)).astype(np.float32)
    got = features.utterance_features(y)
    assert got.shape == SHAPE
    assert got.dtype == np.float32
    assert got.shape == FeatureConfig().input_shape[:2]
    assert np.abs(got - librosa_mfcc(features.fit_length(y))).max() <= TOLERANCE


@pytest.mark.parametrize("length", [1, 2, 3, 1000, 44_100, 99_998, 99_999])
def test_fit_length_pads_both_sides(length):
    y = np.arange(1, length + 1, dtype=np.float32)  # no zeros inside the signal
    out = features.fit_length(y)
    pad = N - length
    left = pad // 2
    assert out.shape == (N,) and out.dtype == np.float32
    assert not out[:left].any()
    np.testing.assert_array_equal(out[left : left + length], y)
    assert not out[left + length :].any()
    assert N - (left + length) == pad - pad // 2  # right side takes the odd sample


@pytest.mark.parametrize("length", [N + 1, N + 2, N + 3, 150_001, 300_000])
def test_fit_length_keeps_the_centre(length):
    y = np.arange(length, dtype=np.float32)  # exact in float32 below 2**24
    out = features.fit_length(y)
    start = (length - N) // 2
    assert out.shape == (N,)
    assert out[0] == start and out[-1] == start + N - 1
    np.testing.assert_array_equal(out, y[start : start + N])


def test_fit_length_exact_length_is_unchanged():
    y = np.arange(N, dtype=np.float32)
    np.testing.assert_array_equal(features.fit_length(y), y)


def test_fit_length_follows_the_config():
    config = FeatureConfig(num_samples=10)
    np.testing.assert_array_equal(
        features.fit_length(np.arange(1, 5, dtype=np.float32), config), [0, 0, 0, 1, 2, 3, 4, 0, 0, 0]
    )
    np.testing.assert_array_equal(features.fit_length(np.arange(15, dtype=np.float32), config), np.arange(2, 12))


# --- model_inputs ------------------------------------------------------------------


def test_model_inputs_time_reversal(rng):
    config = FeatureConfig()
    matrix = rng.standard_normal(SHAPE).astype(np.float32)
    inputs = features.model_inputs(matrix, config)
    assert list(inputs) == list(config.input_names) == ["forward", "backward"]
    forward, backward = inputs["forward"], inputs["backward"]
    assert forward.shape == backward.shape == (1, *SHAPE, 1)
    assert forward.dtype == backward.dtype == np.float32
    np.testing.assert_array_equal(forward[0, :, :, 0], matrix)
    np.testing.assert_array_equal(backward, forward[:, ::-1, :, :])
    np.testing.assert_array_equal(backward[0, 0, :, 0], matrix[-1])
    assert forward.flags.c_contiguous and backward.flags.c_contiguous


def test_model_inputs_coefficient_reversal(rng):
    config = FeatureConfig(reverse_axis="coefficients")
    matrix = rng.standard_normal(SHAPE).astype(np.float32)
    inputs = features.model_inputs(matrix, config)
    np.testing.assert_array_equal(inputs["backward"], inputs["forward"][:, :, ::-1, :])
    np.testing.assert_array_equal(inputs["backward"][0, :, 0, 0], matrix[:, -1])


def test_model_inputs_names_and_batches(rng):
    config = FeatureConfig(input_names=("input_1", "input_2"))
    batch = rng.standard_normal((3, *SHAPE)).astype(np.float32)
    inputs = features.model_inputs(batch, config)
    assert list(inputs) == ["input_1", "input_2"]
    assert inputs["input_1"].shape == (3, *SHAPE, 1)
    np.testing.assert_array_equal(inputs["input_2"], inputs["input_1"][:, ::-1])


@pytest.mark.parametrize("shape", [(SHAPE[0] - 1, SHAPE[1]), (SHAPE[0], SHAPE[1] + 1), SHAPE[::-1],
                                   (2, SHAPE[0], SHAPE[1] - 1)])
def test_model_inputs_wrong_shape(shape):
    with pytest.raises(SerEdgeError, match="model expects"):
        features.model_inputs(np.zeros(shape, dtype=np.float32))


# --- FeatureConfig -----------------------------------------------------------------


def test_config_defaults():
    """The thesis's (TIM-Net's) preprocessing: the one place the tests spell its numbers out."""
    config = FeatureConfig()
    assert (config.sample_rate, config.num_samples, config.n_mfcc) == (22050, 100_000, 39)
    assert config.num_frames == 196
    assert config.input_shape == (196, 39, 1)
    assert config.fmax_hz == 11025.0


@pytest.mark.parametrize(
    "config",
    [FeatureConfig(), FeatureConfig(reverse_axis="coefficients", fmax=8000.0, input_names=("a", "b"))],
)
def test_config_round_trip(config):
    data = config.to_dict()
    assert FeatureConfig.from_dict(data) == config
    via_json = FeatureConfig.from_dict(json.loads(json.dumps(data)))
    assert via_json == config
    assert via_json.cache_key() == config.cache_key()


def test_config_from_dict_unknown_key():
    data = FeatureConfig().to_dict() | {"window": "hamming"}
    with pytest.raises(SerEdgeError, match="unknown keys"):
        FeatureConfig.from_dict(data)


CHANGED_FIELDS = {
    "sample_rate": 16000,
    "num_samples": 64000,
    "n_mfcc": 40,
    "n_fft": 1024,
    "hop_length": 256,
    "n_mels": 64,
    "fmin": 20.0,
    "fmax": 8000.0,
    "amin": 1e-9,
    "top_db": 60.0,
    "reverse_axis": "coefficients",
    "input_names": ("backward", "forward"),
}


def test_changed_fields_cover_every_field():
    # The standardisation statistics (the speaker's too), the cepstral mean subtraction and the level apply
    # to cached matrices, so they stay out of the cache key (tests/test_training_recipe.py and
    # tests/test_speaker_stats.py check that).
    standardisation = {"speaker_mean", "speaker_std", "input_mean", "input_std", "utterance_mean", "level_reference"}
    assert set(CHANGED_FIELDS) == {f.name for f in dataclasses.fields(FeatureConfig)} - standardisation


@pytest.mark.parametrize("name", sorted(CHANGED_FIELDS))
def test_cache_key_changes_with_every_field(name):
    base = FeatureConfig()
    changed = dataclasses.replace(base, **{name: CHANGED_FIELDS[name]})
    assert changed != base
    assert changed.cache_key() != base.cache_key()
    assert FeatureConfig().cache_key() == base.cache_key()  # stable for equal configs


@pytest.mark.parametrize(
    "values",
    [{"reverse_axis": "frequency"}, {"n_mfcc": 0}, {"hop_length": -1}, {"n_fft": 2048.0}, {"n_mfcc": 129}],
)
def test_config_rejects_bad_values(values):
    with pytest.raises(SerEdgeError):
        FeatureConfig(**values)


# --- bad input ---------------------------------------------------------------------


def _bad_signals():
    good = np.zeros(N, dtype=np.float32)
    with_nan = good.copy()
    with_nan[123] = np.nan
    with_inf = good.copy()
    with_inf[-1] = np.inf
    with_neg_inf = good.copy()
    with_neg_inf[0] = -np.inf
    return {
        "nan": with_nan,
        "inf": with_inf,
        "-inf": with_neg_inf,
        "2-D stereo": np.zeros((2, N), dtype=np.float32),
        "2-D column": np.zeros((N, 1), dtype=np.float32),
        "0-D": np.float32(0.5),
        "int16": np.zeros(N, dtype=np.int16),
        "int32": np.ones(N, dtype=np.int32),
        "bool": np.zeros(N, dtype=bool),
        "complex": np.zeros(N, dtype=np.complex64),
        "empty": np.zeros(0, dtype=np.float32),
        "empty list": [],
    }


@pytest.mark.parametrize("kind", list(_bad_signals()))
@pytest.mark.parametrize("function", [features.mfcc, features.utterance_features], ids=["mfcc", "utterance_features"])
def test_bad_input_raises(function, kind):
    signal = _bad_signals()[kind]
    with pytest.raises(SerEdgeError) as info:
        function(signal)
    assert "\n" not in str(info.value)
