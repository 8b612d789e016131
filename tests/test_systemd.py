"""The systemd unit and its config file, checked offline with systemd-analyze.

Needs ``systemd-analyze`` on PATH (CI installs systemd); no running systemd.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import typing
from pathlib import Path

import pytest

from ser_edge.edge.settings import ListenSettings
from tests.fixtures import RATE

REPO_ROOT = Path(__file__).resolve().parents[1]
UNIT = REPO_ROOT / "systemd" / "ser-edge.service"
MQTT_DROPIN = REPO_ROOT / "systemd" / "ser-edge.service.d" / "mqtt.conf"
CONFIG = REPO_ROOT / "systemd" / "ser-edge.toml"

INSTALLED_EXEC = "/opt/ser-edge/venv/bin/ser-edge"
INSTALLED_CONFIG = "/etc/ser-edge/ser-edge.toml"
STATE_DIR = Path("/var/lib/ser-edge")
MAX_EXPOSURE = 2.0
# ListenSettings keys the service's config leaves out: those of one-off runs (a file or stdin, a duration).
ONE_OFF_KEYS = {"input", "input_rate", "duration_s"}
# Keys the config carries only as commented-out lines: MQTT is off until the user opts in, and
# uncertain_below defaults to the threshold the model file carries.
COMMENTED_KEYS = {key for key in typing.get_type_hints(ListenSettings) if key.startswith("mqtt")} | {"uncertain_below"}
# Every other key `ser-edge listen` reads, with its TOML type (from the settings' annotations).
CONFIG_KEYS = {key: next(t for t in (*typing.get_args(hint), hint) if t is not type(None))
               for key, hint in typing.get_type_hints(ListenSettings).items()
               if key not in ONE_OFF_KEYS | COMMENTED_KEYS}

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not on PATH (apt install systemd)"
)


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """{section: {key: [values in order]}}; repeated keys (SystemCallFilter=) keep every value."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{UNIT.name}: key outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep, f"{UNIT.name}: not a key=value line: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service_section() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text())["Service"]


def runnable_executable() -> str:
    """An executable that exists here: verify checks ExecStart's binary."""
    for candidate in (shutil.which("ser-edge"), Path(sys.executable).parent / "ser-edge"):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    return "/bin/true"


def analyze_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "SYSTEMD_LOG_LEVEL"}
    env.update(SYSTEMD_COLORS="0", SYSTEMD_PAGER="", LC_ALL="C.UTF-8")
    return env


def run_analyze(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [SYSTEMD_ANALYZE, *args], capture_output=True, text=True, env=analyze_env(), timeout=120
    )
    print(f"$ systemd-analyze {' '.join(args)}  -> rc {result.returncode}")
    print(result.stdout)
    print(result.stderr, file=sys.stderr)
    return result


def systemd_version() -> int:
    first = subprocess.run(
        [SYSTEMD_ANALYZE, "--version"], capture_output=True, text=True, env=analyze_env()
    ).stdout.split("\n", 1)[0]
    match = re.match(r"systemd (\d+)", first)
    assert match, f"unexpected systemd-analyze --version output: {first!r}"
    return int(match.group(1))


def copy_unit(directory: Path, *, extra_service_lines: str = "", mqtt: bool = False) -> Path:
    """The unit as ser-edge.service in ``directory``, ExecStart pointing at a local executable.

    ``mqtt``: with the MQTT drop-in beside it in ser-edge.service.d/, where systemd-analyze
    loads drop-ins of a unit given by path, as systemd loads /etc/systemd/system/ser-edge.service.d/.
    """
    text = UNIT.read_text()
    assert text.count(f"ExecStart={INSTALLED_EXEC} ") == 1, f"{UNIT.name}: ExecStart is not {INSTALLED_EXEC}"
    text = text.replace(f"ExecStart={INSTALLED_EXEC} ", f"ExecStart={runnable_executable()} ")
    if extra_service_lines:
        text = text.replace("[Service]\n", f"[Service]\n{extra_service_lines}\n", 1)
    path = directory / UNIT.name
    path.write_text(text)
    if mqtt:
        dropins = directory / f"{UNIT.name}.d"
        dropins.mkdir()
        shutil.copy(MQTT_DROPIN, dropins / MQTT_DROPIN.name)
    return path


