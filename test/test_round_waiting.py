"""How long a robot waits for a round (plain logic, no ROS): the "still waiting" signals, the
deadline past ``round_timeout`` for a neighbour that signals, the cap, the checks on signals, and
a cut-off robot in a ring of robot threads (its neighbours time out once, the others never)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dinno_ros.exchange import DropReason, RoundExchange
from dinno_ros.message_auth import TeamKey, write_team_key
from dinno_ros.round_waiting import BEAT_EVERY, FRESH_FOR, LONGEST_WAIT, BeatClock, RoundWait, WaitingSignals
from dinno_ros.weights_codec import to_packet, to_waiting_packet

TEAM = ["a", "b", "c"]
N = 3
FP = 99


def weights(sender="b", round_index=0, key=None):
    return to_packet(np.full((1, N), 0.5, np.float32), sender=sender, round_index=round_index, fingerprint=FP,
                     degree=2, session=7, key=key)


def waiting(sender="b", round_index=0, beat=1, key=None, session=7, fingerprint=FP):
    return to_waiting_packet(sender=sender, round_index=round_index, fingerprint=fingerprint, session=session,
                             beat=beat, key=key)


def exchange(**kwargs):
    args = dict(fingerprint=FP, num_params=N, neighbours=["b", "c"], max_round_lead=10)
    args.update(kwargs)
    return RoundExchange("a", TEAM, **args)


class Signaller:
    """Sends ``sender``'s "still waiting in round r" to ``ex`` every ``period`` s until stopped."""

    def __init__(self, ex, sender, round_index, period=0.03):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ex, sender, round_index, period))
        self.thread.start()

    def _run(self, ex, sender, round_index, period):
        beat = 0
        while not self.stop.is_set():
            beat += 1
            assert ex.receive_waiting(waiting(sender, round_index, beat), via=sender) is None
            self.stop.wait(period)

    def close(self):
        self.stop.set()
        self.thread.join()


# ------------------------------------------------------------------------------ the plain rules


def test_a_round_wait_ends_at_the_timeout_unless_a_neighbour_is_vouched_for_and_never_after_the_cap():
    wait = RoundWait(start=10.0, timeout=2.0)
    assert wait.deadline == 12.0 and wait.cap == 10.0 + LONGEST_WAIT * 2.0
    assert wait.wake_at(11.0, [None]) == 12.0  # before the deadline: everyone is waited for
    assert wait.wake_at(12.0, [None, None]) is None  # nobody vouched for: timed out
    assert wait.wake_at(12.0, [None, 12.5]) == 12.5  # keep waiting while the signal is fresh
    assert wait.wake_at(12.0, [12.2, 13.0]) == 12.2
    assert wait.wake_at(13.5, [20.0]) == wait.cap  # never past the cap
    assert wait.wake_at(wait.cap, [20.0]) is None
    assert wait.wake_at(12.6, [12.5]) is None  # the vouching ended


def test_signals_vouch_only_for_an_earlier_round_while_fresh_and_replays_are_refused():
    signals = WaitingSignals()
    assert signals.heard("b", session=1, beat=1, round_index=4, now=0.0) is None
    assert signals.vouched_until("b", 5, now=0.1, fresh=0.5) == pytest.approx(0.5)
    assert signals.vouched_until("b", 4, now=0.1, fresh=0.5) is None  # same round: it has sent round 4
    assert signals.vouched_until("b", 5, now=0.6, fresh=0.5) is None  # not fresh any more
    assert signals.vouched_until("c", 5, now=0.1, fresh=0.5) is None  # never signalled
    assert "not newer" in signals.heard("b", session=1, beat=1, round_index=4, now=0.2)  # a replay
    assert "not newer" in signals.heard("b", session=1, beat=0, round_index=9, now=0.2)
    assert signals.heard("b", session=2, beat=1, round_index=0, now=0.3) is None  # a restart starts over
    assert signals.latest("b").session == 2


