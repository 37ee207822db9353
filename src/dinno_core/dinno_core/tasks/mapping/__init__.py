"""Multi-robot implicit mapping: floor plans, lidar simulation, scan → points, the task.

ROS-agnostic: a ROS lidar-simulator node uses :func:`cast_rays` with a :class:`LidarSpec`;
a ROS robot node turns each ``LaserScan`` + pose into points with :func:`scan_to_points`
(catching :class:`MalformedScan`) and keeps them in a :class:`SlidingWindow`.
"""

from dinno_core.tasks.mapping.floorplan import FloorPlan, FloorPlanError, load_floor_plan, save_floor_plan
from dinno_core.tasks.mapping.model import FourierMLP
from dinno_core.tasks.mapping.paths import PathSet, RobotPath, load_paths, route_waypoints, save_paths
from dinno_core.tasks.mapping.plans import BUILTIN_PLANS, builtin_paths_yaml, builtin_plan_yaml
from dinno_core.tasks.mapping.raycast import LidarSpec, cast_rays
from dinno_core.tasks.mapping.scan_points import (
    BeamSampling,
    MalformedScan,
    PooledWindows,
    SlidingWindow,
    scan_to_points,
    scans_to_points,
)
from dinno_core.tasks.mapping.task import LidarConfig, MappingTask, MappingTaskConfig, build_task

__all__ = [
    "BUILTIN_PLANS",
    "BeamSampling",
    "FloorPlan",
    "FloorPlanError",
    "FourierMLP",
    "LidarConfig",
    "LidarSpec",
    "MalformedScan",
    "MappingTask",
    "MappingTaskConfig",
    "PathSet",
    "PooledWindows",
    "RobotPath",
    "SlidingWindow",
    "build_task",
    "builtin_paths_yaml",
    "builtin_plan_yaml",
    "cast_rays",
    "load_floor_plan",
    "load_paths",
    "route_waypoints",
    "save_floor_plan",
    "save_paths",
    "scan_to_points",
    "scans_to_points",
]
