"""The device's running per-speaker statistics (edge/speaker_stats.py) and the feature contract that asks for
them: the same numbers as training's per-speaker normalisation, pooled ones until enough is heard, a state file
that survives restarts and is never half-written or silently replaced."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.features import standardize
from ser_edge.edge.speaker_stats import SpeakerStatistics
from ser_edge.models.feature_cache import FeatureSet
from ser_edge.models.speaker_norm import frame_statistics, speaker_normalised

N_MFCC = 5


def config(rng, **extra) -> FeatureConfig:
    mean, std = rng.normal(size=N_MFCC), rng.uniform(0.5, 2.0, size=N_MFCC)
    return FeatureConfig(n_mfcc=N_MFCC, **extra).with_speaker_statistics(mean, std)


def voice(rng, utterances: int, frames: int = 7) -> list[np.ndarray]:
    """MFCC matrices of one voice: its own offset and spread per coefficient, as a real voice has."""
    offset, spread = rng.normal(scale=50.0, size=N_MFCC), rng.uniform(1.0, 30.0, size=N_MFCC)
    return [(offset + spread * rng.normal(size=(frames, N_MFCC))).astype(np.float32) for _ in range(utterances)]


def hear(statistics: SpeakerStatistics, matrix: np.ndarray) -> None:
    """What ``listen`` does with each classified utterance: add it, then (once its line is out) save."""
    statistics.observe(matrix)
    statistics.save()


def test_pooled_statistics_until_enough_is_heard_then_exactly_the_speakers_own(rng):
    contract = config(rng)
    statistics = SpeakerStatistics(contract, min_utterances=3)
    heard = voice(rng, 4)
    for matrix in heard[:2]:
        statistics.observe(matrix)
        mean, std = statistics.current()
        assert not statistics.own
        assert np.array_equal(mean, contract.speaker_mean) and np.array_equal(std, contract.speaker_std)
    for count in (3, 4):
        statistics.observe(heard[count - 1])
        expected_mean, expected_std = frame_statistics(np.stack(heard[:count]))  # what training computes
        mean, std = statistics.current()
        assert statistics.own and statistics.utterances == count and statistics.frames == 7 * count
        assert np.allclose(mean, expected_mean, rtol=0, atol=1e-9)
        assert np.allclose(std, expected_std, rtol=1e-9, atol=1e-9)


def test_the_device_standardises_a_voice_as_training_did(rng):
    """speaker_normalised() then the fold's standardisation (training) equals standardize() with the speaker's
    statistics (the device), for a model that also standardises per coefficient and moves c0 to a level."""
    heard = np.stack(voice(rng, 6))
    data = FeatureSet(features=heard, labels=np.zeros(6, int), speakers=np.array(["a"] * 6),
                      paths=np.array([f"{i}.wav" for i in range(6)]), label_names=("x",))
    trained_on = speaker_normalised(data).features
    fold = FeatureConfig(n_mfcc=N_MFCC, level_reference=0.7).standardized(rng.normal(size=N_MFCC),
                                                                         rng.uniform(0.5, 2, N_MFCC))
    device = fold.with_speaker_statistics(rng.normal(size=N_MFCC), rng.uniform(0.5, 2, N_MFCC))
    statistics = SpeakerStatistics(device, min_utterances=6)
    for matrix in heard:
        statistics.observe(matrix)
    assert np.allclose(standardize(heard, device, statistics.current()), standardize(trained_on, fold), atol=1e-5)
    # Without the speaker's statistics the pooled ones in the contract are used, not none.
    pooled = (np.asarray(device.speaker_mean), np.asarray(device.speaker_std))
    assert np.array_equal(standardize(heard, device), standardize(heard, device, pooled))
    assert not np.allclose(standardize(heard, device), standardize(heard, fold), atol=1e-2)


def test_the_contract_carries_them_only_when_the_model_has_them(rng):
    contract = config(rng)
    assert FeatureConfig.from_dict(json.loads(json.dumps(contract.to_dict()))) == contract
    plain = FeatureConfig(n_mfcc=N_MFCC)
    assert "speaker_mean" not in plain.to_dict() and not plain.per_speaker and contract.per_speaker
    assert contract.cache_key() == plain.cache_key()  # applied to cached matrices: the cache stays valid
    assert contract.unnormalised() == plain
    with pytest.raises(SerEdgeError, match="speaker_mean and speaker_std come together"):
        FeatureConfig(n_mfcc=N_MFCC, speaker_mean=(0.0,) * N_MFCC)
    with pytest.raises(SerEdgeError, match="speaker_std must be positive"):
        FeatureConfig(n_mfcc=N_MFCC, speaker_mean=(0.0,) * N_MFCC, speaker_std=(1.0,) * (N_MFCC - 1) + (0.0,))
    with pytest.raises(SerEdgeError, match="5 finite numbers"):
        FeatureConfig(n_mfcc=N_MFCC, speaker_mean=(0.0,) * 4, speaker_std=(1.0,) * 4)
    with pytest.raises(SerEdgeError, match="trained without"):
        standardize(np.zeros((3, N_MFCC), np.float32), plain, (np.zeros(N_MFCC), np.ones(N_MFCC)))
    with pytest.raises(SerEdgeError, match="trained without per-speaker statistics"):
        SpeakerStatistics(plain)


def test_a_restarted_device_goes_on_where_it_stopped(tmp_path, rng):
    contract, state = config(rng), tmp_path / "state" / "speaker.json"
    heard = voice(rng, 5)
    first = SpeakerStatistics(contract, state, min_utterances=4)
    for matrix in heard[:3]:
        hear(first, matrix)
    again = SpeakerStatistics(contract, state, min_utterances=4)
    assert again.utterances == 3 and not again.own
    for matrix in heard[3:]:
        hear(again, matrix)
    expected = frame_statistics(np.stack(heard))
    assert np.allclose(again.current()[0], expected[0], atol=1e-9) and np.allclose(again.current()[1], expected[1])
    assert [p.name for p in state.parent.iterdir()] == ["speaker.json"]  # no temporary file left behind


def test_observing_is_in_memory_and_saving_writes_the_file(tmp_path, rng):
    """The classifier observes; the file is written only by ``save`` (``listen``: after the line is out)."""
    contract, state = config(rng), tmp_path / "speaker.json"
    statistics = SpeakerStatistics(contract, state)
    statistics.observe(voice(rng, 1)[0])
    assert statistics.utterances == 1 and not state.exists()
    statistics.save()
    assert json.loads(state.read_text())["utterances"] == 1
    SpeakerStatistics(contract).save()  # memory only: nothing to write, nothing raised


@pytest.mark.parametrize("content, reason", [
    (b"not json", "unusable speaker statistics"),
    (b"[]", "not a ser-edge speaker statistics file"),
    (b'{"format": "ser-edge speaker statistics 1", "frontend": "other"}', "another model's MFCC frontend"),
    ("negative", "bad counts"),
    ("nan", "bad sums"),
    ("short", "bad sums"),
    ("missing", "no 'squares'"),
    (b"\xff\xfe", "unusable speaker statistics"),
])
def test_a_damaged_state_file_is_refused_in_one_line_and_left_as_it_is(tmp_path, rng, content, reason):
    contract, state = config(rng), tmp_path / "speaker.json"
    if isinstance(content, str):
        saved = SpeakerStatistics(contract, state)
        hear(saved, voice(rng, 1)[0])
        data = json.loads(state.read_text())
        if content == "negative":
            data["utterances"] = -1
        elif content == "nan":
            data["sums"][0] = float("nan")
        elif content == "short":
            data["sums"] = data["sums"][:-1]
        else:
            del data["squares"]
        content = json.dumps(data).encode()
    state.write_bytes(content)
    with pytest.raises(SerEdgeError, match=reason) as refused:
        SpeakerStatistics(contract, state)
    assert "\n" not in str(refused.value) and "delete the file" in str(refused.value)
    assert state.read_bytes() == content


def test_a_state_path_that_is_not_a_file_is_refused(tmp_path, rng):
    with pytest.raises(SerEdgeError, match="speaker statistics"):
        SpeakerStatistics(config(rng), tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_failed_save_keeps_the_statistics_in_memory_and_the_old_file_whole(tmp_path, rng):
    contract, state = config(rng), tmp_path / "speaker.json"
    statistics = SpeakerStatistics(contract, state, min_utterances=1)
    hear(statistics, voice(rng, 1)[0])
    before = state.read_bytes()
    tmp_path.chmod(0o500)
    try:
        hear(statistics, voice(rng, 1)[0])
    finally:
        tmp_path.chmod(0o700)
    assert statistics.utterances == 2 and "Permission denied" in statistics.save_error
    assert state.read_bytes() == before
    hear(statistics, voice(rng, 1)[0])
    assert statistics.save_error is None and json.loads(state.read_text())["utterances"] == 3


def test_a_save_failure_as_root_is_kept_too(tmp_path, rng):
    """Where the folder has gone and a file stands in its place (no permission stops root)."""
    folder = tmp_path / "state"
    statistics = SpeakerStatistics(config(rng), folder / "speaker.json")
    hear(statistics, voice(rng, 1)[0])
    (folder / "speaker.json").unlink()
    folder.rmdir()
    folder.write_text("in the way")
    hear(statistics, voice(rng, 1)[0])
    assert statistics.utterances == 2 and str(folder) in statistics.save_error
    assert folder.read_text() == "in the way"
    with pytest.raises(SerEdgeError, match="cannot access speaker statistics"):  # and a restart says why
        SpeakerStatistics(config(rng), folder / "speaker.json")


@pytest.mark.slow
def test_a_speaker_normalised_model_trains_exports_and_listen_learns_its_speaker(tmp_path):
    """ser-train --speaker-normalise (final model), ser-export, then `ser-edge listen` with a state file: pooled
    statistics until N utterances, the speaker's own after, and a restart that goes on counting."""
    import subprocess
    import sys

    from ser_edge.edge import audio
    from ser_edge.edge.classifier import EmotionClassifier
    from ser_edge.edge.datasets import LABELS, read_dataset
    from ser_edge.edge.features import utterance_features
    from ser_edge.models.feature_cache import load_features
    from tests.fixtures import speech_with_pauses
    from tests.generated_corpus import make_emodb_corpus

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=600)

    corpus, out, cache = make_emodb_corpus(tmp_path / "emodb", per_class=3), tmp_path / "run", tmp_path / "cache"
    done = run("ser_edge.models.train_cli", "--dataset", "emodb", "--data-dir", str(corpus), "--out", str(out),
               "--no-cv", "--folds", "2", "--epochs", "1", "--speaker-normalise", "--threads", "1",
               "--cache-dir", str(cache))
    assert done.returncode == 0, done.stderr[-3000:]
    final = json.loads((out / "final.json").read_text())
    # The contract's fallback: the training part's plain frames, pooled (what the enrolment probe calls "none").
    data = load_features(read_dataset("emodb", corpus), LABELS["emodb"], FeatureConfig(), cache)
    trained = np.isin([os.path.basename(p) for p in data.paths], final["training_files"])
    expected_mean, expected_std = frame_statistics(data.features[trained])
    assert np.allclose(final["features"]["speaker_mean"], expected_mean, atol=1e-6)
    assert np.allclose(final["features"]["speaker_std"], expected_std, rtol=1e-6)

    model = tmp_path / "speaker.tflite"
    done = run("ser_edge.export.cli", str(out / "final.keras"), "--quantize", "float32", "--out", str(model),
               "--calibration-data", str(corpus), "--dataset", "emodb", "--cache-dir", str(cache))
    assert done.returncode == 0, done.stderr[-3000:]

    # In process: the third utterance is standardised by the first two's statistics, not by its own.
    (tmp_path / "speech").mkdir()
    _, speech = speech_with_pauses(tmp_path / "speech")
    classifier = EmotionClassifier(model)
    assert classifier.features.per_speaker
    utterances = [audio.load(tmp_path / "speech" / f"sentence{i}.wav", classifier.sample_rate) for i in range(3)]
    assert classifier.classify(utterances[0]).speaker_statistics == "pooled"  # nothing attached: pooled
    classifier.speaker = SpeakerStatistics(classifier.features, min_utterances=2)
    used = [classifier.classify(u) for u in utterances]
    assert [p.speaker_statistics for p in used] == ["pooled", "pooled", "own"]
    matrices = [utterance_features(u, classifier.features) for u in utterances]
    classifier.speaker = None
    expected = interpreter_result_with(classifier, matrices[2], frame_statistics(np.stack(matrices[:2])))
    assert np.allclose([used[2].probabilities[name] for name in classifier.labels], expected, atol=1e-6)
    assert not np.allclose(expected, classifier.infer(matrices[2]), atol=1e-6)  # the pooled ones would differ

    info = subprocess.run([sys.executable, "-m", "ser_edge.edge.cli", "info", str(model)], capture_output=True,
                          text=True, timeout=120)
    assert info.returncode == 0 and "standardised by the voice's own statistics" in info.stdout
    shipped = subprocess.run([sys.executable, "-m", "ser_edge.edge.cli", "info"], capture_output=True, text=True,
                             timeout=120)
    assert shipped.returncode == 0 and "own statistics" not in shipped.stdout

    state = tmp_path / "state" / "speaker.json"
    command = [sys.executable, "-m", "ser_edge.edge.cli", "listen", "--model", str(model), "--input", str(speech),
               "--no-jsonl", "--speaker-state", str(state), "--speaker-min-utterances", "2"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    lines = [json.loads(line) for line in first.stdout.splitlines()]
    heard = len(lines)
    assert heard >= 3
    assert [line["speaker_statistics"] for line in lines] == [
        {"used": "pooled" if n < 2 else "own", "utterances": n + 1} for n in range(heard)]
    assert json.loads(state.read_text())["utterances"] == heard
    assert "speaker statistics: 0 utterances heard" in first.stderr
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [json.loads(line)["speaker_statistics"] for line in again.stdout.splitlines()] == [
        {"used": "own", "utterances": heard + n + 1} for n in range(heard)]
    assert f"speaker statistics: {heard} utterances heard" in again.stderr

    # A state file that cannot be written (nothing can be made in /proc, not even by root): every line is still
    # written, the statistics go on in memory, and the failure is logged once, not once per utterance.
    unwritable = [*command[:command.index("--speaker-state") + 1], "/proc/ser-edge-test/speaker.json",
                  *command[command.index("--speaker-state") + 2:]]
    in_memory = subprocess.run(unwritable, capture_output=True, text=True, timeout=300)
    assert in_memory.returncode == 0, in_memory.stderr[-3000:]
    assert [json.loads(line)["speaker_statistics"] for line in in_memory.stdout.splitlines()] == [
        {"used": "pooled" if n < 2 else "own", "utterances": n + 1} for n in range(heard)]
    warnings = [line for line in in_memory.stderr.splitlines() if "kept in memory only" in line]
    assert len(warnings) == 1 and "/proc/ser-edge-test/speaker.json" in warnings[0]

    state.write_text("{damaged")  # refused before READY in one line, the file left for the user to look at
    refused = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and refused.stdout == "" and "ready" not in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("ser-edge: error:")]
    assert len(errors) == 1 and "unusable speaker statistics" in errors[0] and "delete the file" in errors[0]
    assert state.read_text() == "{damaged"


def interpreter_result_with(classifier, matrix: np.ndarray, speaker) -> np.ndarray:
    """The classifier's model on ``matrix`` standardised by ``speaker``'s (mean, std)."""
    from ser_edge.edge.speaker_stats import SpeakerStatistics as Statistics

    class Fixed(Statistics):  # a running estimate frozen at given statistics
        def current(self):
            return speaker

    classifier.speaker = Fixed(classifier.features)
    try:
        return classifier.infer(matrix)
    finally:
        classifier.speaker = None
