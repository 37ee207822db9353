"""Robots that drive themselves: pure-pursuit path following and the kinematic unicycle.

Plain numpy, batched over a robot axis (no Python loop over robots in a step); no ROS. The
controller node (``dinno_ros.path_follower_node``) feeds :meth:`PurePursuit.command` with each
robot's odometry pose and publishes the result as ``geometry_msgs/Twist`` on
``/<robot>/cmd_vel``; the embedded simulator's ``cmd_vel`` mode moves each robot with
:func:`unicycle_step`, as Gazebo's VelocityControl system moves the generated world's robots.

Pure pursuit (Coulter 1992): each robot keeps its progress ``s`` (arc length) along its own
closed path; every command it (1) projects its position onto the path near that progress (a
window from ``behind`` metres back to ``search_ahead`` metres ahead: a path that passes a spot
twice never makes it jump), (2) aims at the point ``lookahead`` metres further, and (3) steers
along the circle through that point: curvature ``κ = 2 sin α / d`` (``α`` the bearing of the
point in the robot frame, ``d`` its distance). Speed is ``speed``, lowered so that the turn rate
``v κ`` stays within ``max_turn_rate``; a robot facing away from its target (``|α| >
turn_in_place_angle``) turns on the spot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dinno_core.tasks.mapping.paths import RobotPath

__all__ = ["PathFollowingConfig", "PurePursuit", "distances_to_paths", "unicycle_step"]


class PathFollowingConfig(BaseModel):
    """Pure-pursuit settings (the controller node's parameters are generated from this)."""

    model_config = ConfigDict(extra="forbid")

    speed: float = Field(0.6, gt=0.0, le=5.0, description="Cruise speed along the path (m/s).")
    max_turn_rate: float = Field(1.5, gt=0.0, le=10.0, description="Largest |angular.z| commanded (rad/s).")
    lookahead: float = Field(0.8, gt=0.05, le=10.0, description="Distance along the path to the aimed-at point (m).")
    search_ahead: float = Field(2.0, gt=0.0, le=20.0, description="How far ahead of its progress a robot looks "
                                "for the nearest path point (m).")
    behind: float = Field(0.5, ge=0.0, le=5.0, description="How far back the nearest path point may be (m).")
    turn_in_place_angle: float = Field(1.2, gt=0.0, le=3.1416, description="Bearing of the target (rad) beyond "
                                       "which the robot turns on the spot.")
    spacing: float = Field(0.02, gt=0.0, le=0.5, description="Spacing of the path samples (m).")


class PurePursuit:
    """Pure pursuit for ``R`` robots, robot ``r`` following ``paths[r]`` from arc length ``offsets[r]``.

    torch.optim-like: :meth:`state_dict` / :meth:`load_state_dict` carry the progress.
    """

    def __init__(self, paths: Sequence[RobotPath], offsets: Sequence[float] | np.ndarray,
                 config: PathFollowingConfig | None = None) -> None:
        self.config = config or PathFollowingConfig()
        if not paths:
            raise ValueError("PurePursuit needs at least one path")
        offsets = np.asarray(offsets, dtype=float)
        if offsets.shape != (len(paths),):
            raise ValueError(f"offsets must be [{len(paths)}], got {offsets.shape}")
        spacing = self.config.spacing
        samples = [path.position_at(np.arange(0.0, path.length, spacing)) for path in paths]  # once, at start
        self.counts = np.array([len(s) for s in samples])
        self.lengths = np.array([path.length for path in paths])
        self.points = np.zeros((len(paths), self.counts.max(), 2))
        for r, s in enumerate(samples):
            self.points[r, : len(s)] = s
        self.progress = np.mod(offsets, self.lengths)
        behind, ahead = self.config.behind, self.config.search_ahead
        self._window = np.arange(-round(behind / spacing), round(ahead / spacing) + 1)
        self._rows = np.arange(len(paths))[:, None]

    @property
    def num_robots(self) -> int:
        return len(self.lengths)

    def _at(self, s: np.ndarray) -> np.ndarray:
        """Path points ``[R, K, 2]`` at arc lengths ``s [R, K]`` (nearest sample, wrapped)."""
        index = np.mod(np.rint(s / self.config.spacing).astype(np.int64), self.counts[:, None])
        return self.points[self._rows, index]

    def track(self, poses: np.ndarray) -> np.ndarray:
        """Project ``poses [R, 3]`` onto the paths near each robot's progress (updated); returns
        each robot's distance to its path point ``[R]`` (cross-track error, metres)."""
        poses = np.asarray(poses, dtype=float)
        candidates = self.progress[:, None] + self._window[None, :] * self.config.spacing
        gaps = np.linalg.norm(self._at(candidates) - poses[:, None, :2], axis=-1)
        best = np.argmin(gaps, axis=1)
        self.progress = np.mod(candidates[np.arange(len(best)), best], self.lengths)
        return gaps[np.arange(len(best)), best]

    def command(self, poses: np.ndarray, active: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Linear and angular velocities ``([R], [R])`` for robots at ``poses [R, 3]`` (x, y, yaw).

        ``active [R]`` (bool): robots without a fresh pose keep their progress and get zeros.
        """
        poses = np.asarray(poses, dtype=float)
        active = np.ones(self.num_robots, dtype=bool) if active is None else np.asarray(active, dtype=bool)
        ok = active & np.isfinite(poses).all(axis=1)
        poses = np.where(ok[:, None], poses, 0.0)  # NaN/Inf never reaches a command
        kept = self.progress.copy()
        self.track(poses)
        self.progress = np.where(ok, self.progress, kept)
        config = self.config
        target = self._at((self.progress + config.lookahead)[:, None])[:, 0]
        offset = target - poses[:, :2]
        distance = np.maximum(np.linalg.norm(offset, axis=1), 1e-6)
        alpha = np.arctan2(offset[:, 1], offset[:, 0]) - poses[:, 2]
        alpha = np.arctan2(np.sin(alpha), np.cos(alpha))
        curvature = 2.0 * np.sin(alpha) / distance
        speed = np.full(self.num_robots, config.speed)
        turning = np.abs(speed * curvature) > config.max_turn_rate
        speed = np.where(turning, config.max_turn_rate / np.maximum(np.abs(curvature), 1e-9), speed)
        turn_rate = np.clip(speed * curvature, -config.max_turn_rate, config.max_turn_rate)
        on_spot = np.abs(alpha) > config.turn_in_place_angle
        speed = np.where(on_spot, 0.0, speed)
        turn_rate = np.where(on_spot, np.sign(alpha) * config.max_turn_rate, turn_rate)
        return np.where(ok, speed, 0.0), np.where(ok, turn_rate, 0.0)

    def state_dict(self) -> dict[str, Any]:
        return {"progress": self.progress.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        progress = np.asarray(state["progress"], dtype=float)
        if progress.shape != self.progress.shape:
            raise ValueError(f"progress of {progress.shape[0]} robots, this controller has {self.num_robots}")
        self.progress = np.mod(progress, self.lengths)


def unicycle_step(poses: np.ndarray, speed: np.ndarray, turn_rate: np.ndarray, dt: float,
                  blocked: Any = None) -> np.ndarray:
    """Kinematic unicycles ``[R, 3]`` after ``dt`` seconds at constant ``speed`` and ``turn_rate`` [R]
    (exact arcs). ``blocked(xy [R, 2]) -> [R] bool``: robots whose new position it flags keep
    their old position (they only turn), as a robot stopped by a wall."""
    poses = np.asarray(poses, dtype=float)
    x, y, yaw = poses[:, 0], poses[:, 1], poses[:, 2]
    v, w = np.asarray(speed, dtype=float), np.asarray(turn_rate, dtype=float)
    turn = w * dt
    straight = np.abs(turn) < 1e-9
    safe_w = np.where(straight, 1.0, w)
    new_yaw = yaw + turn
    dx = np.where(straight, v * dt * np.cos(yaw), v / safe_w * (np.sin(new_yaw) - np.sin(yaw)))
    dy = np.where(straight, v * dt * np.sin(yaw), -v / safe_w * (np.cos(new_yaw) - np.cos(yaw)))
    moved = np.stack([x + dx, y + dy], axis=1)
    if blocked is not None:
        stop = np.asarray(blocked(moved), dtype=bool)
        moved = np.where(stop[:, None], poses[:, :2], moved)
    return np.concatenate([moved, np.arctan2(np.sin(new_yaw), np.cos(new_yaw))[:, None]], axis=1)


def distances_to_paths(paths: Sequence[RobotPath], xy: np.ndarray, spacing: float = 0.01) -> np.ndarray:
    """Distance (m) of each robot's positions ``xy [T, R, 2]`` to its own path ``paths[r]``:
    ``[T, R]`` (how well robots driven by cmd_vel kept to their paths; an analysis helper)."""
    from scipy.spatial import cKDTree

    xy = np.asarray(xy, dtype=float)
    if xy.ndim != 3 or xy.shape[1] != len(paths) or xy.shape[2] != 2:
        raise ValueError(f"xy must be [T, {len(paths)}, 2], got {xy.shape}")
    out = np.empty(xy.shape[:2])
    for r, path in enumerate(paths):  # analysis of a recorded run: once per robot, not per step
        out[:, r] = cKDTree(path.sample(spacing)).query(xy[:, r])[0]
    return out
