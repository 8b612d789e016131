"""Where the resident memory of ``ser-edge listen`` goes: per import step, per component alone, per mapping.

    python -m ser_edge.benchmarks.memory_bench [--model ravdess] [--runs 3] [--out benchmarks/results/memory.md]

1. Steps: one fresh interpreter does what ``ser-edge listen`` does, in its
   order when it listens to a microphone (numpy, the FFT kernel, soxr,
   LiteRT, the model, one classification, PortAudio), and reads its VmRSS after each step: the
   growth each step adds on top of the ones before.
2. Alone: each component in its own fresh interpreter (after Python and
   numpy): what it costs by itself, shared parts included.
3. Listening: a real ``ser-edge listen`` on the tests' fake ALSA microphone
   (espeak-ng speech); its /proc/PID/smaps is read whenever its RSS reaches a
   new high, and the snapshot at the peak is summed per mapped file (libraries)
   and anonymous memory (heap, arenas, thread stacks).

Memory depends little on load, but the figures are this machine's (x86_64
wheels); a Pi's aarch64 wheels differ in size. Run from the repository root
with the test extra (the fake microphone is the tests' own); needs espeak-ng
and PortAudio for part 3.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

# (name, code) run in order in one interpreter, as `ser-edge listen` does.
STEPS = [
    ("Python, stdlib used by ser-edge", "import argparse, json, logging, signal, threading, tomllib, datetime"),
    ("numpy (and its OpenBLAS)", "import numpy"),
    ("FFT kernel + features (ser_edge.edge.features)", "import ser_edge.edge.features"),
    ("soxr", "import soxr"),
    ("LiteRT interpreter module", "from ser_edge.edge.litert import interpreter_class; interpreter_class()"),
    ("threadpoolctl + limit", "from ser_edge.edge.threads import limit; limit(1)"),
    ("model loaded (interpreter, tensors)",
     "from ser_edge.edge.classifier import EmotionClassifier; from ser_edge.edge.registry import resolve_model; "
     "classifier = EmotionClassifier(resolve_model(MODEL))"),
    ("first classification (features + invoke)",
     "import numpy as np; classifier.classify(np.sin(np.arange(100_000, dtype=np.float32) * 0.05) * 0.3)"),
    ("daemon modules (ser_edge.edge.daemon, ser_edge.edge.sources)", "import ser_edge.edge.daemon"),
    ("sounddevice (PortAudio)", "import sounddevice"),
]
# Not on the microphone path: only `--input FILE` and `ser-edge classify` decode files.
FILE_DECODER = ("soundfile (libsndfile; file input only)", "import soundfile")
ALONE = [*STEPS[2:5], FILE_DECODER, STEPS[-1]]

RUNNER = """
import json, re, sys
MODEL = sys.argv[1]
steps = json.loads(sys.stdin.read())
def status():
    text = open('/proc/self/status').read()
    return {k: int(re.search(k + r':\\s+(\\d+)', text).group(1)) / 1024 for k in ('VmRSS', 'VmHWM')}
out = [{"step": "interpreter start", **status()}]
for name, code in steps:
    exec(code, globals())
    out.append({"step": name, **status()})
