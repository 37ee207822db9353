"""The robot's round logic without ROS (validation, early/late/stale, timeout, catch-up) and the
weight codec (bit-exact float32, float16 within its precision)."""

from __future__ import annotations

import math

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from dinno_ros.exchange import CATCH_UP_LAG, DropReason, RoundExchange
from dinno_ros.weights_codec import (
    ENCODING_FLOAT16,
    ENCODING_FLOAT32,
    EncodingError,
    WeightPacket,
    decode_values,
    encode_values,
    from_message,
    to_message,
    to_packet,
)

TEAM = ["a", "b", "c", "d"]
N = 7
FP = 0x1234_5678_9ABC


def packet(sender="b", round_index=0, values=None, fingerprint=FP, encoding=ENCODING_FLOAT32, degree=2,
           num_vectors=1):
    if values is None:
        values = np.full((num_vectors, N), float(round_index) + (TEAM.index(sender) if sender in TEAM else 9) / 10, np.float32)
    return to_packet(values, sender=sender, round_index=round_index, fingerprint=fingerprint, degree=degree,
                     encoding=encoding)


def exchange(**kwargs):
    args = dict(fingerprint=FP, num_params=N, neighbours=["b", "c"], max_round_lead=10)
    args.update(kwargs)
    return RoundExchange("a", TEAM, **args)


# ------------------------------------------------------------------------------------ codec


def test_float32_round_trip_is_bit_exact():
    values = np.random.default_rng(0).standard_normal((2, 1000)).astype(np.float32)
    values[0, :4] = [np.finfo(np.float32).tiny, -0.0, 3.4e38, 1e-45]  # extremes survive too
    payload, m, n = encode_values(values)
    assert (m, n) == (2, 1000) and len(payload) == 2 * 1000 * 4
    decoded = decode_values(payload, m, n, ENCODING_FLOAT32)
    assert decoded.dtype == np.float32
    assert decoded.tobytes() == values.tobytes()


def test_float16_round_trip_within_half_precision():
    values = np.random.default_rng(1).standard_normal(5000).astype(np.float32)
    payload, m, n = encode_values(values, ENCODING_FLOAT16)
    assert len(payload) == 5000 * 2
    decoded = decode_values(payload, m, n, ENCODING_FLOAT16)[0]
    assert decoded.dtype == np.float32
    # float16 has an 11-bit significand: relative rounding error <= 2**-11 for normal numbers.
    normal = np.abs(values) > 6.2e-5
    assert np.all(np.abs(decoded - values)[normal] <= np.abs(values[normal]) * 2.0**-11)
    assert not np.array_equal(decoded, values)  # it really is lossy


def test_torch_tensors_encode_like_numpy():
    theta = torch.randn(1, 300, dtype=torch.float64)
    payload, _, _ = encode_values(theta)
    assert bytes(payload) == theta.numpy().astype("<f4").tobytes()


def test_non_finite_and_float16_overflow_are_never_encoded():
    with pytest.raises(EncodingError, match="non-finite"):
        encode_values(np.array([1.0, np.nan], np.float32))
    with pytest.raises(EncodingError, match="range"):
        encode_values(np.array([1.0, 1e6], np.float32), ENCODING_FLOAT16)


def test_ros_message_round_trip_and_constants():
    from dinno_msgs.msg import WeightUpdate

    assert WeightUpdate.ENCODING_FLOAT32 == ENCODING_FLOAT32 and WeightUpdate.ENCODING_FLOAT16 == ENCODING_FLOAT16
    values = np.random.default_rng(2).standard_normal((2, 28_440)).astype(np.float32)
    msg = to_message(values, sender="robot_1", round_index=2**32 - 1, fingerprint=2**63 - 1, degree=3)
    assert isinstance(msg, WeightUpdate)
    assert (msg.sender, msg.round, msg.fingerprint, msg.num_params, msg.num_vectors, msg.degree) == (
        "robot_1", 2**32 - 1, 2**63 - 1, 28_440, 2, 3)
    assert from_message(msg).tobytes() == values.tobytes()


