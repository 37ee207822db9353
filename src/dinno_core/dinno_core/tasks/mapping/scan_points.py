"""Lidar scans → labelled occupancy points in the world frame, and each robot's sliding window.

For every valid beam, ``samples_per_beam`` points are placed along the beam:

* a beam that hit something at range ``r`` gives ``occupied_per_beam`` points labelled 1 at
  ``r + u · occupied_depth`` (``u ~ U[0, 1)``: at and just behind the hit surface) and the other
  points labelled 0, stratified uniformly over ``[0, r - free_margin)``;
* a beam with no return (``+inf``, or a reading ``>= range_max``; REP 117) gives only free
  points, stratified over ``[0, range_max)``;
* a beam reading ``NaN``, ``-inf`` or below ``range_min`` carries no information and is skipped.

A scan with the wrong number of beams, or a non-finite pose, raises :class:`MalformedScan`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dinno_core.tasks.mapping.raycast import LidarSpec

__all__ = [
    "BeamSampling",
    "MalformedScan",
    "PooledWindows",
    "SlidingWindow",
    "beam_samples",
    "scan_to_points",
    "scans_to_points",
]


class MalformedScan(ValueError):
    """A scan that cannot be turned into points (wrong beam count, bad pose)."""


@dataclass(frozen=True)
class BeamSampling:
    """How points are drawn along each beam (distances in metres)."""

    samples_per_beam: int = 25
    occupied_per_beam: int = 1
    occupied_depth: float = 0.05
    free_margin: float = 0.05

    def __post_init__(self) -> None:
        if self.samples_per_beam < 1:
            raise ValueError(f"samples_per_beam must be >= 1, got {self.samples_per_beam}")
        if not 0 <= self.occupied_per_beam <= self.samples_per_beam:
            raise ValueError(
                f"occupied_per_beam must be in [0, samples_per_beam={self.samples_per_beam}], "
                f"got {self.occupied_per_beam}"
            )
        if self.occupied_depth < 0 or self.free_margin < 0:
            raise ValueError("occupied_depth and free_margin must be >= 0")


def beam_samples(
    ranges: np.ndarray,
    poses: np.ndarray,
    spec: LidarSpec,
    sampling: BeamSampling,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The vectorized core: scans ``ranges [P, B]`` taken at world poses ``[P, 3]``.

    Returns ``points [P, B, S, 2]`` (float32, world frame), ``labels [P, B, S]`` (float32,
    1 = occupied) and ``valid [P, B, S]`` (bool; False for skipped beams and unused slots).
    Shapes are not checked here; use :func:`scan_to_points` / :func:`scans_to_points`.
    """
    ranges = np.asarray(ranges, dtype=float)
    poses = np.asarray(poses, dtype=float)
    num_poses, num_beams = ranges.shape
    samples = sampling.samples_per_beam
    with np.errstate(invalid="ignore"):
        no_return = (ranges == np.inf) | (ranges >= spec.range_max)
        hit = np.isfinite(ranges) & ~no_return & (ranges >= spec.range_min)
    # Occupied slots come first in each beam; the rest are free.
    slot = np.arange(samples)
    occupied_slot = slot < sampling.occupied_per_beam  # [S]
    free_count = np.where(hit, samples - sampling.occupied_per_beam, samples)  # [P, B]
    free_index = slot - np.where(hit, sampling.occupied_per_beam, 0)[..., None]  # stratum of free slots
    free_length = np.where(hit, ranges - sampling.free_margin, spec.range_max)  # [P, B]
    free_length = np.where(hit | no_return, free_length, 0.0)
    jitter = rng.random((num_poses, num_beams, samples))
    free_t = (free_index + jitter) / np.maximum(free_count, 1)[..., None] * free_length[..., None]
    occupied_t = ranges[..., None] + jitter * sampling.occupied_depth
    is_occupied = hit[..., None] & occupied_slot
    t = np.where(is_occupied, occupied_t, free_t)
    valid = np.where(is_occupied, True, (hit | no_return)[..., None] & (free_length[..., None] > 0))
    t = np.where(valid, t, 0.0)

    angle = poses[:, 2:3] + spec.angles()[None, :]  # [P, B]
    direction = np.stack([np.cos(angle), np.sin(angle)], axis=-1)  # [P, B, 2]
    points = poses[:, None, None, :2] + t[..., None] * direction[:, :, None, :]
    return points.astype(np.float32), is_occupied.astype(np.float32), valid


def _check_poses(poses: np.ndarray, count: int) -> np.ndarray:
    poses = np.asarray(poses, dtype=float)
    if poses.shape != (count, 3):
        raise MalformedScan(f"expected pose(s) of shape ({count}, 3) (x, y, yaw), got {poses.shape}")
    if not np.isfinite(poses).all():
        raise MalformedScan("scan pose is not finite")
    return poses


