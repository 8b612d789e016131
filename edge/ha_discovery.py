"""Home Assistant MQTT discovery for one ``event`` entity: its topics and payloads, nothing else.

Topics for device id ``kitchen`` (prefix ``homeassistant``)::

    homeassistant/event/kitchen/emotion/config   retained: the entity, its event_types and device
    ser-edge/kitchen/availability                retained: "online" / "offline" (the last will)
    ser-edge/kitchen/emotion                     one JSON event per utterance, never retained

An event payload is the daemon's JSON line with ``event_type`` in front: Home
Assistant takes ``event_type`` as the event and every other key (probabilities,
latency_s, ...) as the entity's attributes. Events are not retained: a broker
or Home Assistant restart must not fire an old utterance again.
"""

from __future__ import annotations

from dataclasses import dataclass

from ser_edge.edge import __version__

# The classifier's "not sure" state (issue 13, part 1): announced with the labels.
from ser_edge.edge.judge import UNCERTAIN  # the label the judge gives; announced as an event type
ONLINE, OFFLINE = "online", "offline"
TOPIC_ROOT = "ser-edge"
OBJECT_ID = "emotion"


@dataclass(frozen=True)
class Announcement:
    """What this daemon tells Home Assistant about itself."""

    device_id: str
    labels: tuple[str, ...]
    model: str  # e.g. "ravdess-dynamic.tflite (ravdess)"
    discovery_prefix: str = "homeassistant"

    @property
    def event_types(self) -> list[str]:
        return [*self.labels, *([] if UNCERTAIN in self.labels else [UNCERTAIN])]

    @property
    def config_topic(self) -> str:
        return f"{self.discovery_prefix}/event/{self.device_id}/{OBJECT_ID}/config"

    @property
    def state_topic(self) -> str:
        return f"{TOPIC_ROOT}/{self.device_id}/{OBJECT_ID}"

    @property
    def availability_topic(self) -> str:
        return f"{TOPIC_ROOT}/{self.device_id}/availability"

    @property
    def unique_id(self) -> str:
        return f"ser_edge_{self.device_id}_{OBJECT_ID}"

    def config(self) -> dict:
        """The retained discovery payload (MQTT event schema)."""
        return {
            "name": "Emotion",
            "unique_id": self.unique_id,
            "state_topic": self.state_topic,
            "event_types": self.event_types,
            "availability_topic": self.availability_topic,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "qos": 1,
            "icon": "mdi:account-voice",
            "device": {
                "identifiers": [f"ser_edge_{self.device_id}"],
                "name": f"ser-edge {self.device_id}",
                "manufacturer": "ser-edge",
                "model": f"speech emotion recognition, {self.model}",
                "sw_version": __version__,
            },
            "origin": {"name": "ser-edge", "sw_version": __version__},
        }

    def event(self, record: dict) -> dict:
        """The state payload for one result line of ``ser-edge listen``."""
        uncertain = record.get("uncertain") is True or record.get("label") == UNCERTAIN
        return {"event_type": UNCERTAIN if uncertain else record["label"], **record}
