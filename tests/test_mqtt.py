"""``ser-edge listen --mqtt`` against a real Mosquitto broker, observed by a real paho subscriber.

Each test starts its own broker on a free loopback port (tests/mqtt_tools.py)
and runs the real daemon on espeak-ng speech with the shipped model.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

from ser_edge.edge.ha_discovery import UNCERTAIN, Announcement
from ser_edge.edge.model_file import read_metadata
from ser_edge.edge.mqtt_settings import default_device_id, parse_broker_url, read_credentials_file
from ser_edge.edge.settings import load_settings
from tests.daemon_tools import SER_EDGE, assert_one_clear_error, pcm_bytes, strict_lines, summary_of
from tests.fixtures import RATE, SENTENCES, espeak, model_path, speech_with_pauses
from tests.mqtt_tools import Broker, LiveDaemon, Observer, free_port, needs_mosquitto

pytestmark = needs_mosquitto
USER, PASSWORD = "ser-edge", "correct horse battery"


def topics(device_id: str) -> dict[str, str]:
    return {"config": f"homeassistant/event/{device_id}/emotion/config",
            "state": f"ser-edge/{device_id}/emotion", "availability": f"ser-edge/{device_id}/availability"}


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    return speech_with_pauses(tmp_path_factory.mktemp("speech"))[1]


@pytest.fixture(scope="module")
def utterances(tmp_path_factory) -> list[bytes]:
    """One raw PCM block per sentence: speech then 1.5 s of silence, so each block ends one utterance."""
    folder = tmp_path_factory.mktemp("utterances")
    silence = np.zeros(round(1.5 * RATE), dtype=np.float32)
    return [pcm_bytes(np.concatenate([espeak(text, folder / f"{i}.wav"), silence]))
            for i, text in enumerate(SENTENCES)]


@pytest.fixture
def broker(tmp_path):
    running = Broker(tmp_path).start()
    yield running
    running.stop()


def run_file(wav, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*SER_EDGE, "listen", "--input", str(wav), *args], capture_output=True, text=True,
                          timeout=180, env=env)


def test_discovery_events_and_availability_from_a_file_run(broker, speech_wav):
    observer = Observer(broker.port)
    device = "file-run"
    done = run_file(speech_wav, "--mqtt", broker.url, "--mqtt-device-id", device)
    assert done.returncode == 0, done.stderr
    lines = strict_lines(done.stdout)
    assert len(lines) == len(SENTENCES)
    names = topics(device)
    events = [json.loads(payload) for payload, _ in observer.wait_for(names["state"], len(lines))]
    observer.wait_for(names["availability"], 2)
    observer.close()

    # Every result line arrives whole, as an HA event: event_type first, the line's keys as attributes.
    assert events == [{"event_type": line["label"], **line} for line in lines]
    assert [payload for payload, _ in observer.on(names["availability"])] == ["online", "offline"]
    assert summary_of(done.stderr)["mqtt"] == {"broker": broker.url.removeprefix("mqtt://"),
                                               "published": len(lines), "dropped": 0, "unsent": 0, "connects": 1}

    # A client that subscribes afterwards (Home Assistant restarting) gets the entity and "offline", retained.
    late = Observer(broker.port)
    (config_payload, config_retained), = late.wait_for(names["config"], 1)
    (availability, availability_retained), = late.wait_for(names["availability"], 1)
    late.close()
    assert config_retained and availability_retained and availability == "offline"
    assert late.on(names["state"]) == [], "events must not be retained: HA would fire them again"
    config = json.loads(config_payload)
    assert config["event_types"] == [*read_metadata(model_path("ravdess"))["label_names"], UNCERTAIN]
    assert config["state_topic"] == names["state"]
    assert config["availability_topic"] == names["availability"]
    assert config["unique_id"] == f"ser_edge_{device}_emotion"
    assert config["device"]["identifiers"] == [f"ser_edge_{device}"]
    assert {line["label"] for line in lines} <= set(config["event_types"])


@pytest.mark.parametrize("how", ["term", "kill"])
def test_availability_online_while_listening_offline_after(broker, utterances, how):
    """SIGTERM: the daemon says "offline" itself; kill -9: the broker sends the last will."""
    observer = Observer(broker.port)
    names = topics(default_device_id())  # no --mqtt-device-id: the host name
    daemon = LiveDaemon([*SER_EDGE, "listen", "--input", "-", "--mqtt", broker.url])
    try:
        observer.wait_for(names["availability"], 1, "availability online")
        assert [payload for payload, _ in observer.on(names["availability"])] == ["online"]
        line = daemon.feed(utterances[0])
        (event,) = [json.loads(payload) for payload, _ in observer.wait_for(names["state"], 1)]
        assert event == {"event_type": line["label"], **line}
        code = daemon.finish(how)
    finally:
        daemon.kill()
    observer.wait_for(names["availability"], 2, "availability offline")
    observer.close()
    assert [payload for payload, _ in observer.on(names["availability"])] == ["online", "offline"]
    if how == "term":
        assert code == 0, daemon.stderr_text
        assert summary_of(daemon.stderr_text)["mqtt"]["published"] == 1
    else:
        assert code == -9
    late = Observer(broker.port)
    assert late.wait_for(names["availability"], 1) == [("offline", True)]
    late.close()


def test_broker_restart_mid_stream(tmp_path, utterances):
    """Listening never stops; the newest queued events are sent after the restart, the rest are counted."""
    broker = Broker(tmp_path, persistent=True).start()
    # A persistent session: the broker keeps what arrives while the observer is reconnecting.
    observer = Observer(broker.port, client_id="observer", persistent=True)
    names, queue_size = topics("restart"), 2
    daemon = LiveDaemon([*SER_EDGE, "listen", "--input", "-", "--mqtt", broker.url, "--mqtt-device-id", "restart",
                         "--mqtt-queue", str(queue_size)])
    try:
        observer.wait_for(names["availability"], 1, "availability online")
        daemon.feed(utterances[0])
        observer.wait_for(names["state"], 1)
        broker.stop()
        daemon.wait_log("retrying in")  # the daemon knows the broker is gone: events now queue
        while_down = [daemon.feed(utterances[i % len(utterances)]) for i in range(4)]
        assert len(while_down) == 4  # one result line per utterance while the broker is down
        broker.start()
        daemon.wait_log("connected again")
        daemon.feed(utterances[1])
        expected = [daemon.results[i] for i in (0, 3, 4, 5)]  # the first, the newest two queued, the last
        observer.wait_for(names["state"], len(expected), "the queued and the new events")
        code = daemon.finish("eof")
    finally:
        daemon.kill()
        observer.close()
        broker.stop()
    assert code == 0, daemon.stderr_text
    received = []
    for event in observer.events(names["state"]):  # a resend after a lost PUBACK may repeat one
        if event not in received:
            received.append(event)
    assert received == [{"event_type": line["label"], **line} for line in expected]
    summary = summary_of(daemon.stderr_text)
    assert summary["utterances"] == 6
    assert summary["mqtt"]["dropped"] == 4 - queue_size
    assert summary["mqtt"]["published"] == len(expected)
    assert summary["mqtt"]["unsent"] == 0
    assert summary["mqtt"]["connects"] == 2
    assert "2 event(s) dropped" in daemon.stderr_text


def test_no_broker_keeps_listening_and_counts_unsent(speech_wav):
    done = run_file(speech_wav, "--mqtt", f"mqtt://127.0.0.1:{free_port()}", "--mqtt-device-id", "nobroker")
    assert done.returncode == 0, done.stderr
    assert len(strict_lines(done.stdout)) == len(SENTENCES)
    assert "cannot connect" in done.stderr and "still listening" in done.stderr
    mqtt = summary_of(done.stderr)["mqtt"]
    assert (mqtt["published"], mqtt["unsent"], mqtt["connects"]) == (0, len(SENTENCES), 0)


def credentials_toml(path, user: str, password: str):
    path.write_text(f'username = "{user}"\npassword = "{password}"\n')
    path.chmod(0o600)
    return path


def credentials_by(source: str, folder, user: str, password: str) -> tuple[list[str], dict]:
    """The daemon's extra arguments and environment for each way credentials reach it ("none": no way)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("SER_EDGE_MQTT_") and key != "CREDENTIALS_DIRECTORY"}
    if source == "none":
        return [], env
    if source == "file":
        return ["--mqtt-credentials", str(credentials_toml(folder / "mqtt.toml", user, password))], env
    if source == "systemd":  # what LoadCredential=mqtt:... gives the service
        credentials_toml(folder / "mqtt", user, password)
        return [], {**env, "CREDENTIALS_DIRECTORY": str(folder)}
    return [], {**env, "SER_EDGE_MQTT_USERNAME": user, "SER_EDGE_MQTT_PASSWORD": password}


