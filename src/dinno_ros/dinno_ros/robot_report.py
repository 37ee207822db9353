"""What one robot reports (plain data, no ROS): a stepped round (:class:`RoundReport`, for the
monitoring topics), its running counters (:class:`TrainerState`) and its results document
(:func:`results_document`, the node's ``results_path`` JSON that ``dinno-team`` collects)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dinno_ros.exchange import ExchangeSnapshot
from dinno_ros.robot_settings import RobotSettings

INLINE_WEIGHTS_MAX = 100_000
"""Results JSON carries the final weights inline up to this many values (always also as .npy)."""


@dataclass
class RoundReport:
    """What one stepped round produced (for the monitoring topics)."""

    round: int
    """Rounds completed (the algorithm's round counter after the step)."""
    training_loss: float
    neighbour_distance: float
    """Mean ``||theta_i^k - theta_j^k||`` over the neighbours heard this round (NaN if none): this
    robot's view of disagreement (the core's ``consensus_error`` is the team's RMS distance from
    the team mean, which no single robot can measure)."""
    rho: float
    """DiNNO's penalty after the step; NaN for algorithms without one."""
    round_rate: float
    heard: tuple[str, ...]
    missing: tuple[str, ...]
    timed_out: bool
    rejected: bool
    messages_dropped: int = 0
    """Weight messages dropped so far (all reasons)."""
    dual_probe: float = float("nan")
    """``<p_i, u>`` (DiNNO): the team's sum is zero while the edge duals cancel."""
    dual_reverted: int = 0
    dual_expired: int = 0
    bytes_sent: int = 0
    """Weight payload bytes published so far."""
    bytes_per_second: float = float("nan")
    """Payload bytes per second over the last 10 s."""


@dataclass
class CatchUp:
    from_round: int
    to_round: int
    warm_start: bool
    at_unix: float


@dataclass
class TrainerState:
    rounds_stepped: int = 0
    timeouts: int = 0
    rejected_updates: int = 0
    not_sent_non_finite: int = 0
    catch_ups: list[CatchUp] = field(default_factory=list)
    last_report: RoundReport | None = None
    finished: bool = False
    training_started: float | None = None
    """Monotonic clock when the first round began (after the start-up wait for the neighbours)."""
    last_step_at: float | None = None


def results_document(settings: RobotSettings, snap: ExchangeSnapshot, state: TrainerState, theta: np.ndarray,
                     rounds_done: int, *, fingerprint: int, resumed_from: int | None,
                     dual: tuple[float, int, int], data: dict[str, Any], started_unix: float,
                     bytes_sent: int = 0) -> dict[str, Any]:
    """The robot's results: identity, rounds, counters, link health, last metrics, final weights
    ``theta [n]`` (inline up to :data:`INLINE_WEIGHTS_MAX` values)."""
    report = state.last_report
    return {
        "robot": settings.robot_id, "team": list(settings.team), "index": settings.index,
        "algorithm": settings.algorithm.kind, "task": settings.task.name,
        "fingerprint": fingerprint, "num_params": int(theta.size),
        "rounds_done": rounds_done, "rounds_stepped_this_run": state.rounds_stepped,
        "finished": state.finished, "resumed_from_round": resumed_from,
        "timeouts": state.timeouts, "rejected_updates": state.rejected_updates,
        "not_sent_non_finite": state.not_sent_non_finite,
        "catch_ups": [vars(c) for c in state.catch_ups],
        "drops": snap.drops, "messages_dropped": sum(snap.drops.values()),
        "bytes_sent": bytes_sent,
        "bytes_sent_per_second": None if state.training_started is None or state.last_step_at is None
        or state.last_step_at <= state.training_started
        else bytes_sent / (state.last_step_at - state.training_started),
        "dual": dict(zip(("probe", "reverted", "expired"), dual)),
        "duplicate_ids": sorted(name for name, link in snap.links.items() if link.duplicate),
        "accepted": snap.accepted, "superseded": snap.superseded,
        "links": {name: {"received": link.received, "used": link.used, "missed": link.missed,
                         "last_round": link.last_round, "drops": dict(link.drops), "absent": link.absent,
                         "duplicate": link.duplicate, "signals": link.signals,
                         "waited_past_timeout": link.waited_past_timeout}
                  for name, link in snap.links.items()},
        "neighbours": list(snap.expected),
        "last_metrics": None if report is None else {
            "round": report.round, "training_loss": report.training_loss,
            "neighbour_distance": report.neighbour_distance, "rho": report.rho, "round_rate": report.round_rate,
            "heard": list(report.heard)},
        "data": data,
        "elapsed_s": time.time() - started_unix,
        "training_s": None if state.training_started is None or state.last_step_at is None
        else state.last_step_at - state.training_started,
        "weights": theta.tolist() if theta.size <= INLINE_WEIGHTS_MAX else None,
    }


def diagnostic_values(state: TrainerState, data: dict[str, Any]) -> dict[str, Any]:
    """The trainer's own values for ``/diagnostics`` (``data``: the data source's counters)."""
    report = state.last_report
    values: dict[str, Any] = {
        "rounds_stepped": state.rounds_stepped, "timeouts": state.timeouts,
        "catch_ups": len(state.catch_ups), "rejected_updates": state.rejected_updates,
        "not_sent_non_finite": state.not_sent_non_finite,
        "training_loss": None if report is None else report.training_loss,
        "neighbour_distance": None if report is None else report.neighbour_distance,
        "dual_probe": None if report is None else report.dual_probe,
        "dual_reverted": 0 if report is None else report.dual_reverted,
        "dual_expired": 0 if report is None else report.dual_expired}
    values.update({f"data.{k}": v for k, v in data.items()})
    return values


def dual_values(algorithm: Any, fingerprint: int) -> tuple[float, int, int]:
    """``(dual_probe, reverted, expired)`` of a robot's DiNNO edge duals (NaN, 0, 0 for algorithms
    without them)."""
    from dinno_core.algorithms.dual_ledger import dual_probe

    dual = getattr(algorithm, "dual", None)
    ledger = getattr(algorithm, "ledger", None)
    if dual is None or ledger is None:
        return float("nan"), 0, 0
    return (float(dual_probe(dual, fingerprint)[0]), int(ledger.counts["reverted"][0]),
            int(ledger.counts["expired"][0]))


def write_results(path: str, results: dict[str, Any], weights: np.ndarray) -> str:
    """``results`` as JSON at ``path`` and ``weights`` beside it (``<name>.weights.npy``), both
    atomically, the folder created: a robot started by ``ros2 launch`` (no dinno-team to prepare
    results/robots/) must still write its results."""
    from dinno_core.checkpoint import atomic_write, write_json

    weights_path = str(Path(path).with_suffix("")) + ".weights.npy"
    atomic_write(weights_path, lambda handle: np.save(handle, weights))
    write_json(path, {**results, "weights_path": weights_path})
    return path
