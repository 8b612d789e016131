"""``ser-edge``: classify files, inspect models, list devices, and ``listen`` (the daemon)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ser_edge.edge import __version__
from ser_edge.edge import command
from ser_edge.edge.config import LEVELS
from ser_edge.edge.errors import SerEdgeError
from ser_edge.edge.native_stderr import set_verbose
from ser_edge.edge.registry import DEFAULT_MODEL, model_choices


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ser-edge", description="On-device speech emotion recognition (TPMNet, LiteRT).")
    parser.add_argument("--version", action="version", version=f"ser-edge {__version__}")
    parser.add_argument("--verbose", action="store_true", help="also show LiteRT's own log lines on stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    model_help = f"a shipped model ({model_choices()}) or a .tflite path (default {DEFAULT_MODEL})"

    classify = commands.add_parser("classify", help="classify audio files: one result per file, or per "
                                   "utterance for files longer than the model's window")
    classify.add_argument("files", nargs="+")
    classify.add_argument("--model", default=DEFAULT_MODEL, help=model_help)
    classify.add_argument("--threads", type=int, default=1, help="LiteRT and BLAS threads (default 1)")
    classify.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    add_judgement_flags(classify)

    info = commands.add_parser("info", help="what a model is: labels, variant, accuracy figures, size")
    info.add_argument("model", nargs="?", default=DEFAULT_MODEL, help=model_help)
    info.add_argument("--json", action="store_true", help="all the metadata the file carries, as JSON")

    commands.add_parser("devices", help="list audio input devices")

    listen = commands.add_parser("listen", help="classify speech from the microphone (or --input) as JSON lines")
    listen.add_argument("--config", help="TOML file; flags override it")
    listen.add_argument("--model", help=model_help)
    listen.add_argument("--threads", type=int, help="LiteRT and BLAS threads (default 1)")
    listen.add_argument("--device", help="input device name or index (see ser-edge devices)")
    listen.add_argument("--input", help="read this audio file, or - for raw s16le mono PCM on stdin")
    listen.add_argument("--input-rate", type=int, help="sample rate of raw PCM on stdin (default: the model's)")
    listen.add_argument("--jsonl", help="also append results to this JSON-lines file")
    listen.add_argument("--no-jsonl", dest="jsonl", action="store_const", const="",
                        help="write no JSON-lines file, whatever the config says")
    listen.add_argument("--duration", dest="duration_s", type=float, help="stop after this many seconds of audio")
    listen.add_argument("--energy-threshold-db", type=float, help="speech above this RMS level (dBFS)")
    listen.add_argument("--min-speech-s", type=float, help="ignore sounds shorter than this")
    listen.add_argument("--max-silence-s", type=float, help="this much silence ends an utterance")
    add_judgement_flags(listen)
    listen.add_argument("--speaker-state", metavar="FILE",
                        help="models trained with per-speaker statistics: keep the running statistics of the voice "
                             "heard in FILE across restarts (default: in memory only)")
    listen.add_argument("--speaker-min-utterances", type=int, metavar="N",
                        help="utterances heard before the speaker's own statistics replace the training speakers' "
                             "(default 16)")
    listen.add_argument("--log-level", choices=command.LOG_LEVELS)
    listen.add_argument("--mqtt", metavar="mqtt://HOST[:PORT]",
                        help="also publish each utterance to this MQTT broker, with Home Assistant discovery")
    listen.add_argument("--no-mqtt", dest="mqtt", action="store_const", const="",
                        help="publish nothing over MQTT, whatever the config says")
    listen.add_argument("--mqtt-credentials", metavar="FILE",
                        help="TOML file with username and password (default: systemd's 'mqtt' credential, "
                             "else $SER_EDGE_MQTT_USERNAME / $SER_EDGE_MQTT_PASSWORD)")
    listen.add_argument("--mqtt-device-id", help="Home Assistant device id (default: the host name)")
    listen.add_argument("--mqtt-queue", type=int, help="events kept while the broker is unreachable (default 1000)")
    return parser


def add_judgement_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--speech-threshold", type=float,
                        help="Silero speech probability a segment needs to be classified (default 0.5)")
    parser.add_argument("--uncertain-below", type=float,
                        help="label 'uncertain' below this top probability (default: the model's measured threshold)")
    parser.add_argument("--level", choices=LEVELS,
                        help="normalised (default): every utterance at the training files' level, so the distance "
                             "to the microphone does not change the label; as-recorded: the level as captured")


def main(argv: list[str] | None = None) -> int:
    closed = guard_standard_streams()
    args = build_parser().parse_args(argv)
    set_verbose(args.verbose)

    def body() -> int:
        if 1 in closed:
            raise SerEdgeError("stdout is closed: results would be lost (run it with stdout open, e.g. >/dev/null)")
        return COMMANDS[args.command](args)

    # reader_gone: classify piped into head; listen reports a closed reader itself
    return command.run("ser-edge", body, reader_gone=0)


def guard_standard_streams() -> set[int]:
    """Put /dev/null on any of fds 0-2 the caller closed; return which were closed.

    Otherwise the next open() (the JSONL file, a model) takes that number and
    becomes "stdout", and Python sends print(file=None) to stdout instead of stderr.
    """
    closed = set()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            # os.open returns the lowest free descriptor: fd itself, as the lower ones are open.
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
            closed.add(fd)
    if 1 in closed:
        sys.stdout = open(1, "w", closefd=False)
    if 2 in closed:
        sys.stderr = open(2, "w", closefd=False)
    return closed


def cmd_classify(args) -> int:
    from ser_edge.edge import audio, pieces
    from ser_edge.edge.classifier import EmotionClassifier
    from ser_edge.edge.classify_rows import HEADER, as_json, as_row, warn_fallback
    from ser_edge.edge.judge import Judge
    from ser_edge.edge.registry import resolve_model
    from ser_edge.edge.settings import ListenSettings
    from ser_edge.edge.speech_gate import load_gate

    # listen's defaults and bounds: a long file is split and gated as listen --input would do it
    settings = ListenSettings(**{key: value for key, value in (("speech_threshold", args.speech_threshold),
                                 ("uncertain_below", args.uncertain_below), ("level", args.level))
                                 if value is not None})
    classifier = EmotionClassifier(resolve_model(args.model), threads=args.threads, level=settings.level)
    judge = Judge(classifier, load_gate(settings.speech_threshold, settings.segmenter), settings.uncertain_below)
    warn_fallback(judge.gate)
    failures = 0
    if not args.json:
        print(HEADER)
    for path in args.files:
        try:
            found = pieces.split(audio.load(path, classifier.sample_rate), classifier.sample_rate,
                                 classifier.features.num_samples, settings.segmenter)
            results = [(piece, judge.judge(piece.samples)) for piece in found.pieces]
        except SerEdgeError as error:  # one bad file must not hide the others' results
            failures += 1
            print(f"ser-edge: error: {error}", file=sys.stderr)
            continue
        note = found.describe(settings.segmenter)
        for number, (piece, judgement) in enumerate(results, 1):
            where = {"utterance": number, "utterances": len(results), "note": note} if found.segmented else {}
            print(as_json(path, piece, judgement, where) if args.json else as_row(path, piece, judgement))
        if note and args.json and not results:
            print(json.dumps({"file": path, "label": None, "utterances": 0, "note": note}))
        elif note and not args.json:
            print(f"{path}: {note}")
    return 1 if failures else 0


def cmd_info(args) -> int:
    from ser_edge.edge import model_summary
    from ser_edge.edge.model_file import read_metadata
    from ser_edge.edge.registry import resolve_model

    path = resolve_model(args.model)
    metadata = read_metadata(path)
    parity = model_summary.find_parity_report(path)
    print((model_summary.as_json if args.json else model_summary.summary)(path, metadata, parity))
    if not args.json:
        from ser_edge.edge.segmenter import SegmenterSettings
        from ser_edge.edge.speech_gate import DEFAULT_THRESHOLD, load_gate

        gate = load_gate(DEFAULT_THRESHOLD, SegmenterSettings())
        print(f"speech gate: {gate.description}" + (f" ({gate.reason})" if getattr(gate, "reason", "") else ""))
    return 0


def cmd_devices(args) -> int:
    from ser_edge.edge.sources import import_sounddevice, input_devices, no_microphone_report

    sd = import_sounddevice()
    try:
        sd.query_devices()
        default_input = sd.default.device[0]
    except sd.PortAudioError as error:
        raise SerEdgeError(f"cannot list audio devices: {error}") from None
    inputs = input_devices(sd)
    if not inputs:
        print(no_microphone_report(), file=sys.stderr)
        return 1
    for device in inputs:
        marker = "*" if device["index"] == default_input else " "
        print(f"{marker} {device['index']:3d}  {device['name']}  ({device['max_input_channels']} ch, "
              f"{device['default_samplerate']:.0f} Hz default)")
    return 0


def cmd_listen(args) -> int:
    from ser_edge.edge.daemon import run_listen
    from ser_edge.edge.settings import KEYS, load_settings

    overrides = {key: getattr(args, key) for key in KEYS if hasattr(args, key)}  # a flag per settings key
    settings = load_settings(args.config, overrides)
    command.log_to_stderr(settings.log_level, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_listen(settings)


COMMANDS = {"classify": cmd_classify, "info": cmd_info, "devices": cmd_devices, "listen": cmd_listen}

if __name__ == "__main__":
    sys.exit(main())
