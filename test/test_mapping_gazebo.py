"""Floor plan → Gazebo SDF world and ros_gz_bridge YAML."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml

from dinno_core.tasks.mapping.floorplan import FloorPlan, load_floor_plan
from dinno_core.tasks.mapping.gazebo import bridge_config, merge_wall_boxes, world_sdf, write_gazebo_files
from dinno_core.tasks.mapping.plans import builtin_plan_yaml
from dinno_core.tasks.mapping.raycast import LidarSpec


def rasterize_walls(sdf_text: str, plan: FloorPlan) -> tuple[np.ndarray, float]:
    """Cells of ``plan`` whose centres fall inside a wall box of the SDF (in the walls model frame)."""
    root = ET.fromstring(sdf_text)
    walls = root.find("./world/model[@name='walls']")
    assert walls is not None and walls.findtext("static") == "true"
    pose = [float(v) for v in walls.findtext("pose").split()]
    assert pose[:2] == pytest.approx(plan.origin[:2]) and pose[5] == pytest.approx(plan.origin[2])
    covered = np.zeros(plan.occupied.shape, bool)
    heights = set()
    res = plan.resolution
    col_centres = (np.arange(plan.width) + 0.5) * res
    row_centres = (plan.height - np.arange(plan.height) - 0.5) * res
    for collision in walls.iter("collision"):
        x, y, z = (float(v) for v in collision.findtext("pose").split()[:3])
        sx, sy, sz = (float(v) for v in collision.findtext("geometry/box/size").split())
        heights.add(sz)
        assert z == pytest.approx(sz / 2)
        cols = np.abs(col_centres - x) < sx / 2
        rows = np.abs(row_centres - y) < sy / 2
        assert not (covered[np.ix_(rows, cols)]).any()  # boxes do not overlap
        covered[np.ix_(rows, cols)] = True
    return covered, heights.pop() if len(heights) == 1 else -1.0


def test_merge_wall_boxes_covers_exactly() -> None:
    rng = np.random.default_rng(0)
    occupied = rng.random((30, 40)) < 0.3
    boxes = merge_wall_boxes(occupied)
    rebuilt = np.zeros_like(occupied, dtype=int)
    for r0, r1, c0, c1 in boxes:
        rebuilt[r0:r1, c0:c1] += 1
    np.testing.assert_array_equal(rebuilt, occupied.astype(int))
    assert merge_wall_boxes(np.ones((5, 7), bool)) == [(0, 5, 0, 7)]


def test_office_world_walls_cover_the_occupied_cells() -> None:
    plan = load_floor_plan(builtin_plan_yaml("office"))
    text = world_sdf(plan, wall_height=2.7, robots=[("robot_0", (2.0, 10.0, 0.5))],
                     lidar=LidarSpec.full_circle(20, noise_std=0.01))
    covered, height = rasterize_walls(text, plan)
    np.testing.assert_array_equal(covered, plan.occupied)
    assert height == pytest.approx(2.7)
    root = ET.fromstring(text)
    assert root.tag == "sdf" and root.find("./world/model[@name='ground_plane']") is not None
    assert root.find("./world/light[@name='sun']") is not None
    assert len(root.findall("./world/model[@name='walls']/link/collision")) < 300  # merged, small SDF
    lidar = root.find("./world/model[@name='robot_0']/link/sensor")
    assert lidar.get("type") == "gpu_lidar" and lidar.findtext("topic") == "/model/robot_0/scan"
    assert lidar.findtext("lidar/scan/horizontal/samples") == "20"


def test_bridge_config_entries() -> None:
    names = [f"robot_{i}" for i in range(4)]
    entries = bridge_config(names)
    assert len(entries) == 3 * 4 + 1
    assert len(bridge_config(names, include_cmd_vel=False)) == 2 * 4 + 1
    keys = {"ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name", "direction"}
    assert all(set(e) == keys for e in entries)
    by_topic = {e["ros_topic_name"]: e for e in entries}
    assert by_topic["/clock"]["ros_type_name"] == "rosgraph_msgs/msg/Clock"
    assert by_topic["/robot_2/scan"]["ros_type_name"] == "sensor_msgs/msg/LaserScan"
    assert by_topic["/robot_2/scan"]["gz_type_name"] == "gz.msgs.LaserScan"
    assert by_topic["/robot_2/odom"]["ros_type_name"] == "nav_msgs/msg/Odometry"
    assert by_topic["/robot_2/odom"]["gz_type_name"] == "gz.msgs.Odometry"
    assert by_topic["/robot_2/cmd_vel"]["gz_type_name"] == "gz.msgs.Twist"
    assert by_topic["/robot_2/cmd_vel"]["direction"] == "ROS_TO_GZ"
    assert by_topic["/robot_2/scan"]["direction"] == "GZ_TO_ROS"


def test_cli_writes_world_and_bridge(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dinno_core.tasks.mapping.gazebo", str(builtin_plan_yaml("campus_wing")),
         "--robots", "9", "--out", str(tmp_path), "--no-cmd-vel"],
        capture_output=True, text=True, check=True,
    )
    assert "campus_wing.sdf" in result.stdout
    root = ET.parse(tmp_path / "campus_wing.sdf").getroot()
    robots = [m for m in root.iter("model") if m.get("name", "").startswith("robot_")]
    assert len(robots) == 9
    entries = yaml.safe_load((tmp_path / "campus_wing_bridge.yaml").read_text())
    assert len(entries) == 2 * 9 + 1


def test_user_map_without_paths_places_robots_in_free_space(tmp_path: Path) -> None:
    occupied = np.zeros((40, 60), bool)
    occupied[:2], occupied[-2:], occupied[:, :2], occupied[:, -2:] = True, True, True, True
    plan = FloorPlan(occupied, np.zeros_like(occupied), 0.1, (-1.0, 2.0, 0.0), name="box")
    from dinno_core.tasks.mapping.floorplan import save_floor_plan

    sdf_path, bridge_path = write_gazebo_files(save_floor_plan(plan, tmp_path / "box.yaml"), 3, tmp_path / "out")
    root = ET.parse(sdf_path).getroot()
    for model in root.iter("model"):
        if model.get("name", "").startswith("robot_"):
            x, y = (float(v) for v in model.findtext("pose").split()[:2])
            assert plan.clearance(np.array([x, y])) >= 0.5
    assert len(yaml.safe_load(bridge_path.read_text())) == 3 * 3 + 1


@pytest.mark.parametrize("gazebo, library, system, frame_tag, msgs", [
    ("harmonic", "gz-sim-", "gz::sim::systems::", "gz_frame_id", "gz.msgs."),
    ("fortress", "ignition-gazebo-", "ignition::gazebo::systems::", "ignition_frame_id", "ignition.msgs."),
])
def test_world_and_bridge_name_the_systems_of_the_gazebo_the_user_runs(tmp_path: Path, gazebo, library, system,
                                                                        frame_tag, msgs) -> None:
    """Harmonic (gz sim) loads gz-sim-* systems only, Fortress (ign gazebo) ignition-gazebo-* only."""
    sdf_path, bridge_path = write_gazebo_files("office", 2, tmp_path, gazebo=gazebo)
    root = ET.fromstring(sdf_path.read_text())
    plugins = root.findall(".//plugin")
    assert {p.get("name").rsplit("::", 1)[1] for p in plugins} == {
        "Physics", "UserCommands", "SceneBroadcaster", "Sensors", "VelocityControl", "OdometryPublisher"}
    for plugin in plugins:
        assert plugin.get("filename").startswith(library) and plugin.get("filename").endswith("-system")
        assert plugin.get("name").startswith(system)
    assert root.find(".//plugin[@name='" + system + "VelocityControl']").get("filename") == \
        library + "velocity-control-system"
    for sensor in root.iter("sensor"):
        assert sensor.findtext(frame_tag) and sensor.find("gz_frame_id" if gazebo == "fortress" else
                                                          "ignition_frame_id") is None
    entries = yaml.safe_load(bridge_path.read_text())
    assert all(e["gz_type_name"].startswith(msgs) for e in entries)
    with pytest.raises(ValueError, match="allowed: harmonic, fortress"):
        world_sdf(load_floor_plan(builtin_plan_yaml("office")), gazebo="garden")


def test_gazebo_flavour_and_preflight_check(tmp_path: Path) -> None:
    """The launch's checks (plain logic): which Gazebo a command runs; refusal in one line."""
    from dinno_ros.launch_support import LaunchRefused, check_gazebo, gazebo_flavour

    assert gazebo_flavour("gz sim") == "harmonic" and gazebo_flavour("/usr/bin/ign gazebo -v 4") == "fortress"
    with pytest.raises(LaunchRefused, match="expected 'gz sim'"):
        gazebo_flavour("gazebo")
    with pytest.raises(LaunchRefused) as refused:
        check_gazebo("ign gazebo", path=str(tmp_path))
    message = str(refused.value)
    assert "\n" not in message and "'ign' is not on PATH" in message and "ros_gz_bridge" in message
