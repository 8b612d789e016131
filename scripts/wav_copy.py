"""Copy a dataset's audio to 16-bit PCM WAV, same rate, channels and folders (FLAC is lossless: the samples are equal).

The shared RAVDESS copy is stored as FLAC; RAVDESS itself is 16-bit 48 kHz WAV,
which is what issue 12's decode-to-label target is measured on:

    python scripts/wav_copy.py ../shared/datasets/ravdess /tmp/ravdess-wav
    ser-bench --dataset ravdess --data-dir /tmp/ravdess-wav --model ravdess ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("destination", type=Path)
    args = parser.parse_args(argv)
    files = sorted(p for p in args.source.rglob("*") if p.suffix.lower() in (".flac", ".wav") and p.is_file())
    if not files:
        print(f"wav_copy: error: {args.source}: no .flac or .wav files", file=sys.stderr)
        return 2
    for path in files:
        target = (args.destination / path.relative_to(args.source)).with_suffix(".wav")
        target.parent.mkdir(parents=True, exist_ok=True)
        samples, rate = soundfile.read(path, dtype="int16", always_2d=True)
        soundfile.write(target, samples, rate, subtype="PCM_16")
        check, _ = soundfile.read(target, dtype="int16", always_2d=True)
        if not np.array_equal(check, samples):
            print(f"wav_copy: error: {target}: samples differ after writing", file=sys.stderr)
            return 1
    print(f"wrote {len(files)} WAV files under {args.destination}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
