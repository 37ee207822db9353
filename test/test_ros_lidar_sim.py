"""The embedded lidar simulator and a mapping robot's sensor/map I/O, over real ROS 2 processes.

* the simulator node as a process: LaserScan + Odometry per robot, checked against the core's
  ray cast at the published pose (noise 0), the core's paths and the configured speed; frames,
  beam counts, REP 117 infinities, clean SIGTERM exit with its scan trace; invalid parameters
  exit with status 2 naming each one;
* the simulator as real robots look: odometry starting at zero at each robot's start pose
  (``odometry_origin: start``) and an off-centre, rotated, upside-down lidar: the scans are the
  core's ray cast from start ⊕ odometry ⊕ mount, reversed, with the mirrored angle limits;
* a running mapping robot process fed malformed scans (wrong beam count, no odometry at the
  stamp, all-NaN and all -inf ranges) between valid ones: they are skipped and counted in its
  results JSON, add no points to its window, and the robot keeps training; it publishes its map
  on dinno/map (OccupancyGrid) and dinno/map_image (Image);
* map_output conversions against the core's render_map (in-process, no ROS graph).
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("dinno_core.tasks.mapping.task")

from dinno_core.tasks.mapping.raycast import cast_rays  # noqa: E402
from dinno_core.tasks.mapping.task import LidarConfig, MappingTaskConfig, build_task  # noqa: E402
from dinno_ros.data_sources import compose, yaw_from_quaternion  # noqa: E402


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _key(msg) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def _spin_until(executor, condition, timeout: float, process: subprocess.Popen | None = None, log=None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=0.05)
        if process is not None and process.poll() is not None:
            text = log.read_text() if log is not None else ""
            pytest.fail(f"process exited early with {process.returncode}:\n{text[-3000:]}")
    return condition()


def _stop(process: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"process did not exit within {timeout} s of {signal.Signals(sig).name}")


def _start_simulator(ros_context, ros_env, team, beams, speed, trace_path, log, *extra):
    """The simulator as a process (seed 3, noise 0, 10 Hz, ``extra`` ``name:=value`` parameters) and
    a node in this process recording every robot's scans and odometry: ``(process, node, executor,
    scans, odoms)``."""
    from nav_msgs.msg import Odometry
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import LaserScan

    import rclpy

    parameters = [f"team:=[{', '.join(team)}]", "seed:=3", f"task.lidar.num_beams:={beams}", "task.lidar.noise_std:=0.0",
                  f"task.speed:={speed}", "task.lidar.rate_hz:=10.0", *extra, f"trace_path:={trace_path}",
                  "wait_for_subscribers:=60.0"]
    command = [sys.executable, "-m", "dinno_ros.lidar_sim_node", "--ros-args",
               *[arg for parameter in parameters for arg in ("-p", parameter)]]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=ros_env, stdout=out, stderr=subprocess.STDOUT)
    node = rclpy.create_node("sim_checker", context=ros_context)
    scans: dict[str, list] = {r: [] for r in team}
    odoms: dict[str, list] = {r: [] for r in team}
    for robot in team:
        node.create_subscription(LaserScan, f"/{robot}/scan", scans[robot].append, qos_profile_sensor_data)
        node.create_subscription(Odometry, f"/{robot}/odom", odoms[robot].append, 50)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    return process, node, executor, scans, odoms


# ------------------------------------------------------------------------------ simulator


def test_simulator_publishes_scans_and_odometry_that_match_the_core(ros_context, ros_env, tmp_path):
    team, beams, speed = ["robot_0", "robot_1"], 36, 0.8
    trace_path, log = tmp_path / "trace.npz", tmp_path / "sim.log"
    process, node, executor, scans, odoms = _start_simulator(ros_context, ros_env, team, beams, speed, trace_path, log)
    try:
        enough = _spin_until(executor, lambda: len(scans["robot_0"]) >= 8 and len(scans["robot_1"]) >= 3
                             and len(odoms["robot_0"]) >= 20, 90.0, process, log)
        assert enough, f"too few messages: {[len(v) for v in scans.values()]} scans, {log.read_text()[-2000:]}"
    finally:
        code = _stop(process, signal.SIGTERM)
        executor.shutdown()
        node.destroy_node()
    assert code == 0, log.read_text()

    config = MappingTaskConfig(lidar=LidarConfig(num_beams=beams, noise_std=0.0, rate_hz=10.0), speed=speed,
                               validation_scans=1)
    task = build_task(config, len(team), 3)
    spec = task.spec
    for robot, index in (("robot_0", 0), ("robot_1", 1)):
        by_stamp = {_key(m): m for m in odoms[robot]}
        matched = 0
        for scan in scans[robot]:
            assert scan.header.frame_id == f"{robot}/base_scan"
            assert len(scan.ranges) == beams
            assert scan.angle_min == pytest.approx(spec.angle_min, rel=1e-6)
            assert scan.angle_max == pytest.approx(spec.angle_max, rel=1e-6)
            assert scan.angle_increment == pytest.approx(2 * math.pi / beams, rel=1e-6)
            assert (scan.range_min, scan.range_max) == pytest.approx((spec.range_min, spec.range_max))
            assert scan.scan_time == pytest.approx(0.1) and scan.time_increment == 0.0
            odom = by_stamp.get(_key(scan))  # every scan tick also publishes the pose at that stamp
            if odom is None:
                continue
            matched += 1
            p, q = odom.pose.pose.position, odom.pose.pose.orientation
            pose = np.array([p.x, p.y, yaw_from_quaternion(q.x, q.y, q.z, q.w)])
            expected = cast_rays(task.plan, pose, spec)  # noise-free: exact
            ranges = np.frombuffer(scan.ranges, dtype=np.float32).astype(float)
            assert np.array_equal(np.isposinf(ranges), np.isposinf(expected))
            assert np.array_equal(np.isneginf(ranges), np.isneginf(expected))
            finite = np.isfinite(expected)
            assert finite.sum() > beams // 2  # an office: most beams hit a wall within 10 m
            np.testing.assert_allclose(ranges[finite], expected[finite], atol=1e-4)
        assert matched >= (3 if index == 0 else 1), f"{robot}: no odometry with a scan's stamp"

        # Odometry: on the robot's path (the core's path index = team index), heading along it,
        # moving at the configured speed, frames as documented.
        path = task.paths[index]
        samples = path.sample(0.01)
        msgs = sorted(odoms[robot], key=_stamp)
        for msg in msgs:
            assert (msg.header.frame_id, msg.child_frame_id) == (f"{robot}/odom", f"{robot}/base_link")
            assert msg.twist.twist.linear.x == pytest.approx(speed)
            xy = np.array([msg.pose.pose.position.x, msg.pose.pose.position.y])
            close = np.flatnonzero(np.linalg.norm(samples - xy, axis=1) < 0.02)  # on the path
            assert len(close) > 0
            q = msg.pose.pose.orientation
            yaw = yaw_from_quaternion(q.x, q.y, q.z, q.w)
            # heading along the path (where it runs through a corridor both ways, along one of them)
            tangents = np.array([path.pose_at(k * 0.01)[2] for k in close])
            assert np.min(np.abs(np.remainder(yaw - tangents + math.pi, 2 * math.pi) - math.pi)) < 0.1
        unique = [m for i, m in enumerate(msgs) if i == 0 or _stamp(m) > _stamp(msgs[i - 1]) + 1e-6]
        positions = np.array([[m.pose.pose.position.x, m.pose.pose.position.y] for m in unique])
        travelled = np.linalg.norm(np.diff(positions, axis=0), axis=1).sum()
        assert travelled / (_stamp(unique[-1]) - _stamp(unique[0])) == pytest.approx(speed, rel=0.05)

    # The trace written on SIGTERM holds exactly what was published.
    with np.load(trace_path) as trace:
        stamps, poses, ranges = trace["stamps"], trace["poses"], trace["ranges"]
        assert list(trace["team"]) == team
    assert len(stamps) >= 8 and poses.shape == (len(stamps), 2, 3) and ranges.shape == (len(stamps), 2, beams)
    assert np.all(np.diff(stamps) > 0)
    scan = scans["robot_0"][-1]
    row = int(np.argmin(np.abs(stamps - _stamp(scan))))
    assert abs(stamps[row] - _stamp(scan)) < 1e-6
    np.testing.assert_array_equal(ranges[row, 0], np.frombuffer(scan.ranges, dtype=np.float32))
    assert "published" in log.read_text()


MOUNT = (0.3, -0.15, 0.5)
"""The lidar on the base: x, y (m), yaw (rad); upside down in the test below."""


def test_simulator_odometry_starts_at_zero_and_scans_come_from_an_upside_down_off_centre_lidar(
        ros_context, ros_env, tmp_path):
    team, beams, speed = ["robot_0", "robot_1"], 36, 0.8
    trace_path, log = tmp_path / "trace.npz", tmp_path / "sim.log"
    process, node, executor, scans, odoms = _start_simulator(
        ros_context, ros_env, team, beams, speed, trace_path, log,
        "odometry_origin:=start", f"lidar_mount:=[{MOUNT[0]}, {MOUNT[1]}, {MOUNT[2]}]", "lidar_upside_down:=true")
    try:
        enough = _spin_until(executor, lambda: all(len(scans[r]) >= 6 and len(odoms[r]) >= 15 for r in team),
                             90.0, process, log)
        assert enough, f"too few messages: {[len(v) for v in scans.values()]} scans, {log.read_text()[-2000:]}"
    finally:
        code = _stop(process, signal.SIGTERM)
        executor.shutdown()
        node.destroy_node()
    assert code == 0, log.read_text()

    with np.load(trace_path) as trace:
        wall0 = float(trace["wall0"])  # the stamp at which the robots started moving
    config = MappingTaskConfig(lidar=LidarConfig(num_beams=beams, noise_std=0.0, rate_hz=10.0), speed=speed,
                               validation_scans=1)
    task = build_task(config, len(team), 3)
    spec = task.spec
    for index, robot in enumerate(team):
        # The robot's odometry frame starts where its path starts: its start pose in the world.
        start = task.paths[index].pose_at(task.path_offsets[index])
        samples = task.paths[index].sample(0.01)
        far = 0.0
        for msg in odoms[robot]:
            p, q = msg.pose.pose.position, msg.pose.pose.orientation
            # Zero at the start: never farther from the odometry origin than the robot drove.
            assert math.hypot(p.x, p.y) <= speed * (_stamp(msg) - wall0) + 1e-3
            world = compose(start, (p.x, p.y, yaw_from_quaternion(q.x, q.y, q.z, q.w)))
            # start ⊕ odometry: on the path, heading along it (a corridor the path runs through both
            # ways has two candidate points at the same place: one of them must match)
            close = np.flatnonzero(np.linalg.norm(samples - world[:2], axis=1) < 0.02)
            assert len(close) > 0
            headings = np.array([task.paths[index].pose_at(k * 0.01)[2] for k in close])
            assert np.min(np.abs(np.remainder(world[2] - headings + math.pi, 2 * math.pi) - math.pi)) < 0.1
            far = max(far, math.hypot(p.x - world[0], p.y - world[1]))
        assert far > 1.0  # the odometry frame is not the world frame

        by_stamp = {_key(m): m for m in odoms[robot]}
        matched = 0
        for scan in scans[robot]:
            # Upside down: the angles mirrored, the beams reversed.
            assert scan.angle_min == pytest.approx(-spec.angle_max, rel=1e-6)
            assert scan.angle_max == pytest.approx(-spec.angle_min, rel=1e-6)
            assert scan.angle_increment == pytest.approx(spec.angle_increment, rel=1e-6)
            odom = by_stamp.get(_key(scan))
            if odom is None:
                continue
            matched += 1
            p, q = odom.pose.pose.position, odom.pose.pose.orientation
            lidar = compose(compose(start, (p.x, p.y, yaw_from_quaternion(q.x, q.y, q.z, q.w))), MOUNT)
            expected = cast_rays(task.plan, np.array(lidar), spec)[::-1]
            ranges = np.frombuffer(scan.ranges, dtype=np.float32).astype(float)
            finite = np.isfinite(expected)
            assert np.array_equal(np.isfinite(ranges), finite) and finite.sum() > beams // 2
            np.testing.assert_allclose(ranges[finite], expected[finite], atol=1e-3)
            # Not what the lidar at the base origin, upright, would report.
            base = cast_rays(task.plan, np.array(compose(start, (p.x, p.y, yaw_from_quaternion(
                q.x, q.y, q.z, q.w)))), spec)
            both = finite & np.isfinite(base)
            assert np.abs(ranges[both] - base[both]).max() > 0.5
        assert matched >= 2, f"{robot}: no odometry with a scan's stamp"

    # The trace: the bases' world poses, the lidars' (base ⊕ mount) and the upright ranges.
    with np.load(trace_path) as trace:
        stamps, poses, sensors, ranges = trace["stamps"], trace["poses"], trace["scan_poses"], trace["ranges"]
        origins = trace["odometry_origins"]
    assert poses.shape == sensors.shape == (len(stamps), 2, 3) and ranges.shape == (len(stamps), 2, beams)
    for index in range(len(team)):
        np.testing.assert_allclose(origins[index], task.paths[index].pose_at(task.path_offsets[index]))
        for k in (0, len(stamps) - 1):
            np.testing.assert_allclose(sensors[k, index], compose(tuple(poses[k, index]), MOUNT), atol=1e-9)
    scan = scans["robot_1"][-1]
    row = int(np.argmin(np.abs(stamps - _stamp(scan))))
    assert abs(stamps[row] - _stamp(scan)) < 1e-6
    np.testing.assert_array_equal(ranges[row, 1][::-1], np.frombuffer(scan.ranges, dtype=np.float32))


def test_simulator_rejects_invalid_parameters_naming_each(ros_env):
    command = [sys.executable, "-m", "dinno_ros.lidar_sim_node", "--ros-args", "-p", "team:=[a, a]",
               "-p", "task.lidar.num_beams:=0", "-p", "odom_rate_hz:=-1.0", "-p", "bogus:=1",
               "-p", "scan_topic:=/scan", "-p", "odometry_origin:=gps", "-p", "lidar_mount:=[0.1, 0.2]",
               "-p", "lidar_upside_down:=maybe"]
    done = subprocess.run(command, env=ros_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    for text in ("'team'", "'task.lidar.num_beams'", "'odom_rate_hz'", "'bogus' is unknown", "'scan_topic'",
                 "'odometry_origin'", "'lidar_mount'", "'lidar_upside_down'"):
        assert text in done.stderr, done.stderr


# ------------------------------------------------------------------------------ robot side


def test_mapping_robot_skips_and_counts_malformed_scans_keeps_training_and_publishes_its_map(
        ros_context, ros_env, tmp_path):
    from nav_msgs.msg import OccupancyGrid, Odometry
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, LaserScan

    import rclpy
    from dinno_msgs.msg import RobotStatus

    results, log = tmp_path / "robot_0.json", tmp_path / "robot_0.log"
    command = [sys.executable, "-m", "dinno_ros.robot_node", "--ros-args", "-r", "__ns:=/robot_0",
               "-p", "robot_id:=robot_0", "-p", "team:=[robot_0]", "-p", "algorithm.kind:=individual",
               "-p", "algorithm.batch_size:=32", "-p", "task.name:=mapping", "-p", "task.validation_scans:=5",
               "-p", f"results_path:={results}", "-p", "map_publish_every:=5"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=ros_env, stdout=out, stderr=subprocess.STDOUT)
    node = rclpy.create_node("feeder", context=ros_context)
    odom_pub = node.create_publisher(Odometry, "/robot_0/odom", 20)
    scan_pub = node.create_publisher(LaserScan, "/robot_0/scan", 10)
    statuses: list = []
    maps: list = []
    images: list = []
    latched = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                         history=HistoryPolicy.KEEP_LAST, depth=1)
    node.create_subscription(RobotStatus, "/robot_0/dinno/status", statuses.append, 100)
    node.create_subscription(OccupancyGrid, "/robot_0/dinno/map", maps.append, latched)
    node.create_subscription(Image, "/robot_0/dinno/map_image", images.append, latched)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    beams = LidarConfig().num_beams
    sent = {"good": 0, "wrong_length": 0, "no_pose": 0, "nan": 0, "neg_inf": 0}

    def publish_odometry(stamp) -> None:
        odom = Odometry()
        odom.header.stamp = stamp
        odom.pose.pose.position.x, odom.pose.pose.position.y = 2.0, 3.0
        odom.pose.pose.orientation.w = 1.0
        odom_pub.publish(odom)

    def stream_odometry(seconds: float) -> None:
        """Odometry at ~50 Hz while spinning, as a driver streams it between scans, so a scan
        that overtakes its own odometry message still has a pose within the robot's 0.1 s."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            publish_odometry(node.get_clock().now().to_msg())
            executor.spin_once(timeout_sec=0.02)

    def publish(kind: str) -> None:
        now = node.get_clock().now()
        stamp = now.to_msg()
        if kind != "no_pose":
            publish_odometry(stamp)
        scan = LaserScan()  # what a driver fills in: the robot maps each scan with its own metadata
        scan.header.stamp = stamp
        lidar = LidarConfig().to_spec()
        scan.angle_min, scan.angle_increment = float(lidar.angle_min), float(lidar.angle_increment)
        scan.range_min, scan.range_max = float(lidar.range_min), float(lidar.range_max)
        if kind == "no_pose":
            scan.header.stamp.sec -= 100  # long before any odometry: no pose at its stamp
        scan.ranges = {
            "good": [1.5] * (beams // 2) + [math.inf] * (beams - beams // 2),  # hits and no-returns
            "wrong_length": [1.5] * (beams - 1),
            "no_pose": [1.5] * beams,
            "nan": [math.nan] * beams,
            "neg_inf": [-math.inf] * beams,  # REP 117: closer than range_min, no information
        }[kind]
        scan_pub.publish(scan)
        sent[kind] += 1
        stream_odometry(0.08)  # paced: the robot's sensor-data reader keeps only 5 scans

    try:
        connected = _spin_until(executor, lambda: scan_pub.get_subscription_count() > 0
                                and odom_pub.get_subscription_count() > 0, 90.0, process, log)
        assert connected, "the robot never subscribed to scan/odom"
        stream_odometry(0.5)
        for _ in range(10):
            publish("good")
        assert _spin_until(executor, lambda: len(statuses) > 0, 90.0, process, log), "the robot never trained"
        for _ in range(8):
            for kind in ("wrong_length", "no_pose", "nan", "neg_inf", "good"):
                publish(kind)
        after_injection = statuses[-1].round
        assert _spin_until(executor, lambda: statuses[-1].round >= after_injection + 20 and maps and images,
                           60.0, process, log), "the robot stopped training or publishing its map"
    finally:
        code = _stop(process)
        executor.shutdown()
        node.destroy_node()
    assert code == 0, log.read_text()[-3000:]

    data = json.loads(results.read_text())["data"]
    points_per_scan = beams * MappingTaskConfig().samples_per_beam
    assert 4 <= data["scans_malformed"] <= sent["wrong_length"]
    # Every accepted good scan adds exactly points_per_scan points; NaN / -inf scans are skipped
    # and counted without taking a window slot.
    good_received = data["window_points"] // points_per_scan
    assert data["window_points"] % points_per_scan == 0 and 10 <= good_received <= sent["good"]
    # A scan without a pose is one sent 100 s in the past; a good scan read before the odometry
    # around its stamp waits for it (it used to be counted here: 9 for 8 sent in clean-clone CI).
    assert 4 <= data["scans_without_pose"] <= sent["no_pose"], data
    assert data["scans_waiting_for_pose"] == 0, data
    assert data["scans_used"] == data["window_scans"] == good_received, data
    assert 8 <= data["scans_empty"] <= sent["nan"] + sent["neg_inf"], data
    assert "skipped a lidar scan" in log.read_text()

    # The map: the task's evaluation grid, map_server conventions; the image shows the same.
    task = build_task(MappingTaskConfig(validation_scans=1), 1, 0)
    grid, msg, image = task.grid, maps[-1], images[-1]
    assert (msg.info.width, msg.info.height) == (grid.cols, grid.rows) and msg.header.frame_id == "map"
    assert msg.info.resolution == pytest.approx(grid.resolution)
    assert (msg.info.origin.position.x, msg.info.origin.position.y) == pytest.approx((grid.xmin, grid.ymin))
    values = np.frombuffer(msg.data, dtype=np.int8)
    assert values.size == grid.rows * grid.cols and values.min() >= 0 and values.max() <= 100
    assert (image.encoding, image.width, image.height, image.step) == ("mono8", grid.cols, grid.rows, grid.cols)
    pixels = np.frombuffer(image.data, dtype=np.uint8).reshape(grid.rows, grid.cols)
    occupancy = values.reshape(grid.rows, grid.cols)[::-1] / 100.0  # grid rows start at the bottom
    assert np.abs((255 - pixels) / 255.0 - occupancy).max() <= 0.01 + 1e-9


# ------------------------------------------------------------------------------ map output


def test_map_messages_follow_map_server_conventions_and_match_the_core_render():
    import torch

    from dinno_core.params import FlatModel
    from dinno_ros.map_output import grid_probability, image_pixels, map_image, occupancy_grid

    task = build_task(MappingTaskConfig(validation_scans=1, validation_grid_resolution=0.5), 2, 0)
    torch.manual_seed(1)
    flat = FlatModel(task.build_model(), task.loss)
    theta = flat.initial_weights() + 0.3 * torch.randn(flat.spec.numel)
    # The core's render_map is the trained network itself (the robot node publishes it), and
    # building its model does not move the caller's RNG.
    state = torch.random.get_rng_state()
    probability = task.render_map(theta)
    assert torch.equal(state, torch.random.get_rng_state())
    logits = flat.forward(theta[None], torch.from_numpy(task.grid.centres.reshape(-1, 2)).float())[0]
    np.testing.assert_allclose(probability, torch.sigmoid(logits).reshape(probability.shape).numpy(), atol=1e-5)

    # Orientation: the top row of the picture (max y) is the LAST row of OccupancyGrid.data.
    picture = np.zeros((3, 4))
    picture[0] = 1.0
    picture[1, 2] = np.nan
    unknown = np.zeros((3, 4), dtype=bool)
    unknown[2, 0] = True
    msg = occupancy_grid(picture, 0.5, (-1.0, 2.0), "map", unknown=unknown)
    data = np.frombuffer(msg.data, dtype=np.int8).reshape(3, 4)
    assert data[2].tolist() == [100] * 4 and data[0].tolist() == [-1, 0, 0, 0] and data[1, 2] == -1
    assert (msg.info.width, msg.info.height, msg.info.resolution) == (4, 3, 0.5)
    assert (msg.info.origin.position.x, msg.info.origin.position.y, msg.info.origin.orientation.w) == (-1.0, 2.0, 1.0)
    restored = grid_probability(msg)
    assert np.array_equal(np.isnan(restored), np.isnan(picture) | unknown)
    image = map_image(picture, "map")
    pixels = np.frombuffer(image.data, dtype=np.uint8).reshape(3, 4)
    assert pixels[0].tolist() == [0] * 4 and pixels[2, 1] == 255 and pixels[1, 2] == 205  # black = occupied
    assert np.array_equal(pixels, image_pixels(picture)) and image.encoding == "mono8" and image.step == 4
