"""The robot's parts below the ROS node: parameters generated from the core's models, the trainer
loop (in-process team, checkpoint/resume, catch-up warm start), data sources, diagnostics; and
the node's parameter validation (in-process and as a process exiting with status 2)."""

from __future__ import annotations

import math
import subprocess
import sys
import threading

import networkx as nx
import numpy as np
import pytest
import torch

from dinno_core.algorithms import PenaltyAdaptationConfig, DinnoConfig, DsgtConfig, LearningRateSchedule, OptimizerConfig, build_algorithm
from dinno_core.algorithms.config import LocalConfig
from dinno_core.config import ConfigError, build_task
from dinno_core.graphs import StaticGraph
from dinno_core.params import FlatModel
from dinno_core.tasks.convex import ConvexTaskConfig
from dinno_core.team import SimulatedTeam, TeamData
from dinno_core.wire_encoder import WireEncoder
from dinno_ros.exchange import ExchangeSnapshot, LinkStats
from dinno_ros.monitoring import ERROR, OK, WARN, diagnose
from dinno_core.config import algorithm_models
from dinno_ros.parameters import (
    algorithm_parameters,
    nest,
    task_parameters,
    validate_model,
)
from dinno_ros.process_spec import process_command
from dinno_ros.robot_settings import ROBOT_ALGORITHMS, RobotSettings
from dinno_ros.team_spec import hardware_robot_process
from dinno_ros.trainer import RobotTrainer
from dinno_ros.weights_codec import ENCODING_UINT8, ENCODINGS, payload_nbytes, to_packet

# ------------------------------------------------------------------------------ parameters


def test_algorithm_parameters_cover_every_field_with_the_kinds_defaults():
    specs = {s.name: s for s in algorithm_parameters("dinno")}
    assert set(specs) == {
        "algorithm.rho_init", "algorithm.rho_scaling", "algorithm.rho_max", "algorithm.primal_steps",
        "algorithm.primal_step", "algorithm.batch_size", "algorithm.optimizer.name", "algorithm.optimizer.momentum",
        "algorithm.optimizer.betas", "algorithm.optimizer.weight_decay", "algorithm.optimizer.persistent_state",
        "algorithm.lr.kind", "algorithm.lr.start", "algorithm.lr.end", "algorithm.lr.rounds",
        *(f"algorithm.rho_adaptation.{name}" for name in ("kind", "metric_scale", "mu", "tau", "rounds", "normalized",
                                                              "rho_min",
                                                          "rho_max")),
        "algorithm.reconcile_window"}
    assert specs["algorithm.reconcile_window"].constraints == ">= 0; <= 32"
    assert specs["algorithm.rho_adaptation.kind"].default == "none"  # the paper's schedule unless asked
    assert specs["algorithm.rho_adaptation.kind"].constraints == "one of: none, residual_balancing, adam_metric"
    assert specs["algorithm.lr.start"].default == DinnoConfig().lr.start == 5e-3  # not the schedule class's 1e-3
    assert specs["algorithm.rho_max"].default is None and "optional" in specs["algorithm.rho_max"].constraints
    assert specs["algorithm.optimizer.name"].constraints == "one of: adam, adamw, sgd, rmsprop"
    assert specs["algorithm.primal_step"].constraints == "one of: optimizer, adam_proximal"
    assert specs["algorithm.primal_step"].default == "optimizer"
    assert specs["algorithm.rho_init"].constraints == "> 0"
    assert specs["algorithm.optimizer.betas"].type_name == "double_array"
    individual = {s.name: s.default for s in algorithm_parameters("individual")}
    assert individual["algorithm.optimizer.persistent_state"] is True  # LocalConfig's own default
    assert set(ROBOT_ALGORITHMS) <= set(algorithm_models())
    assert {s.name for s in task_parameters("linear_regression")} == {
        "task.num_features", "task.rows_per_robot", "task.noise_std"}


