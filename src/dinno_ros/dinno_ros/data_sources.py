"""Where a robot's training data comes from: the hook between sensors and the core's TeamData.

A :class:`DataSource` exposes ``local_data`` (a core ``LocalData``: ``sample(batch, generator)``)
that the robot's ``TeamData([source.local_data], seed, robot_indices=[i])`` draws minibatches
from, exactly as the simulated team does. Plain logic: no rclpy here; the node subscribes to the
topics a source needs and forwards the messages' contents.

* :class:`StaticDataSource`: static tasks (``linear_regression``, ``mnist``); the robot's
  "sensor stream" is ``task.robot_data(N)[index]``.
* :class:`MappingDataSource`: the implicit-mapping task: LaserScan + a pose → labelled points
  in the team's shared map frame (:func:`dinno_core.tasks.mapping.scan_points.scan_to_points`)
  → the robot's :class:`~dinno_core.tasks.mapping.scan_points.SlidingWindow`. The pose of each
  scan is the robot's pose in the map frame interpolated at the scan's stamp; malformed scans,
  scans with inconsistent metadata, scans from another frame, scans without a pose and scans
  with no usable beam (all NaN, or all closer than range_min) are skipped and counted, so they
  never take a slot of the sliding window. A scan that arrives before the pose covering its
  stamp (drivers publish scans and odometry independently) waits for it, like a tf2 message
  filter: it is used once a pose at or after its stamp arrives, and counted without a pose if
  none arrived within :data:`SCAN_HOLD` seconds of newer scans.

The shared world frame on real robots (:class:`FrameSettings`):

* the pose source: ``odometry`` — each robot's odometry starts wherever its driver puts it
  (usually zero in its own ``odom`` frame); ``initial_pose`` (x, y, yaw of the odometry origin
  in the map frame) puts it into the shared map frame: ``map_T_base = initial ⊕ odom_T_base``;
  ``pose_topic`` — ``geometry_msgs/PoseWithCovarianceStamped`` already in the map frame
  (AMCL's ``amcl_pose``, motion capture); ``tf`` — the node looks up ``map_frame → <scan
  frame_id>`` at each scan's stamp (tf2_ros, any normal ROS install), which includes the mount;
* the lidar mount on the robot (``mount``: x, y, yaw in the base frame, and ``upside_down``: a
  lidar mounted with roll = π, whose beam angles turn the other way) for the odometry and
  pose-topic sources;
* each scan's own ``angle_min``, ``angle_increment``, ``range_min`` and ``range_max`` (a negative
  increment is fine), skipped and counted when inconsistent (non-finite, increment 0,
  ``range_max <= range_min``); ``lidar_frame``: scans with another ``frame_id`` are skipped
  and counted;
* quaternions are normalized (a scaled quaternion turns by the same angle); a zero or
  non-finite one is rejected and counted.
"""

from __future__ import annotations

import bisect
import math
import threading
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
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


SCAN_HOLD = 1.0
"""Seconds (of scan stamps) a scan waits for the pose covering its stamp."""
MAX_HELD_SCANS = 64
"""Scans waiting for their pose at most (older ones are given up first)."""


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

    @property
    def latest(self) -> float | None:
        """Stamp of the newest pose, None while empty."""
        return self._times[-1] if self._times else None

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


