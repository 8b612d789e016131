"""Run the device side on arm64 for real: an emulated Debian bookworm root, ``pip install .``, classify.

    sudo python3 scripts/arm64_check.py [--cache DIR] [--model ravdess --model emodb] [--out result.json] [FILE ...]

1. Registers qemu's aarch64 handler with binfmt_misc when it is missing
   (mounts binfmt_misc if needed, writes /usr/lib/binfmt.d/qemu-aarch64.conf
   into its ``register``). Exit 3 with one line when the kernel refuses.
2. Builds an arm64 Debian bookworm root (Raspberry Pi OS's base: glibc 2.36,
   Python 3.11) with mmdebstrap, once, in the cache folder (default
   ``~/.cache/ser-edge/arm64``, outside the repository); reruns reuse it.
3. Copies the working tree into the root and runs ``pip install .`` in a venv
   there: only the device dependencies, resolved as arm64 wheels.
4. Runs ``ser-edge classify --json`` on the same files inside the root
   (aarch64, emulated) and here (this machine's Python), and compares: same
   label on every file, every probability (the speech gate's too) within
   ``--tolerance`` (0.02), the same speech gate (Silero or the fallback).

Files: the ones given, or espeak-ng speech and seeded white noise generated
here plus a few RAVDESS and EMO-DB files from ../shared/datasets when that
folder exists.
Exit 0 when both runs agree, 1 when they differ, 2 on any other error.
Timings under emulation say nothing about a Raspberry Pi; none are reported.
Needs root (mount, chroot), qemu-user-static, mmdebstrap, arch-test and network access
to deb.debian.org and PyPI on the first run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ser-edge" / "arm64"
SUITE = "bookworm"
# What the root needs beyond Debian's essential set: Python with venv (ensurepip), and TLS roots for pip.
PACKAGES = ("python3", "python3-venv", "ca-certificates")
ROOT_RECIPE = f"mmdebstrap --arch=arm64 --variant=apt {SUITE} include={','.join(PACKAGES)}"
BINFMT = Path("/proc/sys/fs/binfmt_misc")
BINFMT_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
VENV = "/opt/ser-edge/venv"
SPEECH = ("I can't believe you did this to me, I am furious.",
          "What a wonderful surprise, thank you so much.",
          "I feel so tired and sad today.")
SHARED = REPO.parent / "shared" / "datasets"
EXIT_DIFFER, EXIT_ERROR, EXIT_NO_BINFMT = 1, 2, 3


class CheckError(Exception):
    """One line for the user; exit 2."""


class BinfmtRefused(CheckError):
    """The kernel will not run aarch64 binaries through qemu here; exit 3."""


def ensure_binfmt() -> str:
    """Make sure aarch64 ELF files run through qemu; returns what was done."""
    handler = BINFMT / "qemu-aarch64"
    if handler.is_file() and "enabled" in handler.read_text():
        return "already registered"
    if not BINFMT_CONF.is_file() or shutil.which("qemu-aarch64-static") is None:
        raise CheckError(f"qemu-user-static is not installed ({BINFMT_CONF} missing): apt-get install qemu-user-static")
    if not (BINFMT / "register").exists():
        done = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise BinfmtRefused(f"cannot mount binfmt_misc: {done.stderr.strip() or done.returncode}")
    try:
        if not handler.exists():
            (BINFMT / "register").write_text(BINFMT_CONF.read_text().strip())
        if "enabled" not in handler.read_text():
            handler.write_text("1")
    except OSError as error:
        raise BinfmtRefused(f"the kernel refuses the aarch64 binfmt_misc handler: {error.strerror}") from None
    return "registered now"


def build_root(cache: Path) -> tuple[Path, bool]:
    """The arm64 root in ``cache``, built by mmdebstrap unless a finished one with the same recipe is there."""
    root, stamp = cache / "root", cache / "root.recipe"
    if root.is_dir() and stamp.is_file() and stamp.read_text() == ROOT_RECIPE:
        return root, False
    if shutil.which("mmdebstrap") is None:
        raise CheckError("mmdebstrap is not installed: apt-get install mmdebstrap arch-test")
    partial = cache / "root.partial"
    for stale in (root, partial):
        shutil.rmtree(stale, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    run(["mmdebstrap", "--quiet", "--mode=root", "--arch=arm64", "--variant=apt",
         f"--include={','.join(PACKAGES)}", SUITE, str(partial)], "mmdebstrap")
    partial.rename(root)
    stamp.write_text(ROOT_RECIPE)
    return root, True


HOST_CA = "/etc/ssl/host-ca-bundle.crt"  # where the host's CA bundle is copied inside the root
PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


def root_environment() -> list[str]:
    """A clean environment inside the root: the host's proxy settings and CA bundle, for pip, and nothing else."""
    env = ["PATH=/usr/bin:/bin", "HOME=/root", "LANG=C.UTF-8", f"PIP_CERT={HOST_CA}", "PIP_DEFAULT_TIMEOUT=120"]
    return env + [f"{name}={os.environ[name]}" for name in PROXY_VARIABLES if os.environ.get(name)]


