"""How long a robot waits for a round, and the "still waiting" signal (plain logic, no ROS imports).

The problem. Rounds are lockstep: robot ``i`` in round ``k`` waits up to ``round_timeout`` for
each expected neighbour's round-``k`` weights. When a robot ``c`` is cut off, its neighbour ``j``
waits out one timeout for it in round ``k``. ``j``'s other neighbour ``i`` already had ``j``'s
round-``k`` weights (``j`` sends them as it enters round ``k``), stepped, and now waits in round
``k + 1`` for ``j``, which only sends round ``k + 1`` after its timeout *and* its step. ``i``
began waiting a moment after ``j`` did, so whether ``i`` times out too is a race between ``j``'s
step and that moment: a robot that is not a neighbour of ``c`` loses a round to it, sometimes.

The rule. A robot that is waiting tells its neighbours so: every ``BEAT_EVERY * round_timeout``
seconds while it waits, and once more when its wait ends by the timeout (it is about to step),
it sends a small authenticated ``dinno_msgs/RoundWaiting`` "I am alive and still in round
``r``". Robot ``i`` in round ``k`` does not time out on an expected neighbour ``j`` whose newest
signal says it is in a round ``r < k`` and arrived less than ``FRESH_FOR * round_timeout``
seconds ago (``j`` is *vouched for*): ``j`` is alive and its round-``k`` weights will come as soon
as ``j``'s own wait ends. Past ``round_timeout`` the robot keeps waiting only for vouched
neighbours (the silent ones are given up), and never longer than ``LONGEST_WAIT *
round_timeout`` in all. So only the cut robot's direct neighbours wait out a timeout for it
(and, with ``absent_after`` 1, only once: it is absent from then on); their waiting neighbours
wait for them instead of timing out.

Why nothing hangs. A signal comes only from a live process that is inside a round's wait (a dead
robot sends none, so it is never vouched for after ``FRESH_FOR``). Vouching goes strictly
*downhill* in rounds (``r < k``): in every chain of robots waiting on vouched neighbours, the one
in the lowest round vouches for nobody and ends its wait by its own ``round_timeout``; then the
next one gets its weights, and so on up. ``LONGEST_WAIT`` caps every wait anyway (a member that
signals "waiting" forever, or a replayed signal, costs at most that).

Signals are checked like weights (:meth:`dinno_ros.exchange.RoundExchange.receive_waiting`):
wrong sender, missing/wrong HMAC tag, foreign model, replaced session, and a replayed or
reordered signal (its ``beat`` counter not newer than the last one of that session) are dropped
and counted under their reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

BEAT_EVERY = 0.25
"""A waiting robot signals every ``BEAT_EVERY * round_timeout`` seconds (and as its wait times out)."""
FRESH_FOR = 0.75
"""A signal vouches for its sender for ``FRESH_FOR * round_timeout`` seconds (three beats: one
lost or late signal on a lossy radio does not end it)."""
LONGEST_WAIT = 2.0
"""No round's wait lasts longer than ``LONGEST_WAIT * round_timeout``, whatever the signals say."""


class HeardCount(Protocol):
    received: int
    absent: bool


def round_wait_timeout(links: Mapping[str, HeardCount], round_timeout: float, startup_timeout: float) -> float:
    """How long this round's wait may last before neighbours count as missing.

    ``round_timeout``, except while a neighbour (not absent) has been heard exactly once: that one
    message is its announcement before its first round, and the neighbour may still be in its own
    start-up wait for a teammate that started later. A robot that started first would otherwise
    time out on it in its second round, count it absent and train alone (a CI run at 30 % loss:
    one robot stepped 99 rounds alone in 4 s while its neighbours waited to start, then they took
    its round and stopped). Such a round waits up to ``startup_timeout`` instead, once per start."""
    starting = any(link.received == 1 and not link.absent for link in links.values())
    return max(round_timeout, startup_timeout) if starting else round_timeout


@dataclass(frozen=True)
class Beat:
    """A neighbour's newest accepted "still waiting" signal."""

    session: int
    beat: int
    round: int
    heard_at: float


class WaitingSignals:
    """The newest signal of each neighbour (not thread-safe: the exchange holds its lock)."""

    def __init__(self) -> None:
        self._last: dict[str, Beat] = {}

    def heard(self, sender: str, session: int, beat: int, round_index: int, now: float) -> str | None:
        """Record a signal; ``None`` if it is new, else why it is not (replayed or reordered)."""
        last = self._last.get(sender)
        if last is not None and last.session == session and beat <= last.beat:
            return f"beat {beat} of session {session:#x} is not newer than {last.beat} (replayed or reordered)"
        self._last[sender] = Beat(session, beat, round_index, now)
        return None

    def vouched_until(self, sender: str, round_index: int, now: float, fresh: float) -> float | None:
        """Until when ``sender`` counts as alive and still before round ``round_index`` (None: not now)."""
        last = self._last.get(sender)
        if last is None or last.round >= round_index:
            return None
        until = last.heard_at + fresh
        return until if until > now else None

    def latest(self, sender: str) -> Beat | None:
        return self._last.get(sender)


@dataclass(frozen=True)
class RoundWait:
    """The timing of one round's wait, started at ``start`` with ``timeout = round_timeout``."""

    start: float
    timeout: float

    @property
    def deadline(self) -> float:
        """Until here every expected neighbour is waited for."""
        return self.start + self.timeout

    @property
    def cap(self) -> float:
        """Never later than here."""
        return self.start + LONGEST_WAIT * self.timeout

    def wake_at(self, now: float, vouched: list[float | None]) -> float | None:
        """When to look again, or ``None`` to stop waiting now (the round timed out).

        ``vouched`` has, for each neighbour still awaited, the time until which it is vouched
        for (``None``: it is not). Before the deadline: the deadline. After it: the earliest
        end of a vouching (or the cap), as long as some awaited neighbour is vouched for.
        """
        if now < self.deadline:
            return self.deadline
        ends = [until for until in vouched if until is not None and until > now]
        if not ends or now >= self.cap:
            return None
        return min(self.cap, min(ends))


class BeatClock:
    """When a waiting robot sends its next signal: ``period`` after it began waiting, then every
    ``period`` (``period <= 0``: never)."""

    def __init__(self, start: float, period: float) -> None:
        self.period = period
        self.next = start + period if period > 0 else float("inf")
        self.count = 0

    def due(self, now: float) -> bool:
        """Whether a signal is due now (and, if so, schedule the next)."""
        if now < self.next:
            return False
        while self.next <= now:
            self.next += self.period
        self.count += 1
        return True
