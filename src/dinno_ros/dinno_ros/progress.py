"""Live progress of a running team: per-robot state fed by the robots' ``dinno/status`` topics.

:class:`TeamProgress` is plain Python (history, table, summary); :func:`create_status_monitor`
makes the rclpy node that feeds it, subscribing to every robot's ``RobotStatus``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table
from rich.text import Text

from dinno_core.checkpoint import json_safe

HISTORY_FIELDS = ("time", "round", "training_loss", "neighbour_distance", "rho", "round_rate",
                  "messages_dropped", "neighbours_heard", "bytes_per_second")
MAX_HISTORY = 100_000
"""Status messages kept per robot (a robot running forever would otherwise grow without bound)."""

_STATE_STYLE = {
    "starting": "dim", "running": "cyan", "finished": "green", "stopping": "yellow",
    "stopped": "yellow", "crashed": "bold red", "killed": "bold red", "failed": "bold red",
}


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass
class RobotProgress:
    """The latest status of one robot, and every status received so far."""

    robot: str
    state: str = "starting"
    detail: str = ""
    round: int | None = None
    training_loss: float = math.nan
    neighbour_distance: float = math.nan
    rho: float = math.nan
    round_rate: float = math.nan
    neighbours_heard: tuple[str, ...] = ()
    messages_dropped: int = 0
    bytes_per_second: float = math.nan
    last_seen: float | None = None
    history: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in HISTORY_FIELDS})


class TeamProgress:
    """Status of every process of a team (robots and extra processes such as the simulator)."""

    def __init__(self, robots: Iterable[str], rounds: int, extra: Iterable[str] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rounds = rounds
        self.clock = clock
        self.started = clock()
        self.robots = {robot: RobotProgress(robot) for robot in robots}
        self.extra = {key: RobotProgress(key) for key in extra}
        self.messages = 0

    def _entry(self, key: str) -> RobotProgress:
        entry = self.robots.get(key) or self.extra.get(key)
        if entry is None:
            raise KeyError(f"unknown process {key!r}")
        return entry

    def update(self, robot: str, round_index: int, training_loss: float, neighbour_distance: float,
               rho: float, round_rate: float, neighbours_heard: Iterable[str], messages_dropped: int,
               bytes_per_second: float = math.nan) -> None:
        """Record one status message of ``robot`` (ignored for ids outside the team)."""
        entry = self.robots.get(robot)
        if entry is None:
            return
        now = self.clock()
        self.messages += 1
        entry.round = int(round_index)
        entry.training_loss = _number(training_loss)
        entry.neighbour_distance = _number(neighbour_distance)
        entry.rho = _number(rho)
        entry.round_rate = _number(round_rate)
        entry.neighbours_heard = tuple(neighbours_heard)
        entry.messages_dropped = int(messages_dropped)
        entry.bytes_per_second = _number(bytes_per_second)
        entry.last_seen = now
        if entry.state == "starting":
            entry.state = "running"
        history = entry.history
        if len(history["round"]) >= MAX_HISTORY:
            for values in history.values():
                del values[: MAX_HISTORY // 10]
        history["time"].append(round(now - self.started, 4))
        history["round"].append(entry.round)
        history["training_loss"].append(entry.training_loss)
        history["neighbour_distance"].append(entry.neighbour_distance)
        history["rho"].append(entry.rho)
        history["round_rate"].append(entry.round_rate)
        history["messages_dropped"].append(entry.messages_dropped)
        history["neighbours_heard"].append(len(entry.neighbours_heard))
        history["bytes_per_second"].append(entry.bytes_per_second)

    def update_from_message(self, message: Any) -> None:
        """Record a ``dinno_msgs/RobotStatus`` message."""
        self.update(message.robot, message.round, message.training_loss, message.neighbour_distance,
                    message.rho, message.round_rate, list(message.neighbours_heard), message.messages_dropped,
                    message.bytes_per_second)

    def set_state(self, key: str, state: str, detail: str = "") -> None:
        entry = self._entry(key)
        entry.state = state
        entry.detail = detail

    def history(self) -> dict[str, dict[str, list[float]]]:
        """Per robot: the status curves (JSON-ready; NaN becomes None)."""
        return json_safe({robot: entry.history for robot, entry in self.robots.items()})

    def _round_text(self, entry: RobotProgress) -> str:
        if entry.round is None:
            return "-"
        return f"{entry.round}/{self.rounds}" if self.rounds else str(entry.round)

    def table(self, title: str = "team") -> Table:
        """A rich table: one row per robot (and extra process)."""
        elapsed = self.clock() - self.started
        table = Table(title=f"{title}  ({elapsed:.0f} s)", title_justify="left")
        for name, justify in [("robot", "left"), ("state", "left"), ("round", "right"),
                              ("loss", "right"), ("neighbour dist", "right"), ("rho", "right"),
                              ("rounds/s", "right"), ("sent kB/s", "right"), ("heard", "right"), ("dropped", "right"),
                              ("last status", "right")]:
            table.add_column(name, justify=justify)
        now = self.clock()
        for entry in self.robots.values():
            age = "-" if entry.last_seen is None else f"{now - entry.last_seen:.1f} s ago"
            state = Text(entry.state + (f" ({entry.detail})" if entry.detail else ""),
                         style=_STATE_STYLE.get(entry.state, ""))
            table.add_row(entry.robot, state, self._round_text(entry), _format(entry.training_loss),
                          _format(entry.neighbour_distance), _format(entry.rho), _format(entry.round_rate, ".2f"),
                          _format(entry.bytes_per_second / 1e3, ".1f"), str(len(entry.neighbours_heard)), str(entry.messages_dropped), age)
        for entry in self.extra.values():
            state = Text(entry.state + (f" ({entry.detail})" if entry.detail else ""),
                         style=_STATE_STYLE.get(entry.state, ""))
            table.add_row(entry.robot, state, *[""] * 9)
        return table

    def summary_line(self) -> str:
        """One line for non-interactive output (logs, CI)."""
        parts = []
        for entry in self.robots.values():
            parts.append(f"{entry.robot}: {entry.state} r={self._round_text(entry)} "
                         f"loss={_format(entry.training_loss)} dist={_format(entry.neighbour_distance)}")
        return f"[{self.clock() - self.started:6.1f} s] " + "; ".join(parts)


def _format(value: float, spec: str = ".4g") -> str:
    return "-" if not math.isfinite(value) else format(value, spec)


def create_status_monitor(progress: TeamProgress, status_topics: dict[str, str],
                          node_name: str = "dinno_team_monitor", context: Any = None):
    """An rclpy node subscribing to each robot's status topic and feeding ``progress``.

    ``status_topics``: robot id → absolute topic (``/robot_0/dinno/status``). Call after
    ``rclpy.init`` (of ``context``, default the global one); spin it in the caller's thread
    (the callbacks touch ``progress``).
    """
    from rclpy.node import Node
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    from dinno_msgs.msg import RobotStatus

    node = Node(node_name, context=context)
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
    for topic in status_topics.values():  # the node keeps its subscriptions alive
        node.create_subscription(RobotStatus, topic, progress.update_from_message, qos)
    return node