def in_root(root: Path, command: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    """``command`` chrooted into ``root`` with /proc and /dev, in a private mount namespace (nothing leaks)."""
    script = ('mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" && root="$1" && shift '
              '&& exec chroot "$root" env -i "$@"')
    return run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(root),
                *root_environment(), *command], what, **kwargs)


def host_ca_bundle() -> Path:
    """The CA bundle this machine's own pip trusts (a TLS-inspecting proxy's CA included, where there is one)."""
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise CheckError("no CA bundle found for pip (set PIP_CERT, or apt-get install ca-certificates)")


def install_device_side(root: Path) -> dict:
    """Copy the working tree to /src/ser-edge in the root and ``pip install .`` it into a venv."""
    source = root / "src" / "ser-edge"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "*.egg-info", "build", ".pytest_cache", ".benchmarks", "cache", "runs"))
    shutil.copy2("/etc/resolv.conf", root / "etc" / "resolv.conf")
    shutil.copyfile(host_ca_bundle(), root / HOST_CA.lstrip("/"))
    if not (root / VENV.lstrip("/") / "bin" / "python").exists():
        in_root(root, ["python3", "-m", "venv", VENV], "python3 -m venv")
    # --no-compile: byte-compiling all of numpy and scipy under emulation is most of the install's time;
    # Python compiles what ser-edge imports when it first runs. Otherwise the README's `pip install .`.
    in_root(root, [f"{VENV}/bin/pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check",
                   "/src/ser-edge"], "pip install . (arm64)")
    probe = ("import json, platform, importlib.metadata as m; print(json.dumps({'machine': platform.machine(), "
             "'python': platform.python_version(), 'libc': ' '.join(platform.libc_ver()), "
             "'packages': sorted(d.metadata['Name'].lower() for d in m.distributions())}))")
    return json.loads(in_root(root, [f"{VENV}/bin/python", "-c", probe], "probe").stdout)


