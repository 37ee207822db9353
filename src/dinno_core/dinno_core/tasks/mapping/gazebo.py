"""Floor plan → Gazebo (gz sim) world SDF + ros_gz_bridge configuration for N lidar robots.

Occupied cells are extruded into static wall boxes; runs of cells are merged into rectangles
(horizontal runs per image row, stacked over consecutive rows with the same span), so the SDF
stays small. The world has a ground plane, a sun and the Gazebo systems a lidar needs
(Physics, UserCommands, SceneBroadcaster, Sensors with ogre2).

Two Gazebos, two sets of names (``gazebo=``): ``harmonic`` (Garden and newer, ``gz sim``):
``gz-sim-*-system`` / ``gz::sim::systems::*``, ``<gz_frame_id>``, bridge types ``gz.msgs.*``;
``fortress`` (Humble's Gazebo, ``ign gazebo``): ``ignition-gazebo-*-system`` /
``ignition::gazebo::systems::*``, ``<ignition_frame_id>``, bridge types ``ignition.msgs.*``.
Each Gazebo loads only its own names, so the world is written for the one the user runs.

Each robot ``<ns>`` (default ``robot_<i>``) is a simple cylinder driven kinematically by the
VelocityControl system (listening on ``/model/<ns>/cmd_vel``), with an OdometryPublisher
(``/model/<ns>/odometry``) and a ``gpu_lidar`` configured from a :class:`LidarSpec`
(``/model/<ns>/scan``). The bridge YAML (ros_gz_bridge ``config_file`` format) maps them to
``/<ns>/scan`` (sensor_msgs/LaserScan), ``/<ns>/odom`` (nav_msgs/Odometry) and
``/<ns>/cmd_vel`` (geometry_msgs/Twist), plus ``/clock``.

CLI::

    python -m dinno_core.tasks.mapping.gazebo PLAN.yaml --robots 7 --out DIR [--gazebo fortress]
        [--paths PATHS.yaml] [--wall-height 2.5] [--no-cmd-vel] [--beams 20 --range-max 10]

``PLAN.yaml`` may also be a built-in plan name (office, campus_wing); robots start at the
beginnings of their paths (built-in paths, or ``--paths``), else at spread-out free cells.
"""

from __future__ import annotations

import argparse
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from dinno_core.tasks.mapping.floorplan import FloorPlan, load_floor_plan
from dinno_core.tasks.mapping.paths import load_paths
from dinno_core.tasks.mapping.plans import BUILTIN_PLANS, builtin_paths_yaml, builtin_plan_yaml
from dinno_core.tasks.mapping.raycast import LidarSpec

__all__ = ["GAZEBO_NAMES", "bridge_config", "merge_wall_boxes", "robot_start_poses", "world_sdf",
           "write_gazebo_files"]

GAZEBO_NAMES = {
    "harmonic": {"library": "gz-sim-{}-system", "class": "gz::sim::systems::{}", "frame_tag": "gz_frame_id",
                 "msgs": "gz.msgs"},
    "fortress": {"library": "ignition-gazebo-{}-system", "class": "ignition::gazebo::systems::{}",
                 "frame_tag": "ignition_frame_id", "msgs": "ignition.msgs"},
}
"""System library/class names, the sensor frame tag and the message package of each Gazebo."""


def _names(gazebo: str) -> dict[str, str]:
    try:
        return GAZEBO_NAMES[gazebo]
    except KeyError:
        raise ValueError(f"gazebo {gazebo!r} is unknown; allowed: {', '.join(GAZEBO_NAMES)}") from None


def _system(parent: ET.Element, gazebo: str, library: str, system: str) -> ET.Element:
    names = _names(gazebo)
    return _sub(parent, "plugin", filename=names["library"].format(library), name=names["class"].format(system))