def test_the_beat_clock_is_due_every_period_and_never_when_off():
    beats = BeatClock(start=0.0, period=0.5)
    assert not beats.due(0.4) and beats.due(0.5) and not beats.due(0.9) and beats.due(1.7)
    assert beats.next == 2.0 and beats.count == 2
    off = BeatClock(start=0.0, period=0.0)
    assert not off.due(1e9)


# ------------------------------------------------------------------------------ the exchange


def test_a_neighbour_signalling_from_an_earlier_round_is_waited_for_past_the_timeout():
    ex = exchange()
    ex.receive(weights("c", 1), via="c")
    signaller = Signaller(ex, "b", 0)  # b is alive, waiting in round 0 (its round 1 comes later)
    threading.Timer(0.5, ex.receive, args=(weights("b", 1),), kwargs={"via": "b"}).start()
    began = time.monotonic()
    try:
        inputs = ex.wait_for_round(1, timeout=0.3)
    finally:
        signaller.close()
    assert time.monotonic() - began >= 0.45
    assert not inputs.timed_out and set(inputs.neighbours) == {"b", "c"}
    snap = ex.snapshot()
    assert snap.links["b"].waited_past_timeout == 1 and snap.links["b"].signals >= 5
    assert snap.links["b"].missed == 0 and snap.links["c"].waited_past_timeout == 0


def test_a_signal_from_the_same_round_or_a_silent_neighbour_is_not_waited_for():
    ex = exchange()
    ex.receive(weights("c", 1), via="c")
    signaller = Signaller(ex, "b", 1)  # b is in round 1 too: it sent its round 1; we do not hold on
    began = time.monotonic()
    try:
        inputs = ex.wait_for_round(1, timeout=0.3)
    finally:
        signaller.close()
    assert inputs.timed_out and inputs.missing == ("b",) and time.monotonic() - began < 0.3 * LONGEST_WAIT
    ex = exchange()
    signaller = Signaller(ex, "b", 0)  # b vouched for, c silent: wait for b only, then time out for c
    threading.Timer(0.45, ex.receive, args=(weights("b", 1),), kwargs={"via": "b"}).start()
    try:
        inputs = ex.wait_for_round(1, timeout=0.3)
    finally:
        signaller.close()
    assert inputs.timed_out and list(inputs.neighbours) == ["b"] and inputs.missing == ("c",)


def test_no_wait_outlasts_the_cap_or_a_signaller_that_fell_silent():
    ex = exchange()
    ex.receive(weights("c", 1), via="c")
    signaller = Signaller(ex, "b", 0)  # signals for ever, never sends round 1
    began = time.monotonic()
    try:
        inputs = ex.wait_for_round(1, timeout=0.2)
    finally:
        signaller.close()
    waited = time.monotonic() - began
    assert inputs.timed_out and inputs.missing == ("b",)
    assert 0.2 * LONGEST_WAIT - 0.02 <= waited < 0.2 * LONGEST_WAIT + 1.0
    ex = exchange()
    ex.receive(weights("c", 1), via="c")
    ex.receive_waiting(waiting("b", 0, beat=1), via="b")  # one signal, then b dies
    began = time.monotonic()
    inputs = ex.wait_for_round(1, timeout=0.3)
    assert inputs.timed_out and time.monotonic() - began < 0.3 + 0.3 * FRESH_FOR + 0.5


