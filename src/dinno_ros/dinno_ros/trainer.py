"""One robot's training loop over the network: plain logic, no rclpy (the node is a thin shell).

The robot is the core's algorithm with ``R = 1``, built exactly as the simulated team builds
robot ``i``: :func:`dinno_core.config.set_up_model` (same initial weights), ``build_algorithm``,
``TeamData([dataset_i], seed, robot_indices=[i])`` (same minibatches), and each round an
``Inbox [1, K, m, n]`` of the neighbour payloads that arrived in time, then ``algorithm.step``.

No update rule is re-implemented here. Round rules (stale, early, timeout, catch-up) live in
:mod:`dinno_ros.exchange`; a catch-up moves the algorithm with its own
:meth:`~dinno_core.algorithms.base.DistributedAlgorithm.jump_to`.

The trainer is the ROS node's only partner: the node hands it what arrives (:meth:`receive_weights`,
:meth:`add_scan`, :meth:`add_odometry`...) and gets what to send through the two ports given to the
constructor, ``publish(values [m, n], round, degree)`` (returns the payload bytes it sent; an
``EncodingError`` there counts the weights as not sent), ``on_round(report)`` and
``signal_waiting(round)`` (send a "still waiting in this round" signal,
:mod:`dinno_ros.round_waiting`, built from :meth:`RobotTrainer.waiting_fields`); it never calls
anything else of the node.
"""

from __future__ import annotations

import logging
import math
import secrets
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dinno_core.algorithms import build_algorithm
from dinno_core.checkpoint import CheckpointError, claim_checkpoint_path, load_checkpoint, restore, save_checkpoint
from dinno_core.config import set_up_model
from dinno_core.wire_encoder import FULL, WireEncoder, WireMessage, acknowledged
from dinno_core.graphs import neighbours_in_range
from dinno_core.team import TeamData
from dinno_ros.data_sources import DataSource, ScanGeometry, default_data_source, planar_pose
from dinno_ros.exchange import DropReason, ExchangeSnapshot, RoundExchange, RoundInputs
from dinno_ros.message_auth import TeamKey
from dinno_ros.monitoring import BytesSent
from dinno_ros.robot_report import (CatchUp, RoundReport, TrainerState, diagnostic_values, dual_values,
                                    results_document, write_results)
from dinno_ros.round_inbox import acknowledgements_of, round_inbox
from dinno_ros.round_waiting import round_wait_timeout
from dinno_ros.robot_settings import RobotSettings
from dinno_ros.update_guard import GuardLimits, UpdateGuard

