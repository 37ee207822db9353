"""Sensor messages → the plain values the robot's trainer takes (the robot node's callbacks).

``nav_msgs/Odometry`` and ``geometry_msgs/PoseWithCovarianceStamped`` → ``(stamp, x, y, qx, qy,
qz, qw)``; ``sensor_msgs/LaserScan`` → ``(stamp, ranges, ScanGeometry, frame_id)`` (each scan's
own metadata); :class:`TfPoses`, the lidar's pose in the map frame at a scan's stamp from TF
(``frame.pose_source: tf``; tf2_ros, which any ROS install has and PyPI has not); and
:func:`subscribe_scan_inputs`, the mapping robot's scan and pose subscriptions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dinno_ros.data_sources import ScanGeometry, planar_pose


def stamp_seconds(header: Any) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def pose_values(msg: Any) -> tuple[float, float, float, float, float, float, float]:
    """``(stamp, x, y, qx, qy, qz, qw)`` of an Odometry or PoseWithCovarianceStamped message."""
    pose = msg.pose.pose
    q = pose.orientation
    return stamp_seconds(msg.header), pose.position.x, pose.position.y, q.x, q.y, q.z, q.w


def scan_values(msg: Any) -> tuple[float, np.ndarray, ScanGeometry, str]:
    """``(stamp, ranges, geometry, frame_id)`` of a LaserScan."""
    geometry = ScanGeometry(msg.angle_min, msg.angle_increment, msg.range_min, msg.range_max)
    return stamp_seconds(msg.header), np.asarray(msg.ranges, dtype=float), geometry, msg.header.frame_id


class TfPoses:
    """Looks up ``map_frame → <scan frame_id>`` at each scan's stamp (a TF listener on ``node``)."""

    def __init__(self, node: Any, map_frame: str) -> None:
        from tf2_ros import Buffer, TransformListener  # checked importable by FrameSettings

        self.map_frame = map_frame
        self.buffer = Buffer()
        self.listener = TransformListener(self.buffer, node)

    def lidar_pose(self, msg: Any) -> tuple[tuple[float, float, float], bool] | None:
        """``((x, y, yaw), upside_down)`` of the scan's frame in the map frame; None if TF has none."""
        from rclpy.time import Time

        try:
            transform = self.buffer.lookup_transform(self.map_frame, msg.header.frame_id,
                                                     Time.from_msg(msg.header.stamp))
        except Exception:  # noqa: BLE001 - tf2's lookup/extrapolation/connectivity errors: no pose
            return None
        t, q = transform.transform.translation, transform.transform.rotation
        return planar_pose(t.x, t.y, q.x, q.y, q.z, q.w)


def subscribe_scan_inputs(node: Any, frame: Any, options: Any, on_pose: Any, on_scan: Any) -> TfPoses | None:
    """A mapping robot's inputs besides odometry: the scans (``options.scan_topic``, sensor-data
    QoS), the map-frame pose topic (``frame.pose_source: pose_topic``) or a TF listener (``tf``,
    returned). ``frame``: the robot's ``FrameSettings``."""
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import LaserScan

    if frame.pose_source == "pose_topic":
        node.create_subscription(PoseWithCovarianceStamped, frame.pose_topic, on_pose, 20)
    node.create_subscription(LaserScan, options.scan_topic, on_scan, qos_profile_sensor_data)
    return TfPoses(node, options.map_frame) if frame.pose_source == "tf" else None
