"""Per-round learning-rate schedules."""

from __future__ import annotations

import math

from dinno_core.algorithms.config import LearningRateSchedule


def learning_rate(schedule: LearningRateSchedule, round_index: int) -> float:
    """The learning rate to use in round ``round_index`` (0-based)."""
    if schedule.kind == "constant":
        return schedule.start
    assert schedule.end is not None and schedule.rounds is not None
    fraction = min(round_index / max(schedule.rounds - 1, 1), 1.0)
    if schedule.kind == "linear":
        return schedule.start + (schedule.end - schedule.start) * fraction
    log_start, log_end = math.log(schedule.start), math.log(schedule.end)
    return math.exp(log_start + (log_end - log_start) * fraction)
