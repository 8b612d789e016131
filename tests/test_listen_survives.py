"""``ser-edge listen`` through a Pi's life: swapped models, full disks, rotation, signals, broken streams.

Every test drives a real daemon process on real espeak-ng speech streamed as raw
PCM on stdin, with the shipped LiteRT models, real signals, /dev/full, FIFOs
and sockets.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from ser_edge.edge.registry import THESIS_PI_SECONDS, resolve_model
from tests.daemon_tools import SER_EDGE, assert_one_clear_error, pcm_bytes, strict_lines, summary_of
from tests.fixtures import RATE, SENTENCES, model_path, speech_with_pauses

pytestmark = pytest.mark.slow  # see pyproject's markers: left out of `-m "not slow"`


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return speech_with_pauses(tmp_path_factory.mktemp("speech"))


@pytest.fixture(scope="module")
def pcm(speech) -> bytes:
    return pcm_bytes(speech[0])


def listen(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([*SER_EDGE, "listen", *args], stdin=kwargs.pop("stdin", subprocess.PIPE),
                            stdout=kwargs.pop("stdout", subprocess.PIPE), stderr=subprocess.PIPE, **kwargs)


def read_lines(process: subprocess.Popen, count: int) -> list[str]:
    lines = [process.stdout.readline().decode() for _ in range(count)]
    assert all(lines), f"the daemon stopped early: {lines}"
    return lines


def finish(process: subprocess.Popen, timeout: float = 60) -> tuple[str, str]:
    if process.stdin is not None and process.stdin.closed:
        process.stdin = None  # communicate() would flush it
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        return (stdout or b"").decode(), stderr.decode()
    finally:
        process.kill()


# --- 1. the model file changes while listening ----------------------------------------

def three_rounds(model: Path, pcm: bytes, changes: tuple) -> tuple[list[dict], str, int]:
    """Stream the speech three times, applying ``changes[i]`` to the model file before round i."""
    process = listen("--model", str(model), "--input", "-")
    try:
        lines = []
        for change in changes:
            if change == "overwrite":
                shutil.copyfile(resolve_model("emodb-float32"), model)  # same inode, other weights: like cp
            elif change == "truncate":
                with open(model, "r+b") as handle:
                    handle.truncate(1024)
            process.stdin.write(pcm)
            process.stdin.flush()
            lines += strict_lines("".join(read_lines(process, len(SENTENCES))))
        process.stdin.close()
        _, stderr = finish(process)
    finally:
        process.kill()
    return lines, stderr, process.returncode


def test_model_overwritten_then_truncated_while_listening(tmp_path, pcm):
    """cp over the file, then truncate it: the running interpreter must see neither."""
    model = tmp_path / "model.tflite"
    shutil.copyfile(model_path("ravdess"), model)
    untouched, _, _ = three_rounds(model, pcm, (None, None, None))
    changed, stderr, returncode = three_rounds(model, pcm, (None, "overwrite", "truncate"))
    assert returncode == 0, stderr
    assert "Traceback" not in stderr
    # Same audio, same model in memory: the same results as a run whose file was left alone.
    assert [(l["label"], l["probabilities"]) for l in changed] == [(l["label"], l["probabilities"]) for l in untouched]
    assert summary_of(stderr)["utterances"] == 3 * len(SENTENCES)


# --- 2. full disks and log rotation ----------------------------------------------------

def test_jsonl_on_a_full_disk_keeps_listening(pcm):
    done = subprocess.run([*SER_EDGE, "listen", "--model", str(model_path()), "--input", "-", "--jsonl", "/dev/full"],
                          input=pcm, capture_output=True, timeout=120)
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert len(strict_lines(done.stdout.decode())) == len(SENTENCES)
    # Said once (at most once a minute), counted in the summary.
    warnings = [line for line in stderr.splitlines() if "cannot write results to /dev/full" in line]
    assert len(warnings) == 1 and "no space left on device" in warnings[0], stderr
    summary = summary_of(stderr)
    assert summary["unwritten_lines"] == {"stdout": 0, "jsonl": len(SENTENCES)}
    assert summary["utterances"] == len(SENTENCES)


def test_stdout_on_a_full_disk_keeps_listening(tmp_path, pcm):
    jsonl = tmp_path / "results.jsonl"
    with open("/dev/full", "wb") as full:
        done = subprocess.run([*SER_EDGE, "listen", "--model", str(model_path()), "--input", "-", "--jsonl",
                               str(jsonl)], input=pcm, stdout=full, stderr=subprocess.PIPE, timeout=120)
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert len(strict_lines(jsonl.read_text())) == len(SENTENCES)
    assert summary_of(stderr)["unwritten_lines"] == {"stdout": len(SENTENCES), "jsonl": 0}


def test_sighup_reopens_the_jsonl_after_rotation(tmp_path, pcm):
    """logrotate's convention: rename the file, send SIGHUP, the daemon writes a new file."""
    jsonl = tmp_path / "results.jsonl"
    rotated = tmp_path / "results.jsonl.1"
    process = listen("--model", str(model_path()), "--input", "-", "--jsonl", str(jsonl))
    try:
        raw = process.stdin
        raw.write(pcm)
        raw.flush()
        first = read_lines(process, len(SENTENCES))
        jsonl.rename(rotated)
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while not jsonl.exists() and time.monotonic() < deadline:  # reopened with O_CREAT
            time.sleep(0.05)
        assert jsonl.exists(), "no new file after SIGHUP"
        raw.write(pcm)
        raw.flush()
        second = read_lines(process, len(SENTENCES))
        process.stdin.close()
        _, stderr = finish(process)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert rotated.read_text().splitlines() == [line.strip() for line in first]
    assert jsonl.read_text().splitlines() == [line.strip() for line in second]