def verify(unit: Path) -> tuple[int, list[str]]:
    """systemd-analyze verify: the exit code and every output line that mentions the unit."""
    supports_man = "--man" in run_analyze("--help").stdout
    result = run_analyze("verify", *(["--man=no"] if supports_man else []), str(unit))
    lines = (result.stderr + result.stdout).splitlines()
    about_unit = [line for line in lines if unit.name in line]
    unrelated = [line for line in lines if line.strip() and unit.name not in line]
    if unrelated:  # e.g. other system units in a container: shown, not failed on
        print("unrelated systemd-analyze output:\n" + "\n".join(unrelated))
    return result.returncode, about_unit


@needs_systemd_analyze
def test_unit_verifies_without_warnings(tmp_path):
    returncode, about_unit = verify(copy_unit(tmp_path))
    assert returncode == 0 and not about_unit, "systemd-analyze verify:\n" + "\n".join(about_unit)


@needs_systemd_analyze
def test_verify_check_catches_unknown_keys(tmp_path):
    # verify exits 0 on an unknown key and only warns: the stderr check above must see it.
    _, about_unit = verify(copy_unit(tmp_path, extra_service_lines="ProtectKernel=yes"))
    assert any("Unknown key" in line and "ProtectKernel" in line for line in about_unit), about_unit


def security(unit: Path) -> tuple[float, str]:
    """systemd-analyze security --offline: the overall exposure and the whole report."""
    version = systemd_version()
    if version < 250:
        pytest.skip(f"systemd-analyze security --offline needs systemd >= 250, found {version}")
    # --threshold is in tenths: a non-zero exit code when exposure exceeds MAX_EXPOSURE.
    result = run_analyze(
        "security", "--offline=yes", f"--threshold={round(MAX_EXPOSURE * 10)}", "--no-pager", str(unit)
    )
    output = result.stdout + result.stderr
    match = re.search(rf"Overall exposure level for {re.escape(unit.name)}: (\d+(?:\.\d+)?)", output)
    assert match, f"no overall exposure level in the output:\n{output}"
    exposure = float(match.group(1))
    failed = [line for line in output.splitlines() if line.startswith("✗")]
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}; open items:\n" + "\n".join(failed)
    assert result.returncode == 0, output
    return exposure, output


@needs_systemd_analyze
def test_security_exposure_is_low(tmp_path):
    _, report = security(copy_unit(tmp_path))
    assert "✗ PrivateNetwork=" not in report


@needs_systemd_analyze
def test_mqtt_dropin_verifies_without_warnings(tmp_path):
    returncode, about_unit = verify(copy_unit(tmp_path, mqtt=True))
    assert returncode == 0 and not about_unit, "systemd-analyze verify:\n" + "\n".join(about_unit)


@needs_systemd_analyze
def test_mqtt_dropin_keeps_exposure_low(tmp_path):
    exposure, report = security(copy_unit(tmp_path, mqtt=True))
    # The drop-in was loaded: the network it opens shows as open items, and nothing more than that.
    assert "✗ RestrictAddressFamilies=~AF_(INET|INET6)" in report and "✗ PrivateNetwork=" in report, report
    assert "✓ RestrictAddressFamilies=~AF_PACKET" in report and "✓ RestrictAddressFamilies=~AF_NETLINK" in report
    (tmp_path / "base").mkdir()
    base, _ = security(copy_unit(tmp_path / "base"))
    assert base < exposure <= MAX_EXPOSURE


