"""Embedded 2-D lidar simulator: the sensor topics of a whole mapping team from one process.

    python -m dinno_ros.lidar_sim_node --ros-args -p team:=[robot_0, robot_1] -p task.plan:=office
    ros2 run dinno_ros lidar_sim --ros-args --params-file sim.params.yaml

For every robot of ``team`` it publishes what Gazebo's bridge or a real robot's drivers would:

* ``/<robot>/scan`` (``sensor_msgs/LaserScan``, sensor-data QoS), frame ``<robot>/base_scan``:
  ``angle_min``/``angle_max``/``angle_increment`` of the task's lidar, ``range_min``/
  ``range_max``, ``scan_time``, ``time_increment = 0`` (all beams at once) and ``ranges`` with
  REP 117 values: ``+inf`` no return within ``range_max``, ``-inf`` closer than ``range_min``;
* ``/<robot>/odom`` (``nav_msgs/Odometry``), ``<robot>/odom`` → ``<robot>/base_link``: the
  exact pose along the robot's path and the body-frame twist (``linear.x`` = speed,
  ``angular.z`` = yaw rate). ``odometry_origin``: ``world`` (default) — the odom frame's
  origin IS the plan's world frame (the map frame), shared by all robots, which is what the
  robots' mapping data source assumes by default; ``start`` — as on real robots, each robot's
  odometry starts at zero at its start pose in its own odom frame (published pose =
  start⁻¹ ⊕ base pose in the world; the robots then need ``frame.initial_pose`` = their start
  pose, and the path follower, which reads odometry as map-frame poses, does not fit). A scan
  and an odometry message with the same stamp are published together in every scan tick; more
  odometry comes at ``odom_rate_hz``;
* the lidar on the base: ``lidar_mount`` ``[x, y, yaw]`` in ``base_link`` (default: at the
  base origin), every robot's the same; ``lidar_upside_down`` (roll = π): the scan runs the
  other way, beam ``j`` is the upright beam ``n-1-j``, ``angle_min`` = −(upright
  ``angle_max``), ``angle_max`` = −(upright ``angle_min``), same increment (what the robots'
  ``frame.lidar_mount`` / ``frame.lidar_upside_down`` undo);
* ``/tf`` (odom → base_link per robot) and ``/tf_static`` (``world_frame`` → each odom: the
  identity, or the robot's start pose with ``odometry_origin: start``; base_link → base_scan:
  the mount, roll π when upside down) only if ``tf2_msgs`` is importable: no ``tf2_msgs``
  wheel exists on PyPI, so on a pip-only machine TF is skipped with one info log line;
* ``/clock`` (``rosgraph_msgs/Clock``) when ``use_sim_time`` is true: the simulator is then the
  clock source, simulation time starts at 0 and every stamp is simulation time. Otherwise the
  stamps are wall-clock time. The simulator's own timers run on the steady clock either way.

Motion (``motion``): ``scripted`` — robot ``i`` drives path ``i mod P`` of the task's path set
(the core's :class:`~dinno_core.tasks.mapping.task.MappingTask` places robots exactly as the
offline experiment and the robot nodes do), at ``task.speed`` m/s along the smooth arc-length
spline; ``cmd_vel`` — each robot is a kinematic unicycle driven by its ``/<robot>/cmd_vel``
(``geometry_msgs/Twist``: ``linear.x``, ``angular.z``, clipped to ``max_speed`` /
``max_turn_rate``), as Gazebo's VelocityControl drives the generated world's robots: it starts
at the start of its path, a command older than ``cmd_vel_timeout`` stops it, and a wall stops it
(its centre never comes closer than ``robot_radius``). The path follower
(``dinno_ros.path_follower_node``) closes the loop: odometry in, cmd_vel out.
Scans are cast at ``task.lidar.rate_hz`` with the core's vectorized :func:`cast_rays` from
every lidar's world pose (base pose ⊕ mount), all robots × beams in ONE call per tick, with
Gaussian range noise ``task.lidar.noise_std`` (seeded by ``seed``). Time starts when every robot's node subscribed to its scan topic, or after
``wait_for_subscribers`` seconds.

Parameters: ``team``, ``seed`` and the ``task.*`` parameters (generated from the core's
``MappingTaskConfig``, validated by it: ``task.plan``, ``task.paths``, ``task.speed``,
``task.lidar.num_beams`` / ``angle_min`` / ``angle_max`` / ``range_min`` / ``range_max`` /
``noise_std`` / ``rate_hz``, ...), the same values a team config gives its robots (see
``team_spec.SimulatorConfig``); plus the simulator's own in :data:`SIM_PARAMETERS`. An invalid
value stops the node with exit status 2 and a message naming the parameter.

``trace_path`` records every scan tick to an ``.npz`` on exit, so a run can be replayed offline
exactly (``dinno_ros.demo`` trains its individual-robot baseline on it): ``stamps``, ``poses``
(the bases' world poses ``[T, N, 3]``, what path tracking measures), ``scan_poses`` (the
lidars' world poses, base ⊕ mount), ``ranges`` (as an upright lidar at ``scan_poses`` sees
them, i.e. before an upside-down lidar's reversal; replay ``ranges`` at ``scan_poses``) and
``odometry_origins`` (each robot's odom frame origin in the world).
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import LaserScan

from dinno_core.config import ConfigError
from dinno_core.tasks.mapping.raycast import cast_rays
from dinno_ros.node_main import init_node, spin_node
from dinno_ros.node_parameters import check_no_unknown_parameters, declare_checked, declare_mapping_task

from dinno_ros.lidar_sim_messages import float32_array, stamp_of, yaw_quaternion
from dinno_ros.lidar_sim_parameters import (
    INTEGRATION_STEP,
    NODE_NAME,
    SIM_PARAMETERS,
    TRACE_MAX_TICKS,
    option_problems,
)


def compose_poses(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a ⊕ b`` of planar poses ``[N, 3]`` (x, y, yaw; ``b`` may be one pose ``[3]``): ``b``
    given in ``a``'s frame, returned in ``a``'s parent."""
    b = np.broadcast_to(b, a.shape)
    c, s = np.cos(a[:, 2]), np.sin(a[:, 2])
    yaw = a[:, 2] + b[:, 2]
    return np.stack([a[:, 0] + c * b[:, 0] - s * b[:, 1], a[:, 1] + s * b[:, 0] + c * b[:, 1],
                     np.arctan2(np.sin(yaw), np.cos(yaw))], axis=1)