print("MEMORY " + json.dumps(out))
"""


def run_steps(steps: list[tuple[str, str]], model: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", RUNNER, model], input=json.dumps(steps), capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"memory_bench: a step failed: {done.stderr.strip().splitlines()[-1]}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("MEMORY "))
    return json.loads(line.removeprefix("MEMORY "))


def steps_table(runs: list[list[dict]]) -> list[str]:
    rows = ["| step | RSS after (MiB) | added (MiB) |", "|---|---:|---:|"]
    previous = None
    for i, first in enumerate(runs[0]):
        rss = statistics.median(run[i]["VmRSS"] for run in runs)
        added = "" if previous is None else f"{rss - previous:+.1f}"
        rows.append(f"| {first['step']} | {rss:.1f} | {added} |")
        previous = rss
    peak = statistics.median(run[-1]["VmHWM"] for run in runs)
    rows.append(f"| peak (VmHWM) at the end | {peak:.1f} | |")
    return rows


def alone_table(model: str, runs: int) -> list[str]:
    base = STEPS[:2]
    rows = ["| component alone, after Python and numpy | added (MiB) |", "|---|---:|"]
    for name, code in ALONE:
        added = [run_steps(base + [(name, code)], model) for _ in range(runs)]
        rows.append(f"| {name} | {statistics.median(r[-1]['VmRSS'] - r[-2]['VmRSS'] for r in added):+.1f} |")
    return rows


def smaps_by_mapping(pid: int) -> Counter:
    """Resident KiB per mapped file name (or [heap], [stack], [anon]) of a live process."""
    totals: Counter = Counter()
    current = "[anon]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        first = line.split(maxsplit=6)
        if "-" in first[0] and len(first) >= 5 and ":" in first[3]:  # a mapping header line
            current = Path(first[5]).name if len(first) > 5 and first[5].startswith("/") else (
                first[5] if len(first) > 5 else "[anon]")
        elif first[0] == "Rss:":
            totals[current] += int(first[1])
    return totals


def listen_peak(model: str) -> tuple[float, float, Counter]:
    """A real `ser-edge listen` on the fake microphone: its VmHWM, its highest sampled RSS and smaps there (MiB).

    The smaps snapshot also holds "(anonymous)" and "(file-backed)": RssAnon and RssFile at that sample.
    """
    from ser_edge.benchmarks.listen_bench import fake_microphone

    with tempfile.TemporaryDirectory() as tmp:
        mic = fake_microphone(Path(tmp))
        ser_edge = str(Path(sys.executable).parent / "ser-edge")
        process = subprocess.Popen([ser_edge, "listen", "--model", model, "--duration", f"{mic['seconds']:.3f}"],
                                   env=mic["env"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = hwm = 0
        snapshot: Counter = Counter()
        split: dict = {}
        while process.poll() is None:
            try:
                status = dict(line.split(":", 1) for line in
                              Path(f"/proc/{process.pid}/status").read_text().splitlines())
                rss, hwm = int(status["VmRSS"].split()[0]), max(hwm, int(status["VmHWM"].split()[0]))
                if rss > best:
                    best, snapshot = rss, smaps_by_mapping(process.pid)
                    split = {"(anonymous)": int(status["RssAnon"].split()[0]),
                             "(file-backed)": int(status["RssFile"].split()[0])}
            except (OSError, KeyError, ValueError):
                break
            time.sleep(0.01)
        if process.wait() != 0:
            raise SystemExit("memory_bench: ser-edge listen failed")
    return hwm / 1024, best / 1024, snapshot + Counter(split)


def mapping_table(peak: float, snapshot: Counter, top: int = 14) -> list[str]:
    snapshot = snapshot.copy()
    anonymous, files = snapshot.pop("(anonymous)", 0), snapshot.pop("(file-backed)", 0)
    rows = [f"RSS at the sampled peak: {peak:.1f} MiB: {anonymous / 1024:.1f} MiB anonymous (heap, arenas, "
            f"stacks), {files / 1024:.1f} MiB file-backed (libraries' code and data: clean pages the kernel can "
            "drop and reread, shared with any other process that maps them)", "",
            "| mapping | resident (MiB) |", "|---|---:|"]
    for name, kib in snapshot.most_common(top):
        rows.append(f"| {name} | {kib / 1024:.1f} |")
    rest = sum(kib for _, kib in snapshot.most_common()[top:])
    rows.append(f"| everything else | {rest / 1024:.1f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ravdess")
    parser.add_argument("--runs", type=int, default=3, help="fresh interpreters per table (medians)")
    parser.add_argument("--no-listen", action="store_true", help="skip part 3 (needs espeak-ng, PortAudio)")
    parser.add_argument("--out", type=Path, help="also write the tables here (Markdown)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    lines = [f"# Resident memory of the device side (model {args.model}, {args.runs} runs, medians)", "",
             "## 1. Step by step, in ser-edge listen's order", "",
             *steps_table([run_steps(STEPS, args.model) for _ in range(args.runs)]), "",
             "## 2. Each component alone", "", *alone_table(args.model, args.runs), ""]
    if not args.no_listen:
        peaks = sorted((listen_peak(args.model) for _ in range(args.runs)), key=lambda p: p[0])
        _, sampled, snapshot = peaks[len(peaks) // 2]
        lines += ["## 3. ser-edge listen on a fake microphone: resident memory per mapping at its peak", "",
                  f"Peak resident memory (VmHWM) per run: {', '.join(f'{p[0]:.1f}' for p in peaks)} MiB; "
                  "mappings of the median run below.", "", *mapping_table(sampled, snapshot), ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
