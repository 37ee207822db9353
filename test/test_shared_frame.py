"""A shared world frame on real robots: odometry in each robot's own frame, lidars mounted off
the base origin (one upside down), real scans' own metadata — the mapping data source (plain
logic, the code behind the robot node's scan/odom/pose callbacks).

The reference is the same run in the shared frame, the embedded simulator's convention
(odometry = map frame, lidar at the base origin): with each robot's initial pose and lidar
mount given, every point and label in every robot's sliding window matches the reference's
within FRAME_TOLERANCE (float32 points; the samples along each beam come from the same seeded
generator); without them, the points are metres off and most "occupied" points miss the walls.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dinno_core.tasks.mapping.raycast import cast_rays
from dinno_core.tasks.mapping.task import LidarConfig, MappingTaskConfig, build_task
from dinno_ros.data_sources import FrameSettings, MappingDataSource, ScanGeometry, compose, yaw_from_quaternion
from dinno_ros.parameters import model_parameters

FRAME_TOLERANCE = 1e-4
"""Metres: largest difference between a point mapped through initial pose + mount and the same
point mapped in the shared frame."""
ROBOTS = 3
MOUNTS = [(0.25, -0.10, 0.4, False), (-0.15, 0.05, -2.0, True), (0.0, 0.20, math.pi / 2, False)]


def inverse(pose):
    x, y, yaw = pose
    c, s = math.cos(yaw), math.sin(yaw)
    return (-c * x - s * y, s * x - c * y, -yaw)


@pytest.fixture(scope="module")
def run():
    """Scans and poses of 3 office robots over 40 scans, as their real sensors would give them."""
    config = MappingTaskConfig(plan="office", validation_scans=1, samples_per_beam=6, window_scans=40,
                               lidar=LidarConfig(num_beams=24, noise_std=0.0))
    task = build_task(config, ROBOTS, 0)
    spec = task.spec
    times = np.arange(40) * 0.5
    base = np.stack([[p.pose_at(o + 0.6 * t) for p, o in zip(task.paths, task.path_offsets)] for t in times])
    starts = base[0]
    mounts = [m[:3] for m in MOUNTS]
    lidar = np.array([[compose(tuple(base[k, r]), mounts[r]) for r in range(ROBOTS)] for k in range(len(times))])
    upright = np.stack([cast_rays(task.plan, lidar[k], spec, np.random.default_rng(k)) for k in range(len(times))])
    # An upside-down lidar (roll = pi) reports at its own angle a the ray an upright one sees at
    # -a. Ours reports beams from angle_min = -pi + inc: its beam j is the upright beam n-1-j.
    inc = spec.angle_increment
    device = upright.copy()
    geometry = [None] * ROBOTS
    for r, (*_, upside_down) in enumerate(MOUNTS):
        if upside_down:
            device[:, r] = upright[:, r, ::-1]
            geometry[r] = ScanGeometry(-math.pi + inc, inc, spec.range_min, spec.range_max)
    odom = np.array([[compose(inverse(tuple(starts[r])), tuple(base[k, r])) for r in range(ROBOTS)]
                     for k in range(len(times))])
    return {"task": task, "spec": spec, "times": times, "lidar": lidar, "upright": upright, "device": device,
            "odom": odom, "starts": starts, "geometry": geometry}


def windows(run, frames_of, poses, ranges, frame_ids=None, geometry=None):
    sources = [MappingDataSource.for_task(run["task"], seed=7 + r, frames=frames_of(r)) for r in range(ROBOTS)]
    for k, t in enumerate(run["times"]):
        for r, source in enumerate(sources):
            source.add_odometry(t, *poses[k, r])
            assert source.add_scan(t, ranges[k, r], frame_id=None if frame_ids is None else frame_ids[r],
                                   geometry=None if geometry is None else geometry[r])
    return sources


def on_walls(plan, xy) -> float:
    """Fraction of points within 0.15 m of an occupied cell of the plan (not outside it)."""
    clearance = plan.clearance(np.asarray(xy, dtype=float))
    return float(((clearance >= 0.0) & (clearance < 0.15)).mean())


def points(source):
    return source.window.points[: len(source.window)].numpy(), source.window.labels[: len(source.window)].numpy()


def test_initial_pose_and_mount_put_every_robot_into_the_shared_frame(run):
    reference = windows(run, lambda r: FrameSettings(), run["lidar"], run["upright"])
    frames = [FrameSettings(initial_pose=tuple(run["starts"][r]), lidar_mount=MOUNTS[r][:3],
                            lidar_upside_down=MOUNTS[r][3], lidar_frame=f"robot_{r}/lidar") for r in range(ROBOTS)]
    mapped = windows(run, lambda r: frames[r], run["odom"], run["device"],
                     frame_ids=[f"robot_{r}/lidar" for r in range(ROBOTS)], geometry=run["geometry"])
    plan = run["task"].plan
    for r in range(ROBOTS):
        (ref_xy, ref_label), (xy, label) = points(reference[r]), points(mapped[r])
        assert xy.shape == ref_xy.shape and len(xy) > 1000
        assert np.abs(xy - ref_xy).max() < FRAME_TOLERANCE
        assert np.array_equal(label, ref_label)
        assert on_walls(plan, xy[label > 0.5]) > 0.9  # the "occupied" points lie on the plan's walls

    # Without the initial pose and the mount: the same messages make a different, wrong map.
    wrong = windows(run, lambda r: FrameSettings(), run["odom"], run["device"], geometry=run["geometry"])
    for r in range(ROBOTS):
        (ref_xy, _), (xy, label) = points(reference[r]), points(wrong[r])
        assert np.median(np.linalg.norm(xy - ref_xy, axis=1)) > 1.0
        assert on_walls(plan, xy[label > 0.5]) < 0.5


def test_each_scan_is_mapped_with_its_own_metadata(run):
    """A lidar whose beams start elsewhere and turn clockwise (negative increment), with its own
    range limits: the data source uses the message's numbers, not the task's."""
    spec = run["spec"]
    n = spec.num_beams
    reference = windows(run, lambda r: FrameSettings(), run["lidar"], run["upright"])
    own = [MappingDataSource.for_task(run["task"], seed=7 + r) for r in range(ROBOTS)]
    # Beam i of the device at angle_min' - i*inc with angle_min' = the upright last beam's angle.
    geometry = ScanGeometry(angle_min=spec.angle_min + (n - 1) * spec.angle_increment,
                            angle_increment=-spec.angle_increment, range_min=spec.range_min,
                            range_max=spec.range_max)
    for k, t in enumerate(run["times"]):
        for r, source in enumerate(own):
            source.add_odometry(t, *run["lidar"][k, r])
            assert source.add_scan(t, run["upright"][k, r][::-1], geometry=geometry)
    for r in range(ROBOTS):
        assert np.abs(points(own[r])[0] - points(reference[r])[0]).max() < FRAME_TOLERANCE


def test_inconsistent_metadata_other_frames_and_bad_quaternions_are_counted_and_skipped(run):
    source = MappingDataSource.for_task(run["task"], seed=0, frames=FrameSettings(lidar_frame="robot_0/lidar"))
    source.add_odometry(0.0, 1.0, 2.0, 0.0)
    ranges = run["upright"][0, 0]
    good = ScanGeometry(-math.pi, run["spec"].angle_increment, 0.1, 10.0)
    for bad in (ScanGeometry(-math.pi, 0.0, 0.1, 10.0), ScanGeometry(-math.pi, 0.1, 5.0, 2.0),
                ScanGeometry(float("nan"), 0.1, 0.1, 10.0)):
        assert not source.add_scan(0.0, ranges, geometry=bad, frame_id="robot_0/lidar")
    assert not source.add_scan(0.0, ranges, geometry=good, frame_id="robot_0/base_scan")
    assert source.add_scan(0.0, ranges, geometry=good, frame_id="robot_0/lidar")
    assert not source.add_pose(0.1, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0)  # zero quaternion
    stats = source.stats()
    assert (stats["scans_inconsistent"], stats["scans_wrong_frame"], stats["scans_used"]) == (3, 1, 1)
    assert stats["poses_rejected"] == 1

    # A quaternion scaled by 2 is the same rotation: 90 degrees stays 90 (it read 127 before).
    half = math.sqrt(0.5)
    assert math.degrees(yaw_from_quaternion(0.0, 0.0, 2 * half, 2 * half)) == pytest.approx(90.0)
    assert math.isnan(yaw_from_quaternion(0.0, 0.0, 0.0, 0.0))


def test_frame_parameters_come_from_the_model_with_their_ranges():
    """The robot node's frame.* parameters: generated from FrameSettings (names, defaults, allowed values)."""
    specs = {spec.name: spec for spec in model_parameters(FrameSettings, "frame")}
    assert set(specs) == {"frame.pose_source", "frame.initial_pose", "frame.lidar_mount", "frame.lidar_upside_down",
                          "frame.lidar_frame", "frame.pose_topic"}
    assert specs["frame.pose_source"].constraints == "one of: odometry, pose_topic, tf"
    assert specs["frame.initial_pose"].type_name == "double_array" and specs["frame.initial_pose"].default == [0.0] * 3
    with pytest.raises(ValueError, match="pose_source"):
        FrameSettings(pose_source="gps")
    with pytest.raises(ValueError, match="initial_pose"):
        FrameSettings(initial_pose=(0.0, float("nan"), 0.0))


def test_the_robot_node_reads_its_dotted_frame_parameters_into_its_settings():
    """``frame.*`` as the node declares them (dotted names) reach RobotSettings.frame; before, the
    node silently ignored them and mapped every scan as if odometry and lidar were in the map frame."""
    from dinno_core.config import ConfigError
    from dinno_ros.parameters import validate_robot

    values = {"robot_id": "robot_0", "team": ["robot_0"], "auth": "open", "task.name": "mapping",
              "algorithm.kind": "individual", "frame.initial_pose": [1.0, 2.0, 0.5],
              "frame.lidar_mount": [0.3, -0.15, 0.5], "frame.lidar_upside_down": True}
    settings, _ = validate_robot(values)
    assert settings.frame == FrameSettings(initial_pose=(1.0, 2.0, 0.5), lidar_mount=(0.3, -0.15, 0.5),
                                           lidar_upside_down=True)
    with pytest.raises(ConfigError, match=r"parameter 'frame\.initial_pose\.1'"):
        validate_robot({**values, "frame.initial_pose": [1.0, float("nan"), 0.0]})
