"""Robot paths through a floor plan: smooth closed splines driven at constant speed.

A path file is YAML::

    plan: office                 # informative
    clearance: 0.3               # metres kept from every occupied cell (checked in tests)
    robots:
      - name: robot_0
        waypoints: [[x, y], ...] # world metres; the path is a closed loop through them

:class:`RobotPath` fits a periodic cubic spline through the waypoints (chord-length knots)
and re-parameterizes it by arc length, so a robot moving at constant speed ``v`` is at
``pose_at(v · t)``. :func:`route_waypoints` builds waypoints for any occupancy grid (for
instance a user's SLAM map) by joining goal points with clearance-aware shortest paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from scipy import sparse
from scipy.interpolate import CubicSpline
from scipy.sparse.csgraph import dijkstra

from dinno_core.tasks.mapping.floorplan import FloorPlan

__all__ = ["RobotPath", "load_paths", "route_waypoints", "save_paths"]


class RobotPath:
    """A closed, smooth path through ``waypoints [K, 2]`` (world metres), parameterized by arc length."""

    def __init__(self, waypoints: np.ndarray, name: str = "robot", *, samples_per_metre: float = 50.0) -> None:
        points = np.asarray(waypoints, dtype=float)
        if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3:
            raise ValueError(f"path {name!r} needs at least 3 waypoints [K, 2], got shape {points.shape}")
        if not np.isfinite(points).all():
            raise ValueError(f"path {name!r} has non-finite waypoints")
        if np.allclose(points[0], points[-1]):
            points = points[:-1]
        self.name = name
        self.waypoints = points
        closed = np.vstack([points, points[:1]])
        chord = np.linalg.norm(np.diff(closed, axis=0), axis=1)
        if (chord <= 1e-9).any():
            raise ValueError(f"path {name!r} has repeated consecutive waypoints")
        knots = np.concatenate([[0.0], np.cumsum(chord)])
        spline = CubicSpline(knots, closed, bc_type="periodic")
        # Arc length of the spline, sampled densely, then inverted by interpolation.
        dense_u = np.linspace(0.0, knots[-1], max(int(knots[-1] * samples_per_metre), 200) + 1)
        speed = np.linalg.norm(spline(dense_u, 1), axis=1)
        arc = np.concatenate([[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) * np.diff(dense_u))])
        self._spline = spline
        self._dense_u = dense_u
        self._arc = arc
        self.length = float(arc[-1])

    def _parameter(self, s: np.ndarray) -> np.ndarray:
        return np.interp(np.mod(s, self.length), self._arc, self._dense_u)

    def position_at(self, s: np.ndarray | float) -> np.ndarray:
        """World positions ``[..., 2]`` at arc lengths ``s`` (metres, wrapped around the loop)."""
        return self._spline(self._parameter(np.asarray(s, dtype=float)))

    def pose_at(self, s: np.ndarray | float) -> np.ndarray:
        """Poses ``[..., 3]`` (x, y, heading along the path) at arc lengths ``s``."""
        u = self._parameter(np.asarray(s, dtype=float))
        xy, tangent = self._spline(u), self._spline(u, 1)
        return np.concatenate([xy, np.arctan2(tangent[..., 1], tangent[..., 0])[..., None]], axis=-1)

    def sample(self, spacing: float = 0.02) -> np.ndarray:
        """Points ``[K, 2]`` every ``spacing`` metres along the whole loop."""
        return self.position_at(np.arange(0.0, self.length, spacing))

    def min_clearance(self, plan: FloorPlan, spacing: float = 0.02) -> float:
        """Smallest distance (metres) from the path to an occupied cell (``-inf`` if it enters unknown space)."""
        return float(plan.clearance(self.sample(spacing)).min())


@dataclass
class PathSet:
    """Paths of a team of robots as stored in a path file."""

    paths: list[RobotPath]
    clearance: float = 0.0
    plan: str = ""


def load_paths(path_file: str | Path) -> PathSet:
    """Read a path YAML (see the module docstring)."""
    path_file = Path(path_file)
    if not path_file.is_file():
        raise FileNotFoundError(f"path file not found: {path_file}")
    data = yaml.safe_load(path_file.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("robots"), list) or not data["robots"]:
        raise ValueError(f"{path_file}: expected a mapping with a non-empty 'robots' list")
    paths = []
    for index, robot in enumerate(data["robots"]):
        if not isinstance(robot, dict) or "waypoints" not in robot:
            raise ValueError(f"{path_file}: robots[{index}] needs a 'waypoints' list")
        paths.append(RobotPath(np.asarray(robot["waypoints"], dtype=float), str(robot.get("name", f"robot_{index}"))))
    return PathSet(paths=paths, clearance=float(data.get("clearance", 0.0)), plan=str(data.get("plan", "")))


def save_paths(path_set: PathSet, path_file: str | Path) -> Path:
    """Write a path YAML with waypoints rounded to millimetres."""
    path_file = Path(path_file)
    data = {
        "plan": path_set.plan,
        "clearance": float(path_set.clearance),
        "robots": [
            {"name": p.name, "waypoints": [[round(float(x), 3), round(float(y), 3)] for x, y in p.waypoints]}
            for p in path_set.paths
        ],
    }
    path_file.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100))
    return path_file


def route_waypoints(
    plan: FloorPlan,
    goals: np.ndarray,
    *,
    clearance: float = 0.35,
    preferred_clearance: float = 1.0,
    spacing: float = 0.8,
    smoothing: float = 1.0,
    cell: float = 0.1,
) -> np.ndarray:
    """Waypoints ``[K, 2]`` of a closed tour visiting ``goals [G, 2]`` in order.

    Consecutive goals are joined by shortest paths on a grid of ``cell`` metres restricted to
    free space at least ``clearance`` from walls, with a cost that grows as the clearance
    falls below ``preferred_clearance`` (so routes keep to the middle of corridors and doors).
    The joined route is smoothed (a moving average over ``smoothing`` metres, which rounds
    its grid corners) and resampled to evenly spaced waypoints ``spacing`` metres apart.
    Check the fitted :class:`RobotPath`'s :meth:`~RobotPath.min_clearance` afterwards.
    """
    goals = np.asarray(goals, dtype=float)
    factor = max(1, int(round(cell / plan.resolution)))
    cell = factor * plan.resolution
    # Clearance of each coarse cell = the minimum over its fine cells, unknown counts as wall.
    dist = np.where(plan.unknown, 0.0, plan.distance_to_occupied())
    rows, cols = plan.height // factor, plan.width // factor
    coarse = dist[: rows * factor, : cols * factor].reshape(rows, factor, cols, factor).min(axis=(1, 3))
    allowed = coarse >= clearance
    node = -np.ones((rows, cols), dtype=np.int64)
    node[allowed] = np.arange(int(allowed.sum()))
    cost = 1.0 + 4.0 * np.clip((preferred_clearance - coarse) / preferred_clearance, 0.0, None)
    sources, targets, weights = [], [], []
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):  # each undirected 8-neighbour edge once
        c0, c1 = max(0, -dc), cols - max(0, dc)
        a, b = node[: rows - dr, c0:c1], node[dr:, c0 + dc : c1 + dc]
        ca, cb = cost[: rows - dr, c0:c1], cost[dr:, c0 + dc : c1 + dc]
        both = (a >= 0) & (b >= 0)
        sources.append(a[both])
        targets.append(b[both])
        weights.append(0.5 * (ca[both] + cb[both]) * math.hypot(dr, dc))
    n = int(allowed.sum())
    graph = sparse.coo_matrix(
        (np.concatenate(weights), (np.concatenate(sources), np.concatenate(targets))), shape=(n, n)
    ).tocsr()

    def node_of(xy: np.ndarray) -> int:
        r, c = plan.world_to_grid(xy)
        r, c = int(r) // factor, int(c) // factor
        if not (0 <= r < rows and 0 <= c < cols) or node[r, c] < 0:
            raise ValueError(f"goal {tuple(np.round(xy, 2))} is not at least {clearance} m from walls")
        return int(node[r, c])

    centre_rows, centre_cols = np.nonzero(allowed)
    centres = plan.grid_to_world(centre_rows * factor + (factor - 1) / 2, centre_cols * factor + (factor - 1) / 2)
    goal_nodes = [node_of(g) for g in goals]
    route: list[int] = []
    for start, end in zip(goal_nodes, goal_nodes[1:] + goal_nodes[:1]):
        _, predecessors = dijkstra(graph, directed=False, indices=start, return_predecessors=True)
        leg = [end]
        while leg[-1] != start:
            previous = predecessors[leg[-1]]
            if previous < 0:
                raise ValueError("two goals are not connected through free space with the required clearance")
            leg.append(int(previous))
        route.extend(reversed(leg[1:]))  # drop the start; it ends the previous leg
    return _smooth_loop(centres[route], spacing, smoothing)


def _resample_loop(points: np.ndarray, spacing: float) -> np.ndarray:
    """Points every ``spacing`` metres along the closed polyline through ``points``."""
    closed = np.vstack([points, points[:1]])
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    count = max(3, int(round(arc[-1] / spacing)))
    s = np.linspace(0.0, arc[-1], count, endpoint=False)
    return np.stack([np.interp(s, arc, closed[:, 0]), np.interp(s, arc, closed[:, 1])], axis=1)


def _smooth_loop(points: np.ndarray, spacing: float, smoothing: float) -> np.ndarray:
    """Evenly spaced, corner-rounded waypoints: resample finely, circular moving average over
    ``smoothing`` metres, resample every ``spacing`` metres."""
    fine_step = spacing / 8
    fine = _resample_loop(points, fine_step)
    half = int(round(smoothing / fine_step / 2))
    if half > 0:
        kernel = np.ones(2 * half + 1) / (2 * half + 1)
        padded = np.concatenate([fine[-half:], fine, fine[:half]])
        fine = np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(2)], axis=1)
    return _resample_loop(fine, spacing)
