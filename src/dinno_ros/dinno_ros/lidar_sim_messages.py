"""Message helpers of the embedded lidar simulator: a yaw as a quaternion, seconds as a stamp,
numpy as a ``float32[]`` field (from bytes, never element by element)."""

from __future__ import annotations

import array
import math

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import Quaternion


def yaw_quaternion(yaw: float) -> Quaternion:
    """A rotation of ``yaw`` radians about z."""
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2.0), w=math.cos(yaw / 2.0))


def stamp_of(seconds: float) -> TimeMsg:
    """``builtin_interfaces/Time`` of ``seconds`` (>= 0)."""
    sec = int(math.floor(seconds))
    nanosec = int(round((seconds - sec) * 1e9))
    if nanosec >= 1_000_000_000:
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    return TimeMsg(sec=sec, nanosec=nanosec)


def float32_array(values: np.ndarray) -> array.array:
    """A ``float32[]`` message field from numpy: ``array('f')`` from bytes (assigning a numpy
    array directly is ~400x slower)."""
    return array.array("f", np.ascontiguousarray(values, dtype=np.float32).tobytes())
