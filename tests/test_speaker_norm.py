"""The per-speaker normalisation probe: each speaker standardised by their own statistics, copies with the
plain utterances' statistics, no speaker's features depending on another's; the enrolment probe."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_edge.models import gpu_jobs
from ser_edge.models.feature_cache import FeatureSet
from ser_edge.models.speaker_norm import speaker_normalised
from ser_edge.models.train import TrainSettings


def feature_set(rng, speakers=("a", "b", "c"), per_speaker=4, frames=6, coefficients=3) -> FeatureSet:
    rows = []
    for k, _ in enumerate(speakers):  # each voice with its own offset and spread, as a real voice has
        rows.append(rng.normal(loc=10.0 * k, scale=1.0 + k, size=(per_speaker, frames, coefficients)))
    features = np.concatenate(rows).astype(np.float32)
    n = len(features)
    return FeatureSet(features=features, labels=np.arange(n) % 2, speakers=np.repeat(np.array(speakers), per_speaker),
                      paths=np.array([f"{i}.wav" for i in range(n)]), label_names=("x", "y"),
                      speeds=(0.9,), speed_features=(features + 3.0,),
                      noise_snr=(5.0, 35.0), noise_features=(features * 2.0,))


def test_each_speaker_is_standardised_by_their_own_statistics():
    data = feature_set(np.random.default_rng(0))
    normalised = speaker_normalised(data)
    for speaker in ("a", "b", "c"):
        frames = normalised.features[data.speakers == speaker].reshape(-1, 3).astype(np.float64)
        assert np.allclose(frames.mean(axis=0), 0, atol=1e-5) and np.allclose(frames.std(axis=0), 1, atol=1e-5)
    assert normalised.labels is data.labels and normalised.paths is data.paths
    assert normalised.features.dtype == np.float32


def test_copies_use_the_plain_utterances_statistics():
    data = feature_set(np.random.default_rng(1))
    normalised = speaker_normalised(data)
    std = {s: data.features[data.speakers == s].reshape(-1, 3).std(axis=0) for s in ("a", "b", "c")}
    per_row_std = np.stack([std[s] for s in data.speakers])[:, None, :]
    # A copy 3 units up stays 3 units (in that speaker's std) above its normalised original ...
    assert np.allclose(normalised.speed_features[0] - normalised.features, 3.0 / per_row_std, atol=1e-4)
    # ... and a copy twice as loud is not normalised back to the original: its own statistics are never used.
    assert not np.allclose(normalised.noise_features[0], normalised.features, atol=1e-2)


def test_a_speakers_features_do_not_depend_on_another_speaker():
    data = feature_set(np.random.default_rng(2))
    changed = data.features.copy()
    changed[data.speakers == "c"] *= 5.0
    other = speaker_normalised(FeatureSet(features=changed, labels=data.labels, speakers=data.speakers,
                                          paths=data.paths, label_names=data.label_names))
    mine = speaker_normalised(data)
    held_in = data.speakers != "c"
    assert np.array_equal(mine.features[held_in], other.features[held_in])


def test_the_setting_is_written_only_when_on():
    assert "speaker_normalise" not in TrainSettings(dataset="emodb").to_dict()  # earlier run files still match
    assert TrainSettings(dataset="emodb", speaker_normalise=True).to_dict()["speaker_normalise"] is True


def test_the_gpu_plans_speaker_normalised_runs_are_cross_validation_probes(tmp_path):
    # A shipping model with it is trained on purpose (tests/test_speaker_stats.py), never as a probe's side effect.
    jobs = gpu_jobs.select(gpu_jobs.plan("full", 150, tmp_path), ["*-speaker-norm*"])
    assert len(jobs) == 30 and all("--speaker-normalise" in job.args and "--no-final" in job.args for job in jobs)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from tests.generated_corpus import make_emodb_corpus

    return make_emodb_corpus(tmp_path_factory.mktemp("emodb"), per_class=4)


@pytest.mark.slow
@pytest.mark.parametrize("reference", ["all", "calm"])
def test_a_speaker_normalised_fold_trains_keeps_its_model_and_is_re_tested_with_enrolments(tmp_path, corpus,
                                                                                          reference):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "ser_edge.models.train_cli", "--dataset", "emodb", "--data-dir",
                           str(corpus), "--out", str(out), "--split", "speaker", "--folds", "3", "--only-fold", "0",
                           "--epochs", "1", "--no-final", "--speaker-normalise", "--threads", "1", "--keep-fold-models",
                           "--speaker-reference", reference, "--cache-dir", str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["speaker_normalise"] is True and settings.get("speaker_reference", "all") == reference
    fold = json.loads((out / "fold_00.json").read_text())
    assert fold["epochs_run"] == 1 and fold["test_speakers"]
    assert (out / "fold_00.keras").is_file() and fold["features"]["input_mean"]  # the model and its normalisation

    probed = subprocess.run([sys.executable, "-m", "ser_edge.models.enrolment_probe", str(out), "--data-dir",
                             str(corpus), "--sentences", "1,2", "--draws", "3", "--cache-dir", str(tmp_path / "cache"),
                             "--baseline", str(out)],  # its own folds as the baseline: "every statistic" again
                            capture_output=True, text=True, timeout=600)
    assert probed.returncode == 0, probed.stderr[-2000:]
    report = json.loads((out / "enrolment.json").read_text())
    # The kept model with every statistic (for "calm", of the speaker's neutral utterances, as in training) gives
    # exactly ser-train's figure: the probe re-tests what was measured.
    assert report["folds"] == [{"fold": 0, "reproduced": pytest.approx(fold["test"]["war"], abs=1e-9),
                                "reported": fold["test"]["war"]}]
    per_speaker = len(fold["test_paths"]) // len(fold["test_speakers"])
    for row in report["rows"]:  # every held-out utterance not enrolled is tested, none twice
        assert row["utterances"] == per_speaker - row["sentences"]
        assert 0 <= row["right"] <= row["utterances"] and 0 <= row["right_with_all"] <= row["utterances"]
        assert row["right_baseline"] == row["right_with_all"]  # utterance for utterance, by file name
    modes = {(s["mode"], s["sentences"]) for s in report["summary"]}
    # EMO-DB's one neutral utterance a speaker: no calm pool, and half of 2 is all a speaker's calm utterances
    assert modes == {("none", 0), ("any", 1), ("any", 2), ("half-calm", 1), ("half-calm", 2)}
    for row in report["summary"]:
        assert row["accuracy_baseline"] == pytest.approx(row["accuracy_with_all"], abs=1e-12)
        assert row["gain"] == pytest.approx(row["difference"], abs=1e-12)
    assert (out / "enrolment.md").read_text() in probed.stdout


def test_the_enrolment_probe_refuses_a_run_it_cannot_re_test(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "run.json").write_text(json.dumps({"settings": {"dataset": "emodb"}}))
    for folder, expected in ((tmp_path / "none", "no run.json"), (plain, "not a --speaker-normalise run")):
        refused = subprocess.run([sys.executable, "-m", "ser_edge.models.enrolment_probe", str(folder), "--data-dir",
                                  str(tmp_path)], capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and expected in refused.stderr
        assert refused.stderr.strip().count("\n") == 0
    assert not (plain / "enrolment.json").exists()


def test_enrolments_draw_distinct_utterances_from_their_pool():
    from ser_edge.models.enrolment_probe import enrolments

    names = ("neutral", "calm", "happy")
    labels = np.array([0, 1, 1, 2, 2, 2, 2, 2])
    drawn = enrolments(labels, names, [1, 2, 3, 8], draws=4, rng=np.random.default_rng(0))
    sizes = {(mode, k) for mode, k, _, _ in drawn}
    assert sizes == {("none", 0), ("any", 1), ("any", 2), ("any", 3), ("calm", 1), ("calm", 2),  # a pool keeps one
                     ("half-calm", 1), ("half-calm", 2), ("half-calm", 3)}  # 8 would need 4 of the 3 calm
    for mode, k, _, chosen in drawn:
        assert len(chosen) == k == len(set(chosen.tolist()))
        if mode == "calm":
            assert set(labels[chosen].tolist()) <= {0, 1}
        if mode == "half-calm":  # the larger half calm, the rest not
            assert (labels[chosen] <= 1).sum() == (k + 1) // 2
    assert len(drawn) == 9 * 4


def test_standardised_by_its_own_frames_has_zero_mean_and_unit_spread():
    from ser_edge.models.enrolment_probe import standardised

    features = np.random.default_rng(1).normal(5.0, 3.0, size=(4, 10, 3)).astype(np.float32)
    out = standardised(features, features).reshape(-1, 3)
    assert np.allclose(out.mean(axis=0), 0, atol=1e-5) and np.allclose(out.std(axis=0), 1, atol=1e-4)
    # and the same numbers as the training-time probe gives a speaker (models/speaker_norm.py)
    data = FeatureSet(features=features, labels=np.zeros(4, dtype=np.int64), speakers=np.array(["a"] * 4),
                      paths=np.array(["1", "2", "3", "4"]), label_names=("x",))
    assert np.allclose(speaker_normalised(data).features, standardised(features, features), atol=1e-6)


def test_a_baseline_is_matched_utterance_for_utterance_or_refused(tmp_path):
    from ser_edge.edge.errors import SerEdgeError
    from ser_edge.models.enrolment_probe import baseline_right

    (tmp_path / "folds").mkdir()
    fold = {"test_speakers": ["01"], "test_paths": ["/elsewhere/a.wav", "/elsewhere/b.wav"], "test_true": [0, 1],
            "test_predicted": [0, 0]}
    (tmp_path / "folds" / "fold_03.json").write_text(json.dumps(fold))
    paths, speakers = np.array(["/here/b.wav", "/here/c.wav", "/here/a.wav"]), np.array(["01", "02", "01"])
    assert baseline_right(tmp_path, 3, paths, ["01"], speakers).tolist() == [False, False, True]
    with pytest.raises(SerEdgeError, match="no fold_02.json"):
        baseline_right(tmp_path, 2, paths, ["01"], speakers)
    with pytest.raises(SerEdgeError, match=r"holds out speakers \['01'\], not \['02'\]"):
        baseline_right(tmp_path, 3, paths, ["02"], speakers)
    with pytest.raises(SerEdgeError, match="d.wav .held out. is not among its test files"):
        baseline_right(tmp_path, 3, np.append(paths, "/here/d.wav"), ["01"], np.append(speakers, "01"))


def test_gains_are_reported_per_fold_so_a_bar_can_count_the_folds_that_gain():
    from pathlib import Path

    from ser_edge.models.enrolment_probe import gains_by_fold, markdown, summarise

    def row(fold, speaker, draw, right, baseline, utterances=10):
        return {"fold": fold, "mode": "calm", "sentences": 8, "draw": draw, "speaker": speaker,
                "utterances": utterances, "right": right, "right_with_all": right, "right_baseline": baseline}

    rows = [row(0, "01", 0, 5, 6), row(0, "02", 0, 7, 6, utterances=30),  # fold 1: 12 right of 40 vs 12: 0.00
            row(0, "01", 1, 4, 6), row(0, "02", 1, 6, 6, utterances=30),  # and 10 vs 12: -2 of 80 in all
            row(3, "09", 0, 9, 6), row(3, "09", 1, 8, 6)]                 # fold 4: +5 of 20
    assert gains_by_fold(rows) == {("calm", 8): {0: -2 / 80, 3: 5 / 20}}
    folds = [{"fold": 0, "reproduced": 0.5, "reported": 0.5}, {"fold": 3, "reproduced": 0.6, "reported": 0.6}]
    report = markdown(Path("run"), folds, summarise(rows), rows)
    assert "| enrolment | sentences | fold 1 | fold 4 | folds that gain |" in report
    assert "| calm | 8 | -2.50 | +25.00 | 1 of 2 |" in report
    without = [{k: v for k, v in r.items() if k != "right_baseline"} for r in rows]  # no --baseline: no table
    assert gains_by_fold(without) == {} and "by fold" not in markdown(Path("run"), folds, summarise(without), without)


def test_calm_reference_statistics_come_from_each_speakers_unemotional_utterances():
    from ser_edge.edge.errors import SerEdgeError

    data = dataclasses.replace(feature_set(np.random.default_rng(3)), label_names=("neutral", "angry"))
    normalised = speaker_normalised(data, "calm")
    calm = data.labels == 0
    for speaker in ("a", "b", "c"):
        reference = normalised.features[(data.speakers == speaker) & calm].reshape(-1, 3).astype(np.float64)
        assert np.allclose(reference.mean(axis=0), 0, atol=1e-5) and np.allclose(reference.std(axis=0), 1, atol=1e-5)
    # The angry utterances are standardised by the same statistics, not their own: they keep their departure.
    assert not np.allclose(normalised.features, speaker_normalised(data).features, atol=1e-3)
    without_calm = dataclasses.replace(data, labels=np.where(data.speakers == "b", 1, data.labels))
    with pytest.raises(SerEdgeError, match="speaker b has no utterance"):
        speaker_normalised(without_calm, "calm")
    with pytest.raises(SerEdgeError, match="must be one of all, calm"):
        speaker_normalised(data, "loud")


@pytest.mark.parametrize("args, message", [
    (["--speaker-reference", "calm", "--no-final"], "give both"),
    (["--speaker-reference", "calm", "--speaker-normalise"], "add --no-final"),
])
def test_calm_reference_is_a_cross_validation_probe(tmp_path, args, message):
    refused = subprocess.run([sys.executable, "-m", "ser_edge.models.train_cli", "--dataset", "emodb", "--data-dir",
                              str(tmp_path), "--out", str(tmp_path / "run"), *args],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and message in refused.stderr
    assert refused.stderr.strip().count("\n") == 0 and not (tmp_path / "run").exists()
    assert "speaker_reference" not in TrainSettings(dataset="emodb", speaker_normalise=True).to_dict()
