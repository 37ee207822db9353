"""Pictures of learned maps (matplotlib's object API: no pyplot state, no display needed)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

__all__ = ["save_map_figures", "save_team_maps_figure"]

MappingTask = Any
"""A :class:`dinno_core.tasks.mapping.task.MappingTask` (not imported: task.py imports this module)."""


def _show(axes, image: np.ndarray, task: MappingTask, title: str, coverage: np.ndarray | None = None) -> None:
    axes.imshow(image, cmap="gray_r", vmin=0.0, vmax=1.0, extent=task.grid.extent, interpolation="nearest")
    if coverage is not None:
        xs = np.linspace(task.grid.extent[0], task.grid.extent[1], task.grid.cols)
        ys = np.linspace(task.grid.extent[3], task.grid.extent[2], task.grid.rows)
        axes.contour(xs, ys, coverage.astype(float), levels=[0.5], colors="tab:orange", linewidths=0.8)
    axes.set_title(title, fontsize=9)
    axes.set_xticks([])
    axes.set_yticks([])


def save_map_figures(task: MappingTask, weights: Mapping[str, Tensor], out_dir: Path) -> list[Path]:
    """Write ``maps.png`` (truth + robot 0's map per algorithm), ``maps_<algorithm>.png`` (every
    robot's map, its lidar coverage outlined in orange) and ``unseen_regions.json`` (per robot:
    accuracy and occupied-IoU on the known cells that robot never observed)."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    truth = np.nan_to_num(task.ground_truth_map(), nan=0.5)
    maps = {name: [task.render_map(theta[i]) for i in range(theta.shape[0])] for name, theta in weights.items()}

    figure = Figure(figsize=(3.2 * (len(maps) + 1), 3.2 * task.grid.rows / task.grid.cols + 0.6))
    axes = figure.subplots(1, len(maps) + 1, squeeze=False)[0]
    _show(axes[0], truth, task, "ground truth")
    for ax, (name, pictures) in zip(axes[1:], maps.items()):
        _show(ax, pictures[0], task, f"{name} (robot 0)" if len(pictures) > 1 else name)
    figure.tight_layout()
    written.append(out_dir / "maps.png")
    figure.savefig(written[-1], dpi=110)

    unseen: dict[str, list[dict[str, float]]] = {}
    for name, pictures in maps.items():
        if len(pictures) == 1:
            continue
        columns = min(len(pictures), 4)
        rows = math.ceil(len(pictures) / columns)
        figure = Figure(figsize=(3.2 * columns, (3.2 * task.grid.rows / task.grid.cols + 0.4) * rows))
        grid = figure.subplots(rows, columns, squeeze=False)
        unseen[name] = []
        for robot, picture in enumerate(pictures):
            accuracy = task.unseen_region_accuracy(picture, robot)
            iou = task.unseen_region_iou(picture, robot)
            unseen[name].append({"accuracy": accuracy, "occupied_iou": iou})
            _show(grid.flat[robot], picture, task, f"robot {robot}: unseen acc {accuracy:.2f} IoU {iou:.2f}",
                  task.coverage_mask(robot))
        for ax in list(grid.flat)[len(pictures):]:
            ax.set_axis_off()
        figure.suptitle(f"{name}: every robot's map (orange: what its lidar saw)", fontsize=10)
        figure.tight_layout()
        written.append(out_dir / f"maps_{name}.png")
        figure.savefig(written[-1], dpi=100)
    written.append(out_dir / "unseen_regions.json")
    written[-1].write_text(json.dumps(unseen, indent=2))
    return written


def save_team_maps_figure(path: Path, task: Any, robot_ids: list[str], team_maps: np.ndarray,
                          individual_maps: np.ndarray | None, team_metrics: dict[str, list[float]],
                          individual_metrics: dict[str, list[float]] | None, trace: dict[str, np.ndarray] | None,
                          title: str) -> Path:
    """One PNG: ground truth + every team robot's map (top row), every individual robot's map
    (bottom row), each robot's driven path (``trace["poses"]``) in colour."""
    grid = task.grid
    rows = 2 if individual_maps is not None else 1
    columns = len(robot_ids) + 1
    aspect = grid.rows / grid.cols
    figure = Figure(figsize=(2.6 * columns, (2.6 * aspect + 0.55) * rows + 0.4))
    axes = figure.subplots(rows, columns, squeeze=False)
    colours = [f"C{i % 10}" for i in range(len(robot_ids))]

    def show(ax: Any, image: np.ndarray, title: str, robot: int | None = None) -> None:
        ax.imshow(image, cmap="gray_r", vmin=0.0, vmax=1.0, extent=grid.extent, interpolation="nearest")
        if robot is not None and trace is not None and len(trace["poses"]):
            xy = trace["poses"][:, robot, :2]
            ax.plot(xy[:, 0], xy[:, 1], color=colours[robot], linewidth=0.8)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])

    truth = np.nan_to_num(task.ground_truth_map(), nan=0.5)
    show(axes[0, 0], truth, "ground truth")
    for i, robot in enumerate(robot_ids):
        show(axes[0, i + 1], team_maps[i], f"team {robot}\nval loss {team_metrics['validation_loss'][i]:.3f} "
             f"IoU {team_metrics['occupancy_iou'][i]:.2f}", i)
    if individual_maps is not None and individual_metrics is not None:
        axes[1, 0].set_axis_off()
        axes[1, 0].text(0.5, 0.5, "bottom: each robot\nalone (individual),\nsame scans & rounds\n\nlines: the path\neach robot drove",
                        ha="center", va="center", fontsize=8, transform=axes[1, 0].transAxes)
        for i, robot in enumerate(robot_ids):
            show(axes[1, i + 1], individual_maps[i], f"alone {robot}\nval loss "
                 f"{individual_metrics['validation_loss'][i]:.3f} IoU {individual_metrics['occupancy_iou'][i]:.2f}", i)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path
