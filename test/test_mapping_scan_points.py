"""Scans → labelled points, malformed input, the sliding window and the pooled view."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dinno_core.tasks.mapping.floorplan import FloorPlan
from dinno_core.tasks.mapping.raycast import LidarSpec, cast_rays
from dinno_core.tasks.mapping.scan_points import (
    BeamSampling,
    MalformedScan,
    PooledWindows,
    SlidingWindow,
    scan_to_points,
    scans_to_points,
)


def room_with_pillar() -> FloorPlan:
    res = 0.05
    occupied = np.zeros((120, 160), bool)  # 8 x 6 m
    occupied[:3], occupied[-3:], occupied[:, :3], occupied[:, -3:] = True, True, True, True
    occupied[50:70, 100:110] = True  # a pillar
    return FloorPlan(occupied, np.zeros_like(occupied), res, (0.0, 0.0, 0.0))


def test_labels_agree_with_the_map() -> None:
    plan = room_with_pillar()
    spec = LidarSpec.full_circle(60, range_max=12.0, noise_std=0.0)
    rng = np.random.default_rng(0)
    poses = np.array([[2.0, 3.0, 0.2], [6.5, 1.0, -1.0], [4.0, 4.5, 2.0]])
    sampling = BeamSampling(samples_per_beam=25, occupied_per_beam=2, occupied_depth=0.05)
    scans = scans_to_points(cast_rays(plan, poses, spec), poses, spec, sampling, rng)
    for points, labels in scans:
        assert points.dtype == np.float32 and labels.dtype == np.float32
        assert len(points) == 60 * 25  # every beam hits a wall in this room
        free, occupied = points[labels == 0], points[labels == 1]
        assert len(occupied) == 60 * 2
        assert not plan.is_occupied(free).any()  # free samples lie in free cells
        # occupied samples lie on the hit surface or just behind it: within a cell of a wall
        dist = plan.lookup(plan.distance_to_occupied(), occupied, outside=0.0)
        assert (dist <= plan.resolution * 1.01).all()
        assert plan.is_occupied(occupied).mean() > 0.9


def test_free_samples_are_stratified_along_the_beam() -> None:
    spec = LidarSpec(num_beams=1, angle_min=0.0, angle_max=0.0, range_min=0.1, range_max=10.0)
    sampling = BeamSampling(samples_per_beam=10, occupied_per_beam=0, free_margin=0.0)
    points, labels = scan_to_points(np.array([5.0]), np.array([1.0, 2.0, 0.0]), spec, sampling,
                                    np.random.default_rng(0))
    t = np.sort(points[:, 0] - 1.0)
    assert (labels == 0).all() and np.allclose(points[:, 1], 2.0)
    assert ((t >= np.arange(10) * 0.5) & (t < np.arange(1, 11) * 0.5)).all()  # one per 0.5 m stratum


def test_no_return_and_bad_beams() -> None:
    spec = LidarSpec.full_circle(6, range_min=0.2, range_max=4.0)
    sampling = BeamSampling(samples_per_beam=5, occupied_per_beam=1)
    ranges = np.array([np.inf, 4.0, np.nan, -np.inf, 0.1, 2.0])
    points, labels = scan_to_points(ranges, np.array([0.0, 0.0, 0.0]), spec, sampling, np.random.default_rng(1))
    # +inf and >= range_max: 5 free points each up to range_max; NaN, -inf, < range_min: skipped;
    # the hit at 2 m: 4 free + 1 occupied.
    assert len(points) == 15 and labels.sum() == 1
    assert np.linalg.norm(points, axis=1).max() <= 4.0
    occupied = points[labels == 1][0]
    assert np.linalg.norm(occupied) == pytest.approx(2.0, abs=0.051)


def test_malformed_scans_raise_the_specific_exception() -> None:
    spec = LidarSpec.full_circle(8)
    with pytest.raises(MalformedScan, match="8 ranges"):
        scan_to_points(np.ones(7), np.zeros(3), spec)
    with pytest.raises(MalformedScan):
        scan_to_points(np.ones((2, 8)), np.zeros(3), spec)
    with pytest.raises(MalformedScan, match="pose"):
        scan_to_points(np.ones(8), np.array([0.0, math.nan, 0.0]), spec)
    with pytest.raises(MalformedScan):
        scan_to_points(np.ones(8), np.zeros(2), spec)
    with pytest.raises(MalformedScan):
        scans_to_points(np.ones((3, 8)), np.zeros((2, 3)), spec, BeamSampling(), np.random.default_rng())
    assert issubclass(MalformedScan, ValueError)
    empty, _ = scan_to_points(np.full(8, np.nan), np.zeros(3), spec)  # all beams bad: no points, no error
    assert empty.shape == (0, 2)


def test_sliding_window_keeps_the_latest_scans() -> None:
    window = SlidingWindow(capacity=3, points_per_scan=4)
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(RuntimeError, match="empty"):
        window.sample(5, generator)
    for scan in range(5):
        count = 2 + scan % 3  # 2, 3, 4, 2, 3 points
        points = np.full((count, 2), float(scan), np.float32)
        window.append(points, np.full(count, scan % 2, np.float32))
    assert window.num_scans == 3 and len(window) == 4 + 2 + 3
    x, y = window.sample(2000, generator)
    assert x.shape == (2000, 2) and y.shape == (2000,)
    seen = torch.unique(x[:, 0]).tolist()
    assert seen == [2.0, 3.0, 4.0]  # scans 0 and 1 were overwritten
    frequency = torch.stack([(x[:, 0] == s).float().mean() for s in (2.0, 3.0, 4.0)])
    torch.testing.assert_close(frequency, torch.tensor([4 / 9, 2 / 9, 3 / 9]), atol=0.04, rtol=0)
    with pytest.raises(ValueError, match="points_per_scan"):
        window.append(np.zeros((5, 2)), np.zeros(5))


def test_pooled_windows_sample_the_union_uniformly() -> None:
    a, b = SlidingWindow(2, 10), SlidingWindow(2, 10)
    a.append(np.zeros((10, 2)), np.zeros(10))
    b.append(np.ones((5, 2)), np.ones(5))
    pooled = PooledWindows([a, b])
    x, y = pooled.sample(3000, torch.Generator().manual_seed(1))
    assert len(pooled) == 15
    assert torch.equal(x[:, 0], y)
    assert y.mean().item() == pytest.approx(1 / 3, abs=0.03)