POSE_SOURCES = ("odometry", "pose_topic", "tf")

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class FrameSettings(BaseModel):
    """Where a robot's scans are in the team's shared map frame (see the module docstring).

    The robot node's ``frame.*`` parameters are generated from this model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pose_source: Literal["odometry", "pose_topic", "tf"] = Field(
        "odometry", description="Where the robot's pose in the shared map frame comes from: odometry (+ "
        "initial_pose), pose_topic (geometry_msgs/PoseWithCovarianceStamped, e.g. AMCL's amcl_pose or motion "
        "capture) or tf (map_frame -> the scan's frame_id at its stamp; needs tf2_ros).")
    initial_pose: tuple[FiniteFloat, FiniteFloat, FiniteFloat] = Field(
        (0.0, 0.0, 0.0), description="x, y (m), yaw (rad) of the odometry frame's origin in the map frame: "
        "where the robot stood when its odometry started (pose_source odometry).")
    lidar_mount: tuple[FiniteFloat, FiniteFloat, FiniteFloat] = Field(
        (0.0, 0.0, 0.0), description="x, y (m), yaw (rad) of the lidar in the robot's base frame "
        "(pose_source odometry / pose_topic; tf has its own).")
    lidar_upside_down: bool = Field(False, description="The lidar is mounted upside down (roll = pi): its "
                                    "beam angles turn the other way (odometry / pose_topic).")
    lidar_frame: str = Field("", description="Scans must carry this frame_id; others are counted and "
                             "skipped. Empty: any.")
    pose_topic: str = Field("pose", description="PoseWithCovarianceStamped topic (pose_source pose_topic).")

    @model_validator(mode="after")
    def _tf_available(self) -> FrameSettings:
        if self.pose_source == "tf":
            try:
                import tf2_ros  # noqa: F401
            except ImportError:
                raise ValueError("pose_source tf needs tf2_ros, which is not importable here (no PyPI wheel; any "
                                 "ROS install has it); allowed here: odometry, pose_topic") from None
        return self

    @property
    def mount(self) -> tuple[float, float, float]:
        return self.lidar_mount

    @property
    def upside_down(self) -> bool:
        return self.lidar_upside_down


def compose(a: tuple[float, float, float], b: tuple[float, float, float]) -> tuple[float, float, float]:
    """``a ⊕ b`` of planar poses (x, y, yaw): ``b`` given in ``a``'s frame, returned in ``a``'s parent."""
    c, s = math.cos(a[2]), math.sin(a[2])
    return a[0] + c * b[0] - s * b[1], a[1] + s * b[0] + c * b[1], math.atan2(math.sin(a[2] + b[2]),
                                                                                  math.cos(a[2] + b[2]))


def planar_pose(x: float, y: float, qx: float, qy: float, qz: float,
                qw: float) -> tuple[tuple[float, float, float], bool] | None:
    """``((x, y, yaw), flipped)`` of a 3-D pose seen from above: yaw of the frame's x axis in the
    plane, ``flipped`` when its z axis points down (an upside-down lidar, roll = π). The
    quaternion is normalized first; None if it is zero or non-finite."""
    norm = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
    if not (math.isfinite(norm) and norm > 1e-9 and math.isfinite(x) and math.isfinite(y)):
        return None
    qx, qy, qz, qw = qx / norm, qy / norm, qz / norm, qw / norm
    x_axis = (1.0 - 2.0 * (qy * qy + qz * qz), 2.0 * (qx * qy + qw * qz))
    z_up = 1.0 - 2.0 * (qx * qx + qy * qy)
    return (x, y, math.atan2(x_axis[1], x_axis[0])), z_up < 0.0


@dataclass(frozen=True)
class ScanGeometry:
    """A LaserScan's own beam geometry (``angle_min``, ``angle_increment``, ``range_min``, ``range_max``)."""

    angle_min: float
    angle_increment: float
    range_min: float
    range_max: float

    def problem(self) -> str | None:
        """Why these metadata can't be right, or None."""
        values = (self.angle_min, self.angle_increment, self.range_min, self.range_max)
        if not all(math.isfinite(v) for v in values):
            return f"non-finite metadata {values}"
        if self.angle_increment == 0.0:
            return "angle_increment is 0"
        if self.range_min < 0.0 or self.range_max <= self.range_min:
            return f"range_max {self.range_max} <= range_min {self.range_min} (or range_min < 0)"
        return None


