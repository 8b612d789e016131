"""Cold start to READY=1 and resident memory of ``ser-edge listen``, on a fake ALSA microphone.

    python -m benchmarks.listen_bench [--model NAME] [--runs 5]

Needs espeak-ng and PortAudio. The microphone is ALSA's ``file`` plugin fed
with espeak-ng speech (see system.md); READY=1 is read from a real
NOTIFY_SOCKET; memory is the process's VmHWM (peak RSS) sampled while it runs.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RATE = 22050
TEXT = "I can't believe it. This is wonderful news, thank you so much."


def fake_microphone(folder: Path) -> dict:
    wav = folder / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), TEXT], check=True, capture_output=True)
    from edge import audio

    speech = audio.load(wav, RATE)
    pause = np.zeros(RATE, dtype=np.float32)
    signal = np.concatenate([speech, pause] * 4 + [np.zeros(10 * RATE, dtype=np.float32)])
    raw = folder / "mic.raw"
    raw.write_bytes(np.clip(np.round(signal * 32768), -32768, 32767).astype("<i2").tobytes())
    config = folder / "asound.conf"
    config.write_text(
        "</usr/share/alsa/alsa.conf>\n"
        f'pcm.fakemic_raw {{ type file slave.pcm "null" file "/dev/null" infile "{raw}" format "raw" }}\n'
        f'pcm.fakemic {{ type plug slave {{ pcm "fakemic_raw" format S16_LE rate {RATE} channels 1 }} }}\n'
        'pcm.!default { type asym capture.pcm "fakemic" playback.pcm "null" }\n')
    seconds = (signal.size - 10 * RATE) / RATE
    return {"env": {**os.environ, "ALSA_CONFIG_PATH": str(config)}, "seconds": seconds}


def one_run(folder: Path, mic: dict, model: str) -> tuple[float, float]:
    address = str(folder / f"notify-{time.monotonic_ns()}.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.settimeout(60)
    ser_edge = str(Path(sys.executable).parent / "ser-edge")
    started = time.perf_counter()
    process = subprocess.Popen([ser_edge, "listen", "--model", model, "--duration", f"{mic['seconds']:.3f}"],
                               env={**mic["env"], "NOTIFY_SOCKET": address},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not receiver.recv(4096).startswith(b"READY=1"):
        pass
    ready = time.perf_counter() - started
    peak_kib = 0
    while process.poll() is None:
        try:
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kib = max(peak_kib, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.02)
    receiver.close()
    return ready, peak_kib / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ravdess")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mic = fake_microphone(folder)
        results = [one_run(folder, mic, args.model) for _ in range(args.runs)]
    ready = [r[0] for r in results]
    memory = [r[1] for r in results]
    print(f"| measure ({args.runs} runs, model {args.model}) | median | max |")
    print("|---|---|---|")
    print(f"| process start to READY=1 | {statistics.median(ready):.3f} s | {max(ready):.3f} s |")
    print(f"| peak resident memory while listening | {statistics.median(memory):.1f} MiB | {max(memory):.1f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
