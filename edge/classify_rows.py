"""``ser-edge classify``'s output: a table row or a JSON line per segment, and the one fallback warning."""

from __future__ import annotations

import json
import sys

HEADER = (f"{'file':40} {'start s':>8} {'dur s':>6} {'speech':>6} {'label':10} {'p':>5} {'best guess':10} "
          f"{'features ms':>11} {'inference ms':>12}")


def warn_fallback(gate) -> None:
    if getattr(gate, "reason", ""):  # once per run, not per file
        print(f"ser-edge: warning: speech gate: {gate.reason}; using the energy gate: loud sounds count as speech",
              file=sys.stderr)


NO_SPEECH = "no speech found"


def as_row(path: str, piece, judgement) -> str:
    speech = "-" if judgement.speech.probability is None else f"{judgement.speech.probability:.2f}"
    head = f"{path[-40:]:40} {piece.start_s:8.2f} {piece.duration_s:6.2f} {speech:>6}"
    prediction = judgement.prediction
    if prediction is None:
        return f"{head} {NO_SPEECH}"
    return (f"{head} {judgement.label:10} {judgement.confidence:5.2f} {judgement.best_guess:10} "
            f"{1e3 * prediction.features_s:11.2f} {1e3 * prediction.inference_s:12.2f}")


def as_json(path: str, piece, judgement, where: dict) -> str:
    record = {"file": path, "start_s": round(piece.start_s, 3), "duration_s": round(piece.duration_s, 3),
              **judgement.fields(), "speech_gate_s": judgement.speech.gate_s}
    if judgement.prediction is not None:
        record.update(features_s=judgement.prediction.features_s, inference_s=judgement.prediction.inference_s)
    record.update(where)
    if judgement.prediction is None:  # after the file's note: this is what the line is about
        record["note"] = f"{NO_SPEECH}; {where['note']}" if where else NO_SPEECH
    return json.dumps(record)
