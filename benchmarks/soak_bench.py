"""Soak: hours of generated speech and silence through ``ser-edge listen --input -``, as fast as it goes.

Counts utterances written in and JSON lines out, and samples the daemon's
resident memory against audio time. Not part of the test suite (minutes of
CPU); its report is committed in benchmarks/results/soak.md.

    python -m ser_edge.benchmarks.soak_bench --hours 24 --out benchmarks/results/soak
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from ser_edge.edge import audio

RATE = 22050
# Short sentences (one model window each) without pauses long enough to end an utterance.
SENTENCES = ("The grass is green.", "Open the window please.", "We met at noon.", "It is raining again.",
             "I am so happy to see you.", "Leave me alone right now.", "That was a terrible idea.",
             "What time does the train leave?")
PAUSES_S = (0.9, 1.5, 3.0, 6.0)  # all longer than max_silence_s (0.6 s): every sentence is one utterance
SAMPLE_EVERY_S = 600.0  # RSS every 10 audio minutes


def sentence_pool(folder: Path) -> list[bytes]:
    pool = []
    for i, text in enumerate(SENTENCES):
        path = folder / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
        signal = audio.load(path, RATE)
        pool.append(np.clip(np.round(signal * 32768), -32768, 32767).astype("<i2").tobytes())
    return pool


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def soak(hours: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as folder:
        pool = sentence_pool(Path(folder))
    process = subprocess.Popen([sys.executable, "-m", "ser_edge.edge.cli", "listen", "--input", "-", "--log-level", "warning"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines_out = [0]
    bad_lines = [0]

    def read_stdout() -> None:
        for line in process.stdout:
            lines_out[0] += 1
            try:
                json.loads(line, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
            except ValueError:
                bad_lines[0] += 1

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    utterances_in, samples, samples_at_sample = 0, 0, 0
    rss = [(0.0, rss_mib(process.pid))]
    total = hours * 3600 * RATE
    while samples < total:
        speech = pool[int(rng.integers(len(pool)))]
        pause = bytes(2 * round(float(rng.choice(PAUSES_S)) * RATE))
        process.stdin.write(speech + pause)
        utterances_in += 1
        samples += (len(speech) + len(pause)) // 2
        if samples - samples_at_sample >= SAMPLE_EVERY_S * RATE:
            samples_at_sample = samples
            rss.append((samples / RATE / 3600, rss_mib(process.pid)))
    process.stdin.close()
    stderr = process.stderr.read().decode()
    process.wait()
    reader.join()
    summary = next(json.loads(line)["summary"] for line in stderr.splitlines() if line.startswith('{"summary"'))
    hours_axis = np.array([h for h, _ in rss])
    values = np.array([m for _, m in rss])
    settled = hours_axis >= min(1.0, hours_axis[-1] / 2)  # after the first audio hour: warm-up excluded
    slope = float(np.polyfit(hours_axis[settled], values[settled], 1)[0]) if settled.sum() > 2 else float("nan")
    return {"audio_hours": samples / RATE / 3600, "utterances_in": utterances_in, "lines_out": lines_out[0],
            "invalid_json_lines": bad_lines[0], "exit_code": process.returncode,
            "rss_mib": rss, "rss_slope_mib_per_audio_hour": slope,
            "rss_growth_after_first_hour_mib": float(values[settled][-1] - values[settled][0]), "summary": summary}


def write_report(result: dict, out: Path, command: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.parent / f"{out.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    summary = result["summary"]
    rows = "\n".join(f"| {h:.2f} | {m:.1f} |" for h, m in result["rss_mib"][:: max(1, len(result["rss_mib"]) // 24)])
    lost = result["utterances_in"] - result["lines_out"]
    (out.parent / f"{out.name}.md").write_text(f"""# Soak: `ser-edge listen --input -`

`{command}` on {_host()} (not a Pi; no timings are
reported: the machine may be shared).

| | |
|---|---|
| audio streamed | {result['audio_hours']:.2f} h |
| utterances in (sentences written) | {result['utterances_in']:,} |
| JSON lines out | {result['lines_out']:,} ({lost:+,} lost) |
| invalid JSON lines | {result['invalid_json_lines']} |
| not classified / unwritten (daemon's summary) | {summary.get('not_classified')} / {summary.get('unwritten_lines')} |
| exit code | {result['exit_code']} |
| RSS growth after the first audio hour | {result['rss_growth_after_first_hour_mib']:+.2f} MiB |
| RSS slope after the first audio hour | {result['rss_slope_mib_per_audio_hour']:+.4f} MiB per audio hour |

Resident memory of the daemon against audio time:

| audio hours | RSS MiB |
|---|---|
{rows}
""")


def _host() -> str:
    import platform

    return f"{platform.machine()}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0, help="audio hours to stream")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/soak"))
    args = parser.parse_args(argv)
    if not args.hours > 0:
        parser.error("--hours must be more than 0")
    result = soak(args.hours, args.seed)
    write_report(result, args.out, f"python -m ser_edge.benchmarks.soak_bench --hours {args.hours:g} --seed {args.seed}")
    print(json.dumps({k: v for k, v in result.items() if k != "rss_mib"}, indent=2))
    lost = result["utterances_in"] != result["lines_out"] or result["invalid_json_lines"] or result["exit_code"]
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
