"""The DiNNO robot node: one robot of the team, a thin rclpy shell over :mod:`dinno_ros.trainer`.

Run one per robot, each in its own namespace::

    python -m dinno_ros.robot_node --ros-args -r __ns:=/robot_0 --params-file config/robot.yaml \
        -p robot_id:=robot_0

Topics (relative names land in the robot's namespace):

* publishes ``dinno/weights`` (``dinno_msgs/WeightUpdate``; RELIABLE, TRANSIENT_LOCAL,
  KEEP_LAST(``weights_qos_depth``)); subscribes to each neighbour's
  ``neighbour_weights_topic`` (default ``/{robot}/dinno/weights``) with the same QoS;
* publishes ``dinno/waiting`` (``dinno_msgs/RoundWaiting``; BEST_EFFORT, VOLATILE) while it waits
  for a round (:mod:`dinno_ros.round_waiting`) and subscribes to each neighbour's
  ``neighbour_waiting_topic`` (default ``/{robot}/dinno/waiting``);
* monitoring: ``dinno/training_loss``, ``dinno/neighbour_distance``, ``dinno/rho``,
  ``dinno/round_rate`` (``std_msgs/Float32``), ``dinno/status`` (``dinno_msgs/RobotStatus``),
  ``/diagnostics`` (``diagnostic_msgs/DiagnosticArray``);
* with ``communication_radius``: subscribes to ``odom`` and every teammate's
  ``neighbour_odom_topic`` (default ``/{robot}/odom``);
* mapping task: subscribes to ``scan`` (``sensor_msgs/LaserScan``) and its pose source (``odom``,
  ``frame.pose_topic`` or TF; :mod:`dinno_ros.sensor_inputs`); publishes its
  current map on ``dinno/map`` (``nav_msgs/OccupancyGrid``) and ``dinno/map_image``
  (``sensor_msgs/Image``) every ``map_publish_every`` rounds (:mod:`dinno_ros.map_output`).

Every parameter is generated from a pydantic model (:mod:`dinno_ros.robot_settings`, the core's
``algorithm.*`` / ``task.*``; see :mod:`dinno_ros.parameters`), with descriptions and numeric
ranges in its descriptor, and validated once by them before anything starts: an invalid value
stops the node with exit status 2 and a message naming the parameter and what is allowed.

It talks to ONE plain object, :class:`~dinno_ros.trainer.RobotTrainer` (ports in its constructor).
"""

from __future__ import annotations

import os
import signal
import sys

if __name__ == "__main__":  # Ctrl-C while torch and rclpy load: exit 130, no traceback. Not SystemExit:
    # raised inside an import's class creation it comes out as RuntimeError with a traceback.
    signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))
import contextlib  # noqa: E402 - after the guard above
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Float32

from dinno_msgs.msg import RobotStatus, RoundWaiting, WeightUpdate
from dinno_ros.map_output import MapPublisher
from dinno_ros.dds_profile import use_default_profile
from dinno_ros.monitoring import diagnose, diagnostics_message, status_message
from dinno_ros.node_main import hold_signals_while_saving, init_node, spin_until, tear_down
from dinno_ros.node_parameters import declare_specs, parameter_overrides
from dinno_ros.parameters import robot_parameters, validate_robot
from dinno_ros.qos_profiles import waiting_qos, weights_qos, weights_reader_qos
from dinno_ros.robot_settings import NodeOptions, RobotSettings
from dinno_ros.sensor_inputs import pose_values, scan_values, subscribe_scan_inputs
from dinno_ros.trainer import RobotTrainer, RoundReport
from dinno_ros.weights_codec import ENCODINGS, to_message, to_waiting_message

NODE_NAME = "dinno_robot"


