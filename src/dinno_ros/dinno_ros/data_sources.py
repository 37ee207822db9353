"""Where a robot's training data comes from: the hook between sensors and the core's TeamData.

A :class:`DataSource` exposes ``local_data`` (a core ``LocalData``: ``sample(batch, generator)``)
that the robot's ``TeamData([source.local_data], seed, robot_indices=[i])`` draws minibatches
from, exactly as the simulated team does. Plain logic: no rclpy here; the node subscribes to the
topics a source needs and forwards the messages' contents.

* :class:`StaticDataSource`: static tasks (``linear_regression``, ``mnist``); the robot's
  "sensor stream" is ``task.robot_data(N)[index]``.
* :class:`MappingDataSource`: the implicit-mapping task: LaserScan + Odometry → labelled points
  in the world frame (:func:`dinno_core.tasks.mapping.scan_points.scan_to_points`) → the robot's
  :class:`~dinno_core.tasks.mapping.scan_points.SlidingWindow`. The pose of each scan is the
  odometry pose interpolated at the scan's stamp; malformed scans, scans without a pose and
  scans with no usable beam (all NaN, or all closer than range_min) are skipped and counted,
  so they never take a slot of the sliding window.
"""

from __future__ import annotations

import bisect
import math
import threading
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dinno_core.tasks.base import LocalData


class LockedData:
    """A ``LocalData`` whose ``sample`` holds a lock shared with the writer (sensor callbacks)."""

    def __init__(self, data: LocalData, lock: threading.Lock) -> None:
        self.data = data
        self.lock = lock

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        with self.lock:
            return self.data.sample(batch_size, generator)


class DataSource(ABC):
    """One robot's training data."""

    needs_sensors: bool = False
    """True if the node must feed :meth:`add_scan` / :meth:`add_odometry` from topics."""

    @property
    @abstractmethod
    def local_data(self) -> LocalData:
        """What the robot's TeamData samples from."""

    def ready(self) -> bool:
        """Whether a minibatch can be drawn now (a streaming window may still be empty)."""
        return True

    def stats(self) -> dict[str, Any]:
        """Counters for results and diagnostics."""
        return {}

    def add_odometry(self, stamp: float, x: float, y: float, yaw: float) -> None:  # noqa: B027
        """An odometry pose (world frame) at time ``stamp`` (seconds)."""

    def add_scan(self, stamp: float, ranges: np.ndarray) -> None:  # noqa: B027
        """A lidar scan taken at ``stamp`` (seconds)."""


class StaticDataSource(DataSource):
    """A fixed dataset held in memory: ``task.robot_data(N)[index]``."""

    def __init__(self, data: LocalData) -> None:
        self._data = data

    @property
    def local_data(self) -> LocalData:
        return self._data

    def stats(self) -> dict[str, Any]:
        size = len(self._data) if hasattr(self._data, "__len__") else None
        return {"kind": "static", "samples": size}


class OdometryBuffer:
    """Recent poses ``(t, x, y, yaw)``; :meth:`pose_at` interpolates at a scan's stamp."""

    def __init__(self, capacity: int = 2000, max_extrapolation: float = 0.1) -> None:
        self.capacity = capacity
        self.max_extrapolation = max_extrapolation
        self._times: list[float] = []
        self._poses: list[tuple[float, float, float]] = []

    def add(self, stamp: float, x: float, y: float, yaw: float) -> None:
        index = bisect.bisect_right(self._times, stamp)  # out-of-order stamps are sorted in
        self._times.insert(index, stamp)
        self._poses.insert(index, (x, y, yaw))
        if len(self._times) > self.capacity:
            del self._times[0], self._poses[0]

    def pose_at(self, stamp: float) -> tuple[float, float, float] | None:
        """Linear interpolation (yaw along the shorter arc); the nearest end pose up to
        ``max_extrapolation`` seconds outside the buffered span; otherwise ``None``."""
        times = self._times
        if not times:
            return None
        if stamp <= times[0]:
            return self._poses[0] if times[0] - stamp <= self.max_extrapolation else None
        if stamp >= times[-1]:
            return self._poses[-1] if stamp - times[-1] <= self.max_extrapolation else None
        right = bisect.bisect_left(times, stamp)
        t0, t1 = times[right - 1], times[right]
        (x0, y0, a0), (x1, y1, a1) = self._poses[right - 1], self._poses[right]
        w = 0.0 if t1 == t0 else (stamp - t0) / (t1 - t0)
        turn = math.atan2(math.sin(a1 - a0), math.cos(a1 - a0))
        return x0 + w * (x1 - x0), y0 + w * (y1 - y0), a0 + w * turn


