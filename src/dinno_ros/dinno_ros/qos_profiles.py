"""The robot node's QoS profiles for weights and "still waiting" signals, in one place."""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def weights_qos(depth: int) -> QoSProfile:
    """Weight messages: RELIABLE, TRANSIENT_LOCAL (a late joiner gets the latest), KEEP_LAST(depth)."""
    return QoSProfile(reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                      history=HistoryPolicy.KEEP_LAST, depth=depth)


def weights_reader_qos(reader_depth: int, writer_depth: int) -> QoSProfile:
    """The reader keeps more samples than the writer: a burst (a neighbour's history arriving at
    discovery, or junk injected on its topic) must not push a valid round-k message out of the
    reader's history before the executor takes it. Same reliability and durability, so the QoS
    stays compatible; the history depth is not part of QoS matching."""
    return weights_qos(max(reader_depth, writer_depth))


def waiting_qos() -> QoSProfile:
    """"Still waiting" signals: small and repeated while a robot waits, so BEST_EFFORT (a lost one
    is replaced by the next) and VOLATILE (an old one means nothing to a late joiner)."""
    return QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE,
                      history=HistoryPolicy.KEEP_LAST, depth=10)
