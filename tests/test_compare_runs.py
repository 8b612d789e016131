"""ser_edge.models.compare_runs: two runs on the same folds, paired fold by fold and utterance by utterance."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

import pytest

from ser_edge.edge.errors import SerEdgeError
from ser_edge.models import compare_runs

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_SPEAKER = ROOT / "models" / "shipped" / "cv" / "ravdess-speaker"
SPEAKER_NORM_PROBE = ROOT / "models" / "shipped" / "probes" / "ravdess-speaker-speed-noise-speaker-norm"


def write_fold(folder: Path, number: int, names: list[str], true: list[int], predicted: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    war = sum(t == p for t, p in zip(true, predicted)) / len(true)
    fold = {"fold": number, "test": {"war": war, "uar": war}, "test_true": true, "test_predicted": predicted,
            # another machine's folder: utterances are paired by file name
            "test_paths": [f"/data/{folder.name}/{name}" for name in names]}
    (folder / f"fold_{number:02d}.json").write_text(json.dumps(fold))


def test_the_committed_runs_are_reproduced_from_their_fold_files():
    result = compare_runs.compare(SHIPPED_SPEAKER, SPEAKER_NORM_PROBE)
    base_report = json.loads((SHIPPED_SPEAKER / "report.json").read_text())
    cand_report = json.loads((SPEAKER_NORM_PROBE / "report.json").read_text())
    assert [row["fold"] for row in result["folds"]] == [0, 1, 2, 3, 4]
    pooled = result["pooled"]
    assert pooled["utterances"] == 1200  # 5 folds of 4 actors x 60 sentences
    assert pooled["baseline_war"] == pytest.approx(base_report["pooled"]["war"])
    assert pooled["candidate_war"] == pytest.approx(cand_report["pooled"]["war"])
    assert result["mean_gain"] == pytest.approx(cand_report["war"]["mean"] - base_report["war"]["mean"])
    for row in result["folds"]:
        # The fold's discordant utterances account for its whole gain.
        assert (row["only_candidate_right"] - row["only_baseline_right"]) / row["utterances"] == \
            pytest.approx(row["gain"])
    assert result["folds_gaining"] + result["folds_losing"] <= 5


def test_folds_pair_by_number_and_utterances_by_name(tmp_path):
    names = [f"u{i}.wav" for i in range(6)]
    write_fold(tmp_path / "base" / "folds", 0, names, [0] * 6, [0, 0, 1, 1, 1, 1])  # 2 right
    write_fold(tmp_path / "base" / "folds", 1, names, [0] * 6, [0] * 6)
    # The candidate lists the same utterances in another order, and has not finished fold 2.
    write_fold(tmp_path / "cand", 0, names[::-1], [0] * 6, [0, 0, 0, 0, 1, 1])  # u5..u2 right
    result = compare_runs.compare(tmp_path / "base", tmp_path / "cand")
    (row,) = result["folds"]
    assert row["gain"] == pytest.approx(2 / 6)
    assert (row["only_baseline_right"], row["only_candidate_right"]) == (2, 4)  # u0, u1 against u2..u5
    assert result["pooled"]["both_right"] == 0
    assert result["folds_only_in_baseline"] == [1] and result["folds_only_in_candidate"] == []
    assert result["pooled"]["mcnemar_p"] == pytest.approx(2 * (1 + 6 + 15) / 64)
    assert "Not compared (finished in the baseline only): folds 2." in compare_runs.markdown(result)


def test_mcnemar_exact():
    assert compare_runs.mcnemar_exact(0, 0) == 1.0
    assert compare_runs.mcnemar_exact(5, 5) == 1.0
    assert compare_runs.mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert compare_runs.mcnemar_exact(3, 12) == pytest.approx(2 * sum(comb(15, i) for i in range(4)) / 2**15)
    assert compare_runs.mcnemar_exact(12, 3) == compare_runs.mcnemar_exact(3, 12)


def test_runs_on_other_splits_are_refused(tmp_path):
    write_fold(tmp_path / "base", 0, ["a.wav", "b.wav"], [0, 1], [0, 1])
    write_fold(tmp_path / "cand", 0, ["a.wav", "c.wav"], [0, 1], [0, 1])
    with pytest.raises(SerEdgeError, match="fold 1 tests other utterances"):
        compare_runs.compare(tmp_path / "base", tmp_path / "cand")


def test_runs_without_a_common_fold_are_refused(tmp_path):
    write_fold(tmp_path / "base", 0, ["a.wav"], [0], [0])
    write_fold(tmp_path / "cand", 1, ["a.wav"], [0], [0])
    with pytest.raises(SerEdgeError, match="no finished fold in common"):
        compare_runs.compare(tmp_path / "base", tmp_path / "cand")


def test_the_command_writes_its_files_and_refuses_in_one_line(tmp_path, capsys):
    write_fold(tmp_path / "base", 0, ["a.wav", "b.wav"], [0, 1], [0, 0])
    write_fold(tmp_path / "cand", 0, ["a.wav", "b.wav"], [0, 1], [0, 1])
    out_md, out_json = tmp_path / "cmp.md", tmp_path / "cmp.json"
    args = [str(tmp_path / "base"), str(tmp_path / "cand"), "--markdown", str(out_md), "--json", str(out_json)]
    assert compare_runs.main(args) == 0
    assert "| 1 | 50.00 (50.00) | 100.00 (100.00) | +50.00 | 0 | 1 |" in out_md.read_text()
    assert json.loads(out_json.read_text())["pooled"]["only_candidate_right"] == 1
    assert out_md.read_text() == capsys.readouterr().out

    (tmp_path / "empty").mkdir()
    assert compare_runs.main([str(tmp_path / "base"), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no fold_NN.json" in err
    (tmp_path / "cand" / "fold_00.json").write_text("{not json")
    assert compare_runs.main([str(tmp_path / "base"), str(tmp_path / "cand")]) == 2
    assert "not a ser-train fold file" in capsys.readouterr().err
