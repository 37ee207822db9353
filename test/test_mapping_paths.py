"""Built-in robot paths: collision-free with margin, smooth, constant speed, distinct regions."""

from __future__ import annotations

import numpy as np
import pytest

from dinno_core.tasks.mapping.floorplan import FloorPlan, load_floor_plan
from dinno_core.tasks.mapping.paths import PathSet, RobotPath, load_paths, route_waypoints, save_paths
from dinno_core.tasks.mapping.plans import BUILTIN_PLANS, builtin_paths_yaml, builtin_plan_yaml


@pytest.fixture(scope="module", params=BUILTIN_PLANS)
def plan_and_paths(request: pytest.FixtureRequest) -> tuple[FloorPlan, PathSet]:
    return load_floor_plan(builtin_plan_yaml(request.param)), load_paths(builtin_paths_yaml(request.param))


def test_paths_keep_their_clearance_from_walls(plan_and_paths: tuple[FloorPlan, PathSet]) -> None:
    plan, path_set = plan_and_paths
    assert len(path_set.paths) >= 7
    assert path_set.clearance >= 0.3
    distance = plan.distance_to_occupied()  # Euclidean distance transform of the grid, metres
    for path in path_set.paths:
        points = path.sample(0.02)
        rows, cols = plan.world_to_grid(points)
        assert plan.in_bounds(rows, cols).all()
        assert not plan.unknown[rows, cols].any(), path.name
        assert distance[rows, cols].min() >= path_set.clearance, path.name


def test_paths_are_smooth_closed_and_arc_length_parameterized(plan_and_paths: tuple[FloorPlan, PathSet]) -> None:
    _, path_set = plan_and_paths
    for path in path_set.paths:
        assert 15.0 < path.length < 150.0
        np.testing.assert_allclose(path.position_at(0.0), path.position_at(path.length), atol=1e-9)
        s = np.arange(0.0, path.length, 0.05)
        poses = path.pose_at(s)
        steps = np.linalg.norm(np.diff(poses[:, :2], axis=0), axis=1)
        assert np.all(np.abs(steps - 0.05) < 0.05 * 0.05), path.name  # constant speed
        turn = np.abs(np.angle(np.exp(1j * np.diff(poses[:, 2]))))
        assert turn.max() / 0.05 < 20.0, path.name  # curvature: turning radius > 5 cm everywhere
        # the heading is the direction of travel
        travel = np.arctan2(np.diff(poses[:, 1]), np.diff(poses[:, 0]))
        assert np.abs(np.angle(np.exp(1j * (travel - poses[:-1, 2])))).max() < 0.6


def test_each_robot_drives_its_own_part_of_the_building(plan_and_paths: tuple[FloorPlan, PathSet]) -> None:
    _, path_set = plan_and_paths
    cells = [set(map(tuple, np.floor(p.sample(0.05)).astype(int))) for p in path_set.paths]
    for i, mine in enumerate(cells):
        others = set().union(*(c for j, c in enumerate(cells) if j != i))
        assert len(mine - others) / len(mine) > 0.5  # most 1 m cells it visits, no one else does


def test_round_trip_and_routing(tmp_path) -> None:
    occupied = np.zeros((60, 100), bool)  # 10 x 6 m at 0.1 m, a wall with a door in the middle
    occupied[:2], occupied[-2:], occupied[:, :2], occupied[:, -2:] = True, True, True, True
    occupied[:, 49:51] = True
    occupied[25:35, 49:51] = False
    plan = FloorPlan(occupied, np.zeros_like(occupied), 0.1, (0.0, 0.0, 0.0))
    waypoints = route_waypoints(plan, np.array([[2.0, 1.5], [2.0, 4.5], [8.0, 4.5], [8.0, 1.5]]), clearance=0.35)
    path = RobotPath(waypoints, "r")
    assert path.min_clearance(plan) > 0.25
    file = save_paths(PathSet([path], clearance=0.25, plan="test"), tmp_path / "p.yaml")
    loaded = load_paths(file)
    assert loaded.plan == "test" and loaded.paths[0].name == "r"
    assert loaded.paths[0].length == pytest.approx(path.length, abs=0.01)
    with pytest.raises(ValueError, match="3 waypoints"):
        RobotPath(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="clearance|walls"):
        route_waypoints(plan, np.array([[0.05, 0.05], [2.0, 2.0]]))