def test_parameter_values_validate_through_the_core_models():
    raw = {s.name: s.default for s in algorithm_parameters("dinno")}
    raw.update({"algorithm.lr.kind": "log", "algorithm.lr.end": 1e-4, "algorithm.lr.rounds": 100,
                "algorithm.optimizer.betas": [0.8, 0.99], "algorithm.rho_init": 2})
    config = validate_model(DinnoConfig, {"kind": "dinno", **nest(raw, "algorithm")}, "algorithm")
    assert config.lr.rounds == 100 and config.optimizer.betas == (0.8, 0.99) and config.rho_init == 2.0
    assert config.rho_adaptation.kind == "none"
    raw.update({"algorithm.rho_adaptation.kind": "residual_balancing", "algorithm.rho_adaptation.rounds": 50})
    adaptive = validate_model(DinnoConfig, {"kind": "dinno", **nest(raw, "algorithm")}, "algorithm")
    assert adaptive.rho_adaptation.kind == "residual_balancing" and adaptive.rho_adaptation.rounds == 50
    raw.update({"algorithm.rho_adaptation.kind": "adam_metric", "algorithm.rho_adaptation.metric_scale": 0.1})
    metric = validate_model(DinnoConfig, {"kind": "dinno", **nest(raw, "algorithm")}, "algorithm")
    assert metric.rho_adaptation.kind == "adam_metric" and metric.rho_adaptation.metric_scale == 0.1
    with pytest.raises(ConfigError, match="parameter 'algorithm.rho_adaptation.metric_scale'"):
        validate_model(DinnoConfig, nest({"algorithm.rho_adaptation.metric_scale": -1.0}, "algorithm"), "algorithm")
    with pytest.raises(ConfigError) as error:
        validate_model(DinnoConfig, nest({"algorithm.rho_scaling": 0.5, "algorithm.optimizer.name": "lbfgs"},
                                         "algorithm"), "algorithm")
    text = str(error.value)
    assert "parameter 'algorithm.rho_scaling'" in text and "got 0.5" in text
    assert "parameter 'algorithm.optimizer.name'" in text and "'adam', 'adamw', 'sgd' or 'rmsprop'" in text
    with pytest.raises(ConfigError, match=r"primal_step='adam_proximal' needs optimizer.name='adam', got 'sgd'"):
        validate_model(DinnoConfig, nest({"algorithm.primal_step": "adam_proximal", "algorithm.optimizer.name": "sgd"},
                                         "algorithm"), "algorithm")


def make_node(context, **overrides):
    from rclpy.parameter import Parameter

    from dinno_ros.robot_node import RobotNode

    params = {"robot_id": "robot_0", "team": ["robot_0", "robot_1"], "neighbours": ["robot_1"]}
    params.update(overrides)
    return RobotNode(context=context, namespace="/robot_0",
                     parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])


def test_node_rejects_bad_parameters_naming_each_one(ros_context):
    with pytest.raises(ConfigError) as error:
        make_node(ros_context, **{"algorithm.kind": "centralized", "task.name": "mnist", "task.split": "by_robot",
                                  "round_timeout": -1.0, "neighbours": ["robot_7"], "dtype": "float8",
                                  "resume": True, "task.bogus": 1, "neighbour_weights_topic": "/x/weights"})
    text = str(error.value)
    for expected in ("parameter 'algorithm.kind': 'centralized' is not allowed; allowed: dinno, dsgd, dsgt, individual",
                     "parameter 'task.split'", "parameter 'round_timeout': out of range; allowed: > 0.0 (got -1.0)",
                     "parameter 'neighbours': ['robot_7'] are not teammates",
                     "parameter 'dtype': Input should be 'float32' or 'float64' (got 'float8')",
                     "parameter 'checkpoint_path': required by resume:=true",
                     "parameter 'task.bogus' is unknown", "parameter 'neighbour_weights_topic': must contain {robot}"):
        assert expected in text, (expected, text)


def test_node_parameters_have_descriptions_and_build_the_settings(ros_context, tmp_path):
    node = make_node(ros_context, **{"algorithm.kind": "dsgt", "algorithm.lr.start": 1, "robot_id": "",
                                     "checkpoint_path": str(tmp_path / "{robot}.pt"), "round_timeout": 2})
    try:
        settings = node.settings
        assert settings.robot_id == "robot_0"  # from the namespace
        assert isinstance(settings.algorithm, DsgtConfig) and settings.algorithm.lr.start == 1.0
        assert settings.round_timeout == 2.0 and settings.checkpoint_path == str(tmp_path / "robot_0.pt")
        assert node.trainer.algorithm.payload_vectors == 2 and node.trainer.exchange.num_vectors == 2
        for name in ("team", "round_timeout", "algorithm.lr.start", "task.num_features", "algorithm.kind"):
            descriptor = node.describe_parameter(name)
            assert descriptor.description, name
        assert "one of" in node.describe_parameter("algorithm.lr.kind").additional_constraints
        topics = {name for name, _ in node.get_publisher_names_and_types_by_node(node.get_name(), "/robot_0")}
        assert {"/robot_0/dinno/weights", "/robot_0/dinno/waiting", "/robot_0/dinno/status",
                "/robot_0/dinno/neighbour_distance", "/robot_0/dinno/rho", "/robot_0/dinno/round_rate",
                "/robot_0/dinno/training_loss", "/diagnostics"} <= topics
    finally:
        node.destroy_node()