class RobotTrainer:
    """The round loop of one robot. ``publish(values [m, n], round, degree)`` sends weights (and
    returns the payload bytes sent);
    ``on_round(report)`` gets every stepped round. With ``communication_radius`` the expected
    neighbours are the teammates within range (:func:`dinno_core.graphs.disk_graph` over the
    poses given to :meth:`add_odometry`), re-evaluated before every round."""

    def __init__(self, settings: RobotSettings,
                 publish: Callable[[Tensor, int, int], int | None] = lambda values, round_index, degree: None,
                 on_round: Callable[[RoundReport], None] = lambda report: None,
                 make_source: Callable[[Any, RobotSettings], DataSource] = default_data_source,
                 log: Any = None, signal_waiting: Callable[[int], None] | None = None,
                 wire: WireEncoder | None = None) -> None:
        self.settings = settings
        self.wire = wire or WireEncoder()  # what publish sends (and so what the algorithm's own_sent is)
        self._sent: WireMessage | None = None  # the newest round's message
        self._heard_acks: dict[str, tuple[int, int, int]] = {}  # the neighbours' newest acknowledgements
        self._publish = publish
        self._on_round = on_round
        self._signal_waiting = signal_waiting
        self._beats = 0
        self.log = log or logging.getLogger("dinno_ros.trainer")
        setup = set_up_model(settings.task, len(settings.team), settings.seed, settings.torch_dtype)
        self.task, self.flat = setup.task, setup.flat
        theta0 = setup.theta0[None, :].clone()
        self.source = make_source(self.task, settings)
        self.data = TeamData([self.source.local_data], settings.seed, robot_indices=[settings.index])
        self.algorithm = build_algorithm(settings.algorithm, self.flat, theta0)
        self.fingerprint = self.flat.spec.fingerprint
        self.num_params = self.flat.spec.numel
        self.exchange = RoundExchange(
            settings.robot_id, settings.team, fingerprint=self.fingerprint, num_params=self.num_params,
            num_vectors=self.algorithm.payload_vectors, neighbours=settings.neighbours,
            max_round_lead=settings.max_round_lead, key=self._team_key(settings),
            guard=UpdateGuard(GuardLimits(settings.max_weight_distance, settings.max_weight_step,
                                          settings.weight_scale)),
            absent_after=settings.absent_after,
        )
        self.session = secrets.randbits(64)
        """This process's session id, sent with every message (duplicate robot ids show as two)."""
        self.state = TrainerState()
        self._poses: dict[str, tuple[float, float]] = {}
        self._poses_lock = threading.Lock()
        self.resumed_from: int | None = None
        self.started_unix = time.time()
        self._rate = float("nan")
        self._last_step: float | None = None
        self.bytes_sent = BytesSent(time.monotonic())
        """Weight payload bytes published (what ``publish`` returned), and their recent rate."""
        self._lock = threading.Lock()  # guards algorithm state between the training thread and saves
        if settings.resume:
            self._resume()
        self._claim_checkpoint_path()
        self.exchange.begin_round(self.algorithm.round)
        self.exchange.restart_acknowledgements(self.algorithm.round)
        self._set_reference()

    @staticmethod
    def _team_key(settings: RobotSettings) -> TeamKey | None:  # auth hmac; a bad file: ConfigError
        return TeamKey.from_file(settings.team_key_file) if settings.auth == "hmac" else None

    def wire_fields(self, round_index: int) -> dict[str, Any]:
        """What a weight message of round ``round_index`` carries besides the weights: this process's
        session, the acknowledgements of the neighbours' rounds, the penalty it announces (DiNNO),
        the round its payload is a change since (delta encoding) and the key that signs it."""
        penalty = self.algorithm.outgoing_penalty()
        sent = self._sent
        return {"session": self.session, "acks": self.exchange.acknowledgements(round_index),
                "key": self.exchange.key, "rho": math.nan if penalty is None else float(penalty[0]),
                "delta_base": int(sent.base_round[0]) if sent is not None and sent.round == round_index else FULL}

    def waiting_fields(self, round_index: int) -> dict[str, Any]:
        """What a "still waiting in round ``round_index``" signal carries: the model fingerprint,
        this process's session, the next beat number (1, 2, ...) and the key that signs it."""
        self._beats += 1
        return {"fingerprint": self.fingerprint, "session": self.session, "beat": self._beats,
                "key": self.exchange.key}

    # ------------------------------------------------------------------ what the node hands in

    def receive_weights(self, msg: Any, via: str | None = None) -> tuple[DropReason, str] | None:
        """A neighbour's ``WeightUpdate`` (executor thread); ``(reason, detail)`` if dropped."""
        return self.exchange.receive(msg, via=via)

    def receive_waiting(self, msg: Any, via: str | None = None) -> tuple[DropReason, str] | None:
        """A neighbour's ``RoundWaiting`` signal (executor thread); ``(reason, detail)`` if dropped."""
        return self.exchange.receive_waiting(msg, via=via)

    @property
    def needs_sensors(self) -> bool:
        """The data come from this robot's lidar scans and odometry (mapping task)."""
        return self.source.needs_sensors

    @property
    def needs_poses(self) -> bool:
        """Every teammate's odometry is needed (communication radius)."""
        return self.settings.uses_radius

    @property
    def pose_source(self) -> str:
        """Where this robot's scan poses come from (``frame.pose_source``)."""
        return self.settings.frame.pose_source

    def add_odometry(self, robot: str, stamp: float, x: float, y: float, yaw: float) -> None:
        """A planar odometry pose of ``robot`` (this robot or a teammate)."""
        with self._poses_lock:
            self._poses[robot] = (x, y)
        if robot == self.settings.robot_id and self.source.needs_sensors and self.pose_source == "odometry":
            self.source.add_odometry(stamp, x, y, yaw)

    def add_odometry_message(self, robot: str, stamp: float, x: float, y: float, qx: float, qy: float, qz: float,
                             qw: float) -> bool:
        """An odometry message's pose (quaternion of any norm); False if rejected (zero/non-finite)."""
        planar = planar_pose(x, y, qx, qy, qz, qw)
        if planar is None:
            if robot == self.settings.robot_id and self.source.needs_sensors:
                self.source.add_pose(stamp, x, y, qx, qy, qz, qw)  # counts it
            return False
        self.add_odometry(robot, stamp, *planar[0])
        return True

    def add_map_pose(self, stamp: float, x: float, y: float, qx: float, qy: float, qz: float, qw: float) -> bool:
        """This robot's pose in the map frame (``frame.pose_source: pose_topic``); False if rejected."""
        return self.source.add_pose(stamp, x, y, qx, qy, qz, qw)

    def add_scan(self, stamp: float, ranges: np.ndarray, geometry: ScanGeometry | None = None,
                 frame_id: str | None = None, *, sensor_pose: Any = None) -> bool:
        """One lidar scan of this robot with its own metadata; False if it was skipped (and counted)."""
        return self.source.add_scan(stamp, ranges, geometry=geometry, frame_id=frame_id, sensor_pose=sensor_pose)

    def update_neighbours(self) -> None:
        """With a communication radius: expect the teammates in range (none while our own pose is
        unknown). Called before every round."""
        if self.settings.uses_radius:
            with self._poses_lock:
                poses = dict(self._poses)
            self.exchange.set_neighbours(neighbours_in_range(self.settings.robot_id, self.settings.team, poses,
                                                             self.settings.communication_radius))

    @property
    def expected_neighbours(self) -> tuple[str, ...]:
        return self.exchange.expected

    def close(self) -> None:  # wake a waiting round at once (shutdown); run() then returns
        self.exchange.close()

    # ------------------------------------------------------------------ what the node reads

    @property
    def round(self) -> int:  # rounds completed
        return self.algorithm.round

    @property
    def finished(self) -> bool:
        return self.state.finished

    def current_weights(self) -> Tensor:  # a copy of this robot's weights [n]
        with self._lock:
            return self.algorithm.theta[0].clone()

    @property
    def map_grid(self) -> Any:
        """The task's evaluation grid when it has a map (mapping task), else None."""
        return getattr(self.task, "grid", None)

    def render_map(self) -> np.ndarray:
        """The current network's occupancy probabilities on :attr:`map_grid` (mapping task; the
        core's :meth:`~dinno_core.tasks.mapping.task.MappingTask.render_map`)."""
        return self.task.render_map(self.current_weights())

    def diagnostics(self) -> tuple[ExchangeSnapshot, dict[str, Any]]:
        """The exchange's counters and the trainer's own values, for ``/diagnostics``."""
        values = diagnostic_values(self.state, self.source.stats())
        values.update(bytes_sent=self.bytes_sent.total, bytes_sent_per_second=self.bytes_sent.rate(time.monotonic()))
        return self.exchange.snapshot(), values

    @property
    def round_rate(self) -> float:
        return self._rate

    # ------------------------------------------------------------------ checkpoints

    def _resume(self) -> None:
        path = self.settings.checkpoint_path
        if not os.path.lexists(path):
            self.log.warning(f"resume requested but {path} does not exist: starting from round 0")
            return
        state = load_checkpoint(path, required=("robot_id", "fingerprint", "kind", "num_params", "algorithm",
                                                "algorithm.theta", "algorithm.round", "data"))
        mine = {"robot_id": self.settings.robot_id, "fingerprint": self.fingerprint,
                "kind": self.settings.algorithm.kind, "num_params": self.num_params}
        wrong = {k: state.get(k) for k, v in mine.items() if state.get(k) != v}
        if wrong:
            raise CheckpointError(path, f"does not belong to this robot/model: it has {wrong}, expected {mine}")
        restore(path, lambda: (self.algorithm.load_state_dict(state["algorithm"]),
                               self.data.load_state_dict(state["data"])))
        self.resumed_from = self.algorithm.round
        self.log.info(f"resumed from {path} at round {self.algorithm.round}")

    def _claim_checkpoint_path(self) -> None:
        """Never overwrite a checkpoint this run did not resume from: keep it aside first."""
        if not self.settings.checkpoint_path:
            return
        aside = claim_checkpoint_path(self.settings.checkpoint_path, resuming=self.resumed_from is not None)
        if aside is not None:
            self.log.warning(f"{self.settings.checkpoint_path} held a checkpoint this run did not resume from "
                             f"(resume is off): kept it as {aside}")

    def checkpoint_state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "robot_id": self.settings.robot_id, "team": list(self.settings.team),
                "fingerprint": self.fingerprint, "kind": self.settings.algorithm.kind,
                "num_params": self.num_params, "round": self.algorithm.round,
                "algorithm": self.algorithm.state_dict(), "data": self.data.state_dict(),
                "saved_unix": time.time(),
            }

    def save_checkpoint(self) -> str | None:
        if not self.settings.checkpoint_path:
            return None
        save_checkpoint(self.settings.checkpoint_path, self.checkpoint_state())
        return self.settings.checkpoint_path

    # ------------------------------------------------------------------ the loop

    def _wait_for_data(self, stop: threading.Event) -> bool:
        if not self.source.ready():
            self.log.info("waiting for training data (sensor stream)")
        while not self.source.ready():
            if stop.wait(0.05):
                return False
        return True

    def run(self, stop: threading.Event) -> None:
        """Train until ``rounds`` are done or ``stop`` is set (then :meth:`RoundExchange.close`
        must be called too, so a waiting round returns at once)."""
        if not self._wait_for_data(stop):
            return
        with self._lock:
            self.algorithm.initialize(self.data.sample)
        self._warm_up()
        announced: int | None = None  # a round already sent before the loop (not sent twice)
        self.update_neighbours()
        if self.exchange.expected and self.settings.startup_timeout > 0:
            self._publish_current()  # let the neighbours hear us while we wait for them
            announced = self.algorithm.round
            silent = self.exchange.wait_for_neighbours(self.settings.startup_timeout)
            if silent:
                self.log.warning(f"starting without having heard {', '.join(silent)} "
                                 f"after {self.settings.startup_timeout:g} s")
        rounds = self.settings.rounds
        self.state.training_started = time.monotonic()
        self.log.info(f"started training at round {self.algorithm.round}")
        while not stop.is_set():
            if rounds and self.algorithm.round >= rounds:
                self.state.finished = True
                break
            self.update_neighbours()
            k = self.algorithm.round
            self.exchange.begin_round(k)
            if k != announced:  # a second copy would reach fast neighbours as a stale message
                self._publish_current()
            announced = None
            seen = self.exchange.snapshot()
            timeout = round_wait_timeout({j: seen.links[j] for j in seen.expected}, self.settings.round_timeout,
                                         self.settings.startup_timeout)
            inputs = self.exchange.wait_for_round(k, timeout, signal=self._signal_waiting)
            self._heard_acks = dict(inputs.acks)
            if inputs.stopped or stop.is_set():
                break
            if inputs.catch_up_to is not None:
                self._catch_up(k, inputs)
                continue
            self._step(inputs)
            every = self.settings.checkpoint_every
            if every and self.algorithm.round % every == 0:
                self.save_checkpoint()
        if self.state.finished:
            self._publish_current()  # the final weights, for late joiners and monitors

    def _warm_up(self) -> None:
        """One throwaway forward/backward before meeting the team: torch's first call is slow
        (lazy initialisation, seconds on a loaded machine) and would make the neighbours time
        out in round 0. Uses its own generator, so the robot's minibatch stream is untouched."""
        inputs, targets = self.source.local_data.sample(1, torch.Generator().manual_seed(0))
        with torch.no_grad():
            theta = self.algorithm.theta.clone()
        self.flat.loss_and_grad(theta, inputs[None], targets[None])

    def _publish_current(self) -> None:
        k, expected, values = self.algorithm.round, self.exchange.expected, self.algorithm.outgoing()
        if not torch.isfinite(values).all():  # the core rolls them back; belt and braces
            self.state.not_sent_non_finite += 1
            self.log.error(f"round {k}: own weights are not finite, not sending them")
            return
        acked = acknowledged(acknowledgements_of(self._heard_acks, expected), torch.ones(1, len(expected), dtype=torch.bool),
                             self.wire.rounds) if self.wire.delta else None
        try:
            self._sent = self.wire.encode(values, k, acked)
            sent = self._publish(self._sent.values[0], k, len(expected))
        except ValueError as error:  # EncodingError from the publish port, or the 8-bit encoder's
            self.state.not_sent_non_finite += 1
            self.log.error(f"round {k}: not sending weights: {error}")
            return
        if sent:
            self.bytes_sent.add(sent, time.monotonic())

    def _set_reference(self) -> None:
        """This robot's weights are the bounded-change check's reference for its neighbours'."""
        if self.exchange.guard is not None:
            self.exchange.guard.set_reference(self.algorithm.theta[0].detach().cpu().numpy())

    def dual_monitor(self) -> tuple[float, int, int]:
        """``(dual_probe, reverted, expired)`` of DiNNO's edge duals (NaN, 0, 0 for other algorithms)."""
        return dual_values(self.algorithm, self.fingerprint)

    def _step(self, inputs: RoundInputs) -> None:
        inbox = round_inbox(inputs, self.settings.team, self.algorithm.payload_vectors, self.num_params,
                            self.settings.torch_dtype)
        with self._lock:
            own = self.algorithm.outgoing()[0, 0].clone()
            sent = self._sent  # as the neighbours got it
            inbox.own_sent = sent.sent if sent is not None and sent.round == inputs.round else None
            stats = self.algorithm.step(inbox, self.data.sample)
        self._set_reference()
        if inbox.mask.any():
            distances = (inbox.payloads[0, inbox.mask[0], 0] - own).norm(dim=1)
            neighbour_distance = float(distances.mean())
        else:
            neighbour_distance = float("nan")
        now = time.monotonic()
        if self._last_step is not None and now > self._last_step:
            rate = 1.0 / (now - self._last_step)
            self._rate = rate if math.isnan(self._rate) else 0.9 * self._rate + 0.1 * rate
        self._last_step = now
        self.state.last_step_at = now
        rho = getattr(self.algorithm, "rho", None)
        rejected = bool(stats.rejected[0])
        self.state.rounds_stepped += 1
        self.state.timeouts += int(inputs.timed_out)
        self.state.rejected_updates += int(rejected)
        if rejected:
            self.log.warning(f"round {inputs.round}: the update went non-finite and was rolled back")
        report = RoundReport(
            round=self.algorithm.round, training_loss=float(stats.training_loss[0]),
            neighbour_distance=neighbour_distance,
            rho=float(rho[0]) if rho is not None else float("nan"), round_rate=self._rate,
            heard=tuple(inputs.neighbours), missing=inputs.missing, timed_out=inputs.timed_out, rejected=rejected,
            messages_dropped=self.exchange.total_dropped,
        )
        report.dual_probe, report.dual_reverted, report.dual_expired = self.dual_monitor()
        report.bytes_sent, report.bytes_per_second = self.bytes_sent.total, self.bytes_sent.rate(now)
        self.state.last_report = report
        self._on_round(report)

    def _catch_up(self, k: int, inputs: RoundInputs) -> None:
        target = inputs.catch_up_to
        assert target is not None
        if self.settings.rounds:
            target = min(target, self.settings.rounds)
        fresh = self.resumed_from is None and self.state.rounds_stepped == 0
        warm = fresh and self.algorithm.payload_starts_with_weights and bool(inputs.latest)
        theta = None
        if warm:  # nothing of our own yet: start from the neighbours' mean instead of theta0
            mean = np.mean([r.values[0] for r in inputs.latest.values()], axis=0)
            theta = torch.from_numpy(mean).to(self.settings.torch_dtype)[None]
        with self._lock:
            self.algorithm.jump_to(target, theta)
        self._set_reference()
        self.state.catch_ups.append(CatchUp(k, target, warm, time.time()))
        self.log.warning(f"behind the team: neighbours are at round {inputs.catch_up_to}, we were at {k}; "
                         f"adopting round {target}" + (" (warm start from their mean)" if warm else ""))

    # ------------------------------------------------------------------ results

    def results(self) -> dict[str, Any]:
        """This robot's results document (see :func:`dinno_ros.robot_report.results_document`)."""
        with self._lock:
            theta = self.algorithm.theta[0].detach().cpu().numpy().astype(np.float64)
            rounds_done = self.algorithm.round
        return results_document(
            self.settings, self.exchange.snapshot(), self.state, theta, rounds_done, fingerprint=self.fingerprint,
            resumed_from=self.resumed_from, dual=self.dual_monitor(), data=self.source.stats(),
            started_unix=self.started_unix, bytes_sent=self.bytes_sent.total)

    def write_results(self) -> str | None:
        """The results JSON (``results_path``) and the final weights beside it; the path or None."""
        path = self.settings.results_path
        if not path:
            return None
        results = self.results()
        with self._lock:
            weights = self.algorithm.theta[0].detach().cpu().numpy().copy()
        return write_results(path, results, weights)
