"""Cold start to READY=1, resident memory and per-utterance latency of ``ser-edge listen``, on a fake ALSA microphone.

    python -m ser_edge.benchmarks.listen_bench [--model NAME] [--runs 5]

Needs espeak-ng and PortAudio. The microphone is ALSA's ``file`` plugin fed
with espeak-ng speech (``benchmarks/fake_microphone.py``); READY=1 is read
from a real NOTIFY_SOCKET; memory is the process's VmHWM (peak RSS) sampled
while it runs; the latency parts are what the daemon itself writes in each
utterance's line (``latency_s``): the speech gate, the features, the
inference and ``processing`` (features + inference, the figure the thesis's
Raspberry Pi time compares with).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ser_edge.benchmarks.fake_microphone import RATE, alsa_fake_microphone, espeak_available, speech_with_pauses

TEXT = "I can't believe it. This is wonderful news, thank you so much."
STAGES = ("speech_gate", "features", "inference", "processing")  # keys of each line's latency_s


def fake_microphone(folder: Path) -> dict:
    """The tests' fake ALSA microphone, playing TEXT four times with 1 s pauses."""
    if not espeak_available():
        raise SystemExit("listen_bench: needs espeak-ng (apt install espeak-ng)")
    signal, _ = speech_with_pauses(folder, sentences=(TEXT,) * 4, pause_s=1.0)
    return {"env": alsa_fake_microphone(folder, signal), "seconds": signal.size / RATE}


def one_run(folder: Path, mic: dict, model: str) -> tuple[float, float, list[dict]]:
    address = str(folder / f"notify-{time.monotonic_ns()}.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.settimeout(60)
    ser_edge = str(Path(sys.executable).parent / "ser-edge")
    started = time.perf_counter()
    lines = folder / f"lines-{time.monotonic_ns()}.jsonl"
    with lines.open("w") as stdout:
        process = subprocess.Popen([ser_edge, "listen", "--model", model, "--duration", f"{mic['seconds']:.3f}"],
                                   env={**mic["env"], "NOTIFY_SOCKET": address},
                                   stdout=stdout, stderr=subprocess.DEVNULL)
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
    if process.returncode != 0:
        raise SystemExit(f"listen_bench: ser-edge listen exited with status {process.returncode}")
    latencies = [json.loads(line)["latency_s"] for line in lines.read_text().splitlines() if line.strip()]
    return ready, peak_kib / 1024, latencies


def latency_rows(latencies: list[dict]) -> list[str]:
    """Median and max of each stage over every utterance, in ms; the gate is null where the energy gate stood in."""
    rows = []
    for stage in STAGES:
        values = [1000 * float(latency[stage]) for latency in latencies if latency.get(stage) is not None]
        if values:
            rows.append(f"| {stage} | {statistics.median(values):.1f} ms | {max(values):.1f} ms |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ravdess")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
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
    latencies = [latency for r in results for latency in r[2]]
    print()
    print(f"| per utterance, as the daemon logs it ({len(latencies)} utterances) | median | max |")
    print("|---|---|---|")
    print("\n".join(latency_rows(latencies)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