class MappingDataSource(DataSource):
    """Live lidar scans → occupancy points in the shared map frame → the robot's sliding window.

    :meth:`add_odometry` takes the robot base's pose in its odometry frame (pose_source
    odometry; :attr:`frames.initial_pose` places it in the map frame) or in the map frame
    (pose_topic); :meth:`add_scan` takes the scan with its own geometry and frame_id, and for
    the tf source the lidar's pose in the map frame looked up by the node.
    """

    needs_sensors = True

    def __init__(self, spec: Any, sampling: Any, window_scans: int, seed: int = 0,
                 odometry: OdometryBuffer | None = None, frames: FrameSettings | None = None) -> None:
        from dinno_core.tasks.mapping.scan_points import SlidingWindow

        self.spec = spec
        self.sampling = sampling
        self.frames = frames or FrameSettings()
        self.window = SlidingWindow(window_scans, spec.num_beams * sampling.samples_per_beam)
        self.odometry = odometry or OdometryBuffer()
        self.rng = np.random.default_rng(seed)
        self.lock = threading.Lock()
        self._local = LockedData(self.window, self.lock)
        self._specs: dict[tuple[int, ScanGeometry, bool], Any] = {}
        self.scans_used = 0
        self.scans_malformed = 0
        self.scans_without_pose = 0
        self.scans_empty = 0
        self.scans_inconsistent = 0
        self.scans_wrong_frame = 0
        self.poses_rejected = 0
        self._held: deque[tuple[float, np.ndarray, ScanGeometry | None]] = deque()
        """Scans (stamp, ranges, geometry) waiting for the pose covering their stamp, oldest first."""

    @classmethod
    def for_task(cls, task: Any, seed: int, frames: FrameSettings | None = None) -> MappingDataSource:
        """From a ``dinno_core.tasks.mapping.task.MappingTask``: its lidar ``spec``, beam
        ``sampling`` and ``config.window_scans`` (the same window the offline experiment uses)."""
        spec, sampling = getattr(task, "spec", None), getattr(task, "sampling", None)
        window_scans = getattr(getattr(task, "config", None), "window_scans", None)
        if spec is None or sampling is None or window_scans is None:
            raise TypeError("the mapping task must expose spec (LidarSpec), sampling (BeamSampling) and "
                            "config.window_scans for the ROS data source")
        return cls(spec, sampling, int(window_scans), seed, frames=frames)

    @property
    def local_data(self) -> LocalData:
        return self._local

    def ready(self) -> bool:
        with self.lock:
            return len(self.window) > 0

    def add_odometry(self, stamp: float, x: float, y: float, yaw: float) -> None:
        """The base's planar pose: in the odometry frame (pose_source odometry) or the map frame."""
        pose = (x, y, yaw)
        if not all(math.isfinite(v) for v in pose):
            with self.lock:
                self.poses_rejected += 1
            return
        if self.frames.pose_source == "odometry":
            pose = compose(self.frames.initial_pose, pose)
        with self.lock:
            self.odometry.add(stamp, *pose)
            latest = self.odometry.latest
            ready = []
            while self._held and latest is not None and self._held[0][0] <= latest:
                ready.append(self._held.popleft())
        for held_stamp, ranges, geometry in ready:
            self._use_with_pose(held_stamp, ranges, geometry)

    def add_pose(self, stamp: float, x: float, y: float, qx: float, qy: float, qz: float, qw: float) -> bool:
        """A pose message's position and (any-norm) quaternion; False if rejected (and counted)."""
        planar = planar_pose(x, y, qx, qy, qz, qw)
        if planar is None:
            with self.lock:
                self.poses_rejected += 1
            return False
        self.add_odometry(stamp, *planar[0])
        return True

    def _scan_spec(self, count: int, geometry: ScanGeometry, mirrored: bool) -> tuple[Any, bool]:
        """``(LidarSpec in the sensor's upright frame, reverse the ranges)`` for a scan."""
        key = (count, geometry, mirrored)
        cached = self._specs.get(key)
        if cached is None:
            from dinno_core.tasks.mapping.raycast import LidarSpec

            first, step = geometry.angle_min, geometry.angle_increment
            last = first + (count - 1) * step
            # Beam angles as an upright sensor sees them: an upside-down lidar's turn the other
            # way; a negative increment is read backwards. Either way: ascending angles.
            angles = (-first, -last) if mirrored else (first, last)
            reverse = angles[0] > angles[1]
            low = min(angles)
            spec = LidarSpec.from_increment(count, low, abs(step), geometry.range_min, geometry.range_max)
            cached = (spec, reverse)
            if len(self._specs) > 64:
                self._specs.clear()
            self._specs[key] = cached
        return cached

    def add_scan(self, stamp: float, ranges: np.ndarray, geometry: ScanGeometry | None = None,
                 frame_id: str | None = None, sensor_pose: tuple[tuple[float, float, float], bool] | None = None,
                 ) -> bool:
        """Turn one scan into points and append them; False if it was skipped (and counted). A
        scan newer than the newest pose waits for it (True; see :data:`SCAN_HOLD`).

        ``geometry``: the scan's own beam geometry (default: the task's lidar). ``frame_id``:
        checked against ``frames.lidar_frame``. ``sensor_pose``: ``((x, y, yaw), flipped)`` of
        the lidar in the map frame at ``stamp`` (the tf source; None: no transform found).
        """
        frames = self.frames
        if frames.lidar_frame and frame_id is not None and frame_id != frames.lidar_frame:
            with self.lock:
                self.scans_wrong_frame += 1
            return False
        ranges = np.asarray(ranges, dtype=float)
        if geometry is not None and geometry.problem() is not None:
            with self.lock:
                self.scans_inconsistent += 1
            return False
        if ranges.shape != (self.spec.num_beams,):
            with self.lock:
                self.scans_malformed += 1
            return False
        if frames.pose_source == "tf":
            if sensor_pose is None:
                with self.lock:
                    self.scans_without_pose += 1
                return False
            return self._use(ranges, geometry, *sensor_pose)
        expired = []
        with self.lock:
            latest = self.odometry.latest
            waits = latest is None or stamp > latest
            if waits:  # for the pose covering its stamp (add_odometry uses it then)
                self._held.append((stamp, ranges, geometry))
                while len(self._held) > MAX_HELD_SCANS or self._held[0][0] < stamp - SCAN_HOLD:
                    expired.append(self._held.popleft())
        for old in expired:  # gave up waiting: the nearest pose if it is close enough, else counted
            self._use_with_pose(*old)
        return True if waits else self._use_with_pose(stamp, ranges, geometry)

    def _use_with_pose(self, stamp: float, ranges: np.ndarray, geometry: ScanGeometry | None) -> bool:
        """A scan with its base pose interpolated at its stamp (odometry / pose topic) + the mount."""
        with self.lock:
            base = self.odometry.pose_at(stamp)
        if base is None:
            with self.lock:
                self.scans_without_pose += 1
            return False
        return self._use(ranges, geometry, compose(base, self.frames.mount), self.frames.upside_down)

    def _use(self, ranges: np.ndarray, geometry: ScanGeometry | None, pose: tuple[float, float, float],
             mirrored: bool) -> bool:
        """Points and labels of one scan taken at the lidar ``pose`` (map frame) → the window."""
        from dinno_core.tasks.mapping.scan_points import MalformedScan, scan_to_points

        spec = self.spec
        if geometry is not None or mirrored:
            geometry = geometry or ScanGeometry(spec.angle_min, spec.angle_increment, spec.range_min, spec.range_max)
            spec, reverse = self._scan_spec(len(ranges), geometry, mirrored)
            if reverse:
                ranges = ranges[::-1]
        try:
            points, labels = scan_to_points(ranges, np.asarray(pose), spec, self.sampling, self.rng)
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
                    "scans_inconsistent": self.scans_inconsistent, "scans_wrong_frame": self.scans_wrong_frame,
                    "poses_rejected": self.poses_rejected, "pose_source": self.frames.pose_source,
                    "scans_waiting_for_pose": len(self._held),
                    "window_scans": self.window.num_scans,
                    "window_points": len(self.window)}


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Yaw (heading of the x axis about z) of a quaternion of any non-zero norm (normalized
    first: a quaternion scaled by 2 is the same rotation); NaN if it is zero or non-finite."""
    planar = planar_pose(0.0, 0.0, x, y, z, w)
    return math.nan if planar is None else planar[0][2]


def default_data_source(task: Any, settings: Any) -> DataSource:
    """Static tasks: the robot's share of the data; mapping: the live LaserScan/Odometry window.
    ``settings``: the robot's :class:`~dinno_ros.robot_settings.RobotSettings`."""
    if settings.task.name == "mapping":
        return MappingDataSource.for_task(task, settings.seed + settings.index, frames=settings.frame)
    return StaticDataSource(task.robot_data(len(settings.team))[settings.index])