def default_files(work: Path) -> list[Path]:
    """espeak-ng sentences, plus RAVDESS (48 kHz, some stereo) and EMO-DB files where the shared folder has them."""
    if shutil.which("espeak-ng") is None:
        raise CheckError("espeak-ng is not installed (apt-get install espeak-ng), and no files were given")
    work.mkdir(parents=True, exist_ok=True)
    files = []
    for i, text in enumerate(SPEECH):
        path = work / f"espeak{i}.wav"
        run(["espeak-ng", "-w", str(path), text], "espeak-ng")
        files.append(path)
    files.append(white_noise(work / "white-noise.wav"))  # the speech gate must turn it away on both sides
    for pattern, count in (("ravdess/Actor_0[1-2]/*.*", 3), ("emodb/*.*", 2)):
        found = sorted(p for p in SHARED.glob(pattern) if p.suffix in (".wav", ".flac"))
        files += found[:: max(1, len(found) // count)][:count]
    return files


def white_noise(path: Path, seconds: float = 3.0, rate: int = 22050) -> Path:
    """Seeded uniform white noise as 16-bit PCM (standard library only: this script runs before any venv)."""
    import random
    import struct
    import wave

    generator = random.Random(20240611)
    samples = [generator.randint(-16384, 16383) for _ in range(round(seconds * rate))]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return path


def classify_in_root(root: Path, files: list[Path], model: str) -> list[dict]:
    """``ser-edge classify --json`` inside the root, one process per file.

    Why not one process for all: under qemu-user, most LiteRT invokes after a process's first
    classification took about 30 s instead of 2-3 s (same file, same interpreter; measured with
    qemu 7.2 of Debian bookworm, 2026-11-28), which made the multi-file run most of CI's time. On x86-64, natively,
    both are milliseconds, so we take it for the emulator's cost (no Pi has been measured); one file
    per process keeps what the check compares (labels and probabilities) at about half the time a file.
    """
    data = root / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir()
    results = []
    for i, path in enumerate(files):
        name = f"{i:02d}-{path.name}"
        shutil.copy2(path, data / name)
        done = in_root(root, [f"{VENV}/bin/ser-edge", "classify", "--json", "--model", model, f"/data/{name}"],
                       f"ser-edge classify --model {model} {path.name} (arm64)")
        results += [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return results


def classify_here(files: list[Path], model: str) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = run([sys.executable, "-m", "ser_edge.edge.cli", "classify", "--json", "--model", model, *map(str, files)],
               f"ser-edge classify --model {model} ({platform.machine()})", env=env, cwd=REPO)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def compare(here: list[dict], arm: list[dict], tolerance: float) -> tuple[list[str], float]:
    """Differences beyond ``tolerance`` (labels, probabilities), and the largest probability difference seen."""
    problems, largest = [], 0.0
    if len(here) != len(arm):
        return [f"{len(here)} results here but {len(arm)} on arm64"], float("inf")
    for a, b in zip(here, arm):
        name = Path(a["file"]).name
        if a["label"] != b["label"]:
            problems.append(f"{name}: label {a['label']} here, {b['label']} on arm64")
        speech_here, speech_arm = a.get("speech_probability"), b.get("speech_probability")
        if (speech_here is None) != (speech_arm is None):  # Silero on one side, the energy fallback on the other
            problems.append(f"{name}: speech gate {'energy' if speech_here is None else 'Silero'} here, "
                            f"{'energy' if speech_arm is None else 'Silero'} on arm64")
        elif speech_here is not None and abs(speech_here - speech_arm) > tolerance:
            problems.append(f"{name}: speech probability {speech_here} here, {speech_arm} on arm64")
        if "probabilities" not in a or "probabilities" not in b:  # not speech on a side: the label said so
            continue
        if set(a["probabilities"]) != set(b["probabilities"]):
            problems.append(f"{name}: different label sets")
            continue
        diff = max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in a["probabilities"])
        largest = max(largest, diff)
        if diff > tolerance:
            problems.append(f"{name}: probabilities differ by up to {diff:.4f} (> {tolerance})")
    return problems, largest


def run(command: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    except FileNotFoundError as error:
        raise CheckError(f"{what}: {error.filename} not found") from None
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}").splitlines()
        errors = [line.strip() for line in lines if line.strip().startswith(("ERROR", "E:", "error:"))]
        raise CheckError(f"{what} failed: {(errors or lines)[0] if errors else lines[-1]}")
    return done


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="audio files (default: espeak-ng speech + dataset files)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"where the root lives (default {DEFAULT_CACHE})")
    parser.add_argument("--model", action="append", help="model(s) to compare (default: ravdess and emodb)")
    parser.add_argument("--tolerance", type=float, default=0.02, help="largest allowed probability difference")
    parser.add_argument("--out", type=Path, help="write every result and the comparison here as JSON")
    return parser.parse_args(argv)


def check(args: argparse.Namespace) -> dict:
    if os.geteuid() != 0:
        raise CheckError("needs root (binfmt_misc, mmdebstrap --mode=root, chroot)")
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        raise CheckError(f"no such file: {missing[0]}")
    started = time.monotonic()
    binfmt = ensure_binfmt()
    root, built = build_root(args.cache)
    rooted = time.monotonic()
    target = install_device_side(root)
    installed = time.monotonic()
    if target["machine"] != "aarch64":
        raise CheckError(f"the root's Python reports {target['machine']!r}, not aarch64")
    files = args.files or default_files(args.cache / "speech")
    report = {"binfmt": binfmt, "root_built_now": built, "target": target, "host_machine": platform.machine(),
              "tolerance": args.tolerance, "files": [str(p) for p in files], "models": {}}
    for model in args.model or ["ravdess", "emodb"]:
        here, arm = classify_here(files, model), classify_in_root(root, files, model)
        problems, largest = compare(here, arm, args.tolerance)
        report["models"][model] = {"here": here, "arm64": arm, "problems": problems, "largest_difference": largest}
    # Wall-clock of this script's steps: the cost of the check, not a speed of anything on a Pi.
    report["check_wall_s"] = {"root": round(rooted - started, 1), "install": round(installed - rooted, 1),
                              "total": round(time.monotonic() - started, 1)}
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = check(args)
    except BinfmtRefused as error:
        print(f"arm64_check: skipped: {error}", file=sys.stderr)
        return EXIT_NO_BINFMT
    except CheckError as error:
        print(f"arm64_check: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    target = report["target"]
    print(f"arm64 root: {target['machine']}, Python {target['python']}, {target['libc']}; "
          f"root {'built' if report['root_built_now'] else 'reused'}; binfmt {report['binfmt']}")
    failed = False
    for model, result in report["models"].items():
        verdict = "DIFFER" if result["problems"] else "agree"
        print(f"{model}: {len(result['here'])} files, labels and probabilities {verdict} "
              f"(largest probability difference {result['largest_difference']:.4f})")
        for problem in result["problems"]:
            print(f"  {problem}")
        failed |= bool(result["problems"])
    return EXIT_DIFFER if failed else 0


if __name__ == "__main__":
    sys.exit(main())