def test_exchange_module_does_not_import_ros():
    code = "import sys, dinno_ros.exchange; bad = [m for m in ('rclpy', 'dinno_msgs') if m in sys.modules]; " \
           "sys.exit(str(bad) if bad else 0)"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("bad, reason", [
    (dict(sender="zed"), DropReason.UNKNOWN_SENDER),
    (dict(sender="a"), DropReason.UNKNOWN_SENDER),  # our own name
    (dict(fingerprint=FP + 1), DropReason.FOREIGN_MODEL),
    (dict(values=np.zeros((1, N + 1), np.float32)), DropReason.MALFORMED),
    (dict(num_vectors=2), DropReason.MALFORMED),
    (dict(values=np.array([[np.nan] * N], np.float64)), DropReason.NON_FINITE),
    (dict(round_index=11), DropReason.ABSURD_ROUND),
])
def test_invalid_messages_are_dropped_by_reason(bad, reason):
    ex = exchange()
    if "values" in bad and not np.isfinite(bad["values"]).all():
        msg = packet()
        msg.payload = encode_values(np.zeros((1, N), np.float32))[0]
        arr = np.frombuffer(msg.payload, np.float32).copy()
        arr[3] = np.nan
        msg.payload = type(msg.payload)("B", arr.tobytes())
    else:
        msg = packet(**bad)
    result = ex.receive(msg)
    assert result is not None and result[0] is reason
    snap = ex.snapshot()
    assert snap.drops[reason.value] == 1
    assert sum(snap.drops.values()) == 1
    assert snap.accepted == 0


def test_payload_length_encoding_and_topic_mismatch_are_checked():
    ex = exchange()
    truncated = packet()
    truncated.payload = truncated.payload[:-1]
    assert ex.receive(truncated)[0] is DropReason.MALFORMED
    odd = packet()
    odd.encoding = 7
    assert ex.receive(odd)[0] is DropReason.MALFORMED
    wrong_count = packet()
    wrong_count.num_params = N - 1
    assert ex.receive(wrong_count)[0] is DropReason.MALFORMED
    assert ex.receive(packet("c"), via="b")[0] is DropReason.UNKNOWN_SENDER  # c's name on b's topic
    assert ex.receive(packet("b"), via="b") is None
    snap = ex.snapshot()
    assert snap.drops["malformed"] == 3 and snap.drops["unknown_sender"] == 1 and snap.accepted == 1
    assert snap.links["b"].drops["malformed"] == 3


def test_the_announced_penalty_travels_and_an_absurd_one_is_malformed():
    """DiNNO's ρ for the round comes with the weights (NaN or 0: not announced); a negative or
    infinite one is dropped as malformed, never used on the edge."""
    ex = exchange()
    assert ex.receive(to_packet(np.zeros((1, N), np.float32), sender="b", round_index=0, fingerprint=FP,
                                degree=2, rho=0.75)) is None
    assert ex.receive(packet("c")) is None  # nothing announced
    inputs = ex.wait_for_round(0, timeout=0.1)
    assert inputs.neighbours["b"].rho == 0.75 and math.isnan(inputs.neighbours["c"].rho)
    for rho in (-1.0, math.inf):
        bad = packet("b", round_index=1)
        bad.rho = rho
        assert ex.receive(bad)[0] is DropReason.MALFORMED
    assert ex.snapshot().drops["malformed"] == 2


def test_a_change_is_added_to_the_round_it_refers_to_and_an_unknown_base_is_dropped():
    """Delta encoding: a message holding the change since the sender's round r is rebuilt on this
    robot's copy of that round, as the sender computed it; a change since a round this robot does
    not hold (lost, too old, or from before the sender restarted) is dropped as unknown_base; a base
    that is not an earlier round is malformed; the base is covered by the HMAC."""
    from dinno_ros.message_auth import TeamKey
    from dinno_core.wire_encoder import apply_change

    key = TeamKey(bytes(range(32)))
    ex = exchange(neighbours=["b"], key=key)
    first = np.linspace(-1, 1, N, dtype=np.float32)[None]
    change = np.full((1, N), 0.25, np.float32)

    def signed(round_index, values, base=-1, session=1):
        return to_packet(values, sender="b", round_index=round_index, fingerprint=FP, degree=1, key=key,
                         delta_base=base, session=session)

    assert ex.receive(signed(0, first)) is None
    assert ex.wait_for_round(0, timeout=0.1).neighbours["b"].values.tolist() == first.tolist()
    ex.begin_round(1)
    assert ex.receive(signed(1, change, base=0)) is None
    rebuilt = ex.wait_for_round(1, timeout=0.1).neighbours["b"].values
    assert rebuilt.tobytes() == apply_change(first, change).tobytes()
    ex.begin_round(2)
    assert ex.receive(signed(2, change, base=1)) is None  # a change since a rebuilt round
    assert ex.wait_for_round(2, timeout=0.1).neighbours["b"].values.tobytes() == apply_change(rebuilt, change).tobytes()
    ex.begin_round(3)
    assert ex.receive(signed(4, change, base=3))[0] is DropReason.UNKNOWN_BASE  # round 3 never came
    ahead = signed(3, change, base=0)  # the encoder refuses a base that is not earlier; a forger signs one
    ahead.delta_base = 5
    key.sign(ahead)
    assert ex.receive(ahead)[0] is DropReason.MALFORMED
    with pytest.raises(EncodingError, match="delta_base"):
        signed(3, change, base=3)
    forged = signed(3, change, base=0)
    forged.delta_base = 1
    assert ex.receive(forged)[0] is DropReason.UNAUTHENTICATED
    assert ex.receive(signed(3, change, base=2, session=2))[0] is DropReason.UNKNOWN_BASE  # a restarted sender
    assert {k: v for k, v in ex.snapshot().drops.items() if v} == {"unknown_base": 2, "malformed": 1, "unauthenticated": 1}
    assert ex.receive(signed(3, first, session=2)) is None  # its key frame is taken
    ex.begin_round(5)
    assert ex.receive(signed(4, change, base=3, session=2))[0] is DropReason.STALE  # too late, but decoded and kept:
    assert ex.receive(signed(5, change, base=4, session=2)) is None  # a change since it decodes


