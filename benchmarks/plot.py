"""PNGs of a run: latency per stage, and the confusion matrix where labels match (matplotlib, imported only here).

Histograms are drawn over the bulk of the values: a few slow outliers (a
page fault, another process) would otherwise stretch the axis so far that
every other utterance falls into the first bar. What lies beyond is counted
on the panel, never silently dropped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ser_edge.benchmarks.report import STAGE_TITLES
from ser_edge.benchmarks.run import STAGES, Measurement

log = logging.getLogger(__name__)

FENCE_IQRS = 3.0  # Tukey's "far out" fence: beyond Q3 + 3 IQR a value is an outlier
MAX_BINS = 40


def histogram_range(values: np.ndarray) -> tuple[float, float]:
    """(low, high) that holds the bulk of ``values``: min to the outlier fence, at least to p95."""
    values = np.asarray(values, dtype=np.float64)
    q1, q3, p95 = np.percentile(values, [25, 75, 95])
    spread = max(q3 - q1, 1e-3 * max(abs(q3), 1e-9))  # identical values: a thin range, not an empty one
    high = min(float(values.max()), max(q3 + FENCE_IQRS * spread, float(p95)))
    low = float(values.min())
    if high <= low:
        high = low + spread
    return low, high


def latency_figure(litert: Measurement, title: str, baseline: dict[str, Measurement] | None = None):
    """The figure: one histogram per LiteRT stage (ms), plus totals against the baseline if any."""
    import matplotlib.pyplot as plt

    panels = len(STAGES) + (1 if baseline else 0)
    figure, axes = plt.subplots(1, panels, figsize=(3.8 * panels, 3.6), constrained_layout=True)
    for axis, stage in zip(axes, STAGES):
        _histogram(axis, 1000 * np.asarray(litert.stage(stage)), STAGE_TITLES[stage])
    if baseline:
        _totals_box(axes[-1], litert, baseline)
    figure.suptitle(title)
    return figure


def confusion_figure(scores: dict, title: str):
    """Row-normalised confusion matrix: each row is one true class, its cells sum to 1 (the diagonal is recall)."""
    import matplotlib.pyplot as plt

    labels = scores["labels"]
    counts = np.asarray(scores["confusion"], dtype=np.float64)
    support = counts.sum(axis=1, keepdims=True)
    recall = np.divide(counts, support, out=np.full_like(counts, np.nan), where=support > 0)
    size = 1.2 + 0.65 * len(labels)
    figure, axis = plt.subplots(figsize=(size + 1.2, size), constrained_layout=True)
    image = axis.imshow(np.ma.masked_invalid(recall), cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if np.isnan(recall[i, j]):
                text, colour = "-", "grey"
            else:
                text, colour = f"{100 * recall[i, j]:.0f}", "white" if recall[i, j] > 0.6 else "black"
            axis.text(j, i, text, ha="center", va="center", fontsize="small", color=colour)
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), [f"{name} ({int(n)})" for name, n in zip(labels, support[:, 0])])
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class (utterances)")
    figure.colorbar(image, ax=axis, label="share of the true class (%: row-normalised; diagonal = recall)")
    axis.set_title(f"{title}\nWAR {100 * scores['war']:.1f} %, UAR {100 * scores['uar']:.1f} %, "
                   f"n = {scores['n']}", fontsize="medium")
    return figure


def write_latency_png(litert: Measurement, path: Path, title: str,
                      baseline: dict[str, Measurement] | None = None) -> Path | None:
    """latency.png; None, after a warning, where matplotlib is not installed (it is not needed on a Pi)."""
    if not _matplotlib(path):
        return None
    return _save(latency_figure(litert, title, baseline), path)


def write_confusion_png(scores: dict, path: Path, title: str) -> Path | None:
    """confusion.png; None where matplotlib is not installed."""
    if not _matplotlib(path):
        return None
    return _save(confusion_figure(scores, title), path)


def _matplotlib(path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on a Pi or a CI box
        import matplotlib.pyplot  # noqa: F401
    except ImportError:
        log.warning("matplotlib is not installed: no %s (pip install matplotlib)", path.name)
        return False
    return True


def _save(figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _histogram(axis, values_ms: np.ndarray, title: str) -> None:
    from matplotlib.ticker import MaxNLocator

    low, high = histogram_range(values_ms)
    shown = values_ms[values_ms <= high]
    beyond = values_ms[values_ms > high]
    axis.hist(shown, bins=min(MAX_BINS, max(5, shown.size // 5)), range=(low, high), color="tab:blue", alpha=0.8)
    mean, p95 = values_ms.mean(), np.percentile(values_ms, 95)
    for value, style, name in ((mean, dict(color="black", linestyle="-"), "mean"),
                               (p95, dict(color="tab:red", linestyle="--"), "p95")):
        label = f"{name} {value:.1f} ms"
        if value <= high:
            axis.axvline(value, label=label, **style)
        else:  # off the drawn range: still in the legend
            axis.plot([], [], label=f"{label} (off scale)", **style)
    if beyond.size:
        span = f"{beyond.max():.1f} ms" if beyond.size == 1 else f"{beyond.min():.1f} to {beyond.max():.1f} ms"
        axis.text(0.98, 0.62, f"{beyond.size} slower, not drawn:\n{span}",
                  transform=axis.transAxes, ha="right", va="top", fontsize="small", color="tab:red")
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_title(title)
    axis.set_xlabel("time per utterance (ms)")
    axis.set_ylabel("utterances")
    axis.legend(fontsize="small")


def _totals_box(axis, litert: Measurement, baseline: dict[str, Measurement]) -> None:
    shared = {t.path for t in litert.timings}
    for measurement in baseline.values():
        shared &= {t.path for t in measurement.timings}
    series = {"LiteRT": [1000 * t.stages["total"] for t in litert.timings if t.path in shared]}
    for mode, measurement in baseline.items():
        series[f"Keras {mode}"] = [1000 * t.stages["total"] for t in measurement.timings if t.path in shared]
    series = {name: values for name, values in series.items() if values}
    if not series:
        axis.set_visible(False)
        return
    axis.boxplot(list(series.values()), showfliers=True)
    axis.set_xticks(range(1, len(series) + 1), list(series), rotation=20)
    axis.set_yscale("log")
    axis.set_xlabel("pipeline")
    axis.set_ylabel("total time per utterance (ms, log scale)")
    axis.set_title(f"total, same {len(shared)} utterances")
