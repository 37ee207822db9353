"""Pure-pursuit path following and the kinematic unicycle (dinno_core, no ROS)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dinno_core.tasks.mapping.path_following import PathFollowingConfig, PurePursuit, unicycle_step
from dinno_core.tasks.mapping.paths import RobotPath
from dinno_core.tasks.mapping.task import MappingTaskConfig, build_task

TRACKING_BOUND = 0.25
"""Metres: the largest distance from its path a driven robot may have once it joined the path."""


def path_distance(path: RobotPath, xy: np.ndarray) -> float:
    return float(np.min(np.linalg.norm(path.sample(0.01) - xy, axis=1)))


@pytest.fixture(scope="module")
def office():
    return build_task(MappingTaskConfig(plan="office", validation_scans=1), 7, 0)


def test_robots_driven_by_pure_pursuit_stay_on_their_paths(office):
    """All 7 office robots, started 0.3 m off their paths and 0.5 rad off heading, driven
    for 90 s of unicycle motion at 20 Hz commands: they join their paths and stay within
    TRACKING_BOUND, and go round at about the cruise speed."""
    config = PathFollowingConfig(speed=0.6, max_turn_rate=1.5)
    controller = PurePursuit(office.paths, office.path_offsets, config)
    starts = np.stack([p.pose_at(o) for p, o in zip(office.paths, office.path_offsets)])
    poses = starts + np.array([0.3, -0.2, 0.5])
    dt, worst, travelled = 0.05, np.zeros(7), np.zeros(7)
    blocked = lambda xy: office.plan.clearance(xy) < 0.15  # noqa: E731
    for k in range(int(90 / dt)):
        v, w = controller.command(poses)
        assert np.all(np.abs(w) <= config.max_turn_rate + 1e-12) and np.all((0 <= v) & (v <= config.speed + 1e-12))
        new = unicycle_step(poses, v, w, dt, blocked)
        travelled += np.linalg.norm(new[:, :2] - poses[:, :2], axis=1)
        poses = new
        if k * dt >= 5.0 and k % 10 == 0:  # joined by then
            worst = np.maximum(worst, [path_distance(p, poses[i, :2]) for i, p in enumerate(office.paths)])
    assert worst.max() < TRACKING_BOUND, worst
    assert np.all(travelled > 0.9 * config.speed * 90), travelled  # hardly ever slowed down
    assert np.all(office.plan.clearance(poses[:, :2]) > 0.15)


def test_a_robot_facing_away_turns_on_the_spot_within_the_limits(office):
    config = PathFollowingConfig(max_turn_rate=0.8)
    controller = PurePursuit(office.paths[:1], office.path_offsets[:1], config)
    pose = office.paths[0].pose_at(office.path_offsets[0])[None].copy()
    pose[0, 2] += math.pi  # backwards
    v, w = controller.command(pose)
    assert v[0] == 0.0 and abs(w[0]) == pytest.approx(0.8)


def test_stale_or_non_finite_poses_get_zero_commands_and_keep_the_progress(office):
    controller = PurePursuit(office.paths[:2], office.path_offsets[:2])
    poses = np.stack([p.pose_at(o + 1.5) for p, o in zip(office.paths[:2], office.path_offsets[:2])])
    before = controller.progress.copy()
    bad = poses.copy()
    bad[1, 0] = np.nan
    v, w = controller.command(bad, active=np.array([False, True]))
    assert np.all(v == 0) and np.all(w == 0)
    assert np.array_equal(controller.progress, before)
    v, w = controller.command(poses)
    assert np.all(v > 0) and np.all(np.isfinite(w))
    assert np.allclose(controller.progress, np.mod(before + 1.5, controller.lengths), atol=0.05)


def test_progress_never_jumps_to_where_a_path_passes_again():
    """A figure-of-eight-like loop passes near its start again; the progress stays local."""
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    path = RobotPath(np.stack([4 * np.sin(t), 2 * np.sin(2 * t)], axis=1))
    controller = PurePursuit([path], [0.0], PathFollowingConfig(search_ahead=1.0))
    s = 0.0
    for _ in range(200):
        s += 0.1
        controller.command(path.pose_at(s)[None])
        assert abs(((controller.progress[0] - s) + path.length / 2) % path.length - path.length / 2) < 0.1


def test_state_dict_round_trip(office):
    a = PurePursuit(office.paths, office.path_offsets)
    a.command(np.stack([p.pose_at(o + 2.0) for p, o in zip(office.paths, office.path_offsets)]))
    b = PurePursuit(office.paths, office.path_offsets)
    b.load_state_dict(a.state_dict())
    assert np.array_equal(a.progress, b.progress)
    with pytest.raises(ValueError, match="progress of 2 robots"):
        b.load_state_dict({"progress": np.zeros(2)})


def test_unicycle_is_exact_on_arcs_and_walls_stop_it():
    start = np.array([[1.0, 2.0, 0.3], [0.0, 0.0, 0.0]])
    poses = start.copy()
    for _ in range(100):  # one full circle of radius 0.5 in 100 steps
        poses = unicycle_step(poses, np.array([0.5, 1.0]), np.array([1.0, 0.0]), 2 * math.pi / 100)
    assert np.allclose(poses[0], start[0], atol=1e-9)
    assert np.allclose(poses[1], [2 * math.pi, 0.0, 0.0])
    blocked = unicycle_step(start, np.ones(2), np.array([0.5, 0.0]), 1.0, blocked=lambda xy: xy[:, 0] > 1.5)
    assert np.allclose(blocked[0, :2], start[0, :2]) and blocked[0, 2] == pytest.approx(0.8)
    assert blocked[1, 0] == pytest.approx(1.0)
