"""The DiNNO mapping demo: a team of robot processes learns one floor-plan map over real ROS 2.

    make demo                                     # = python -m dinno_ros.demo
    python -m dinno_ros.demo [--config YAML] [--out DIR] [--duration S] [--robots N] [--rounds K]

1. Runs the team of ``config/team_mapping_demo.yaml`` (robot nodes + the embedded lidar
   simulator, one process each) with ``dinno-team``'s own machinery (:class:`dinno_ros.team.TeamRun`:
   same bringup, live per-robot table, clean stop, ``team.json``, loss/consensus plots), bounded
   by ``--duration`` seconds (default 120) or the config's rounds, whichever comes first.
   The simulator records every scan it published (``sim_trace.npz``).
2. Evaluates each robot's final weights (``robots/<id>.weights.npy``, written by the node) with
   the core's ``MappingTask.evaluate``: validation loss (mean BCE on the validation scans),
   occupancy accuracy and occupied-class IoU on the plan's grid, and the accuracy on the cells
   that robot's own lidar never saw.
3. Trains the baseline offline, in this process, with the core: every robot ALONE (``individual``,
   the core's LocalTraining; same initial weights, minibatch generators, batch size, optimizer,
   learning-rate schedule and gradient steps per round as the team's DiNNO primal step) on
   exactly the scans that robot was sent (replayed from the trace: the same ranges and poses),
   for as many rounds as the team's robots ran. A scan taken while the team was stepping round
   k is in the individual robot's window from round k on (round times from the robots' status
   history): never later than it could have reached the ROS robot, so the schedule favours the
   baseline.
4. Writes ``summary.json`` (per-robot metrics for team and individual, the margins, agreement
   between robots), ``maps.png`` (ground truth, each team robot's map, each individual robot's
   map), and prints a table and the margin.

``ROS_AUTOMATIC_DISCOVERY_RANGE`` defaults to ``LOCALHOST`` when unset (said in the output): the
demo's traffic stays on this machine unless you ask otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

DEFAULT_CONFIG_NAME = "team_mapping_demo.yaml"
DEFAULT_OUT = Path("results") / "demo"
DEFAULT_DURATION = 120.0
METRICS = ("validation_loss", "occupancy_accuracy", "occupancy_iou")
LOWER_IS_BETTER = {"validation_loss"}


def default_config() -> Path:
    """``config/team_mapping_demo.yaml`` of this source tree, else of the installed package share."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "config" / DEFAULT_CONFIG_NAME
        if candidate.is_file():
            return candidate
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("dinno_ros")) / "config" / DEFAULT_CONFIG_NAME
    except Exception:  # noqa: BLE001 - no ament index: report the source-tree path
        return here.parents[3] / "config" / DEFAULT_CONFIG_NAME


# ----------------------------------------------------------------------------- config


def demo_config(path: Path, out_dir: Path, robots: int | None = None, rounds: int | None = None) -> Any:
    """The team config with the demo's overrides: team size, rounds, the simulator's trace file."""
    from dinno_core.config import load_yaml
    from dinno_ros.team_spec import team_config_from_dict

    data = load_yaml(path)
    if robots is not None:
        data["robots"] = robots
        if isinstance(data.get("graph"), dict):
            data["graph"] = {k: v for k, v in data["graph"].items() if k != "num_robots"}
    if rounds is not None:
        data["rounds"] = rounds
    task = data.get("task")
    if isinstance(task, dict) and isinstance(task.get("paths"), str) and not Path(task["paths"]).is_absolute():
        relative = path.parent / task["paths"]
        if relative.is_file() and not Path(task["paths"]).is_file():
            task["paths"] = str(relative.resolve())  # relative to the config file
    simulator = dict(data.get("simulator") or {})
    simulator["parameters"] = {**(simulator.get("parameters") or {}),
                               "trace_path": str((out_dir / "sim_trace.npz").resolve())}
    data["simulator"] = simulator
    config = team_config_from_dict(data, str(path))
    if config.task.name != "mapping":
        from dinno_core.config import ConfigError

        raise ConfigError(f"{path}: the demo needs the mapping task, got task.name={config.task.name!r}")
    return config


# ----------------------------------------------------------------------------- evaluation


