"""A robot node's own settings as pydantic models: the one source of its ROS parameters.

:class:`RobotSettings` is what the trainer needs (team, neighbours, rounds, timeouts, files);
:class:`NodeOptions` is what only the ROS shell needs (topics, QoS, encoding, threads, map
output). The node declares one ROS parameter per field (:func:`dinno_ros.parameters.model_parameters`
turns types, bounds and descriptions into parameter descriptors with real integer / floating
point ranges) and validates the values read with these models, once. ``algorithm.*`` and
``task.*`` come from the core's models the same way (:mod:`dinno_ros.parameters`).

Plain Python (pydantic): no rclpy import, so the trainer and the tests use it without ROS.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from dinno_core.config import ALGORITHM_KINDS
from dinno_core.wire_encoder import WireEncoder, delta_problem
from dinno_ros.data_sources import FrameSettings
from dinno_ros.message_auth import AUTH_MODES, TEAM_KEY_ENV, TeamKey
from dinno_ros.round_waiting import BEAT_EVERY, FRESH_FOR, LONGEST_WAIT
from dinno_ros.ros_names import check_member, check_neighbours, check_team, check_topic, check_topic_pattern
from dinno_ros.weights_codec import ENCODINGS

ROBOT_ALGORITHMS = tuple(kind for kind in ALGORITHM_KINDS if kind != "centralized")
"""The kinds a robot node runs (``centralized`` pools every robot's data: not a robot's job)."""

MAX_QOS_DEPTH = 10_000
"""Largest ``weights_qos_depth`` (each kept sample holds a full weight vector)."""


class RobotSettings(BaseModel):
    """Everything a robot's trainer needs, validated (the node builds it from its parameters)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, allow_inf_nan=False)

    algorithm: Any = Field(None, exclude=True)
    """The core's algorithm config (from the ``algorithm.*`` parameters)."""
    task: Any = Field(None, exclude=True)
    """The core's task config (from the ``task.*`` parameters)."""
    team: tuple[str, ...] = Field(description="All robot ids of the team; the order is the robot index used "
                                  "for the data split and seeding (same as the simulated team).")
    robot_id: str = Field("", description="This robot's id (its WeightUpdate sender name). Empty: the last "
                          "part of the node's namespace.")
    neighbours: tuple[str, ...] = Field((), description="Static communication neighbours (robot ids); leave "
                                        "empty when communication_radius is used.")
    communication_radius: Annotated[float, Field(ge=0.0)] = Field(
        0.0, description="If > 0: the neighbours are the teammates within this distance (metres), from their "
        "odometry poses, re-evaluated every round. 0: use neighbours.")
    seed: Annotated[int, Field(ge=0)] = Field(0, description="Experiment seed: initial weights, data, minibatch "
                                              "generators.")
    rounds: Annotated[int, Field(ge=0)] = Field(0, description="Rounds to run, then publish the final weights "
                                                "and exit; 0 = until stopped.")
    round_timeout: Annotated[float, Field(gt=0.0)] = Field(
        1.0, description="Seconds to wait for the neighbours' weights of a round before stepping with those "
        "that arrived (a timeout, counted). While waiting, the robot signals its neighbours every "
        f"{BEAT_EVERY:g} * round_timeout (and as it times out) that it is alive and still in its round; past "
        "round_timeout it keeps waiting only for neighbours that signalled so from an earlier round within "
        f"the last {FRESH_FOR:g} * round_timeout (they wait on someone themselves; their weights come when "
        f"that wait ends), and never longer than {LONGEST_WAIT:g} * round_timeout in all. So a silent "
        "neighbour costs its direct neighbours one timeout, not their neighbours too. Give every robot of a "
        "team the same value.")
    startup_timeout: Annotated[float, Field(ge=0.0)] = Field(
        30.0, description="Seconds to wait before the first round until every neighbour has been heard once "
        "(a team started process by process begins together); a round also waits this long, instead of "
        "round_timeout, for a neighbour heard only once (its announcement: it may still wait to start).")
    max_round_lead: Annotated[int, Field(ge=1)] = Field(
        1000, description="Messages more than this many rounds ahead of this robot are dropped as absurd; "
        "also the largest gap a restarted robot can catch up over.")
    dtype: Literal["float32", "float64"] = Field("float32", description="Floating-point type of the local "
                                                 "model and optimizer.")
    checkpoint_every: Annotated[int, Field(ge=0)] = Field(0, description="Rounds between checkpoints; 0 = only "
                                                          "on shutdown.")
    resume: bool = Field(False, description="Resume from checkpoint_path if it exists (needs checkpoint_path).")
    checkpoint_path: str = Field("", description="Checkpoint file ({robot} is replaced by robot_id); written "
                                 "every checkpoint_every rounds and on shutdown. Empty: no checkpoints.")
    results_path: str = Field("", description="JSON results written on exit ({robot} is replaced by robot_id); "
                              "the final weights go next to it as <name>.weights.npy. Empty: none.")
    auth: Literal[AUTH_MODES] = Field(  # type: ignore[valid-type]
        "hmac", description="Weight-message authentication: 'hmac' signs and verifies every message with the "
        "team key (team_key_file); 'open' hears anyone on the domain (trusted networks only).")
    team_key_file: str = Field("", validate_default=True, description="File holding the team's shared key as hex, mode 600 (create one "
                               f"with: python -m dinno_ros.message_auth generate PATH). Empty: ${TEAM_KEY_ENV}.")
    max_weight_distance: Annotated[float, Field(gt=0.0)] = Field(
        10.0, description="Bounded-change check: drop a neighbour's weights farther than this many times "
        "(|own weights| + weight_scale) from this robot's own.")
    max_weight_step: Annotated[float, Field(gt=0.0)] = Field(
        10.0, description="Bounded-change check: drop a neighbour's weights that moved more than this many "
        "times (|its last accepted weights| + weight_scale) since its last accepted message.")
    weight_scale: Annotated[float, Field(gt=0.0)] = Field(
        1.0, description="Absolute scale added to the norms of the bounded-change check, so weights near zero "
        "are not held to a zero bound.")
    absent_after: Annotated[int, Field(ge=1)] = Field(
        1, description="A neighbour whose weights were missing from this many stepped rounds in a row (each "
        "miss normally a round_timeout) is absent: not waited for, its weights still used when they are "
        "there, until a weight message of it is accepted again. A cut-off neighbour thus costs "
        "absent_after timeouts, not one per round.")
    frame: FrameSettings = Field(FrameSettings(), description="Mapping task: where the scans are in the team's "
                                 "shared map frame (pose source, initial pose, lidar mount).")

    @field_validator("algorithm")
    @classmethod
    def _robot_algorithm(cls, value: Any) -> Any:
        kind = getattr(value, "kind", None)
        if value is not None and kind not in ROBOT_ALGORITHMS:
            raise ValueError(f"{kind!r} is not allowed for a robot; allowed: {', '.join(ROBOT_ALGORITHMS)}")
        return value

    @field_validator("team")
    @classmethod
    def _team(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_team(value))

    @field_validator("robot_id")
    @classmethod
    def _robot_id(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            raise ValueError("is empty and the node has no namespace to take it from")
        return check_member(value, info.data.get("team", ()))

    @field_validator("neighbours")
    @classmethod
    def _neighbours(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        return tuple(check_neighbours(info.data.get("robot_id", ""), info.data.get("team", ()), value))

    @field_validator("communication_radius")
    @classmethod
    def _radius(cls, value: float, info: ValidationInfo) -> float:
        neighbours = info.data.get("neighbours", ())
        if value > 0 and neighbours:
            raise ValueError("give neighbours or communication_radius, not both")
        algorithm = info.data.get("algorithm")
        communicates = algorithm is not None and algorithm.kind != "individual"
        if communicates and value == 0 and not neighbours and len(info.data.get("team", ())) > 1:
            raise ValueError("0 and no neighbours: give the neighbours, a communication_radius > 0, or "
                             "algorithm.kind:=individual")
        return value

    @field_validator("checkpoint_path", "results_path")
    @classmethod
    def _paths(cls, value: str, info: ValidationInfo) -> str:
        value = value.replace("{robot}", info.data.get("robot_id", "{robot}"))
        if info.field_name == "checkpoint_path" and not value and (
                info.data.get("resume") or info.data.get("checkpoint_every")):
            raise ValueError("required by resume:=true / checkpoint_every > 0")
        return value

    @field_validator("team_key_file")
    @classmethod
    def _team_key_file(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("auth", "hmac") == "open":
            if value:
                raise ValueError("is set but auth is 'open': choose one")
            return value
        value = value or os.environ.get(TEAM_KEY_ENV, "")
        if not value:
            raise ValueError(f"is required (or the environment variable {TEAM_KEY_ENV}): every weight message is "
                             "signed with the team key (create one with: python -m dinno_ros.message_auth "
                             "generate PATH), or set auth:=open to hear anyone on the domain")
        try:  # a missing, unreadable, short or exposed key is an error now
            TeamKey.from_file(value)
        except ValueError as error:
            raise ValueError(str(error).split(": ", 1)[-1]) from None
        return value

    @property
    def index(self) -> int:
        return self.team.index(self.robot_id)

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float64 if self.dtype == "float64" else torch.float32

    @property
    def uses_radius(self) -> bool:
        return self.communication_radius > 0


class NodeOptions(BaseModel):
    """What only the ROS shell of a robot needs: topics, QoS, wire encoding, threads, map output."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    weights_topic: str = Field("dinno/weights", description="Topic this robot publishes its weights on "
                               "(relative: in the robot's namespace).")
    neighbour_weights_topic: str = Field("/{robot}/dinno/weights", description="Pattern of a neighbour's "
                                         "weights topic; {robot} is replaced by the neighbour's id.")
    waiting_topic: str = Field("dinno/waiting", description="Topic this robot sends its 'still waiting in "
                               "round r' signals on (dinno_msgs/RoundWaiting, BEST_EFFORT; relative: in the "
                               "robot's namespace).")
    neighbour_waiting_topic: str = Field("/{robot}/dinno/waiting", description="Pattern of a neighbour's "
                                         "waiting-signal topic; {robot} is replaced by the neighbour's id.")
    neighbour_odom_topic: str = Field("/{robot}/odom", description="Pattern of a teammate's odometry topic "
                                      "(communication_radius only).")
    odom_topic: str = Field("odom", description="This robot's odometry (communication_radius, mapping).")
    scan_topic: str = Field("scan", description="This robot's lidar scans (mapping task).")
    weights_qos_depth: Annotated[int, Field(ge=1, le=MAX_QOS_DEPTH)] = Field(
        2, description="KEEP_LAST depth of the weight topics (RELIABLE, TRANSIENT_LOCAL). 2 keeps round k "
        "available while round k+1 is published.")
    weights_reader_depth: Annotated[int, Field(ge=1, le=MAX_QOS_DEPTH)] = Field(
        100, description="History depth of each neighbour weights subscription: a burst (junk on a "
        "neighbour's topic, its history at discovery) is queued and counted, not overwritten.")
    encoding: Literal[tuple(ENCODINGS)] = Field("float32", description="Wire encoding of the weights.")  # type: ignore[valid-type]
    delta_encoding: bool = Field(False, description="Send the change of the weights since a round every "
                                 "neighbour acknowledged instead of the weights (same bytes, smaller rounding "
                                 "error; float16 or uint8 only).")
    torch_threads: Annotated[int, Field(ge=1, le=1024)] = Field(1, description="torch intra-op threads of this "
                                                                "process.")
    diagnostics_period: Annotated[float, Field(gt=0.0)] = Field(1.0, description="Seconds between /diagnostics "
                                                                "messages.")
    map_publish_every: Annotated[int, Field(ge=0)] = Field(
        20, description="Mapping task: publish the robot's current map on dinno/map (nav_msgs/OccupancyGrid) "
        "and dinno/map_image (sensor_msgs/Image, mono8) every this many rounds and after the last round; "
        "0 = off.")
    map_frame: str = Field("map", min_length=1, description="frame_id of the published map: the team's shared "
                           "world frame (the odometry frames' origin).")

    @field_validator("delta_encoding")
    @classmethod
    def _delta_needs_rounding(cls, value: bool, info: ValidationInfo) -> bool:
        problem = delta_problem(info.data.get("encoding", "float32"), value)
        if problem:
            raise ValueError(problem)
        return value

    def wire_encoder(self) -> WireEncoder:
        """What the trainer sends its weights with."""
        return WireEncoder(self.encoding, self.delta_encoding)

    @field_validator("weights_topic", "waiting_topic", "odom_topic", "scan_topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        return check_topic(value, "topic")

    @field_validator("neighbour_weights_topic", "neighbour_waiting_topic", "neighbour_odom_topic")
    @classmethod
    def _pattern(cls, value: str) -> str:
        return check_topic_pattern(value, "topic")
