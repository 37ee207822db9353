"""Curves against rounds as PNG files (matplotlib's object API: no pyplot state, no display).

:func:`save_curves` draws one metric, one line per series (algorithm or robot); the experiment
runner (:func:`plot_curves`) and ``dinno-team`` (per-robot status history) both use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

_LOG_SCALE = {"validation_loss", "training_loss", "consensus_error"}


def save_curves(series: Mapping[str, tuple[Sequence[float], Sequence[float | None]]], metric: str, title: str,
                path: Path, log_scale: bool = False, legend_size: str | None = None, x_label: str = "round") -> Path:
    """``series[label] = (xs, values)``, x in rounds unless ``x_label`` says otherwise; None/NaN/Inf
    values are skipped, and on a log scale non-positive ones too. An empty plot says so."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    plotted = False
    for label, (rounds, values) in series.items():
        points = [(r, v) for r, v in zip(rounds, values) if v is not None and math.isfinite(v)
                  and (v > 0 or not log_scale)]
        if points:
            xs, ys = zip(*points)
            axes.plot(xs, ys, label=label)
            plotted = True
    axes.set_xlabel(x_label)
    axes.set_ylabel(metric.replace("_", " "))
    if plotted and log_scale:
        axes.set_yscale("log")
    if plotted:
        axes.legend(fontsize=legend_size)
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    axes.grid(alpha=0.3)
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def plot_curves(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """One PNG per metric, one curve per algorithm; returns the files written."""
    algorithms = results["algorithms"]
    x_name = results.get("curve_x", "round")
    metric_names = sorted({m for a in algorithms.values() for m in a["curves"] if m not in ("round", x_name)})
    written = []
    for metric in metric_names:
        series = {name: (a["curves"][x_name], a["curves"][metric]) for name, a in algorithms.items()
                  if metric in a["curves"]}
        values = [v for _, ys in series.values() for v in ys]
        log_scale = metric in _LOG_SCALE and bool(values) and min(values) > 0
        written.append(save_curves(series, metric, f"{results['config']['name']}: {metric.replace('_', ' ')}",
                                   out_dir / f"{metric}.png", log_scale,
                                   x_label=x_name.replace("_", " ")))
    return written