def test_a_waiting_robot_signals_every_quarter_timeout_and_as_it_times_out():
    ex = exchange()
    ex.receive(weights("c", 2), via="c")
    sent: list[tuple[int, float]] = []
    began = time.monotonic()
    inputs = ex.wait_for_round(2, timeout=0.4, signal=lambda r: sent.append((r, time.monotonic() - began)))
    assert inputs.timed_out
    # Beats at 1/4, 2/4, 3/4 of the timeout, then the last one as it times out (a late wake-up
    # on a busy machine may skip one: the timeout comes first).
    assert [r for r, _ in sent] == [2] * len(sent) and len(sent) in (round(1 / BEAT_EVERY) - 1, round(1 / BEAT_EVERY))
    assert sent[0][1] >= 0.4 * BEAT_EVERY - 0.01 and sent[-1][1] >= 0.4 - 0.01
    ex.receive(weights("b", 3), via="b")
    ex.receive(weights("c", 3), via="c")
    sent.clear()
    assert not ex.wait_for_round(3, timeout=0.4, signal=lambda r: sent.append((r, 0.0))).timed_out
    assert sent == []  # a round that is ready at once sends nothing


def test_signals_are_checked_like_weights(tmp_path):
    key = TeamKey.from_file(write_team_key(tmp_path / "team.key"))
    ex = exchange(key=key)
    assert ex.receive_waiting(waiting(key=key), via="b") is None
    assert ex.receive_waiting(waiting(beat=2), via="b")[0] is DropReason.UNAUTHENTICATED  # no tag
    other = TeamKey.from_file(write_team_key(tmp_path / "other.key"))
    assert ex.receive_waiting(waiting(beat=3, key=other), via="b")[0] is DropReason.UNAUTHENTICATED
    tampered = waiting(beat=4, round_index=3, key=key)
    tampered.round = 2  # re-tagged for another round
    assert ex.receive_waiting(tampered, via="b")[0] is DropReason.UNAUTHENTICATED
    weights_tag = weights(key=key).auth_tag  # a weight message's tag never signs a signal
    forged = waiting(beat=5)
    forged.auth_tag = weights_tag
    assert ex.receive_waiting(forged, via="b")[0] is DropReason.UNAUTHENTICATED
    assert ex.receive_waiting(waiting(beat=1, key=key), via="b")[0] is DropReason.STALE  # replayed
    assert ex.receive_waiting(waiting("x", key=key), via="b")[0] is DropReason.UNKNOWN_SENDER
    assert ex.receive_waiting(waiting("c", key=key), via="b")[0] is DropReason.UNKNOWN_SENDER  # c on b's topic
    assert ex.receive_waiting(waiting(beat=6, key=key, fingerprint=FP + 1), via="b")[0] is DropReason.FOREIGN_MODEL
    ex.receive(weights("b", 0, key=key), via="b")  # session 7 ...
    ex.receive(to_packet(np.full((1, N), 0.5, np.float32), sender="b", round_index=1, fingerprint=FP, degree=2,
                         session=8, key=key), via="b")  # ... replaced by 8 (a restart)
    assert ex.receive_waiting(waiting(beat=9, key=key), via="b")[0] is DropReason.DUPLICATE_SENDER
    snap = ex.snapshot()
    assert snap.links["b"].signals == 1 and snap.drops["unauthenticated"] == 4 and snap.drops["stale"] == 1
    assert snap.accepted == 2  # signals are not weights


# ------------------------------------------------------------------------------ a ring of robot threads


