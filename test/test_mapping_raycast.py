"""Vectorized lidar ray casting against analytic geometry and a slow per-beam reference."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from dinno_core.tasks.mapping.floorplan import FloorPlan
from dinno_core.tasks.mapping.raycast import LidarSpec, cast_rays


def box_room(width: float = 8.0, height: float = 5.0, res: float = 0.05, wall: int = 2,
             origin: tuple[float, float, float] = (-1.0, -2.0, 0.0)) -> FloorPlan:
    rows, cols = int(round(height / res)), int(round(width / res))
    occupied = np.zeros((rows, cols), bool)
    occupied[:wall], occupied[-wall:], occupied[:, :wall], occupied[:, -wall:] = True, True, True, True
    return FloorPlan(occupied, np.zeros_like(occupied), res, origin)


def slow_reference(plan: FloorPlan, pose: np.ndarray, spec: LidarSpec, step: float) -> np.ndarray:
    """One beam at a time: sample it every ``step`` metres; the first sample in an occupied cell."""
    out = []
    samples = np.arange(0.0, spec.range_max + step / 2, step)
    for angle in spec.angles():
        theta = pose[2] + angle
        points = pose[:2] + samples[:, None] * np.array([math.cos(theta), math.sin(theta)])
        inside = plan.is_occupied(points)
        out.append(samples[np.argmax(inside)] if inside.any() else math.inf)
    return np.array(out)


def test_box_room_distances_to_each_wall() -> None:
    plan = box_room()  # inner faces: x = -0.9, 6.9; y = -1.9, 2.9
    spec = LidarSpec.full_circle(4, range_max=20.0)  # beams at -pi, -pi/2, 0, pi/2
    x, y = 1.23, 0.37
    ranges = cast_rays(plan, np.array([x, y, 0.0]), spec)
    expected = [x + 0.9, y + 1.9, 6.9 - x, 2.9 - y]
    np.testing.assert_allclose(ranges, expected, atol=1e-6)  # exact traversal: no step error
    # A rotated robot: the beam at angle 0 now points along +y.
    ranges = cast_rays(plan, np.array([x, y, math.pi / 2]), spec)
    np.testing.assert_allclose(ranges, [y + 1.9, 6.9 - x, 2.9 - y, x + 0.9], atol=1e-6)
    # Diagonal beam to a corner region: distance to the x = 6.9 face along 30°.
    diagonal = LidarSpec(num_beams=1, angle_min=math.radians(30), angle_max=math.radians(30), range_max=20.0)
    hit = cast_rays(plan, np.array([x, y, 0.0]), diagonal)[0]
    expected = min((6.9 - x) / math.cos(math.radians(30)), (2.9 - y) / math.sin(math.radians(30)))
    assert hit == pytest.approx(expected, abs=1e-6)


def test_rotated_map_origin() -> None:
    plan = box_room(origin=(3.0, 1.0, math.pi / 2))  # the room's x axis points along world +y
    spec = LidarSpec.full_circle(4, range_max=20.0)
    # World point 1 m inside the room from its map-frame origin corner along both axes.
    pose = np.array([3.0 - 1.5, 1.0 + 2.0, math.pi / 2])  # map frame (2.0, 1.5), heading along map +x
    ranges = cast_rays(plan, pose, spec)
    # In the map frame: inner faces at u = 0.1, 7.9 and v = 0.1, 4.9.
    np.testing.assert_allclose(ranges, [1.9, 1.4, 5.9, 3.4], atol=1e-6)


def test_vectorized_equals_slow_reference_per_beam() -> None:
    rng = np.random.default_rng(3)
    res = 0.1
    occupied = rng.random((40, 50)) < 0.04
    occupied = occupied | np.roll(occupied, 1, 0) | np.roll(occupied, 1, 1)  # blobs
    occupied[:, 0] = occupied[:, -1] = occupied[0] = occupied[-1] = True
    plan = FloorPlan(occupied, np.zeros_like(occupied), res, (0.3, -0.7, 0.0))
    free_rows, free_cols = np.nonzero(~occupied)
    pick = rng.choice(len(free_rows), 12, replace=False)
    xy = plan.grid_to_world(free_rows[pick], free_cols[pick]) + rng.uniform(-0.04, 0.04, (12, 2))
    poses = np.concatenate([xy, rng.uniform(-math.pi, math.pi, (12, 1))], axis=1)
    spec = LidarSpec.full_circle(37, range_min=0.0, range_max=3.0)
    fast = cast_rays(plan, poses, spec)
    step = res / 100
    slow = np.stack([slow_reference(plan, pose, spec, step) for pose in poses])
    # The exact traversal never misses what the reference found, and is never later than it
    # (it may catch a corner the reference's samples skipped over).
    assert not (np.isinf(fast) & np.isfinite(slow)).any()
    both = np.isfinite(fast) & np.isfinite(slow)
    diff = slow[both] - fast[both]
    assert (diff >= -1e-9).all()
    assert np.mean(diff < step + 1e-9) > 0.97
    assert np.mean(np.isfinite(fast) == np.isfinite(slow)) > 0.97


def test_rep117_no_return_and_too_close() -> None:
    plan = box_room()
    spec = LidarSpec.full_circle(8, range_min=0.2, range_max=1.0)
    centre = cast_rays(plan, np.array([3.0, 0.5, 0.0]), spec)
    assert np.isposinf(centre).all()  # every wall beyond range_max
    inside_wall = cast_rays(plan, np.array([-0.97, 0.5, 0.0]), spec)
    assert np.isneginf(inside_wall).all()  # 0 < range_min
    single = LidarSpec(num_beams=1, angle_min=0.0, angle_max=0.0, range_min=0.2, range_max=5.0)
    assert cast_rays(plan, np.array([6.8, 0.5, 0.0]), single)[0] == -np.inf  # wall 0.1 m ahead
    outside_image = cast_rays(plan, np.array([50.0, 50.0, 0.0]), spec)
    assert np.isposinf(outside_image).all()


def test_noise_statistics_and_batch_shapes() -> None:
    plan = box_room()
    spec = LidarSpec.full_circle(64, range_max=20.0, noise_std=0.05)
    poses = np.tile([[1.0, 0.5, 0.3]], (200, 1))
    exact = cast_rays(plan, poses, spec)
    noisy = cast_rays(plan, poses, spec, np.random.default_rng(0))
    assert noisy.shape == (200, 64)
    error = (noisy - exact).ravel()
    assert abs(error.mean()) < 0.005 and error.std() == pytest.approx(0.05, rel=0.05)
    again = cast_rays(plan, poses, spec, np.random.default_rng(0))
    np.testing.assert_array_equal(noisy, again)
    assert cast_rays(plan, np.zeros((0, 3)), spec).shape == (0, 64)


def test_chunking_does_not_change_results() -> None:
    plan = box_room()
    spec = LidarSpec.full_circle(30, range_max=6.0)
    rng = np.random.default_rng(1)
    poses = np.concatenate([rng.uniform([0, -1], [6, 2], (50, 2)), rng.uniform(-3, 3, (50, 1))], axis=1)
    np.testing.assert_array_equal(cast_rays(plan, poses, spec), cast_rays(plan, poses, spec, max_elements=1))


def test_spec_angles_and_validation() -> None:
    spec = LidarSpec.full_circle(20)
    assert spec.angles()[0] == -math.pi and spec.angle_increment == pytest.approx(2 * math.pi / 20)
    assert spec.angles()[-1] == pytest.approx(spec.angle_max)
    received = LidarSpec.from_increment(20, -math.pi, 2 * math.pi / 20, 0.1, 10.0)
    np.testing.assert_allclose(received.angles(), spec.angles())
    with pytest.raises(ValueError, match="range_min"):
        LidarSpec(range_min=5.0, range_max=1.0)
    with pytest.raises(ValueError, match="num_beams"):
        LidarSpec(num_beams=0)


def test_seven_robots_scan_quickly() -> None:
    plan = box_room(30.0, 20.0)
    spec = LidarSpec.full_circle(64, range_max=10.0)
    poses = np.concatenate([np.random.default_rng(0).uniform([1, 1], [25, 15], (7, 2)), np.zeros((7, 1))], 1)
    cast_rays(plan, poses, spec)
    start = time.perf_counter()
    for _ in range(20):
        cast_rays(plan, poses, spec, np.random.default_rng(0))
    per_round = (time.perf_counter() - start) / 20
    assert per_round < 0.05  # ~2 ms on an idle 2-core machine; generous for loaded CI