class Evaluator:
    """The task, model and initial weights every robot node built (same seed, same calls)."""

    def __init__(self, config: Any) -> None:
        import torch

        from dinno_core.config import build_task
        from dinno_core.params import FlatModel

        self.config = config
        self.num_robots = config.num_robots
        torch.manual_seed(config.seed)
        self.task = build_task(config.task, self.num_robots, config.seed)
        self.flat = FlatModel(self.task.build_model(), self.task.loss)
        self.theta0 = self.flat.initial_weights()

    def metrics(self, theta: Any) -> dict[str, list[float]]:
        """Per-robot metrics of weights ``theta [R, n]`` (lists of R floats)."""
        from dinno_core.experiment import evaluate

        return {name: [float(v) for v in values] for name, values in evaluate(self.task, self.flat, theta).items()}

    def maps(self, theta: Any) -> np.ndarray:
        """Predicted occupancy ``[R, H, W]`` on the task's grid."""
        from dinno_ros.map_output import predict_occupancy

        return np.stack([predict_occupancy(self.flat, theta[i], self.task.grid.centres) for i in range(len(theta))])


def load_team_weights(out_dir: Path, team: dict[str, Any], robot_ids: list[str], num_params: int) -> dict[str, Any]:
    """robot id → final weights ``[n]`` (float64 numpy) from the node's ``.weights.npy``."""
    weights = {}
    for robot in robot_ids:
        results = (team.get("robots", {}).get(robot) or {}).get("results") or {}
        path = results.get("weights_path") or str(out_dir / "robots" / f"{robot}.weights.npy")
        try:
            values = np.load(path).astype(np.float64)
        except (OSError, ValueError):
            continue
        if values.shape == (num_params,) and np.isfinite(values).all():
            weights[robot] = values
    return weights


def round_times(team: dict[str, Any], robot_ids: list[str], rounds: int) -> np.ndarray | None:
    """Seconds (since the team's start) at which rounds ``1..rounds`` were done, mean over robots,
    from the robots' status history (None without any status)."""
    curves = []
    for robot in robot_ids:
        history = team.get("history", {}).get(robot) or {}
        pairs = sorted({(int(r), float(t)) for r, t in zip(history.get("round", []), history.get("time", []))
                        if r is not None and t is not None})
        if len(pairs) >= 1:
            r, t = np.array(pairs, dtype=float).T
            t = np.maximum.accumulate(t)
            curves.append(np.interp(np.arange(1, rounds + 1), r, t))
    if not curves:
        return None
    return np.mean(curves, axis=0)


def train_individuals(evaluator: Evaluator, trace: dict[str, np.ndarray], scans_at_round: np.ndarray,
                      console: Console | None = None) -> tuple[Any, dict[str, Any]]:
    """Every robot alone, offline, on the replayed scans: ``scans_at_round[k]`` scans (of the
    trace, in order) are in the windows when round ``k + 1`` is stepped. Returns the final
    weights ``[R, n]`` and a description of the baseline."""
    import networkx as nx
    import torch

    from dinno_core.algorithms import build_algorithm
    from dinno_core.algorithms.config import LocalConfig, OptimizerConfig
    from dinno_core.graphs import StaticGraph
    from dinno_core.team import SimulatedTeam, TeamData

    config = evaluator.config
    team_algorithm = config.algorithm
    optimizer = getattr(team_algorithm, "optimizer", OptimizerConfig())
    local = LocalConfig(
        kind="individual",
        steps_per_round=getattr(team_algorithm, "primal_steps", 1),
        batch_size=team_algorithm.batch_size,
        optimizer=optimizer.model_copy(update={"persistent_state": True}),
        lr=team_algorithm.lr,
    )
    task, n = evaluator.task, evaluator.num_robots
    algorithm = build_algorithm(local, evaluator.flat, evaluator.theta0[None, :].repeat(n, 1).clone())
    data = TeamData(task.robot_data(n), config.seed)
    poses, ranges = trace["poses"], trace["ranges"].astype(np.float64)
    fed = 0

    def feed(count: int) -> None:
        nonlocal fed
        while fed < min(count, len(ranges)):
            task.record_scans(ranges[fed], poses[fed])
            fed += 1

    feed(max(1, int(scans_at_round[0])))
    team = SimulatedTeam(algorithm, StaticGraph(nx.empty_graph(n)), data)
    started = time.perf_counter()
    last_print = started
    for k, count in enumerate(scans_at_round):
        feed(int(count))
        team.run_round()
        if console is not None and time.perf_counter() - last_print > 30.0:
            console.print(f"  individual baseline: round {k + 1}/{len(scans_at_round)}", highlight=False)
            last_print = time.perf_counter()
    feed(len(ranges))  # coverage: every scan the robots were sent (for the unseen-region metric)
    description = {
        "algorithm": local.model_dump(mode="json"),
        "rounds": int(len(scans_at_round)),
        "scans_fed": int(fed),
        "scans_before_first_round": int(scans_at_round[0]),
        "seconds": round(time.perf_counter() - started, 2),
        "data": "the simulator's recorded scans (same ranges and poses the robots were sent); a scan is "
                "in the window from the first round whose completion (status) came after its stamp",
    }
    with torch.no_grad():
        return algorithm.theta.detach().clone(), description


