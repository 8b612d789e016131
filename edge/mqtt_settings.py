"""Where ``ser-edge listen`` publishes (``--mqtt mqtt://HOST[:PORT]``) and with which credentials.

Validated once at start-up into a frozen ``MqttSettings``; a bad URL, device id
or credentials file is one line and a non-zero exit before anything listens.
Credentials never come from the command line (argv is visible to every user
through /proc): a TOML file, systemd's ``LoadCredential=mqtt:...``, or the
environment, in that order.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.paths import read_regular_file

DEFAULT_PORT = 1883
DEFAULT_DISCOVERY_PREFIX = "homeassistant"
# The name the unit's LoadCredential= gives the file (systemd/ser-edge.service.d/mqtt.conf).
SYSTEMD_CREDENTIAL = "mqtt"
USERNAME_ENV = "SER_EDGE_MQTT_USERNAME"
PASSWORD_ENV = "SER_EDGE_MQTT_PASSWORD"
MAX_CREDENTIALS_BYTES = 64 * 1024
# Home Assistant's discovery accepts node ids of these characters only.
DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOPIC_PREFIX = re.compile(r"[^#+\s]+")


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int
    device_id: str
    queue_size: int
    discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line or a traceback
    credentials_from: str = "none"  # where they came from, for messages that must not show them

    @property
    def broker(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_broker_url(url: str) -> tuple[str, int]:
    """``mqtt://HOST[:PORT]`` -> (host, port); anything else is one clear line."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:  # a port that is not a number or out of range
        raise SerEdgeError(f"mqtt: {url!r} is not mqtt://HOST[:PORT] ({error})") from None
    if parts.scheme != "mqtt":
        raise SerEdgeError(f"mqtt: {url!r} must start with mqtt:// (plain MQTT, e.g. mqtt://homeassistant.local:1883)")
    if parts.username is not None or parts.password is not None:
        raise SerEdgeError("mqtt: credentials do not belong in the URL (it shows in `ps`); put them in the "
                           f"mqtt_credentials file or in {USERNAME_ENV} / {PASSWORD_ENV}")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise SerEdgeError(f"mqtt: {url!r} is not mqtt://HOST[:PORT]")
    if port == 0:
        raise SerEdgeError(f"mqtt: port must be 1..65535, got 0 in {url!r}")
    return parts.hostname, port or DEFAULT_PORT


def default_device_id() -> str:
    """The host name in the characters discovery allows: stable across restarts, unique per Pi if hostnames are."""
    name = re.sub(r"[^a-z0-9_-]+", "-", socket.gethostname().split(".")[0].lower()).strip("-")
    return name[:64] or "ser-edge"


def check_device_id(device_id: str) -> str:
    if not DEVICE_ID.fullmatch(device_id):
        raise SerEdgeError(f"mqtt_device_id must be 1-64 letters, digits, '_' or '-', got {device_id!r}")
    return device_id


def check_discovery_prefix(prefix: str) -> str:
    if not TOPIC_PREFIX.fullmatch(prefix) or prefix.startswith("/") or prefix.endswith("/"):
        raise SerEdgeError(f"mqtt_discovery_prefix must be a topic without wildcards or outer '/', got {prefix!r}")
    return prefix


def read_credentials_file(path: str | os.PathLike) -> tuple[str, str]:
    """``username = "..."`` and ``password = "..."`` from a small TOML file."""
    try:
        data = tomllib.loads(read_regular_file(path, "MQTT credentials file", MAX_CREDENTIALS_BYTES).decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        # Only where, never the parser's whole message: the file holds a password.
        found = re.search(r"at line \d+", str(error))
        where = f" ({found.group()})" if found else ""
        raise SerEdgeError(f"{path}: not a TOML file with username and password{where}") from None
    unknown = sorted(set(data) - {"username", "password"})
    if unknown:
        raise SerEdgeError(f"{path}: unknown key {unknown[0]!r}; an MQTT credentials file has username and password")
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not username or not isinstance(password, str):
        raise SerEdgeError(f"{path}: needs username = \"...\" and password = \"...\" (strings)")
    return username, password


def find_credentials(path: str | None, environ) -> tuple[str | None, str | None, str]:
    """(username, password, source): the named file, else systemd's credential, else the environment."""
    if path:
        return (*read_credentials_file(path), path)
    systemd_dir = environ.get("CREDENTIALS_DIRECTORY")
    if systemd_dir and (Path(systemd_dir) / SYSTEMD_CREDENTIAL).exists():
        credential = Path(systemd_dir) / SYSTEMD_CREDENTIAL
        return (*read_credentials_file(credential), f"systemd credential {SYSTEMD_CREDENTIAL!r}")
    username, password = environ.get(USERNAME_ENV) or None, environ.get(PASSWORD_ENV)
    if password is not None and username is None:
        raise SerEdgeError(f"{PASSWORD_ENV} is set but {USERNAME_ENV} is not")
    return username, password, ("the environment" if username else "none")


def mqtt_settings(url: str, *, credentials: str | None, device_id: str | None, discovery_prefix: str,
                  queue_size: int, environ=os.environ) -> MqttSettings:
    host, port = parse_broker_url(url)
    username, password, source = find_credentials(credentials, environ)
    return MqttSettings(host=host, port=port, device_id=check_device_id(device_id or default_device_id()),
                        queue_size=queue_size, discovery_prefix=check_discovery_prefix(discovery_prefix),
                        username=username, password=password, credentials_from=source)
