"""``ser-edge listen`` settings: one TOML file, command-line flags override it.

Validated once here and frozen; nothing downstream sees argparse or TOML.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path

from ser_edge.edge.audio import MAX_RATE, MIN_RATE
from ser_edge.edge.classifier import MAX_THREADS
from ser_edge.edge.command import LOG_LEVELS
from ser_edge.edge.config import LEVELS
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.paths import read_regular_file
from ser_edge.edge.registry import DEFAULT_MODEL
from ser_edge.edge import speech_gate
from ser_edge.edge.segmenter import SegmenterSettings

# Inclusive bounds of every number. -100 dBFS, not lower: level_db() floors digital silence
# at -120 dBFS, so a threshold there would call silence speech.
BOUNDS = {
    "threads": (1, MAX_THREADS),
    "input_rate": (MIN_RATE, MAX_RATE),
    "duration_s": (0.001, 1e9),
    "energy_threshold_db": (-100.0, 0.0),
    "min_speech_s": (0.0, 60.0),
    "max_silence_s": (0.02, 60.0),
    "mqtt_queue": (1, 100_000),
    "speech_threshold": (0.0, 1.0),
    "uncertain_below": (0.0, 1.0),
    "speaker_min_utterances": (1, 1_000_000),
}
MAX_CONFIG_BYTES = 1024 * 1024
OPTIONAL = {"input_rate", "duration_s", "uncertain_below"}
UNITS = {"input_rate": " Hz", "duration_s": " s", "energy_threshold_db": " dBFS", "min_speech_s": " s",
         "max_silence_s": " s"}


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
    speech_threshold: float = speech_gate.DEFAULT_THRESHOLD  # Silero speech probability a segment needs
    uncertain_below: float | None = None  # None: the threshold the model file carries
    level: str = "normalised"  # "as-recorded": ignore the model's level_reference (edge/classifier.py)
    # Models with per-speaker statistics (edge/speaker_stats.py): where the running estimate is kept across
    # restarts ("" or None: in memory only), and how many utterances it needs before it replaces the pooled one.
    speaker_state: str | None = None
    speaker_min_utterances: int = 16
    log_level: str = "info"
    # Home Assistant over MQTT (edge/mqtt_settings.py): off unless a broker URL is given.
    mqtt: str | None = None  # mqtt://HOST[:PORT]; "" or None: no MQTT
    mqtt_credentials: str | None = None  # TOML file with username and password
    mqtt_device_id: str | None = None  # default: the host name
    mqtt_discovery_prefix: str = "homeassistant"
    mqtt_queue: int = 1000  # events kept while the broker is unreachable

    def __post_init__(self) -> None:
        for key, (low, high) in BOUNDS.items():
            value = getattr(self, key)
            if value is None and key in OPTIONAL:
                continue
            # Every number is bounded here: inf, NaN or 2**63 would otherwise fail deep inside (after READY).
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or not low <= value <= high:
                raise SerEdgeError(f"{key} must be in [{low:g}, {high:g}]{UNITS.get(key, '')}, got {value!r}")
        if self.level not in LEVELS:
            raise SerEdgeError(f"level must be one of {', '.join(LEVELS)}, got {self.level!r}")
        if self.log_level not in LOG_LEVELS:
            raise SerEdgeError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")

    @property
    def segmenter(self) -> SegmenterSettings:
        return SegmenterSettings(self.energy_threshold_db, self.min_speech_s, self.max_silence_s)


KEYS = tuple(f.name for f in dataclasses.fields(ListenSettings))  # the TOML keys, and the flags that override them
_TYPES = typing.get_type_hints(ListenSettings)
_INT_KEYS = {key for key in KEYS if int in (_TYPES[key], *typing.get_args(_TYPES[key]))}
_NUMBER_KEYS = {key for key in KEYS if float in (_TYPES[key], *typing.get_args(_TYPES[key]))}


def load_settings(config_path: str | Path | None, overrides: dict) -> ListenSettings:
    """Settings from the TOML file (if any) with non-None ``overrides`` on top."""
    values: dict = {}
    if config_path is not None:
        values.update(read_config(Path(config_path)))
    values.update({key: value for key, value in overrides.items() if value is not None})
    return ListenSettings(**values)


def read_config(path: Path) -> dict:
    try:
        data = tomllib.loads(read_regular_file(path, "config file", MAX_CONFIG_BYTES).decode())
    except UnicodeDecodeError as error:
        raise SerEdgeError(f"{path}: cannot read config ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise SerEdgeError(f"{path}: invalid TOML ({error})") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise SerEdgeError(f"{path}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(KEYS))}")
    for key, value in data.items():
        if key in _INT_KEYS and not (isinstance(value, int) and not isinstance(value, bool)):
            raise SerEdgeError(f"{path}: {key} must be an integer, got {value!r}")
        if key in _NUMBER_KEYS and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            raise SerEdgeError(f"{path}: {key} must be a number, got {value!r}")
        if key not in _INT_KEYS | _NUMBER_KEYS and key != "device" and not isinstance(value, str):
            raise SerEdgeError(f"{path}: {key} must be a string, got {value!r}")
        if key == "device" and (not isinstance(value, (str, int)) or isinstance(value, bool)):
            raise SerEdgeError(f"{path}: device must be a name or an index, got {value!r}")
    if "device" in data:
        data["device"] = str(data["device"])
    return data
