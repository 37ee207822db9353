"""Vectorized 2-D lidar ray casting on an occupancy grid (numpy only).

One function, :func:`cast_rays`, serves the offline experiment (all robots at once) and a ROS
lidar simulator node (one pose). The traversal is exact: for every ray it lists all crossings
of vertical and horizontal grid lines up to ``range_max`` (a vectorized DDA), looks up the cell
entered at each crossing, and reports the entry distance of the first occupied cell. There is
no Python loop over poses or beams; large batches are processed in chunks of poses to bound
memory.

Returned ranges follow REP 117 for ``sensor_msgs/LaserScan``:

* ``+inf``: no return within ``range_max`` (also when noise pushes a reading past it);
* ``-inf``: an obstacle closer than ``range_min`` (e.g. the sensor sits inside a wall);
* otherwise the measured distance in metres, in ``[range_min, range_max]``.

Only occupied cells reflect; unknown cells and space outside the image are transparent.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from dinno_core.tasks.mapping.floorplan import FloorPlan

__all__ = ["LidarSpec", "cast_rays"]


@dataclass(frozen=True)
class LidarSpec:
    """A planar lidar, described with ``sensor_msgs/LaserScan``'s fields.

    Beam ``i`` points at ``angle_min + i * angle_increment`` (radians, counter-clockwise from
    the sensor's x axis) with ``angle_increment = (angle_max - angle_min) / (num_beams - 1)``,
    so ``angle_max`` is the LAST beam's angle. Use :meth:`full_circle` for a 360° sensor.
    ``noise_std`` is the standard deviation (metres) of additive Gaussian range noise;
    ``rate_hz`` is the scan rate (``scan_time = 1 / rate_hz``).
    """

    num_beams: int = 20
    angle_min: float = -math.pi
    angle_max: float = math.pi - 2 * math.pi / 20
    range_min: float = 0.1
    range_max: float = 10.0
    noise_std: float = 0.0
    rate_hz: float = 10.0

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise ValueError(f"LidarSpec.num_beams must be >= 1, got {self.num_beams}")
        if not self.angle_max >= self.angle_min:
            raise ValueError(f"LidarSpec.angle_max ({self.angle_max}) must be >= angle_min ({self.angle_min})")
        if not 0.0 <= self.range_min < self.range_max or not math.isfinite(self.range_max):
            raise ValueError(
                f"LidarSpec needs 0 <= range_min < range_max < inf, got {self.range_min}, {self.range_max}"
            )
        if not self.noise_std >= 0.0:
            raise ValueError(f"LidarSpec.noise_std must be >= 0, got {self.noise_std}")
        if not self.rate_hz > 0.0:
            raise ValueError(f"LidarSpec.rate_hz must be > 0, got {self.rate_hz}")

    @classmethod
    def full_circle(cls, num_beams: int = 20, **fields: float) -> LidarSpec:
        """A 360° lidar with ``num_beams`` evenly spaced beams starting at -π."""
        increment = 2 * math.pi / num_beams
        return cls(num_beams=num_beams, angle_min=-math.pi, angle_max=math.pi - increment, **fields)

    @classmethod
    def from_increment(
        cls, num_beams: int, angle_min: float, angle_increment: float, range_min: float, range_max: float,
        noise_std: float = 0.0, rate_hz: float = 10.0,
    ) -> LidarSpec:
        """The spec of a received ``LaserScan``: beam ``i`` at ``angle_min + i * angle_increment``.

        Prefer this over copying a message's ``angle_max``: some drivers publish
        ``angle_min + n * increment`` there instead of ``angle_min + (n - 1) * increment``.
        """
        return cls(num_beams=num_beams, angle_min=angle_min, angle_max=angle_min + (num_beams - 1) * angle_increment,
                   range_min=range_min, range_max=range_max, noise_std=noise_std, rate_hz=rate_hz)

    @property
    def angle_increment(self) -> float:
        """Angle between consecutive beams (LaserScan ``angle_increment``)."""
        if self.num_beams == 1:
            return 0.0
        return (self.angle_max - self.angle_min) / (self.num_beams - 1)

    @property
    def scan_time(self) -> float:
        """Seconds between scans (LaserScan ``scan_time``)."""
        return 1.0 / self.rate_hz

    def angles(self) -> np.ndarray:
        """Beam angles ``[num_beams]`` in the sensor frame (radians)."""
        return self.angle_min + np.arange(self.num_beams) * self.angle_increment

    def as_dict(self) -> dict[str, float]:
        """The fields as a plain dict (for YAML / ROS parameters)."""
        return asdict(self)


def _padded_occupancy(plan: FloorPlan) -> np.ndarray:
    """``plan.occupied`` with a one-cell free border, flattened (clipped lookups land on it)."""
    cached = getattr(plan, "_raycast_padded", None)
    if cached is None or cached[0] is not plan.occupied:
        padded = np.pad(plan.occupied, 1, constant_values=False).ravel()
        cached = (plan.occupied, padded)
        plan._raycast_padded = cached  # type: ignore[attr-defined]
    return cached[1]


def _true_ranges(plan: FloorPlan, xy: np.ndarray, heading: np.ndarray, spec: LidarSpec) -> np.ndarray:
    """Noise-free distance ``[P, B]`` to the first occupied cell; ``inf`` if none within range.

    Every cell a ray enters after its start cell is entered through one crossing of a vertical
    grid line (x = integer, in cells) or a horizontal one (y = integer). The two families are
    searched separately for their first crossing into an occupied cell and the nearer wins.
    """
    res = plan.resolution
    height, width = plan.height, plan.width
    padded = _padded_occupancy(plan)
    stride = width + 2

    def occupied_at(rows_from_bottom: np.ndarray, cols: np.ndarray) -> np.ndarray:
        rows = np.clip(height - rows_from_bottom, 0, height + 1)  # +1 for the padding row
        index = np.clip(cols + 1, 0, width + 1)
        index += rows * stride
        return padded[index]

    theta = heading[:, None] + spec.angles()[None, :]  # [P, B]
    direction = np.stack([np.cos(theta), np.sin(theta)])  # [2, P, B]
    # A ray parallel to an axis never crosses that axis' lines: a tiny slope puts them beyond range.
    direction = np.where(np.abs(direction) < 1e-9, 1e-9, direction)
    start = np.broadcast_to((plan.world_to_map(xy) / res).T[:, :, None], direction.shape)  # [2, P, B]
    crossings = int(min(math.ceil(spec.range_max / res) + 1, max(width, height) + 2))
    # The big [P, B, M] arrays are float32/int32 (cells up to ~1e4: ample precision, half the memory).
    k = np.arange(crossings, dtype=np.int32)  # [M]
    k_float = k.astype(np.float32)
    beyond = np.float32(spec.range_max / res + 2.0)

    cell0 = np.floor(start).astype(np.int64)  # [2, P, B]
    best = np.where(occupied_at(cell0[1], cell0[0]), 0.0, np.inf)
    for axis in (0, 1):
        d, g = direction[axis], start[axis]  # [P, B]
        step = np.where(d > 0, 1, -1).astype(np.int32)
        first_line = np.where(d > 0, np.floor(g) + 1, np.ceil(g) - 1)
        first_cell = (first_line - (d < 0)).astype(np.int32)  # the cell entered through first_line
        entered = first_cell[..., None] + step[..., None] * k  # [P, B, M]
        t0 = ((first_line - g) / d).astype(np.float32)[..., None]
        t = t0 + k_float * (1.0 / np.abs(d)).astype(np.float32)[..., None]  # in cells, increasing
        np.minimum(t, beyond, out=t)  # keeps the cell arithmetic below finite and small
        other = 1 - axis
        across = start[other].astype(np.float32)[..., None] + t * direction[other].astype(np.float32)[..., None]
        across = np.floor(across, out=across).astype(np.int32)
        hit = occupied_at(across, entered) if axis == 0 else occupied_at(entered, across)
        first = hit.argmax(axis=-1)[..., None]
        found = np.take_along_axis(hit, first, axis=-1)[..., 0]
        t_first = np.take_along_axis(t, first, axis=-1)[..., 0].astype(float) * res
        best = np.minimum(best, np.where(found & (t_first <= spec.range_max), t_first, np.inf))
    return best


def cast_rays(
    plan: FloorPlan,
    poses: np.ndarray,
    spec: LidarSpec,
    rng: np.random.Generator | None = None,
    *,
    max_elements: int = 200_000,
) -> np.ndarray:
    """Simulate lidar scans from world poses ``[P, 3]`` (x, y, yaw) or one pose ``[3]``.

    Returns ranges ``[P, num_beams]`` (or ``[num_beams]``) in metres with REP 117 ``±inf``
    (see the module docstring). Gaussian noise of ``spec.noise_std`` is added when ``rng``
    is given; without ``rng`` the ranges are exact. ``max_elements`` bounds the size of the
    intermediate arrays (poses are processed in chunks).
    """
    poses = np.asarray(poses, dtype=float)
    single = poses.ndim == 1
    poses = np.atleast_2d(poses)
    if poses.shape[-1] != 3:
        raise ValueError(f"poses must have shape [P, 3] (x, y, yaw), got {poses.shape}")
    heading = poses[:, 2] - plan.origin[2]
    per_pose = spec.num_beams * (math.ceil(spec.range_max / plan.resolution) + 2) * 4
    chunk = max(1, max_elements // per_pose)
    ranges = np.concatenate(
        [
            _true_ranges(plan, poses[i : i + chunk, :2], heading[i : i + chunk], spec)
            for i in range(0, len(poses), chunk)
        ]
    ) if len(poses) else np.zeros((0, spec.num_beams))
    if rng is not None and spec.noise_std > 0:
        finite = np.isfinite(ranges)
        ranges = np.where(finite, ranges + rng.normal(0.0, spec.noise_std, ranges.shape), ranges)
        ranges = np.where(finite & (ranges > spec.range_max), np.inf, ranges)
    ranges = np.where(np.isfinite(ranges) & (ranges < spec.range_min), -np.inf, ranges)
    return ranges[0] if single else ranges
