"""A hostile participant for test_ros_netns.py (run in the bridge's namespace).

Waits until ``victim``'s weights topic has ``readers`` subscribers and one of its messages was
seen, then publishes, back to back on that topic: ``forged`` messages without the team key (an
outsider who read the fingerprint off the topic; absurd weights), and ``poisoned`` messages
signed with the team key, carrying the victim's own session and next round, with its weights
times 1e6 (a team member gone bad). Prints one JSON line with what it sent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from dinno_msgs.msg import WeightUpdate
from dinno_ros.message_auth import TeamKey
from dinno_ros.weights_codec import from_message, to_message


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--victim", required=True)
    parser.add_argument("--readers", type=int, required=True)
    parser.add_argument("--forged", type=int, required=True)
    parser.add_argument("--poisoned", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node("intruder")
    qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                     history=HistoryPolicy.KEEP_LAST, depth=args.forged + args.poisoned)
    topic = f"/{args.victim}/dinno/weights"
    seen: list[WeightUpdate] = []
    node.create_subscription(WeightUpdate, topic, seen.append, qos)
    publisher = node.create_publisher(WeightUpdate, topic, qos)
    deadline = time.monotonic() + args.timeout
    # The victim's own subscribers: its neighbours (the intruder's own reader is not counted).
    while time.monotonic() < deadline and (publisher.get_subscription_count() < args.readers + 1 or len(seen) < 3):
        rclpy.spin_once(node, timeout_sec=0.1)
    if not seen:
        print(json.dumps({"error": "never saw the victim's weights"}), flush=True)
        return 1
    latest = max(seen, key=lambda m: m.round)
    values = from_message(latest)
    key = TeamKey.from_file(args.key)
    base = dict(sender=args.victim, fingerprint=latest.fingerprint, degree=latest.degree)
    for _ in range(args.forged):
        publisher.publish(to_message(values * 1e6, round_index=latest.round + 1, **base))
    for _ in range(args.poisoned):
        publisher.publish(to_message(values * 1e6, round_index=latest.round + 1, session=latest.session,
                                     acks=(list(latest.ack_robots), list(latest.ack_bits), latest.ack_span),
                                     key=key, **base))
    publisher.wait_for_all_acked(rclpy.duration.Duration(seconds=30))
    print(json.dumps({"forged": args.forged, "poisoned": args.poisoned, "round": latest.round + 1}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