# --- 3. SIGTERM / SIGINT with stdin input ----------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_with_stdin_input_exits_cleanly(tmp_path, pcm, signum):
    """(cat speech.raw; sleep 30) | ser-edge listen --input -  then kill: exit 0 with a summary."""
    raw = tmp_path / "speech.raw"
    raw.write_bytes(pcm)
    feeder = subprocess.Popen(["sh", "-c", f"cat '{raw}'; sleep 30"], stdout=subprocess.PIPE)
    process = listen("--model", str(model_path()), "--input", "-", stdin=feeder.stdout)
    feeder.stdout.close()
    try:
        read_lines(process, len(SENTENCES))
        time.sleep(1.0)  # all audio consumed: the daemon now waits on an idle stdin, as in production
        process.send_signal(signum)
        _, stderr = finish(process, timeout=30)
    finally:
        process.kill()
        feeder.kill()
        feeder.wait()
    assert process.returncode == 0, stderr
    assert "Fatal Python error" not in stderr and "Traceback" not in stderr, stderr
    assert summary_of(stderr)["utterances"] >= 1


# --- 4. a read error on stdin ------------------------------------------------------------

def test_connection_reset_on_stdin_ends_with_an_error(pcm):
    """A socket as stdin, reset by its peer: a clear error and a non-zero exit, not a hang."""
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    server.close()
    process = listen("--model", str(model_path()), "--input", "-", stdin=accepted)
    accepted.close()
    try:
        client.sendall(pcm[: len(pcm) // 3])
        time.sleep(1.0)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()  # linger 0: RST instead of FIN
        stdout, stderr = finish(process, timeout=60)
    finally:
        process.kill()
    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert_one_clear_error(done, "stdin: read failed (connection reset by peer)")
    summary_of(stderr)  # the summary still comes
    strict_lines(stdout)


# --- 7. a FIFO as the JSONL path -------------------------------------------------------------

def test_fifo_as_jsonl_is_refused_before_ready(tmp_path, speech):
    fifo = tmp_path / "results.jsonl"
    os.mkfifo(fifo)
    done = subprocess.run([*SER_EDGE, "listen", "--model", str(model_path()), "--input", str(speech[1]),
                           "--jsonl", str(fifo)], capture_output=True, text=True, timeout=60)
    assert_one_clear_error(done, "is a FIFO")
    assert done.stdout == ""


# --- 10. closed streams and broken pipes ------------------------------------------------------

def test_closed_stdout_is_an_error_not_silent_loss(speech):
    done = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", *SER_EDGE, "listen", "--model", str(model_path()),
                           "--input", str(speech[1])], stdout=None, stderr=subprocess.PIPE, text=True, timeout=60)
    assert_one_clear_error(done, "stdout is closed")


def test_closed_stderr_keeps_the_summary_out_of_stdout(speech):
    done = subprocess.run(["sh", "-c", 'exec "$@" 2>&-', "sh", *SER_EDGE, "listen", "--model", str(model_path()),
                           "--input", str(speech[1])], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    lines = strict_lines(done.stdout)
    assert len(lines) == len(SENTENCES) and all("label" in line for line in lines)


def test_broken_stdout_pipe_exits_non_zero(pcm):
    """Restart=on-failure restarts only a non-zero exit: a reader that goes away must not look like success."""
    process = listen("--model", str(model_path()), "--input", "-")
    try:
        raw = process.stdin
        raw.write(pcm)
        raw.flush()
        read_lines(process, 1)
        process.stdout.close()  # the reader goes away
        try:
            raw.write(pcm)
            process.stdin.close()
        except BrokenPipeError:  # it stopped reading: what we expect
            pass
        stderr = process.stderr.read().decode()
        process.wait(timeout=60)
    finally:
        process.kill()
    done = subprocess.CompletedProcess(process.args, process.returncode, "", stderr)
    assert_one_clear_error(done, "broken pipe")


def test_digital_silence_is_never_speech_at_the_lowest_threshold():
    silence = bytes(2 * RATE * 5)
    done = subprocess.run([*SER_EDGE, "listen", "--model", str(model_path()), "--input", "-",
                           "--energy-threshold-db", "-100"], input=silence, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b""
    assert summary_of(done.stderr.decode())["utterances"] == 0


def test_latency_figures_are_kept_in_constant_memory():
    from ser_edge.edge.latency import LatencyStats

    stats = LatencyStats(window=100)
    values = np.random.default_rng(3).uniform(0.005, 0.02, 5000)
    for value in values:
        stats.add(float(value))
    assert stats.count == 5000 and stats.kept == 100
    summary = stats.summary(thesis_s=THESIS_PI_SECONDS["ravdess"])
    assert summary["processing_mean_s"] == pytest.approx(values.mean(), rel=1e-12)
    assert summary["processing_p50_s"] == pytest.approx(float(np.percentile(values[-100:], 50)))
    assert summary["percentiles_over"] == 100