def inverse_poses(a: np.ndarray) -> np.ndarray:
    """``a⁻¹`` of planar poses ``[N, 3]``: ``inverse(a) ⊕ a`` is the identity."""
    c, s = np.cos(a[:, 2]), np.sin(a[:, 2])
    return np.stack([-c * a[:, 0] - s * a[:, 1], s * a[:, 0] - c * a[:, 1], -a[:, 2]], axis=1)


class LidarSimNode(Node):
    """Publishes LaserScan + Odometry (+ TF, /clock) for every robot of a mapping team."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._errors: list[str] = []
        options, task_config = self._read_parameters()
        self.options = options
        from dinno_core.tasks.mapping.task import build_task

        self.team: list[str] = options["team"]
        # Only the plan, the paths and the lidar are needed: a one-scan validation set is enough.
        light = task_config.model_copy(update={"validation_scans": 1})
        try:
            self.task = build_task(light, len(self.team), options["seed"])
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(f"parameter 'task.plan' / 'task.paths': {error}") from None
        self.plan = self.task.plan
        self.spec = self.task.spec
        self.speed = float(task_config.speed)
        self.paths = self.task.paths
        self.offsets = np.asarray(self.task.path_offsets, dtype=float)
        self.rng = np.random.default_rng([options["seed"], 7])
        self.sim_clock = bool(self.get_parameter("use_sim_time").value)

        fmt = {robot: {"robot": robot} for robot in self.team}
        self.scan_frames = [options["scan_frame"].format(**fmt[r]) for r in self.team]
        self.odom_frames = [options["odom_frame"].format(**fmt[r]) for r in self.team]
        self.base_frames = [options["base_frame"].format(**fmt[r]) for r in self.team]
        self.scan_pubs = [self.create_publisher(LaserScan, options["scan_topic"].format(**fmt[r]),
                                                qos_profile_sensor_data) for r in self.team]
        self.odom_pubs = [self.create_publisher(Odometry, options["odom_topic"].format(**fmt[r]), 20)
                          for r in self.team]
        self._tf_pub = self._tf_static_pub = None
        self._tf_message = None
        if options["publish_tf"]:
            self._setup_tf()
        self._clock_pub = None
        if self.sim_clock:
            from rosgraph_msgs.msg import Clock as ClockMsg

            self._clock_type = ClockMsg
            self._clock_pub = self.create_publisher(ClockMsg, "/clock", 10)

        self.driven = options["motion"] == "cmd_vel"
        n = len(self.team)
        self.starts = self.poses_at(0.0)  # every robot starts at the start of its path (both motions)
        self.state = self.starts.copy()  # cmd_vel motion: the unicycles
        # Each robot's odom frame in the world: the world itself, or its start pose.
        self.odometry_origins = self.starts.copy() if options["odometry_origin"] == "start" else np.zeros((n, 3))
        self._world_to_odom = inverse_poses(self.odometry_origins) if options["odometry_origin"] == "start" else None
        self.mount = np.asarray(options["lidar_mount"], dtype=float)
        self.upside_down = bool(options["lidar_upside_down"])
        self.commands = np.zeros((n, 2))  # (linear.x, angular.z) per robot, as received
        self._twist = np.zeros((n, 2))  # what the robots execute (stale commands are zeros)
        self.command_times = np.full(n, -np.inf)  # monotonic time of each robot's last cmd_vel
        self.commands_received = 0
        self.commands_rejected = 0
        self.state_time = 0.0
        if self.driven:
            from geometry_msgs.msg import Twist

            self._cmd_subs = [self.create_subscription(
                Twist, options["cmd_vel_topic"].format(robot=robot),
                lambda msg, i=i: self._on_cmd_vel(i, msg), 10) for i, robot in enumerate(self.team)]
        self.t0: float | None = None  # monotonic time at which the robots start moving
        self.wall0 = 0.0
        self.created = time.monotonic()
        self.scans_published = 0
        self.odom_published = 0
        self._trace: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]] = []
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(self.spec.scan_time, self._on_scan_tick, clock=steady)
        self.create_timer(1.0 / options["odom_rate_hz"], self._on_odom_tick, clock=steady)
        if self._clock_pub is not None:
            self.create_timer(1.0 / options["clock_rate_hz"], self._on_clock_tick, clock=steady)
        self.get_logger().info(
            f"simulating {len(self.team)} robots on plan {self.plan.name!r} ({task_config.plan}): "
            f"{self.spec.num_beams} beams over {math.degrees(self.spec.angle_max - self.spec.angle_min):.0f} deg, "
            f"range {self.spec.range_min:g}-{self.spec.range_max:g} m, noise {self.spec.noise_std:g} m, "
            f"{self.spec.rate_hz:g} Hz, "
            f"{'driven by cmd_vel' if options['motion'] == 'cmd_vel' else f'scripted at {self.speed:g} m/s'}, "
            f"{'simulation time on /clock' if self.sim_clock else 'wall-clock stamps'}, odometry from the "
            f"{'world origin' if self._world_to_odom is None else 'start pose'}, lidar at "
            f"({self.mount[0]:g}, {self.mount[1]:g}, {self.mount[2]:g} rad){' upside down' if self.upside_down else ''}")

    # ------------------------------------------------------------------ parameters

    def _declare(self, name: str, default: Any, kind: str, description: str, constraints: str) -> Any:
        return declare_checked(self, self._errors, name, default, kind, description, constraints)

    def _read_parameters(self) -> tuple[dict[str, Any], Any]:
        p = {name: self._declare(name, default, kind, description, constraints)
             for name, default, kind, description, constraints in SIM_PARAMETERS}
        task = declare_mapping_task(self, self._errors, "the simulator serves")
        check_no_unknown_parameters(self, self._errors)
        self._errors += option_problems(p)
        if self._errors:
            raise ConfigError("\n".join(self._errors))
        return p, task

    # ------------------------------------------------------------------ TF

    def _setup_tf(self) -> None:
        try:
            from geometry_msgs.msg import Quaternion, TransformStamped
            from tf2_msgs.msg import TFMessage
        except ImportError:
            self.get_logger().info("tf2_msgs is not importable (no PyPI wheel): not publishing /tf and "
                                   "/tf_static; odometry carries the poses")
            return
        self._transform_type = TransformStamped
        self._tf_message = TFMessage
        self._tf_pub = self.create_publisher(TFMessage, "/tf", 100)
        static_qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                history=HistoryPolicy.KEEP_LAST, depth=1)
        self._tf_static_pub = self.create_publisher(TFMessage, "/tf_static", static_qos)
        transforms = []
        x, y, yaw = (float(v) for v in self.mount)
        if self.upside_down:  # roll = pi, then yaw: the x axis at yaw, the z axis down
            mount_rotation = Quaternion(x=math.cos(yaw / 2.0), y=math.sin(yaw / 2.0), z=0.0, w=0.0)
        else:
            mount_rotation = yaw_quaternion(yaw)
        for i, (odom, base, scan) in enumerate(zip(self.odom_frames, self.base_frames, self.scan_frames)):
            origin = self.odometry_origins[i]
            for parent, child, (tx, ty), rotation in (
                    (self.options["world_frame"], odom, origin[:2], yaw_quaternion(float(origin[2]))),
                    (base, scan, (x, y), mount_rotation)):
                t = TransformStamped()
                t.header.frame_id, t.child_frame_id = parent, child
                t.transform.translation.x, t.transform.translation.y = float(tx), float(ty)
                t.transform.rotation = rotation
                transforms.append(t)
        self._tf_static_pub.publish(TFMessage(transforms=transforms))

    # ------------------------------------------------------------------ simulation

    def _started(self) -> bool:
        if self.t0 is not None:
            return True
        waited = time.monotonic() - self.created
        missing = [r for r, pub in zip(self.team, self.scan_pubs) if pub.get_subscription_count() == 0]
        if missing and waited < self.options["wait_for_subscribers"]:
            return False
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        note = f"; no subscriber yet for {', '.join(missing)}" if missing else ""
        self.get_logger().info(f"robots start moving after {waited:.1f} s{note}")
        return True

    def _now(self) -> tuple[float, float]:
        """``(t, stamp)``: seconds since the start and the message stamp in seconds."""
        t = time.monotonic() - self.t0
        return t, (t if self.sim_clock else self.wall0 + t)

    def _on_cmd_vel(self, index: int, msg: Any) -> None:
        v, w = msg.linear.x, msg.angular.z
        if not (math.isfinite(v) and math.isfinite(w)):
            self.commands_rejected += 1  # NaN/Inf never moves a robot
            return
        opts = self.options
        self.commands[index] = (float(np.clip(v, -opts["max_speed"], opts["max_speed"])),
                                float(np.clip(w, -opts["max_turn_rate"], opts["max_turn_rate"])))
        self.command_times[index] = time.monotonic()
        self.commands_received += 1

    def _blocked(self, xy: np.ndarray) -> np.ndarray:
        return self.plan.clearance(xy) < self.options["robot_radius"]

    def _drive(self, t: float) -> np.ndarray:
        """cmd_vel motion: integrate every robot's unicycle up to ``t`` (s since the start)."""
        from dinno_core.tasks.mapping.path_following import unicycle_step

        stale = time.monotonic() - self.command_times > self.options["cmd_vel_timeout"]
        commands = np.where(stale[:, None], 0.0, self.commands)
        while self.state_time < t - 1e-9:
            dt = min(INTEGRATION_STEP, t - self.state_time)
            self.state = unicycle_step(self.state, commands[:, 0], commands[:, 1], dt, self._blocked)
            self.state_time += dt
        self._twist = commands
        return self.state

    def current_poses(self, t: float) -> np.ndarray:
        """Poses ``[N, 3]`` at ``t``: along the paths (scripted) or the unicycles (cmd_vel)."""
        return self._drive(t) if self.driven else self.poses_at(t)

    def poses_at(self, t: float) -> np.ndarray:
        """Scripted world poses ``[N, 3]`` (x, y, yaw) of every robot ``t`` seconds after the start."""
        s = self.offsets + self.speed * t
        return np.stack([path.pose_at(si) for path, si in zip(self.paths, s)])

    def yaw_rates_at(self, t: float, ds: float = 0.02) -> np.ndarray:
        """Yaw rates ``[N]`` (rad/s) from the heading change along each path."""
        s = self.offsets + self.speed * t
        ahead = np.array([path.pose_at(si + ds)[2] for path, si in zip(self.paths, s)])
        behind = np.array([path.pose_at(si - ds)[2] for path, si in zip(self.paths, s)])
        turn = np.arctan2(np.sin(ahead - behind), np.cos(ahead - behind))
        return turn / (2 * ds) * self.speed

    def odometry_poses(self, poses: np.ndarray) -> np.ndarray:
        """The bases' world poses ``[N, 3]`` in their odom frames (the same with origin world)."""
        return poses if self._world_to_odom is None else compose_poses(self._world_to_odom, poses)

    def lidar_poses(self, poses: np.ndarray) -> np.ndarray:
        """The lidars' world poses ``[N, 3]``: each base pose ⊕ the mount."""
        return compose_poses(poses, self.mount) if self.mount.any() else poses

    def _publish_odometry(self, t: float, stamp_seconds: float, poses: np.ndarray) -> None:
        stamp = stamp_of(stamp_seconds)
        poses = self.odometry_poses(poses)
        if self.driven:
            speeds, yaw_rates = self._twist[:, 0], self._twist[:, 1]
        else:
            speeds, yaw_rates = np.full(len(self.team), self.speed), self.yaw_rates_at(t)
        transforms = []
        for i, pub in enumerate(self.odom_pubs):
            msg = Odometry()
            msg.header.stamp = stamp
            msg.header.frame_id = self.odom_frames[i]
            msg.child_frame_id = self.base_frames[i]
            msg.pose.pose.position.x = float(poses[i, 0])
            msg.pose.pose.position.y = float(poses[i, 1])
            msg.pose.pose.orientation = yaw_quaternion(float(poses[i, 2]))
            msg.twist.twist.linear.x = float(speeds[i])
            msg.twist.twist.angular.z = float(yaw_rates[i])
            pub.publish(msg)
            if self._tf_pub is not None:
                tf = self._transform_type()
                tf.header = msg.header
                tf.child_frame_id = msg.child_frame_id
                tf.transform.translation.x, tf.transform.translation.y = msg.pose.pose.position.x, msg.pose.pose.position.y
                tf.transform.rotation = msg.pose.pose.orientation
                transforms.append(tf)
        if self._tf_pub is not None:
            self._tf_pub.publish(self._tf_message(transforms=transforms))
        self.odom_published += 1

    def _on_odom_tick(self) -> None:
        if not self._started():
            return
        t, stamp = self._now()
        self._publish_odometry(t, stamp, self.current_poses(t))

    def _on_scan_tick(self) -> None:
        if not self._started():
            return
        t, stamp_seconds = self._now()
        poses = self.current_poses(t)
        sensors = self.lidar_poses(poses)
        ranges = cast_rays(self.plan, sensors, self.spec, self.rng)  # [N, B]: one vectorized call
        if self.options["trace_path"]:  # before publishing: a SIGTERM mid-tick cannot leave a sent scan out
            self._trace.append((stamp_seconds, poses, sensors, ranges.astype(np.float32)))
            if len(self._trace) > TRACE_MAX_TICKS:
                del self._trace[: TRACE_MAX_TICKS // 10]
        self._publish_odometry(t, stamp_seconds, poses)  # the scan's pose, same stamp
        stamp = stamp_of(stamp_seconds)
        spec = self.spec
        # An upside-down lidar turns the other way: its beam j is the upright beam n-1-j.
        published = ranges[:, ::-1] if self.upside_down else ranges
        angle_min, angle_max = (-spec.angle_max, -spec.angle_min) if self.upside_down else (spec.angle_min,
                                                                                              spec.angle_max)
        for i, pub in enumerate(self.scan_pubs):
            msg = LaserScan()
            msg.header.stamp = stamp
            msg.header.frame_id = self.scan_frames[i]
            msg.angle_min = float(angle_min)
            msg.angle_max = float(angle_max)
            msg.angle_increment = float(spec.angle_increment)
            msg.time_increment = 0.0
            msg.scan_time = float(spec.scan_time)
            msg.range_min = float(spec.range_min)
            msg.range_max = float(spec.range_max)
            msg.ranges = float32_array(published[i])
            pub.publish(msg)
        self.scans_published += 1

    def _on_clock_tick(self) -> None:
        if not self._started():
            return
        t, _ = self._now()
        msg = self._clock_type()
        msg.clock = stamp_of(t)
        self._clock_pub.publish(msg)

    # ------------------------------------------------------------------ trace

    def write_trace(self) -> str | None:
        """Write the recorded scan ticks to ``trace_path`` (atomically); None if disabled."""
        path = self.options["trace_path"]
        if not path:
            return None
        ticks = self._trace
        num_robots, num_beams = len(self.team), self.spec.num_beams
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".tmp.npz")
        np.savez(
            temporary,
            stamps=np.array([tick[0] for tick in ticks], dtype=np.float64),
            poses=np.stack([tick[1] for tick in ticks]) if ticks else np.zeros((0, num_robots, 3)),
            scan_poses=np.stack([tick[2] for tick in ticks]) if ticks else np.zeros((0, num_robots, 3)),
            ranges=np.stack([tick[3] for tick in ticks]) if ticks else np.zeros((0, num_robots, num_beams), np.float32),
            odometry_origins=self.odometry_origins,
            lidar_mount=self.mount,
            lidar_upside_down=self.upside_down,
            team=np.array(self.team),
            speed=self.speed,
            rate_hz=self.spec.rate_hz,
            sim_clock=self.sim_clock,
            motion=self.options["motion"],
            wall0=self.wall0,
        )
        os.replace(temporary, target)
        return str(target)


def main(argv: list[str] | None = None) -> int:
    node = init_node(LidarSimNode, "lidar_sim", sys.argv if argv is None else argv)
    if node is None:
        return 2

    def finish() -> None:
        try:
            path = node.write_trace()
            if path:
                print(f"lidar_sim: {len(node._trace)} scan ticks written to {path}", flush=True)
        except Exception as error:  # noqa: BLE001 - a trace is a convenience
            print(f"lidar_sim: could not write the trace: {error}", file=sys.stderr, flush=True)
        print(f"lidar_sim: published {node.scans_published} scan ticks x {len(node.team)} robots"
              + (f", {node.commands_received} cmd_vel received ({node.commands_rejected} non-finite rejected)"
                 if node.driven else ""), flush=True)

    return spin_node(node, "lidar_sim", finish)


if __name__ == "__main__":
    sys.exit(main())
