"""Path follower: drives mapping robots along their paths through the plan by ``cmd_vel``.

    ros2 run dinno_ros path_follower --ros-args -p team:=[robot_0, robot_1] -p task.plan:=office
    ros2 run dinno_ros path_follower --ros-args -p team:=[robot_0, robot_1, robot_2] \
        -p robots:=[robot_2] -p task.plan:=office       # on robot_2 itself: drive only robot_2

A thin node over ONE plain object, :class:`dinno_core.tasks.mapping.path_following.PurePursuit`
(pure pursuit, tested without ROS): robot ``i`` of ``team`` follows path ``i mod P`` of the task's
path set from the same start as the simulator and the offline experiment place it
(``MappingTask.paths`` / ``path_offsets``). It reads each driven robot's ``nav_msgs/Odometry``
(``odom_topic``: in the plan's frame, or in its own odometry frame placed by ``initial_poses``,
as the robots' ``frame.initial_pose`` places it) and publishes ``geometry_msgs/Twist`` on
``cmd_vel_topic`` (``linear.x``, ``angular.z``) at ``rate_hz``; a robot whose odometry is older
than ``odom_timeout`` (or non-finite) gets a zero command. On exit every robot is sent a stop.

Parameters: ``team``, ``robots``, ``seed``, ``task.*`` (the mapping task config, as the
simulator and the robot nodes get it), the controller's own ``follow.*`` (generated from the
core's :class:`PathFollowingConfig`: speed and turn-rate limits, lookahead, ...) and those in
:data:`FOLLOWER_PARAMETERS`. An invalid value stops the node with exit status 2 naming it.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from dinno_core.config import ConfigError
from dinno_ros.data_sources import compose, yaw_from_quaternion
from dinno_ros.node_main import init_node, spin_node
from dinno_ros.node_parameters import (
    check_no_unknown_parameters,
    declare_checked,
    declare_mapping_task,
    declare_specs,
)
from dinno_ros.parameters import model_parameters, nest, validate_model
from dinno_ros.ros_names import check_team

NODE_NAME = "path_follower"

# name, default, type, description, constraints.
FOLLOWER_PARAMETERS: list[tuple[str, Any, str, str, str]] = [
    ("team", None, "string_array", "All robot ids in team order: robot i follows path i mod P of the task's "
     "paths (the order the simulator and robot nodes use).", "required, unique"),
    ("robots", None, "string_array", "The robots this node drives. Empty: every robot of team.",
     "members of team"),
    ("seed", 0, "integer", "Experiment seed (the task's path placement).", ">= 0"),
    ("rate_hz", 20.0, "double", "Command rate.", "> 0"),
    ("odom_timeout", 0.5, "double", "A robot whose last odometry is older than this (s) gets a zero command.",
     "> 0"),
    ("odom_topic", "/{robot}/odom", "string", "Odometry topic pattern ({robot} = robot id).", "must contain {robot}"),
    ("cmd_vel_topic", "/{robot}/cmd_vel", "string", "Command topic pattern.", "must contain {robot}"),
    ("initial_poses", [], "double_array", "Where each driven robot's odometry frame starts in the plan's frame, "
     "as the robots' frame.initial_pose: x, y (m), yaw (rad) per robot of robots, one after the other (real "
     "odometry starts at zero where the robot was switched on). Empty: the odometry is in the plan's frame.",
     "empty or 3 finite numbers per driven robot"),
]


class PathFollowerNode(Node):
    """Odometry in, cmd_vel out, for the robots in ``robots``; the logic is :class:`PurePursuit`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        from dinno_core.tasks.mapping.path_following import PathFollowingConfig, PurePursuit
        from dinno_core.tasks.mapping.task import build_task

        self._errors: list[str] = []
        options, task_config, follow = self._read_parameters(PathFollowingConfig)
        self.options = options
        team = options["team"]
        self.robots = options["robots"] or list(team)
        light = task_config.model_copy(update={"validation_scans": 1})
        try:
            task = build_task(light, len(team), options["seed"])
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(f"parameter 'task.plan' / 'task.paths': {error}") from None
        index = [team.index(robot) for robot in self.robots]
        self.controller = PurePursuit([task.paths[i] for i in index], task.path_offsets[index], follow)
        n = len(self.robots)
        self.poses = np.zeros((n, 3))
        self.origins = np.reshape(options["initial_poses"], (-1, 3)) if options["initial_poses"] else np.zeros((n, 3))
        """Each driven robot's odometry origin in the plan's frame."""
        self.pose_times = np.full(n, -np.inf)
        self.odometry_received = 0
        self.odometry_rejected = 0
        self.commands_sent = 0
        self.cmd_pubs = [self.create_publisher(Twist, options["cmd_vel_topic"].format(robot=r), 10)
                         for r in self.robots]
        self._subs = [self.create_subscription(Odometry, options["odom_topic"].format(robot=r),
                                               lambda msg, i=i: self._on_odom(i, msg), 20)
                      for i, r in enumerate(self.robots)]
        self.create_timer(1.0 / options["rate_hz"], self._on_tick, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f"driving {', '.join(self.robots)} along their paths on {task.plan.name!r}: speed {follow.speed:g} m/s, "
            f"turn rate <= {follow.max_turn_rate:g} rad/s, lookahead {follow.lookahead:g} m, {options['rate_hz']:g} Hz")

    def _read_parameters(self, follow_model: Any) -> tuple[dict[str, Any], Any, Any]:
        error = self._errors.append
        p = {name: declare_checked(self, self._errors, name, default, kind, description, constraints)
             for name, default, kind, description, constraints in FOLLOWER_PARAMETERS}

        task = declare_mapping_task(self, self._errors, "robots drive in")
        follow = None
        # follow.*: generated from the core's PathFollowingConfig (descriptions, numeric ranges)
        raw = declare_specs(self, model_parameters(follow_model, "follow"), self._errors)
        try:
            follow = validate_model(follow_model, nest({k: v for k, v in raw.items() if v is not None}, "follow"),
                                    "follow")
        except ConfigError as problem:
            error(str(problem))
        check_no_unknown_parameters(self, self._errors)
        team = p["team"]
        try:
            check_team(team)
        except ValueError as problem:
            error(f"parameter 'team': {problem}")
        strangers = [r for r in p["robots"] if r not in team]
        if strangers:
            error(f"parameter 'robots': {strangers} are not in team {team}")
        if p["seed"] < 0:
            error(f"parameter 'seed': must be >= 0, got {p['seed']}")
        for name in ("rate_hz", "odom_timeout"):
            if not (p[name] > 0 and math.isfinite(p[name])):
                error(f"parameter '{name}': must be > 0, got {p[name]}")
        driven = len(p["robots"] or team or [])
        poses = p["initial_poses"]
        if poses and (len(poses) != 3 * driven or not all(math.isfinite(v) for v in poses)):
            error(f"parameter 'initial_poses': must be empty or 3 finite numbers (x, y, yaw) for each of the "
                  f"{driven} driven robots, got {poses}")
        for name in ("odom_topic", "cmd_vel_topic"):
            if "{robot}" not in p[name]:
                error(f"parameter '{name}': must contain {{robot}}, got {p[name]!r}")
        if self._errors:
            raise ConfigError("\n".join(self._errors))
        return p, task, follow

    def _on_odom(self, index: int, msg: Odometry) -> None:
        position, q = msg.pose.pose.position, msg.pose.pose.orientation
        pose = (position.x, position.y, yaw_from_quaternion(q.x, q.y, q.z, q.w))
        if not all(math.isfinite(v) for v in pose):
            self.odometry_rejected += 1
            return
        pose = compose(tuple(self.origins[index]), pose)  # odometry frame -> plan frame
        self.poses[index] = pose
        self.pose_times[index] = time.monotonic()
        self.odometry_received += 1

    def _on_tick(self) -> None:
        fresh = time.monotonic() - self.pose_times <= self.options["odom_timeout"]
        speed, turn_rate = self.controller.command(self.poses, active=fresh)
        for publisher, v, w in zip(self.cmd_pubs, speed.tolist(), turn_rate.tolist()):
            msg = Twist()
            msg.linear.x, msg.angular.z = v, w
            publisher.publish(msg)
        self.commands_sent += 1

    def stop_robots(self) -> None:
        """Send every driven robot a zero command (best effort: the context may be gone)."""
        for publisher in self.cmd_pubs:
            try:
                publisher.publish(Twist())
            except Exception:  # noqa: BLE001 - shutting down
                return


def main(argv: list[str] | None = None) -> int:
    node = init_node(PathFollowerNode, "path_follower", sys.argv if argv is None else argv)
    if node is None:
        return 2

    def finish() -> None:
        node.stop_robots()
        print(f"path_follower: {node.commands_sent} command ticks, {node.odometry_received} odometry messages "
              f"({node.odometry_rejected} non-finite rejected)", flush=True)

    return spin_node(node, "path_follower", finish)


if __name__ == "__main__":
    sys.exit(main())