def test_mqtt_dropin_opens_only_tcp_to_local_addresses():
    dropin = parse_unit(MQTT_DROPIN.read_text())["Service"]
    assert dropin["PrivateNetwork"] == ["no"]
    assert dropin["RestrictAddressFamilies"] == ["AF_INET AF_INET6"]
    allowed = " ".join(dropin["IPAddressAllow"]).split()
    assert "any" not in allowed and "0.0.0.0/0" not in allowed and "::/0" not in allowed
    # The unit's deny-all stays: the drop-in only adds exceptions to it.
    assert "IPAddressDeny" not in dropin and service_section()["IPAddressDeny"] == ["any"]
    assert service_section()["PrivateNetwork"] == ["yes"], "without the drop-in: no network at all"


def test_mqtt_dropin_hands_the_daemon_its_credential():
    from ser_edge.edge.mqtt_settings import SYSTEMD_CREDENTIAL

    (credential,) = parse_unit(MQTT_DROPIN.read_text())["Service"]["LoadCredential"]
    name, _, source = credential.partition(":")
    assert name == SYSTEMD_CREDENTIAL, "the daemon reads $CREDENTIALS_DIRECTORY/" + SYSTEMD_CREDENTIAL
    assert Path(source).parent == Path(INSTALLED_CONFIG).parent


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "30"),
        ("Restart", "on-failure"),
        ("StateDirectory", "ser-edge"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("DevicePolicy", "closed"),
        ("DeviceAllow", "char-alsa rw"),
        ("RestrictAddressFamilies", "AF_UNIX"),
        ("UMask", "0077"),
    ],
)
def test_unit_setting(key, expected):
    values = service_section().get(key)
    assert values == [expected], f"{UNIT.name}: {key}={values}, expected {expected!r}"


def test_unit_restarts_after_a_delay():
    (value,) = service_section()["RestartSec"]
    assert value, "RestartSec must be set"


def test_unit_runs_unprivileged_with_only_the_audio_group():
    service = service_section()
    assert "User" not in service or service["User"] != ["root"]
    assert service.get("DynamicUser") == ["yes"] or "User" in service, "no unprivileged user"
    assert service.get("SupplementaryGroups") == ["audio"]
    assert "Group" not in service, "only the audio group is wanted"


def test_unit_filters_system_calls_softly():
    service = service_section()
    assert "@system-service" in service.get("SystemCallFilter", [])
    assert service.get("SystemCallArchitectures") == ["native"]
    # A denied call returns EPERM; without this the daemon is killed with SIGSYS.
    assert service.get("SystemCallErrorNumber") == ["EPERM"]


def test_unit_keeps_dev_snd_and_cffi_callbacks_working():
    service = service_section()
    # PrivateDevices' /dev has no /dev/snd; sounddevice's cffi callback needs W+X memory.
    assert service.get("PrivateDevices", ["no"]) == ["no"]
    assert service.get("MemoryDenyWriteExecute", ["no"]) == ["no"]


def test_unit_runs_the_installed_daemon_with_the_etc_config():
    (exec_start,) = service_section()["ExecStart"]
    assert exec_start.split() == [INSTALLED_EXEC, "listen", "--config", INSTALLED_CONFIG]


def test_config_has_exactly_the_documented_keys():
    config = tomllib.loads(CONFIG.read_text())
    assert set(config) == set(CONFIG_KEYS)
    for key, kind in CONFIG_KEYS.items():
        assert type(config[key]) is kind, f"{CONFIG.name}: {key} = {config[key]!r} is not a {kind.__name__}"


def test_config_mqtt_lines_work_once_uncommented(tmp_path):
    """The commented MQTT block is off as shipped and valid as soon as a user deletes the '#'."""
    from ser_edge.edge.settings import load_settings

    text = CONFIG.read_text()
    assert load_settings(CONFIG, {}).mqtt is None
    commented = re.findall(r"^#(mqtt\w* = .*)$", text, re.M)
    keys = {line.split(" = ")[0] for line in commented}
    assert keys == {"mqtt", "mqtt_credentials", "mqtt_device_id", "mqtt_discovery_prefix", "mqtt_queue"}
    enabled = text
    for line in commented:
        enabled = enabled.replace(f"#{line}", line)
    config = tmp_path / CONFIG.name
    config.write_text(enabled)
    settings = load_settings(config, {})
    assert settings.mqtt == "mqtt://homeassistant.local:1883" and settings.mqtt_queue == 1000


