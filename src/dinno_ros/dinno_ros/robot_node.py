"""The DiNNO robot node: one robot of the team, a thin rclpy shell over :mod:`dinno_ros.trainer`.

Run one per robot, each in its own namespace::

    python -m dinno_ros.robot_node --ros-args -r __ns:=/robot_0 --params-file config/robot.yaml \
        -p robot_id:=robot_0

Topics (relative names land in the robot's namespace):

* publishes ``dinno/weights`` (``dinno_msgs/WeightUpdate``; RELIABLE, TRANSIENT_LOCAL,
  KEEP_LAST(``weights_qos_depth``)); subscribes to each neighbour's
  ``neighbour_weights_topic`` (default ``/{robot}/dinno/weights``) with the same QoS;
* monitoring: ``dinno/training_loss``, ``dinno/consensus_error``, ``dinno/rho``,
  ``dinno/round_rate`` (``std_msgs/Float32``), ``dinno/status`` (``dinno_msgs/RobotStatus``),
  ``/diagnostics`` (``diagnostic_msgs/DiagnosticArray``);
* with ``communication_radius``: subscribes to ``odom`` and every teammate's
  ``neighbour_odom_topic`` (default ``/{robot}/odom``);
* mapping task: subscribes to ``scan`` (``sensor_msgs/LaserScan``) and ``odom``; publishes its
  current map on ``dinno/map`` (``nav_msgs/OccupancyGrid``) and ``dinno/map_image``
  (``sensor_msgs/Image``) every ``map_publish_every`` rounds (:mod:`dinno_ros.map_output`).

Parameters are declared with descriptions and validated before anything starts; the
``algorithm.*`` / ``task.*`` parameters are generated from the core's pydantic models (see
:mod:`dinno_ros.parameters`). An invalid value stops the node with exit status 2 and a message
naming the parameter and what is allowed.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Float32

from dinno_core.config import TASKS, ConfigError
from dinno_msgs.msg import RobotStatus
from dinno_ros.data_sources import yaw_from_quaternion
from dinno_ros.map_output import MAP_PARAMETERS, MapPublisher, check_map_options
from dinno_ros.monitoring import diagnose
from dinno_ros.node_main import init_node, tear_down
from dinno_ros.node_parameters import declare_checked
from dinno_ros.parameters import (
    ROBOT_ALGORITHMS,
    ParameterSpec,
    algorithm_models,
    algorithm_parameters,
    nest,
    task_model,
    task_parameters,
    validate_model,
)
from dinno_ros.trainer import RobotSettings, RobotTrainer, RoundReport
from dinno_ros.dds_profile import use_default_profile
from dinno_ros.message_auth import AUTH_MODES, TEAM_KEY_ENV, TeamKey
from dinno_ros.update_guard import GUARD_PARAMETERS, GuardLimits
from dinno_ros.weights_codec import ENCODINGS, EncodingError, to_message

NODE_NAME = "dinno_robot"

# name, default, type, description, constraints. Types: string, integer, double, bool, string_array.
NODE_PARAMETERS: list[tuple[str, Any, str, str, str]] = [
    ("robot_id", "", "string", "This robot's id (its WeightUpdate sender name). Empty: the last part of "
     "the node's namespace.", "must be one of team"),
    ("team", None, "string_array", "All robot ids of the team; the order is the robot index used for the "
     "data split and seeding (same as the simulated team).", "required, unique"),
    ("neighbours", None, "string_array", "Static communication neighbours (robot ids).",
     "teammates, not this robot; leave empty when communication_radius is used"),
    ("communication_radius", 0.0, "double", "If > 0: the neighbours are the teammates within this distance "
     "(metres), from their odometry poses, re-evaluated every round.", ">= 0; 0 = use neighbours"),
    ("seed", 0, "integer", "Experiment seed: initial weights, data, minibatch generators.", ">= 0"),
    ("rounds", 0, "integer", "Rounds to run, then publish the final weights and exit.", ">= 0; 0 = until stopped"),
    ("round_timeout", 1.0, "double", "Seconds to wait for the neighbours' weights of a round before "
     "stepping with those that arrived.", "> 0"),
    ("startup_timeout", 30.0, "double", "Seconds to wait before the first round until every neighbour has "
     "been heard once (a team started process by process begins together).", ">= 0"),
    ("max_round_lead", 1000, "integer", "Messages more than this many rounds ahead of this robot are "
     "dropped as absurd; also the largest gap a restarted robot can catch up over.", ">= 1"),
    ("weights_topic", "dinno/weights", "string", "Topic this robot publishes its weights on (relative: "
     "in the robot's namespace).", "a valid topic name"),
    ("neighbour_weights_topic", "/{robot}/dinno/weights", "string", "Pattern of a neighbour's weights "
     "topic; {robot} is replaced by the neighbour's id.", "must contain {robot}"),
    ("neighbour_odom_topic", "/{robot}/odom", "string", "Pattern of a teammate's odometry topic "
     "(communication_radius only).", "must contain {robot}"),
    ("odom_topic", "odom", "string", "This robot's odometry (communication_radius, mapping).", "topic name"),
    ("scan_topic", "scan", "string", "This robot's lidar scans (mapping task).", "topic name"),
    ("weights_qos_depth", 2, "integer", "KEEP_LAST depth of the weight topics (RELIABLE, TRANSIENT_LOCAL). "
     "2 keeps round k available while round k+1 is published.", ">= 1"),
    ("encoding", "float32", "string", "Wire encoding of the weights.", "one of: " + ", ".join(ENCODINGS)),
    ("dtype", "float32", "string", "Floating-point type of the local model and optimizer.",
     "one of: float32, float64"),
    ("checkpoint_path", "", "string", "Checkpoint file ({robot} is replaced by robot_id); written every "
     "checkpoint_every rounds and on shutdown. Empty: no checkpoints.", "a writable path or empty"),
    ("checkpoint_every", 0, "integer", "Rounds between checkpoints.", ">= 0; 0 = only on shutdown"),
    ("resume", False, "bool", "Resume from checkpoint_path if it exists.", "needs checkpoint_path"),
    ("results_path", "", "string", "JSON results written on exit ({robot} is replaced by robot_id); the "
     "final weights go next to it as <name>.weights.npy.", "a writable path or empty"),
    ("torch_threads", 1, "integer", "torch intra-op threads of this process.", ">= 1"),
    ("auth", "hmac", "string", "Message authentication: 'hmac' signs and verifies every weight message with the "
     "team key (team_key_file); 'open' hears anyone on the domain (trusted networks only).",
     "one of: " + ", ".join(AUTH_MODES)),
    ("team_key_file", "", "string", "File holding the team's shared key as hex, mode 600 (create one with: "
     "python -m dinno_ros.message_auth generate PATH). Empty: the file named by $DINNO_TEAM_KEY_FILE.",
     "required unless auth is 'open'"),
    *GUARD_PARAMETERS,
    ("absent_after", 1, "integer", "A neighbour that missed this many rounds in a row is not waited for until "
     "it speaks again.", ">= 1"),
    ("weights_reader_depth", 100, "integer", "History depth of each neighbour weights subscription: a burst "
     "(junk on a neighbour's topic, its history at discovery) is queued and counted, not overwritten.", ">= 1"),
    ("diagnostics_period", 1.0, "double", "Seconds between /diagnostics messages.", "> 0"),
    *MAP_PARAMETERS,
]


class RobotNode(Node):
    """One robot: parameters → :class:`RobotTrainer`; weights in/out; monitoring; a training thread."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._errors: list[str] = []
        settings, options = self._read_parameters()
        self.options = options
        self.settings = settings
        import torch

        torch.set_num_threads(options["torch_threads"])
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or parallel work already ran
            pass
        self.trainer = RobotTrainer(settings, log=self.get_logger())
        self.exchange = self.trainer.exchange
        self.trainer.publish = self._publish_weights
        self.trainer.on_round = self._on_round
        self.trainer.before_round = self._update_neighbours
        self.map_publisher = MapPublisher.for_node(self, self.trainer, options)
        self._encoding = ENCODINGS[options["encoding"]]
        self._stop = threading.Event()
        self.done = threading.Event()
        self.failed: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._poses: dict[str, tuple[float, float]] = {}
        self._poses_lock = threading.Lock()

        weights_qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                 history=HistoryPolicy.KEEP_LAST, depth=options["weights_qos_depth"])
        self.weights_pub = self.create_publisher(type(self._empty_weights()), options["weights_topic"], weights_qos)
        # The reader keeps more samples than the writer: a burst (a neighbour's history arriving
        # at discovery, or junk injected on its topic) must not push a valid round-k message out
        # of the reader's history before the executor takes it. Same reliability and durability,
        # so the QoS stays compatible; the history depth is not part of QoS matching.
        reader_qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                history=HistoryPolicy.KEEP_LAST,
                                depth=max(options["weights_reader_depth"], options["weights_qos_depth"]))
        self._weight_subs = []
        me = settings.robot_id
        sources = [r for r in settings.team if r != me] if options["communication_radius"] > 0 else list(settings.neighbours)
        for robot in sources:
            topic = options["neighbour_weights_topic"].format(robot=robot)
            self._weight_subs.append(self.create_subscription(
                type(self._empty_weights()), topic, lambda msg, owner=robot, topic=topic: self._on_weights(msg, owner, topic),
                reader_qos))
        self.loss_pub = self.create_publisher(Float32, "dinno/training_loss", 10)
        self.consensus_pub = self.create_publisher(Float32, "dinno/consensus_error", 10)
        self.rho_pub = self.create_publisher(Float32, "dinno/rho", 10)
        self.rate_pub = self.create_publisher(Float32, "dinno/round_rate", 10)
        self.status_pub = self.create_publisher(RobotStatus, "dinno/status", 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(options["diagnostics_period"], self._publish_diagnostics)

        self._odom_subs = []
        if options["communication_radius"] > 0 or self.trainer.source.needs_sensors:
            self._odom_subs.append(self.create_subscription(
                Odometry, options["odom_topic"], lambda msg: self._on_odom(msg, me), 20))
        if options["communication_radius"] > 0:
            for robot in settings.team:
                if robot != me:
                    self._odom_subs.append(self.create_subscription(
                        Odometry, options["neighbour_odom_topic"].format(robot=robot),
                        lambda msg, owner=robot: self._on_odom(msg, owner), 20))
        if self.trainer.source.needs_sensors:
            self._scan_sub = self.create_subscription(LaserScan, options["scan_topic"], self._on_scan,
                                                      qos_profile_sensor_data)
        mode = (f"communication_radius={options['communication_radius']:g} m" if options["communication_radius"] > 0
                else f"neighbours={list(settings.neighbours)}")
        self.get_logger().info(
            f"robot {me} (index {settings.index} of {len(settings.team)}), {settings.algorithm.kind} on "
            f"{settings.task.name}, {self.trainer.num_params} parameters, fingerprint {self.trainer.fingerprint:#x}, "
            f"{mode}, round {self.trainer.algorithm.round}")

    @staticmethod
    def _empty_weights():
        from dinno_msgs.msg import WeightUpdate

        return WeightUpdate()

    # ------------------------------------------------------------------ parameters

    def _declare(self, name: str, default: Any, kind: str, description: str, constraints: str) -> Any:
        return declare_checked(self, self._errors, name, default, kind, description, constraints)

    def _declare_model(self, specs: list[ParameterSpec]) -> dict[str, Any]:
        values = {}
        for spec in specs:
            descriptor = ParameterDescriptor(description=spec.description, additional_constraints=spec.constraints,
                                             dynamic_typing=True)
            values[spec.name] = self.declare_parameter(spec.name, spec.default, descriptor).value
        return values

    def _read_parameters(self) -> tuple[RobotSettings, dict[str, Any]]:
        plain = {name: self._declare(name, default, kind, description, constraints)
                 for name, default, kind, description, constraints in NODE_PARAMETERS}
        kinds = ", ".join(ROBOT_ALGORITHMS)
        kind = self._declare("algorithm.kind", "dinno", "string", "Training algorithm.", f"one of: {kinds}")
        names = ", ".join(TASKS)
        task_name = self._declare("task.name", "linear_regression", "string", "Learning task.", f"one of: {names}")
        algorithm = task = None
        if kind not in ROBOT_ALGORITHMS:
            self._errors.append(f"parameter 'algorithm.kind': {kind!r} is not allowed; allowed: {kinds}")
        else:
            raw = self._declare_model(algorithm_parameters(kind))
            try:
                algorithm = validate_model(algorithm_models()[kind], {"kind": kind, **nest(raw, "algorithm")},
                                           "algorithm")
            except ConfigError as error:
                self._errors.append(str(error))
        try:
            raw = self._declare_model(task_parameters(task_name))
            task = validate_model(task_model(task_name), {"name": task_name, **nest(raw, "task")}, "task")
        except ConfigError as error:
            self._errors.append(str(error))
        declared = set(self._parameters)
        overrides = getattr(self, "_parameter_overrides", {})  # rclpy keeps the --ros-args/-p values here
        for name in sorted(set(overrides) - declared):
            if name == "use_sim_time":
                continue
            group = name.split(".")[0]
            known = sorted(n for n in declared if n.startswith(group + ".")) if group in ("algorithm", "task") else []
            hint = f"; known {group} parameters: {', '.join(known)}" if known else ""
            self._errors.append(f"parameter '{name}' is unknown{hint}")
        settings = self._check(plain, algorithm, task)
        if self._errors:
            raise ConfigError("\n".join(self._errors))
        assert settings is not None
        return settings, plain

    def _check(self, p: dict[str, Any], algorithm: Any, task: Any) -> RobotSettings | None:
        error = self._errors.append
        team = p["team"]
        robot_id = p["robot_id"] or self.get_namespace().rstrip("/").rsplit("/", 1)[-1]
        if not team:
            error("parameter 'team' is required: the ids of all robots, e.g. team:=[robot_0, robot_1, robot_2]")
        elif len(set(team)) != len(team):
            error(f"parameter 'team': ids must be unique, got {team}")
        if not robot_id:
            error("parameter 'robot_id' is empty and the node has no namespace to take it from")
        elif team and robot_id not in team:
            error(f"parameter 'robot_id': {robot_id!r} is not in team {team}")
        neighbours = p["neighbours"]
        radius = p["communication_radius"]
        bad = [n for n in neighbours if n not in team or n == robot_id]
        if bad:
            error(f"parameter 'neighbours': {bad} are not teammates of {robot_id!r} (team: {team})")
        if len(set(neighbours)) != len(neighbours):
            error(f"parameter 'neighbours': duplicates in {neighbours}")
        if radius < 0 or not math.isfinite(radius):
            error(f"parameter 'communication_radius': must be >= 0 (0 = use neighbours), got {radius}")
        if radius > 0 and neighbours:
            error("parameters 'neighbours' and 'communication_radius' are exclusive: set one of them")
        communicates = algorithm is not None and algorithm.kind != "individual"
        if communicates and radius == 0 and not neighbours and len(team) > 1:
            error("parameter 'neighbours' is empty and communication_radius is 0: give the neighbours, a "
                  "communication_radius > 0, or algorithm.kind:=individual")
        for name, low, strict in (("seed", 0, False), ("rounds", 0, False), ("round_timeout", 0, True),
                                  ("startup_timeout", 0, False), ("max_round_lead", 1, False),
                                  ("weights_qos_depth", 1, False), ("checkpoint_every", 0, False),
                                  ("torch_threads", 1, False), ("diagnostics_period", 0, True),
                                  ("absent_after", 1, False), ("weights_reader_depth", 1, False),
                                  ("max_weight_distance", 0, True), ("max_weight_step", 0, True),
                                  ("weight_scale", 0, True)):
            value = p[name]
            if (value <= low if strict else value < low) or (isinstance(value, float) and not math.isfinite(value)):
                error(f"parameter '{name}': must be {'>' if strict else '>='} {low}, got {value}")
        self._errors.extend(check_map_options(p))
        if p["encoding"] not in ENCODINGS:
            error(f"parameter 'encoding': {p['encoding']!r} is not allowed; allowed: {', '.join(ENCODINGS)}")
        if p["dtype"] not in ("float32", "float64"):
            error(f"parameter 'dtype': {p['dtype']!r} is not allowed; allowed: float32, float64")
        for name in ("neighbour_weights_topic", "neighbour_odom_topic"):
            if "{robot}" not in p[name]:
                error(f"parameter '{name}': must contain {{robot}}, got {p[name]!r}")
        for name in ("checkpoint_path", "results_path"):
            p[name] = p[name].replace("{robot}", robot_id)
        if (p["resume"] or p["checkpoint_every"]) and not p["checkpoint_path"]:
            error("parameter 'checkpoint_path' is required by resume:=true / checkpoint_every > 0")
        key = None
        if p["auth"] not in AUTH_MODES:
            error(f"parameter 'auth': {p['auth']!r} is not allowed; allowed: {', '.join(AUTH_MODES)}")
        elif p["auth"] == "hmac":
            p["team_key_file"] = p["team_key_file"] or os.environ.get(TEAM_KEY_ENV, "")
            if not p["team_key_file"]:
                error(f"parameter 'team_key_file' is required (or the environment variable {TEAM_KEY_ENV}): every "
                      "weight message is signed with the team key (create one with: python -m "
                      "dinno_ros.message_auth generate PATH), or set auth:=open to hear anyone on the domain")
            else:
                try:
                    key = TeamKey.from_file(p["team_key_file"])
                except ConfigError as problem:
                    error(str(problem))
        elif p["team_key_file"]:
            error("parameters 'auth' is 'open' but 'team_key_file' is set: choose one")
        if algorithm is None or task is None or self._errors:
            return None
        return RobotSettings(
            robot_id=robot_id, team=tuple(team), algorithm=algorithm, task=task, seed=p["seed"],
            neighbours=tuple(neighbours), rounds=p["rounds"], round_timeout=p["round_timeout"],
            startup_timeout=p["startup_timeout"], max_round_lead=p["max_round_lead"], dtype=p["dtype"],
            checkpoint_path=p["checkpoint_path"], checkpoint_every=p["checkpoint_every"], resume=p["resume"],
            results_path=p["results_path"], team_key=key, absent_after=p["absent_after"],
            guard=GuardLimits(p["max_weight_distance"], p["max_weight_step"], p["weight_scale"]),
        )

    # ------------------------------------------------------------------ incoming (executor thread)

    def _on_weights(self, msg: Any, owner: str, topic: str) -> None:
        dropped = self.exchange.receive(msg, via=owner)
        if dropped is not None:
            reason, detail = dropped
            self.get_logger().warning(f"dropped a weight message on {topic}: {reason.value}: {detail}",
                                      throttle_duration_sec=2.0)

    def _on_odom(self, msg: Odometry, owner: str) -> None:
        position = msg.pose.pose.position
        with self._poses_lock:
            self._poses[owner] = (position.x, position.y)
        if owner == self.settings.robot_id and self.trainer.source.needs_sensors:
            q = msg.pose.pose.orientation
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            self.trainer.source.add_odometry(stamp, position.x, position.y, yaw_from_quaternion(q.x, q.y, q.z, q.w))

    def _on_scan(self, msg: LaserScan) -> None:
        import numpy as np

        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if not self.trainer.source.add_scan(stamp, np.asarray(msg.ranges, dtype=float)):
            self.get_logger().warning("skipped a lidar scan (malformed, no usable beam, or no odometry at its stamp)",
                                      throttle_duration_sec=5.0)

    def _update_neighbours(self) -> None:
        radius = self.options["communication_radius"]
        if radius <= 0:
            return
        with self._poses_lock:
            poses = dict(self._poses)
        me = poses.get(self.settings.robot_id)
        if me is None:
            self.exchange.set_neighbours(())
            return
        self.exchange.set_neighbours(
            r for r, (x, y) in poses.items()
            if r != self.settings.robot_id and math.hypot(x - me[0], y - me[1]) <= radius)

    # ------------------------------------------------------------------ outgoing (training thread)

    def _publish_weights(self, values: Any, round_index: int, degree: int) -> None:
        try:
            msg = to_message(values, sender=self.settings.robot_id, round_index=round_index,
                             fingerprint=self.trainer.fingerprint, degree=degree, encoding=self._encoding,
                             stamp=self.get_clock().now().to_msg(), session=self.trainer.session,
                             acks=self.exchange.acknowledgements(round_index), key=self.settings.team_key)
        except EncodingError as error:
            self.trainer.state.not_sent_non_finite += 1
            self.get_logger().error(f"round {round_index}: not sending weights: {error}")
            return
        self.weights_pub.publish(msg)

    def _on_round(self, report: RoundReport) -> None:
        for publisher, value in ((self.loss_pub, report.training_loss), (self.consensus_pub, report.consensus_error),
                                 (self.rho_pub, report.rho), (self.rate_pub, report.round_rate)):
            publisher.publish(Float32(data=float(value)))
        status = RobotStatus()
        status.header.stamp = self.get_clock().now().to_msg()
        status.robot = self.settings.robot_id
        status.round = report.round
        status.training_loss = report.training_loss
        status.consensus_error = report.consensus_error
        status.rho = 0.0 if math.isnan(report.rho) else report.rho
        status.round_rate = 0.0 if math.isnan(report.round_rate) else report.round_rate
        status.neighbours_heard = list(report.heard)
        status.messages_dropped = min(self.exchange.total_dropped, 2**32 - 1)
        status.dual_probe = report.dual_probe
        status.dual_reverted = min(report.dual_reverted, 2**32 - 1)
        status.dual_expired = min(report.dual_expired, 2**32 - 1)
        self.status_pub.publish(status)
        if self.map_publisher is not None:
            self.map_publisher.on_round(report.round)

    def _publish_diagnostics(self) -> None:
        state = self.trainer.state
        report = state.last_report
        extra = {"rounds_stepped": state.rounds_stepped, "timeouts": state.timeouts,
                 "catch_ups": len(state.catch_ups), "rejected_updates": state.rejected_updates,
                 "training_loss": None if report is None else report.training_loss,
                 "consensus_error": None if report is None else report.consensus_error,
                 "dual_probe": None if report is None else report.dual_probe,
                 "dual_reverted": 0 if report is None else report.dual_reverted,
                 "dual_expired": 0 if report is None else report.dual_expired}
        extra.update({f"data.{k}": v for k, v in self.trainer.source.stats().items()})
        diagnosis = diagnose(self.exchange.snapshot(), time.monotonic(),
                             round_rate=float("nan") if report is None else report.round_rate, extra=extra)
        status = DiagnosticStatus(level=bytes([diagnosis.level]), name=f"dinno/{self.settings.robot_id}",
                                  message=diagnosis.message, hardware_id=self.settings.robot_id,
                                  values=[KeyValue(key=k, value=v) for k, v in diagnosis.values])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the training thread (the executor keeps serving callbacks)."""
        self._thread = threading.Thread(target=self._train, name="dinno-training", daemon=True)
        self._thread.start()

    def _train(self) -> None:
        try:
            self.trainer.run(self._stop)
        except BaseException as error:  # noqa: BLE001 - reported, then the node exits non-zero
            # After SIGINT/SIGTERM the context is shut down before stop() is called; a publish
            # in that window raises ("publisher's context is invalid"): a stop, not a failure.
            if not self._stop.is_set() and self.context.ok():
                self.failed = error
                self.get_logger().error(f"training failed: {type(error).__name__}: {error}")
        finally:
            self.done.set()

    def stop(self) -> None:
        """Stop training (wakes a waiting round), then save the checkpoint and the results."""
        self._stop.set()
        self.exchange.close()
        if self._thread is not None:
            self._thread.join(timeout=60.0)
        try:
            path = self.trainer.save_checkpoint()
            if path:
                self.get_logger().info(f"checkpoint at round {self.trainer.algorithm.round} saved to {path}")
        except Exception as error:  # noqa: BLE001
            self.get_logger().error(f"could not save the checkpoint: {error}")
        try:
            path = self.trainer.write_results()
            if path:
                self.get_logger().info(f"results written to {path}")
        except Exception as error:  # noqa: BLE001
            self.get_logger().error(f"could not write the results: {error}")

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the neighbours acknowledged our last weights (before exiting after the last round)."""
        return self.weights_pub.wait_for_all_acked(Duration(seconds=timeout))


def main(argv: list[str] | None = None) -> int:
    use_default_profile()  # before rclpy.init: Fast DDS reads it with the first participant
    node = init_node(RobotNode, "robot_node", sys.argv if argv is None else argv)
    if node is None:
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    node.start()
    interrupted = False
    try:
        while not node.done.is_set():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        interrupted = True
    except Exception:  # noqa: BLE001 - a wait racing SIGINT/SIGTERM's shutdown raises RCLError
        if rclpy.ok():
            raise
        interrupted = True
    finally:
        node.stop()
        if not interrupted and rclpy.ok() and node.trainer.state.finished:
            node.flush()
        tear_down(executor, node)
    if node.failed is not None:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
