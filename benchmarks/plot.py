"""A PNG of the latency distribution per stage (matplotlib, imported only here and only when drawing)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from benchmarks.report import STAGE_TITLES
from benchmarks.run import STAGES, Measurement

log = logging.getLogger(__name__)


def write_latency_png(litert: Measurement, path: Path, title: str,
                      baseline: dict[str, Measurement] | None = None) -> Path | None:
    """Histograms of each LiteRT stage (ms), plus a box plot of totals against the baseline if any.

    Returns None, after a warning, where matplotlib is not installed (it is not needed on a Pi).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on a Pi or a CI box
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no %s (pip install matplotlib)", path.name)
        return None
    panels = len(STAGES) + (1 if baseline else 0)
    figure, axes = plt.subplots(1, panels, figsize=(3.6 * panels, 3.4), constrained_layout=True)
    for axis, stage in zip(axes, STAGES):
        _histogram(axis, 1000 * np.asarray(litert.stage(stage)), STAGE_TITLES[stage])
    if baseline:
        _totals_box(axes[-1], litert, baseline)
    figure.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _histogram(axis, values_ms: np.ndarray, title: str) -> None:
    axis.hist(values_ms, bins=min(40, max(5, values_ms.size // 5)), color="tab:blue", alpha=0.8)
    axis.axvline(values_ms.mean(), color="black", linestyle="-", label=f"mean {values_ms.mean():.1f}")
    p95 = np.percentile(values_ms, 95)
    axis.axvline(p95, color="tab:red", linestyle="--", label=f"p95 {p95:.1f}")
    axis.set_title(title)
    axis.set_xlabel("ms")
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
    axis.set_ylabel("total ms (log)")
    axis.set_title(f"total, same {len(shared)} utterances")
