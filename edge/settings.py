"""``ser-edge listen`` settings: one TOML file, command-line flags override it.

Validated once here and frozen; nothing downstream sees argparse or TOML.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

from edge.errors import SerEdgeError
from edge.registry import DEFAULT_MODEL
from edge.segmenter import SegmenterSettings

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class ListenSettings:
    model: str = DEFAULT_MODEL
    threads: int = 1
    device: str | None = None  # PortAudio name or index; None = the default input
    input: str | None = None  # a file, or "-" for raw s16le mono PCM on stdin
    input_rate: int | None = None  # rate of raw stdin PCM (default: the model's)
    jsonl: str | None = None  # also append results to this JSON-lines file ("" or None: no file)
    duration_s: float | None = None  # stop after this much audio
    energy_threshold_db: float = SegmenterSettings.energy_threshold_db
    min_speech_s: float = SegmenterSettings.min_speech_s
    max_silence_s: float = SegmenterSettings.max_silence_s
    log_level: str = "info"

    def __post_init__(self) -> None:
        checks = [
            (self.threads >= 1, f"threads must be >= 1, got {self.threads}"),
            (-120.0 <= self.energy_threshold_db <= 0.0, f"energy_threshold_db must be in [-120, 0] dBFS, got {self.energy_threshold_db}"),
            (self.min_speech_s >= 0.0, f"min_speech_s must be >= 0, got {self.min_speech_s}"),
            (self.max_silence_s > 0.0, f"max_silence_s must be > 0, got {self.max_silence_s}"),
            (self.log_level in LOG_LEVELS, f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"),
            (self.input_rate is None or 1000 <= self.input_rate <= 384000, f"input_rate must be 1000..384000 Hz, got {self.input_rate}"),
            (self.duration_s is None or self.duration_s > 0, f"duration_s must be > 0, got {self.duration_s}"),
        ]
        for ok, message in checks:
            if not ok:
                raise SerEdgeError(message)

    @property
    def segmenter(self) -> SegmenterSettings:
        return SegmenterSettings(self.energy_threshold_db, self.min_speech_s, self.max_silence_s)


_TYPES = {f.name: f.type for f in dataclasses.fields(ListenSettings)}
_NUMBER_KEYS = {"energy_threshold_db", "min_speech_s", "max_silence_s", "duration_s"}
_INT_KEYS = {"threads", "input_rate"}


def load_settings(config_path: str | Path | None, overrides: dict) -> ListenSettings:
    """Settings from the TOML file (if any) with non-None ``overrides`` on top."""
    values: dict = {}
    if config_path is not None:
        values.update(read_config(Path(config_path)))
    values.update({key: value for key, value in overrides.items() if value is not None})
    return ListenSettings(**values)


def read_config(path: Path) -> dict:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SerEdgeError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SerEdgeError(f"{path}: cannot read config ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise SerEdgeError(f"{path}: invalid TOML ({error})") from None
    unknown = sorted(set(data) - set(_TYPES))
    if unknown:
        raise SerEdgeError(f"{path}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_TYPES))}")
    for key, value in data.items():
        if key in _INT_KEYS and not (isinstance(value, int) and not isinstance(value, bool)):
            raise SerEdgeError(f"{path}: {key} must be an integer, got {value!r}")
        if key in _NUMBER_KEYS and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            raise SerEdgeError(f"{path}: {key} must be a number, got {value!r}")
        if key not in _INT_KEYS | _NUMBER_KEYS and key != "device" and not isinstance(value, str):
            raise SerEdgeError(f"{path}: {key} must be a string, got {value!r}")
        if key == "device" and not isinstance(value, (str, int)):
            raise SerEdgeError(f"{path}: device must be a name or an index, got {value!r}")
    if "device" in data:
        data["device"] = str(data["device"])
    return data