@pytest.mark.parametrize("source", ["file", "systemd", "environment"])
def test_credentials_reach_the_broker(tmp_path, speech_wav, source):
    broker = Broker(tmp_path, users={USER: PASSWORD}).start()
    try:
        observer = Observer(broker.port, auth=(USER, PASSWORD))
        args, env = credentials_by(source, tmp_path, USER, PASSWORD)
        done = run_file(speech_wav, "--mqtt", broker.url, "--mqtt-device-id", "auth", *args, env=env)
        assert done.returncode == 0, done.stderr
        observer.wait_for(topics("auth")["state"], len(SENTENCES))
        observer.close()
    finally:
        broker.stop()
    assert PASSWORD not in done.stderr


@pytest.mark.parametrize("source", ["file", "systemd", "environment", "none"])
def test_wrong_credentials_are_one_clear_line(tmp_path, speech_wav, source):
    broker = Broker(tmp_path, users={USER: PASSWORD}).start()
    try:
        args, env = credentials_by(source, tmp_path, USER, "wrong password")
        done = run_file(speech_wav, "--mqtt", broker.url, "--mqtt-device-id", "auth", *args, env=env)
    finally:
        broker.stop()
    assert_one_clear_error(done, "refused")
    assert done.stdout == "", "it must stop before listening"
    assert "wrong password" not in done.stderr
    expected = "without credentials" if source == "none" else f"refused user {USER!r}"
    assert expected in done.stderr