def scans_to_points(
    ranges: np.ndarray,
    poses: np.ndarray,
    spec: LidarSpec,
    sampling: BeamSampling,
    rng: np.random.Generator,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Several scans ``ranges [P, B]`` at poses ``[P, 3]`` → per scan ``(points [M, 2], labels [M])``."""
    ranges = np.asarray(ranges, dtype=float)
    if ranges.ndim != 2 or ranges.shape[1] != spec.num_beams:
        raise MalformedScan(f"expected ranges of shape [P, {spec.num_beams}], got {ranges.shape}")
    poses = _check_poses(poses, ranges.shape[0])
    points, labels, valid = beam_samples(ranges, poses, spec, sampling, rng)
    flat_points = points.reshape(len(ranges), -1, 2)
    flat_labels = labels.reshape(len(ranges), -1)
    flat_valid = valid.reshape(len(ranges), -1)
    return [(flat_points[i][flat_valid[i]], flat_labels[i][flat_valid[i]]) for i in range(len(ranges))]


def scan_to_points(
    ranges: np.ndarray,
    pose: np.ndarray,
    spec: LidarSpec,
    sampling: BeamSampling | None = None,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One scan (``ranges [num_beams]``, world pose ``(x, y, yaw)`` of the sensor at the scan's
    stamp) → ``(points [M, 2] float32, labels [M] float32)`` with ``M <= num_beams * samples``.

    Raises :class:`MalformedScan` on a wrong beam count or a non-finite pose; bad beams
    (NaN, -inf, < range_min) are skipped silently. ``sampling`` defaults to the paper's
    (25 samples per beam); pass ``rng`` for reproducible sample positions.
    """
    ranges = np.asarray(ranges, dtype=float)
    if ranges.shape != (spec.num_beams,):
        raise MalformedScan(f"expected {spec.num_beams} ranges, got shape {ranges.shape}")
    sampling = sampling or BeamSampling()
    rng = rng if rng is not None else np.random.default_rng()
    return scans_to_points(ranges[None], np.asarray(pose, dtype=float).reshape(1, -1), spec, sampling, rng)[0]


def _as_tensor(values: np.ndarray | Tensor) -> Tensor:
    return values if isinstance(values, Tensor) else torch.from_numpy(np.ascontiguousarray(values))


class SlidingWindow:
    """The most recent ``capacity`` scans' points of one robot: its ``LocalData``.

    The points live in one circular buffer of ``capacity * points_per_scan`` slots, oldest
    first; :meth:`append` evicts the oldest scan when ``capacity`` scans are stored, so a
    minibatch is plain index arithmetic. :meth:`sample` draws points uniformly (with
    replacement) from all stored points.
    """

    def __init__(self, capacity: int, points_per_scan: int) -> None:
        if capacity < 1 or points_per_scan < 1:
            raise ValueError("capacity and points_per_scan must be >= 1")
        self.capacity = capacity
        self.points_per_scan = points_per_scan
        self.size = capacity * points_per_scan
        self.points = torch.zeros(self.size, 2)
        self.labels = torch.zeros(self.size)
        self.counts: deque[int] = deque()
        """Points of each stored scan, oldest first."""
        self.start = 0
        """Buffer slot of the oldest stored point."""
        self.total = 0
        self.scans_seen = 0

    @property
    def num_scans(self) -> int:
        """Scans currently stored."""
        return len(self.counts)

    def __len__(self) -> int:
        """Points currently stored."""
        return self.total

    def append(self, points: np.ndarray | Tensor, labels: np.ndarray | Tensor) -> None:
        """Store one scan's points ``[M, 2]`` and labels ``[M]`` (``M <= points_per_scan``)."""
        points, labels = _as_tensor(points).float(), _as_tensor(labels).float()
        count = len(points)
        if points.shape != (count, 2) or labels.shape != (count,):
            raise ValueError(f"expected points [M, 2] and labels [M], got {tuple(points.shape)}, {tuple(labels.shape)}")
        if count > self.points_per_scan:
            raise ValueError(f"a scan gave {count} points, more than points_per_scan={self.points_per_scan}")
        if len(self.counts) == self.capacity:
            oldest = self.counts.popleft()
            self.start = (self.start + oldest) % self.size
            self.total -= oldest
        head = (self.start + self.total) % self.size
        first = min(count, self.size - head)  # up to the end of the buffer, the rest wraps
        self.points[head : head + first] = points[:first]
        self.labels[head : head + first] = labels[:first]
        self.points[: count - first] = points[first:]
        self.labels[: count - first] = labels[first:]
        self.counts.append(count)
        self.total += count
        self.scans_seen += 1

    def gather(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Points and labels at indices ``[B]`` into the stored points, oldest first (``0 <= i < len(self)``)."""
        slots = (index + self.start) % self.size
        # index_select, not advanced indexing: the latter is far slower on a busy 2-core CPU.
        return self.points.index_select(0, slots), self.labels.index_select(0, slots)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """A minibatch ``(points [B, 2], labels [B])`` drawn uniformly with replacement."""
        if self.total == 0:
            raise RuntimeError("the sliding window is empty: call advance() before sampling")
        if batch_size <= 0:
            batch_size = self.total
        return self.gather(torch.randint(self.total, (batch_size,), generator=generator))


class PooledWindows:
    """All robots' windows together (the centralized reference); samples uniformly over the union."""

    def __init__(self, windows: list[SlidingWindow]) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return sum(len(w) for w in self.windows)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Uniform with replacement over the union of the windows (the batch comes grouped by window)."""
        sizes = [len(w) for w in self.windows]
        total = sum(sizes)
        if total == 0:
            raise RuntimeError("every sliding window is empty: call advance() before sampling")
        if batch_size <= 0:
            batch_size = total
        index, _ = torch.sort(torch.randint(total, (batch_size,), generator=generator))
        ends = torch.tensor(np.cumsum(sizes))
        counts = torch.bincount(torch.searchsorted(ends, index, right=True), minlength=len(sizes)).tolist()
        parts = [
            window.gather(chunk - (end - size))
            for window, chunk, end, size in zip(self.windows, torch.split(index, counts), ends.tolist(), sizes)
        ]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