class MappingDataSource(DataSource):
    """Live lidar scans → occupancy points → the robot's sliding window.

    The lidar is assumed at the robot's odometry origin (the simulator's convention); the
    odometry frame is the world frame shared by the team.
    """

    needs_sensors = True

    def __init__(self, spec: Any, sampling: Any, window_scans: int, seed: int = 0,
                 odometry: OdometryBuffer | None = None) -> None:
        from dinno_core.tasks.mapping.scan_points import SlidingWindow

        self.spec = spec
        self.sampling = sampling
        self.window = SlidingWindow(window_scans, spec.num_beams * sampling.samples_per_beam)
        self.odometry = odometry or OdometryBuffer()
        self.rng = np.random.default_rng(seed)
        self.lock = threading.Lock()
        self._local = LockedData(self.window, self.lock)
        self.scans_used = 0
        self.scans_malformed = 0
        self.scans_without_pose = 0
        self.scans_empty = 0

    @classmethod
    def for_task(cls, task: Any, seed: int) -> MappingDataSource:
        """From a ``dinno_core.tasks.mapping.task.MappingTask``: its lidar ``spec``, beam
        ``sampling`` and ``config.window_scans`` (the same window the offline experiment uses)."""
        spec, sampling = getattr(task, "spec", None), getattr(task, "sampling", None)
        window_scans = getattr(getattr(task, "config", None), "window_scans", None)
        if spec is None or sampling is None or window_scans is None:
            raise TypeError("the mapping task must expose spec (LidarSpec), sampling (BeamSampling) and "
                            "config.window_scans for the ROS data source")
        return cls(spec, sampling, int(window_scans), seed)

    @property
    def local_data(self) -> LocalData:
        return self._local

    def ready(self) -> bool:
        with self.lock:
            return len(self.window) > 0

    def add_odometry(self, stamp: float, x: float, y: float, yaw: float) -> None:
        with self.lock:
            self.odometry.add(stamp, x, y, yaw)

    def add_scan(self, stamp: float, ranges: np.ndarray) -> bool:
        """Turn one scan into points and append them; False if it was skipped (and counted)."""
        from dinno_core.tasks.mapping.scan_points import MalformedScan, scan_to_points

        with self.lock:
            pose = self.odometry.pose_at(stamp)
        if pose is None:
            with self.lock:
                self.scans_without_pose += 1
            return False
        try:
            points, labels = scan_to_points(np.asarray(ranges, dtype=float), np.asarray(pose), self.spec,
                                            self.sampling, self.rng)
        except MalformedScan:
            with self.lock:
                self.scans_malformed += 1
            return False
        if len(points) == 0:
            with self.lock:
                self.scans_empty += 1
            return False
        with self.lock:
            self.window.append(points, labels)
            self.scans_used += 1
        return True

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"kind": "mapping", "scans_used": self.scans_used, "scans_malformed": self.scans_malformed,
                    "scans_without_pose": self.scans_without_pose, "scans_empty": self.scans_empty,
                    "window_scans": self.window.num_scans,
                    "window_points": len(self.window)}


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Yaw (rotation about z) of a unit quaternion."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def default_data_source(task: Any, settings: Any) -> DataSource:
    """Static tasks: the robot's share of the data; mapping: the live LaserScan/Odometry window.
    ``settings``: the robot's :class:`~dinno_ros.robot_settings.RobotSettings`."""
    if settings.task.name == "mapping":
        return MappingDataSource.for_task(task, settings.seed + settings.index)
    return StaticDataSource(task.robot_data(len(settings.team))[settings.index])
