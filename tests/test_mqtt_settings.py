"""MQTT settings: the broker URL, device ids, credentials sources, and their one-line errors."""

from __future__ import annotations

import subprocess

import pytest

from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.mqtt_settings import (PASSWORD_ENV, USERNAME_ENV, default_device_id, find_credentials, mqtt_settings,
                                parse_broker_url)
from ser_edge.edge.settings import load_settings
from tests.daemon_tools import SER_EDGE, assert_one_clear_error


@pytest.mark.parametrize(("url", "expected"), [
    ("mqtt://homeassistant.local", ("homeassistant.local", 1883)),
    ("mqtt://192.168.1.10:1884", ("192.168.1.10", 1884)),
    ("mqtt://[::1]:1883/", ("::1", 1883)),
])
def test_broker_urls(url, expected):
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize(("url", "fragment"), [
    ("http://broker", "must start with mqtt://"),
    ("mqtts://broker", "must start with mqtt://"),
    ("broker:1883", "must start with mqtt://"),
    ("mqtt://user:secret@broker", "do not belong in the URL"),
    ("mqtt://broker:99999", "not mqtt://HOST[:PORT]"),
    ("mqtt://broker:0", "port must be 1..65535"),
    ("mqtt://broker/topic", "not mqtt://HOST[:PORT]"),
    ("mqtt://", "not mqtt://HOST[:PORT]"),
])
def test_bad_broker_urls(url, fragment):
    with pytest.raises(SerEdgeError) as raised:
        parse_broker_url(url)
    assert fragment in str(raised.value)
    assert "secret" not in str(raised.value)


@pytest.mark.parametrize(("hostname", "expected"), [
    ("raspberrypi", "raspberrypi"),
    ("Kitchen-Pi.local", "kitchen-pi"),
    ("pi #2", "pi-2"),
    ("---", "ser-edge"),
])
def test_default_device_id_comes_from_the_host_name(monkeypatch, hostname, expected):
    monkeypatch.setattr("socket.gethostname", lambda: hostname)
    assert default_device_id() == expected


@pytest.mark.parametrize("device_id", ["has space", "a/b", "x" * 65, "wild+"])
def test_bad_device_ids(device_id):
    with pytest.raises(SerEdgeError, match="mqtt_device_id"):
        mqtt_settings("mqtt://broker", credentials=None, device_id=device_id, discovery_prefix="homeassistant",
                      queue_size=10, environ={})


def write(path, text: str):
    path.write_text(text)
    return path


def test_credentials_precedence(tmp_path):
    named = write(tmp_path / "named.toml", 'username = "a"\npassword = "1"\n')
    systemd = tmp_path / "creds"
    systemd.mkdir()
    write(systemd / "mqtt", 'username = "b"\npassword = "2"\n')
    environ = {"CREDENTIALS_DIRECTORY": str(systemd), USERNAME_ENV: "c", PASSWORD_ENV: "3"}
    assert find_credentials(str(named), environ)[:2] == ("a", "1")
    assert find_credentials(None, environ)[:2] == ("b", "2")
    assert find_credentials(None, {USERNAME_ENV: "c", PASSWORD_ENV: "3"})[:2] == ("c", "3")
    assert find_credentials(None, {}) == (None, None, "none")


@pytest.mark.parametrize(("text", "fragment"), [
    ('username = "a"\n', "needs username"),
    ('password = "p4ss"\n', "needs username"),
    ('username = "a"\npassword = "p4ss"\nhost = "x"\n', "unknown key 'host'"),
    ('username = a\npassword = "p4ss"\n', "not a TOML file"),
    ('username = ""\npassword = "p4ss"\n', "needs username"),
])
def test_bad_credentials_files(tmp_path, text, fragment):
    with pytest.raises(SerEdgeError) as raised:
        find_credentials(str(write(tmp_path / "c.toml", text)), {})
    assert fragment in str(raised.value)
    assert "p4ss" not in str(raised.value)


def test_password_without_user_in_the_environment():
    with pytest.raises(SerEdgeError, match=USERNAME_ENV):
        find_credentials(None, {PASSWORD_ENV: "x"})


def test_the_password_is_not_in_the_settings_repr(tmp_path):
    settings = mqtt_settings("mqtt://broker", credentials=None, device_id="d", discovery_prefix="homeassistant",
                             queue_size=10, environ={USERNAME_ENV: "u", PASSWORD_ENV: "hunter2"})
    assert settings.password == "hunter2" and "hunter2" not in repr(settings)


def test_toml_keys(tmp_path):
    config = write(tmp_path / "c.toml", 'mqtt = "mqtt://broker:1884"\nmqtt_credentials = "/etc/ser-edge/mqtt.toml"\n'
                                        'mqtt_device_id = "kitchen"\nmqtt_discovery_prefix = "ha"\nmqtt_queue = 50\n')
    settings = load_settings(config, {})
    assert (settings.mqtt, settings.mqtt_credentials, settings.mqtt_device_id, settings.mqtt_discovery_prefix,
            settings.mqtt_queue) == ("mqtt://broker:1884", "/etc/ser-edge/mqtt.toml", "kitchen", "ha", 50)
    assert load_settings(config, {"mqtt": ""}).mqtt == ""  # --no-mqtt


@pytest.mark.parametrize(("line", "fragment"), [
    ("mqtt_queue = 0", "mqtt_queue must be in [1, 100000]"),
    ('mqtt_queue = "10"', "mqtt_queue must be an integer"),
    ("mqtt = 1883", "mqtt must be a string"),
])
def test_bad_toml_values(tmp_path, line, fragment):
    with pytest.raises(SerEdgeError) as raised:
        load_settings(write(tmp_path / "c.toml", line + "\n"), {})
    assert fragment in str(raised.value)


@pytest.mark.parametrize(("args", "fragment"), [
    (["--mqtt", "http://broker"], "must start with mqtt://"),
    (["--mqtt", "mqtt://broker", "--mqtt-credentials", "/nonexistent/mqtt.toml"], "no such MQTT credentials file"),
    (["--mqtt", "mqtt://broker", "--mqtt-device-id", "a b"], "mqtt_device_id"),
])
def test_cli_errors_are_one_line(tmp_path, args, fragment):
    done = subprocess.run([*SER_EDGE, "listen", "--input", "-", *args], input=b"", capture_output=True,
                          timeout=120)
    assert_one_clear_error(done, fragment)
