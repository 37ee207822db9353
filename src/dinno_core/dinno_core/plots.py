"""Plots of experiment results (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_LOG_SCALE = {"validation_loss", "training_loss", "consensus_error"}


def plot_curves(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """One PNG per metric, one curve per algorithm; returns the files written."""
    algorithms = results["algorithms"]
    metric_names = sorted({m for a in algorithms.values() for m in a["curves"] if m != "round"})
    written = []
    for metric in metric_names:
        figure, axes = plt.subplots(figsize=(6, 4))
        for name, algorithm in algorithms.items():
            if metric in algorithm["curves"]:
                axes.plot(algorithm["curves"]["round"], algorithm["curves"][metric], label=name)
        axes.set_xlabel("round")
        axes.set_ylabel(metric.replace("_", " "))
        values = [v for a in algorithms.values() for v in a["curves"].get(metric, [])]
        if metric in _LOG_SCALE and values and min(values) > 0:
            axes.set_yscale("log")
        axes.grid(alpha=0.3)
        axes.legend()
        axes.set_title(f"{results['config']['name']}: {metric.replace('_', ' ')}")
        figure.tight_layout()
        path = out_dir / f"{metric}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written