# ----------------------------------------------------------------------------- figures


def save_maps_figure(path: Path, evaluator: Evaluator, robot_ids: list[str], team_maps: np.ndarray,
                     individual_maps: np.ndarray | None, team_metrics: dict[str, list[float]],
                     individual_metrics: dict[str, list[float]] | None, trace: dict[str, np.ndarray] | None) -> Path:
    """One PNG: ground truth + every team robot's map (top row), every individual robot's map
    (bottom row), each robot's driven path in colour."""
    from matplotlib.figure import Figure

    task = evaluator.task
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
    figure.suptitle(f"{evaluator.config.name}: DiNNO team over ROS 2 vs. individual robots "
                    f"(plan {evaluator.config.task.plan})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


# ----------------------------------------------------------------------------- analysis


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def agreement(theta: Any, maps: np.ndarray, known: np.ndarray) -> dict[str, Any]:
    """How much the team's robots agree: weights and predicted maps."""
    from dinno_core.team import consensus_error

    r = len(maps)
    pairs = [(i, j) for i in range(r) for j in range(i + 1, r)]
    weight_distance = [float((theta[i] - theta[j]).norm()) for i, j in pairs]
    map_difference = [float(np.abs(maps[i] - maps[j])[known].mean()) for i, j in pairs]
    occupied = maps[:, known] > 0.5
    disagree = (occupied.any(axis=0) & ~occupied.all(axis=0)).mean() if r > 1 else 0.0
    return {
        "consensus_error": consensus_error(theta),
        "max_pairwise_weight_distance": max(weight_distance, default=0.0),
        "weight_norm": float(theta.norm(dim=1).mean()),
        "max_pairwise_mean_abs_map_difference": max(map_difference, default=0.0),
        "max_pairwise_max_abs_map_difference": max(
            (float(np.abs(maps[i] - maps[j])[known].max()) for i, j in pairs), default=0.0),
        "cells_where_robots_disagree": float(disagree),
    }


def analyse(config: Any, out_dir: Path, team: dict[str, Any], epoch_wall: float | None,
            console: Console, baseline: bool = True) -> dict[str, Any]:
    """Metrics, baseline, agreement, figure; returns the summary (also written to summary.json)."""
    import torch

    torch.set_num_threads(1)  # several threads on a busy 2-core machine are ~10x slower, not faster
    robot_ids = list(team.get("robot_ids") or config.robot_ids)
    evaluator = Evaluator(config)
    weights = load_team_weights(out_dir, team, robot_ids, evaluator.flat.spec.numel)
    missing = [r for r in robot_ids if r not in weights]
    if not weights:
        raise RuntimeError(f"no robot wrote its final weights under {out_dir / 'robots'}; see {out_dir / 'logs'}")
    present = [r for r in robot_ids if r in weights]
    index = [robot_ids.index(r) for r in present]
    theta = torch.from_numpy(np.stack([weights[r] for r in present])).float()
    results = {r: ((team.get("robots", {}).get(r) or {}).get("results") or {}) for r in robot_ids}
    rounds_done = [int(results[r].get("rounds_done") or 0) for r in robot_ids]

    trace_path = out_dir / "sim_trace.npz"
    trace = None
    if trace_path.is_file():
        with np.load(trace_path) as archive:
            trace = {key: archive[key] for key in archive.files}
    console.print("evaluating the team's maps ...", highlight=False)
    initial = evaluator.metrics(evaluator.theta0[None, :])
    individual_theta = individual_description = None
    baseline_note = None
    rounds = max(rounds_done)
    if baseline and trace is not None and len(trace["stamps"]) and rounds > 0:
        times = round_times(team, robot_ids, rounds)
        stamps = trace["stamps"]
        if times is not None and epoch_wall is not None and not bool(trace["sim_clock"]):
            scans_at_round = np.searchsorted(stamps, epoch_wall + times, side="right")
        else:  # no status history or simulated time: spread the scans evenly over the rounds
            scans_at_round = np.linspace(len(stamps) / (rounds + 1), len(stamps), rounds).round().astype(int)
            baseline_note = "scans spread evenly over the rounds (no wall-clock round times)"
        console.print(f"training the individual-robot baseline offline ({rounds} rounds, "
                      f"{len(stamps)} recorded scans per robot) ...", highlight=False)
        individual_theta, individual_description = train_individuals(evaluator, trace, scans_at_round, console)
        if baseline_note:
            individual_description["note"] = baseline_note
    else:
        if baseline:
            baseline_note = "no simulator trace (sim_trace.npz) or no rounds: individual baseline skipped"
            console.print(Text(baseline_note, style="yellow"))
        feed_coverage(evaluator, trace)

    team_metrics_all = evaluator.metrics(theta)
    team_maps = evaluator.maps(theta)
    ind_metrics_all = ind_maps = None
    if individual_theta is not None:
        ind_full = evaluator.metrics(individual_theta)
        ind_metrics_all = {k: [v[i] for i in index] for k, v in ind_full.items()}
        ind_maps = evaluator.maps(individual_theta)[index]
    # Coverage (task.coverage) comes from the replayed scans: the cells each robot's lidar saw.
    covered = trace is not None and len(trace["stamps"]) > 0
    team_unseen = evaluator_unseen(evaluator, team_maps, index) if covered else None
    ind_unseen = evaluator_unseen(evaluator, ind_maps, index) if covered and ind_maps is not None else None

    per_robot: dict[str, Any] = {}
    for k, robot in enumerate(present):
        data = results[robot].get("data") or {}
        entry: dict[str, Any] = {
            "rounds_done": results[robot].get("rounds_done"),
            "scans_used": data.get("scans_used"),
            "scans_malformed": data.get("scans_malformed"),
            "scans_without_pose": data.get("scans_without_pose"),
            "scans_empty": data.get("scans_empty"),
            "team": {m: _finite(team_metrics_all[m][k]) for m in team_metrics_all},
        }
        if team_unseen is not None:
            entry["team"].update({m: _finite(v[k]) for m, v in team_unseen.items()})
        if ind_metrics_all is not None:
            entry["individual"] = {m: _finite(ind_metrics_all[m][k]) for m in ind_metrics_all}
            if ind_unseen is not None:
                entry["individual"].update({m: _finite(v[k]) for m, v in ind_unseen.items()})
            entry["margin"] = {
                m: _finite((ind_metrics_all[m][k] - team_metrics_all[m][k]) * (1 if m in LOWER_IS_BETTER else -1))
                for m in METRICS}
        per_robot[robot] = entry

    summary: dict[str, Any] = {
        "name": config.name,
        "results_dir": str(out_dir),
        "plan": config.task.plan,
        "robots": per_robot,
        "robots_without_weights": missing,
        "initial": {m: _finite(v[0]) for m, v in initial.items()},
        "team_mean": {m: _mean(v) for m, v in team_metrics_all.items()},
        "team_run": {"stop_reason": team.get("stop_reason"), "seconds": team.get("seconds"),
                     "processes": {k: v.get("state") for k, v in (team.get("processes") or {}).items()},
                     "rounds_done": dict(zip(robot_ids, rounds_done))},
        "agreement": agreement(theta, team_maps, evaluator.task.grid.known),
        "metric_notes": {
            "validation_loss": "mean binary cross-entropy on the points of the validation scans (lower is "
                               "better; x25 = the paper's sum over 25 batches)",
            "occupancy_accuracy": "fraction of known grid cells predicted right (p > 0.5)",
            "occupancy_iou": "intersection over union of the occupied cells",
            "unseen_accuracy": "accuracy on the known cells this robot's own lidar never saw",
            "margin": "individual - team for validation_loss, team - individual otherwise: > 0 = team better",
        },
    }
    if ind_metrics_all is not None:
        team_loss, ind_loss = team_metrics_all["validation_loss"], ind_metrics_all["validation_loss"]
        summary["individual_mean"] = {m: _mean(v) for m, v in ind_metrics_all.items()}
        summary["baseline"] = individual_description
        summary["comparison"] = {
            "metric": "validation_loss",
            "worst_team_robot": max(team_loss),
            "best_individual_robot": min(ind_loss),
            "margin_worst_team_vs_best_individual": min(ind_loss) - max(team_loss),
            "mean_margin": float(np.mean(np.array(ind_loss) - np.array(team_loss))),
            "ratio_mean_individual_to_mean_team": float(np.mean(ind_loss) / max(np.mean(team_loss), 1e-12)),
            "every_robot_beats_its_individual": bool(all(t < i for t, i in zip(team_loss, ind_loss))),
            "every_robot_beats_every_individual": bool(max(team_loss) < min(ind_loss)),
            "iou_worst_team_robot": min(team_metrics_all["occupancy_iou"]),
            "iou_best_individual_robot": max(ind_metrics_all["occupancy_iou"]),
        }
    figure = save_maps_figure(out_dir / "maps.png", evaluator, present, team_maps, ind_maps,
                              {m: v for m, v in team_metrics_all.items()}, ind_metrics_all,
                              _trace_for(trace, index))
    summary["files"] = {"summary": "summary.json", "maps": figure.name, "team": "team.json",
                        "curves": [name for name in ("training_loss.png", "consensus_error.png")
                                   if (out_dir / name).is_file()],
                        "trace": trace_path.name if trace_path.is_file() else None}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def evaluator_unseen(evaluator: Evaluator, maps: np.ndarray, index: list[int]) -> dict[str, list[float]]:
    """Unseen-region metrics of maps ``[len(index), H, W]`` for the robots at ``index``."""
    task = evaluator.task
    return {"unseen_accuracy": [task.unseen_region_accuracy(m, i) for m, i in zip(maps, index)],
            "unseen_iou": [task.unseen_region_iou(m, i) for m, i in zip(maps, index)]}


def feed_coverage(evaluator: Evaluator, trace: dict[str, np.ndarray] | None) -> None:
    """Mark every recorded scan in the task's coverage (no baseline run)."""
    if trace is None:
        return
    for ranges, poses in zip(trace["ranges"].astype(np.float64), trace["poses"]):
        evaluator.task.record_scans(ranges, poses)


def _trace_for(trace: dict[str, np.ndarray] | None, index: list[int]) -> dict[str, np.ndarray] | None:
    if trace is None:
        return None
    return {**trace, "poses": trace["poses"][:, index] if len(trace["poses"]) else trace["poses"]}


def print_summary(summary: dict[str, Any], console: Console) -> None:
    table = Table(title=f"{summary['name']}: final maps, team (DiNNO over ROS 2) | alone (individual)",
                  title_justify="left")
    for column in ("robot", "rounds", "scans", "val loss", "IoU", "accuracy", "unseen acc"):
        table.add_column(column, justify="left" if column == "robot" else "right", no_wrap=True)

    def fmt(value: Any, spec: str = ".3f") -> str:
        return "-" if value is None else format(value, spec)

    for robot, entry in summary["robots"].items():
        team, alone = entry["team"], entry.get("individual", {})
        pair = [f"{fmt(team.get(m), '.2f' if m != 'validation_loss' else '.3f')}|"
                f"{fmt(alone.get(m), '.2f' if m != 'validation_loss' else '.3f')}"
                for m in ("validation_loss", "occupancy_iou", "occupancy_accuracy", "unseen_accuracy")]
        table.add_row(robot.removeprefix("robot_"), str(entry.get("rounds_done")), str(entry.get("scans_used")), *pair)
    console.print(table)
    initial = summary["initial"]["validation_loss"]
    console.print(f"untrained network: validation loss {initial:.3f}", highlight=False)
    comparison = summary.get("comparison")
    if comparison:
        verdict = ("every team robot's map beats every individual robot's" if comparison["every_robot_beats_every_individual"]
                   else "every team robot beats its own individual counterpart" if comparison["every_robot_beats_its_individual"]
                   else "the team did NOT beat the individual robots")
        style = "green" if comparison["every_robot_beats_its_individual"] else "red"
        console.print(Text(
            f"{verdict}: validation loss worst team robot {comparison['worst_team_robot']:.3f} vs best individual "
            f"{comparison['best_individual_robot']:.3f} (margin {comparison['margin_worst_team_vs_best_individual']:+.3f}); "
            f"means {summary['team_mean']['validation_loss']:.3f} vs {summary['individual_mean']['validation_loss']:.3f} "
            f"(individual/team = {comparison['ratio_mean_individual_to_mean_team']:.2f}x); occupied IoU worst team "
            f"{comparison['iou_worst_team_robot']:.2f} vs best individual {comparison['iou_best_individual_robot']:.2f}",
            style=style))
    a = summary["agreement"]
    console.print(f"agreement between the team's robots: consensus error {a['consensus_error']:.4g} "
                  f"(weight norm {a['weight_norm']:.4g}), max pairwise mean |p_i - p_j| "
                  f"{a['max_pairwise_mean_abs_map_difference']:.4f}, cells where robots disagree "
                  f"{100 * a['cells_where_robots_disagree']:.2f} %", highlight=False)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dinno-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=None,
                        help=f"team config (default: config/{DEFAULT_CONFIG_NAME})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results folder (default {DEFAULT_OUT})")
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION,
                        help=f"stop the team after this many seconds, start-up included (default {DEFAULT_DURATION:g})")
    parser.add_argument("--robots", type=int, default=None, help="team size (default: the config's)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per robot (default: the config's)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the offline individual-robot baseline")
    parser.add_argument("--quiet", action="store_true", help="no live table (a summary line every 10 s)")
    args = parser.parse_args(argv)
    console = Console(stderr=True, soft_wrap=True)
    from dinno_core.config import ConfigError
    from dinno_ros.team import EXIT_CONFIG, TeamRun, check_robot_parameters

    if args.duration <= 0:
        console.print("[red]--duration must be positive[/red]")
        return EXIT_CONFIG
    if args.robots is not None and args.robots < 1:
        console.print("[red]--robots must be >= 1[/red]")
        return EXIT_CONFIG
    if not os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE"):
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        console.print("ROS_AUTOMATIC_DISCOVERY_RANGE was unset: using LOCALHOST (no discovery traffic leaves this "
                      "machine; set it to SUBNET to watch from another computer)", highlight=False)
    config_path = args.config or default_config()
    out_dir = args.out.resolve()
    try:
        config = demo_config(config_path, out_dir, args.robots, args.rounds)
    except ConfigError as error:
        console.print(Text(str(error), style="red"))
        return EXIT_CONFIG
    (out_dir / "sim_trace.npz").unlink(missing_ok=True)
    (out_dir / "summary.json").unlink(missing_ok=True)

    epoch: dict[str, float] = {}

    class DemoRun(TeamRun):
        def prepare(self):  # the status history's time 0 is taken right after this returns
            supervisor = super().prepare()
            epoch["wall"] = time.time()
            return supervisor

    run = DemoRun(config, out_dir, args.duration, console, live=console.is_terminal and not args.quiet)
    try:
        check_robot_parameters(run.spec)
    except ConfigError as error:
        console.print(Text(f"{config_path}: {error}", style="red"))
        return EXIT_CONFIG
    console.print(f"DiNNO mapping demo: {config.num_robots} robots on plan {config.task.plan!r}, "
                  f"{config.algorithm.kind}, graph {config.graph.kind}, at most {args.duration:g} s "
                  f"(config {config_path})", highlight=False)
    code = run.run()
    try:
        team = json.loads((out_dir / "team.json").read_text())
        summary = analyse(config, out_dir, team, epoch.get("wall"), console, baseline=not args.no_baseline)
    except Exception as error:  # noqa: BLE001 - report what went wrong, with the team's own status
        console.print(Text(f"demo analysis failed: {type(error).__name__}: {error}", style="red"))
        return code or 1
    print_summary(summary, console)
    console.print(f"results: {out_dir} (summary.json, maps.png, team.json, training_loss.png, "
                  f"consensus_error.png, logs/)", highlight=False)
    print(out_dir / "summary.json")
    return code


if __name__ == "__main__":
    sys.exit(main())
