"""The running per-speaker statistics of a model trained with ``ser-train --speaker-normalise``.

Such a model sees each utterance standardised by its speaker's own mean and
standard deviation per MFCC coefficient (over every frame of the fitted
window, as in training: models/speaker_norm.py). A device learns its
speaker's statistics by listening: every utterance the speech gate passes is
added after it is classified. Until ``min_utterances`` have been heard the
training speakers' pooled statistics (in the model's feature contract) stand
in: over one to four utterances a speaker's own statistics do worse than the
pooled ones, over 16 of varied speech they keep most of the gain
(models/shipped/probes/ravdess-speaker-speed-noise-speaker-norm/enrolment.md).

The sums are kept in float64 and, with ``path``, saved after every utterance
(atomically, once its line is out), so a restarted daemon goes on where it
stopped. Everyone the microphone hears is one "speaker" here: a household of
several voices gets their mixed statistics.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ser_edge.edge import atomic
from ser_edge.edge.config import FeatureConfig
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.paths import exists, read_regular_file

DEFAULT_MIN_UTTERANCES = 16
FORMAT = "ser-edge speaker statistics 1"
MAX_STATE_BYTES = 1024 * 1024
STD_FLOOR = 1e-6  # as in training (models/speaker_norm.py)


class SpeakerStatistics:
    """Frame count, sum and sum of squares per coefficient of every utterance observed."""

    def __init__(self, config: FeatureConfig, path: str | Path | None = None,
                 min_utterances: int = DEFAULT_MIN_UTTERANCES):
        if not config.per_speaker:
            raise SerEdgeError("the model was trained without per-speaker statistics")
        if min_utterances < 1:
            raise SerEdgeError(f"speaker statistics need at least 1 utterance, got {min_utterances}")
        self.config = config
        self.path = Path(path) if path else None
        self.min_utterances = min_utterances
        self.utterances = 0
        self.frames = 0
        self.sums = np.zeros(config.n_mfcc, np.float64)
        self.squares = np.zeros(config.n_mfcc, np.float64)
        self.save_error: str | None = None  # why the last save failed (the statistics go on in memory)
        if self.path is not None and exists(self.path):
            self._load(self.path)

    @property
    def own(self) -> bool:
        """Whether the statistics in use are the speaker's own (enough has been heard)."""
        return self.utterances >= self.min_utterances

    def current(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) per coefficient: the speaker's own once enough is heard, else the pooled ones."""
        if not self.own:
            return np.asarray(self.config.speaker_mean), np.asarray(self.config.speaker_std)
        mean = self.sums / self.frames
        variance = np.maximum(self.squares / self.frames - mean ** 2, 0.0)
        return mean, np.maximum(np.sqrt(variance), STD_FLOOR)

    def observe(self, matrix: np.ndarray) -> None:
        """Add one utterance's (frames, n_mfcc) MFCC matrix (in memory: ``save`` writes the file)."""
        frames = np.asarray(matrix, np.float64)
        if frames.ndim != 2 or frames.shape[1] != self.config.n_mfcc or not np.isfinite(frames).all():
            raise SerEdgeError(f"speaker statistics: expected finite (frames, {self.config.n_mfcc}) MFCCs, "
                               f"got shape {frames.shape}")
        self.utterances += 1
        self.frames += frames.shape[0]
        self.sums += frames.sum(axis=0)
        self.squares += (frames ** 2).sum(axis=0)

    def save(self) -> None:
        """Write the state where there is a file. A failure is kept in ``save_error``, not raised: the
        classification it follows must not be lost. ``listen`` calls this after the line is written, so
        a slow disk never delays a result."""
        if self.path is None:
            return
        try:  # atomically: a failed save leaves the previous file whole
            atomic.write_text(self.path, json.dumps(self._state()))
            self.save_error = None
        except OSError as error:
            self.save_error = f"{self.path}: {error.strerror or error}"

    def _state(self) -> dict:
        return {"format": FORMAT, "frontend": self.config.cache_key(), "utterances": self.utterances,
                "frames": self.frames, "sums": self.sums.tolist(), "squares": self.squares.tolist()}

    def _load(self, path: Path) -> None:
        """The saved state, refused in one line when it is damaged or belongs to another frontend
        (the file is left as it is: delete it to start again)."""
        try:
            state = json.loads(read_regular_file(path, "speaker statistics", MAX_STATE_BYTES))
            if not isinstance(state, dict) or state.get("format") != FORMAT:
                raise ValueError("not a ser-edge speaker statistics file")
            if state.get("frontend") != self.config.cache_key():
                raise ValueError("written for another model's MFCC frontend")
            utterances, frames = state["utterances"], state["frames"]
            sums, squares = (np.asarray(state[key], np.float64) for key in ("sums", "squares"))
            counts_ok = all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (utterances, frames))
            if not counts_ok or (utterances == 0) != (frames == 0):
                raise ValueError("bad counts")
            if sums.shape != (self.config.n_mfcc,) or squares.shape != sums.shape or \
                    not np.isfinite(sums).all() or not np.isfinite(squares).all() or (squares < 0).any():
                raise ValueError("bad sums")
        except (ValueError, KeyError, TypeError) as error:  # json.JSONDecodeError and UnicodeDecodeError too
            raise SerEdgeError(f"{path}: unusable speaker statistics ({_reason(error)}); delete the file to "
                               f"start again") from None
        self.utterances, self.frames, self.sums, self.squares = utterances, frames, sums, squares


def _reason(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"no {error}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__
