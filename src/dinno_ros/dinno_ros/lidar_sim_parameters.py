"""The embedded lidar simulator's own parameters (see :mod:`dinno_ros.lidar_sim_node`): the
table it declares, its constants and the checks of its values. Plain Python."""

from __future__ import annotations

import math
from typing import Any

from dinno_ros.ros_names import check_team

NODE_NAME = "lidar_sim"
MOTIONS = ("scripted", "cmd_vel")
ODOMETRY_ORIGINS = ("world", "start")
INTEGRATION_STEP = 0.02
"""Longest unicycle integration step (s) of the cmd_vel motion."""

# name, default, type, description, constraints. Types: string, integer, double, bool, string_array,
# double_array.
SIM_PARAMETERS: list[tuple[str, Any, str, str, str]] = [
    ("team", None, "string_array", "Robot ids, in team order: robot i drives path i mod P of the task's paths "
     "(the order the robot nodes use).", "required, unique"),
    ("seed", 0, "integer", "Experiment seed: range noise (and the task's path placement).", ">= 0"),
    ("odom_rate_hz", 20.0, "double", "Odometry rate (besides the odometry sent with every scan).", "> 0"),
    ("clock_rate_hz", 50.0, "double", "Rate of /clock when use_sim_time is true.", "> 0"),
    ("wait_for_subscribers", 30.0, "double", "Seconds to wait for every robot's scan subscriber before "
     "the robots start moving (nothing is published before).", ">= 0; 0 = start at once"),
    ("publish_tf", True, "bool", "Publish /tf and /tf_static (only possible when tf2_msgs is importable).", ""),
    ("scan_topic", "/{robot}/scan", "string", "Scan topic pattern; {robot} is the robot id.", "must contain {robot}"),
    ("odom_topic", "/{robot}/odom", "string", "Odometry topic pattern.", "must contain {robot}"),
    ("scan_frame", "{robot}/base_scan", "string", "LaserScan frame_id pattern.", "a frame id"),
    ("odom_frame", "{robot}/odom", "string", "Odometry frame_id pattern (its origin: see odometry_origin).",
     "a frame id"),
    ("odometry_origin", "world", "string", "Where each robot's odometry frame starts: world (the odom frame IS "
     "the plan's world frame, shared by all robots) or start (each robot's odometry starts at zero at its start "
     "pose, as a real robot's does; /tf_static world_frame -> odom carries the start pose).",
     "one of: " + ", ".join(ODOMETRY_ORIGINS)),
    ("lidar_mount", [0.0, 0.0, 0.0], "double_array", "x, y (m), yaw (rad) of the lidar in the robot's base frame "
     "(every robot): scans are cast from there; /tf_static base_link -> base_scan carries it.",
     "3 finite numbers"),
    ("lidar_upside_down", False, "bool", "The lidar is mounted upside down (roll = pi): its scans run the other "
     "way (beam j = the upright beam n-1-j, angle_min = -upright angle_max, angle_max = -upright angle_min).", ""),
    ("base_frame", "{robot}/base_link", "string", "Odometry child_frame_id pattern.", "a frame id"),
    ("world_frame", "map", "string", "The plan's world frame (parent of every odom frame in /tf_static).",
     "a frame id"),
    ("trace_path", "", "string", "Write every scan tick (stamp, base and lidar world poses, upright ranges) to "
     "this .npz on exit.",
     "a writable path or empty"),
    ("motion", "scripted", "string", "How robots move: scripted (along their paths at task.speed) or cmd_vel "
     "(kinematic unicycles driven by their cmd_vel topic).", "one of: " + ", ".join(MOTIONS)),
    ("cmd_vel_topic", "/{robot}/cmd_vel", "string", "cmd_vel topic pattern (motion cmd_vel).", "must contain {robot}"),
    ("cmd_vel_timeout", 0.5, "double", "A robot whose last cmd_vel is older than this (s) stops (motion cmd_vel).",
     "> 0"),
    ("max_speed", 1.5, "double", "Largest |linear.x| a robot executes (m/s, motion cmd_vel).", "> 0"),
    ("max_turn_rate", 3.0, "double", "Largest |angular.z| a robot executes (rad/s, motion cmd_vel).", "> 0"),
    ("robot_radius", 0.15, "double", "A robot stops where its centre would come closer to a wall (m, motion "
     "cmd_vel).", ">= 0"),
]
TRACE_MAX_TICKS = 200_000
"""Scan ticks kept for trace_path (older ones are dropped beyond this)."""


def option_problems(p: dict[str, Any]) -> list[str]:
    """One line per invalid value of the simulator's own parameters (``p``: name → value)."""
    errors: list[str] = []
    error = errors.append
    try:
        check_team(p["team"])
    except ValueError as problem:
        error(f"parameter 'team': {problem}")
    if p["seed"] < 0:
        error(f"parameter 'seed': must be >= 0, got {p['seed']}")
    for name in ("odom_rate_hz", "clock_rate_hz"):
        if not (p[name] > 0 and math.isfinite(p[name])):
            error(f"parameter '{name}': must be > 0, got {p[name]}")
    if not (p["wait_for_subscribers"] >= 0 and math.isfinite(p["wait_for_subscribers"])):
        error(f"parameter 'wait_for_subscribers': must be >= 0, got {p['wait_for_subscribers']}")
    for name in ("scan_topic", "odom_topic"):
        if "{robot}" not in p[name]:
            error(f"parameter '{name}': must contain {{robot}}, got {p[name]!r}")
    for name in ("scan_frame", "odom_frame", "base_frame", "world_frame"):
        try:
            p[name].format(robot="r")
        except (KeyError, IndexError, ValueError):
            error(f"parameter '{name}': only {{robot}} may be substituted, got {p[name]!r}")
    if p["motion"] not in MOTIONS:
        error(f"parameter 'motion': {p['motion']!r} is not allowed; allowed: {', '.join(MOTIONS)}")
    if "{robot}" not in p["cmd_vel_topic"]:
        error(f"parameter 'cmd_vel_topic': must contain {{robot}}, got {p['cmd_vel_topic']!r}")
    for name in ("cmd_vel_timeout", "max_speed", "max_turn_rate"):
        if not (p[name] > 0 and math.isfinite(p[name])):
            error(f"parameter '{name}': must be > 0, got {p[name]}")
    if not (p["robot_radius"] >= 0 and math.isfinite(p["robot_radius"])):
        error(f"parameter 'robot_radius': must be >= 0, got {p['robot_radius']}")
    if p["odometry_origin"] not in ODOMETRY_ORIGINS:
        error(f"parameter 'odometry_origin': {p['odometry_origin']!r} is not allowed; "
              f"allowed: {', '.join(ODOMETRY_ORIGINS)}")
    if len(p["lidar_mount"]) != 3 or not all(math.isfinite(v) for v in p["lidar_mount"]):
        error(f"parameter 'lidar_mount': must be [x, y, yaw] (3 finite numbers), got {p['lidar_mount']}")
    return errors
