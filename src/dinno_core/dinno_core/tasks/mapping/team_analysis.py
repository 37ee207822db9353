"""Offline analysis of a mapping team's result (ROS-free): how good each robot's final map is,
how much the robots agree, and the individual-robot baseline on exactly the scans they were sent.

The demo (``dinno_ros.demo``) runs a team of robot processes and hands this module what the run
returned: each robot's final weights and results, the status history and the lidar simulator's
trace. Everything here is plain core code (the task's ``evaluate`` / ``render_map``, the
simulated team for the baseline).

* :class:`Evaluator`: the task, model and initial weights every robot node built (same seed,
  same calls: :func:`dinno_core.config.set_up_model`).
* :func:`train_individuals`: every robot ALONE (``individual``; same initial weights, minibatch
  generators, batch size, optimizer, learning-rate schedule and gradient steps per round as the
  team's DiNNO primal step) on the replayed scans.
* :func:`agreement`, :func:`analyse` (writes ``summary.json`` and ``maps.png``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import torch

from dinno_core.algorithms import build_algorithm
from dinno_core.algorithms.config import LocalConfig, OptimizerConfig
from dinno_core.config import set_up_model
from dinno_core.experiment import evaluate
from dinno_core.graphs import StaticGraph
from dinno_core.tasks.mapping.figures import save_team_maps_figure
from dinno_core.checkpoint import json_safe, write_json
from dinno_core.team import SimulatedTeam, TeamData, consensus_error

METRICS = ("validation_loss", "occupancy_accuracy", "occupancy_iou")
LOWER_IS_BETTER = {"validation_loss"}


class Evaluator:
    """The task, model and initial weights every robot node built (same seed, same calls)."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.num_robots = config.num_robots
        setup = set_up_model(config.task, self.num_robots, config.seed)
        self.task, self.flat, self.theta0 = setup.task, setup.flat, setup.theta0

    def metrics(self, theta: Any) -> dict[str, list[float]]:
        """Per-robot metrics of weights ``theta [R, n]`` (lists of R floats)."""
        return {name: [float(v) for v in values] for name, values in evaluate(self.task, self.flat, theta).items()}

    def maps(self, theta: Any) -> np.ndarray:
        """Predicted occupancy ``[R, H, W]`` on the task's grid."""
        return np.stack([self.task.render_map(theta[i]) for i in range(len(theta))])


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
                      log: Callable[[str], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """Every robot alone, offline, on the replayed scans: ``scans_at_round[k]`` scans (of the
    trace, in order) are in the windows when round ``k + 1`` is stepped. Returns the final
    weights ``[R, n]`` and a description of the baseline."""
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
    poses, ranges = scan_poses(trace), trace["ranges"].astype(np.float64)
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
        if log is not None and time.perf_counter() - last_print > 30.0:
            log(f"  individual baseline: round {k + 1}/{len(scans_at_round)}")
            last_print = time.perf_counter()
    feed(len(ranges))  # coverage: every scan the robots were sent (for the unseen-region metric)
    description = {
        "algorithm": local.model_dump(mode="json"),
        "rounds": int(len(scans_at_round)),
        "scans_fed": int(fed),
        "scans_before_first_round": int(scans_at_round[0]),
        "seconds": round(time.perf_counter() - started, 2),
        "data": "the simulator's recorded scans (the ranges the robots were sent, at their lidars' world "
                "poses); a scan is in the window from the first round whose completion (status) came after its "
                "stamp",
    }
    with torch.no_grad():
        return algorithm.theta.detach().clone(), description


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def agreement(theta: Any, maps: np.ndarray, known: np.ndarray) -> dict[str, Any]:
    """How much the team's robots agree: weights and predicted maps."""
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
            log: Callable[[str], None] = print, baseline: bool = True) -> dict[str, Any]:
    """Metrics, baseline, agreement, figure; returns the summary (also written to summary.json).

    ``config``: the team's config (``name``, ``seed``, ``num_robots``, ``robot_ids``, ``task``,
    ``algorithm``); ``team``: what the team run returned (``dinno-team``'s ``team.json``)."""
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
    log("evaluating the team's maps ...")
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
        log(f"training the individual-robot baseline offline ({rounds} rounds, "
            f"{len(stamps)} recorded scans per robot) ...")
        individual_theta, individual_description = train_individuals(evaluator, trace, scans_at_round, log)
        if baseline_note:
            individual_description["note"] = baseline_note
    else:
        if baseline:
            baseline_note = "no simulator trace (sim_trace.npz) or no rounds: individual baseline skipped"
            log(baseline_note)
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
            "bytes_sent": results[robot].get("bytes_sent"),
            "bytes_sent_per_second": results[robot].get("bytes_sent_per_second"),
            "team": {m: json_safe(float(team_metrics_all[m][k])) for m in team_metrics_all},
        }
        if team_unseen is not None:
            entry["team"].update({m: json_safe(float(v[k])) for m, v in team_unseen.items()})
        if ind_metrics_all is not None:
            entry["individual"] = {m: json_safe(float(ind_metrics_all[m][k])) for m in ind_metrics_all}
            if ind_unseen is not None:
                entry["individual"].update({m: json_safe(float(v[k])) for m, v in ind_unseen.items()})
            entry["margin"] = {
                m: json_safe(float((ind_metrics_all[m][k] - team_metrics_all[m][k]) * (1 if m in LOWER_IS_BETTER else -1)))
                for m in METRICS}
        per_robot[robot] = entry

    summary: dict[str, Any] = {
        "name": config.name,
        "results_dir": str(out_dir),
        "plan": config.task.plan,
        "robots": per_robot,
        "robots_without_weights": missing,
        "initial": {m: json_safe(float(v[0])) for m, v in initial.items()},
        "team_mean": {m: _mean(v) for m, v in team_metrics_all.items()},
        "team_run": {"stop_reason": team.get("stop_reason"), "seconds": team.get("seconds"),
                     "processes": {k: v.get("state") for k, v in (team.get("processes") or {}).items()},
                     "rounds_done": dict(zip(robot_ids, rounds_done))},
        "agreement": agreement(theta, team_maps, evaluator.task.grid.known),
        "radio": radio_use(results, robot_ids),
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
    if trace is not None and len(trace["poses"]) and "motion" in trace and str(trace["motion"]) == "cmd_vel":
        summary["path_tracking"] = path_tracking(evaluator, trace)
    figure = save_team_maps_figure(
        out_dir / "maps.png", evaluator.task, present, team_maps, ind_maps, team_metrics_all, ind_metrics_all,
        _trace_for(trace, index),
        f"{config.name}: DiNNO team over ROS 2 vs. individual robots (plan {config.task.plan})")
    summary["files"] = {"summary": "summary.json", "maps": figure.name, "team": "team.json",
                        "curves": [name for name in ("training_loss.png", "neighbour_distance.png")
                                   if (out_dir / name).is_file()],
                        "trace": trace_path.name if trace_path.is_file() else None}
    write_json(out_dir / "summary.json", summary)
    return summary


def radio_use(results: dict[str, dict[str, Any]], robot_ids: list[str]) -> dict[str, Any]:
    """Weight payload bytes the robots put on the radio (from their results files)."""
    sent = {r: results[r].get("bytes_sent") for r in robot_ids if results[r].get("bytes_sent") is not None}
    rates = [results[r].get("bytes_sent_per_second") for r in robot_ids]
    per_round = [sent[r] / max(int(results[r].get("rounds_done") or 0), 1) for r in sent]
    return {
        "bytes_sent": sum(sent.values()) if sent else None,
        "team_bytes_per_second": sum(v for v in rates if v is not None) if any(v is not None for v in rates) else None,
        "mean_bytes_per_round_per_robot": float(np.mean(per_round)) if per_round else None,
        "note": "weight payload bytes published (headers and DDS overhead not counted); per second over "
                "each robot's training time, summed over the team",
    }


TRACKING_SETTLE = 5.0
"""Seconds after the start from which path tracking is measured (robots start on their paths)."""


def path_tracking(evaluator: Evaluator, trace: dict[str, np.ndarray]) -> dict[str, Any]:
    """How far each robot driven by cmd_vel (the path follower) strayed from its path, from the
    simulator's recorded poses."""
    from dinno_core.tasks.mapping.path_following import distances_to_paths

    stamps = trace["stamps"] - trace["stamps"][0]
    distances = distances_to_paths(evaluator.task.paths, trace["poses"][stamps >= TRACKING_SETTLE, :, :2])
    step = np.linalg.norm(np.diff(trace["poses"][:, :, :2], axis=0), axis=-1).sum(axis=0)
    return {
        "after_seconds": TRACKING_SETTLE,
        "max_distance": [float(v) for v in distances.max(axis=0)] if len(distances) else [],
        "mean_distance": [float(v) for v in distances.mean(axis=0)] if len(distances) else [],
        "distance_driven": [float(v) for v in step],
        "seconds": float(stamps[-1]),
    }


def evaluator_unseen(evaluator: Evaluator, maps: np.ndarray, index: list[int]) -> dict[str, list[float]]:
    """Unseen-region metrics of maps ``[len(index), H, W]`` for the robots at ``index``."""
    task = evaluator.task
    return {"unseen_accuracy": [task.unseen_region_accuracy(m, i) for m, i in zip(maps, index)],
            "unseen_iou": [task.unseen_region_iou(m, i) for m, i in zip(maps, index)]}


def scan_poses(trace: dict[str, np.ndarray]) -> np.ndarray:
    """The lidars' world poses ``[T, R, 3]`` the trace's ``ranges`` were cast from: ``scan_poses``
    (a lidar mounted off the base origin), or the bases' ``poses`` (older traces: lidar at the base)."""
    return trace["scan_poses"] if "scan_poses" in trace else trace["poses"]


def feed_coverage(evaluator: Evaluator, trace: dict[str, np.ndarray] | None) -> None:
    """Mark every recorded scan in the task's coverage (no baseline run)."""
    if trace is None:
        return
    for ranges, poses in zip(trace["ranges"].astype(np.float64), scan_poses(trace)):
        evaluator.task.record_scans(ranges, poses)


def _trace_for(trace: dict[str, np.ndarray] | None, index: list[int]) -> dict[str, np.ndarray] | None:
    if trace is None:
        return None
    return {**trace, "poses": trace["poses"][:, index] if len(trace["poses"]) else trace["poses"]}