# --- the README's "Home Assistant" section, as a user copies it -----------------------------

ROOT = Path(__file__).resolve().parents[1]


def section(path: Path, heading: str) -> str:
    """From ``heading`` to the next heading of the same level or higher."""
    text = path.read_text()
    start = text.index(f"{heading}\n")
    level = heading.split()[0]
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", text[start + len(heading):], re.M)]
    return text[start:start + len(heading) + ends[0]] if ends else text[start:]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^ *```{language}\n(.*?)^ *```", text, re.M | re.S)


def documented_toml() -> list[str]:
    return [textwrap.dedent(block) for block in blocks(section(ROOT / "README.md", "## Home Assistant"), "toml")
            + blocks(section(ROOT / "systemd" / "INSTALL.md", "### Home Assistant over MQTT"), "toml")]


def test_documented_toml_is_accepted(tmp_path):
    found = documented_toml()
    assert len(found) == 4  # credentials and config, in the README and in INSTALL.md
    for number, text in enumerate(found):
        path = tmp_path / f"{number}.toml"
        path.write_text(text)
        if "password" in text:
            assert read_credentials_file(path)[0] == "ser-edge"
        else:
            settings = load_settings(path, {})
            assert parse_broker_url(settings.mqtt) == ("homeassistant.local", 1883)
            assert settings.mqtt_device_id == "kitchen"


def test_documented_names_are_the_published_ones():
    """The entity id of the example automation, and the topics of the table, are what the daemon announces."""
    readme = section(ROOT / "README.md", "## Home Assistant")
    announcement = Announcement(device_id="kitchen", labels=("angry",), model="m")
    config = announcement.config()
    # Home Assistant names the entity after its device and itself, slugified.
    entity = "event." + re.sub(r"[^a-z0-9]+", "_", f"{config['device']['name']} {config['name']}".lower())
    assert f"entity_id: {entity}\n" in readme
    for topic in (announcement.config_topic, announcement.availability_topic, announcement.state_topic):
        assert f"| `{topic}` |" in readme


def test_the_documented_by_hand_run_reaches_the_broker(tmp_path):
    """The README's commands as written, the broker's address swapped for a local Mosquitto."""
    readme = section(ROOT / "README.md", "## Home Assistant")
    credentials = blocks(readme, "toml")[0]
    password = tomllib.loads(credentials)["password"]
    (command,) = [line for line in blocks(readme, "sh")[0].splitlines() if " listen " in line]
    broker = Broker(tmp_path, users={"ser-edge": password}).start()
    try:
        observer = Observer(broker.port, auth=("ser-edge", password))
        espeak("I can't believe you did this to me, I am furious.", tmp_path / "hello.wav")
        (tmp_path / "mqtt.toml").write_text(credentials)
        argv = shlex.split(command.replace("mqtt://homeassistant.local:1883", broker.url))
        assert argv[0] == ".venv/bin/ser-edge"
        done = subprocess.run([*SER_EDGE, *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        (line,) = strict_lines(done.stdout)
        (event,) = [json.loads(payload) for payload, _ in observer.wait_for(topics("kitchen")["state"], 1)]
        observer.close()
    finally:
        broker.stop()
    assert event["event_type"] == line["label"]
