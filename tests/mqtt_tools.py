"""A real Mosquitto broker on a free loopback port, a paho observer, and a live ``ser-edge listen``.

Nothing here is faked: the broker is Debian's ``mosquitto`` with a generated
config (and ``mosquitto_passwd`` for users), the observer a paho client that
records every message it is sent. Waits are for conditions, with timeouts;
nothing asserts how fast anything happened.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
WAIT_S = 60.0

needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt install mosquitto)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, timeout: float = WAIT_S, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Broker:
    """mosquitto on 127.0.0.1:<free port>; ``users`` switches anonymous access off."""

    def __init__(self, folder: Path, *, users: dict[str, str] | None = None, persistent: bool = False):
        self.folder = folder
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.log = folder / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1", f"allow_anonymous {'false' if users else 'true'}",
                 "log_dest stderr", "log_type all"]
        if os.geteuid() == 0:  # else mosquitto switches to the 'mosquitto' user and cannot read this folder
            lines.append("user root")
        if users:
            if MOSQUITTO_PASSWD is None:
                pytest.skip("mosquitto_passwd is not installed (apt install mosquitto)")
            passwords = folder / "passwords"
            for number, (user, password) in enumerate(users.items()):
                create = ["-c"] if number == 0 else []
                subprocess.run([MOSQUITTO_PASSWD, *create, "-b", str(passwords), user, password], check=True,
                               capture_output=True, timeout=30)
            lines.append(f"password_file {passwords}")
        if persistent:  # sessions and queued messages survive a restart, as on a real broker
            lines += ["persistence true", f"persistence_location {folder}/"]
        self.config = folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> "Broker":
        log = open(self.log, "ab")
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=log, stderr=log)
        log.close()

        def accepting() -> bool:
            assert self.process.poll() is None, f"mosquitto exited:\n{self.log.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return False
            return True

        wait_until(accepting, what=f"mosquitto on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None


class Observer:
    """A paho subscriber that records (topic, payload, retain) of everything under ``topics``."""

    def __init__(self, port: int, topics=("homeassistant/#", "ser-edge/#"), *, client_id: str = "",
                 persistent: bool = False, auth: tuple[str, str] | None = None):
        from paho.mqtt import client as paho

        self.messages: list[tuple[str, str, bool]] = []
        self._lock = threading.Lock()
        self._topics = topics
        self._subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=not persistent)
        if auth:
            self.client.username_pw_set(*auth)
        self.client.reconnect_delay_set(1, 2)  # follows a broker restart quickly
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(WAIT_S), "the observer was not subscribed"

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe([(topic, 1) for topic in self._topics])

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload.decode(), bool(message.retain)))

    def on(self, topic: str) -> list[tuple[str, bool]]:
        with self._lock:
            return [(payload, retain) for name, payload, retain in self.messages if name == topic]

    def events(self, topic: str) -> list[dict]:
        return [json.loads(payload) for payload, _ in self.on(topic)]

    def wait_for(self, topic: str, count: int, what: str = "") -> list[tuple[str, bool]]:
        return wait_until(lambda: len(self.on(topic)) >= count and self.on(topic),
                          what=what or f"{count} message(s) on {topic}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class LiveDaemon:
    """A running ``ser-edge listen --input -``: feed PCM, read result lines and log lines as they come."""

    def __init__(self, command: list[str], env: dict | None = None):
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self.results: list[dict] = []
        self._readers = [threading.Thread(target=self._read, args=(self.process.stdout, self.lines.put), daemon=True),
                         threading.Thread(target=self._read, args=(self.process.stderr, self.stderr.append),
                                          daemon=True)]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, sink) -> None:
        for raw in stream:
            sink(raw.decode())

    def feed(self, pcm: bytes) -> dict:
        """Write one utterance (speech then silence) and return its result line."""
        self.process.stdin.write(pcm)
        self.process.stdin.flush()
        try:
            line = self.lines.get(timeout=WAIT_S)
        except queue.Empty:
            raise AssertionError(f"no result line for the utterance; stderr:\n{self.stderr_text}") from None
        self.results.append(json.loads(line))
        return self.results[-1]

    def wait_log(self, fragment: str) -> str:
        return wait_until(lambda: next((line for line in self.stderr if fragment in line), None),
                          what=f"a log line with {fragment!r}")

    def finish(self, how: str = "eof") -> int:
        """End it: close stdin ('eof'), SIGTERM ('term') or SIGKILL ('kill'); return the exit code."""
        if how == "eof":
            self.process.stdin.close()
        else:
            self.process.send_signal(signal.SIGTERM if how == "term" else signal.SIGKILL)
        code = self.process.wait(timeout=WAIT_S)
        for reader in self._readers:  # every line it wrote has been read
            reader.join(WAIT_S)
        return code

    @property
    def stderr_text(self) -> str:
        return "".join(self.stderr)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT_S)