def test_float16_messages_are_accepted_and_decoded():
    ex = exchange(neighbours=["b"])
    assert ex.receive(packet("b", 0, encoding=ENCODING_FLOAT16)) is None
    inputs = ex.wait_for_round(0, timeout=1.0)
    assert inputs.neighbours["b"].values.dtype == np.float32
    np.testing.assert_allclose(inputs.neighbours["b"].values, 0.1, rtol=1e-3)


# ----------------------------------------------------------------------------------- rounds


def test_round_ready_when_all_neighbours_arrived():
    ex = exchange()
    assert ex.receive(packet("b", 0)) is None
    assert ex.receive(packet("c", 0)) is None
    began = time.monotonic()
    inputs = ex.wait_for_round(0, timeout=5.0)
    assert time.monotonic() - began < 1.0
    assert not inputs.timed_out and inputs.catch_up_to is None
    assert list(inputs.neighbours) == ["b", "c"] and inputs.missing == ()
    assert float(inputs.neighbours["c"].values[0, 0]) == pytest.approx(0.2)


def test_timeout_steps_with_the_neighbours_that_arrived():
    ex = exchange()
    ex.receive(packet("c", 0))
    began = time.monotonic()
    inputs = ex.wait_for_round(0, timeout=0.2)
    waited = time.monotonic() - began
    assert 0.18 <= waited < 2.0
    assert inputs.timed_out and list(inputs.neighbours) == ["c"] and inputs.missing == ("b",)
    snap = ex.snapshot()
    assert snap.links["b"].missed == 1 and snap.links["b"].missed_in_a_row == 1
    assert snap.links["c"].used == 1 and snap.links["c"].missed == 0


def test_waiting_wakes_when_the_last_neighbour_arrives():
    ex = exchange()
    ex.receive(packet("b", 0))
    threading.Timer(0.1, ex.receive, args=(packet("c", 0),)).start()
    began = time.monotonic()
    inputs = ex.wait_for_round(0, timeout=10.0)
    assert time.monotonic() - began < 5.0 and not inputs.timed_out
    assert list(inputs.neighbours) == ["b", "c"]


def test_early_messages_are_kept_newest_per_neighbour_and_stale_ones_dropped():
    ex = exchange()
    for r in (1, 2):
        assert ex.receive(packet("b", r)) is None  # b is ahead of us (we are at round 0)
    ex.receive(packet("b", 0))
    ex.receive(packet("c", 0))
    inputs = ex.wait_for_round(0, timeout=1.0)
    assert inputs.catch_up_to == 2  # b is two rounds ahead: we are behind
    # One round ahead is normal skew: kept for later, no catch-up.
    ex = exchange()
    ex.receive(packet("b", 1))
    ex.receive(packet("b", 0))
    ex.receive(packet("c", 0))
    inputs = ex.wait_for_round(0, timeout=1.0)
    assert inputs.catch_up_to is None and float(inputs.neighbours["b"].values[0, 0]) == pytest.approx(0.1)
    ex.receive(packet("c", 1))
    inputs = ex.wait_for_round(1, timeout=1.0)  # b's early round-1 message was kept
    assert not inputs.timed_out and float(inputs.neighbours["b"].values[0, 0]) == pytest.approx(1.1)
    # A message for a round we already left is stale.
    result = ex.receive(packet("c", 0))
    assert result is not None and result[0] is DropReason.STALE
    assert ex.snapshot().drops["stale"] == 1


