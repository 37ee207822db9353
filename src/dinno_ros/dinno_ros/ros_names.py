"""ROS name rules (plain Python): robot ids, topic names, namespaces, remappings.

One place for the checks the team config, the launch plans and the robot node all apply. Each
raises ``ValueError`` with a message saying what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_ROS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ROS_TOPIC = re.compile(r"^(~/|/)?[A-Za-z_][A-Za-z0-9_/]*$")


def is_ros_name(value: str) -> bool:
    """A single ROS name token: letters, digits and '_', not starting with a digit."""
    return isinstance(value, str) and bool(_ROS_NAME.match(value))


def check_ros_name(value: str, what: str) -> str:
    if not is_ros_name(value):
        raise ValueError(
            f"{what} {value!r} is not a valid ROS name token: letters, digits and '_', "
            "not starting with a digit"
        )
    return value


def check_topic(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ROS_TOPIC.match(value) or "//" in value or value.endswith("/"):
        raise ValueError(f"{what} {value!r} is not a valid ROS topic name (e.g. 'scan', '/robot_0/scan')")
    return value


def check_topic_pattern(value: str, what: str) -> str:
    """A topic with ``{robot}`` in it (``/{robot}/odom``): valid once the id is put in."""
    if "{robot}" not in value:
        raise ValueError(f"must contain {{robot}}, got {value!r}")
    try:
        topic = value.format(robot="robot")
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"only {{robot}} may appear in braces, got {value!r}") from None
    check_topic(topic, what)
    return value


def check_remappings(value: dict[str, str]) -> dict[str, str]:
    for source, target in value.items():
        check_topic(source, "remapping source")
        check_topic(target, f"remapping target of {source!r}")
    return value


def normalise_namespace(value: str) -> str:
    parts = [part for part in value.strip().split("/") if part]
    for part in parts:
        check_ros_name(part, "namespace part")
    return "/" + "/".join(parts)


# ----------------------------------------------------------------------------- team membership
# The team / neighbour rules: the team config, the launch plans, the robot node, the lidar
# simulator and the round exchange all call these.


def check_team(team: Iterable[str]) -> list[str]:
    """Robot ids in team order: at least one, each a ROS name token, no repeats."""
    ids = list(team)
    if not ids:
        raise ValueError("needs at least one robot id, e.g. [robot_0, robot_1]")
    for robot in ids:
        check_ros_name(robot, "robot id")
    duplicates = sorted({robot for robot in ids if ids.count(robot) > 1})
    if duplicates:
        raise ValueError(f"robot ids must be unique; repeated: {', '.join(duplicates)}")
    return ids


def check_member(robot_id: str, team: Iterable[str]) -> str:
    ids = list(team)
    check_ros_name(robot_id, "robot id")
    if ids and robot_id not in ids:
        raise ValueError(f"{robot_id!r} is not in the team; allowed: {', '.join(ids)}")
    return robot_id


def check_neighbours(robot_id: str, team: Iterable[str], neighbours: Iterable[str]) -> list[str]:
    """Static neighbours: other members of the team, no repeats."""
    ids = list(team)
    wanted = list(neighbours)
    bad = [n for n in wanted if n == robot_id or (ids and n not in ids)]
    if bad:
        others = ", ".join(m for m in ids if m != robot_id) or "(the team's other ids)"
        raise ValueError(f"{bad} are not teammates of {robot_id!r}; allowed: {others}")
    duplicates = sorted({n for n in wanted if wanted.count(n) > 1})
    if duplicates:
        raise ValueError(f"neighbours must be unique; repeated: {', '.join(duplicates)}")
    return wanted