@pytest.mark.parametrize("key", ["jsonl", "speaker_state"])
def test_config_files_are_in_the_state_directory(key):
    path = Path(tomllib.loads(CONFIG.read_text())[key])
    assert path.parent == STATE_DIR, f"the service can write only {STATE_DIR}, not {path.parent}"


def test_config_is_accepted_by_the_daemon():
    from ser_edge.edge.settings import load_settings

    settings = load_settings(CONFIG, {})
    config = tomllib.loads(CONFIG.read_text())
    assert {key: getattr(settings, key) for key in CONFIG_KEYS} == config


LOGROTATE = REPO_ROOT / "systemd" / "ser-edge.logrotate"


def test_unit_reload_sends_sighup():
    # The daemon reopens its JSONL on SIGHUP; `systemctl reload` (logrotate's postrotate) must send exactly that.
    (value,) = service_section()["ExecReload"]
    assert value.split() == ["/bin/kill", "-HUP", "$MAINPID"]


def test_logrotate_covers_the_configured_jsonl_and_reloads_the_unit():
    text = LOGROTATE.read_text()
    jsonl = tomllib.loads(CONFIG.read_text())["jsonl"]
    assert f"{jsonl} {{" in text
    assert re.search(r"^\s*maxsize \d+[kMG]$", text, re.M), "rotate by size too: an SD card is small"
    assert re.search(r"^\s*rotate \d+$", text, re.M)
    assert "systemctl reload ser-edge.service" in text


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate is not installed (apt install logrotate)")
def test_shipped_logrotate_rotates_a_running_daemon(tmp_path):
    """Real logrotate with the shipped rules (path and reload command pointed here) against a real daemon."""
    import numpy as np

    from tests.daemon_tools import SER_EDGE, pcm_bytes, summary_of

    from tests.fixtures import SENTENCES, espeak

    jsonl = tmp_path / "utterances.jsonl"
    speech = espeak(SENTENCES[0], tmp_path / "speech.wav")  # speech: a tone would not pass the speech gate
    pcm = pcm_bytes(np.concatenate([speech, np.zeros(RATE, dtype=np.float32)]))  # one utterance per write
    process = subprocess.Popen([*SER_EDGE, "listen", "--input", "-", "--jsonl", str(jsonl)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        process.stdin.write(pcm)
        process.stdin.flush()
        first = process.stdout.readline()
        assert first
        # stdout is written before the JSONL file: wait for the file too, or notifempty skips the rotation.
        deadline = time.monotonic() + 60
        while jsonl.stat().st_size < len(first) and time.monotonic() < deadline:
            time.sleep(0.05)
        config = tmp_path / "logrotate.conf"
        text = LOGROTATE.read_text().replace(tomllib.loads(CONFIG.read_text())["jsonl"], str(jsonl))
        config.write_text(text.replace("systemctl reload ser-edge.service", f"kill -HUP {process.pid}"))
        config.chmod(0o644)
        rotated = subprocess.run(["logrotate", "--force", "--state", str(tmp_path / "state"), str(config)],
                                 capture_output=True, text=True, timeout=60)
        assert rotated.returncode == 0, rotated.stderr
        process.stdin.write(pcm)
        process.stdin.flush()
        second = process.stdout.readline()
        assert second
        process.stdin.close()
        process.stdin = None  # communicate() would flush it
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr.decode()
    assert (tmp_path / "utterances.jsonl.1").read_bytes() == first  # delaycompress: the newest stays plain
    assert jsonl.read_bytes() == second
    assert summary_of(stderr.decode())["utterances"] == 2