class RobotNode(Node):
    """One robot: parameters → :class:`RobotTrainer`; weights in/out; monitoring; a training thread."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.settings, self.options = self._read_parameters()
        settings, options = self.settings, self.options
        import torch

        torch.set_num_threads(options.torch_threads)
        with contextlib.suppress(RuntimeError):  # already set, or parallel work already ran
            torch.set_num_interop_threads(1)
        self.trainer = RobotTrainer(settings, publish=self._publish_weights, on_round=self._on_round, log=self.get_logger(),
                                    signal_waiting=self._signal_waiting, wire=options.wire_encoder())
        self.map_publisher = MapPublisher.for_node(self, self.trainer, options)
        self._encoding = ENCODINGS[options.encoding]
        self._stop = threading.Event()
        self.done = threading.Event()
        self.failed: BaseException | None = None
        self._thread: threading.Thread | None = None

        self.weights_pub = self.create_publisher(WeightUpdate, options.weights_topic,
                                                 weights_qos(options.weights_qos_depth))
        self.waiting_pub = self.create_publisher(RoundWaiting, options.waiting_topic, waiting_qos())
        me = settings.robot_id
        teammates = [r for r in settings.team if r != me]
        heard = teammates if settings.uses_radius else settings.neighbours
        self._neighbour_subs = [self.create_subscription(
            kind, pattern.format(robot=robot), lambda msg, owner=robot, kind=kind: self._on_neighbour(kind, msg, owner),
            qos) for robot in heard for kind, pattern, qos in (
                (WeightUpdate, options.neighbour_weights_topic,
                 weights_reader_qos(options.weights_reader_depth, options.weights_qos_depth)),
                (RoundWaiting, options.neighbour_waiting_topic, waiting_qos()))]
        self.loss_pub, self.distance_pub, self.rho_pub, self.rate_pub = (
            self.create_publisher(Float32, f"dinno/{name}", 10)
            for name in ("training_loss", "neighbour_distance", "rho", "round_rate"))
        self.status_pub = self.create_publisher(RobotStatus, "dinno/status", 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(options.diagnostics_period, self._publish_diagnostics)

        sensors, pose_source = self.trainer.needs_sensors, self.trainer.pose_source
        odometry = [me] if settings.uses_radius or (sensors and pose_source == "odometry") else []
        odometry += teammates if settings.uses_radius else []
        self._odom_subs = [
            self.create_subscription(Odometry, options.odom_topic if robot == me else
                                     options.neighbour_odom_topic.format(robot=robot),
                                     lambda msg, owner=robot: self._on_pose(msg, owner), 20)
            for robot in odometry]
        self._tf = (subscribe_scan_inputs(self, settings.frame, options, self._on_pose, self._on_scan)
                    if sensors else None)
        mode = (f"communication_radius={settings.communication_radius:g} m" if settings.uses_radius
                else f"neighbours={list(settings.neighbours)}")
        self.get_logger().info(
            f"robot {me} (index {settings.index} of {len(settings.team)}), {settings.algorithm.kind} on "
            f"{settings.task.name}, {self.trainer.num_params} parameters, fingerprint {self.trainer.fingerprint:#x}, "
            f"{mode}, round {self.trainer.round}")

    def _read_parameters(self) -> tuple[RobotSettings, NodeOptions]:
        """Declare every parameter (generated from the models) and validate them once."""
        errors: list[str] = []
        values = declare_specs(self, robot_parameters(), errors)
        specific = robot_parameters(values["algorithm.kind"], values["task.name"])
        values.update(declare_specs(self, [spec for spec in specific if spec.name not in values], errors))
        if not values.get("robot_id"):
            values["robot_id"] = self.get_namespace().rstrip("/").rsplit("/", 1)[-1]
        return validate_robot(values, given=parameter_overrides(self), errors=errors)

    # ------------------------------------------------------------------ incoming (executor thread)

    def _on_neighbour(self, kind: type, msg: Any, owner: str) -> None:
        """A neighbour's weights or "still waiting" signal, handed to the trainer (which counts drops)."""
        weights = kind is WeightUpdate
        dropped = (self.trainer.receive_weights if weights else self.trainer.receive_waiting)(msg, via=owner)
        if dropped is not None:
            reason, detail = dropped
            self.get_logger().warning(f"dropped a {'weight message' if weights else 'waiting signal'} from "
                                      f"{owner}'s topic: {reason.value}: {detail}", throttle_duration_sec=2.0)

    def _on_pose(self, msg: Any, owner: str | None = None) -> None:  # owner None: frame.pose_topic
        values = pose_values(msg)
        if not (self.trainer.add_map_pose(*values) if owner is None else
                self.trainer.add_odometry_message(owner, *values)):
            self.get_logger().warning(f"rejected a pose of {owner or 'me'}: non-finite", throttle_duration_sec=5.0)

    def _on_scan(self, msg: LaserScan) -> None:
        if not self.trainer.add_scan(*scan_values(msg), sensor_pose=self._tf and self._tf.lidar_pose(msg)):
            self.get_logger().warning("skipped a lidar scan (why: data.* in /diagnostics)", throttle_duration_sec=5.0)

    # ------------------------------------------------------------------ outgoing (training thread)

    def _publish_weights(self, values: Any, round_index: int, degree: int) -> int:
        """The trainer's ``publish`` port: the payload bytes sent (raises EncodingError: the trainer counts it)."""
        msg = to_message(values, sender=self.settings.robot_id, round_index=round_index,
                         fingerprint=self.trainer.fingerprint, degree=degree, encoding=self._encoding,
                         stamp=self.get_clock().now().to_msg(), **self.trainer.wire_fields(round_index))
        self.weights_pub.publish(msg)
        return len(msg.payload)

    def _signal_waiting(self, round_index: int) -> None:
        """The trainer's ``signal_waiting`` port: "alive and still waiting in this round"."""
        self.waiting_pub.publish(to_waiting_message(sender=self.settings.robot_id, round_index=round_index,
                                                    stamp=self.get_clock().now().to_msg(),
                                                    **self.trainer.waiting_fields(round_index)))

    def _on_round(self, report: RoundReport) -> None:
        for publisher, value in ((self.loss_pub, report.training_loss), (self.distance_pub, report.neighbour_distance),
                                 (self.rho_pub, report.rho), (self.rate_pub, report.round_rate)):
            publisher.publish(Float32(data=float(value)))
        self.status_pub.publish(status_message(report, self.settings.robot_id, self.get_clock().now().to_msg()))
        if self.map_publisher is not None:
            self.map_publisher.on_round(report.round)

    def _publish_diagnostics(self) -> None:
        snapshot, extra = self.trainer.diagnostics()
        diagnosis = diagnose(snapshot, time.monotonic(), round_rate=self.trainer.round_rate, extra=extra)
        self.diagnostics_pub.publish(diagnostics_message(diagnosis, self.settings.robot_id,
                                                         self.get_clock().now().to_msg()))

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
        self.trainer.close()
        if self._thread is not None:
            self._thread.join(timeout=60.0)
        for what, save in (("checkpoint", self.trainer.save_checkpoint), ("results", self.trainer.write_results)):
            try:
                path = save()
            except Exception as error:  # noqa: BLE001 - reported; the other file is still written
                self.get_logger().error(f"could not write the {what}: {error}")
            else:
                if path:
                    self.get_logger().info(f"{what} at round {self.trainer.round} written to {path}")

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
    interrupted = True
    try:
        interrupted = spin_until(executor, node.done, "robot_node")
    finally:
        hold_signals_while_saving("robot_node")
        node.stop()
        last_acks = node.flush if not interrupted and node.trainer.finished else None
        tear_down(executor, node, exit_code=1 if node.failed is not None else 0, before=last_acks)
    return 1 if node.failed is not None else 0


if __name__ == "__main__":
    sys.exit(main())
