"""What the robot reports on ``/diagnostics`` and ``dinno/status``: plain key/values computed
from the exchange's counters, and the two messages built from them (:func:`status_message`,
:func:`diagnostics_message`; the message packages are imported only there, never rclpy)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from dinno_ros.exchange import DropReason, ExchangeSnapshot

OK, WARN, ERROR = 0, 1, 2
"""``diagnostic_msgs/DiagnosticStatus`` levels."""

WARN_MISSED_ROUNDS = 2
"""A neighbour that missed this many rounds in a row makes the robot's status WARN."""


@dataclass
class Diagnosis:
    level: int
    message: str
    values: list[tuple[str, str]]


class BytesSent:
    """Weight payload bytes a robot has published: the total, and the rate over the last
    ``window`` seconds (over the time since ``start`` while that is shorter).

    ``add`` runs on the training thread and is the only writer; ``rate`` (diagnostics timer,
    status) only reads a snapshot of the samples.
    """

    def __init__(self, start: float, window: float = 10.0) -> None:
        self.total = 0
        self.window = window
        self._start = start
        self._samples: deque[tuple[float, int]] = deque()  # (time, total after that message)
        self._before_window = 0  # total up to the newest sample that left the window

    def add(self, nbytes: int, now: float) -> None:
        self.total += int(nbytes)
        self._samples.append((now, self.total))
        while len(self._samples) > 1 and self._samples[0][0] <= now - self.window:
            self._before_window = self._samples.popleft()[1]

    def rate(self, now: float) -> float:
        """Bytes per second over the last ``window`` seconds; NaN at the very start."""
        span = min(self.window, now - self._start)
        if span <= 0:
            return float("nan")
        base = self._before_window
        for when, total in list(self._samples):
            if when > now - self.window:
                break
            base = total
        return (self.total - base) / span


def _fmt(value: float | int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def diagnose(snapshot: ExchangeSnapshot, now: float, *, round_rate: float = float("nan"),
             extra: dict[str, object] | None = None) -> Diagnosis:
    """Per-neighbour link health (state, last message age, last round, used/missed, drops by
    reason) and the robot's drop counters. WARN when an expected neighbour missed the last
    :data:`WARN_MISSED_ROUNDS` rounds; ERROR when every expected neighbour did."""
    values: list[tuple[str, str]] = [
        ("round", str(snapshot.round)),
        ("round_rate", _fmt(round_rate)),
        ("neighbours", ",".join(snapshot.expected) or "-"),
        ("messages_accepted", str(snapshot.accepted)),
        ("messages_dropped", str(sum(snapshot.drops.values()))),
    ]
    values += [(f"dropped.{reason.value}", str(snapshot.drops.get(reason.value, 0))) for reason in DropReason]
    lagging = []
    for name, link in snapshot.links.items():
        expected = name in snapshot.expected
        if not expected and link.last_heard is None and not link.drops:
            continue
        age = None if link.last_heard is None else now - link.last_heard
        if link.duplicate:
            state = "DUPLICATE ROBOT ID: two processes send as this robot"
        elif not expected:
            state = "not a neighbour now"
        elif link.last_heard is None:
            state = "never heard"
        elif link.missed_in_a_row >= WARN_MISSED_ROUNDS:
            state = f"missed last {link.missed_in_a_row} rounds" + (" (absent: not waited for)" if link.absent else "")
        else:
            state = "ok"
        if expected and (link.last_heard is None or link.missed_in_a_row >= WARN_MISSED_ROUNDS):
            lagging.append(name)
        values += [
            (f"{name}.state", state),
            (f"{name}.last_message_age_s", _fmt(age)),
            (f"{name}.last_round", _fmt(link.last_round)),
            (f"{name}.rounds_used", str(link.used)),
            (f"{name}.rounds_missed", str(link.missed)),
            (f"{name}.dropped", " ".join(f"{k}={v}" for k, v in sorted(link.drops.items())) or "0"),
        ]
    for key, value in (extra or {}).items():
        values.append((key, _fmt(value) if isinstance(value, (int, float)) or value is None else str(value)))
    duplicates = sorted(name for name, link in snapshot.links.items() if link.duplicate)
    if duplicates:
        return Diagnosis(ERROR, f"duplicate robot id(s): {', '.join(duplicates)} (two processes; their messages "
                                "are dropped)", values)
    if not snapshot.expected:
        return Diagnosis(OK, "no neighbours in range: training alone", values)
    if lagging and len(lagging) == len(snapshot.expected):
        return Diagnosis(ERROR, f"no neighbour heard in the last rounds ({', '.join(lagging)})", values)
    if lagging:
        return Diagnosis(WARN, f"neighbour(s) missing in the last rounds: {', '.join(lagging)}", values)
    return Diagnosis(OK, f"round {snapshot.round}, {len(snapshot.expected)} neighbours ok", values)


def status_message(report: Any, robot_id: str, stamp: Any) -> Any:
    """``dinno_msgs/RobotStatus`` of one stepped round (a :class:`dinno_ros.trainer.RoundReport`)."""
    from dinno_msgs.msg import RobotStatus

    status = RobotStatus()
    status.header.stamp = stamp
    status.robot = robot_id
    status.round = report.round
    status.training_loss = report.training_loss
    status.neighbour_distance = report.neighbour_distance
    status.rho = 0.0 if math.isnan(report.rho) else report.rho
    status.round_rate = 0.0 if math.isnan(report.round_rate) else report.round_rate
    status.neighbours_heard = list(report.heard)
    status.messages_dropped = min(report.messages_dropped, 2**32 - 1)
    status.dual_probe = report.dual_probe
    status.dual_reverted = min(report.dual_reverted, 2**32 - 1)
    status.dual_expired = min(report.dual_expired, 2**32 - 1)
    status.bytes_sent = report.bytes_sent
    status.bytes_per_second = 0.0 if math.isnan(report.bytes_per_second) else report.bytes_per_second
    return status


def diagnostics_message(diagnosis: Diagnosis, robot_id: str, stamp: Any) -> Any:
    """``diagnostic_msgs/DiagnosticArray`` with this robot's one status."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    status = DiagnosticStatus(level=bytes([diagnosis.level]), name=f"dinno/{robot_id}", message=diagnosis.message,
                              hardware_id=robot_id, values=[KeyValue(key=k, value=v) for k, v in diagnosis.values])
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array
