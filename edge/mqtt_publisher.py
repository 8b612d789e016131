"""Publish each utterance to an MQTT broker for Home Assistant, without ever holding up the audio.

The audio thread only appends to a bounded queue (``publish``): no socket, no
DNS, no paho lock. One thread of ours owns the paho client and does everything
else: connect, announce (discovery, then "online"), send queued events at QoS 1,
and reconnect with back-off when the broker goes away. When the queue is full
the oldest event is dropped and counted; listening goes on whatever the broker
does. The one exception is a broker that refuses the credentials before any
connection has worked: that is a configuration mistake, reported as one line.

Delivery is counted on the broker's PUBACK. Events handed to paho when the link
dies stay in paho (it resends them after reconnecting); at most
``MAX_IN_FLIGHT`` of them, so memory stays bounded.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque

from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.ha_discovery import OFFLINE, ONLINE, Announcement
from ser_edge.edge.mqtt_settings import PASSWORD_ENV, USERNAME_ENV, MqttSettings

log = logging.getLogger(__name__)

RECONNECT_DELAYS_S = (0.5, 1, 2, 4, 8, 16, 30)
FIRST_CONNECT_WAIT_S = 10.0  # start(): how long to wait for the broker's first answer before listening anyway
LOOP_S = 0.1  # how long a queued event may wait for the publisher thread
KEEPALIVE_S = 30  # a silently dead link is noticed within 1.5x this
MAX_IN_FLIGHT = 20
FLUSH_S = 5.0  # at exit: time given to queued events and the "offline" message
WARN_INTERVAL_S = 60.0
CREDENTIAL_REFUSALS = {134, 135}  # "Bad user name or password", "Not authorized" (MQTT 3.1.1 codes 4 and 5)


def import_paho():
    try:
        from paho.mqtt import client as paho
    except ImportError:
        raise SerEdgeError("--mqtt needs paho-mqtt 2.x: pip install 'paho-mqtt>=2.1,<3'") from None
    if not hasattr(paho, "CallbackAPIVersion"):
        raise SerEdgeError("--mqtt needs paho-mqtt 2.x, found 1.x: pip install 'paho-mqtt>=2.1,<3'")
    return paho


class MqttPublisher:
    def __init__(self, settings: MqttSettings, announcement: Announcement, *, clock=time.monotonic):
        self.settings = settings
        self.announcement = announcement
        self.published = 0  # events the broker acknowledged
        self.dropped = 0  # events pushed out of the full queue
        self.unsent = 0  # events still queued or unacknowledged at exit
        self.connects = 0
        self.failure: SerEdgeError | None = None  # fatal: the daemon stops with it
        self._clock = clock
        self._lock = threading.Lock()  # guards _queue and dropped: the only state the audio thread touches
        self._queue: deque[str] = deque()
        self._stop = threading.Event()
        self._answered = threading.Event()  # the first connection attempt has an outcome
        self._thread: threading.Thread | None = None
        # Publisher-thread state.
        self._linked = False  # a socket to the broker exists
        self._connected = False  # the broker accepted us
        self._announce = False
        self._in_flight: set[int] = set()
        self._failures = 0
        self._refusal: str | None = None
        self._reported_drops = 0
        self._last_warning: float | None = None
        self._client = self._make_client()

    def _make_client(self):
        paho = import_paho()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"ser-edge-{self.settings.device_id}",
                             protocol=paho.MQTTv311, clean_session=True)
        # The broker publishes this if the link dies without a DISCONNECT (kill -9, power cut, network loss).
        client.will_set(self.announcement.availability_topic, OFFLINE, qos=1, retain=True)
        if self.settings.username:
            client.username_pw_set(self.settings.username, self.settings.password)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        self._paho = paho
        return client

    # --- the audio thread's side --------------------------------------------------------

    def start(self, wait_s: float = FIRST_CONNECT_WAIT_S) -> None:
        """Start publishing; wait (bounded) for the broker's first answer so bad credentials stop us before READY."""
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._thread.start()
        if not self._answered.wait(wait_s):
            log.warning("MQTT broker %s has not answered in %.0f s; listening anyway, events are queued",
                        self.settings.broker, wait_s)
        if self.failure is not None:
            raise self.failure

    def publish(self, record: dict) -> None:
        """Queue one result line for the broker; never blocks on the network."""
        payload = json.dumps(self.announcement.event(record), allow_nan=False)
        with self._lock:
            if len(self._queue) >= self.settings.queue_size:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(payload)

    def stop(self) -> None:
        """Send what can be sent within FLUSH_S, announce "offline", disconnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(FLUSH_S + 5.0)
        with self._lock:
            self.unsent = len(self._queue) + len(self._in_flight)
        if self.unsent:
            log.warning("MQTT: %d event(s) not delivered to %s at exit", self.unsent, self.settings.broker)

    def summary(self) -> dict:
        return {"broker": self.settings.broker, "published": self.published, "dropped": self.dropped,
                "unsent": self.unsent, "connects": self.connects}

    # --- the publisher thread -----------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._linked and not self._open_link():
                continue
            rc = self._client.loop(timeout=LOOP_S)
            if rc != self._paho.MQTT_ERR_SUCCESS:
                self._link_lost(self._refusal or self._paho.error_string(rc).rstrip(".").lower())
                continue
            if self._connected:
                if self._announce:
                    self._send_announcement()
                self._send_queued()
            self._report_drops()
        self._finish()

    def _open_link(self) -> bool:
        try:
            self._client.connect(self.settings.host, self.settings.port, keepalive=KEEPALIVE_S)
        except (OSError, ValueError) as error:  # refused, unreachable, DNS, timeout
            self._link_lost(f"cannot connect: {error.strerror or error}" if isinstance(error, OSError) else str(error))
            return False
        self._linked = True
        return True

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refusal = f"refused: {reason_code}"
            if reason_code.value in CREDENTIAL_REFUSALS and self.connects == 0:
                self.failure = SerEdgeError(self._credentials_message(str(reason_code)))
                self._stop.set()
            self._answered.set()
            return
        self._connected, self._announce, self._refusal = True, True, None
        self.connects += 1
        if self._failures:
            log.info("MQTT broker %s: connected again after %d failed attempt(s); %d event(s) queued, %d dropped "
                     "so far", self.settings.broker, self._failures, len(self._queue), self.dropped)
        else:
            log.info("MQTT broker %s: connected as %s", self.settings.broker, self.announcement.unique_id)
        self._failures = 0
        self._answered.set()

    def _credentials_message(self, reason: str) -> str:
        if self.settings.username is None:
            return (f"MQTT broker {self.settings.broker} refused a connection without credentials ({reason}); set "
                    f"mqtt_credentials to a file with username and password, or {USERNAME_ENV} and {PASSWORD_ENV}")
        return (f"MQTT broker {self.settings.broker} refused user {self.settings.username!r} ({reason}); check the "
                f"username and password in {self.settings.credentials_from}")

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if mid in self._in_flight:
            self._in_flight.discard(mid)
            self.published += 1

    def _send_announcement(self) -> None:
        # Retained, so Home Assistant finds the entity whenever it (re)starts; config before "online".
        self._client.publish(self.announcement.config_topic, json.dumps(self.announcement.config()), qos=1,
                             retain=True)
        self._client.publish(self.announcement.availability_topic, ONLINE, qos=1, retain=True)
        self._announce = False

    def _send_queued(self) -> None:
        while len(self._in_flight) < MAX_IN_FLIGHT:
            with self._lock:
                if not self._queue:
                    return
                payload = self._queue.popleft()
            info = self._client.publish(self.announcement.state_topic, payload, qos=1)
            # NO_CONN: the link died just now; paho keeps the message and resends it after reconnecting.
            if info.rc not in (self._paho.MQTT_ERR_SUCCESS, self._paho.MQTT_ERR_NO_CONN):
                with self._lock:
                    self._queue.appendleft(payload)
                return
            self._in_flight.add(info.mid)

    def _link_lost(self, reason: str) -> None:
        self._linked = self._connected = False
        self._answered.set()
        if self._stop.is_set():
            return
        delay = RECONNECT_DELAYS_S[min(self._failures, len(RECONNECT_DELAYS_S) - 1)]
        # One warning per outage; the retries themselves are debug lines.
        level = logging.WARNING if self._failures == 0 else logging.DEBUG
        log.log(level, "MQTT broker %s: %s; retrying in %.1f s, still listening (up to %d events are queued)",
                self.settings.broker, reason, delay, self.settings.queue_size)
        self._failures += 1
        self._refusal = None
        self._stop.wait(delay)

    def _report_drops(self) -> None:
        if self.dropped == self._reported_drops:
            return
        now = self._clock()
        if self._last_warning is None or now - self._last_warning >= WARN_INTERVAL_S:
            log.warning("MQTT: %d event(s) dropped since the last report (queue of %d full, broker %s), %d in all; "
                        "still listening", self.dropped - self._reported_drops, self.settings.queue_size,
                        self.settings.broker, self.dropped)
            self._last_warning, self._reported_drops = now, self.dropped

    def _finish(self) -> None:
        if self.failure is not None or not self._connected:
            self._report_drops()
            return
        deadline = self._clock() + FLUSH_S
        while (self._queue or self._in_flight) and self._connected and self._clock() < deadline:
            self._send_queued()
            if self._client.loop(timeout=LOOP_S) != self._paho.MQTT_ERR_SUCCESS:
                self._connected = False
        self._report_drops()
        if not self._connected:
            return
        # A clean DISCONNECT suppresses the will, so "offline" is said explicitly.
        offline = self._client.publish(self.announcement.availability_topic, OFFLINE, qos=1, retain=True)
        while not offline.is_published() and self._clock() < deadline + 2.0:
            if self._client.loop(timeout=LOOP_S) != self._paho.MQTT_ERR_SUCCESS:
                break
        self._client.disconnect()