def merge_wall_boxes(occupied: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Cover the True cells of ``occupied [H, W]`` exactly with disjoint rectangles.

    Returns ``(row0, row1, col0, col1)`` half-open image-index rectangles.
    """
    occupied = np.asarray(occupied, dtype=bool)
    rows, cols = occupied.shape
    open_boxes: dict[tuple[int, int], int] = {}  # (col0, col1) -> first row
    boxes: list[tuple[int, int, int, int]] = []
    for r in range(rows + 1):
        if r < rows:
            edges = np.diff(np.concatenate([[0], occupied[r].astype(np.int8), [0]]))
            runs = set(zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist()))
        else:
            runs = set()
        for span in [s for s in open_boxes if s not in runs]:
            boxes.append((open_boxes.pop(span), r, span[0], span[1]))
        for span in runs:
            open_boxes.setdefault(span, r)
    return sorted(boxes)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text
    return element


def _fmt(*values: float) -> str:
    return " ".join(f"{v:.4f}".rstrip("0").rstrip(".") if v != 0 else "0" for v in values)


def _box_geometry(parent: ET.Element, size: tuple[float, float, float]) -> None:
    _sub(_sub(_sub(parent, "geometry"), "box"), "size", _fmt(*size))


def _robot_model(world: ET.Element, name: str, pose: Sequence[float], spec: LidarSpec, gazebo: str) -> None:
    model = _sub(world, "model", name=name)
    _sub(model, "pose", _fmt(pose[0], pose[1], 0.1, 0, 0, pose[2]))
    link = _sub(model, "link", name="base_link")
    inertial = _sub(link, "inertial")
    _sub(inertial, "mass", "5.0")
    inertia = _sub(inertial, "inertia")
    for tag, value in (("ixx", "0.07"), ("iyy", "0.07"), ("izz", "0.1"), ("ixy", "0"), ("ixz", "0"), ("iyz", "0")):
        _sub(inertia, tag, value)
    for kind in ("collision", "visual"):
        element = _sub(link, kind, name=kind)
        cylinder = _sub(_sub(element, "geometry"), "cylinder")
        _sub(cylinder, "radius", "0.2")
        _sub(cylinder, "length", "0.2")
    sensor = _sub(link, "sensor", name="lidar", type="gpu_lidar")
    _sub(sensor, "pose", _fmt(0, 0, 0.15, 0, 0, 0))
    _sub(sensor, "topic", f"/model/{name}/scan")
    _sub(sensor, _names(gazebo)["frame_tag"], f"{name}/lidar")
    _sub(sensor, "update_rate", _fmt(spec.rate_hz))
    _sub(sensor, "always_on", "true")
    _sub(sensor, "visualize", "false")
    lidar = _sub(sensor, "lidar")
    horizontal = _sub(_sub(lidar, "scan"), "horizontal")
    _sub(horizontal, "samples", str(spec.num_beams))
    _sub(horizontal, "resolution", "1")
    _sub(horizontal, "min_angle", f"{spec.angle_min:.6f}")
    _sub(horizontal, "max_angle", f"{spec.angle_max:.6f}")
    ranges = _sub(lidar, "range")
    _sub(ranges, "min", _fmt(spec.range_min))
    _sub(ranges, "max", _fmt(spec.range_max))
    _sub(ranges, "resolution", "0.01")
    if spec.noise_std > 0:
        noise = _sub(lidar, "noise")
        _sub(noise, "type", "gaussian")
        _sub(noise, "mean", "0")
        _sub(noise, "stddev", _fmt(spec.noise_std))
    _system(model, gazebo, "velocity-control", "VelocityControl")
    odometry = _system(model, gazebo, "odometry-publisher", "OdometryPublisher")
    _sub(odometry, "dimensions", "2")
    _sub(odometry, "odom_frame", f"{name}/odom")
    _sub(odometry, "robot_base_frame", f"{name}/base_link")


def world_sdf(
    plan: FloorPlan,
    *,
    wall_height: float = 2.5,
    robots: Sequence[tuple[str, Sequence[float]]] = (),
    lidar: LidarSpec | None = None,
    world_name: str | None = None,
    gazebo: str = "harmonic",
) -> str:
    """The SDF (1.9) text of a world with ``plan``'s walls and the given ``(name, (x, y, yaw))``
    robots, naming the systems of ``gazebo`` (``harmonic`` or ``fortress``)."""
    _names(gazebo)
    name = world_name or plan.name
    sdf = ET.Element("sdf", version="1.9")
    world = _sub(sdf, "world", name=name)
    physics = _sub(world, "physics", name="1ms", type="ignored")
    _sub(physics, "max_step_size", "0.001")
    _sub(physics, "real_time_factor", "1.0")
    _system(world, gazebo, "physics", "Physics")
    _system(world, gazebo, "user-commands", "UserCommands")
    _system(world, gazebo, "scene-broadcaster", "SceneBroadcaster")
    sensors = _system(world, gazebo, "sensors", "Sensors")
    _sub(sensors, "render_engine", "ogre2")

    sun = _sub(world, "light", type="directional", name="sun")
    _sub(sun, "cast_shadows", "true")
    _sub(sun, "pose", _fmt(0, 0, 10, 0, 0, 0))
    _sub(sun, "diffuse", "0.8 0.8 0.8 1")
    _sub(sun, "specular", "0.2 0.2 0.2 1")
    _sub(sun, "direction", "-0.5 0.1 -0.9")

    ground = _sub(world, "model", name="ground_plane")
    _sub(ground, "static", "true")
    ground_link = _sub(ground, "link", name="link")
    xmin, ymin, xmax, ymax = plan.known_bounds()
    size = 2 * max(abs(xmin), abs(xmax), abs(ymin), abs(ymax)) + 20
    for kind in ("collision", "visual"):
        element = _sub(ground_link, kind, name=kind)
        plane = _sub(_sub(element, "geometry"), "plane")
        _sub(plane, "normal", "0 0 1")
        _sub(plane, "size", _fmt(size, size))

    walls = _sub(world, "model", name="walls")
    _sub(walls, "static", "true")
    _sub(walls, "pose", _fmt(plan.origin[0], plan.origin[1], 0, 0, 0, plan.origin[2]))
    wall_link = _sub(walls, "link", name="link")
    res = plan.resolution
    for index, (r0, r1, c0, c1) in enumerate(merge_wall_boxes(plan.occupied)):
        # Map-frame box: x over columns, y up from the image's bottom row.
        cx, cy = (c0 + c1) / 2 * res, (plan.height - (r0 + r1) / 2) * res
        extent = ((c1 - c0) * res, (r1 - r0) * res, wall_height)
        for kind in ("collision", "visual"):
            element = _sub(wall_link, kind, name=f"wall_{index}_{kind}")
            _sub(element, "pose", _fmt(cx, cy, wall_height / 2, 0, 0, 0))
            _box_geometry(element, extent)
    spec = lidar or LidarSpec.full_circle(20)
    for robot_name, pose in robots:
        _robot_model(world, robot_name, pose, spec, gazebo)
    ET.indent(sdf)
    return '<?xml version="1.0"?>\n' + ET.tostring(sdf, encoding="unicode") + "\n"


def bridge_config(namespaces: Sequence[str], include_cmd_vel: bool = True,
                  gazebo: str = "harmonic") -> list[dict[str, str]]:
    """ros_gz_bridge entries: ``/clock`` and, per robot, scan, odom (and cmd_vel); Gazebo
    message types of ``gazebo`` (``gz.msgs`` for Harmonic, ``ignition.msgs`` for Fortress)."""
    msgs = _names(gazebo)["msgs"]
    entries = [
        {
            "ros_topic_name": "/clock",
            "gz_topic_name": "/clock",
            "ros_type_name": "rosgraph_msgs/msg/Clock",
            "gz_type_name": f"{msgs}.Clock",
            "direction": "GZ_TO_ROS",
        }
    ]
    for ns in namespaces:
        entries.append({
            "ros_topic_name": f"/{ns}/scan",
            "gz_topic_name": f"/model/{ns}/scan",
            "ros_type_name": "sensor_msgs/msg/LaserScan",
            "gz_type_name": f"{msgs}.LaserScan",
            "direction": "GZ_TO_ROS",
        })
        entries.append({
            "ros_topic_name": f"/{ns}/odom",
            "gz_topic_name": f"/model/{ns}/odometry",
            "ros_type_name": "nav_msgs/msg/Odometry",
            "gz_type_name": f"{msgs}.Odometry",
            "direction": "GZ_TO_ROS",
        })
        if include_cmd_vel:
            entries.append({
                "ros_topic_name": f"/{ns}/cmd_vel",
                "gz_topic_name": f"/model/{ns}/cmd_vel",
                "ros_type_name": "geometry_msgs/msg/Twist",
                "gz_type_name": f"{msgs}.Twist",
                "direction": "ROS_TO_GZ",
            })
    return entries


def robot_start_poses(plan: FloorPlan, count: int, paths_file: str | Path | None = None) -> np.ndarray:
    """Start poses ``[count, 3]``: the starts of the paths in ``paths_file`` (robots beyond the
    number of paths spread along them), else free cells ≥ 0.5 m from walls spread out by
    farthest-point selection."""
    if paths_file is not None:
        paths = load_paths(paths_file).paths
        sharing = math.ceil(count / len(paths))
        return np.stack([
            paths[i % len(paths)].pose_at((i // len(paths)) * paths[i % len(paths)].length / sharing)
            for i in range(count)
        ])
    rows, cols = np.nonzero(plan.free & (plan.distance_to_occupied() >= 0.5))
    if len(rows) < count:
        raise ValueError(f"plan {plan.name!r} has too little free space for {count} robots")
    candidates = plan.grid_to_world(rows, cols)
    chosen = [int(np.argmax(plan.distance_to_occupied()[rows, cols]))]
    nearest = np.linalg.norm(candidates - candidates[chosen[0]], axis=1)
    while len(chosen) < count:
        chosen.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, np.linalg.norm(candidates - candidates[chosen[-1]], axis=1))
    return np.concatenate([candidates[chosen], np.zeros((count, 1))], axis=1)


def write_gazebo_files(
    plan_yaml: str | Path,
    num_robots: int,
    out_dir: str | Path,
    *,
    paths_file: str | Path | None = None,
    wall_height: float = 2.5,
    lidar: LidarSpec | None = None,
    namespace_prefix: str = "robot_",
    include_cmd_vel: bool = True,
    gazebo: str = "harmonic",
) -> tuple[Path, Path]:
    """Write ``<plan>.sdf`` and ``<plan>_bridge.yaml`` into ``out_dir`` for ``gazebo``
    (``harmonic`` or ``fortress``); returns both paths.

    ``plan_yaml`` may be a built-in plan name, whose own path set then places the robots.
    """
    if str(plan_yaml) in BUILTIN_PLANS:
        if paths_file is None:
            paths_file = builtin_paths_yaml(str(plan_yaml))
        plan_yaml = builtin_plan_yaml(str(plan_yaml))
    plan = load_floor_plan(plan_yaml)
    names = [f"{namespace_prefix}{i}" for i in range(num_robots)]
    poses = robot_start_poses(plan, num_robots, paths_file) if num_robots else np.zeros((0, 3))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sdf_path = out_dir / f"{plan.name}.sdf"
    sdf_path.write_text(world_sdf(plan, wall_height=wall_height, robots=list(zip(names, poses.tolist())), lidar=lidar,
                                  gazebo=gazebo))
    bridge_path = out_dir / f"{plan.name}_bridge.yaml"
    bridge_path.write_text(yaml.safe_dump(bridge_config(names, include_cmd_vel, gazebo), sort_keys=False))
    return sdf_path, bridge_path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dinno_core.tasks.mapping.gazebo",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("plan", help="map_server YAML, or a built-in plan name")
    parser.add_argument("--robots", type=int, default=7, help="number of lidar robots")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--paths", default=None, help="robot path YAML placing the robots")
    parser.add_argument("--wall-height", type=float, default=2.5)
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--range-max", type=float, default=10.0)
    parser.add_argument("--noise-std", type=float, default=0.01)
    parser.add_argument("--rate-hz", type=float, default=10.0)
    parser.add_argument("--prefix", default="robot_", help="robot namespace prefix")
    parser.add_argument("--no-cmd-vel", action="store_true", help="do not bridge cmd_vel")
    parser.add_argument("--gazebo", choices=sorted(GAZEBO_NAMES), default="harmonic",
                        help="the Gazebo that will load the world: harmonic (gz sim) or fortress (ign gazebo)")
    args = parser.parse_args(argv)
    spec = LidarSpec.full_circle(args.beams, range_max=args.range_max, noise_std=args.noise_std, rate_hz=args.rate_hz)
    for path in write_gazebo_files(
        args.plan, args.robots, args.out, paths_file=args.paths, wall_height=args.wall_height, lidar=spec,
        namespace_prefix=args.prefix, include_cmd_vel=not args.no_cmd_vel, gazebo=args.gazebo,
    ):
        print(path)


if __name__ == "__main__":
    main()