def run_ring(cut_at: int, rounds: int, signals: bool, timeout: float = 0.4,
             slow: str = "r1", slow_step: float = 0.08) -> tuple[dict[str, int], dict[str, int]]:
    """Five robots on a ring, one thread each, sending to each other's exchanges directly; ``r0``
    sends its rounds up to ``cut_at`` and then falls silent for good. ``slow`` takes
    ``slow_step`` s to step (the others nothing), the case that made a non-neighbour race the
    neighbour waiting out ``r0``. Returns each robot's timeouts and catch-ups."""
    robots = [f"r{i}" for i in range(5)]
    ring = {r: [robots[(i - 1) % 5], robots[(i + 1) % 5]] for i, r in enumerate(robots)}
    exchanges = {r: RoundExchange(r, robots, fingerprint=FP, num_params=N, neighbours=ring[r], max_round_lead=50)
                 for r in robots}
    timeouts = dict.fromkeys(robots, 0)
    catch_ups = dict.fromkeys(robots, 0)
    errors: list[BaseException] = []

    def robot(name: str) -> None:
        beats = 0

        def signal(round_index: int) -> None:
            nonlocal beats
            beats += 1
            for n in ring[name]:
                exchanges[n].receive_waiting(waiting(name, round_index, beats), via=name)

        try:
            k = 0
            while k < rounds:  # the trainer's loop: send round k, wait for it, step (or catch up)
                if name == "r0" and k >= cut_at:
                    return
                for n in ring[name]:
                    exchanges[n].receive(weights(name, k), via=name)
                inputs = exchanges[name].wait_for_round(k, timeout, signal=signal if signals else None)
                if inputs.catch_up_to is not None:
                    catch_ups[name] += 1
                    k = inputs.catch_up_to
                    continue
                timeouts[name] += int(inputs.timed_out)
                if name == slow:
                    time.sleep(slow_step)
                k += 1
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    threads = [threading.Thread(target=robot, args=(r,)) for r in robots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads), errors
    return timeouts, catch_ups


def test_a_cut_off_robot_costs_its_neighbours_one_timeout_and_the_others_none():
    for _ in range(3):
        timeouts, catch_ups = run_ring(cut_at=3, rounds=12, signals=True)
        assert timeouts["r1"] == 1 and timeouts["r4"] == 1, timeouts
        assert timeouts["r2"] == 0 and timeouts["r3"] == 0, timeouts
        assert sum(catch_ups.values()) == 0, catch_ups  # the team stayed in step


def test_without_the_signals_a_non_neighbour_races_the_waiting_neighbour():
    """The same ring without signals: r2 waits for the slow r1, which sends its next round one
    timeout plus its step after r2 began to wait, so r2 times out too (the race the signals end)."""
    timeouts, _ = run_ring(cut_at=3, rounds=12, signals=False)
    # Without signals the races cascade, so the cut robot's neighbours may time out more than once
    # (a clean-clone CI run saw r4 twice); what the control shows is that the non-neighbour does too.
    assert timeouts["r1"] >= 1 and timeouts["r4"] >= 1, timeouts
    assert timeouts["r2"] >= 1, timeouts


def test_a_ros_signal_has_the_packets_fields_and_verifies_like_it(tmp_path):
    from dinno_msgs.msg import RoundWaiting

    from dinno_ros.weights_codec import WaitingPacket, to_waiting_message

    assert set(WaitingPacket.__dataclass_fields__) <= set(RoundWaiting.get_fields_and_field_types())
    key = TeamKey.from_file(write_team_key(tmp_path / "team.key"))
    msg = to_waiting_message(sender="b", round_index=4, fingerprint=FP, session=7, beat=3, key=key)
    assert key.verify_waiting(msg) and bytes(msg.auth_tag) == bytes(waiting("b", 4, 3, key=key).auth_tag)
    assert exchange(key=key).receive_waiting(msg, via="b") is None


def test_a_round_waits_startup_timeout_only_while_a_neighbour_has_only_announced_itself():
    from dinno_ros.exchange_records import LinkStats
    from dinno_ros.round_waiting import round_wait_timeout

    running, announced, silent = LinkStats(received=7), LinkStats(received=1), LinkStats(received=0)
    assert round_wait_timeout({"a": running}, 2.0, 30.0) == 2.0
    # heard once: its announcement before its first round; it may still wait for its own neighbours
    assert round_wait_timeout({"a": running, "b": announced}, 2.0, 30.0) == 30.0
    # never heard (the start-up wait already gave up on it) or absent: no longer waits
    assert round_wait_timeout({"a": running, "c": silent}, 2.0, 30.0) == 2.0
    assert round_wait_timeout({"b": LinkStats(received=1, absent=True)}, 2.0, 30.0) == 2.0
    assert round_wait_timeout({"b": announced}, 2.0, 0.0) == 2.0  # startup_timeout 0: no start-up wait
