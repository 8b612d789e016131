"""What ``classify`` classifies in a file: the whole file when it fits one model window, else its utterances.

The model sees one window (100,000 samples, 4.54 s at 22,050 Hz). A longer
file is split the way ``ser-edge listen --input FILE`` splits it: the same
voice-activity segmenter, with the same settings, cuts it into utterances,
and speech longer than a window into consecutive windows. So ``classify`` and
``listen`` give the same labels for the same file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ser_edge.edge.segmenter import Segmenter, SegmenterSettings


@dataclass(frozen=True)
class Piece:
    samples: np.ndarray
    start_s: float
    duration_s: float


@dataclass(frozen=True)
class Pieces:
    pieces: list[Piece]
    file_s: float  # the whole file's duration
    window_s: float  # the model's window
    segmented: bool  # True: longer than one window, split into utterances as listen does

    def describe(self, settings: SegmenterSettings) -> str:
        """One sentence for the output, saying what was classified."""
        if not self.segmented:
            return ""
        if not self.pieces:
            return (f"{self.file_s:.1f} s, longer than the model's {self.window_s:.2f} s window, and no speech "
                    f"above {settings.energy_threshold_db:g} dBFS in it: nothing classified")
        return (f"{self.file_s:.1f} s, longer than the model's {self.window_s:.2f} s window: "
                f"{len(self.pieces)} utterance(s), each checked for speech and classified one by one, split as "
                f"ser-edge listen splits its input "
                f"(speech above {settings.energy_threshold_db:g} dBFS, windows of at most {self.window_s:.2f} s)")


def split(signal: np.ndarray, rate: int, window: int, settings: SegmenterSettings = SegmenterSettings()) -> Pieces:
    """The whole ``signal`` if it fits ``window`` samples, else its utterances."""
    file_s, window_s = signal.shape[0] / rate, window / rate
    if signal.shape[0] <= window:
        return Pieces([Piece(signal, 0.0, file_s)], file_s, window_s, segmented=False)
    segmenter = Segmenter(rate, window, settings)
    segments = segmenter.push(signal) + segmenter.flush()
    pieces = [Piece(s.samples, s.start_s, s.duration_s) for s in segments]
    return Pieces(pieces, file_s, window_s, segmented=True)
