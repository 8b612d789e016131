"""Voice-activity segmentation on generated and real (espeak-ng) audio."""

import numpy as np
import pytest

from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.segmenter import Segmenter, SegmenterSettings, level_db
from tests.fixtures import RATE, speech_with_pauses

WINDOW = FeatureConfig().num_samples


def tone(seconds: float, amplitude: float = 0.3, hz: float = 220.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), dtype=np.float32)


def run(segmenter: Segmenter, signal: np.ndarray, chunk: int) -> list:
    segments = []
    for start in range(0, signal.size, chunk):
        segments += segmenter.push(signal[start : start + chunk])
    return segments + segmenter.flush()


@pytest.mark.parametrize("chunk", [1, 441, 1103, RATE])
def test_bursts_separated_by_silence_give_one_segment_each(chunk):
    signal = np.concatenate([silence(0.5), tone(1.0), silence(1.0), tone(0.7), silence(1.0), tone(1.2), silence(1.0)])
    segments = run(Segmenter(RATE, WINDOW), signal, chunk)
    assert len(segments) == 3
    starts = [s.start_s for s in segments]
    # Each starts within the 0.1 s pre-roll before its burst.
    assert starts[0] == pytest.approx(0.4, abs=0.03)
    assert starts[1] == pytest.approx(2.5 - 0.1, abs=0.03)
    assert [round(s.duration_s, 1) for s in segments] == [1.1, 0.8, 1.3]


def test_short_clicks_are_not_utterances():
    signal = np.concatenate([silence(0.5), tone(0.06), silence(1.0), tone(0.6), silence(1.0)])
    segments = run(Segmenter(RATE, WINDOW, SegmenterSettings(min_speech_s=0.25)), signal, 512)
    assert len(segments) == 1


def test_pause_shorter_than_max_silence_keeps_one_utterance():
    signal = np.concatenate([tone(0.8), silence(0.3), tone(0.8), silence(1.0)])
    segments = run(Segmenter(RATE, WINDOW, SegmenterSettings(max_silence_s=0.6)), signal, 512)
    assert len(segments) == 1
    assert segments[0].duration_s == pytest.approx(1.9, abs=0.03)


def test_long_speech_is_cut_into_consecutive_model_windows():
    signal = np.concatenate([tone(11.0), silence(1.0)])
    segments = run(Segmenter(RATE, WINDOW), signal, 1024)
    assert [s.samples.size for s in segments[:2]] == [WINDOW, WINDOW]
    assert len(segments) == 3
    # Consecutive: each window starts where the previous one stopped.
    assert segments[1].start_s == pytest.approx(segments[0].start_s + WINDOW / RATE, abs=0.021)
    total = sum(s.samples.size for s in segments)
    assert total == pytest.approx(11.0 * RATE, abs=0.05 * RATE)


def test_end_of_speech_wait_is_the_silence_needed_to_close():
    signal = np.concatenate([tone(1.0), silence(2.0)])
    (segment,) = run(Segmenter(RATE, WINDOW, SegmenterSettings(max_silence_s=0.5)), signal, 441)
    assert segment.end_wait_s == pytest.approx(0.5, abs=0.021)


def test_quiet_noise_below_threshold_is_silence(rng):
    noise = (0.001 * rng.standard_normal(3 * RATE)).astype(np.float32)  # about -60 dBFS
    assert level_db(noise) < -55
    assert run(Segmenter(RATE, WINDOW), noise, 1000) == []


def test_espeak_sentences_with_pauses(tmp_path):
    signal, _ = speech_with_pauses(tmp_path)
    segments = run(Segmenter(RATE, WINDOW), signal, 1102)
    assert len(segments) == 3
