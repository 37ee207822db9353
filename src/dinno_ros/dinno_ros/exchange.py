"""One robot's side of a round over an unreliable network (plain logic, no ROS imports).

A robot at round ``k`` publishes ``theta_i^k`` tagged ``k``, collects its neighbours' round-``k``
weights, and steps when the round is *ready*. :class:`RoundExchange` is the collector: fed by the
node's callbacks, waited on by the training thread, guarded by one lock.

Rules (the numbers are the node parameters of the same name)
------------------------------------------------------------
Validation of every incoming message, in this order; the first failing check drops the message
and counts it under that reason (globally and, for teammates, per link):

1. ``unknown_sender``: the sender is not in the team, is this robot, or differs from the robot
   whose topic the message came on (a misconfigured remap or a spoofed name).
2. ``unauthenticated``: with a team key, the HMAC tag is missing or wrong
   (:mod:`dinno_ros.message_auth`): only team members are heard.
3. ``foreign_model``: the fingerprint differs from ours (another architecture).
4. ``malformed``: wrong shape, encoding, payload length, acknowledgement arrays or announced
   penalty (:func:`dinno_ros.weights_codec.message_problem`).
5. ``duplicate_sender``: a process session of this sender that was already replaced by a newer
   one speaks again: two processes run with the same robot id (reported; see
   :attr:`LinkStats.duplicate`). A restart replaces the session once and never goes back.
6. ``unknown_base``: a change since a round of the sender this robot does not hold (delta
   encoding, :mod:`dinno_core.wire_encoder`; the sender only refers to acknowledged rounds).
7. ``non_finite``: a NaN or Inf value.
8. ``out_of_bounds``: the weights fail the bounded-change check (:mod:`dinno_ros.update_guard`).
9. ``stale``: the round is earlier than ours; it can never be used.
10. ``absurd_round``: the round is more than ``max_round_lead`` ahead of ours.

What a message *is* is judged before *when* it came: poisoned weights are ``out_of_bounds``
whatever their round, never ``stale`` by the luck of timing; a message dropped for its timing does
not become the sender's bounded-change history.

Storage: per neighbour at most two messages: its round-``k`` message and its *newest* later one
(an older later one is ``superseded``). Moving to round ``k`` frees everything older.

Readiness: round ``k`` is ready when every *expected* neighbour (static, or the teammates in
range) delivered its round-``k`` message or is already past ``k``, or when ``round_timeout`` has
passed. A neighbour that missed ``absent_after`` rounds in a row is *absent* (not waited for until
it speaks again), so a cut-off robot costs its neighbours ``absent_after`` timeouts and the rest
of the team nothing: a waiting robot signals that it is alive and still in its round
(``RoundWaiting``, :meth:`receive_waiting`), and a robot in a later round keeps waiting past
``round_timeout`` for a neighbour that does so, up to ``LONGEST_WAIT * round_timeout``
(:mod:`dinno_ros.round_waiting`: the rule, and why it cannot hang); a silent neighbour is given
up at ``round_timeout``. Missing neighbours are absent from the Inbox: no dual/penalty term in
DiNNO, no mixing weight in DSGD/DSGT: a time-varying graph.

Catch-up (rejoin): if some expected neighbour's newest message is for round ``K >= k + 2`` the
robot is *behind* the team (restarted from an older checkpoint, or too slow). It does not step round ``k``; it adopts the highest
round ``K`` among its neighbours as its own round (the node sets the algorithm's round counter
to ``K``), publishes its weights tagged ``K`` and collects round ``K`` like any round: the
neighbours' latest messages (held, round ``K``) are that round's values, and the neighbours
waiting in round ``K`` receive this robot's round-``K`` weights at once, so the team is in step
again without costing anyone a timeout. A neighbour only one round ahead does not trigger
catch-up: that is the normal skew of a synchronous team (it finished round ``k`` first), and
stepping round ``k`` without it puts the two in step again. A robot can only catch up over at
most ``max_round_lead`` rounds (more is ``absurd_round``); choose it larger than the rounds a
restarting robot can miss. Only accepted (authenticated, bounded) messages are held, so only
team members can trigger a catch-up.

Acknowledgements: which of each teammate's rounds this robot used (:meth:`acknowledgements`, sent
with every message); each neighbour's newest acknowledgements of *our* rounds go to the trainer
(:attr:`RoundInputs.acks`) for DiNNO's exact edge duals (:mod:`dinno_core.algorithms.dual_ledger`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from dinno_core.algorithms.dual_ledger import ACK_BITS
from dinno_core.wire_encoder import ReferenceStore, apply_change
from dinno_ros.message_auth import TeamKey
from dinno_ros.round_waiting import BEAT_EVERY, FRESH_FOR, BeatClock, RoundWait, WaitingSignals
from dinno_ros.update_guard import UpdateGuard
from dinno_ros.ros_names import check_member, check_neighbours, check_team
from dinno_ros.exchange_records import DropReason, ExchangeSnapshot, LinkStats, Received, RoundInputs, UsedRounds
from dinno_ros.weights_codec import decode_values, message_problem

__all__ = ["CATCH_UP_LAG", "DropReason", "ExchangeSnapshot", "LinkStats", "Received", "RoundExchange", "RoundInputs"]

CATCH_UP_LAG = 2
"""A neighbour at least this many rounds ahead means this robot is behind: catch up."""


class RoundExchange:
    """Collects and validates neighbours' weights round by round (thread-safe).

    ``team`` lists every robot id in robot-index order; ``neighbours`` are the expected ones
    (change them with :meth:`set_neighbours`, e.g. from positions). ``num_params`` /
    ``num_vectors`` / ``fingerprint`` describe this robot's model and algorithm.
    """

    def __init__(self, robot_id: str, team: Iterable[str], *, fingerprint: int, num_params: int,
                 num_vectors: int = 1, neighbours: Iterable[str] = (), max_round_lead: int = 1000,
                 start_round: int = 0, clock: Callable[[], float] = time.monotonic,
                 key: TeamKey | None = None, guard: UpdateGuard | None = None, absent_after: int = 1) -> None:
        self.robot_id = robot_id
        self.team = tuple(check_team(team))
        check_member(robot_id, self.team)
        if max_round_lead < 1:
            raise ValueError(f"max_round_lead must be >= 1, got {max_round_lead}")
        if absent_after < 1:
            raise ValueError(f"absent_after must be >= 1, got {absent_after}")
        self.index = {name: i for i, name in enumerate(self.team)}
        self.fingerprint = int(fingerprint)
        self.num_params = int(num_params)
        self.num_vectors = int(num_vectors)
        self.max_round_lead = int(max_round_lead)
        self._clock = clock
        self._condition = threading.Condition(threading.Lock())
        self._round = int(start_round)
        self._expected: tuple[str, ...] = ()
        self._held: dict[str, dict[int, Received]] = {}
        self._links = {name: LinkStats() for name in self.team if name != robot_id}
        self._drops: Counter = Counter()
        self._superseded = 0
        self._accepted = 0
        self._closed = False
        self.key = key
        self.guard = guard
        self.absent_after = int(absent_after)
        self._used = UsedRounds(self._links, start_round)
        self._acks_from: dict[str, tuple[int, int, int]] = {}
        self._signals = WaitingSignals()
        self._references = ReferenceStore()  # neighbours' recent weights as decoded: delta bases
        self.set_neighbours(neighbours)

    # ------------------------------------------------------------------ configuration

    def set_neighbours(self, neighbours: Iterable[str]) -> None:
        """The neighbours expected from now on (kept in team order)."""
        wanted = set(check_neighbours(self.robot_id, self.team, set(neighbours)))
        with self._condition:
            self._expected = tuple(name for name in self.team if name in wanted)
            self._condition.notify_all()

    @property
    def expected(self) -> tuple[str, ...]:
        with self._condition:
            return self._expected

    @property
    def round(self) -> int:
        with self._condition:
            return self._round

    def close(self) -> None:
        """Wake every waiter with ``stopped=True`` (shutdown)."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    # ------------------------------------------------------------------ incoming

    def receive(self, msg: Any, via: str | None = None) -> tuple[DropReason, str] | None:
        """Validate and store one ``WeightUpdate`` (or anything with its fields).

        ``via`` names the teammate whose topic it came on. Returns ``None`` if it was kept, else
        ``(reason, detail)`` after counting the drop.
        """
        now = self._clock()
        sender = str(msg.sender)
        # Checks that need no lock come first; the payload is decoded outside the lock.
        refused = self._admit(msg, via, "verify", "")
        if refused:
            return refused
        problem = message_problem(msg, self.num_vectors, self.num_params)
        if problem:
            return self._drop(sender, DropReason.MALFORMED, problem)
        round_index = int(msg.round)
        session = int(getattr(msg, "session", 0))
        with self._condition:
            link = self._links[sender]
            if session in link.retired_sessions:
                return self._duplicate(sender, session)
            link.last_heard = now
            restarted = link.session not in (None, session)
        # What a message says is judged before when it came: a poisoned message is counted
        # out_of_bounds whatever round it is tagged with and whatever round we are in.
        values = decode_values(msg.payload, self.num_vectors, self.num_params, int(msg.encoding))
        base = int(getattr(msg, "delta_base", -1))
        if base >= 0:  # a change since the sender's round `base` (dinno_core.wire_encoder)
            with self._condition:
                reference = None if restarted else self._references.get(sender, base)
            if reference is None:
                return self._drop(sender, DropReason.UNKNOWN_BASE, f"round {round_index}: a change since round "
                                  f"{base}, which this robot does not hold")
            values = apply_change(reference, values)
        if not np.isfinite(values).all():
            return self._drop(sender, DropReason.NON_FINITE, f"round {round_index} has NaN/Inf values")
        if restarted and self.guard is not None:
            self.guard.forget(sender)  # a restarted process may be far from where it was
        if restarted:
            with self._condition:
                self._references.forget(sender)
        if self.guard is not None:
            problem = self.guard.check(sender, values[0])
            if problem:
                return self._drop(sender, DropReason.OUT_OF_BOUNDS, f"round {round_index}: {problem}")
        with self._condition:
            current = self._round
        if round_index > current + self.max_round_lead:
            return self._drop(sender, DropReason.ABSURD_ROUND,
                              f"round {round_index} > current {current} + max_round_lead {self.max_round_lead}")
        with self._condition:  # what we decoded, in time or not: a later change may refer to it
            self._references.store(sender, round_index, values)
        if round_index < current:
            return self._drop(sender, DropReason.STALE, f"round {round_index} < current {current}")
        ack = self._ack_for_me(msg, round_index)
        item = Received(sender, round_index, values, int(msg.degree), now, float(getattr(msg, "rho", math.nan)))
        with self._condition:
            if round_index < self._round:  # the training thread moved on while we decoded
                self._drops[DropReason.STALE.value] += 1
                self._links[sender].drops[DropReason.STALE.value] += 1
                return DropReason.STALE, f"round {round_index} < current {self._round}"
            held = self._held.setdefault(sender, {})
            if round_index > self._round:
                later = [r for r in held if r > self._round]
                if any(r > round_index for r in later):
                    self._superseded += 1  # an older later-round message: we hold a newer one
                    return None
                for r in later:
                    if r != round_index:
                        del held[r]
                        self._superseded += 1
            held[round_index] = item
            if self.guard is not None:
                self.guard.remember(sender, values[0])
            link = self._links[sender]
            if link.session not in (None, session):
                link.retired_sessions.add(link.session)
            link.session = session
            link.absent = False  # it speaks again
            if ack is not None and ack[0] >= self._acks_from.get(sender, (-1, 0, 0))[0]:
                self._acks_from[sender] = ack
            link.received += 1
            link.last_round = round_index if link.last_round is None else max(link.last_round, round_index)
            self._accepted += 1
            self._condition.notify_all()
        return None

    def receive_waiting(self, msg: Any, via: str | None = None) -> tuple[DropReason, str] | None:
        """Validate and record one ``RoundWaiting`` signal ("``sender`` is alive and still waiting
        in round ``msg.round``", :mod:`dinno_ros.round_waiting`). Checked like a weight message:
        ``unknown_sender``, ``unauthenticated``, ``foreign_model``, ``duplicate_sender``, and
        ``stale`` for a signal not newer than the last one of its session (replayed, reordered).
        Returns ``None`` if it was kept, else ``(reason, detail)`` after counting the drop."""
        now = self._clock()
        sender = str(msg.sender)
        refused = self._admit(msg, via, "verify_waiting", "waiting signal: ")
        if refused:
            return refused
        session = int(msg.session)
        with self._condition:
            link = self._links[sender]
            if session in link.retired_sessions:
                return self._duplicate(sender, session)
            problem = self._signals.heard(sender, session, int(msg.beat), int(msg.round), now)
            if problem is None:
                link.last_heard = now
                link.signals += 1
                return None
        return self._drop(sender, DropReason.STALE, f"waiting signal: {problem}")

    def _admit(self, msg: Any, via: str | None, verify: str, what: str) -> tuple[DropReason, str] | None:
        """The first checks of every message (``unknown_sender``, ``unauthenticated`` with the key's
        ``verify`` method, ``foreign_model``); the drop, or None."""
        sender = str(msg.sender)
        if sender not in self._links or (via is not None and sender != via):
            why = "is this robot" if sender == self.robot_id else (
                f"arrived on {via}'s topic" if sender in self._links else "is not in the team")
            return self._drop(None, DropReason.UNKNOWN_SENDER, f"{what}sender {sender!r} {why}")
        if self.key is not None and not getattr(self.key, verify)(msg):
            return self._drop(sender, DropReason.UNAUTHENTICATED, f"{what}missing or wrong HMAC tag")
        if int(msg.fingerprint) != self.fingerprint:
            return self._drop(sender, DropReason.FOREIGN_MODEL,
                              f"{what}fingerprint {int(msg.fingerprint):#x} != {self.fingerprint:#x}")
        return None

    def _duplicate(self, sender: str, session: int) -> tuple[DropReason, str]:
        """Count a message of a replaced session of ``sender`` (lock held)."""
        link = self._links[sender]
        link.duplicate = True
        self._drops[DropReason.DUPLICATE_SENDER.value] += 1
        link.drops[DropReason.DUPLICATE_SENDER.value] += 1
        return DropReason.DUPLICATE_SENDER, (f"session {session:#x} of {sender!r} was replaced by "
                                             f"{link.session:#x}: two processes use this robot id")

    def _ack_for_me(self, msg: Any, round_index: int) -> tuple[int, int, int] | None:
        """The sender's acknowledgement of our rounds: ``(newest round covered, bits, span)``."""
        robots = list(getattr(msg, "ack_robots", ()))
        if self.robot_id not in robots:
            return None
        bits = int(msg.ack_bits[robots.index(self.robot_id)])
        return round_index - 1, bits, min(int(msg.ack_span), ACK_BITS)

    def _drop(self, sender: str | None, reason: DropReason, detail: str) -> tuple[DropReason, str]:
        with self._condition:
            self._drops[reason.value] += 1
            if sender is not None:
                self._links[sender].drops[reason.value] += 1
        return reason, detail

    # ------------------------------------------------------------------ rounds

    def begin_round(self, round_index: int) -> None:
        """This robot is now at ``round_index``: forget everything older."""
        with self._condition:
            self._round = int(round_index)
            for held in self._held.values():
                for r in [r for r in held if r < self._round]:
                    del held[r]
            self._condition.notify_all()

    def _behind_by(self, expected: tuple[str, ...]) -> int | None:
        """The highest round among expected neighbours if it is ``>= round + CATCH_UP_LAG``."""
        newest = [max(self._held[j]) for j in expected if self._held.get(j)]
        if newest and max(newest) >= self._round + CATCH_UP_LAG:
            return max(newest)
        return None

    def _pending(self, expected: tuple[str, ...]) -> list[str]:
        """The expected neighbours the current round still waits for (lock held)."""
        k = self._round
        pending = []
        for j in expected:
            if self._links[j].absent:
                continue
            held = self._held.get(j)
            if not held or (k not in held and max(held) <= k):
                pending.append(j)
        return pending

    def wait_for_round(self, round_index: int, timeout: float,
                       signal: Callable[[int], None] | None = None) -> RoundInputs:
        """Block until round ``round_index`` is ready, the timeout passes, or :meth:`close`.

        Calls :meth:`begin_round` first. See the module docstring for the rules. Past
        ``timeout`` it keeps waiting only for neighbours that signal they are alive and still in
        an earlier round, at most ``LONGEST_WAIT * timeout`` in all (:mod:`dinno_ros.round_waiting`).
        ``signal(round_index)``, if given, is called (without the lock) every
        ``BEAT_EVERY * timeout`` seconds while this robot waits and once when its wait times out:
        the node sends its own "still waiting" signal there.
        """
        self.begin_round(round_index)
        wait = RoundWait(self._clock(), timeout)
        beats = BeatClock(wait.start, BEAT_EVERY * timeout if signal is not None else 0.0)
        fresh = FRESH_FOR * timeout
        with self._condition:
            timed_out = False
            waited_for: set[str] = set()
            while True:
                expected = self._expected
                if self._closed:
                    return RoundInputs(round_index, {}, expected, expected, stopped=True)
                target = self._behind_by(expected)
                if target is not None:
                    latest = {j: self._held[j][max(self._held[j])] for j in expected if self._held.get(j)}
                    return RoundInputs(round_index, {}, expected, expected, catch_up_to=target, latest=latest)
                pending = self._pending(expected)
                if not pending:
                    break
                now = self._clock()
                vouched = {j: self._signals.vouched_until(j, round_index, now, fresh) for j in pending}
                wake = wait.wake_at(now, list(vouched.values()))
                if wake is None:
                    timed_out = True
                    break
                if signal is not None and beats.due(now):
                    self._condition.release()
                    try:
                        signal(round_index)
                    finally:
                        self._condition.acquire()
                    continue
                if now >= wait.deadline:
                    waited_for.update(j for j, until in vouched.items() if until is not None)
                self._condition.wait(max(0.0, min(wake, beats.next) - now))
            for j in waited_for:
                self._links[j].waited_past_timeout += 1
            used = {j: self._held[j][round_index] for j in expected
                    if round_index in self._held.get(j, {})}
            missing = tuple(j for j in expected if j not in used)
            for j in expected:
                link = self._links[j]
                if j in used:
                    link.used += 1
                    link.missed_in_a_row = 0
                else:
                    link.missed += 1
                    link.missed_in_a_row += 1
                    if link.missed_in_a_row >= self.absent_after:
                        link.absent = True
            self._used.record(round_index, used)
            acks = {j: self._acks_from[j] for j in expected if j in self._acks_from}
        if timed_out and signal is not None:
            signal(round_index)  # still in this round while stepping: the waiters hold on a little longer
        return RoundInputs(round_index, used, expected, missing, timed_out=timed_out, acks=acks)

    def restart_acknowledgements(self, round_index: int) -> None:
        """This process starts (or resumes) at ``round_index``: it knows nothing of earlier rounds."""
        with self._condition:
            self._used.restart(round_index)

    def acknowledgements(self, round_index: int) -> tuple[list[str], list[int], int]:
        """What to send with our round-``round_index`` message: ``(robots, bits, span)``, bit ``b``
        of a robot's entry = we used its round ``round_index - 1 - b``."""
        with self._condition:
            return self._used.acknowledgements(round_index)

    def wait_for_neighbours(self, timeout: float) -> tuple[str, ...]:
        """Block until every expected neighbour has been heard once (or timeout / close).

        Used before the first round so that a team started process by process begins together.
        Returns the expected neighbours still unheard.
        """
        deadline = self._clock() + timeout
        with self._condition:
            while True:
                silent = tuple(j for j in self._expected if self._links[j].last_heard is None)
                remaining = deadline - self._clock()
                if not silent or self._closed or remaining <= 0:
                    return silent
                self._condition.wait(remaining)

    # ------------------------------------------------------------------ monitoring

    def snapshot(self) -> ExchangeSnapshot:
        with self._condition:
            return ExchangeSnapshot(
                round=self._round,
                drops={reason.value: self._drops.get(reason.value, 0) for reason in DropReason},
                superseded=self._superseded,
                accepted=self._accepted,
                links={name: link.copy() for name, link in self._links.items()},
                expected=self._expected,
            )

    @property
    def total_dropped(self) -> int:
        with self._condition:
            return sum(self._drops.values())
