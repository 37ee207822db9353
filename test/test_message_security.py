"""No stranger, no poison, no lost count (plain modules, no ROS): HMAC team key, bounded-change
check, duplicate robot ids, acknowledgements, absent neighbours; and the same with real
``WeightUpdate`` messages through the node's codec."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from dinno_core.config import ConfigError
from dinno_ros.exchange import DropReason, RoundExchange
from dinno_ros.message_auth import TeamKey, main as auth_main, write_team_key
from dinno_ros.update_guard import GuardLimits, UpdateGuard
from dinno_ros.weights_codec import to_message, to_packet

TEAM = ["a", "b", "c"]
N = 5
FP = 77


@pytest.fixture
def key(tmp_path):
    return TeamKey.from_file(write_team_key(tmp_path / "team.key"))


def packet(sender="b", round_index=0, value=0.5, key=None, session=1, acks=([], [], 0)):
    return to_packet(np.full(N, value, np.float32), sender=sender, round_index=round_index, fingerprint=FP,
                     degree=2, session=session, acks=acks, key=key)


def exchange(**kwargs):
    args = dict(fingerprint=FP, num_params=N, neighbours=["b", "c"], max_round_lead=10)
    args.update(kwargs)
    return RoundExchange("a", TEAM, **args)


# ------------------------------------------------------------------------------ authentication


def test_only_messages_signed_with_the_team_key_are_heard(key, tmp_path):
    ex = exchange(key=key)
    assert ex.receive(packet(key=key), via="b") is None
    forged = packet(round_index=0, value=1e6)  # no tag: an outsider who read the fingerprint off the topic
    assert ex.receive(forged, via="b")[0] is DropReason.UNAUTHENTICATED
    other = TeamKey.from_file(write_team_key(tmp_path / "other.key"))
    assert ex.receive(packet(sender="c", key=other), via="c")[0] is DropReason.UNAUTHENTICATED
    tampered = packet(round_index=1, key=key)
    tampered.round = 2  # a member's message re-tagged for another round
    assert ex.receive(tampered, via="b")[0] is DropReason.UNAUTHENTICATED
    tampered = packet(round_index=1, key=key)
    tampered.payload[3] ^= 1  # one flipped bit of the weights
    assert ex.receive(tampered, via="b")[0] is DropReason.UNAUTHENTICATED
    snap = ex.snapshot()
    assert snap.drops["unauthenticated"] == 4 and snap.accepted == 1
    assert snap.links["b"].drops["unauthenticated"] == 3


def test_a_ros_message_signs_and_verifies_like_a_packet(key):
    msg = to_message(np.arange(N, dtype=np.float32), sender="b", round_index=3, fingerprint=FP, degree=2,
                     session=9, acks=(["a", "c"], [5, 1], 4), key=key)
    assert len(msg.auth_tag) == 32 and key.verify(msg)
    assert exchange(key=key).receive(msg, via="b") is None
    msg.ack_bits[0] = 7  # acknowledgements are covered too
    assert not key.verify(msg)
    announced = to_message(np.arange(N, dtype=np.float32), sender="b", round_index=3, fingerprint=FP, degree=2,
                           key=key, rho=0.5)
    assert key.verify(announced)
    announced.rho = 50.0  # so is the penalty the sender announced
    assert not key.verify(announced)


@pytest.mark.parametrize("content, mode, message", [
    (None, None, "does not exist"),
    ("00" * 8, 0o600, "holds a 64-bit key; at least 128 bits"),
    ("not hex at all", 0o600, "does not hold a hex key"),
    ("ab" * 32, 0o644, r"is readable by others \(mode 644\); run: chmod 600"),
])
def test_a_bad_key_file_is_one_clear_error_naming_it(tmp_path, content, mode, message):
    path = tmp_path / "team.key"
    if content is not None:
        path.write_text(content)
        os.chmod(path, mode)
    with pytest.raises(ConfigError, match=f"parameter 'team_key_file': {path} {message}"):
        TeamKey.from_file(path)


def test_the_key_generator_never_overwrites(tmp_path, capsys):
    path = tmp_path / "k"
    assert auth_main(["generate", str(path)]) == 0
    first = path.read_text()
    assert (os.stat(path).st_mode & 0o777) == 0o600 and len(bytes.fromhex(first.strip())) == 32
    assert auth_main(["generate", str(path)]) == 1 and path.read_text() == first


# ------------------------------------------------------------------------------ bounded change


def test_absurd_but_finite_weights_are_dropped_and_counted():
    guard = UpdateGuard(GuardLimits(max_distance=10.0, max_step=10.0, scale=1.0))
    ex = exchange(guard=guard)
    guard.set_reference(np.full(N, 0.5))
    assert ex.receive(packet(value=0.6), via="b") is None
    for scale in (1e6, 1e30, -1e6):
        reason, detail = ex.receive(packet(round_index=1, value=0.5 * scale), via="b")
        assert reason is DropReason.OUT_OF_BOUNDS and "max_weight_distance" in detail
    # A neighbour's history: a jump far from its last accepted weights, though near our own scale.
    guard = UpdateGuard(GuardLimits(max_distance=1e9, max_step=2.0, scale=0.1))
    ex = exchange(guard=guard)
    guard.set_reference(np.zeros(N))
    assert ex.receive(packet(value=1.0), via="b") is None
    reason, detail = ex.receive(packet(round_index=1, value=10.0), via="b")
    assert reason is DropReason.OUT_OF_BOUNDS and "max_weight_step" in detail
    assert ex.receive(packet(round_index=1, value=1.5), via="b") is None
    assert ex.snapshot().drops["out_of_bounds"] == 1


def test_poisoned_weights_count_out_of_bounds_whatever_their_round():
    """The reason does not depend on timing: content (tag, bounds) is judged before the round."""
    guard = UpdateGuard(GuardLimits(max_distance=10.0, max_step=10.0, scale=1.0))
    ex = exchange(guard=guard)
    guard.set_reference(np.full(N, 0.5))
    ex.begin_round(5)
    for round_index in (4, 5, 6, 5 + 11):  # stale, current, early, absurdly early
        reason, _ = ex.receive(packet(round_index=round_index, value=0.5e6), via="b")
        assert reason is DropReason.OUT_OF_BOUNDS, round_index
    reason, _ = ex.receive(packet(round_index=4, value=0.6), via="b")  # bounded but late: stale
    assert reason is DropReason.STALE
    assert ex.snapshot().drops["out_of_bounds"] == 4 and ex.snapshot().drops["stale"] == 1


def test_a_message_dropped_for_its_round_is_not_the_senders_history():
    guard = UpdateGuard(GuardLimits(max_distance=1e9, max_step=1.0, scale=0.1))
    ex = exchange(guard=guard)
    guard.set_reference(np.zeros(N))
    assert ex.receive(packet(round_index=0, value=1.0), via="b") is None
    ex.begin_round(2)
    assert ex.receive(packet(round_index=1, value=2.0), via="b")[0] is DropReason.STALE  # within the step bound
    # Had the stale 2.0 become b's history, 3.0 would be within the step bound; from 1.0 it is not.
    reason, detail = ex.receive(packet(round_index=2, value=3.0), via="b")
    assert reason is DropReason.OUT_OF_BOUNDS and "max_weight_step" in detail
    assert ex.receive(packet(round_index=2, value=1.5), via="b") is None


def test_guard_limits_are_checked():
    with pytest.raises(ValueError, match="max_distance must be > 0"):
        GuardLimits(max_distance=0.0)


# ------------------------------------------------------------------------------ duplicate ids, bursts


def test_two_processes_with_one_robot_id_are_detected_a_restart_is_not():
    ex = exchange()
    assert ex.receive(packet(session=1), via="b") is None
    assert ex.receive(packet(round_index=1, session=2), via="b") is None  # a restart: new session
    assert not ex.snapshot().links["b"].duplicate
    reason, detail = ex.receive(packet(round_index=1, session=1), via="b")  # the old one speaks again
    assert reason is DropReason.DUPLICATE_SENDER and "two processes" in detail
    assert ex.snapshot().links["b"].duplicate


def test_every_message_of_a_burst_is_counted():
    ex = exchange()
    threads = [threading.Thread(target=lambda: [ex.receive(packet(sender="x"), via="b") for _ in range(500)])
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ex.snapshot().drops["unknown_sender"] == 2000


# ------------------------------------------------------------------------------ acknowledgements, absence


def test_acknowledgements_say_which_rounds_were_used():
    ex = exchange()
    ex.receive(packet(sender="b", round_index=0), via="b")
    ex.receive(packet(sender="c", round_index=0), via="c")
    inputs = ex.wait_for_round(0, 5.0)
    assert set(inputs.neighbours) == {"b", "c"}
    ex.receive(packet(sender="b", round_index=1), via="b")
    inputs = ex.wait_for_round(1, 0.05)  # c's round 1 is lost
    assert inputs.missing == ("c",)
    robots, bits, span = ex.acknowledgements(2)
    assert dict(zip(robots, bits)) == {"b": 0b11, "c": 0b10} and span == 2
    robots, bits, span = ex.acknowledgements(5)  # after a catch-up to round 5: rounds 2..4 not used
    assert dict(zip(robots, bits)) == {"b": 0b11000, "c": 0b10000} and span == 5
    # b's message of round 2 acknowledges our rounds 1 and 0: handed to the trainer with the round.
    ex.receive(packet(sender="b", round_index=2, acks=(["a", "c"], [0b01, 0b11], 2)), via="b")
    ex.receive(packet(sender="c", round_index=2), via="c")
    inputs = ex.wait_for_round(2, 5.0)
    assert inputs.acks == {"b": (1, 0b01, 2)}


def test_a_silent_neighbour_costs_one_timeout_then_is_not_waited_for():
    ex = exchange(absent_after=1)
    ex.receive(packet(sender="b", round_index=0), via="b")
    assert ex.wait_for_round(0, 0.3).timed_out  # c is silent: one timeout
    ex.receive(packet(sender="b", round_index=1), via="b")
    inputs = ex.wait_for_round(1, 30.0)  # no second timeout: c is absent
    assert not inputs.timed_out and inputs.missing == ("c",) and ex.snapshot().links["c"].absent
    ex.receive(packet(sender="c", round_index=2), via="c")  # it speaks again
    assert not ex.snapshot().links["c"].absent
    ex.receive(packet(sender="b", round_index=2), via="b")
    assert set(ex.wait_for_round(2, 5.0).neighbours) == {"b", "c"}


# ------------------------------------------------------------------------------ Fast DDS profile


def test_the_shipped_fast_dds_profile_is_chosen_unless_the_user_chose(tmp_path):
    from dinno_ros.dds_profile import profile_path, use_default_profile

    env: dict[str, str] = {}
    assert use_default_profile(env) == str(profile_path()) and profile_path().is_file()
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == env["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(profile_path())
    assert use_default_profile({"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"}) is None
    assert use_default_profile({"DINNO_FASTDDS_PROFILE": "off"}) is None
    assert use_default_profile({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}) is None


def test_fast_dds_loads_the_shipped_profile_without_an_error(ros_env):
    """A real participant with a reliable writer and reader under the profile: Fast DDS reports
    XML problems on stderr ("XMLPARSER Error"), and a broken file would show there."""
    import subprocess
    import sys

    from dinno_ros.dds_profile import profile_path

    script = (
        "import rclpy\nfrom std_msgs.msg import String\nrclpy.init()\nn = rclpy.create_node('profile_probe')\n"
        "got = []\np = n.create_publisher(String, 'probe', 10)\n"
        "n.create_subscription(String, 'probe', got.append, 10)\n"
        "for i in range(100):\n    p.publish(String(data='x'))\n    rclpy.spin_once(n, timeout_sec=0.05)\n"
        "    if got: break\nprint('received', len(got))\n"
    )
    env = {**ros_env, "FASTDDS_DEFAULT_PROFILES_FILE": str(profile_path())}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "XMLPARSER" not in done.stderr and "Error" not in done.stderr, done.stderr
    assert "received" in done.stdout and "received 0" not in done.stdout
