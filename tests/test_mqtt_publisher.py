"""The publisher's promise to the audio thread: ``publish`` never waits for the network.

A real TCP server that accepts connections and never answers (a broker that
hung) keeps the publisher thread waiting for its CONNACK; ``publish`` must
still return, keep the newest events and count the rest.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from ser_edge.edge.ha_discovery import Announcement
from ser_edge.edge.mqtt_publisher import MqttPublisher
from ser_edge.edge.mqtt_settings import MqttSettings


@pytest.fixture
def silent_server():
    """127.0.0.1:<port> that accepts and then says nothing."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    connected = threading.Event()

    def accept() -> None:
        try:
            accepted.append(server.accept()[0])
            connected.set()
        except OSError:  # closed at teardown
            pass

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1], connected
    server.close()
    for connection in accepted:
        connection.close()


def record(number: int) -> dict:
    return {"label": "happy", "start_s": float(number), "probabilities": {"happy": 1.0}}


def test_publish_returns_while_the_broker_hangs(silent_server):
    port, connected = silent_server
    settings = MqttSettings(host="127.0.0.1", port=port, device_id="hung", queue_size=3)
    publisher = MqttPublisher(settings, Announcement(device_id="hung", labels=("happy",), model="m"))
    publisher.start(wait_s=0)
    assert connected.wait(30), "the publisher never reached the server"
    for number in range(5):
        publisher.publish(record(number))
    assert publisher.dropped == 2
    with publisher._lock:
        queued = [json.loads(payload)["start_s"] for payload in publisher._queue]
    assert queued == [2.0, 3.0, 4.0]  # the newest are kept
    publisher.stop()
    assert publisher.summary()["unsent"] == 3 and publisher.summary()["published"] == 0


def test_listen_without_mqtt_never_imports_paho():
    """MQTT costs nothing (memory, start-up) to a daemon that does not use it."""
    code = textwrap.dedent("""
        import sys
        from ser_edge.edge import cli, daemon, settings
        s = settings.load_settings(None, {})
        assert daemon.mqtt_settings_of(s) is None
        print(sorted(m for m in sys.modules if m.split('.')[0] == 'paho'))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
