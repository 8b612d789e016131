"""``ser-edge info``: what a model file is, in a dozen lines (the full metadata behind ``--json``).

Everything shown comes from the file's embedded metadata, plus the parity
report that ``ser-export --report`` wrote for that very file, where one is
found beside it: that report is what says whether a quantized variant still
agrees with the model it was converted from.
"""

from __future__ import annotations

import json
from pathlib import Path

from ser_edge.edge.registry import VARIANT_KINDS

# What the README promises of a variant: top-1 agreement with the Keras model
# and accuracy lost on the held-out split (the speed target needs float32's report too).
MIN_AGREEMENT = 0.98
MAX_WAR_LOSS = 0.01



def find_parity_report(model: Path) -> dict | None:
    """The parity report written for exactly this file (same name and size), if it lies beside it."""
    stem = model.name.removesuffix(".tflite")
    for candidate in (model.parent / "parity" / f"{stem}.parity.json", model.parent / f"{stem}.parity.json"):
        try:
            report = json.loads(candidate.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and report.get("file") == model.name and report.get("bytes") == model.stat().st_size:
            return report
    return None


def verdict(metadata: dict, parity: dict | None) -> str | None:
    """"not recommended: ..." where the parity report shows the targets missed; None where they are met."""
    if parity is None:
        if metadata.get("quantization") == "int8":
            return "agreement with the model it was converted from is unknown: no parity report beside the file"
        return None
    try:
        agreement = float(parity["top1_agreement"])
        before, after = float(parity["keras"]["war"]), float(parity["tflite"]["war"])
    except (KeyError, TypeError, ValueError):
        return None
    missed = []
    if agreement < MIN_AGREEMENT:
        missed.append(f"top-1 agreement with the Keras model {100 * agreement:.1f} % (target >= "
                      f"{100 * MIN_AGREEMENT:.0f} %)")
    if before - after > MAX_WAR_LOSS:
        missed.append(f"accuracy {100 * before:.1f} -> {100 * after:.1f} % (target: at most "
                      f"{100 * MAX_WAR_LOSS:.0f} point lost)")
    if not missed:
        return None
    return f"not recommended: {', '.join(missed)} on {parity.get('held_out_items', '?')} held-out utterances"


def summary(path: Path, metadata: dict, parity: dict | None) -> str:
    """A few lines a person reads: labels, variant, accuracy figures, size, and a warning if one is due."""
    size = path.stat().st_size
    rows: list[tuple[str, str]] = []
    training = metadata.get("training") or {}
    settings = training.get("settings") or {}
    dataset = metadata.get("dataset") or "an unnamed dataset"
    trained = f"{dataset}"
    if training.get("train_size"):
        trained += f", {training['train_size']:,} utterances"
    if training.get("best_epoch") and settings.get("epochs"):
        trained += f" (weights of epoch {training['best_epoch']} of {settings['epochs']})"
    rows.append(("trained on", trained))
    labels = metadata.get("label_names") or []
    rows.append(("labels", f"{', '.join(labels)} ({len(labels)})" if labels else "none recorded"))
    quantization = metadata.get("quantization") or "unknown"
    mode = metadata.get("conversion_mode")
    if mode and mode != quantization:  # e.g. int8 with float islands: the mode says which
        variant = f"{quantization} ({mode})"
    else:
        variant = f"{quantization} ({VARIANT_KINDS[quantization]})" if quantization in VARIANT_KINDS else quantization
    rows.append(("variant", variant))
    rows += [("accuracy", line) for line in _accuracy_lines(training)] or [("accuracy", "not recorded in the file")]
    if parity is not None:
        rows.append(("vs Keras", _parity_line(parity)))
    rows.append(("uncertain", _uncertainty_line(metadata.get("uncertainty"))))
    features = metadata.get("features") or {}
    if features.get("sample_rate") and features.get("num_samples"):
        rate, samples = features["sample_rate"], features["num_samples"]
        rows.append(("input", f"{rate:,} Hz, windows of {samples / rate:.2f} s, {features.get('n_mfcc', '?')} MFCCs"))
    reference = features.get("level_reference")
    rows.append(("level", "as recorded (the model has no level reference)" if reference is None else
                 f"normalised: each utterance's loudest frame to c0 {reference:.1f} (setting level = \"as-recorded\" "
                 "turns it off)"))
    if features.get("speaker_mean"):
        rows.append(("speaker", "standardised by the voice's own statistics: `listen` learns them from what it "
                                "hears (the training speakers' pooled ones until speaker_min_utterances, 16); "
                                "`classify` uses the pooled ones"))
    warning = verdict(metadata, parity)
    if warning:
        rows.append(("WARNING", warning))
    width = max(len(name) for name, _ in rows)
    lines = [f"{path.name}: {size:,} bytes ({size / 1024:.0f} KiB), {path.parent}"]
    previous = None
    for name, value in rows:
        lines.append(f"  {'' if name == previous else name:{width}}  {value}")
        previous = name
    lines.append("everything the file carries: ser-edge info --json MODEL")
    return "\n".join(lines)


def as_json(path: Path, metadata: dict, parity: dict | None) -> str:
    return json.dumps({"file": str(path), "size_bytes": path.stat().st_size, "metadata": metadata,
                       "parity": parity, "warning": verdict(metadata, parity)}, indent=2)


def _accuracy_lines(training: dict) -> list[str]:
    lines = []
    for figure in training.get("figures") or []:
        try:
            war, uar = figure["war"], figure["uar"]
            spread = f" ± {100 * war['std']:.1f}" if figure["folds_finished"] > 1 else ""  # no spread from one fold
            lines.append(f"{figure['split']} {figure['folds_planned']}-fold cross-validation: WAR "
                         f"{100 * war['mean']:.1f}{spread} %, UAR {100 * uar['mean']:.1f} % "
                         f"({figure['folds_finished']} of {figure['folds_planned']} folds, "
                         f"{figure.get('epochs', '?')} epochs)")
        except (KeyError, TypeError):
            continue
        differs = figure.get("differs_from_model")
        if differs:  # right under the figure of a recipe that is not exactly this model's
            lines.append(f"(those folds were trained unlike this model in: {', '.join(sorted(differs))})")
    if not lines and training.get("cross_validation_war"):
        war = training["cross_validation_war"]
        lines.append(f"cross-validation: WAR {100 * war['mean']:.1f} ± {100 * war.get('std', 0):.1f} % "
                     f"({war.get('n', '?')} folds)")
    if training.get("validation_accuracy") is not None:
        lines.append(f"this model: {100 * training['validation_accuracy']:.1f} % on its validation split "
                     "(which chose its epoch)")
    return lines


def _uncertainty_line(record) -> str:
    if not isinstance(record, dict):
        return "no threshold in the file: every label is given as the model's best guess"
    try:
        if not record["target_reached"]:
            return (f"every label (no threshold reaches {100 * record['target_accuracy']:g} % on "
                    f"{record['validation_files']} validation files; best guess kept)")
        return (f"below {record['threshold']:.2f} top probability ({100 * record['accepted_accuracy']:.1f} % correct "
                f"at or above it, {record['accepted']} of {record['validation_files']} validation files)")
    except (KeyError, TypeError, ValueError):
        return "threshold record present but incomplete"


def _parity_line(parity: dict) -> str:
    try:
        return (f"top-1 agreement {100 * parity['top1_agreement']:.1f} %, WAR {100 * parity['keras']['war']:.1f} -> "
                f"{100 * parity['tflite']['war']:.1f} % on {parity['held_out_items']} held-out utterances")
    except (KeyError, TypeError):
        return "parity report present but incomplete"