def test_newer_early_message_supersedes_older_one():
    ex = exchange(neighbours=["b"])
    ex.receive(packet("b", 1))
    ex.receive(packet("b", 3))
    assert ex.receive(packet("b", 2)) is None  # older than the held round-3 message: ignored
    snap = ex.snapshot()
    assert snap.superseded == 2 and snap.links["b"].last_round == 3
    inputs = ex.wait_for_round(0, timeout=0.05)
    assert inputs.catch_up_to == 3 and inputs.latest["b"].round == 3


def test_neighbour_past_our_round_does_not_make_us_wait():
    """b sent round 1 but its round-0 message never came: it will not, so no timeout is waited."""
    ex = exchange()
    ex.receive(packet("b", 1))
    ex.receive(packet("c", 0))
    began = time.monotonic()
    inputs = ex.wait_for_round(0, timeout=5.0)
    assert time.monotonic() - began < 1.0 and not inputs.timed_out
    assert list(inputs.neighbours) == ["c"] and inputs.missing == ("b",)


def test_catch_up_after_restart_from_an_old_checkpoint():
    """A robot resumed at round 3 while the team is at 8: adopt 8, use the neighbours' round-8 weights."""
    ex = exchange(start_round=3, max_round_lead=50)
    ex.receive(packet("b", 7))
    ex.receive(packet("b", 8))
    ex.receive(packet("c", 8))
    inputs = ex.wait_for_round(3, timeout=5.0)
    assert inputs.catch_up_to == 8 and inputs.neighbours == {}
    assert {j: r.round for j, r in inputs.latest.items()} == {"b": 8, "c": 8}
    # The robot adopts round 8 and collects it like any round: the held messages are its values.
    began = time.monotonic()
    inputs = ex.wait_for_round(8, timeout=5.0)
    assert time.monotonic() - began < 1.0
    assert inputs.catch_up_to is None and not inputs.timed_out
    assert {j: float(r.values[0, 0]) for j, r in inputs.neighbours.items()} == pytest.approx({"b": 8.1, "c": 8.2})
    assert ex.receive(packet("b", 5))[0] is DropReason.STALE


def test_catch_up_lag_is_two_rounds():
    assert CATCH_UP_LAG == 2
    ex = exchange(neighbours=["b"])
    ex.receive(packet("b", 1))
    assert ex.wait_for_round(0, timeout=0.05).catch_up_to is None


def test_only_expected_neighbours_count_and_can_change():
    ex = exchange(neighbours=["b"])
    ex.receive(packet("d", 0))  # a teammate out of range: kept, not waited for
    ex.receive(packet("b", 0))
    inputs = ex.wait_for_round(0, timeout=1.0)
    assert list(inputs.neighbours) == ["b"]
    ex.set_neighbours(["d", "b"])
    assert ex.expected == ("b", "d")  # team order
    ex.receive(packet("b", 1))
    ex.receive(packet("d", 1))
    assert list(ex.wait_for_round(1, timeout=1.0).neighbours) == ["b", "d"]
    with pytest.raises(ValueError):
        ex.set_neighbours(["zed"])


def test_close_wakes_waiters_and_startup_wait():
    ex = exchange()
    threading.Timer(0.1, ex.close).start()
    inputs = ex.wait_for_round(0, timeout=30.0)
    assert inputs.stopped
    ex = exchange()
    ex.receive(packet("b", 0))
    began = time.monotonic()
    assert ex.wait_for_neighbours(0.1) == ("c",)
    assert time.monotonic() - began >= 0.09
    ex.receive(packet("c", 0))
    assert ex.wait_for_neighbours(5.0) == ()


def test_concurrent_receivers_and_waiter():
    """Receive from several threads while the training thread waits round after round."""
    ex = exchange(max_round_lead=1000)
    rounds = 200

    def sender(name):
        for r in range(rounds):
            while ex.round < r - 1:  # a neighbour stays at most one round ahead
                time.sleep(0.0005)
            ex.receive(packet(name, r))

    threads = [threading.Thread(target=sender, args=(n,)) for n in ("b", "c")]
    for t in threads:
        t.start()
    used = 0
    for r in range(rounds):
        inputs = ex.wait_for_round(r, timeout=5.0)
        assert inputs.catch_up_to is None
        used += len(inputs.neighbours)
    for t in threads:
        t.join()
    assert used == 2 * rounds
    snap = ex.snapshot()
    assert sum(snap.drops.values()) == 0 and snap.accepted == 2 * rounds


def test_packet_and_message_have_the_same_fields():
    from dinno_msgs.msg import WeightUpdate

    fields = set(WeightPacket.__dataclass_fields__)
    assert fields <= set(WeightUpdate.get_fields_and_field_types())