def test_node_process_exits_with_status_2_on_bad_parameters(ros_env):
    command = process_command(hardware_robot_process("robot_0", ["robot_0", "robot_1"], neighbours=["robot_1"],
                                                     parameters={"algorithm.rho_init": -1.0}), sys.executable)
    result = subprocess.run(command, env=ros_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "parameter 'algorithm.rho_init': out of range; allowed: > 0 (got -1.0)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_running_robot_describes_its_parameters_with_numeric_ranges(ros_env, ros_context, tmp_path):
    """What ``ros2 param describe /robot_0/dinno_robot round_timeout`` prints, read from a real node
    process through its describe_parameters service: the models' bounds as descriptor ranges."""
    import signal

    import rclpy
    from rcl_interfaces.msg import ParameterType
    from rcl_interfaces.srv import DescribeParameters

    command = process_command(hardware_robot_process("robot_0", ["robot_0", "robot_1"], neighbours=["robot_1"],
                                                     parameters={"startup_timeout": 120.0}), sys.executable)
    log = open(tmp_path / "robot.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(command, env=ros_env, stdout=log, stderr=subprocess.STDOUT)
    client_node = rclpy.create_node("describer", context=ros_context)
    try:
        client = client_node.create_client(DescribeParameters, "/robot_0/dinno_robot/describe_parameters")
        assert client.wait_for_service(timeout_sec=120.0), (tmp_path / "robot.log").read_text()
        names = ["round_timeout", "weights_qos_depth", "seed", "max_round_lead", "algorithm.rho_init",
                 "algorithm.primal_steps", "team", "dtype"]
        future = client.call_async(DescribeParameters.Request(names=names))
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor(context=ros_context)
        rclpy.spin_until_future_complete(client_node, future, executor=executor, timeout_sec=60.0)
        executor.shutdown()
        described = dict(zip(names, future.result().descriptors))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        log.close()
        client_node.destroy_node()
    timeout = described["round_timeout"].floating_point_range[0]
    assert (timeout.from_value, timeout.to_value) == (0.0, float("inf"))
    assert described["round_timeout"].additional_constraints == "> 0.0"
    depth = described["weights_qos_depth"].integer_range[0]
    assert (depth.from_value, depth.to_value) == (1, 10_000)
    assert described["seed"].integer_range[0].from_value == 0
    assert described["max_round_lead"].integer_range[0].from_value == 1
    assert described["algorithm.rho_init"].floating_point_range[0].from_value == 0.0
    assert described["algorithm.primal_steps"].integer_range[0].from_value == 1
    assert described["team"].type == ParameterType.PARAMETER_STRING_ARRAY and not described["team"].integer_range
    assert described["dtype"].additional_constraints == "one of: float32, float64"
    assert all(d.description for d in described.values())


# --------------------------------------------------------------------------------- trainer

CONFIG = DinnoConfig(rho_init=0.5, primal_steps=3, batch_size=2, optimizer=OptimizerConfig(name="adam"),
                     lr=LearningRateSchedule(kind="log", start=1e-2, end=1e-3, rounds=10))
TASK = ConvexTaskConfig()


def settings_for(robot, team, rounds, tmp_path=None, resume=False, config=CONFIG, **extra):
    neighbours = tuple(r for r in team if r != robot)
    return RobotSettings(robot_id=robot, team=tuple(team), algorithm=config, task=TASK, seed=3,
                         neighbours=neighbours, rounds=rounds, round_timeout=10.0, startup_timeout=10.0,
                         checkpoint_path=str(tmp_path / f"{robot}.pt") if tmp_path else "", resume=resume, **extra)


def run_in_process_team(team, rounds, tmp_path=None, resume=False, config=CONFIG, encoding="float32",
                        delta=False):
    """The plain trainers of a complete graph wired together directly (no ROS), one thread each."""
    trainers = {}

    def wire(sender):
        def publish(values, round_index, degree):
            packet = to_packet(values, sender=sender, round_index=round_index,
                               fingerprint=trainers[sender].fingerprint, degree=degree, encoding=ENCODINGS[encoding],
                               **trainers[sender].wire_fields(round_index))
            for other, trainer in trainers.items():
                if other != sender:
                    trainer.receive_weights(packet, via=sender)
            return len(packet.payload)
        return publish

    for r in team:
        trainers[r] = RobotTrainer(settings_for(r, team, rounds, tmp_path, resume, config), publish=wire(r),
                                   wire=WireEncoder(encoding, delta))
    stop = threading.Event()
    threads = [threading.Thread(target=t.run, args=(stop,)) for t in trainers.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return trainers


def simulated(team, rounds, config=CONFIG, encoding="float32", delta=False):
    torch.manual_seed(3)
    task = build_task(TASK, len(team), 3)
    flat = FlatModel(task.build_model(), task.loss)
    algorithm = build_algorithm(config, flat, flat.initial_weights().repeat(len(team), 1))
    sim = SimulatedTeam(algorithm, StaticGraph(nx.complete_graph(len(team))), TeamData(task.robot_data(len(team)), 3),
                        encoding, delta)
    for _ in range(rounds):
        sim.run_round()
    return algorithm.theta


ADAPTIVE = CONFIG.model_copy(update={"rho_init": 5.0, "rho_adaptation": PenaltyAdaptationConfig(
    kind="residual_balancing", mu=1.05, tau=2.0, rounds=8)})
"""Residual balancing that gives the three robots different ρ within a few rounds (40, 80, 160)."""


METRIC = CONFIG.model_copy(update={"primal_step": "adam_proximal",
                                   "optimizer": OptimizerConfig(name="adam", persistent_state=True),
                                   "rho_adaptation": PenaltyAdaptationConfig(kind="adam_metric", metric_scale=0.1)})
"""A penalty per weight from each robot's Adam metric: the packets carry two vectors."""


@pytest.mark.parametrize("config", [CONFIG, ADAPTIVE, METRIC], ids=["dinno", "dinno_adaptive", "dinno_metric"])
def test_in_process_trainers_equal_the_simulated_team(config):
    """The trainers, wired through the weight packets, step exactly as the simulated team; with an
    adaptive ρ the packets carry each robot's ρ (a scalar, or with ``adam_metric`` a second vector),
    so both ends of an edge use the same ρ_ij and the edge duals cancel."""
    team = ["r0", "r1", "r2"]
    trainers = run_in_process_team(team, 8, config=config)
    theta = torch.cat([trainers[r].algorithm.theta for r in team])
    torch.testing.assert_close(theta, simulated(team, 8, config), rtol=0, atol=1e-6)
    assert all(t.state.finished and t.state.rounds_stepped == 8 and t.state.timeouts == 0 for t in trainers.values())
    if config is not CONFIG:
        rho = torch.cat([trainers[r].algorithm.rho for r in team])
        assert float(rho.max() / rho.min()) > 1.5, rho  # the robots' penalties really differ
        dual = torch.cat([trainers[r].algorithm.dual for r in team])
        assert float(dual.sum(dim=0).norm()) < 1e-5 * float(dual.norm(dim=1).max())  # edge duals cancel


@pytest.mark.parametrize("config", [CONFIG, METRIC, DsgtConfig(batch_size=2)], ids=["dinno", "dinno_metric", "dsgt"])
def test_trainers_sending_8_bit_changes_equal_the_simulated_team(config):
    """Delta encoding over the weight packets: every trainer refers only to rounds its neighbours
    acknowledged, rebuilds its neighbours' weights bit for bit as they say they sent them, and so
    steps exactly as the simulated team with the same wire (DSGT: both vectors travel as changes)."""
    team, rounds = ["r0", "r1", "r2"], 12
    trainers = run_in_process_team(team, rounds, config=config, encoding="uint8", delta=True)
    theta = torch.cat([trainers[r].algorithm.theta for r in team])
    torch.testing.assert_close(theta, simulated(team, rounds, config, "uint8", True), rtol=0, atol=1e-6)
    assert not torch.allclose(theta, simulated(team, rounds, config, "uint8"), rtol=0, atol=1e-6)  # not plain 8-bit
    for trainer in trainers.values():
        assert trainer.state.timeouts == 0 and trainer.state.rounds_stepped == rounds
        assert trainer.bytes_sent.total == (rounds + 1) * payload_nbytes(trainer.algorithm.payload_vectors,
                                                                         trainer.num_params, ENCODING_UINT8)
        assert sum(trainer.exchange.snapshot().drops.values()) == 0  # never an unknown base


@pytest.mark.parametrize("config", [CONFIG, DsgtConfig(batch_size=2)], ids=["dinno", "dsgt"])
def test_checkpoint_and_resume_continue_exactly(tmp_path, config):
    team = ["r0", "r1"]
    first = run_in_process_team(team, 5, tmp_path, config=config)
    for trainer in first.values():
        trainer.save_checkpoint()
    resumed = run_in_process_team(team, 9, tmp_path, resume=True, config=config)
    assert all(t.resumed_from == 5 and t.state.rounds_stepped == 4 for t in resumed.values())
    theta = torch.cat([resumed[r].algorithm.theta for r in team])
    torch.testing.assert_close(theta, simulated(team, 9, config), rtol=0, atol=1e-6)


def test_resume_refuses_another_robots_checkpoint(tmp_path):
    team = ["r0", "r1"]
    trainer = RobotTrainer(settings_for("r0", team, 1, tmp_path))
    trainer.save_checkpoint()
    (tmp_path / "r0.pt").rename(tmp_path / "r1.pt")
    with pytest.raises(ConfigError, match="does not belong"):
        RobotTrainer(settings_for("r1", team, 1, tmp_path, resume=True))


@pytest.mark.parametrize("config", [CONFIG, METRIC], ids=["dinno", "dinno_metric"])
def test_a_fresh_robot_behind_the_team_warm_starts_from_its_neighbours(config):
    """It starts from its neighbours' weights (with the metric penalty, the first of the two vectors)."""
    team = ["r0", "r1", "r2"]
    sent = []
    stop = threading.Event()
    reports = []

    def on_round(report):
        reports.append(report)
        stop.set()
        trainer.close()

    trainer = RobotTrainer(settings_for("r0", team, 0, config=config),
                           publish=lambda values, k, degree: sent.append(k), on_round=on_round)
    for robot, value in (("r1", 1.0), ("r2", 3.0)):
        payload = np.full((trainer.algorithm.payload_vectors, 5), value, np.float32)
        trainer.receive_weights(to_packet(payload, sender=robot, round_index=40,
                                          fingerprint=trainer.fingerprint, degree=2, key=trainer.exchange.key))
    trainer.run(stop)
    assert [vars(c)["to_round"] for c in trainer.state.catch_ups] == [40]
    assert trainer.state.catch_ups[0].warm_start
    assert 40 in sent  # it published its (warm-started) weights as round 40
    assert reports and reports[0].round == 41 and reports[0].heard == ("r1", "r2")
    # The round-40 step started from the neighbours' mean (2.0): the neighbour distance is measured there.
    assert reports[0].neighbour_distance == pytest.approx(math.sqrt(5), rel=1e-5)


def test_non_finite_own_weights_are_never_published():
    sent = []
    trainer = RobotTrainer(settings_for("r0", ["r0"], 1, config=LocalConfig(batch_size=2)),
                           publish=lambda values, k, degree: sent.append(k))
    theta = trainer.current_weights()[None].clone()
    theta[0, 0] = float("nan")
    trainer.algorithm.jump_to(0, theta)
    trainer._publish_current()
    assert sent == [] and trainer.state.not_sent_non_finite == 1


# ---------------------------------------------------------------------------- data sources


def test_odometry_interpolation_and_mapping_window():
    from dinno_core.tasks.mapping.raycast import LidarSpec
    from dinno_core.tasks.mapping.scan_points import BeamSampling

    from dinno_ros.data_sources import SCAN_HOLD, MappingDataSource, OdometryBuffer, yaw_from_quaternion

    odometry = OdometryBuffer(max_extrapolation=0.1)
    odometry.add(1.0, 0.0, 0.0, math.pi - 0.1)
    odometry.add(2.0, 2.0, 4.0, -math.pi + 0.1)  # crosses ±pi: the short way round
    x, y, yaw = odometry.pose_at(1.5)
    assert (x, y) == pytest.approx((1.0, 2.0)) and abs(math.sin(yaw)) < 1e-9 and math.cos(yaw) < 0
    assert odometry.pose_at(2.05) == (2.0, 4.0, -math.pi + 0.1) and odometry.pose_at(2.5) is None
    assert yaw_from_quaternion(0, 0, math.sin(0.3), math.cos(0.3)) == pytest.approx(0.6)

    spec = LidarSpec(num_beams=8, range_max=5.0)
    source = MappingDataSource(spec, BeamSampling(samples_per_beam=4), window_scans=3, seed=0)
    assert not source.ready()
    assert source.add_scan(0.5, np.full(8, 2.0))  # before any pose: it waits for the pose at 0.5
    assert source.stats()["scans_waiting_for_pose"] == 1 and not source.ready()
    source.add_odometry(0.0, 1.0, 1.0, 0.0)  # not yet covering 0.5
    assert source.stats()["scans_used"] == 0
    source.add_odometry(1.0, 1.0, 1.0, 0.0)  # now it is: the waiting scan is used
    assert source.stats()["scans_used"] == 1 and source.stats()["scans_waiting_for_pose"] == 0
    assert not source.add_scan(-5.0, np.full(8, 2.0))  # long before the first pose: none at its stamp
    assert not source.add_scan(0.5, np.full(7, 2.0))  # wrong beam count: malformed
    for _ in range(3):
        assert source.add_scan(0.5, np.full(8, 2.0))
    assert not source.add_scan(0.5, np.full(8, np.nan))  # no usable beam: skipped, no window slot
    assert not source.add_scan(0.5, np.full(8, -np.inf))
    stats = source.stats()
    assert (stats["scans_used"], stats["scans_malformed"], stats["scans_without_pose"], stats["scans_empty"]) == (4, 1, 1, 2)
    # Odometry that stops: scans newer than it wait SCAN_HOLD seconds (of newer scans), then are
    # given the newest pose if within max_extrapolation, else counted without a pose.
    assert source.add_scan(1.05, np.full(8, 2.0)) and source.add_scan(1.5, np.full(8, 2.0))
    assert source.stats()["scans_waiting_for_pose"] == 2
    assert source.add_scan(1.05 + SCAN_HOLD + 0.01, np.full(8, 2.0))  # 1.05 gives up: 0.05 s after the pose
    assert source.stats()["scans_used"] == 5 and source.stats()["scans_waiting_for_pose"] == 2
    assert source.add_scan(1.5 + SCAN_HOLD + 0.01, np.full(8, 2.0))  # 1.5 gives up: 0.5 s, too far
    stats = source.stats()
    assert (stats["scans_used"], stats["scans_without_pose"], stats["scans_waiting_for_pose"]) == (5, 2, 2)
    assert stats["window_scans"] == 3 and source.ready()
    points, labels = source.local_data.sample(64, torch.Generator().manual_seed(0))
    assert points.shape == (64, 2) and set(labels.unique().tolist()) <= {0.0, 1.0}
    # Points lie within range_max of the pose (1, 1), hits near radius 2.
    radius = (points - torch.tensor([1.0, 1.0])).norm(dim=1)
    assert float(radius.max()) <= 2.0 + 0.05 + 1e-5 and bool((radius[labels == 1] >= 2.0 - 1e-5).all())


# ------------------------------------------------------------------------------ monitoring


def snapshot(expected, links):
    return ExchangeSnapshot(round=7, drops={"stale": 1, "malformed": 2}, superseded=0, accepted=10,
                            links=links, expected=tuple(expected))


def test_diagnostics_levels_and_link_values():
    fine = LinkStats(received=5, used=5, last_round=7, last_heard=99.0)
    lagging = LinkStats(received=3, used=3, missed=2, missed_in_a_row=2, last_round=4, last_heard=90.0)
    lagging.drops["malformed"] = 2
    ok = diagnose(snapshot(["b"], {"b": fine}), now=100.0)
    assert ok.level == OK
    values = dict(ok.values)
    assert values["b.state"] == "ok" and values["b.last_message_age_s"] == "1" and values["messages_dropped"] == "3"
    warn = diagnose(snapshot(["b", "c"], {"b": fine, "c": lagging}), now=100.0)
    assert warn.level == WARN and "c" in warn.message
    values = dict(warn.values)
    assert values["c.state"] == "missed last 2 rounds" and values["c.dropped"] == "malformed=2"
    assert values["c.last_message_age_s"] == "10"
    assert diagnose(snapshot(["c"], {"c": lagging}), now=100.0).level == ERROR
    assert diagnose(snapshot(["b"], {"b": LinkStats()}), now=100.0).level == ERROR  # never heard
    assert diagnose(snapshot([], {}), now=100.0).level == OK


def test_mapping_robot_learns_from_scan_and_odometry_topics(ros_context):
    """The mapping data source inside a real node: LaserScan + Odometry topics → sliding window →
    training rounds; a scan with the wrong beam count is skipped and counted."""
    pytest.importorskip("dinno_core.tasks.mapping.task")
    from nav_msgs.msg import Odometry
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import LaserScan

    node = make_node(ros_context, **{"team": ["robot_0"], "neighbours": [], "algorithm.kind": "individual",
                                     "algorithm.batch_size": 32, "task.name": "mapping", "task.validation_scans": 5,
                                     "rounds": 3})
    feeder = __import__("rclpy").create_node("feeder", context=ros_context)
    odom_pub = feeder.create_publisher(Odometry, "/robot_0/odom", 10)
    scan_pub = feeder.create_publisher(LaserScan, "/robot_0/scan", 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(feeder)
    node.start()
    try:
        spec = node.trainer.source.spec
        for i in range(400):
            if node.done.is_set():
                break
            stamp = node.get_clock().now().to_msg()
            odom = Odometry()
            odom.header.stamp = stamp
            odom.pose.pose.position.x, odom.pose.pose.position.y = 2.0, 3.0
            odom.pose.pose.orientation.w = 1.0
            odom_pub.publish(odom)
            scan = LaserScan()  # with the metadata a driver fills in (each scan is mapped with its own)
            scan.header.stamp = stamp
            scan.angle_min, scan.angle_increment = float(spec.angle_min), float(spec.angle_increment)
            scan.range_min, scan.range_max = float(spec.range_min), float(spec.range_max)
            scan.ranges = [1.5] * (spec.num_beams if i % 2 == 0 else spec.num_beams - 1)
            scan_pub.publish(scan)
            for _ in range(5):
                executor.spin_once(timeout_sec=0.01)
        assert node.done.is_set(), "the robot did not train 3 rounds from the scan stream"
    finally:
        node.stop()
        executor.shutdown()
        feeder.destroy_node()
        node.destroy_node()
    assert node.failed is None and node.trainer.state.finished and node.trainer.algorithm.round == 3
    stats = node.trainer.source.stats()
    assert stats["scans_used"] >= 1 and stats["scans_malformed"] >= 1 and stats["window_points"] > 0


def test_communication_radius_picks_the_teammates_in_range():
    team = ("robot_0", "robot_1", "robot_2")
    trainer = RobotTrainer(RobotSettings(robot_id="robot_0", team=team, algorithm=CONFIG, task=TASK,
                                         communication_radius=5.0))
    assert trainer.needs_poses and trainer.expected_neighbours == ()
    trainer.update_neighbours()
    assert trainer.expected_neighbours == ()  # own pose unknown: nobody is in range yet
    trainer.add_odometry("robot_0", 0.0, 0.0, 0.0, 0.0)
    trainer.add_odometry("robot_1", 0.0, 3.0, 4.0, 0.0)  # exactly 5 m away: in range
    trainer.add_odometry("robot_2", 0.0, 6.0, 0.0, 0.0)
    trainer.update_neighbours()
    assert trainer.expected_neighbours == ("robot_1",)
    trainer.add_odometry("robot_2", 0.0, 4.0, 0.0, 0.0)
    trainer.update_neighbours()
    assert trainer.expected_neighbours == ("robot_1", "robot_2")


def test_communication_radius_node_subscribes_to_every_teammate(ros_context):
    node = make_node(ros_context, **{"team": ["robot_0", "robot_1", "robot_2"], "neighbours": [],
                                     "communication_radius": 5.0})
    try:
        assert node.trainer.needs_poses
        subscribed = {name for name, _ in node.get_subscriber_names_and_types_by_node(node.get_name(), "/robot_0")}
        assert {"/robot_1/dinno/weights", "/robot_2/dinno/weights", "/robot_1/dinno/waiting",
                "/robot_2/dinno/waiting", "/robot_1/odom", "/robot_2/odom", "/robot_0/odom"} <= subscribed
    finally:
        node.destroy_node()
